#!/usr/bin/env bash
# Deploy FlowLink against LocalStack (started with localstack/docker-compose.yml).
# UNTESTED on the CI machine, which has no Docker; the embedded moto stack (`make up`) is
# what CI runs. Two modes:
#
#   ./localstack/deploy.sh hybrid   LocalStack holds the AWS resources (provisioned from
#                                   template.yaml by `flowlink local up`), the gateway and
#                                   the relay run on the host. Works with LocalStack's free
#                                   tier: no WebSocket API needed.
#   ./localstack/deploy.sh sam      `samlocal build` + `samlocal deploy` of the whole SAM stack
#                                   into LocalStack (Lambda needs Docker; the relay WebSocket
#                                   API needs LocalStack's paid tier).
#
# Tools: awslocal (pip install awscli-local) and, for `sam`, samlocal (pip install
# aws-sam-cli-local; it wraps the SAM CLI of .venv-tools, see `make tools`).
set -euo pipefail
cd "$(dirname "$0")/.."

ENDPOINT="${AWS_ENDPOINT_URL:-http://localhost:4566}"
STACK_NAME="${STACK_NAME:-flowlink-local}"
REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
export AWS_DEFAULT_REGION="$REGION" SAM_CLI_TELEMETRY=0

wait_for_localstack() {
  for _ in $(seq 1 60); do
    if curl -fsS "$ENDPOINT/_localstack/init/ready" 2>/dev/null | grep -q '"completed": *true'; then
      return 0
    fi
    sleep 2
  done
  echo "LocalStack at $ENDPOINT is not ready (docker compose -f localstack/docker-compose.yml up -d?)" >&2
  exit 1
}

mode="${1:-hybrid}"
wait_for_localstack
case "$mode" in
  hybrid)
    # Same code path as CI, with LocalStack instead of moto as the AWS endpoint.
    exec .venv/bin/flowlink local up --aws-endpoint "$ENDPOINT" --stack-name "$STACK_NAME"
    ;;
  sam)
    command -v samlocal >/dev/null || { echo "samlocal not found: pip install aws-sam-cli-local" >&2; exit 1; }
    samlocal build --template-file template.yaml
    samlocal deploy --stack-name "$STACK_NAME" --region "$REGION" \
      --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
      --resolve-s3 --no-confirm-changeset --no-fail-on-empty-changeset
    awslocal cloudformation describe-stacks --stack-name "$STACK_NAME" \
      --query 'Stacks[0].Outputs' --output table
    ;;
  *)
    echo "usage: $0 [hybrid|sam]" >&2
    exit 2
    ;;
esac
