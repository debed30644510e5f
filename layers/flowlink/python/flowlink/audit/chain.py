"""Layer 1 of audit integrity: the per-org SHA-256 hash chain, as pure functions.

An event is the JSON object ``{"v", "org_id", "seq", "ts", "kind", "actor", "fields"}``
written in canonical form (``flowlink.audit.canonical``); its chain hash is
``SHA-256(prev_hash_bytes ‖ canonical_event_bytes)`` where ``prev_hash_bytes`` are the 32
raw bytes of the previous event's chain hash (64 zero hex digits — 32 zero bytes — for
``seq`` 1). ``seq`` and ``org_id`` are inside the hashed bytes, so a record cannot be moved
to another position or another org without its hash changing. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flowlink.audit.canonical import CanonicalizationError, canonical_text
from flowlink.audit.errors import AuditInputError

EVENT_VERSION = 1
GENESIS_HASH = "0" * 64
# Kinds are dotted lower-case names (exec.requested, relay.connected, key.created, read ...).
KIND_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
MAX_KIND_LENGTH = 64
MAX_ORG_ID_LENGTH = 128
# DynamoDB items are limited to 400 KB; the event is stored once plus small indexes.
MAX_EVENT_BYTES = 300_000
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def utc_now_iso() -> str:
    """ISO-8601 UTC with microseconds, as docs/contracts.md §3 prescribes."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_org_id(org_id: Any) -> str:
    if not isinstance(org_id, str) or not org_id or len(org_id) > MAX_ORG_ID_LENGTH or not org_id.isprintable():
        raise AuditInputError("org_id must be a non-empty printable string of at most 128 characters")
    return org_id


def build_event(
    org_id: str, seq: int, ts: str, kind: str, fields: Mapping[str, Any], actor: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The event object that gets hashed; raises AuditInputError for values with no exact JSON form."""
    validate_org_id(org_id)
    if not isinstance(kind, str) or len(kind) > MAX_KIND_LENGTH or not KIND_PATTERN.match(kind):
        raise AuditInputError(f"kind must be a dotted lower-case name such as 'exec.requested', not {kind!r}")
    if not isinstance(fields, Mapping):
        raise AuditInputError("fields must be a JSON object")
    if actor is not None and not isinstance(actor, Mapping):
        raise AuditInputError("actor must be a JSON object or None")
    return {
        "v": EVENT_VERSION,
        "org_id": org_id,
        "seq": seq,
        "ts": ts,
        "kind": kind,
        "actor": dict(actor) if actor is not None else None,
        "fields": dict(fields),
    }


def event_text(event: Mapping[str, Any]) -> str:
    """Canonical text of an event; raises AuditInputError when it has no exact JSON form."""
    try:
        text = canonical_text(event)
    except CanonicalizationError as exc:
        raise AuditInputError(f"event is not exact JSON: {exc}") from exc
    if len(text.encode("utf-8")) > MAX_EVENT_BYTES:
        raise AuditInputError(f"event is larger than {MAX_EVENT_BYTES} bytes; store digests of large values")
    return text


def chain_hash(prev_hash: str, canonical_event: bytes) -> str:
    """``SHA-256(prev_hash_bytes ‖ canonical_event)`` as lower-case hex."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical_event).hexdigest()


def is_hash(value: Any) -> bool:
    return isinstance(value, str) and bool(_HEX64.match(value))
