"""The exec service's decisions with in-memory fakes: what is dispatched, recorded and refused."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from flowlink import commands as commands_module
from flowlink import relay_protocol
from flowlink.auth import AuthContext
from flowlink.commands import CommandService, ExecRequest, combined_verdict
from flowlink.errors import (
    AgentNotFound,
    AgentOffline,
    CommandDenied,
    Conflict,
    InvalidInput,
)
from flowlink.relays import CommandSignals, ConnectionGone
from flowlink.settings import Settings
from flowlink.storage import TERMINAL_STATUSES

pytestmark = pytest.mark.unit

ORG = "org_a"
AGENT_KEY = AuthContext(org_id=ORG, key_id="key_1", scope="agent", name="ci")


@dataclass
class FakeVerdict:
    decision: str
    score: int = 0
    reasons: list[str] = field(default_factory=lambda: ["because"])

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "score": self.score, "reasons": list(self.reasons)}


class FakeStore:
    """Just enough of flowlink.storage.Store for CommandService, with the same org scoping."""

    def __init__(self) -> None:
        self.agents: dict[str, SimpleNamespace] = {}
        self.commands: dict[str, SimpleNamespace] = {}

    def add_agent(
        self, relay_id: str, name: str, *, org_id: str = ORG, online: bool = True
    ) -> SimpleNamespace:
        agent = SimpleNamespace(
            relay_id=relay_id,
            org_id=org_id,
            name=name,
            hostname=f"{name}.example",
            status="online" if online else "offline",
            connection_id="conn-" + relay_id if online else None,
            last_seen=None,
            enrolled_at="2026-11-25T09:00:00.000000Z",
            version="1",
            facts={},
        )
        self.agents[relay_id] = agent
        return agent

    def get_agent(self, org_id: str, relay_id: str):
        agent = self.agents.get(relay_id)
        return agent if agent is not None and agent.org_id == org_id else None

    def find_agents_by_name(self, org_id: str, name: str):
        return [a for a in self.agents.values() if a.org_id == org_id and a.name == name]

    def list_agents(self, org_id: str):
        return [a for a in self.agents.values() if a.org_id == org_id]

    def mark_agent_offline(self, relay_id: str, connection_id: str | None, now: str) -> bool:
        agent = self.agents[relay_id]
        agent.status, agent.connection_id = "offline", None
        return True

    def create_command(self, **fields: Any) -> SimpleNamespace | None:
        if fields["command_id"] in self.commands:
            return None
        defaults = dict.fromkeys(
            (
                "path",
                "cwd",
                "exit_code",
                "stdout",
                "stderr",
                "duration_ms",
                "truncated",
                "error",
                "relay_verdict",
                "completed_at",
                "pending_env",
                "idempotency_key",
                "dispatched_at",
                "approval_id",
            ),
        )
        record = SimpleNamespace(**{"grant": None, **defaults, **fields})
        self.commands[fields["command_id"]] = record
        return record

    def get_org(self, org_id: str):
        return SimpleNamespace(org_id=org_id, approvers=[], approvals_required=1, approval_timeout_seconds=600)

    def get_command(self, org_id: str, command_id: str):
        record = self.commands.get(command_id)
        return record if record is not None and record.org_id == org_id else None

    def transition_command(self, command_id, from_statuses, to_status, *, remove=(), **fields) -> bool:
        record = self.commands[command_id]
        if record.status not in from_statuses:
            return False
        record.status = to_status
        for name, value in fields.items():
            if value is not None:
                setattr(record, name, value)
        for name in remove:
            setattr(record, name, None)
        return True


class FakeChannel:
    def __init__(self, store: FakeStore, *, answer: dict[str, Any] | None = None, gone: bool = False):
        self.store = store
        self.sent: list[tuple[str, dict]] = []
        self.answer = answer
        self.gone = gone

    def send(self, connection_id: str, message: dict) -> None:
        if self.gone:
            raise ConnectionGone(connection_id)
        self.sent.append((connection_id, message))
        if self.answer is not None:
            # The relay answers at once, as ws_message would store it.
            command_id = next(r.command_id for r in self.store.commands.values() if r.status == "dispatched")
            self.store.transition_command(command_id, ["dispatched"], **self.answer)


@pytest.fixture
def audit_events(monkeypatch):
    events: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(
        commands_module.audit,
        "append_event",
        lambda org, kind, fields, actor=None: events.append((org, kind, fields)),
    )
    return events


@pytest.fixture
def verdict(monkeypatch):
    current = {"value": FakeVerdict("auto")}
    monkeypatch.setattr(commands_module.shield, "analyze", lambda command, context: current["value"])

    def set_decision(decision: str, *reasons: str) -> None:
        current["value"] = FakeVerdict(decision, 50, list(reasons) or ["because"])

    return set_decision


def service(store: FakeStore, channel: FakeChannel, *, wait: float = 5.0) -> CommandService:
    settings = Settings(
        signing_key_pem=relay_protocol.private_key_to_pem(relay_protocol.generate_signing_key()),
        exec_wait_seconds=wait,
    )
    clock = {"now": 0.0}

    def sleep(seconds: float) -> None:
        clock["now"] += seconds

    return CommandService(settings, store, channel, sleep=sleep, monotonic=lambda: clock["now"])


COMPLETED = {
    "to_status": "completed",
    "exit_code": 0,
    "stdout": "hi\n",
    "stderr": "",
    "duration_ms": 4,
    "relay_verdict": {"decision": "auto", "score": 0, "reasons": []},
}


def test_commands_exec_dispatches_a_signed_envelope_and_returns_the_result(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    channel = FakeChannel(store, answer=COMPLETED)
    view = service(store, channel).exec(
        AGENT_KEY, ExecRequest(agent="web-01", command="echo hi", env={"A": "1"})
    )
    assert view["status"] == "completed" and view["stdout"] == "hi\n" and view["exit_code"] == 0
    ((connection_id, message),) = channel.sent
    assert connection_id == "conn-rly_1" and message["type"] == "command"
    assert [kind for _, kind, _ in audit_events] == ["exec.dispatched"]


def test_commands_soft_ask_runs(audit_events, verdict):
    verdict("soft_ask", "restarts a service")
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    view = service(store, FakeChannel(store, answer=COMPLETED)).exec(
        AGENT_KEY, ExecRequest(agent="web-01", command="x")
    )
    assert view["status"] == "completed" and view["verdict"]["decision"] == "soft_ask"


def test_commands_deny_records_and_dispatches_nothing(audit_events, verdict):
    verdict("deny", "wipes the disk")
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    channel = FakeChannel(store)
    with pytest.raises(CommandDenied, match="wipes the disk"):
        service(store, channel).exec(AGENT_KEY, ExecRequest(agent="web-01", command="rm -rf /"))
    assert channel.sent == []
    (record,) = store.commands.values()
    assert record.status == "denied"
    assert [kind for _, kind, _ in audit_events] == ["exec.denied"]


class FakeApprovals:
    """Records approval requests instead of starting a state machine."""

    def __init__(self, *, fail: bool = False):
        self.requests: list[SimpleNamespace] = []
        self.hostnames: list[str | None] = []
        self.fail = fail

    def request(self, *, org, command, verdict, requested_by, hostname=None):
        if self.fail:
            raise RuntimeError("state machine unavailable")
        self.requests.append(command)
        self.hostnames.append(hostname)
        return SimpleNamespace(approval_id="apr_test1", expires_at="2026-11-25T10:10:00.000000Z")

    def get(self, org_id, approval_id):
        return SimpleNamespace(approval_id=approval_id, expires_at="2026-11-25T10:10:00.000000Z")


def test_commands_hard_ask_waits_for_approval_and_dispatches_nothing(audit_events, verdict):
    verdict("hard_ask", "reboots the host")
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    channel = FakeChannel(store)
    svc = service(store, channel)
    svc._approvals = approvals = FakeApprovals()
    view = svc.exec(AGENT_KEY, ExecRequest(agent="web-01", command="sudo reboot", env={"A": "1"}))
    assert view["status"] == "pending_approval" and view["approval_id"] == "apr_test1"
    assert "flowlink approve apr_test1" in view["message"]
    assert channel.sent == []
    (record,) = store.commands.values()
    assert record.pending_env == {"A": "1"} and approvals.requests == [record]
    # Approvers see which host the command would run on.
    assert approvals.hostnames == ["web-01.example"]
    assert [kind for _, kind, _ in audit_events] == ["exec.pending_approval"]


@pytest.mark.parametrize("key", [None, "deploy-42"])
def test_commands_hard_ask_message_mentions_exec_again_only_with_an_idempotency_key(audit_events, verdict, key):
    verdict("hard_ask", "reboots the host")
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    svc = service(store, FakeChannel(store))
    svc._approvals = FakeApprovals()
    view = svc.exec(AGENT_KEY, ExecRequest(agent="web-01", command="sudo reboot", idempotency_key=key))
    message = view["message"]
    assert f"command_id={view['command_id']!r}" in message and "history tool" in message
    if key is None:
        assert "same idempotency_key" not in message
        assert "tasks/get" in message and "no idempotency_key" in message
    else:
        assert "calling exec again with the same idempotency_key ('deploy-42')" in message


def test_commands_hard_ask_fails_closed_when_the_approval_cannot_start(audit_events, verdict):
    verdict("hard_ask", "reboots the host")
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    svc = service(store, FakeChannel(store))
    svc._approvals = FakeApprovals(fail=True)
    with pytest.raises(RuntimeError):
        svc.exec(AGENT_KEY, ExecRequest(agent="web-01", command="sudo reboot"))
    (record,) = store.commands.values()
    assert record.status == "failed" and record.pending_env is None


def test_commands_offline_agent_fails_the_record_and_queues_nothing(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01", online=False)
    channel = FakeChannel(store)
    with pytest.raises(AgentOffline, match="offline"):
        service(store, channel).exec(AGENT_KEY, ExecRequest(agent="web-01", command="echo hi"))
    (record,) = store.commands.values()
    assert record.status == "failed" and channel.sent == []


def test_commands_connection_gone_marks_the_agent_offline(audit_events, verdict):
    store = FakeStore()
    agent = store.add_agent("rly_1", "web-01")
    with pytest.raises(AgentOffline):
        service(store, FakeChannel(store, gone=True)).exec(
            AGENT_KEY, ExecRequest(agent="web-01", command="echo hi")
        )
    assert agent.status == "offline"
    (record,) = store.commands.values()
    assert record.status == "failed" and record.pending_env is None


def test_commands_wait_gives_a_handle_when_the_relay_is_slow(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    view = service(store, FakeChannel(store), wait=2.0).exec(
        AGENT_KEY, ExecRequest(agent="web-01", command="sleep 100")
    )
    assert view["status"] == "running" and view["command_id"] in view["message"]
    assert "not yet acknowledged" in view["message"]
    assert store.commands[view["command_id"]].status not in TERMINAL_STATUSES


def test_commands_idempotent_retry_returns_the_first_result(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    channel = FakeChannel(store, answer=COMPLETED)
    svc = service(store, channel)
    request = ExecRequest(agent="web-01", command="echo hi", idempotency_key="k1")
    first, second = svc.exec(AGENT_KEY, request), svc.exec(AGENT_KEY, request)
    assert first["command_id"] == second["command_id"] == relay_protocol.derive_command_id(ORG, "rly_1", "k1")
    assert len(channel.sent) == 1 and len(store.commands) == 1
    with pytest.raises(Conflict):
        svc.exec(AGENT_KEY, ExecRequest(agent="web-01", command="echo other", idempotency_key="k1"))


def test_commands_unknown_agent_lists_the_orgs_agents_only(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    store.add_agent("rly_2", "db-01", org_id="org_other")
    with pytest.raises(AgentNotFound) as raised:
        service(store, FakeChannel(store)).exec(AGENT_KEY, ExecRequest(agent="rly_2", command="echo hi"))
    assert "web-01" in raised.value.detail and "db-01" not in raised.value.detail
    assert [a["name"] for a in raised.value.extra["agents"]] == ["web-01"]


def test_commands_approver_keys_cannot_exec(audit_events, verdict):
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    approver = AuthContext(org_id=ORG, key_id="key_2", scope="approver", name="ops")
    from flowlink.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        service(store, FakeChannel(store)).exec(approver, ExecRequest(agent="web-01", command="echo hi"))


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"command": ""}, "command"),
        ({"command": "a\x00b"}, "command"),
        ({"cwd": "relative/dir"}, "cwd"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"env": {"BAD NAME": "x"}}, "env"),
        ({"env": {"A": 5}}, "env"),
        ({"idempotency_key": ""}, "idempotency_key"),
        ({"agent": " "}, "agent"),
    ],
)
def test_commands_exec_request_validation_names_the_field(changes, field_name):
    request = ExecRequest(**{"agent": "web-01", "command": "echo hi", **changes})
    with pytest.raises(InvalidInput, match=field_name):
        request.validate()


def test_commands_combined_verdict_takes_the_stricter_decision():
    assert combined_verdict({"decision": "auto"}, {"decision": "deny"})["decision"] == "deny"
    assert combined_verdict({"decision": "soft_ask"}, {"decision": "auto"})["decision"] == "soft_ask"
    assert combined_verdict({"decision": "auto"}, None)["decision"] == "auto"
    assert combined_verdict(None, None)["decision"] is None


def test_commands_semantic_setting_uses_a_level_2_shield(audit_events, monkeypatch):
    built: list[bool] = []

    class FakeShield:
        def __init__(self, semantic):
            built.append(semantic)

        def analyze(self, command, context):
            return FakeVerdict("deny", 90, ["semantic: wipes data"])

    monkeypatch.setattr(commands_module.shield, "Shield", FakeShield)
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    svc = service(store, FakeChannel(store))
    svc.settings = Settings(signing_key_pem=svc.settings.signing_key_pem, semantic=True)
    for _ in range(2):
        with pytest.raises(CommandDenied, match="semantic"):
            svc.exec(AGENT_KEY, ExecRequest(agent="web-01", command="tidy up"))
    assert built == [True]


def test_commands_wait_takes_the_signalled_record_without_reading_it_back(audit_events, verdict):
    # On the local stack the relay's result is stored by this process: the notification
    # carries the stored record, so the waiter needs no read of the commands table.
    store = FakeStore()
    store.add_agent("rly_1", "web-01")
    signals = CommandSignals()
    reads: list[str] = []
    original_get = store.get_command

    def counting_get(org_id: str, command_id: str):
        reads.append(command_id)
        return original_get(org_id, command_id)

    store.get_command = counting_get

    class AnsweringChannel(FakeChannel):
        def send(self, connection_id: str, message: dict) -> None:
            super().send(connection_id, message)
            record = next(r for r in store.commands.values() if r.status == "dispatched")
            stored = SimpleNamespace(**{**vars(record), "status": "completed", "exit_code": 0, "stdout": "ok\n"})

            # Stored (and signalled) before exec starts waiting, as with a fast relay.
            signals.notify(record.command_id, stored)

    settings = Settings(
        signing_key_pem=relay_protocol.private_key_to_pem(relay_protocol.generate_signing_key()),
        exec_wait_seconds=5.0,
    )
    view = CommandService(settings, store, AnsweringChannel(store), signals=signals).exec(
        AGENT_KEY, ExecRequest(agent="web-01", command="echo ok")
    )
    assert view["status"] == "completed" and view["stdout"] == "ok\n"
    assert reads == []
