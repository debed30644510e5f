"""REST routes of the audit trail under /api/v1/audit, included by the gateway app.

Every route authenticates with ``flowlink.gateway.deps.require_key`` and is scoped to the
caller's org; domain errors (AuditQueryError → 400, ProofError → 422, AuditMisconfigured →
500) go through the app's single FlowLinkError handler. Work runs in a worker thread.

- ``GET /api/v1/audit/integrity`` → ``{intact, length, head_hash, checked_at, broken_at, reason, …}``
- ``GET /api/v1/audit/events`` → filtered, paginated events with chain status
- ``GET /api/v1/audit/proof/{seq}?tree_size=`` → Merkle inclusion proof
- ``GET /api/v1/audit/consistency?from=&to=`` → Merkle consistency proof
- ``GET /api/v1/audit/checkpoint`` → a signed checkpoint of the current head
- ``GET /api/v1/audit/export?format=jsonl|cef`` → the export (docs/audit.md) in ``content``
- ``GET /api/v1/audit/public-key`` → ``{public_key_pem, key_id}``: the key checkpoints are
  signed with, for ``flowlink audit verify --public-key`` (an auditor should compare its
  ``key_id`` with one obtained out of band: this server is the one being audited)
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request

from flowlink.audit import store_for
from flowlink.audit.errors import AuditQueryError
from flowlink.audit.integrity import verify_chain
from flowlink.audit.proofs import consistency_proof, current_checkpoint, inclusion_proof
from flowlink.audit.query import query_events
from flowlink.auth import SCOPE_ADMIN, SCOPE_APPROVER, AuthContext
from flowlink.gateway.deps import AnyKey, get_runtime, require_key

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])

# Events carry digests, never secrets or output: every key of the org may read them (the
ReviewerKey = Annotated[AuthContext, Depends(require_key(SCOPE_APPROVER, SCOPE_ADMIN))]


def _store(request: Request):
    return store_for(get_runtime(request).settings)


def _int(name: str, value: str | None, *, default: int | None = None) -> int | None:
    """Parse an integer query parameter ourselves so a bad one is a 400 with our reason."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise AuditQueryError(f"'{name}' must be an integer, not {value!r}") from exc
    if number < 0:
        raise AuditQueryError(f"'{name}' must not be negative")
    return number


@router.get("/integrity")
async def integrity(request: Request, auth: AnyKey) -> dict[str, Any]:
    store = _store(request)
    report = await anyio.to_thread.run_sync(lambda: verify_chain(auth.org_id, store=store))
    return report.to_dict()


@router.get("/events")
async def events(
    request: Request,
    auth: AnyKey,
    agent: str | None = None,
    key_id: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    until: str | None = None,
    text: str | None = None,
    page_token: str | None = None,
    limit: str | None = None,
    integrity: bool = False,
) -> dict[str, Any]:
    store = _store(request)
    size = _int("limit", limit, default=50)
    return await anyio.to_thread.run_sync(
        lambda: query_events(
            auth.org_id, agent=agent, key_id=key_id, decision=decision, since=since, until=until, text=text,
            page_token=page_token, limit=size, include_integrity=integrity, store=store,
        )
    )


@router.get("/proof/{seq}")
async def proof(request: Request, seq: str, auth: AnyKey, tree_size: str | None = None) -> dict[str, Any]:
    store = _store(request)
    leaf = _int("seq", seq)
    size = _int("tree_size", tree_size)
    return await anyio.to_thread.run_sync(lambda: inclusion_proof(store, auth.org_id, leaf, size))


@router.get("/consistency")
async def consistency(
    request: Request,
    auth: AnyKey,
    first: Annotated[str | None, Query(alias="from")] = None,
    second: Annotated[str | None, Query(alias="to")] = None,
) -> dict[str, Any]:
    if first is None:
        raise AuditQueryError("'from' is required")
    store = _store(request)
    old, new = _int("from", first), _int("to", second)
    if new is not None and old > new:
        raise AuditQueryError(f"'from' ({old}) is greater than 'to' ({new})")
    return await anyio.to_thread.run_sync(lambda: consistency_proof(store, auth.org_id, old, new))


@router.get("/checkpoint")
async def checkpoint(request: Request, auth: AnyKey) -> dict[str, Any]:
    store = _store(request)
    return await anyio.to_thread.run_sync(lambda: current_checkpoint(store, auth.org_id))


@router.get("/public-key")
async def public_key(request: Request, auth: AnyKey) -> dict[str, str]:
    from flowlink import relay_protocol
    from flowlink.audit import witness

    settings = get_runtime(request).settings
    key = await anyio.to_thread.run_sync(lambda: witness.signing_key(settings))
    return {"public_key_pem": relay_protocol.public_key_to_pem(key), "key_id": witness.key_id(key)}


@router.get("/export")
async def export(request: Request, auth: ReviewerKey, format: str = "jsonl") -> dict[str, Any]:
    """The org's log as one JSON-lines export (with checkpoints) or as CEF lines, in ``content``."""
    import io

    from flowlink.audit.export import export_cef, export_jsonl

    if format not in ("jsonl", "cef"):
        raise AuditQueryError("format must be 'jsonl' or 'cef'")
    store = _store(request)
    buffer = io.StringIO()
    writer = export_jsonl if format == "jsonl" else export_cef
    count = await anyio.to_thread.run_sync(lambda: writer(store, auth.org_id, buffer))
    return {"org_id": auth.org_id, "format": format, "records": count, "content": buffer.getvalue()}


def _mount_attestation() -> None:
    # The gateway includes this router only (flowlink.gateway.ROUTERS); attestation's routes
    # (RFC-002 layer 2) ride along under /api/v1/attestation.
    from flowlink.audit.attestation_api import router as attestation_router

    for route in attestation_router.routes:
        router.routes.append(route)


_mount_attestation()
