"""Witnesses of the audit chain: HMAC-signed head snapshots and Ed25519-signed Merkle checkpoints.

A **witness snapshot** ``{"type": "flowlink.audit.witness", "v": 1, "org", "seq",
"chain_hash", "time", "hmac"}`` carries ``hmac`` = HMAC-SHA256(witness key, canonical JSON
of the other fields), hex. Only FlowLink (holder of ``FLOWLINK_WITNESS_HMAC_KEY``) can make
or check one. A **checkpoint** ``{"type": "flowlink.audit.checkpoint", "v": 1, "org",
"tree_size", "root", "time", "key_id", "signature"}`` carries an Ed25519 signature
(base64) over the canonical JSON of the other fields, made with the gateway signing key
(``FLOWLINK_SIGNING_KEY``); anyone with the public key can check it offline.

Both are written to the witness bucket (S3 Object Lock, COMPLIANCE) with ``IfNoneMatch="*"``
so a published witness can be neither overwritten nor deleted, as
``witness/{org}/{seq:012d}.json`` and ``checkpoint/{org}/{tree_size:012d}.json``, and
optionally POSTed to ``FLOWLINK_WITNESS_WEBHOOK_URL``. A forged or altered document is
rejected (WitnessError / CheckpointError), never trusted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flowlink import relay_protocol
from flowlink.audit.canonical import CanonicalizationError, canonical_json
from flowlink.audit.chain import is_hash, utc_now_iso
from flowlink.audit.errors import AuditMisconfigured, CheckpointError, WitnessError
from flowlink.audit.verify import Anchor
from flowlink.errors import ServiceMisconfigured
from flowlink.settings import Settings

logger = logging.getLogger(__name__)

WITNESS_TYPE = "flowlink.audit.witness"
CHECKPOINT_TYPE = "flowlink.audit.checkpoint"
# Matches the template's default (WitnessRetentionDays); the bucket default applies too.
RETENTION_DAYS = 400
WEBHOOK_TIMEOUT_SECONDS = 5.0


# --- keys -----------------------------------------------------------------------------


def hmac_key(settings: Settings) -> bytes:
    """The witness HMAC key (UTF-8 bytes of FLOWLINK_WITNESS_HMAC_KEY); AuditMisconfigured if unset."""
    if not settings.witness_hmac_key:
        raise AuditMisconfigured("FLOWLINK_WITNESS_HMAC_KEY is not set; witnesses cannot be signed or checked")
    return settings.witness_hmac_key.encode("utf-8")


def signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The gateway's Ed25519 key (FLOWLINK_SIGNING_KEY or FLOWLINK_SIGNING_KEY_FILE), the same key
    relays pin, loaded through ``flowlink.relays.load_signing_key``. Never an ephemeral key: a
    checkpoint nobody can check later is worthless, so without a setting this raises
    AuditMisconfigured."""
    if not (settings.signing_key_pem or settings.signing_key_file):
        raise AuditMisconfigured("FLOWLINK_SIGNING_KEY is not set; checkpoints cannot be signed")
    from flowlink.relays import load_signing_key

    try:
        return load_signing_key(settings)
    except ServiceMisconfigured as exc:
        raise AuditMisconfigured(exc.detail) from exc


