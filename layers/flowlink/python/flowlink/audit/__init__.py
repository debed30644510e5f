"""Tamper-evident audit trail of FlowLink (RFC-002 layer 1 and the Merkle log).

The one write entry point is ``append_event`` (docs/contracts.md §4); everything else —
verification, witnesses, proofs, export, queries — reads what it wrote. See docs/audit.md
for the canonical form, the chain, witnesses, the Merkle log and the export format.
"""

from __future__ import annotations

import threading
from typing import Any

from flowlink.audit.errors import (
    AuditInputError,
    AuditMisconfigured,
    AuditQueryError,
    AuditWriteError,
    CheckpointError,
    ProofError,
    WitnessError,
)
from flowlink.audit.store import AuditStore
from flowlink.settings import Settings

__all__ = [
    "AuditInputError",
    "AuditMisconfigured",
    "AuditQueryError",
    "AuditStore",
    "AuditWriteError",
    "CheckpointError",
    "ProofError",
    "WitnessError",
    "append_event",
    "default_store",
    "query_events",
    "set_default_store",
    "store_for",
    "verify_chain",
]

_default_store: AuditStore | None = None
_default_lock = threading.Lock()


def default_store() -> AuditStore:
    """The process-wide store, built lazily from ``flowlink.settings.get_settings()``."""
    global _default_store
    if _default_store is None:
        with _default_lock:
            if _default_store is None:
                _default_store = AuditStore(on_append=_publish_milestone_witness)
    return _default_store


_stores: dict[tuple, AuditStore] = {}


def store_for(settings: Settings) -> AuditStore:
    """A cached store for a stack's settings (the gateway's runtime may use its own prefix)."""
    key = (
        settings.table_prefix,
        settings.region,
        settings.witness_bucket,
        settings.witness_hmac_key,
        settings.witness_webhook_url,
        settings.signing_key_pem,
        settings.signing_key_file,
    )
    with _default_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = AuditStore(settings=settings, on_append=_publish_milestone_witness)
        return store


def set_default_store(store: AuditStore | None) -> None:
    """Replace the process-wide store (tests and the local stack point it at their tables)."""
    global _default_store
    with _default_lock:
        _default_store = store


def append_event(org_id: str, kind: str, fields: dict, *, actor: dict | None = None) -> dict:
    """Append one event to ``org_id``'s hash chain and return the stored record.

    The record is ``{org_id, seq, ts, kind, actor, fields, prev_hash, chain_hash}``. Safe to
    call from many processes at once: appends are serialized by a DynamoDB transaction.
    ``fields`` must never carry plaintext secrets (store digests). Raises AuditInputError for
    values with no exact JSON form (bytes, NaN, huge ints, non-string keys) or a malformed
    kind/org id, and AuditWriteError when the chain cannot be extended safely. Reads
    FLOWLINK_TABLE_PREFIX / AWS_REGION / AWS_ENDPOINT_URL through ``flowlink.settings``.
    """
    return default_store().append(org_id, kind, fields, actor=actor)


def verify_chain(org_id: str, **kwargs: Any):
    """See ``flowlink.audit.integrity.verify_chain`` (returns an IntegrityReport)."""
    from flowlink.audit.integrity import verify_chain as _verify_chain

    return _verify_chain(org_id, **kwargs)


def query_events(org_id: str, **kwargs: Any) -> dict:
    """See ``flowlink.audit.query.query_events``."""
    from flowlink.audit.query import query_events as _query_events

    return _query_events(org_id, **kwargs)


def _publish_milestone_witness(record: dict[str, Any], store: AuditStore) -> None:
    """Every WITNESS_INTERVAL events, publish a witness of the head (if a bucket is configured)."""
    from flowlink.audit.store import WITNESS_INTERVAL

    if record["seq"] % WITNESS_INTERVAL:
        return
    from flowlink.audit import witness

    witness.publish_if_configured(store, record["org_id"])
