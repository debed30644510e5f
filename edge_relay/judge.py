"""The relay's own judgement of a verified command: full Shield, then the stricter verdict wins.

The gateway already judged the command (``gateway_verdict`` in the envelope), but the
relay does not trust that alone: it runs Shield locally with what only the host knows
(cwd, user, hostname, environment) and takes the stricter decision of the two. It judges
with the org policy the envelope names (the caller resolves it, ``flowlink.relay_policy``),
so the verdict's ``policy_version`` says which policy decided on the host.

- ``deny`` → refused with the reasons;
- ``hard_ask`` → runs only with a valid approval grant (``flowlink.grants.verify_grant``,
  bound to this command id, command text and relay, signed by the pinned gateway key);
- ``auto`` / ``soft_ask`` → runs.

Fail closed: an unknown gateway decision counts as ``deny``, and a Shield that cannot be
loaded or errors refuses the command instead of letting it through.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import shlex
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flowlink import grants, relay_protocol

from shield.model import Context, Decision, HostFacts

logger = logging.getLogger(__name__)


@dataclass
class Judgement:
    """Whether the relay lets a command run, and why."""

    allowed: bool
    decision: str  # the effective (strictest) decision
    reasons: list[str] = field(default_factory=list)
    relay_verdict: dict[str, Any] = field(default_factory=dict)


def _gateway_decision(claims: dict[str, Any]) -> tuple[Decision | None, list[str]]:
    verdict = claims.get("gateway_verdict")
    if not isinstance(verdict, dict) or verdict.get("decision") is None:
        # No gateway judgement (e.g. sysinfo): the relay's own verdict decides alone.
        return None, []
    reasons = [str(r) for r in verdict.get("reasons") or [] if isinstance(r, (str, int, float))]
    try:
        return Decision(verdict["decision"]), reasons
    except ValueError:
        return Decision.DENY, [f"unknown gateway decision {verdict['decision']!r}"]


def _decision_value(verdict: Any) -> str:
    decision = verdict.decision if hasattr(verdict, "decision") else verdict["decision"]
    return decision.value if isinstance(decision, Decision) else str(decision)


def _path_check_function() -> Callable[..., Any] | None:
    """``shield.paths.check_path`` when the Shield build ships it, else None."""
    if importlib.util.find_spec("shield.paths") is None:
        return None
    module = importlib.import_module("shield.paths")
    return getattr(module, "check_path", None)


def equivalent_command(op: str, path: str) -> str:
    """The shell command a native op is equivalent to, so Shield can judge it the same way."""
    if op == relay_protocol.OP_READ:
        return f"cat -- {shlex.quote(path)}"
    if op == relay_protocol.OP_LIST:
        return f"ls -la -- {shlex.quote(path)}"
    raise ValueError(f"no equivalent command for {op!r}")


class CommandJudge:
    """Judges verified envelope claims on this host. Thread-safe (one analysis at a time)."""

    def __init__(
        self,
        *,
        relay_id: str,
        gateway_key: Ed25519PublicKey,
        agent_name: str | None,
        host: HostFacts,
        policy: Any = None,
        analyze: Callable[..., Any] | None = None,
        check_path: Callable[..., Any] | None = None,
    ):
        """``analyze``/``check_path`` default to ``shield.Shield(semantic=True).analyze`` and
        ``shield.paths.check_path``,
        loaded on first use; pass them to judge with another engine (tests, embedding).
        """
        self.relay_id = relay_id
        self.gateway_key = gateway_key
        self.agent_name = agent_name
        self.host = host
        self.policy = policy
        # Shield's thread-safety is not part of its contract: serialise analyses.
        self._lock = threading.Lock()
        self._analyze: Callable[..., Any] | None = analyze
        self._check_path: Callable[..., Any] | None = check_path
        self._load_error: str | None = None
        self._loaded = analyze is not None

    def context(self, cwd: str | None, policy: Any = None) -> Context:
        return Context(
            policy=policy if policy is not None else self.policy, agent=self.agent_name, cwd=cwd, host=self.host
        )

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            shield = importlib.import_module("shield")
            # The full engine, level 2 (semantic intent) included: the relay is where it runs.
            self._analyze = shield.Shield(semantic=True).analyze
            self._check_path = _path_check_function()
        except Exception as exc:  # noqa: BLE001 - any import failure must refuse commands, not crash the relay
            self._load_error = f"relay Shield unavailable: {type(exc).__name__}: {exc}"
            logger.error("shield load failed error=%s", self._load_error)

    def warm_up(self) -> bool:
        """Load Shield and run one harmless analysis so the first command is not slow."""
        with self._lock:
            self._load()
            if self._analyze is None:
                return False
            try:
                self._analyze("true", self.context("/"))
            except Exception:
                logger.exception("shield warm-up failed")
                return False
        return True

    @property
    def available(self) -> bool:
        return self._analyze is not None

    def _relay_verdict(
        self,
        op: str,
        claims: dict[str, Any],
        cwd: str | None,
        path: str | None,
        real_path: str | None,
        policy: Any,
    ) -> Any:
        context = self.context(cwd, policy)
        if op == relay_protocol.OP_EXEC:
            return self._analyze(str(claims.get("command", "")), context)
        if op in (relay_protocol.OP_READ, relay_protocol.OP_LIST):
            # The lexical path and, when symlinks lead elsewhere, the real one: the stricter wins.
            candidates = [path or ""] + ([real_path] if real_path and real_path != path else [])
            verdicts = [self._judge_path(op, candidate, context) for candidate in candidates]
            return max(verdicts, key=lambda verdict: Decision(_decision_value(verdict)).rank)
        return None  # sysinfo: reports facts the relay already sends in hello

    def _judge_path(self, op: str, path: str, context: Context) -> Any:
        if self._check_path is not None:
            return self._check_path(op, path, context)
        return self._analyze(equivalent_command(op, path), context)

    def judge(
        self,
        claims: dict[str, Any],
        *,
        cwd: str | None,
        path: str | None = None,
        real_path: str | None = None,
        policy: Any = None,
    ) -> Judgement:
        """Decide whether the verified ``claims`` may run here. Never raises.

        ``path``/``real_path`` are the lexical and symlink-resolved target of read/list;
        ``policy`` is the compiled org policy the envelope names (None: this judge's own,
        by default Shield's built-in default policy).
        """
        op = str(claims.get("op"))
        gateway_decision, gateway_reasons = _gateway_decision(claims)
        with self._lock:
            self._load()
            if self._analyze is None:
                return Judgement(False, Decision.DENY.value, [self._load_error or "relay Shield unavailable"])
            try:
                verdict = self._relay_verdict(op, claims, cwd, path, real_path, policy)
            except Exception as exc:
                logger.exception("shield analysis failed command_id=%s", claims.get("jti"))
                return Judgement(False, Decision.DENY.value, [f"relay Shield failed: {type(exc).__name__}"])

        decisions: list[Decision] = []
        relay_reasons: list[str] = []
        relay_verdict: dict[str, Any] = {}
        if verdict is not None:
            relay_verdict = verdict.to_dict() if hasattr(verdict, "to_dict") else dict(verdict)
            decisions.append(Decision(relay_verdict["decision"]))
            relay_reasons = [str(r) for r in relay_verdict.get("reasons") or []]
        if gateway_decision is not None:
            decisions.append(gateway_decision)
        if not decisions:
            # Only sysinfo gets here without any verdict: read-only facts about the host.
            return Judgement(True, Decision.AUTO.value, [], relay_verdict)
        effective = Decision.strictest(*decisions)
        reasons = list(dict.fromkeys(relay_reasons + [r for r in gateway_reasons if r not in relay_reasons]))

        if effective is Decision.DENY:
            return Judgement(False, effective.value, reasons or ["denied by policy"], relay_verdict)
        if effective is Decision.HARD_ASK:
            try:
                grant = grants.verify_grant(
                    claims.get("grant"),
                    self.gateway_key,
                    relay_id=self.relay_id,
                    command_id=str(claims.get("jti")),
                    command=str(claims.get("command", "")),
                )
            except grants.GrantError as exc:
                return Judgement(
                    False,
                    effective.value,
                    [f"requires approval grant: {exc.reason}", *reasons],
                    relay_verdict,
                )
            approved = f"approved by a human (approval {grant.get('jti')})"
            return Judgement(True, effective.value, [approved, *reasons], relay_verdict)
        return Judgement(True, effective.value, reasons, relay_verdict)