def key_id(public_key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    """First 16 hex digits of SHA-256 of the PEM public key: names the key in checkpoints."""
    return hashlib.sha256(relay_protocol.public_key_to_pem(public_key).encode()).hexdigest()[:16]


# --- snapshots ------------------------------------------------------------------------


def sign_snapshot(key: bytes, org_id: str, seq: int, head_hash: str, *, time: str | None = None) -> dict[str, Any]:
    body = {"type": WITNESS_TYPE, "v": 1, "org": org_id, "seq": seq, "chain_hash": head_hash, "time": time or utc_now_iso()}
    return {**body, "hmac": hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()}


def verify_snapshot(key: bytes, document: Mapping[str, Any], *, org_id: str | None = None) -> dict[str, Any]:
    """Return the snapshot if its HMAC and shape are right; raises WitnessError otherwise."""
    if not isinstance(document, Mapping) or document.get("type") != WITNESS_TYPE:
        raise WitnessError("not a witness snapshot")
    body = {name: value for name, value in document.items() if name != "hmac"}
    expected_fields = {"type", "v", "org", "seq", "chain_hash", "time"}
    if set(body) != expected_fields:
        raise WitnessError("witness snapshot has unexpected or missing fields")
    if not isinstance(body["seq"], int) or body["seq"] < 0 or not is_hash(body["chain_hash"]):
        raise WitnessError("witness snapshot has a malformed seq or chain_hash")
    if org_id is not None and body["org"] != org_id:
        raise WitnessError("witness snapshot belongs to another org")
    try:
        expected = hmac.new(key, canonical_json(body), hashlib.sha256).hexdigest()
    except CanonicalizationError as exc:
        raise WitnessError("witness snapshot is not exact JSON") from exc
    if not isinstance(document.get("hmac"), str) or not hmac.compare_digest(expected, document["hmac"]):
        raise WitnessError("witness snapshot HMAC does not verify (forged or altered)")
    return dict(document)


# --- checkpoints ----------------------------------------------------------------------


def sign_checkpoint(
    private_key: Ed25519PrivateKey, org_id: str, tree_size: int, root: bytes, *, time: str | None = None
) -> dict[str, Any]:
    body = {
        "type": CHECKPOINT_TYPE,
        "v": 1,
        "org": org_id,
        "tree_size": tree_size,
        "root": root.hex(),
        "time": time or utc_now_iso(),
        "key_id": key_id(private_key),
    }
    signature = private_key.sign(canonical_json(body))
    return {**body, "signature": base64.b64encode(signature).decode("ascii")}


def verify_checkpoint(
    public_key: Ed25519PublicKey, document: Mapping[str, Any], *, org_id: str | None = None
) -> dict[str, Any]:
    """Return the checkpoint if its signature and shape are right; raises CheckpointError."""
    if not isinstance(document, Mapping) or document.get("type") != CHECKPOINT_TYPE:
        raise CheckpointError("not a checkpoint")
    body = {name: value for name, value in document.items() if name != "signature"}
    if set(body) != {"type", "v", "org", "tree_size", "root", "time", "key_id"}:
        raise CheckpointError("checkpoint has unexpected or missing fields")
    if not isinstance(body["tree_size"], int) or body["tree_size"] < 0 or not is_hash(body["root"]):
        raise CheckpointError("checkpoint has a malformed tree_size or root")
    if org_id is not None and body["org"] != org_id:
        raise CheckpointError("checkpoint belongs to another org")
    try:
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
        public_key.verify(signature, canonical_json(body))
    except (InvalidSignature, ValueError, CanonicalizationError) as exc:
        raise CheckpointError("checkpoint signature does not verify (forged or altered)") from exc
    return dict(document)


# --- publishing and loading -----------------------------------------------------------


class WitnessStore:
    """Reads and writes witness documents in the witness bucket (client passed in or lazy)."""

    def __init__(self, settings: Settings, *, s3: Any = None):
        self.settings = settings
        self._s3 = s3

    @property
    def bucket(self) -> str:
        if not self.settings.witness_bucket:
            raise AuditMisconfigured("FLOWLINK_WITNESS_BUCKET is not set")
        return self.settings.witness_bucket

    @property
    def s3(self) -> Any:
        if self._s3 is None:
            self._s3 = boto3.client("s3", region_name=self.settings.region)
        return self._s3

    def put(self, key: str, document: Mapping[str, Any]) -> bool:
        """Write once; False if an object already exists under ``key`` (never overwritten)."""
        retain_until = datetime.now(UTC) + timedelta(days=RETENTION_DAYS)
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=json.dumps(document, sort_keys=True).encode(),
                ContentType="application/json",
                IfNoneMatch="*",
                ObjectLockMode="COMPLIANCE",
                ObjectLockRetainUntilDate=retain_until,
                ChecksumAlgorithm="SHA256",
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise
        return True

    def list_documents(self, prefix: str) -> list[tuple[str, Any]]:
        """(key, parsed JSON or None when unparsable) of every object under ``prefix``."""
        documents: list[tuple[str, Any]] = []
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                body = self.s3.get_object(Bucket=self.bucket, Key=entry["Key"])["Body"].read()
                try:
                    documents.append((entry["Key"], json.loads(body)))
                except ValueError:
                    documents.append((entry["Key"], None))
        return documents


def witness_key(org_id: str, seq: int) -> str:
    return f"witness/{org_id}/{seq:012d}.json"


def checkpoint_key(org_id: str, tree_size: int) -> str:
    return f"checkpoint/{org_id}/{tree_size:012d}.json"


def publish(
    audit_store: Any,
    org_id: str,
    *,
    witnesses: WitnessStore | None = None,
    http: httpx.Client | None = None,
) -> dict[str, Any] | None:
    """Publish a snapshot and a checkpoint of ``org_id``'s current head; None for an empty log.

    Raises AuditMisconfigured when the bucket, HMAC key or signing key is missing.
    Reads FLOWLINK_WITNESS_* and FLOWLINK_SIGNING_KEY through the store's settings.
    """
    settings = audit_store.settings
    witnesses = witnesses or WitnessStore(settings)
    head = audit_store.latest_head(org_id)
    if head.size == 0:
        return None
    now = utc_now_iso()
    snapshot = sign_snapshot(hmac_key(settings), org_id, head.size, head.chain_hash, time=now)
    checkpoint = sign_checkpoint(signing_key(settings), org_id, head.size, head.merkle_root, time=now)
    wrote_snapshot = witnesses.put(witness_key(org_id, head.size), snapshot)
    wrote_checkpoint = witnesses.put(checkpoint_key(org_id, head.size), checkpoint)
    if settings.witness_webhook_url and (wrote_snapshot or wrote_checkpoint):
        try:
            client = http or httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS)
            client.post(settings.witness_webhook_url, json={"witness": snapshot, "checkpoint": checkpoint})
        except httpx.HTTPError as exc:  # S3 holds the witness; the webhook is a courtesy copy
            logger.warning("witness webhook failed for org %s: %s", org_id, exc)
    return {"witness": snapshot, "checkpoint": checkpoint, "published": wrote_snapshot or wrote_checkpoint}


