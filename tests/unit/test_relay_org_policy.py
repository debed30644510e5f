"""The relay judges with exactly the org policy its envelope names (contracts §8), with the real
Shield: the judge applies the policy it is given, and the daemon fetches a missing policy,
refuses when it cannot get a verified one, and reports the version that judged."""

from __future__ import annotations

import asyncio
import json

import pytest
from flowlink import relay_protocol

import shield
from edge_relay.daemon import RelayDaemon
from edge_relay.identity import RelayIdentity, RelayKeys
from edge_relay.judge import CommandJudge
from edge_relay.settings import RelaySettings
from shield import paths as shield_paths
from shield.model import HostFacts
from shield.policy import default_policy, load_policy

pytestmark = pytest.mark.unit

RELAY_ID = "rly_test"
ORG_ID = "org_test"
# Denies a command the default policy lets run, and allows one the default holds for a human.
TEXT = "name: acme\nallow:\n  - Bash(history -c)\ndeny:\n  - Bash(echo relay-probe:*)\n"
POLICY = load_policy(TEXT, source="org-policy.yaml")
REF = relay_protocol.policy_ref(POLICY.version, TEXT)
AUTO = {"decision": "auto", "score": 0, "reasons": []}


@pytest.fixture(scope="module")
def analyze():
    return shield.Shield(semantic=False).analyze


@pytest.fixture
def gateway_key():
    return relay_protocol.generate_signing_key()


@pytest.fixture
def judge(gateway_key, analyze):
    return CommandJudge(
        relay_id=RELAY_ID,
        gateway_key=gateway_key.public_key(),
        agent_name="test-relay",
        host=HostFacts(hostname="test"),
        analyze=analyze,
        check_path=shield_paths.check_path,
    )


class FakeSocket:
    """Stands in for the gateway session: records what the relay sends, may answer a request."""

    def __init__(self):
        self.sent: list[dict] = []
        self.on_policy_request = None

    async def send(self, raw: str) -> None:
        message = json.loads(raw)
        self.sent.append(message)
        if message.get("action") == relay_protocol.ACTION_POLICY_REQUEST and self.on_policy_request:
            await self.on_policy_request(message)


@pytest.fixture
def daemon(tmp_path, gateway_key, judge):
    settings = RelaySettings(state_dir=tmp_path, kill_grace_seconds=0.2, connect_timeout_seconds=0.5)
    identity = RelayIdentity(
        relay_id=RELAY_ID,
        org_id=ORG_ID,
        relay_credential="flk_rly_test",
        ws_url="ws://127.0.0.1:1/ws",
        gateway_public_key=relay_protocol.public_key_to_pem(gateway_key),
        name="test-relay",
    )
    relay = RelayDaemon(settings, identity, RelayKeys.generate(), judge=judge, facts={"hostname": "test", "home": str(tmp_path)})
    relay._ws = FakeSocket()
    yield relay
    relay.ledger.close()


def claims_for(daemon, key, command, *, command_id="cmd_1", **kwargs):
    kwargs.setdefault("gateway_verdict", AUTO)
    token = relay_protocol.sign_envelope(
        key, relay_id=RELAY_ID, org_id=ORG_ID, command_id=command_id, command=command, **kwargs
    )
    return daemon.admit({"envelope": token}).claims


def document(key, text=TEXT, **overrides):
    args = {"relay_id": RELAY_ID, "org_id": ORG_ID, "version": load_policy(text).version, "text": text}
    args.update(overrides)
    return relay_protocol.sign_policy_document(key, **args)


# -- the judge ---------------------------------------------------------------------------------


def test_judge_denies_what_the_org_policy_denies_though_the_default_allows_it(judge):
    claims = {"op": "exec", "jti": "cmd_1", "command": "echo relay-probe", "gateway_verdict": AUTO}
    assert judge.judge(claims, cwd="/tmp").allowed is True
    refused = judge.judge(claims, cwd="/tmp", policy=POLICY)
    assert refused.allowed is False and refused.decision == "deny"
    assert refused.relay_verdict["policy_version"] == POLICY.version


