"""Shield level 5 for hard_ask commands: approval requests, human decisions and their outcome.

The life of an approval:

1. ``request`` stores a pending approval and starts a named execution of the approval
   state machine (statemachines/approval.asl.json).
2. The machine's callback task invokes ``on_notify`` with its task token: the token is
   stored here (server-side only) and approvers are notified (Telegram buttons).
3. Humans decide through ``decide`` (Telegram webhook, REST, MCP ``approve``, CLI). When
   enough approvals are in, ``SendTaskSuccess`` resumes the machine; one denial sends
   ``SendTaskFailure``. Every decision is conditional on the approval still pending and
   the approver not having voted, so double presses, replays and late answers change
   nothing. The requester may instead ``cancel`` a pending approval (the command's MCP
   task was cancelled); that also ends the machine with ``SendTaskFailure``.
4. The machine then runs ``dispatch`` (approved: the command goes to the relay with an
   approval grant) or ``record_outcome`` (denied, timed out, failed: it never runs).

Every step is audited. Errors reaching humans never include the task token.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import DoesNotExist, UpdateError

from flowlink import audit
from flowlink.approvals.models import (
    APPROVED,
    CANCELLED,
    DENIED,
    FAILED,
    FINAL_STATES,
    PENDING,
    TIMED_OUT,
    approval_model,
)
from flowlink.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from flowlink.org_settings import notification_channels
from flowlink.relay_protocol import command_sha256
from flowlink.settings import Settings
from flowlink.telegram import (
    TelegramClient,
    TelegramError,
    approval_keyboard,
    format_approval_message,
    format_notice_message,
)

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 600
MIN_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 24 * 3600
DECIDING_SCOPES = frozenset({"approver", "admin"})
SETTLE_WAIT_SECONDS = 2.0  # how long a losing decision waits for the winner to close the approval
# Outcomes the state machine's recorder task reports.
RECORDABLE_OUTCOMES = {"denied": DENIED, "timed_out": TIMED_OUT, "failed": FAILED}


# outcome_detail["error"] of an approval closed because its relay was removed (contracts §5).
RELAY_REMOVED = "relay removed"


class ApprovalNotFound(NotFound):
    code = "approval_not_found"


class ApprovalClosed(Conflict):
    """A decision arrived for an approval that is no longer pending (decided or expired)."""

    code = "approval_closed"


def _now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _approval_count(item: Any) -> int:
    return sum(1 for d in item.decisions or [] if d.get("decision") == "approve")


def _relay_removed(item: Any) -> bool:
    return item.status == FAILED and (item.outcome_detail or {}).get("error") == RELAY_REMOVED


def _encode_page_token(created_at: str, approval_id: str, status: str | None) -> str:
    raw = json.dumps({"c": created_at, "a": approval_id, "s": status}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_page_token(token: str, status: str | None) -> tuple[str, str]:
    """(created_at, approval_id) of the last approval of the previous page; InvalidInput
    for anything that is not a token this service issued for the same status filter."""
    try:
        if not isinstance(token, str) or len(token) > 512:
            raise ValueError("too long")
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        created_at, approval_id = data["c"], data["a"]
        if not (isinstance(created_at, str) and isinstance(approval_id, str) and approval_id.startswith("apr_")):
            raise ValueError("bad fields")
        _parse_iso(created_at)
    except (ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise InvalidInput("page_token is malformed: pass the next_page_token of a previous page") from None
    if data.get("s") != status:
        raise InvalidInput("page_token belongs to another query (the status filter differs)")
    return created_at, approval_id


def _parse_iso(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Approver:
    """Who is deciding: ``identity`` is unique per person/key (``key:<id>``, ``telegram:<id>``)."""

    identity: str
    display: str
    channel: str  # "mcp" | "rest" | "cli" | "telegram" | "dashboard"


@dataclass(frozen=True)
class DecisionResult:
    approval_id: str
    status: str
    message: str
    recorded: bool

    def to_dict(self) -> dict[str, Any]:
        return {"approval_id": self.approval_id, "status": self.status, "message": self.message, "recorded": self.recorded}


@dataclass(frozen=True)
class OrgApprovalSettings:
    approvers: list[dict[str, Any]]
    needed: int
    timeout_seconds: int
    channels: list[str]

    @classmethod
    def from_org(cls, org: Any) -> OrgApprovalSettings:
        approvers = [dict(a) for a in (getattr(org, "approvers", None) or []) if isinstance(a, dict)]
        needed = int(getattr(org, "approvals_required", None) or 1)
        timeout = int(getattr(org, "approval_timeout_seconds", None) or DEFAULT_TIMEOUT_SECONDS)
        channels = notification_channels(org)
        return cls(approvers, max(1, min(needed, 2)), max(MIN_TIMEOUT_SECONDS, min(timeout, MAX_TIMEOUT_SECONDS)), channels)

    def telegram_ids(self) -> list[int]:
        ids = []
        for approver in self.approvers:
            value = approver.get("telegram_user_id")
            if isinstance(value, (int, float)) or (isinstance(value, str) and value.lstrip("-").isdigit()):
                ids.append(int(value))
        return ids


def approver_for_key(auth: Any, channel: str) -> Approver:
    """The approver behind an API key; an agent key can never decide."""
    if getattr(auth, "scope", None) not in DECIDING_SCOPES:
        raise PermissionDenied(
            "this key is an agent key: agents cannot approve or deny commands. "
            "Use an approver or admin key (a human's), e.g. from Telegram, the CLI or the dashboard."
        )
    return Approver(identity=f"key:{auth.key_id}", display=getattr(auth, "name", None) or auth.key_id, channel=channel)


class ApprovalService:
    """Approval workflow over the approvals table, Step Functions and the notifier channels.

    Clients are injected for tests; otherwise built lazily from boto3's defaults, which
    honour ``AWS_ENDPOINT_URL`` (moto, LocalStack or AWS).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Any = None,
        sfn_client: Any = None,
        telegram: TelegramClient | None = None,
        dispatcher: Callable[..., dict[str, Any]] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.model = approval_model(settings)
        self._store = store
        self._sfn = sfn_client
        self._telegram = telegram
        self._dispatcher = dispatcher
        self._clock = clock

    # -- collaborators, built lazily --------------------------------------------------

    @property
    def store(self) -> Any:
        if self._store is None:
            from flowlink.storage import Store

            self._store = Store(self.settings)
        return self._store

    @property
    def sfn(self) -> Any:
        if self._sfn is None:
            import boto3

            self._sfn = boto3.client("stepfunctions", region_name=self.settings.region)
        return self._sfn

    @property
    def telegram(self) -> TelegramClient | None:
        if self._telegram is None and self.settings.telegram_bot_token:
            self._telegram = TelegramClient(self.settings.telegram_api_base, self.settings.telegram_bot_token)
        return self._telegram

    # -- reading ----------------------------------------------------------------------

    def find(self, approval_id: str) -> Any | None:
        """The approval with this id in any org, or None. Only for channels (the Telegram
        webhook) that learn the org from the approval itself and then check the presser."""
        if not isinstance(approval_id, str) or not approval_id.startswith("apr_") or len(approval_id) > 64:
            return None
        try:
            return self.model.get(approval_id, consistent_read=True)
        except DoesNotExist:
            return None

    def get(self, org_id: str, approval_id: str) -> Any:
        """The approval, or ApprovalNotFound — also for another org's approval id."""
        item = self.find(approval_id)
        if item is None or item.org_id != org_id:
            raise ApprovalNotFound(f"no approval {approval_id!r} in this org")
        return item

    def list(self, org_id: str, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.page(org_id, status=status, limit=limit)["approvals"]

    def page(
        self, org_id: str, *, status: str | None = None, limit: int = 50, page_token: str | None = None
    ) -> dict[str, Any]:
        """The org's approvals, newest first: ``{approvals, next_page_token}``; pass
        ``next_page_token`` back as ``page_token`` (with the same status) for older ones."""
        if status is not None and status not in FINAL_STATES | {PENDING}:
            raise InvalidInput(f"status must be one of {sorted(FINAL_STATES | {PENDING})}")
        if not 1 <= limit <= 500:
            raise InvalidInput("limit must be between 1 and 500")
        start = None
        if page_token is not None:
            created_at, approval_id = _decode_page_token(page_token, status)
            start = {"org_id": {"S": org_id}, "created_at": {"S": created_at}, "approval_id": {"S": approval_id}}
        condition = self.model.status == status if status else None
        items = self.model.by_org.query(
            org_id, filter_condition=condition, scan_index_forward=False, last_evaluated_key=start
        )
        out, last, more = [], None, False
        for item in items:
            if len(out) >= limit:
                more = True
                break
            out.append(self.public_view(self._expire_if_due(item)))
            last = item
        if status:
            out = [a for a in out if a["status"] == status]
        token = _encode_page_token(last.created_at, last.approval_id, status) if more and last is not None else None
        return {"approvals": out, "next_page_token": token}

    def public_view(self, item: Any) -> dict[str, Any]:
        """What callers may see of an approval: everything but the task token."""
        return {
            "approval_id": item.approval_id,
            "status": item.status,
            "command_id": item.command_id,
            "agent": item.agent_name or item.relay_id,
            "relay_id": item.relay_id,
            "command": item.command,
            "score": int(item.score or 0),
            "reasons": list(item.reasons or []),
            "needed": int(item.needed or 1),
            "decisions": list(item.decisions or []),
            "created_at": item.created_at,
            "expires_at": item.expires_at,
            "decided_at": item.decided_at,
            "dispatched_at": item.dispatched_at,
            "notify_errors": list(item.notify_errors or []),
        }

    def _expire_if_due(self, item: Any) -> Any:
        # The state machine's timeout is authoritative; this only keeps a listing honest
        # while its recorder task has not run yet. Stored state is not changed here.
        if item.status == PENDING and _parse_iso(item.expires_at) <= self._clock():
            item.status = TIMED_OUT
        return item

    # -- 1. request -------------------------------------------------------------------

    def request(
        self,
        *,
        org: Any,
        command: Any,
        verdict: dict[str, Any],
        requested_by: str | None,
        hostname: str | None = None,
    ) -> Any:
        """Create a pending approval for a stored command record and start the state machine."""
        if not self.settings.approval_state_machine_arn:
            from flowlink.errors import ServiceMisconfigured

            raise ServiceMisconfigured("no approval state machine configured (FLOWLINK_APPROVAL_STATE_MACHINE_ARN)")
        config = OrgApprovalSettings.from_org(org)
        now = self._clock()
        approval_id = "apr_" + secrets.token_hex(12)
        item = self.model(
            approval_id=approval_id,
            org_id=command.org_id,
            created_at=_now_iso(now),
            command_id=command.command_id,
            relay_id=command.relay_id,
            agent_name=getattr(command, "agent_name", None),
            # The host the command would run on, shown to approvers (Telegram, dashboard).
            hostname=hostname,
            command=command.command or "",
            command_sha256=command_sha256(command.command or ""),
            score=int(verdict.get("score", 0)),
            reasons=[str(r) for r in verdict.get("reasons", [])][:10],
            requested_by=requested_by,
            status=PENDING,
            needed=config.needed,
            decisions=[],
            decided_by=[],
            seen_updates=[],
            timeout_seconds=config.timeout_seconds,
            expires_at=_now_iso(now + config.timeout_seconds),
            messages=[],
            notify_errors=[],
        )
        item.save(condition=self.model.approval_id.does_not_exist())
        audit.append_event(
            command.org_id,
            "approval.requested",
            {
                "approval_id": approval_id,
                "command_id": command.command_id,
                "relay_id": command.relay_id,
                "command_sha256": item.command_sha256,
                "score": item.score,
                "needed": config.needed,
                "expires_at": item.expires_at,
            },
            actor={"key_id": requested_by} if requested_by else None,
        )
        try:
            # The execution is named after the approval so a retried request can never
            # start a second machine for the same approval.
            started = self.sfn.start_execution(
                stateMachineArn=self.settings.approval_state_machine_arn,
                name=approval_id,
                input=json.dumps(
                    {"approval_id": approval_id, "org_id": command.org_id, "timeout_seconds": config.timeout_seconds}
                ),
            )
        except ClientError as exc:
            self._finish(item, FAILED, {"error": "state machine could not start", "code": exc.response["Error"]["Code"]})
            raise
        item.update(actions=[self.model.execution_arn.set(started["executionArn"])])
        return item

    # -- 2. notify (callback task) ----------------------------------------------------

    def on_notify(self, *, approval_id: str, org_id: str, task_token: str) -> dict[str, Any]:
        """Store the task token and notify approvers. Never raises for a notifier failure:
        the machine keeps waiting and times out into a denial, and the failure is recorded."""
        item = self.get(org_id, approval_id)
        try:
            item.update(
                actions=[self.model.task_token.set(task_token)],
                condition=self.model.status == PENDING,
            )
        except UpdateError:
            # Already decided before the token arrived (a very fast REST decision): this
            # task is the only one left that can resume the machine.
            item.refresh(consistent_read=True)
            self._resume_machine(item, task_token)
            return {"approval_id": approval_id, "status": item.status}
        org = self.store.get_org(org_id)
        config = OrgApprovalSettings.from_org(org)
        sent, errors = self._telegram_approvers(
            config,
            format_approval_message(
                agent=item.agent_name or item.relay_id,
                host=item.hostname,
                command=item.command,
                score=int(item.score or 0),
                reasons=list(item.reasons or []),
                expires_at=item.expires_at,
                approval_id=approval_id,
                needed=int(item.needed or 1),
            ),
            reply_markup=approval_keyboard(approval_id),
        )
        actions = []
        if sent:
            actions.append(self.model.messages.set(sent))
        if errors:
            actions.append(self.model.notify_errors.set(errors))
            logger.warning("approval notification failed", extra={"approval_id": approval_id, "errors": errors})
        if actions:
            item.update(actions=actions)
        audit.append_event(
            org_id,
            "approval.notified" if not errors else "approval.notification_failed",
            {"approval_id": approval_id, "channels": config.channels, "sent": len(sent), "errors": errors},
        )
        return {"approval_id": approval_id, "notified": len(sent), "errors": errors}

    # -- soft_ask notices ------------------------------------------------------------

    def notify_soft_ask(
        self, org_id: str, *, command_id: str, agent: str, host: str | None, command: str, verdict: dict[str, Any]
    ) -> dict[str, Any]:
        """soft_ask: tell the org's approvers that a command runs without approval (no buttons).

        Never raises: the command runs whatever happens here. The outcome is audited
        (``exec.notified`` or ``exec.notification_failed``) when anyone was to be told.
        """
        try:
            config = OrgApprovalSettings.from_org(self.store.get_org(org_id))
        except Exception as exc:  # a notice must never fail the command
            logger.exception("soft_ask notice: org settings unreadable", extra={"org_id": org_id})
            config, sent, errors = None, [], [f"org settings unreadable: {type(exc).__name__}"]
        else:
            sent, errors = self._telegram_approvers(
                config,
                format_notice_message(
                    agent=agent, host=host, command=command, score=int(verdict.get("score") or 0),
                    reasons=list(verdict.get("reasons") or []), command_id=command_id,
                ),
            )
            if not config.telegram_ids() or "telegram" not in config.channels:
                return {"command_id": command_id, "notified": 0, "errors": []}
        if errors:
            logger.warning("soft_ask notice failed", extra={"command_id": command_id, "errors": errors})
        audit.append_event(
            org_id,
            "exec.notified" if not errors else "exec.notification_failed",
            {"command_id": command_id, "channels": config.channels if config else [], "sent": len(sent),
             "errors": errors},
        )
        return {"command_id": command_id, "notified": len(sent), "errors": errors}

    def _telegram_approvers(
        self, config: OrgApprovalSettings, text: str, *, reply_markup: dict | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Send ``text`` to the org's Telegram approvers when the channel is on: ([{chat_id,
        message_id}] sent, [error text]). A send that fails is reported, never raised."""
        sent: list[dict[str, Any]] = []
        errors: list[str] = []
        if "telegram" not in config.channels or not config.telegram_ids():
            return sent, errors
        client = self.telegram
        if client is None:
            return sent, ["telegram: no bot token configured"]
        for chat_id in config.telegram_ids():
            try:
                message = client.send_message(chat_id, text, reply_markup=reply_markup)
                sent.append({"chat_id": chat_id, "message_id": message.get("message_id")})
            except TelegramError as exc:
                errors.append(f"telegram chat {chat_id}: {exc}")
        return sent, errors

    # -- 3. decide --------------------------------------------------------------------

    def authorize_telegram_user(self, org_id: str, telegram_user_id: int, username: str | None) -> Approver | None:
        org = self.store.get_org(org_id)
        config = OrgApprovalSettings.from_org(org)
        if telegram_user_id not in config.telegram_ids():
            return None
        display = next(
            (str(a.get("name")) for a in config.approvers if str(a.get("telegram_user_id")) == str(telegram_user_id) and a.get("name")),
            username or str(telegram_user_id),
        )
        return Approver(identity=f"telegram:{telegram_user_id}", display=display, channel="telegram")

    def decide(
        self,
        org_id: str,
        approval_id: str,
        decision: str,
        approver: Approver,
        *,
        comment: str | None = None,
        update_id: int | None = None,
    ) -> DecisionResult:
        """Record one human decision. Harmless when repeated, replayed or late."""
        if decision not in ("approve", "deny"):
            raise InvalidInput("decision must be 'approve' or 'deny'")
        if comment is not None and len(comment) > 1000:
            raise InvalidInput("comment longer than 1000 characters")
        item = self.get(org_id, approval_id)
        if update_id is not None and update_id in (item.seen_updates or []):
            return DecisionResult(approval_id, item.status, "this button press was already handled", False)
        if item.status == PENDING and self.store.get_agent(org_id, item.relay_id) is None:
            # Its relay was removed (and the removal did not close this one yet): nothing can run.
            self.close_for_removed_relay(item)
        if _relay_removed(item):
            return DecisionResult(
                approval_id, item.status, "the relay was removed: the command will not run; nothing changed", False
            )
        if item.status != PENDING:
            return DecisionResult(approval_id, item.status, f"approval already {item.status}; nothing changed", False)
        now = self._clock()
        if _parse_iso(item.expires_at) <= now:
            return DecisionResult(approval_id, TIMED_OUT, "approval expired; the command will not run", False)
        entry = {
            "approver": approver.display,
            "identity": approver.identity,
            "channel": approver.channel,
            "decision": decision,
            "at": _now_iso(now),
        }
        if comment:
            entry["comment"] = comment
        actions = [
            self.model.decisions.set(self.model.decisions.append([entry])),
            self.model.decided_by.set(self.model.decided_by.append([approver.identity])),
        ]
        if update_id is not None:
            actions.append(self.model.seen_updates.set(self.model.seen_updates.append([update_id])))
        try:
            item.update(
                actions=actions,
                condition=(self.model.status == PENDING) & ~self.model.decided_by.contains(approver.identity),
            )
        except UpdateError:
            self._refresh_settled(item)
            if approver.identity in (item.decided_by or []):
                return DecisionResult(approval_id, item.status, "you already decided on this approval", False)
            return DecisionResult(approval_id, item.status, f"approval already {item.status}; nothing changed", False)
        audit.append_event(
            org_id,
            "approval.decided",
            {"approval_id": approval_id, "decision": decision, "channel": approver.channel, "comment": comment},
            actor={"approver": approver.display, "identity": approver.identity, "channel": approver.channel},
        )
        approvals = _approval_count(item)
        if decision == "approve" and approvals < int(item.needed or 1):
            return DecisionResult(
                approval_id, PENDING, f"approval recorded ({approvals}/{int(item.needed)}); waiting for another approver", True
            )
        final = APPROVED if decision == "approve" else DENIED
        if not self._close(item, final, now):
            item.refresh(consistent_read=True)
            return DecisionResult(approval_id, item.status, f"approval already {item.status}; nothing changed", True)
        if item.task_token:
            self._resume_machine(item, item.task_token)
        verb = "approved: the command will run once" if final == APPROVED else "denied: the command will not run"
        return DecisionResult(approval_id, final, verb, True)

    def cancel(self, org_id: str, approval_id: str, *, requester: str, identity: str) -> DecisionResult:
        """Withdraw a pending approval for its requester; harmless when no longer pending.

        The caller has already moved the command out of ``pending_approval``, which is what
        guarantees it never runs (dispatch moves it only from that state); closing the
        approval tells approvers and ends the state machine early. Raises ApprovalNotFound.
        """
        item = self.get(org_id, approval_id)
        now = self._clock()
        entry = {"approver": requester, "identity": identity, "channel": "mcp", "decision": "cancel", "at": _now_iso(now)}
        try:
            item.update(
                actions=[
                    self.model.status.set(CANCELLED),
                    self.model.decided_at.set(_now_iso(now)),
                    self.model.decisions.set(self.model.decisions.append([entry])),
                ],
                condition=self.model.status == PENDING,
            )
        except UpdateError:
            item.refresh(consistent_read=True)
            return DecisionResult(approval_id, item.status, f"approval already {item.status}; nothing changed", False)
        # Read back so the task token stored concurrently by on_notify is seen.
        item.refresh(consistent_read=True)
        if item.task_token:
            self._resume_machine(item, item.task_token)
        return DecisionResult(approval_id, CANCELLED, "cancelled by the requester: the command will not run", True)

    def close_for_removed_relay(self, item: Any) -> bool:
        """Close a pending approval whose relay was removed (``failed``, "relay removed") and
        end its state machine; False when it was no longer pending. The caller has already
        failed its command, so it can never be dispatched."""
        return self._finish(item, FAILED, {"error": RELAY_REMOVED})

    def _finish(self, item: Any, status: str, detail: dict[str, Any]) -> bool:
        """Move pending → ``status`` with ``detail`` and resume the machine; False if not pending."""
        if not self._close(item, status, self._clock(), detail=detail):
            item.refresh(consistent_read=True)
            return False
        # Without a task token yet, on_notify finds the approval closed and ends the machine itself.
        if item.task_token:
            self._resume_machine(item, item.task_token)
        return True

    def _refresh_settled(self, item: Any) -> None:
        """Re-read ``item`` (strongly consistent) for a decision that lost a race.

        The winner records its decision and closes the approval in two writes; when the
        recorded decisions already settle it (a deny, or enough approvals) but the status
        still says pending, the winner is between them, so wait briefly for the close
        rather than report a stale "pending".
        """
        deadline = time.monotonic() + SETTLE_WAIT_SECONDS
        while True:
            item.refresh(consistent_read=True)
            settled = _approval_count(item) >= int(item.needed or 1) or any(
                d.get("decision") == "deny" for d in item.decisions or []
            )
            if item.status != PENDING or not settled or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def _close(self, item: Any, status: str, now: float, *, detail: dict[str, Any] | None = None) -> bool:
        """Move pending → final exactly once (with ``outcome_detail`` when given); False if
        someone else closed it first."""
        actions = [self.model.status.set(status), self.model.decided_at.set(_now_iso(now))]
        if detail is not None:
            actions.append(self.model.outcome_detail.set(detail))
        try:
            item.update(actions=actions, condition=self.model.status == PENDING)
        except UpdateError:
            return False
        # Read back so the task token stored concurrently by on_notify is seen.
        item.refresh(consistent_read=True)
        return True

    def _resume_machine(self, item: Any, task_token: str) -> None:
        try:
            if item.status == APPROVED:
                self.sfn.send_task_success(
                    taskToken=task_token,
                    output=json.dumps({"outcome": "approved", "approvers": [d.get("approver") for d in item.decisions or []]}),
                )
            elif item.status in (DENIED, FAILED, CANCELLED):
                self.sfn.send_task_failure(taskToken=task_token, error="ApprovalDenied", cause=f"approval {item.status}")
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            # InvalidToken / TaskTimedOut: the machine already moved on (timeout); the
            # command cannot run, which is the safe outcome. Record it, never retry.
            logger.warning("state machine did not accept the decision", extra={"approval_id": item.approval_id, "code": code})
            audit.append_event(item.org_id, "approval.resume_rejected", {"approval_id": item.approval_id, "code": code})

    # -- 4. outcome (state machine tasks) ---------------------------------------------

    def dispatch(self, *, approval_id: str, org_id: str) -> dict[str, Any]:
        """Send an approved command to its relay with an approval grant, at most once."""
        item = self.get(org_id, approval_id)
        if item.status != APPROVED:
            raise Conflict(f"approval {approval_id} is {item.status}, not approved")
        try:
            item.update(
                actions=[self.model.dispatched_at.set(_now_iso(self._clock()))],
                condition=self.model.dispatched_at.does_not_exist(),
            )
        except UpdateError:
            return {"approval_id": approval_id, "dispatched": False, "reason": "already dispatched"}
        if self._dispatcher is None:
            from flowlink.errors import ServiceMisconfigured

            raise ServiceMisconfigured("no command dispatcher configured for approvals")
        approvers = [d.get("approver") for d in item.decisions or [] if d.get("decision") == "approve"]
        result = self._dispatcher(
            org_id=org_id,
            command_id=item.command_id,
            approval_id=approval_id,
            approvers=approvers,
        )
        audit.append_event(
            org_id,
            "approval.grant_issued",
            {"approval_id": approval_id, "command_id": item.command_id, "relay_id": item.relay_id, "approvers": approvers},
        )
        self._edit_messages(item, f"✅ Approved by {', '.join(a for a in approvers if a)} — dispatched")
        return {"approval_id": approval_id, "dispatched": True, **(result or {})}

    def record_outcome(self, *, approval_id: str, org_id: str, outcome: str, error: Any = None) -> dict[str, Any]:
        """Record a denial, timeout or failure reported by the state machine; the command never runs."""
        status = RECORDABLE_OUTCOMES.get(outcome)
        if status is None:
            raise InvalidInput(f"unknown outcome {outcome!r}")
        item = self.get(org_id, approval_id)
        if item.status == PENDING:
            self._close(item, status, self._clock())
            item.refresh(consistent_read=True)
        # The approval's own final state when it has one: a cancelled approval reaches the
        # recorder as a denial (the machine only knows ApprovalDenied).
        self.store_command_outcome(item, item.status if item.status != PENDING else status)
        details = {"approval_id": approval_id, "command_id": item.command_id, "outcome": item.status}
        if error is not None:
            details["error"] = error if isinstance(error, (str, dict)) else str(error)
        audit.append_event(org_id, f"approval.{item.status}", details)
        label = {
            DENIED: "⛔ Denied",
            TIMED_OUT: "⌛ Timed out — not run",
            FAILED: "⚠️ Failed — not run",
            CANCELLED: "🚫 Cancelled by the requester — not run",
        }.get(item.status)
        if label:
            who = [d.get("approver") for d in item.decisions or [] if d.get("decision") == "deny"]
            self._edit_messages(item, label + (f" by {', '.join(who)}" if who else ""))
        return {"approval_id": approval_id, "status": item.status}

    def store_command_outcome(self, item: Any, status: str) -> None:
        """Close the waiting command record so agents polling it see why it never ran."""
        if _relay_removed(item):
            # remove_relay already failed the command with its reason; keep that one.
            self.store.transition_command(
                item.command_id, ["pending_approval"], "failed", error="relay removed before approval; not run"
            )
            return
        command_status, reason = {
            DENIED: ("denied", "denied by an approver; not run"),
            TIMED_OUT: ("timeout", "approval timed out; not run"),
            CANCELLED: ("cancelled", "cancelled by the requester before approval; not run"),
        }.get(status, ("failed", "approval failed; not run"))
        self.store.transition_command(item.command_id, ["pending_approval"], command_status, error=reason)

    def note_progress(self, approval_id: str, org_id: str) -> None:
        """Show on the Telegram messages who approved so far while more approvals are needed."""
        item = self.get(org_id, approval_id)
        approvers = [d.get("approver") for d in item.decisions or [] if d.get("decision") == "approve"]
        self._edit_messages(
            item, f"👍 Approved by {', '.join(approvers)} ({len(approvers)}/{int(item.needed or 1)}) — waiting for another approver"
        )

    def _edit_messages(self, item: Any, outcome_line: str) -> None:
        client = self.telegram
        if client is None:
            return
        for message in item.messages or []:
            try:
                client.edit_message_text(
                    message["chat_id"],
                    message["message_id"],
                    f"{outcome_line}\n<code>{item.approval_id}</code>",
                )
            except (TelegramError, KeyError, TypeError) as exc:
                logger.warning("could not edit approval message", extra={"approval_id": item.approval_id, "error": str(exc)})
