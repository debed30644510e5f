"""The relay daemon: one authenticated WebSocket session to the gateway, and what runs on it.

Flow (docs/contracts.md §6–7): dial ``ws_url`` with the relay credential → ``hello`` →
wait for ``welcome`` → re-send the outbox → ``sync`` → heartbeats; on loss, reconnect
with exponential backoff and full jitter and do it all again.

Guarantees:
- **Fail closed**: the only way anything runs is a ``command`` message on the live
  session whose envelope verifies against the gateway key pinned at enrollment, is
  addressed to this relay, unexpired, matches its sha256, and passes the relay's own
  Shield (the stricter verdict wins). No session, nothing runs.
- **The org's policy, exactly**: the relay judges with the policy the envelope names
  (contracts §8), from policy documents signed by the same pinned gateway key (in
  ``welcome``, pushed on change, or requested). A policy it cannot get and verify in
  time refuses the command; it never judges with another one instead.
- **At most once**: the command id is claimed in the ledger (fsync'd) before anything
  starts; a claimed id is never executed again (duplicates, re-syncs, restarts). A
  repeat gets the stored result, or ``failed`` "outcome unknown" if the relay died
  mid-command.
- **At least once** for results: each result is stored in the outbox with its ledger
  row and re-sent after every reconnect until the retention window passes.
- Graceful SIGTERM/SIGINT: no new commands, running ones get a grace period, then their
  process groups are killed; results are flushed, the socket closed, exit 0.

Logs are key=value and never contain credentials, command text or output.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import importlib
import importlib.util
import json
import logging
import os
import signal
import sqlite3
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
from flowlink import relay_protocol as rp
from flowlink.redaction import Redactor
from flowlink.relay_policy import PolicyBook, PolicyMissing, PolicyUnavailable
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from edge_relay import native_ops
from edge_relay.backoff import Backoff
from edge_relay.errors import StateDirLockedError
from edge_relay.executor import (
    STATUS_FAILED,
    ExecOutcome,
    InvalidEnvironmentError,
    ProcessRunner,
    build_environment,
)
from edge_relay.facts import collect_facts, home_directory, relay_version
from edge_relay.health import HealthServer
from edge_relay.identity import RelayIdentity, RelayKeys, write_private_file
from edge_relay.judge import CommandJudge, Judgement
from edge_relay.ledger import CommandLedger
from edge_relay.secrets_injection import SecretInjectionError, open_secrets, redact_output
from edge_relay.settings import RelaySettings
from shield.model import HostFacts

logger = logging.getLogger(__name__)

STATUS_CONNECTED = "connected"
STATUS_CONNECTING = "connecting"
STATUS_DISCONNECTED = "disconnected"
# The gateway refuses this relay (flagged, removed, replaced): no use re-dialling quickly.
STATUS_REFUSED = "refused"
REFUSAL_CODES = frozenset({"relay_flagged", "unknown_relay", "identity_mismatch", "attestation_drift"})
REFUSED_RETRY_SECONDS = 300.0

OUTCOME_UNKNOWN = "already started before restart; outcome unknown"
# A claimed id is remembered this long; envelopes live 5 minutes, so a replay of anything
# older is refused as expired anyway.
LEDGER_RETENTION_SECONDS = 7 * 24 * 3600
# Missed heartbeat acks before the session is considered dead and re-dialled.
MISSED_HEARTBEATS_ALLOWED = 3


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def measure_attestation() -> dict[str, Any] | None:
    """Hook for the relay's binary attestation (RFC-002 layer 2).

    Calls ``flowlink.attestation.measure_relay()`` when that module exists; until then
    ``hello`` carries ``attestation: null``.
    """
    if importlib.util.find_spec("flowlink.attestation") is None:
        return None
    measure = getattr(importlib.import_module("flowlink.attestation"), "measure_relay", None)
    if not callable(measure):
        return None
    return measure()


def _exit_code(code: int | None) -> int | None:
    # Popen reports death by signal N as -N; agents expect the shell convention 128+N.
    if code is not None and code < 0:
        return 128 - code
    return code


def result_message(
    command_id: str,
    status: str,
    *,
    exit_code: int | None = None,
    stdout: str = "",
    stderr: str = "",
    duration_ms: int = 0,
    truncated: bool = False,
    relay_verdict: dict[str, Any] | None = None,
    reasons: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``result`` message (contracts §6) plus ``reasons`` for refusals and failures."""
    message: dict[str, Any] = {
        "action": rp.ACTION_RESULT,
        "command_id": command_id,
        "status": status,
        "exit_code": _exit_code(exit_code),
        "stdout": stdout,
        "stderr": stderr,
        "duration_ms": duration_ms,
        "truncated": truncated,
        "relay_verdict": relay_verdict or {},
        "reasons": list(reasons or []),
    }
    message.update(extra)
    return message