def test_judge_runs_what_the_org_policy_allows_though_the_default_asks_a_human(judge):
    claims = {"op": "exec", "jti": "cmd_1", "command": "history -c", "gateway_verdict": AUTO}
    held = judge.judge(claims, cwd="/tmp")
    assert held.allowed is False and held.reasons[0].startswith("requires approval grant")
    assert held.relay_verdict["policy_version"] == default_policy().version
    allowed = judge.judge(claims, cwd="/tmp", policy=POLICY)
    assert allowed.allowed is True and allowed.relay_verdict["policy_version"] == POLICY.version


def test_judge_applies_org_path_rules_to_reads(judge):
    policy = load_policy("name: acme\ndeny:\n  - Read(/srv/app/**)\n")
    claims = {"op": "read", "jti": "cmd_1", "gateway_verdict": AUTO}
    assert judge.judge(claims, cwd="/", path="/srv/app/config.yml").allowed is True
    denied = judge.judge(claims, cwd="/", path="/srv/app/config.yml", policy=policy)
    assert denied.allowed is False and denied.relay_verdict["policy_version"] == policy.version


# -- the daemon --------------------------------------------------------------------------------


def test_relay_judges_with_a_policy_it_already_received(daemon, gateway_key, tmp_path):
    asyncio.run(daemon._accept_policy(document(gateway_key)))
    claims = claims_for(daemon, gateway_key, "echo relay-probe", cwd=str(tmp_path), policy=REF)
    result = asyncio.run(daemon._perform(claims))
    assert result["status"] == "refused" and result["relay_verdict"]["policy_version"] == POLICY.version
    assert [m for m in daemon._ws.sent if m.get("action") == "policy_request"] == []


def test_relay_fetches_a_missing_policy_and_judges_with_it(daemon, gateway_key, tmp_path):
    async def answer(message):
        assert message["sha256"] == REF.sha256
        daemon._spawn(daemon._accept_policy(document(gateway_key)))

    daemon._ws.on_policy_request = answer
    claims = claims_for(daemon, gateway_key, "echo fetched", cwd=str(tmp_path), policy=REF)
    result = asyncio.run(daemon._perform(claims))
    assert result["status"] == "completed" and result["stdout"] == "fetched\n"
    assert result["relay_verdict"]["policy_version"] == POLICY.version


def test_relay_refuses_when_the_named_policy_never_arrives(daemon, gateway_key, tmp_path):
    marker = tmp_path / "ran"
    claims = claims_for(daemon, gateway_key, f"touch {marker}", cwd=str(tmp_path), policy=REF)
    result = asyncio.run(daemon._perform(claims))
    assert result["status"] == "refused" and result["decision"] == "deny"
    assert POLICY.version in result["reasons"][0] and "command not run" in result["reasons"][0]
    assert result["relay_verdict"]["decision"] == "deny"
    assert [m["action"] for m in daemon._ws.sent] == ["policy_request"]
    assert not marker.exists() and daemon.ledger.get("cmd_1").started_at is None


def test_relay_never_uses_a_policy_document_signed_by_another_key(daemon, gateway_key, tmp_path):
    forged = document(relay_protocol.generate_signing_key())

    async def answer(message):
        daemon._spawn(daemon._accept_policy(forged))

    daemon._ws.on_policy_request = answer
    asyncio.run(daemon._accept_policy(forged))
    marker = tmp_path / "ran"
    claims = claims_for(daemon, gateway_key, f"touch {marker}", cwd=str(tmp_path), policy=REF)
    result = asyncio.run(daemon._perform(claims))
    assert result["status"] == "refused" and not marker.exists()
    assert daemon.snapshot()["policy"] == {"versions": [], "accepted": 0, "rejected": 2}


def test_relay_without_an_org_policy_judges_with_the_default(daemon, gateway_key, tmp_path):
    default = relay_protocol.policy_ref(default_policy().version, None)
    for command_id, ref in (("cmd_named", default), ("cmd_old", None)):
        claims = claims_for(daemon, gateway_key, "echo relay-probe", command_id=command_id, cwd=str(tmp_path), policy=ref)
        result = asyncio.run(daemon._perform(claims))
        assert result["status"] == "completed"
        assert result["relay_verdict"]["policy_version"] == default_policy().version
    assert daemon._ws.sent == []


def test_sysinfo_needs_no_policy(daemon, gateway_key):
    claims = claims_for(daemon, gateway_key, "", op="sysinfo", gateway_verdict={}, policy=REF)
    assert asyncio.run(daemon._perform(claims))["status"] == "completed"
    assert daemon._ws.sent == []
