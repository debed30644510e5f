"""The exec service: judge, record, dispatch to a relay and wait for the result.

Implements the exec flow of DESIGN §3 for one call: gateway Shield → command record
(conditional put; with an idempotency key a retry finds the first record) → signed
envelope posted to the relay's WebSocket connection → bounded wait by polling the record
(the relay's result arrives through ``flowlink.relays``). Also the read/list/sysinfo
operations, history and agent listings. Everything is scoped to the caller's org.

Synchronous by design (boto3/pynamodb): async callers use ``anyio.to_thread.run_sync``.
Never stores env values beyond the acknowledgement, never writes command output to audit.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shield
from flowlink import audit, relay_protocol
from flowlink.auth import SCOPE_AGENT, AuthContext, require_scope
from flowlink.errors import (
    AgentNotFound,
    AgentOffline,
    AgentRefused,
    CommandDenied,
    Conflict,
    InvalidInput,
    NotFound,
    PathDenied,
)
from flowlink.org_settings import compiled_policy, org_policy_text
from flowlink.relays import (
    POLICY_FROM_STORE,
    CommandSignals,
    ConnectionGone,
    RelayChannel,
    drift_refusal,
    flag_detail,
    sign_command_envelope,
)
from flowlink.settings import Settings
from flowlink.storage import RELAY_ID_PREFIX, TERMINAL_STATUSES, Store, find_relay, utc_now_iso
from flowlink.vault import Vault, referenced_secret_names, validate_secret_name
from shield import paths as shield_paths

logger = logging.getLogger(__name__)

MAX_COMMAND_CHARS = 32 * 1024  # the envelope must fit one 128 KB WebSocket frame
MAX_PATH_CHARS = 4096
MAX_ENV_ENTRIES = 64
MAX_ENV_VALUE_CHARS = 8 * 1024
MAX_IDEMPOTENCY_KEY_CHARS = 128
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 3600
DEFAULT_TIMEOUT_SECONDS = 60
# Grace the gateway waits beyond the command's own timeout for the relay to report.
RESULT_GRACE_SECONDS = 5
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HISTORY_DEFAULT_LIMIT = 20
HISTORY_MAX_LIMIT = 100
# First poll interval, growth factor and cap of the adaptive wait (seconds).
POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.005, 1.5, 0.25
# With in-process signals the store is polled only for results stored by another process
# (a second gateway); the first poll can wait longer, sparing reads on every exec.
POLL_FIRST_SIGNALLED = 0.05


@dataclass
class ExecRequest:
    agent: str
    command: str
    cwd: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    env: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    # Secrets to inject by name (issue 6); `$NAME` references in the command add to these.
    secrets: list[str] = field(default_factory=list)

    def validate(self) -> None:
        """Raises InvalidInput naming the offending field."""
        validate_agent_ref(self.agent)
        if not isinstance(self.command, str) or not self.command.strip():
            raise InvalidInput("command must be a non-empty string")
        if len(self.command) > MAX_COMMAND_CHARS:
            raise InvalidInput(f"command is longer than {MAX_COMMAND_CHARS} characters")
        if "\x00" in self.command:
            raise InvalidInput("command must not contain NUL bytes")
        validate_cwd(self.cwd)
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)):
            raise InvalidInput("timeout must be a number of seconds")
        if not MIN_TIMEOUT_SECONDS <= self.timeout <= MAX_TIMEOUT_SECONDS:
            raise InvalidInput(
                f"timeout must be between {MIN_TIMEOUT_SECONDS} and {MAX_TIMEOUT_SECONDS} seconds"
            )
        if not isinstance(self.env, dict) or len(self.env) > MAX_ENV_ENTRIES:
            raise InvalidInput(f"env must be an object of at most {MAX_ENV_ENTRIES} variables")
        for name, value in self.env.items():
            if not isinstance(name, str) or not ENV_NAME.match(name):
                raise InvalidInput(f"env: {name!r} is not a valid variable name")
            if not isinstance(value, str) or len(value) > MAX_ENV_VALUE_CHARS or "\x00" in value:
                raise InvalidInput(
                    f"env: value of {name} must be a string of at most {MAX_ENV_VALUE_CHARS} characters"
                )
        if self.idempotency_key is not None and (
            not isinstance(self.idempotency_key, str)
            or not 1 <= len(self.idempotency_key) <= MAX_IDEMPOTENCY_KEY_CHARS
        ):
            raise InvalidInput(f"idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters")
        if not isinstance(self.secrets, list):
            raise InvalidInput("secrets must be a list of secret names")
        for name in self.secrets:
            validate_secret_name(name)
            if name in self.env:
                raise InvalidInput(f"secrets: {name} is also given in env; a secret cannot be overridden")


def validate_agent_ref(agent: Any) -> None:
    if not isinstance(agent, str) or not agent.strip() or len(agent) > 128:
        raise InvalidInput("agent must be a relay id or name")


def validate_cwd(cwd: Any) -> None:
    if cwd is None:
        return
    if not isinstance(cwd, str) or not cwd.startswith("/") or len(cwd) > MAX_PATH_CHARS or "\x00" in cwd:
        raise InvalidInput(f"cwd must be an absolute path of at most {MAX_PATH_CHARS} characters")


def validate_path(path: Any) -> None:
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_PATH_CHARS or "\x00" in path:
        raise InvalidInput(f"path must be an absolute path of at most {MAX_PATH_CHARS} characters")


def agent_summary(record: Any) -> dict[str, Any]:
    """The public view of a relay (never its credential hash)."""
    return {
        "relay_id": record.relay_id,
        "name": record.name,
        "hostname": record.hostname,
        "status": record.status,
        "last_seen": record.last_seen,
        "enrolled_at": record.enrolled_at,
        "version": record.version,
        # Why the gateway refuses it (e.g. attestation_drift, identity_mismatch), None if it does not.
        "flagged": getattr(record, "flagged", None),
        "flag_detail": flag_detail(getattr(record, "flagged", None)),
    }


def _short_verdict(verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    if not verdict:
        return None
    return {
        "decision": verdict.get("decision"),
        "score": verdict.get("score"),
        "reasons": list(verdict.get("reasons") or []),
        "policy_version": verdict.get("policy_version"),
    }


def combined_verdict(gateway: dict[str, Any] | None, relay: dict[str, Any] | None) -> dict[str, Any]:
    """Gateway and relay verdicts side by side; the stricter decision wins."""
    decisions = []
    for verdict in (gateway, relay):
        try:
            decisions.append(shield.Decision((verdict or {}).get("decision")))
        except ValueError:
            continue
    decision = shield.Decision.strictest(*decisions).value if decisions else None
    return {"decision": decision, "gateway": _short_verdict(gateway), "relay": _short_verdict(relay)}


def command_view(record: Any) -> dict[str, Any]:
    """The public view of a command record (output included; it is the caller's own org)."""
    return {
        "command_id": record.command_id,
        "agent": {"relay_id": record.relay_id, "name": record.agent_name},
        "op": record.op,
        "command": record.command,
        "path": record.path,
        "cwd": record.cwd,
        "status": record.status,
        "exit_code": int(record.exit_code) if record.exit_code is not None else None,
        "stdout": record.stdout or "",
        "stderr": record.stderr or "",
        "duration_ms": int(record.duration_ms) if record.duration_ms is not None else None,
        "truncated": bool(record.truncated),
        "error": record.error,
        "requested_by": record.requested_by,
        "created_at": record.created_at,
        "completed_at": record.completed_at,
        "verdict": combined_verdict(record.gateway_verdict, record.relay_verdict),
        "approval_id": getattr(record, "approval_id", None),
    }


class _BackgroundCall:
    """Run one call in a thread and wait for it later; a failure is logged, never lost silently."""

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any):
        self._error: BaseException | None = None

        def run() -> None:
            try:
                function(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - reported in join()
                self._error = exc

        self._thread = threading.Thread(target=run, name="flowlink-audit", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()
        if self._error is not None:
            logger.error("audit write for a dispatched command failed", exc_info=self._error)


class CommandService:
    """Runs exec/read/list/sysinfo for an authenticated caller, plus the read-only queries."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        channel: RelayChannel,
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        signals: CommandSignals | None = None,
    ):
        self.settings = settings
        self.store = store
        self.channel = channel
        self._sleep = sleep
        self._monotonic = monotonic
        self._signals = signals
        self._semantic_shield: Any = None
        self._shield_lock = threading.Lock()
        self._approvals: Any = None

    @property
    def approvals(self) -> Any:
        """The approval workflow (hard_ask), sharing this service's store and relay channel."""
        if self._approvals is None:
            from flowlink.approvals.dispatch import dispatch_approved_command
            from flowlink.approvals.service import ApprovalService

            self._approvals = ApprovalService(
                self.settings,
                store=self.store,
                dispatcher=functools.partial(
                    dispatch_approved_command, settings=self.settings, store=self.store, channel=self.channel
                ),
            )
        return self._approvals

    def _secret_names(self, org_id: str, relay_id: str, request: ExecRequest) -> list[str]:
        """The secrets this exec injects: those named, plus `$NAME` references that exist for
        the relay. A named secret that does not exist, or a reference to one of the relay's
        secrets that was deleted, fails the call before anything runs (Vault.exec_secret_names)."""
        referenced = referenced_secret_names(request.command) - set(request.env)
        if not request.secrets and not referenced:
            return []
        return Vault(self.settings, self.store).exec_secret_names(org_id, relay_id, request.secrets, referenced)

    def _analyze(self, command: str, context: Any) -> Any:
        """Gateway Shield: levels 1, 3 and 4; level 2 too when FLOWLINK_SEMANTIC=1 (model installed)."""
        if not self.settings.semantic:
            return shield.analyze(command, context)
        with self._shield_lock:
            if self._semantic_shield is None:
                self._semantic_shield = shield.Shield(semantic=True)
        return self._semantic_shield.analyze(command, context)

    # -- agents -----------------------------------------------------------------------

    def list_agents(self, auth: AuthContext) -> list[dict[str, Any]]:
        return [agent_summary(r) for r in sorted(self.store.list_agents(auth.org_id), key=lambda r: r.name)]

    def resolve_agent(self, auth: AuthContext, ref: str) -> Any:
        """The org's relay named by id or name; AgentNotFound lists the org's relays.

        Raises AgentNameAmbiguous when several relays share the name (see ``find_relay``).
        """
        validate_agent_ref(ref)
        ref = ref.strip()
        record = find_relay(self.store, auth.org_id, ref)
        if record is not None:
            return record
        agents = self.list_agents(auth)
        listing = (
            ", ".join(f"{a['name']} ({a['relay_id']}, {a['status']})" for a in agents) or "none enrolled"
        )
        raise AgentNotFound(
            f"no agent {ref!r} in this org; available agents: {listing}",
            extra={
                "agents": [
                    {"relay_id": a["relay_id"], "name": a["name"], "status": a["status"]} for a in agents
                ]
            },
        )

    def refuse_untrusted(self, agent: Any) -> None:
        """Raise AgentRefused when nothing may be sent to ``agent`` (flagged, or drifted while
        its org refuses drifted relays); checked before anything is recorded or dispatched."""
        reason = drift_refusal(self.store, self.settings, self.channel, agent)
        if reason is not None:
            raise AgentRefused(
                f"agent {agent.name!r} ({agent.relay_id}) is refused: {reason}; nothing was sent",
                extra={"relay_id": agent.relay_id, "flagged": getattr(agent, "flagged", None)},
            )

    def health(self, auth: AuthContext) -> dict[str, Any]:
        agents = self.list_agents(auth)
        return {
            "gateway": {
                "status": "ok",
                "server_time": utc_now_iso(),
                "environment": self.settings.environment,
            },
            "agents": [
                {
                    "relay_id": a["relay_id"],
                    "name": a["name"],
                    "online": a["status"] == "online",
                    "last_seen": a["last_seen"],
                }
                for a in agents
            ],
        }

    # -- exec -------------------------------------------------------------------------

    def exec(self, auth: AuthContext, request: ExecRequest, *, wait: bool = True) -> dict[str, Any]:
        """Judge and run one command; returns the command view (finished or still running).

        ``wait=False`` returns as soon as the command is dispatched (or waits for approval)
        instead of waiting for its result: the caller follows it as an MCP task.

        Raises InvalidInput, PermissionDenied, AgentNotFound, AgentOffline (record marked
        failed), CommandDenied (gateway Shield deny, nothing dispatched), SecretNotFound, and
        Conflict (idempotency key reused for another command).
        """
        require_scope(auth, SCOPE_AGENT)
        request.validate()
        agent = self.resolve_agent(auth, request.agent)
        if request.idempotency_key:
            command_id = relay_protocol.derive_command_id(
                auth.org_id, agent.relay_id, request.idempotency_key
            )
            existing = self.store.get_command(auth.org_id, command_id)
            if existing is not None:
                return self._replay(existing, request.command, request.timeout, wait=wait)
        else:
            command_id = relay_protocol.new_command_id()
        self.refuse_untrusted(agent)

        policy_text = org_policy_text(self.store, auth.org_id)
        verdict = self._analyze(
            request.command,
            shield.Context(
                policy=compiled_policy(policy_text),
                agent=agent.name,
                cwd=request.cwd,
                host=shield.HostFacts(hostname=agent.hostname),
            ),
        ).to_dict()
        decision = verdict["decision"]
        base = self._audit_fields(auth, agent, command_id, request.command, verdict)
        base.update(cwd=request.cwd, timeout=request.timeout, env_keys=sorted(request.env))
        record_fields = {
            "command_id": command_id,
            "org_id": auth.org_id,
            "relay_id": agent.relay_id,
            "agent_key": f"{auth.org_id}#{agent.relay_id}",
            "agent_name": agent.name,
            "op": relay_protocol.OP_EXEC,
            "command": request.command,
            "cwd": request.cwd,
            "timeout": request.timeout,
            "env_keys": sorted(request.env),
            "idempotency_key": request.idempotency_key,
            "requested_by": auth.key_id,
            "requested_by_name": auth.name,
            "gateway_verdict": verdict,
            "decision": decision,
            "created_at": utc_now_iso(),
            "secret_names": self._secret_names(auth.org_id, agent.relay_id, request) or None,
        }

        if decision == shield.Decision.DENY.value:
            reasons = "; ".join(verdict.get("reasons") or ["denied by policy"])
            if self._create(record_fields, status="denied", error=f"denied by Shield: {reasons}") is None:
                return self._replay(
                    self.store.get_command(auth.org_id, command_id), request.command, request.timeout
                )
            audit.append_event(auth.org_id, "exec.denied", base, actor=auth.actor())
            raise CommandDenied(
                f"refused by Shield (score {verdict.get('score')}): {reasons}",
                extra={"command_id": command_id, "verdict": _short_verdict(verdict)},
            )
        if decision == shield.Decision.HARD_ASK.value:
            return self._request_approval(auth, record_fields, request, verdict, base, hostname=agent.hostname)

        record, created = self._dispatch(
            auth, agent, record_fields, env=request.env, audit_fields=base, policy_text=policy_text
        )
        if not created:
            return self.wait(auth.org_id, record, request.timeout) if wait else command_view(record)
        # The dispatch event is written while the relay runs the command, off the
        # critical path of the round trip; it is complete before the call returns.
        writer = _BackgroundCall(audit.append_event, auth.org_id, "exec.dispatched", base, actor=auth.actor())
        # soft_ask runs and tells the approvers (issue 4), also off the critical path.
        notice = None
        if decision == shield.Decision.SOFT_ASK.value:
            notice = _BackgroundCall(
                self.approvals.notify_soft_ask, auth.org_id, command_id=command_id, agent=agent.name or agent.relay_id,
                host=agent.hostname, command=request.command, verdict=verdict,
            )
        try:
            return self.wait(auth.org_id, record, request.timeout) if wait else command_view(record)
        finally:
            writer.join()
            if notice is not None:
                notice.join()

    def _replay(self, existing: Any, command: str, timeout: float, *, wait: bool = True) -> dict[str, Any]:
        """A retried idempotent call: same command → the first call's outcome; else Conflict."""
        if existing.op != relay_protocol.OP_EXEC or existing.command != command:
            raise Conflict("idempotency_key was already used for a different command")
        if existing.status == "denied":
            raise CommandDenied(
                existing.error or "refused by Shield",
                extra={
                    "command_id": existing.command_id,
                    "verdict": _short_verdict(existing.gateway_verdict),
                },
            )
        if existing.status == "pending_approval":
            return self._pending_view(existing)
        return self.wait(existing.org_id, existing, timeout) if wait else command_view(existing)

    def _request_approval(
        self,
        auth: AuthContext,
        fields: dict[str, Any],
        request: ExecRequest,
        verdict: dict,
        audit_fields: dict,
        *,
        hostname: str | None,
    ) -> dict[str, Any]:
        """hard_ask: store the command as pending_approval, start the approval, return at once.

        Env values wait on the record (like any undelivered command) until dispatch.
        """
        record = self._create(fields, status="pending_approval", pending_env=request.env or None)
        if record is None:
            return self._replay(self.store.get_command(auth.org_id, fields["command_id"]), request.command, request.timeout)
        audit.append_event(auth.org_id, "exec.pending_approval", audit_fields, actor=auth.actor())
        org = self.store.get_org(auth.org_id)
        try:
            approval = self.approvals.request(
                org=org, command=record, verdict=verdict, requested_by=auth.key_id, hostname=hostname
            )
        except Exception:
            # Fail closed: without a running approval the command can never be approved.
            self.store.transition_command(
                record.command_id, ["pending_approval"], "failed", remove=["pending_env"],
                error="approval could not be started; not run", completed_at=utc_now_iso(),
            )
            raise
        self.store.transition_command(
            record.command_id, ["pending_approval"], "pending_approval", approval_id=approval.approval_id
        )
        return self._pending_view(self.store.get_command(auth.org_id, record.command_id))

    def _pending_view(self, record: Any) -> dict[str, Any]:
        view = command_view(record)
        approval = None
        if record.approval_id:
            try:
                approval = self.approvals.get(record.org_id, record.approval_id)
            except NotFound:
                approval = None
        expires = f", expires {approval.expires_at}" if approval is not None else ""
        view["approval_id"] = record.approval_id
        # Calling exec again returns this command only when it was sent with an idempotency_key.
        again = (
            f", or by calling exec again with the same idempotency_key ({record.idempotency_key!r})"
            if record.idempotency_key
            else f" or, if exec ran as an MCP task, tasks/get for task {record.command_id!r} (this call had no "
            "idempotency_key, so calling exec again would ask for a new approval)"
        )
        view["message"] = (
            f"waiting for human approval (approval {record.approval_id}{expires}); it has not run. "
            f"Get the result later with the history tool (agent={record.relay_id!r}, command_id={record.command_id!r})"
            f"{again}. Approvers decide in Telegram, with the approve tool, or `flowlink approve {record.approval_id}`."
        )
        return view

    def _audit_fields(
        self, auth: AuthContext, agent: Any, command_id: str, command: str, verdict: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "command_id": command_id,
            "key_id": auth.key_id,
            "requested_by": auth.name,
            "relay_id": agent.relay_id,
            "agent": agent.name,
            "command": command,
            "decision": verdict.get("decision"),
            "verdict": _short_verdict(verdict),
        }

    def _create(self, fields: dict[str, Any], *, status: str, **extra: Any) -> Any | None:
        now = utc_now_iso()
        final = status in TERMINAL_STATUSES
        return self.store.create_command(
            **fields, status=status, updated_at=now, completed_at=now if final else None, **extra
        )

    def _dispatch(
        self,
        auth: AuthContext,
        agent: Any,
        fields: dict[str, Any],
        *,
        env: dict[str, str],
        audit_fields: dict,
        policy_text: Any = POLICY_FROM_STORE,
    ) -> tuple[Any, bool]:
        """Create the record and post its envelope; returns (record, created by this call).

        Fails (record marked failed, AgentOffline) when the relay is offline or its socket is gone.
        """
        kind = "exec" if fields["op"] == relay_protocol.OP_EXEC else fields["op"]
        if agent.status != "online" or not agent.connection_id:
            self._fail_offline(auth, agent, fields, audit_fields, kind)
        # Created directly as "dispatched": if this process dies before posting, the
        # relay's next sync re-sends it, so a command is never silently lost.
        record = self._create(
            fields, status="dispatched", dispatched_at=utc_now_iso(), pending_env=env or None
        )
        if record is None:
            # A concurrent call with the same idempotency key created it first: wait on theirs.
            return self.store.get_command(auth.org_id, fields["command_id"]), False
        envelope = sign_command_envelope(self.settings, record, env=env, store=self.store, policy_text=policy_text)
        try:
            self.channel.send(
                agent.connection_id, {"type": relay_protocol.TYPE_COMMAND, "envelope": envelope}
            )
        except ConnectionGone:
            self.store.mark_agent_offline(agent.relay_id, agent.connection_id, utc_now_iso())
            self.store.transition_command(
                fields["command_id"],
                ["dispatched"],
                "failed",
                remove=["pending_env"],
                error="agent offline: its connection closed",
                completed_at=utc_now_iso(),
            )
            if kind == "exec":
                audit.append_event(
                    auth.org_id, "exec.failed", {**audit_fields, "error": "agent offline"}, actor=auth.actor()
                )
            raise AgentOffline(
                f"agent {agent.name!r} ({agent.relay_id}) went offline; the command was not delivered",
                extra={"command_id": fields["command_id"]},
            )
        return record, True

    def _fail_offline(
        self, auth: AuthContext, agent: Any, fields: dict, audit_fields: dict, kind: str
    ) -> None:
        detail = f"agent {agent.name!r} ({agent.relay_id}) is offline (last seen {agent.last_seen or 'never'}); nothing was queued"
        self._create(fields, status="failed", error="agent offline")
        if kind == "exec":
            audit.append_event(
                auth.org_id, "exec.failed", {**audit_fields, "error": "agent offline"}, actor=auth.actor()
            )
        raise AgentOffline(detail, extra={"command_id": fields["command_id"]})

    def wait(self, org_id: str, record: Any, timeout: float) -> dict[str, Any]:
        """Poll the record until it is terminal or the bounded wait ends; returns its view.

        Polls with growing intervals; with ``signals`` an ack or result stored by this process
        wakes the waiter at once and hands it the stored record, so no read is needed. The
        polls remain for results stored by another process.
        """
        budget = max(0.0, min(float(timeout) + RESULT_GRACE_SECONDS, self.settings.exec_wait_seconds))
        deadline = self._monotonic() + budget
        interval = POLL_FIRST if self._signals is None else POLL_FIRST_SIGNALLED
        current = record
        seen = self._signals.version(record.command_id) if self._signals else 0
        while current.status not in TERMINAL_STATUSES:
            # A result may have been stored before this wait began (a fast relay).
            signalled = self._signals.latest(record.command_id) if self._signals is not None else None
            if signalled is not None and signalled.status in TERMINAL_STATUSES:
                current = signalled
                break
            remaining = deadline - self._monotonic()
            if remaining <= 0:
                break
            if self._signals is not None:
                if self._signals.wait_for_change(record.command_id, seen, min(interval, remaining)):
                    seen = self._signals.version(record.command_id)
                    signalled = self._signals.latest(record.command_id)
                    if signalled is not None:
                        current = signalled
                        continue
            else:
                self._sleep(min(interval, remaining))
            interval = min(interval * POLL_FACTOR, POLL_MAX)
            current = self.store.get_command(org_id, record.command_id) or current
        view = command_view(current)
        if current.status not in TERMINAL_STATUSES:
            # A handle: to the caller the command is simply still running; the message says
            # whether the relay has acknowledged it yet (history shows the exact state).
            stage = (
                "acknowledged by the relay" if current.status == "running" else "sent, not yet acknowledged"
            )
            view["status"] = "running"
            view["message"] = (
                f"still running ({stage}); call the history tool with agent={current.relay_id!r} "
                f"and command_id={current.command_id!r} to get the result"
            )
        return view

    # -- read / list / sysinfo --------------------------------------------------------

    def path_operation(self, auth: AuthContext, agent_ref: str, op: str, path: str) -> dict[str, Any]:
        """``read`` or ``list`` a path on a relay after the path policy allows it.

        Raises PathDenied (policy), AgentNotFound, AgentOffline, InvalidInput.
        """
        require_scope(auth, SCOPE_AGENT)
        if op not in (relay_protocol.OP_READ, relay_protocol.OP_LIST):
            raise InvalidInput(f"unknown path operation {op!r}")
        validate_path(path)
        agent = self.resolve_agent(auth, agent_ref)
        self.refuse_untrusted(agent)
        policy_text = org_policy_text(self.store, auth.org_id)
        context = shield.Context(
            policy=compiled_policy(policy_text), agent=agent.name, host=shield.HostFacts(hostname=agent.hostname)
        )
        verdict = shield_paths.check_path(op, path, context).to_dict()
        command_id = relay_protocol.new_command_id()
        audit_fields = {
            "command_id": command_id,
            "key_id": auth.key_id,
            "requested_by": auth.name,
            "relay_id": agent.relay_id,
            "agent": agent.name,
            "path": path,
            "decision": verdict.get("decision"),
            "verdict": _short_verdict(verdict),
        }
        audit.append_event(auth.org_id, op, audit_fields, actor=auth.actor())
        if verdict.get("decision") in (shield.Decision.DENY.value, shield.Decision.HARD_ASK.value):
            reasons = "; ".join(verdict.get("reasons") or ["path not allowed by policy"])
            raise PathDenied(f"{op} of {path} refused: {reasons}", extra={"verdict": _short_verdict(verdict)})
        fields = self._operation_fields(auth, agent, command_id, op, verdict, path=path)
        record, _ = self._dispatch(auth, agent, fields, env={}, audit_fields=audit_fields, policy_text=policy_text)
        return self.wait(auth.org_id, record, DEFAULT_TIMEOUT_SECONDS)

    def sysinfo(self, auth: AuthContext, agent_ref: str) -> dict[str, Any]:
        """Host facts of a relay: live from the relay when online, else the last reported ones."""
        agent = self.resolve_agent(auth, agent_ref)
        summary = agent_summary(agent)
        stored = {"agent": summary, "facts": agent.facts or {}, "live": False}
        if agent.status != "online" or not agent.connection_id or not auth.allows(SCOPE_AGENT):
            return stored
        self.refuse_untrusted(agent)
        command_id = relay_protocol.new_command_id()
        verdict = {"decision": shield.Decision.AUTO.value, "score": 0, "reasons": ["host facts query"]}
        fields = self._operation_fields(auth, agent, command_id, relay_protocol.OP_SYSINFO, verdict)
        try:
            record, _ = self._dispatch(auth, agent, fields, env={}, audit_fields={})
        except AgentOffline:
            return stored
        view = self.wait(auth.org_id, record, 10)
        if view["status"] != "completed":
            return {**stored, "error": view.get("error") or f"live query {view['status']}"}
        try:
            facts = json.loads(view["stdout"])
        except ValueError:
            facts = {"raw": view["stdout"]}
        return {"agent": summary, "facts": facts, "live": True}

    def _operation_fields(
        self,
        auth: AuthContext,
        agent: Any,
        command_id: str,
        op: str,
        verdict: dict,
        *,
        path: str | None = None,
    ) -> dict[str, Any]:
        return {
            "command_id": command_id,
            "org_id": auth.org_id,
            "relay_id": agent.relay_id,
            "agent_key": f"{auth.org_id}#{agent.relay_id}",
            "agent_name": agent.name,
            "op": op,
            "command": "",
            "path": path,
            "timeout": DEFAULT_TIMEOUT_SECONDS,
            "requested_by": auth.key_id,
            "requested_by_name": auth.name,
            "gateway_verdict": verdict,
            "decision": verdict.get("decision"),
            "created_at": utc_now_iso(),
        }

    # -- history ----------------------------------------------------------------------

    def history(
        self,
        auth: AuthContext,
        agent_ref: str,
        *,
        limit: int = HISTORY_DEFAULT_LIMIT,
        page_token: str | None = None,
        command_id: str | None = None,
    ) -> dict[str, Any]:
        """A relay's commands, newest first, one page at a time (or one command by id).

        A removed relay's history stays readable by its relay id (contracts §5): its commands
        are stored under ``{org_id}#{relay_id}``, so only the caller's org finds them.
        """
        summary = self._history_agent(auth, agent_ref)
        relay_id = summary["relay_id"]
        if command_id is not None:
            record = self.store.get_command(auth.org_id, command_id)
            if record is None or record.relay_id != relay_id:
                raise NotFound(f"no command {command_id!r} for agent {summary['name']!r}")
            return {
                "agent": summary,
                "commands": [command_view(record)],
                "next_page_token": None,
            }
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX_LIMIT:
            raise InvalidInput(f"limit must be an integer between 1 and {HISTORY_MAX_LIMIT}")
        if page_token is not None and (not isinstance(page_token, str) or len(page_token) > 2048):
            raise InvalidInput("page_token is not a valid history page token")
        items, next_token = self.store.command_history(
            auth.org_id, relay_id, limit=limit, page_token=page_token
        )
        return {
            "agent": summary,
            "commands": [command_view(r) for r in items],
            "next_page_token": next_token,
        }

    def _history_agent(self, auth: AuthContext, agent_ref: str) -> dict[str, Any]:
        """The summary of the relay whose history is asked for: an enrolled one (id or name),
        else a removed one of this org named by its relay id (status ``removed``)."""
        try:
            return agent_summary(self.resolve_agent(auth, agent_ref))
        except AgentNotFound:
            ref = agent_ref.strip()
            if not ref.startswith(RELAY_ID_PREFIX):
                raise
            latest, _ = self.store.command_history(auth.org_id, ref, limit=1, page_token=None)
            if not latest:
                raise
            return {
                "relay_id": ref, "name": latest[0].agent_name or ref, "hostname": None, "status": "removed",
                "last_seen": None, "enrolled_at": None, "version": None, "flagged": None,
                "flag_detail": None,
            }