def refused_result(command_id: str, reasons: list[str], judgement: Judgement | None = None) -> dict[str, Any]:
    return result_message(
        command_id,
        rp.RESULT_REFUSED,
        stderr="refused by relay: " + "; ".join(reasons),
        relay_verdict=judgement.relay_verdict if judgement else None,
        reasons=reasons,
        error="; ".join(reasons),
        decision=judgement.decision if judgement else None,
    )


def failed_result(command_id: str, reason: str, judgement: Judgement | None = None) -> dict[str, Any]:
    return result_message(
        command_id,
        rp.RESULT_FAILED,
        stderr=reason,
        relay_verdict=judgement.relay_verdict if judgement else None,
        reasons=[reason],
        error=reason,
    )


def policy_refusal(reason: str) -> Judgement:
    """The judgement for a command whose named policy is unavailable: never run."""
    reasons = [f"{reason}; command not run"]
    verdict = {"decision": "deny", "score": None, "reasons": reasons, "policy_version": None}
    return Judgement(False, "deny", reasons, verdict)


def unverified_command_id(envelope: str) -> str | None:
    """The ``jti`` of an envelope that failed verification, only to address the refusal."""
    try:
        claims = jwt.decode(envelope, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    jti = claims.get("jti")
    return jti if isinstance(jti, str) and jti else None


@dataclass
class Admission:
    """What to do with one incoming command message."""

    action: str  # "run" | "reply" | "ignore"
    command_id: str | None = None
    claims: dict[str, Any] | None = None
    result: dict[str, Any] | None = None


class StateDirLock:
    """An exclusive flock on the state dir: two daemons on one ledger would break at-most-once."""

    def __init__(self, path: os.PathLike):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise StateDirLockedError(
                f"another relay is already running with this state dir ({self.path})"
            ) from exc
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class RelayDaemon:
    """The relay process: session, admission, judgement, execution, health."""

    def __init__(
        self,
        settings: RelaySettings,
        identity: RelayIdentity,
        keys: RelayKeys,
        *,
        judge: CommandJudge | None = None,
        facts: dict[str, Any] | None = None,
    ):
        self.settings = settings
        self.identity = identity
        self.keys = keys
        self.gateway_key = identity.gateway_key()
        self.facts = facts if facts is not None else collect_facts()
        self.agent_name = identity.name or settings.name or self.facts.get("hostname")
        self.ledger = CommandLedger(settings.ledger_path)
        self.runner = ProcessRunner(
            output_cap=settings.output_cap_bytes, kill_grace=settings.kill_grace_seconds
        )
        self.judge = judge or CommandJudge(
            relay_id=identity.relay_id,
            gateway_key=self.gateway_key,
            agent_name=self.agent_name,
            host=HostFacts(
                os=str(self.facts.get("os") or "linux"),
                hostname=self.facts.get("hostname"),
                home=str(self.facts.get("home") or home_directory()),
                user=str(self.facts.get("user") or "root"),
                environment=settings.host_environment,
            ),
        )
        self.policies = PolicyBook(
            relay_id=identity.relay_id, org_id=identity.org_id, gateway_key=self.gateway_key
        )
        self._policy_arrived: asyncio.Condition | None = None
        self.backoff = Backoff(settings.backoff_base_seconds, settings.backoff_cap_seconds)
        self.status = STATUS_DISCONNECTED
        # Why the gateway last refused this relay ({"code", "detail", "at"}); cleared by a welcome.
        self.refusal: dict[str, str] | None = None
        self.last_heartbeat: str | None = None
        self.commands_run = 0
        self.results = Counter()
        self.reconnects = 0
        self.health_port: int | None = None
        self._started = time.monotonic()
        self._last_ack = time.monotonic()
        self._ws: ClientConnection | None = None
        self._stop: asyncio.Event | None = None
        self._stopping = False
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task] = set()
        self._attestation: dict[str, Any] | None = None
        self._work_pool = ThreadPoolExecutor(settings.max_concurrent_commands, thread_name_prefix="relay-cmd")
        # One thread for Shield: analyses are serialised and the warm-up runs first.
        self._judge_pool = ThreadPoolExecutor(1, thread_name_prefix="relay-shield")

    # ---- admission (synchronous: ledger and envelope checks, no awaits in between) ----

    def admit(self, message: dict[str, Any]) -> Admission:
        """Verify one ``command`` message and decide whether it may start.

        Between the ledger check and the claim there is no await, so two deliveries of
        one id can never both get ``run``.
        """
        envelope = message.get("envelope")
        if not isinstance(envelope, str) or not envelope:
            logger.warning("command message without envelope ignored")
            return Admission("ignore")
        try:
            claims = rp.verify_envelope(envelope, self.gateway_key, relay_id=self.identity.relay_id)
        except rp.EnvelopeError as exc:
            command_id = unverified_command_id(envelope)
            logger.warning("envelope refused command_id=%s reason=%r", command_id, exc.reason)
            if command_id is None:
                return Admission("ignore")
            known = self._known_outcome(command_id)
            if known is not None:
                return known
            # Not stored: nothing ran, and a forged id must not poison the ledger.
            return Admission("reply", command_id, result=refused_result(command_id, [exc.reason]))
        command_id = claims.get("jti")
        if not isinstance(command_id, str) or not command_id:
            logger.warning("envelope without usable jti ignored")
            return Admission("ignore")
        known = self._known_outcome(command_id)
        if known is not None:
            return known
        # False here means an unstarted claim from an earlier run (see _known_outcome).
        self.ledger.claim(command_id)
        return Admission("run", command_id, claims=claims)

    def _known_outcome(self, command_id: str) -> Admission | None:
        if command_id in self._in_flight:
            logger.info("duplicate delivery of running command command_id=%s", command_id)
            return Admission("ignore", command_id)
        entry = self.ledger.get(command_id)
        if entry is None:
            return None
        if entry.result is None and entry.started_at is None:
            # Claimed by an earlier run of the relay that stopped before starting anything:
            # provably never executed, so it may be judged and run now.
            logger.info("claimed but never started before restart, admitting command_id=%s", command_id)
            return None
        if entry.result is not None:
            logger.info("repeated command id, re-sending stored result command_id=%s", command_id)
            return Admission("reply", command_id, result=entry.result)
        logger.warning("repeated command id with unknown outcome command_id=%s", command_id)
        result = failed_result(command_id, OUTCOME_UNKNOWN)
        self.ledger.record_result(command_id, result)
        return Admission("reply", command_id, result=result)

    # ---- execution ----

    async def _perform(self, claims: dict[str, Any]) -> dict[str, Any]:
        command_id = claims["jti"]
        op = claims.get("op")
        loop = asyncio.get_running_loop()
        home = str(self.facts.get("home") or home_directory())
        cwd_claim = claims.get("cwd") or home
        if not isinstance(cwd_claim, str) or "\0" in cwd_claim:
            return failed_result(command_id, "cwd must be a string")
        cwd = os.path.normpath(os.path.join(home, os.path.expanduser(cwd_claim)))
        timeout = claims.get("timeout", 60)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            return failed_result(command_id, "timeout must be a positive number of seconds")
        if timeout > self.settings.max_timeout_seconds:
            return failed_result(
                command_id,
                f"timeout {timeout:g} s exceeds this relay's maximum {self.settings.max_timeout_seconds:g} s",
            )
        try:
            secret_values = open_secrets(claims.get("secrets"), self.keys.box_key.private_key)
        except SecretInjectionError as exc:
            return failed_result(command_id, f"{exc}; command not run")
        redactor = Redactor(secret_values)
        path = real_path = None
        if op in (rp.OP_READ, rp.OP_LIST):
            try:
                path = native_ops.resolve_path(claims.get("path"), cwd)
            except ValueError as exc:
                return failed_result(command_id, str(exc))
            # Shield's path check is lexical; the relay has the filesystem, so it also judges
            # where symlinks really lead, and then opens exactly that real path.
            real_path = os.path.realpath(path)

        policy = None
        if op in (rp.OP_EXEC, rp.OP_READ, rp.OP_LIST):
            try:
                policy = await self._policy_for(command_id, rp.envelope_policy(claims))
            except PolicyUnavailable as exc:
                logger.warning("policy unavailable, command refused command_id=%s reason=%r", command_id, exc.reason)
                refusal = policy_refusal(exc.reason)
                return refused_result(command_id, refusal.reasons, refusal)
        judgement = await loop.run_in_executor(
            self._judge_pool,
            functools.partial(self.judge.judge, claims, cwd=cwd, path=path, real_path=real_path, policy=policy),
        )
        logger.info(
            "judged command_id=%s op=%s decision=%s allowed=%s",
            command_id,
            op,
            judgement.decision,
            judgement.allowed,
        )
        if not judgement.allowed:
            return refused_result(command_id, judgement.reasons, judgement)

        extra: dict[str, Any] = {"decision": judgement.decision}
        env: dict[str, str] = {}
        if op == rp.OP_EXEC:
            try:
                env = build_environment(claims.get("env") if isinstance(claims.get("env"), dict) else {})
            except InvalidEnvironmentError as exc:
                return refused_result(command_id, [str(exc)], judgement)
            # Secrets reach the command's environment only (never its command line or the
            # relay's own environment), after the caller's variables so they cannot be shadowed.
            env.update(secret_values)
        # The point of no return: durably marked before anything runs.
        self.ledger.mark_started(command_id)
        if op == rp.OP_EXEC:
            run = functools.partial(
                self.runner.run_shell,
                str(claims.get("command", "")),
                cwd=cwd,
                env=env,
                timeout=float(timeout),
            )
            outcome: ExecOutcome = await loop.run_in_executor(self._work_pool, run)
        elif op == rp.OP_READ:
            outcome, encoding = await loop.run_in_executor(
                self._work_pool,
                functools.partial(native_ops.read_file, real_path, cap=self.settings.read_cap_bytes),
            )
            extra["encoding"] = encoding
        elif op == rp.OP_LIST:
            outcome = await loop.run_in_executor(
                self._work_pool, functools.partial(native_ops.list_directory, real_path)
            )
        elif op == rp.OP_SYSINFO:
            outcome = native_ops.sysinfo(self.facts)
        else:  # verify_envelope already rejects unknown ops; kept so a new op can never fall through
            return failed_result(command_id, f"unsupported operation {op!r}")
        self.commands_run += 1
        reasons = list(judgement.reasons)
        stderr = outcome.stderr
        if outcome.error:
            reasons.append(outcome.error)
            if outcome.status == STATUS_FAILED or not stderr:
                stderr = (
                    stderr + ("\n" if stderr and not stderr.endswith("\n") else "") + outcome.error
                ).lstrip("\n")
        if outcome.error:
            extra["error"] = outcome.error
        return result_message(
            command_id,
            outcome.status,
            exit_code=outcome.exit_code,
            stdout=redact_output(outcome.stdout, redactor, truncated=outcome.truncated),
            stderr=redact_output(stderr, redactor, truncated=outcome.truncated),
            duration_ms=outcome.duration_ms,
            truncated=outcome.truncated,
            relay_verdict=judgement.relay_verdict,
            reasons=reasons,
            **extra,
        )

    # ---- org policy (contracts §8) ----

    async def _policy_for(self, command_id: str, ref: rp.PolicyRef | None) -> Any:
        """The compiled policy ``ref`` names, asking the gateway for it when it is missing.

        Raises PolicyUnavailable when it is unusable, or still missing after the connect
        timeout: the caller refuses the command.
        """
        try:
            return self.policies.resolve(ref)
        except PolicyMissing:
            pass  # only a named org policy (never the default) can be missing
        logger.info("policy not held, requesting command_id=%s policy=%s", command_id, ref.version)
        await self._send({"action": rp.ACTION_POLICY_REQUEST, "sha256": ref.sha256})
        arrived = self._policy_condition()
        deadline = time.monotonic() + self.settings.connect_timeout_seconds
        async with arrived:
            while True:
                try:
                    return self.policies.resolve(ref)
                except PolicyMissing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise
                try:
                    await asyncio.wait_for(arrived.wait(), remaining)
                except TimeoutError:
                    pass

    def _policy_condition(self) -> asyncio.Condition:
        # Created on first use so it belongs to the running event loop.
        if self._policy_arrived is None:
            self._policy_arrived = asyncio.Condition()
        return self._policy_arrived

    async def _accept_policy(self, document: Any) -> None:
        """Verify and compile one policy document off the event loop, then wake waiters."""
        try:
            accepted = await asyncio.to_thread(self.policies.add, document)
        except rp.PolicyDocumentError as exc:
            logger.warning("policy document refused reason=%r", exc.reason)
            return
        logger.info("policy document accepted version=%s sha256=%s", accepted.version, accepted.sha256)
        arrived = self._policy_condition()
        async with arrived:
            arrived.notify_all()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _execute(self, claims: dict[str, Any]) -> None:
        command_id = claims["jti"]
        started = time.monotonic()
        try:
            result = await self._perform(claims)
        except Exception:
            logger.exception("relay error while handling command_id=%s", command_id)
            result = failed_result(command_id, "relay internal error while running the command")
        if not result.get("duration_ms"):
            result["duration_ms"] = int((time.monotonic() - started) * 1000)
        # Stored before the in-flight mark goes, so a duplicate in between sees the result.
        try:
            self.ledger.record_result(command_id, result)
        except sqlite3.Error:
            # Disk full or similar: the id stays claimed (never re-run); deliver the result anyway.
            logger.exception("could not store result command_id=%s", command_id)
        self._in_flight.discard(command_id)
        self.results[result["status"]] += 1
        logger.info(
            "command finished command_id=%s status=%s exit_code=%s duration_ms=%s",
            command_id,
            result["status"],
            result.get("exit_code"),
            result.get("duration_ms"),
        )
        await self._send(result)

    async def _on_command(self, message: dict[str, Any]) -> None:
        if self._stopping:
            # Not claimed, so the gateway re-sends it on the next session's sync.
            logger.info("shutting down, command not accepted")
            return
        try:
            admission = self.admit(message)
        except sqlite3.Error:
            # Without a durable claim nothing may run; the gateway re-sends it on the next sync.
            logger.exception("ledger unavailable, command not accepted")
            return
        if admission.action == "reply" and admission.result is not None:
            await self._send(admission.result)
        elif admission.action == "ignore" and admission.command_id in self._in_flight:
            await self._send({"action": rp.ACTION_ACK, "command_id": admission.command_id})
        elif admission.action == "run" and admission.claims is not None:
            self._in_flight.add(admission.command_id)
            await self._send({"action": rp.ACTION_ACK, "command_id": admission.command_id})
            self._spawn(self._execute(admission.claims))

    # ---- session ----

    async def _send(self, message: dict[str, Any]) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(json.dumps(message))
        except (ConnectionClosed, OSError) as exc:
            logger.info("send failed action=%s error=%s", message.get("action"), type(exc).__name__)
            return False
        return True

    def _dial_url(self) -> str:
        parts = urllib.parse.urlsplit(self.identity.ws_url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        query += [("relay_id", self.identity.relay_id), ("token", self.identity.relay_credential)]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    def _hello(self) -> dict[str, Any]:
        return {
            "action": rp.ACTION_HELLO,
            "relay_id": self.identity.relay_id,
            "version": relay_version(),
            "facts": self.facts,
            "attestation": self._attestation,
            "signing_public_key": self.keys.signing_public_key_b64,
        }

    async def _after_welcome(self) -> None:
        pending = self.ledger.outbox()
        for result in pending:
            if not await self._send(result):
                return
        dropped = self.ledger.prune_outbox(self.settings.outbox_retention_seconds)
        logger.info("outbox re-sent count=%d dropped_expired=%d", len(pending), dropped)
        await self._send({"action": rp.ACTION_SYNC})

    async def _heartbeats(self, ws: ClientConnection, welcomed: asyncio.Event) -> None:
        try:
            await asyncio.wait_for(welcomed.wait(), timeout=self.settings.connect_timeout_seconds)
        except TimeoutError:
            logger.warning(
                "no welcome from gateway within %ss, re-dialling", self.settings.connect_timeout_seconds
            )
            await ws.close()
            return
        interval = self.settings.heartbeat_seconds
        while True:
            await asyncio.sleep(interval)
            if time.monotonic() - self._last_ack > interval * MISSED_HEARTBEATS_ALLOWED + interval:
                logger.warning("heartbeat acks missing, re-dialling")
                await ws.close()
                return
            await self._send({"action": rp.ACTION_HEARTBEAT, "ts": utc_now_iso()})
            self.ledger.prune_outbox(self.settings.outbox_retention_seconds)

    async def _session(self, ws: ClientConnection) -> bool:
        """Run one connected session until it closes; returns whether it was welcomed."""
        welcomed = asyncio.Event()
        await ws.send(json.dumps(self._hello()))
        heartbeat = asyncio.create_task(self._heartbeats(ws, welcomed))
        try:
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except (TypeError, ValueError):
                    logger.warning("non-JSON message from gateway ignored")
                    continue
                if not isinstance(message, dict):
                    logger.warning("non-object message from gateway ignored")
                    continue
                kind = message.get("type")
                if kind == rp.TYPE_WELCOME:
                    if not welcomed.is_set():
                        welcomed.set()
                        self.status = STATUS_CONNECTED
                        self.refusal = None
                        self._last_ack = time.monotonic()
                        self.backoff.reset()
                        logger.info("session established relay_id=%s", self.identity.relay_id)
                        if "policy" in message:
                            self._spawn(self._accept_policy(message["policy"]))
                        self._spawn(self._after_welcome())
                elif kind == rp.TYPE_HEARTBEAT_ACK:
                    self._last_ack = time.monotonic()
                    self.last_heartbeat = utc_now_iso()
                elif kind == rp.TYPE_COMMAND:
                    await self._on_command(message)
                elif kind == rp.TYPE_POLICY:
                    self._spawn(self._accept_policy(message.get("document")))
                elif kind == rp.TYPE_ERROR:
                    logger.error(
                        "gateway error code=%s detail=%r", message.get("code"), message.get("detail")
                    )
                    if message.get("code") in REFUSAL_CODES:
                        self._refused(str(message.get("code")), str(message.get("detail") or "")[:500])
                else:
                    logger.debug("unknown message type=%r ignored", kind)
        finally:
            heartbeat.cancel()
        return welcomed.is_set()

    async def _connection_loop(self) -> None:
        assert self._stop is not None
        headers = {
            "Authorization": f"Bearer {self.identity.relay_credential}",
            "X-Flowlink-Relay-Id": self.identity.relay_id,
        }
        while not self._stop.is_set():
            self.status = STATUS_CONNECTING
            try:
                async with connect(
                    self._dial_url(),
                    additional_headers=headers,
                    open_timeout=self.settings.connect_timeout_seconds,
                    ping_interval=self.settings.heartbeat_seconds,
                    ping_timeout=self.settings.heartbeat_seconds,
                    close_timeout=2,
                    max_size=4 * 1024 * 1024,
                ) as ws:
                    self._ws = ws
                    await self._session(ws)
                    logger.info("session closed code=%s", ws.close_code)
            except InvalidStatus as exc:
                status = exc.response.status_code
                logger.error("gateway refused the session status=%s", status)
                if status in (401, 403):
                    self._refused(
                        "credential_refused",
                        f"the gateway refused this relay's credential (HTTP {status}): it was removed or "
                        "replaced by a re-enrollment; enroll it again with a new token",
                    )
            except (TimeoutError, OSError, WebSocketException) as exc:
                logger.warning("gateway unreachable error=%s detail=%s", type(exc).__name__, exc)
            finally:
                self._ws = None
                self.status = STATUS_REFUSED if self.refusal else STATUS_DISCONNECTED
            if self._stop.is_set():
                break
            # Refused: retry rarely (an admin may re-enable it), never hammer the gateway.
            delay = REFUSED_RETRY_SECONDS if self.refusal else self.backoff.next_delay()
            self.reconnects += 1
            logger.info("reconnecting delay_s=%.3f attempt=%d", delay, self.backoff.attempt)
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    def _refused(self, code: str, detail: str) -> None:
        self.refusal = {"code": code, "detail": detail, "at": utc_now_iso()}
        logger.error("gateway refuses this relay code=%s; retrying every %ss", code, REFUSED_RETRY_SECONDS)

    # ---- health ----

    def snapshot(self) -> dict[str, Any]:
        status = self.status
        if status != STATUS_CONNECTED and self.refusal:
            status = STATUS_REFUSED
        return {
            "status": status,
            "refusal": self.refusal,
            "relay_id": self.identity.relay_id,
            "name": self.agent_name,
            "last_heartbeat": self.last_heartbeat,
            "commands_run": self.commands_run,
            "commands_running": len(self._in_flight),
            "outbox": self.ledger.outbox_size(),
            "uptime": round(time.monotonic() - self._started, 3),
            "version": relay_version(),
            "shield": "ready" if self.judge.available else "loading",
            "policy": {
                "versions": self.policies.versions(),
                "accepted": self.policies.accepted,
                "rejected": self.policies.rejected,
            },
        }

    def metrics(self) -> str:
        labels = f'relay_id="{self.identity.relay_id}",version="{relay_version()}"'
        lines = [
            "# HELP flowlink_relay_info Relay identity.",
            "# TYPE flowlink_relay_info gauge",
            f"flowlink_relay_info{{{labels}}} 1",
            "# HELP flowlink_relay_connected 1 while a welcomed gateway session is up.",
            "# TYPE flowlink_relay_connected gauge",
            f"flowlink_relay_connected {1 if self.status == STATUS_CONNECTED else 0}",
            "# HELP flowlink_relay_uptime_seconds Seconds since the daemon started.",
            "# TYPE flowlink_relay_uptime_seconds gauge",
            f"flowlink_relay_uptime_seconds {time.monotonic() - self._started:.3f}",
            "# HELP flowlink_relay_commands_run_total Commands and native operations executed.",
            "# TYPE flowlink_relay_commands_run_total counter",
            f"flowlink_relay_commands_run_total {self.commands_run}",
            "# HELP flowlink_relay_results_total Results produced, by status.",
            "# TYPE flowlink_relay_results_total counter",
        ]
        for status in sorted(rp.RESULT_STATUSES):
            lines.append(f'flowlink_relay_results_total{{status="{status}"}} {self.results.get(status, 0)}')
        lines += [
            "# HELP flowlink_relay_commands_running Commands running now.",
            "# TYPE flowlink_relay_commands_running gauge",
            f"flowlink_relay_commands_running {len(self._in_flight)}",
            "# HELP flowlink_relay_outbox_results Results kept for re-delivery.",
            "# TYPE flowlink_relay_outbox_results gauge",
            f"flowlink_relay_outbox_results {self.ledger.outbox_size()}",
            "# HELP flowlink_relay_reconnects_total Reconnect attempts since start.",
            "# TYPE flowlink_relay_reconnects_total counter",
            f"flowlink_relay_reconnects_total {self.reconnects}",
            "# HELP flowlink_relay_policy_documents_total Org policy documents received, by outcome.",
            "# TYPE flowlink_relay_policy_documents_total counter",
            f'flowlink_relay_policy_documents_total{{outcome="accepted"}} {self.policies.accepted}',
            f'flowlink_relay_policy_documents_total{{outcome="rejected"}} {self.policies.rejected}',
        ]
        return "\n".join(lines) + "\n"

    # ---- lifecycle ----

    def request_stop(self, signum: int | None = None) -> None:
        if self._stop is not None and not self._stop.is_set():
            logger.info("stop requested signal=%s", signal.Signals(signum).name if signum else None)
            self._stopping = True
            self._stop.set()

    async def _load_attestation(self) -> None:
        try:
            self._attestation = await asyncio.get_running_loop().run_in_executor(None, measure_attestation)
        except Exception:
            logger.exception("relay attestation measurement failed; hello carries attestation=null")

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; returns the exit code (0 after a graceful stop).

        Raises HealthPortInUseError when the health port is taken, RelayError when
        another relay holds the state dir.
        """
        lock = StateDirLock(self.settings.state_dir / "relay.lock")
        lock.acquire()
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        health = HealthServer(
            self.settings.health_host, self.settings.health_port, snapshot=self.snapshot, metrics=self.metrics
        )
        try:
            self.health_port = await health.start()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop, signum)
            write_private_file(
                self.settings.runtime_path,
                json.dumps(
                    {
                        "pid": os.getpid(),
                        "health_host": self.settings.health_host,
                        "health_port": self.health_port,
                        "started_at": utc_now_iso(),
                    }
                ).encode("utf-8"),
            )
            logger.info(
                "relay starting relay_id=%s health=%s:%d",
                self.identity.relay_id,
                self.settings.health_host,
                self.health_port,
            )
            self.ledger.prune_commands(LEDGER_RETENTION_SECONDS)
            await self._load_attestation()
            loop.run_in_executor(self._judge_pool, self.judge.warm_up)
            connection = asyncio.create_task(self._connection_loop())
            await self._stop.wait()
            await self._shutdown(connection)
        finally:
            await health.close()
            self._work_pool.shutdown(wait=False, cancel_futures=True)
            self._judge_pool.shutdown(wait=False, cancel_futures=True)
            self.ledger.close()
            try:
                self.settings.runtime_path.unlink()
            except FileNotFoundError:
                pass
            lock.release()
        logger.info("relay stopped")
        return 0

    async def _shutdown(self, connection: asyncio.Task) -> None:
        running = {task for task in self._tasks if not task.done()}
        if running:
            logger.info(
                "waiting for running commands count=%d grace_s=%s",
                len(running),
                self.settings.shutdown_grace_seconds,
            )
            _, pending = await asyncio.wait(running, timeout=self.settings.shutdown_grace_seconds)
            if pending:
                killed = self.runner.kill_all("relay shutting down; command killed")
                logger.warning("grace period over, killed process groups count=%d", killed)
                await asyncio.wait(pending, timeout=self.settings.kill_grace_seconds + 5)
        connection.cancel()
        await asyncio.gather(connection, return_exceptions=True)
