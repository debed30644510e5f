#!/usr/bin/env bash
# LocalStack "ready" hook: create the Secrets Manager secret template.yaml resolves at deploy
# time (parameter SecretsId, default flowlink/control-plane) with a fresh Ed25519 signing
# key and witness HMAC key. Idempotent: an existing secret is left alone, so keys survive
# restarts with a persistent volume. Runs inside the LocalStack container (awslocal, openssl).
set -euo pipefail

SECRET_ID="${FLOWLINK_SECRETS_ID:-flowlink/control-plane}"

if awslocal secretsmanager describe-secret --secret-id "$SECRET_ID" >/dev/null 2>&1; then
  echo "flowlink: secret $SECRET_ID exists; keeping it"
  exit 0
fi

signing_key_pem="$(openssl genpkey -algorithm ed25519)"
witness_hmac_key="$(openssl rand -hex 32)"
secret_json="$(python3 -c 'import json,sys; print(json.dumps({"signing_key_pem": sys.argv[1], "witness_hmac_key": sys.argv[2]}))' \
  "$signing_key_pem" "$witness_hmac_key")"

awslocal secretsmanager create-secret --name "$SECRET_ID" \
  --description "FlowLink envelope signing key and witness HMAC key (local)" \
  --secret-string "$secret_json" >/dev/null
echo "flowlink: created secret $SECRET_ID"
