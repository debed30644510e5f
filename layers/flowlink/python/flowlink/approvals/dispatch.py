"""Dispatch of an approved hard_ask command: issue its grant and send it to the relay once.

Called by the approval state machine's dispatch task after humans approved. The grant is
stored on the command record, so a re-sync after a relay reconnect re-sends the same
command with the same grant; the relay still runs it at most once (by command id).
"""

from __future__ import annotations

import logging
from typing import Any

from flowlink import audit, relay_protocol
from flowlink.errors import NotFound
from flowlink.grants import issue_grant
from flowlink.relays import (
    ConnectionGone,
    RelayChannel,
    drift_refusal,
    load_signing_key,
    sign_command_envelope,
)
from flowlink.settings import Settings, get_settings
from flowlink.storage import Store, utc_now_iso

logger = logging.getLogger(__name__)


def dispatch_approved_command(
    *,
    org_id: str,
    command_id: str,
    approval_id: str,
    approvers: list[str],
    settings: Settings | None = None,
    store: Store | None = None,
    channel: RelayChannel | None = None,
) -> dict[str, Any]:
    """Move the command from ``pending_approval`` to ``dispatched`` and post it with its grant.

    Returns ``{"command_id", "status"}``; an offline relay fails the command (it is never
    queued silently). Raises NotFound when the command record is missing.
    """
    settings = settings or get_settings()
    store = store or Store(settings)
    record = store.get_command(org_id, command_id)
    if record is None:
        raise NotFound(f"command {command_id} of approval {approval_id} not found")
    grant = issue_grant(
        load_signing_key(settings),
        relay_id=record.relay_id,
        org_id=org_id,
        command_id=command_id,
        approval_id=approval_id,
        command=record.command or "",
        approvers=[a for a in approvers if a],
    )
    agent = store.get_agent(org_id, record.relay_id)
    now = utc_now_iso()
    audit_fields = {"command_id": command_id, "approval_id": approval_id, "relay_id": record.relay_id}
    channel = channel or RelayChannel(settings)
    refusal = "relay was removed" if agent is None else drift_refusal(store, settings, channel, agent)
    if refusal is not None:
        # Fail closed: a removed or flagged relay gets nothing, approved or not.
        store.transition_command(
            command_id, ["pending_approval"], "failed", error=f"{refusal}; not run", completed_at=now,
        )
        audit.append_event(org_id, "exec.failed", {**audit_fields, "error": refusal})
        return {"command_id": command_id, "status": "failed"}
    if agent.status != "online" or not agent.connection_id:
        store.transition_command(
            command_id, ["pending_approval"], "failed", error="agent offline when the approval arrived; not run",
            completed_at=now,
        )
        audit.append_event(org_id, "exec.failed", {**audit_fields, "error": "agent offline at dispatch"})
        return {"command_id": command_id, "status": "failed"}
    if not store.transition_command(command_id, ["pending_approval"], "dispatched", dispatched_at=now, grant=grant):
        # Someone else moved it (a duplicate dispatch task): never send twice.
        return {"command_id": command_id, "status": "already_dispatched"}
    record = store.get_command(org_id, command_id)
    envelope = sign_command_envelope(settings, record, env=record.pending_env or {}, store=store)
    try:
        channel.send(agent.connection_id, {"type": relay_protocol.TYPE_COMMAND, "envelope": envelope})
    except ConnectionGone:
        # Left in "dispatched": the relay's next sync re-sends it (same id, same grant).
        logger.warning("relay connection gone at dispatch; the command waits for re-sync",
                       extra={"command_id": command_id})
    audit.append_event(org_id, "exec.dispatched", {**audit_fields, "grant": "issued"})
    return {"command_id": command_id, "status": "dispatched"}
