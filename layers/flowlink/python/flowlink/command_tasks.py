"""Exec commands followed as tasks: status, listing, the final outcome and cancellation.

An agent whose MCP client supports tasks follows an ``exec`` through a task instead of
polling ``history``. A task is a view of the command record, not state of its own: its id
is the command id, so a task lives as long as its record (DynamoDB), survives gateway
restarts, is the same on every Lambda instance, and an exec retried with its idempotency
key is the same task. Task statuses are those of MCP tasks: ``working`` while the command
waits for approval, is sent or runs; ``completed`` once it ran to its end (whatever its
exit code); ``failed`` when it did not (denied, refused by the relay, timed out, failed);
``cancelled`` when its requester withdrew it before approval.

Everything is scoped to the caller's org: another org's task id is "not found", exactly
like an id that never existed. Cancelling is possible only while the command waits for
approval: the record leaves ``pending_approval`` in one conditional write, and an approved
dispatch moves only records still in that state, so a cancelled command can never run. A
command already sent to its relay is not stopped: nothing can kill a running command yet.

Synchronous (boto3/pynamodb): async callers use ``anyio.to_thread.run_sync``. Never puts
command output into audit events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flowlink import audit, relay_protocol
from flowlink.auth import AuthContext
from flowlink.commands import CommandService, command_view
from flowlink.errors import CommandDenied, Conflict, NotFound
from flowlink.storage import TERMINAL_STATUSES, utc_now_iso

logger = logging.getLogger(__name__)

WORKING = "working"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
# Command status → task status; every other (non-terminal) command status is "working".
_TERMINAL_TASK_STATUS = {
    "completed": COMPLETED,
    "cancelled": CANCELLED,
    "denied": FAILED,
    "refused": FAILED,
    "timeout": FAILED,
    "failed": FAILED,
}
# Suggested polling intervals: humans decide in seconds to minutes, relays in milliseconds.
POLL_APPROVAL_MS = 5000
POLL_RUNNING_MS = 1000
LIST_DEFAULT_LIMIT = 50
MAX_TASK_ID_CHARS = 64


class TaskNotFound(NotFound):
    code = "task_not_found"


class TaskNotCancellable(Conflict):
    """The task is terminal, or its command is already with the relay (it cannot be stopped)."""

    code = "task_not_cancellable"


class TaskNotFinished(Conflict):
    """The bounded wait for a task's outcome ended before the command did."""

    code = "task_not_finished"


@dataclass(frozen=True)
class CommandTask:
    task_id: str
    status: str
    message: str
    created_at: str
    updated_at: str
    poll_interval_ms: int | None
    # The command view (flowlink.commands.command_view) the task describes.
    view: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.status != WORKING


def denial(view: dict[str, Any]) -> CommandDenied | None:
    """The error ``exec`` raises for this command when it was denied (as an idempotent retry does)."""
    if view["status"] != "denied":
        return None
    return CommandDenied(
        view.get("error") or "refused by Shield",
        extra={"command_id": view["command_id"], "verdict": (view.get("verdict") or {}).get("gateway")},
    )


def _message(record: Any, approval: Any | None) -> str:
    agent = f"agent {record.agent_name or record.relay_id!r} ({record.relay_id})"
    status = record.status
    if status == "pending_approval":
        approval_id = record.approval_id or "being requested"
        if approval is not None and approval.status != "pending":
            if approval.status == "approved":
                return f"approved (approval {approval_id}); being sent to {agent}"
            return f"approval {approval_id} {approval.status}; the command will not run"
        expires = f", expires {approval.expires_at}" if approval is not None else ""
        return (
            f"waiting for human approval (approval {approval_id}{expires}); it has not run. Approvers decide in "
            f"Telegram, with the approve tool, or `flowlink approve {approval_id}`"
        )
    if status in ("queued", "dispatched"):
        return f"sent to {agent}, not yet acknowledged"
    if status == "running":
        return f"running on {agent}"
    if status == "completed":
        code = int(record.exit_code) if record.exit_code is not None else None
        return f"completed on {agent} with exit code {code}"
    if status == "refused":
        reasons = list((record.relay_verdict or {}).get("reasons") or []) or [record.error or "no reason given"]
        return "refused by the relay: " + "; ".join(reasons)
    return record.error or f"{status} on {agent}"


