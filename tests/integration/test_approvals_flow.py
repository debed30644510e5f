"""hard_ask approvals on a real moto server that really executes the approval state machine.

The state machine's Lambda tasks run our handlers in-process through the Lambda bridge
(so this module runs its own in-process moto server, whatever AWS_ENDPOINT_URL says);
Telegram is the local fake Bot API. Covers approve (dispatch once with a valid grant),
deny, timeout, two-person rule, double and late decisions, agent keys refused, another
org's approval id, and a Bot API outage that still times out into a denial.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass

import pytest
from flowlink import audit, relay_protocol
from flowlink.approvals import runtime
from flowlink.approvals.dispatch import dispatch_approved_command
from flowlink.approvals.service import ApprovalNotFound, ApprovalService, Approver, approver_for_key
from flowlink.errors import PermissionDenied
from flowlink.grants import verify_grant
from flowlink.local.fake_telegram import FakeTelegram
from flowlink.settings import Settings, get_settings
from flowlink.storage import Store, utc_now_iso

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REGION = "us-east-1"
APPROVER_TELEGRAM_ID = 4242
SECOND_APPROVER_TELEGRAM_ID = 4343


@dataclass
class Sent:
    connection_id: str
    message: dict


class RecordingChannel:
    """Stands in for the relay connection: records what would be posted to the relay."""

    def __init__(self):
        self.sent: list[Sent] = []

    def send(self, connection_id, message):
        self.sent.append(Sent(connection_id, message))


@pytest.fixture(scope="module")
def stack(sfn_moto, provision_with_bridge):
    """This module's moto server executing state machines (conftest's ``sfn_moto``), with the
    approval machine provisioned from template.yaml (DefinitionUri + DefinitionSubstitutions)
    and its task functions running our handlers in-process through the Lambda bridge."""
    prefix = f"apr{uuid.uuid4().hex[:8]}"
    report = provision_with_bridge(prefix, REGION)
    machine = report.state_machines["ApprovalStateMachine"]
    telegram = FakeTelegram().start()
    yield {"endpoint": sfn_moto, "prefix": prefix, "machine": machine, "telegram": telegram, "report": report}
    telegram.stop()


@pytest.fixture
def env(stack, monkeypatch):
    signing_key = relay_protocol.generate_signing_key()
    values = {
        "AWS_ENDPOINT_URL": stack["endpoint"],
        "FLOWLINK_ENV": "local",
        "FLOWLINK_TABLE_PREFIX": stack["prefix"],
        "FLOWLINK_APPROVAL_STATE_MACHINE_ARN": stack["machine"],
        "FLOWLINK_SIGNING_KEY": relay_protocol.private_key_to_pem(signing_key),
        "TELEGRAM_API_BASE": stack["telegram"].api_base,
        "TELEGRAM_BOT_TOKEN": "123:fake",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    # The audit chain's process-wide store is built from settings: rebuild it for this
    # server now, and drop it afterwards so later tests never write to a stopped server.
    get_settings.cache_clear()
    audit.set_default_store(None)
    settings = Settings.from_env()
    channel = RecordingChannel()

    def dispatcher(**kwargs):
        return dispatch_approved_command(**kwargs, settings=settings, channel=channel)

    service = ApprovalService(settings, dispatcher=dispatcher)
    monkeypatch.setattr(runtime, "approval_service", lambda: service)
    yield {"settings": settings, "service": service, "channel": channel, "key": signing_key, "store": Store(settings)}
    get_settings.cache_clear()
    audit.set_default_store(None)


def _org(store: Store, *, needed: int = 1, timeout: int = 600, approvers=None) -> str:
    org_id = "org_" + uuid.uuid4().hex[:10]
    org = store.create_org(org_id, org_id)
    org.approvers = approvers if approvers is not None else [
        {"name": "alice", "telegram_user_id": APPROVER_TELEGRAM_ID},
        {"name": "bob", "telegram_user_id": SECOND_APPROVER_TELEGRAM_ID},
    ]
    org.approval_timeout_seconds = timeout
    org.approvals_required = needed
    org.save()
    return org_id


def _pending_command(store: Store, org_id: str, command: str = "systemctl restart nginx") -> tuple[str, str]:
    relay_id = "rly_" + uuid.uuid4().hex[:10]
    now = utc_now_iso()
    store.put_agent(
        relay_id=relay_id, org_id=org_id, name="web-01", credential_hash="x", enrolled_at=now,
        status="online", connection_id="conn-" + relay_id, hostname="web-01.internal",
    )
    command_id = relay_protocol.new_command_id()
    store.create_command(
        command_id=command_id, org_id=org_id, relay_id=relay_id, agent_key=f"{org_id}#{relay_id}",
        agent_name="web-01", op="exec", command=command, timeout=30, created_at=now, status="pending_approval",
        gateway_verdict={"decision": "hard_ask", "score": 70, "reasons": ["restarts a service"]}, decision="hard_ask",
    )
    return command_id, relay_id


def _request(env, org_id, command_id):
    store = env["store"]
    org = store.get_org(org_id)
    record = store.get_command(org_id, command_id)
    return env["service"].request(org=org, command=record, verdict=record.gateway_verdict, requested_by="key_agent")


def _wait_status(env, org_id, approval_id, wanted, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = env["service"].get(org_id, approval_id)
        if item.status in wanted and (item.status != "approved" or item.dispatched_at):
            return item
        time.sleep(0.05)
    raise AssertionError(f"approval {approval_id} stayed {item.status}")


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


ALICE = Approver(f"telegram:{APPROVER_TELEGRAM_ID}", "alice", "telegram")
BOB = Approver(f"telegram:{SECOND_APPROVER_TELEGRAM_ID}", "bob", "telegram")


def test_approval_approve_dispatches_once_with_a_grant_for_exactly_that_command(env, stack):
    store = env["store"]
    org_id = _org(store)
    command_id, relay_id = _pending_command(store, org_id)
    approval = _request(env, org_id, command_id)
    message = _wait_for(lambda: [c for c in stack["telegram"].calls("sendMessage") if approval.approval_id in c.payload["text"]])
    assert "systemctl restart nginx" in message[0].payload["text"]
    assert "task" not in json.dumps(message[0].payload["reply_markup"]).lower()

    result = env["service"].decide(org_id, approval.approval_id, "approve", ALICE)
    assert result.recorded and result.status == "approved"
    item = _wait_status(env, org_id, approval.approval_id, {"approved"})
    sent = _wait_for(lambda: env["channel"].sent)
    assert len(sent) == 1 and sent[0].connection_id == "conn-" + relay_id
    claims = relay_protocol.verify_envelope(sent[0].message["envelope"], env["key"].public_key(), relay_id=relay_id)
    grant = verify_grant(claims["grant"], env["key"].public_key(), relay_id=relay_id, command_id=command_id, command=claims["command"])
    assert grant["jti"] == approval.approval_id and grant["approvers"] == ["alice"]
    assert store.get_command(org_id, command_id).status == "dispatched"
    assert item.task_token  # kept server-side
    assert "task_token" not in env["service"].public_view(item)

    # Double press and a late press change nothing; nothing is sent again.
    again = env["service"].decide(org_id, approval.approval_id, "approve", ALICE)
    late = env["service"].decide(org_id, approval.approval_id, "deny", BOB)
    assert not again.recorded and not late.recorded and late.status == "approved"
    time.sleep(0.5)
    assert len(env["channel"].sent) == 1


def test_approval_deny_never_dispatches_and_closes_the_command(env):
    store = env["store"]
    org_id = _org(store)
    command_id, _ = _pending_command(store, org_id)
    approval = _request(env, org_id, command_id)
    _wait_for(lambda: env["service"].get(org_id, approval.approval_id).task_token)
    assert env["service"].decide(org_id, approval.approval_id, "deny", BOB, comment="not today").status == "denied"
    _wait_for(lambda: store.get_command(org_id, command_id).status == "denied")
    assert env["channel"].sent == []


def test_approval_timeout_denies_even_when_the_bot_api_is_down(env, stack):
    store = env["store"]
    stack["telegram"].set_mode("error")
    try:
        org_id = _org(store, timeout=2)
        command_id, _ = _pending_command(store, org_id)
        approval = _request(env, org_id, command_id)
        item = _wait_status(env, org_id, approval.approval_id, {"timed_out"})
        assert any("telegram" in error for error in item.notify_errors or [])
        _wait_for(lambda: store.get_command(org_id, command_id).status == "timeout")
        late = env["service"].decide(org_id, approval.approval_id, "approve", ALICE)
        assert not late.recorded and late.status == "timed_out"
        assert env["channel"].sent == []
    finally:
        stack["telegram"].set_mode("ok")


def test_approval_two_person_rule_needs_two_different_approvers(env):
    store = env["store"]
    org_id = _org(store, needed=2)
    command_id, _ = _pending_command(store, org_id)
    approval = _request(env, org_id, command_id)
    _wait_for(lambda: env["service"].get(org_id, approval.approval_id).task_token)
    first = env["service"].decide(org_id, approval.approval_id, "approve", ALICE)
    assert first.recorded and first.status == "pending"
    assert not env["service"].decide(org_id, approval.approval_id, "approve", ALICE).recorded
    assert env["service"].decide(org_id, approval.approval_id, "approve", BOB).status == "approved"
    _wait_for(lambda: env["channel"].sent)
    assert len(env["channel"].sent) == 1


def test_approval_concurrent_decisions_by_one_approver_all_report_the_final_status(env, monkeypatch):
    store = env["store"]
    org_id = _org(store)
    command_id, _ = _pending_command(store, org_id)
    approval = _request(env, org_id, command_id)
    _wait_for(lambda: env["service"].get(org_id, approval.approval_id).task_token)
    # Hold the winner between recording its decision and closing the approval, so the
    # losers surely read the approval in that window.
    append_event = audit.append_event

    def slow_append_event(org, kind, *args, **kwargs):
        if kind == "approval.decided":
            time.sleep(0.5)
        return append_event(org, kind, *args, **kwargs)

    monkeypatch.setattr(audit, "append_event", slow_append_event)
    barrier = threading.Barrier(3)
    results = []

    def decide():
        barrier.wait()
        results.append(env["service"].decide(org_id, approval.approval_id, "approve", ALICE))

    threads = [threading.Thread(target=decide) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.recorded for r in results) == [False, False, True]
    assert [r.status for r in results] == ["approved"] * 3, [r.to_dict() for r in results]


def test_approval_ids_of_another_org_are_not_found(env):
    store = env["store"]
    org_id = _org(store)
    other_org = _org(store)
    command_id, _ = _pending_command(store, org_id)
    approval = _request(env, org_id, command_id)
    with pytest.raises(ApprovalNotFound):
        env["service"].decide(other_org, approval.approval_id, "approve", ALICE)
    assert env["service"].get(org_id, approval.approval_id).status == "pending"


def test_approval_agent_keys_cannot_decide():
    @dataclass
    class Auth:
        key_id: str
        scope: str
        name: str

    with pytest.raises(PermissionDenied, match="agent"):
        approver_for_key(Auth("key_1", "agent", "ci-bot"), "mcp")
    assert approver_for_key(Auth("key_2", "approver", "alice"), "rest").identity == "key:key_2"


def test_approval_telegram_presser_must_be_an_approver_of_that_org(env):
    store = env["store"]
    org_id = _org(store)
    assert env["service"].authorize_telegram_user(org_id, APPROVER_TELEGRAM_ID, "alice").display == "alice"
    assert env["service"].authorize_telegram_user(org_id, 999, "mallory") is None