def publish_if_configured(audit_store: Any, org_id: str) -> None:
    """The every-1000-records trigger: publish when a bucket is configured, else do nothing."""
    if not audit_store.settings.witness_bucket:
        logger.debug("no witness bucket configured; milestone witness for org %s skipped", org_id)
        return
    publish(audit_store, org_id)


def load_anchors(
    settings: Settings, org_id: str, *, witnesses: WitnessStore | None = None
) -> tuple[list[Anchor], list[str]]:
    """Verified anchors of an org from the bucket, and descriptions of rejected (forged) ones.

    Without a bucket there are no anchors. Without the HMAC key snapshots cannot be checked
    and are skipped; without the signing key checkpoints likewise.
    """
    if not settings.witness_bucket:
        return [], []
    witnesses = witnesses or WitnessStore(settings)
    anchors: list[Anchor] = []
    rejected: list[str] = []
    key = hmac_key(settings) if settings.witness_hmac_key else None
    for name, document in witnesses.list_documents(f"witness/{org_id}/"):
        if key is None:
            break
        try:
            snapshot = verify_snapshot(key, document, org_id=org_id)
        except WitnessError as exc:
            rejected.append(f"{name}: {exc.detail}")
            continue
        anchors.append(Anchor(snapshot["seq"], f"the witness of {snapshot['time']}", chain_hash=snapshot["chain_hash"]))
    public_key = None
    if settings.signing_key_pem or settings.signing_key_file:
        public_key = signing_key(settings).public_key()
    for name, document in witnesses.list_documents(f"checkpoint/{org_id}/"):
        if public_key is None:
            break
        try:
            checkpoint = verify_checkpoint(public_key, document, org_id=org_id)
        except CheckpointError as exc:
            rejected.append(f"{name}: {exc.detail}")
            continue
        anchors.append(
            Anchor(checkpoint["tree_size"], f"the checkpoint of {checkpoint['time']}", merkle_root=checkpoint["root"])
        )
    return anchors, rejected


def list_org_ids(settings: Settings, *, dynamodb: Any = None) -> list[str]:
    """Every org id in the orgs table (a paginated Scan of the key only)."""
    client = dynamodb or boto3.client("dynamodb", region_name=settings.region)
    org_ids: list[str] = []
    kwargs: dict[str, Any] = {"TableName": settings.table("orgs"), "ProjectionExpression": "org_id"}
    while True:
        page = client.scan(**kwargs)
        org_ids.extend(item["org_id"]["S"] for item in page.get("Items", []) if "org_id" in item)
        if not page.get("LastEvaluatedKey"):
            return sorted(org_ids)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def publish_all(audit_store: Any, org_ids: list[str], *, witnesses: WitnessStore | None = None) -> dict[str, Any]:
    """Publish the head of each org (the scheduled run). An org whose head is already witnessed
    is left alone (write-once keys); one org's failure does not stop the others."""
    witnesses = witnesses or WitnessStore(audit_store.settings)
    published, unchanged, failed = [], [], []
    for org_id in org_ids:
        try:
            result = publish(audit_store, org_id, witnesses=witnesses)
        except AuditMisconfigured:
            raise
        except Exception:
            logger.exception("witness publishing failed for org %s", org_id)
            failed.append(org_id)
            continue
        if result is not None and result["published"]:
            published.append({"org": org_id, "seq": result["witness"]["seq"]})
        else:
            unchanged.append(org_id)
    return {"published": published, "unchanged": unchanged, "failed": failed}