class CommandTasks:
    """Task views of an org's exec commands, over the exec service's store and approvals."""

    def __init__(self, commands: CommandService):
        self.commands = commands
        self.store = commands.store

    def _record(self, auth: AuthContext, task_id: Any) -> Any:
        record = None
        if isinstance(task_id, str) and 0 < len(task_id) <= MAX_TASK_ID_CHARS:
            record = self.store.get_command(auth.org_id, task_id)
        if record is None or record.op != relay_protocol.OP_EXEC:
            raise TaskNotFound(f"no task {task_id!r} in this org")
        return record

    def _task(self, record: Any, *, with_approval: bool) -> CommandTask:
        approval = None
        if with_approval and record.status == "pending_approval" and record.approval_id:
            try:
                approval = self.commands.approvals.get(record.org_id, record.approval_id)
            except NotFound:
                approval = None
        status = _TERMINAL_TASK_STATUS.get(record.status, WORKING)
        poll = None
        if status == WORKING:
            poll = POLL_APPROVAL_MS if record.status == "pending_approval" else POLL_RUNNING_MS
        return CommandTask(
            task_id=record.command_id,
            status=status,
            message=_message(record, approval),
            created_at=record.created_at,
            updated_at=record.updated_at or record.created_at,
            poll_interval_ms=poll,
            view=command_view(record),
        )

    def get(self, auth: AuthContext, task_id: str) -> CommandTask:
        """The task of one of the org's exec commands. Raises TaskNotFound."""
        return self._task(self._record(auth, task_id), with_approval=True)

    def list(
        self, auth: AuthContext, *, cursor: str | None = None, limit: int = LIST_DEFAULT_LIMIT
    ) -> tuple[list[CommandTask], str | None]:
        """The org's exec commands as tasks, newest first, and the cursor of the next page.

        Raises InvalidInput for a cursor this org was not given.
        """
        records, next_cursor = self.store.org_commands(
            auth.org_id, relay_protocol.OP_EXEC, limit=limit, page_token=cursor
        )
        # Cheap listing: no approval lookups (tasks/get shows the approval's expiry).
        return [self._task(r, with_approval=False) for r in records], next_cursor

    def outcome(self, auth: AuthContext, task_id: str, *, wait_seconds: float) -> dict[str, Any]:
        """The final command view of a task, waiting up to ``wait_seconds`` for it.

        Raises TaskNotFound, and TaskNotFinished when the command is still waiting for
        approval, sent or running when the wait ends.
        """
        record = self._record(auth, task_id)
        if record.status in TERMINAL_STATUSES:
            return command_view(record)
        view = self.commands.wait(auth.org_id, record, wait_seconds)
        if view["status"] in TERMINAL_STATUSES:
            return view
        task = self.get(auth, task_id)
        raise TaskNotFinished(
            f"task {task_id} is not finished after waiting {wait_seconds:g} s: {task.message}",
            extra={"task_id": task_id, "status": task.status, "poll_interval_ms": task.poll_interval_ms},
        )

    def cancel(self, auth: AuthContext, task_id: str) -> CommandTask:
        """Withdraw a command still waiting for approval, so it never runs; returns the task.

        Raises TaskNotFound, and TaskNotCancellable when the task is terminal or its command
        is already with the relay.
        """
        record = self._record(auth, task_id)
        if record.status != "pending_approval":
            raise self._not_cancellable(record)
        who = auth.name or auth.key_id
        moved = self.store.transition_command(
            record.command_id,
            ["pending_approval"],
            "cancelled",
            remove=["pending_env"],
            error=f"cancelled by {who} before approval; not run",
            completed_at=utc_now_iso(),
        )
        if not moved:
            # An approved dispatch (or the approval's outcome) moved it first.
            raise self._not_cancellable(self._record(auth, task_id))
        audit.append_event(
            auth.org_id,
            "exec.cancelled",
            {
                "command_id": record.command_id,
                "approval_id": record.approval_id,
                "relay_id": record.relay_id,
                "key_id": auth.key_id,
                "requested_by": auth.name,
            },
            actor=auth.actor(),
        )
        if record.approval_id:
            try:
                self.commands.approvals.cancel(
                    auth.org_id, record.approval_id, requester=who, identity=f"key:{auth.key_id}"
                )
            except Exception:
                # The command can no longer run whatever happens here; an approval left
                # pending only closes at its timeout, and approving it dispatches nothing.
                logger.exception("could not close the approval of a cancelled command",
                                 extra={"command_id": record.command_id, "approval_id": record.approval_id})
        return self.get(auth, task_id)

    def _not_cancellable(self, record: Any) -> TaskNotCancellable:
        task = self._task(record, with_approval=False)
        if task.terminal:
            return TaskNotCancellable(
                f"Cannot cancel task {task.task_id}: already in terminal status '{task.status}' ({task.message})",
                extra={"task_id": task.task_id, "status": task.status},
            )
        return TaskNotCancellable(
            f"Cannot cancel task {task.task_id}: the command was already sent to its agent ({task.message}); "
            f"FlowLink does not stop a running command: it ends by itself or at its timeout "
            f"({float(record.timeout):g} s)",
            extra={"task_id": task.task_id, "status": task.status},
        )
