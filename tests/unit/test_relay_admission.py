"""Unit tests for what the relay accepts: envelope checks, at-most-once admission, verdicts."""

from __future__ import annotations

import asyncio
import time

import pytest
from flowlink import grants, relay_protocol

from edge_relay.daemon import OUTCOME_UNKNOWN, RelayDaemon
from edge_relay.identity import RelayIdentity, RelayKeys
from edge_relay.judge import CommandJudge
from edge_relay.settings import RelaySettings
from shield.model import Decision, HostFacts, Verdict

pytestmark = pytest.mark.unit

RELAY_ID = "rly_test"
ORG_ID = "org_test"


def fake_verdict(decision: str, *reasons: str) -> Verdict:
    return Verdict(
        decision=Decision(decision),
        score={"auto": 0, "soft_ask": 40, "hard_ask": 70, "deny": 100}[decision],
        reasons=list(reasons),
        rules=[],
        intents=[],
        normalized="",
        levels_run=["test"],
        engine_version="test",
        policy_version="test",
    )


class TableShield:
    """A stand-in engine that judges by exact command text (the real one is tested in shield/)."""

    def __init__(self, table: dict[str, Verdict] | None = None):
        self.table = table or {}
        self.seen: list[tuple[str, object]] = []

    def __call__(self, command, context):
        self.seen.append((command, context))
        return self.table.get(command, fake_verdict("auto"))


@pytest.fixture
def gateway_key():
    return relay_protocol.generate_signing_key()


@pytest.fixture
def daemon(tmp_path, gateway_key):
    settings = RelaySettings(state_dir=tmp_path, kill_grace_seconds=0.2)
    identity = RelayIdentity(
        relay_id=RELAY_ID,
        org_id=ORG_ID,
        relay_credential="flk_rly_test",
        ws_url="ws://127.0.0.1:1/ws",
        gateway_public_key=relay_protocol.public_key_to_pem(gateway_key),
        name="test-relay",
    )
    shield = TableShield({"rm -rf /": fake_verdict("deny", "destroys the filesystem")})
    judge = CommandJudge(
        relay_id=RELAY_ID,
        gateway_key=gateway_key.public_key(),
        agent_name="test-relay",
        host=HostFacts(hostname="test"),
        analyze=shield,
    )
    relay = RelayDaemon(
        settings,
        identity,
        RelayKeys.generate(),
        judge=judge,
        facts={"hostname": "test", "home": str(tmp_path)},
    )
    relay.shield = shield
    yield relay
    relay.ledger.close()


def envelope(key, command="echo hi", *, command_id="cmd_1", relay_id=RELAY_ID, **kwargs):
    kwargs.setdefault("gateway_verdict", {"decision": "auto", "score": 0, "reasons": []})
    return relay_protocol.sign_envelope(
        key, relay_id=relay_id, org_id=ORG_ID, command_id=command_id, command=command, **kwargs
    )


def test_admission_runs_a_valid_envelope_once(daemon, gateway_key):
    first = daemon.admit({"envelope": envelope(gateway_key)})
    assert first.action == "run" and first.claims["command"] == "echo hi"
    daemon._in_flight.add("cmd_1")
    assert daemon.admit({"envelope": envelope(gateway_key)}).action == "ignore"


def test_admission_refuses_a_bad_signature(daemon):
    forged = envelope(relay_protocol.generate_signing_key())
    admission = daemon.admit({"envelope": forged})
    assert admission.action == "reply"
    assert admission.result["status"] == "refused"
    assert admission.result["reasons"] == ["envelope signature invalid"]
    assert daemon.ledger.get("cmd_1") is None  # a forgery never touches the ledger


def test_admission_refuses_an_envelope_for_another_relay(daemon, gateway_key):
    admission = daemon.admit({"envelope": envelope(gateway_key, relay_id="rly_other")})
    assert admission.result["status"] == "refused"
    assert admission.result["reasons"] == ["envelope addressed to another relay"]


def test_admission_refuses_an_expired_envelope(daemon, gateway_key):
    old = envelope(gateway_key, now=time.time() - 3600)
    admission = daemon.admit({"envelope": old})
    assert admission.result["status"] == "refused"
    assert admission.result["reasons"] == ["envelope expired"]


def test_admission_refuses_a_command_that_does_not_match_its_sha256(daemon, gateway_key):
    import jwt

    claims = jwt.decode(envelope(gateway_key), options={"verify_signature": False})
    claims["command"] = "rm -rf /"  # swapped after hashing, re-signed with the real key
    tampered = jwt.encode(claims, gateway_key, algorithm="EdDSA")
    admission = daemon.admit({"envelope": tampered})
    assert admission.result["status"] == "refused"
    assert admission.result["reasons"] == ["command does not match its sha256"]


def test_admission_never_runs_a_replayed_id_and_resends_its_result(daemon, gateway_key):
    assert daemon.admit({"envelope": envelope(gateway_key)}).action == "run"
    stored = {"action": "result", "command_id": "cmd_1", "status": "completed", "stdout": "hi\n"}
    daemon.ledger.record_result("cmd_1", stored)
    replay = daemon.admit({"envelope": envelope(gateway_key)})
    assert replay.action == "reply" and replay.result == stored


def test_admission_after_restart_reports_unknown_outcome_instead_of_rerunning(daemon, gateway_key):
    daemon.ledger.claim("cmd_1")  # an earlier process started it and died mid-command
    daemon.ledger.mark_started("cmd_1")
    replay = daemon.admit({"envelope": envelope(gateway_key)})
    assert replay.action == "reply"
    assert replay.result["status"] == "failed"
    assert replay.result["reasons"] == [OUTCOME_UNKNOWN]
    # The same answer, durably, for every later repeat.
    assert daemon.admit({"envelope": envelope(gateway_key)}).result["reasons"] == [OUTCOME_UNKNOWN]


def test_admission_resends_known_result_even_for_an_expired_repeat(daemon, gateway_key):
    daemon.ledger.claim("cmd_1")
    stored = {"action": "result", "command_id": "cmd_1", "status": "completed"}
    daemon.ledger.record_result("cmd_1", stored)
    replay = daemon.admit({"envelope": envelope(gateway_key, now=time.time() - 3600)})
    assert replay.result == stored


def test_admission_ignores_messages_without_envelope(daemon):
    assert daemon.admit({"type": "command"}).action == "ignore"
    assert daemon.admit({"type": "command", "envelope": "not-a-jwt"}).action == "ignore"


def _perform(daemon, claims):
    return asyncio.run(daemon._perform(claims))


def _claims(daemon, key, command, **kwargs):
    return daemon.admit({"envelope": envelope(key, command, **kwargs)}).claims


def test_relay_verdict_deny_wins_over_gateway_auto(daemon, gateway_key, tmp_path):
    result = _perform(daemon, _claims(daemon, gateway_key, "rm -rf /", cwd=str(tmp_path)))
    assert result["status"] == "refused"
    assert "destroys the filesystem" in result["reasons"]
    assert result["relay_verdict"]["decision"] == "deny"


def test_gateway_deny_wins_over_relay_auto(daemon, gateway_key, tmp_path):
    marker = tmp_path / "ran"
    claims = _claims(
        daemon,
        gateway_key,
        f"touch {marker}",
        cwd=str(tmp_path),
        gateway_verdict={"decision": "deny", "score": 100, "reasons": ["policy says no"]},
    )
    result = _perform(daemon, claims)
    assert result["status"] == "refused" and "policy says no" in result["reasons"]
    assert not marker.exists()


def test_unknown_gateway_decision_counts_as_deny(daemon, gateway_key, tmp_path):
    claims = _claims(daemon, gateway_key, "true", cwd=str(tmp_path), gateway_verdict={"decision": "maybe"})
    assert _perform(daemon, claims)["status"] == "refused"


def test_hard_ask_without_grant_is_refused(daemon, gateway_key, tmp_path):
    claims = _claims(daemon, gateway_key, "true", cwd=str(tmp_path), gateway_verdict={"decision": "hard_ask"})
    result = _perform(daemon, claims)
    assert result["status"] == "refused"
    assert result["reasons"][0].startswith("requires approval grant")


def test_hard_ask_with_a_valid_grant_runs(daemon, gateway_key, tmp_path):
    grant = grants.issue_grant(
        gateway_key,
        relay_id=RELAY_ID,
        org_id=ORG_ID,
        command_id="cmd_1",
        approval_id="apr_1",
        command="echo approved",
        approvers=["alice"],
    )
    claims = _claims(
        daemon,
        gateway_key,
        "echo approved",
        cwd=str(tmp_path),
        gateway_verdict={"decision": "hard_ask"},
        grant=grant,
    )
    result = _perform(daemon, claims)
    assert result["status"] == "completed" and result["stdout"] == "approved\n"


def test_grant_for_another_command_is_refused(daemon, gateway_key, tmp_path):
    grant = grants.issue_grant(
        gateway_key,
        relay_id=RELAY_ID,
        org_id=ORG_ID,
        command_id="cmd_1",
        approval_id="apr_1",
        command="echo something else",
        approvers=["alice"],
    )
    claims = _claims(
        daemon,
        gateway_key,
        "echo approved",
        cwd=str(tmp_path),
        gateway_verdict={"decision": "hard_ask"},
        grant=grant,
    )
    assert _perform(daemon, claims)["status"] == "refused"


def test_relay_runs_shield_with_host_context(daemon, gateway_key, tmp_path):
    _perform(daemon, _claims(daemon, gateway_key, "echo hi", cwd=str(tmp_path)))
    command, context = daemon.shield.seen[-1]
    assert command == "echo hi"
    assert context.cwd == str(tmp_path) and context.agent == "test-relay" and context.host.hostname == "test"


def test_exec_with_forbidden_env_is_refused(daemon, gateway_key, tmp_path):
    claims = _claims(daemon, gateway_key, "true", cwd=str(tmp_path), env={"LD_PRELOAD": "/tmp/x.so"})
    result = _perform(daemon, claims)
    assert result["status"] == "refused" and "LD_PRELOAD" in result["reasons"][0]


def test_exec_with_excessive_timeout_fails_clearly(daemon, gateway_key, tmp_path):
    claims = _claims(daemon, gateway_key, "true", cwd=str(tmp_path), timeout=10**9)
    result = _perform(daemon, claims)
    assert result["status"] == "failed" and "exceeds" in result["reasons"][0]


def test_read_is_judged_on_the_real_path_behind_a_symlink(daemon, gateway_key, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    link = tmp_path / "innocent.txt"
    link.symlink_to(secret)
    daemon.judge._check_path = lambda op, path, ctx: fake_verdict(
        "deny" if path.endswith("secret.txt") else "auto", f"{op} {path}"
    )
    claims = _claims(daemon, gateway_key, "", op="read", path=str(link), cwd=str(tmp_path))
    result = _perform(daemon, claims)
    assert result["status"] == "refused"
    assert "top secret" not in result["stdout"]


def test_read_of_an_allowed_file_returns_content(daemon, gateway_key, tmp_path):
    (tmp_path / "ok.txt").write_text("fine")
    claims = _claims(daemon, gateway_key, "", op="read", path="ok.txt", cwd=str(tmp_path))
    result = _perform(daemon, claims)
    assert (result["status"], result["stdout"], result["encoding"]) == ("completed", "fine", "utf-8")


def test_missing_gateway_decision_leaves_the_relay_verdict_alone(daemon, gateway_key, tmp_path):
    claims = _claims(
        daemon,
        gateway_key,
        "echo alone",
        cwd=str(tmp_path),
        gateway_verdict={"decision": None, "reasons": []},
    )
    assert _perform(daemon, claims)["status"] == "completed"
    refused = _claims(
        daemon,
        gateway_key,
        "rm -rf /",
        command_id="cmd_2",
        cwd=str(tmp_path),
        gateway_verdict={"decision": None},
    )
    assert _perform(daemon, refused)["status"] == "refused"


def test_refusal_results_carry_an_error_line_for_the_gateway(daemon, gateway_key, tmp_path):
    result = _perform(daemon, _claims(daemon, gateway_key, "rm -rf /", cwd=str(tmp_path)))
    assert result["error"] == "destroys the filesystem"


def test_sysinfo_runs_without_a_gateway_verdict(daemon, gateway_key):
    claims = _claims(daemon, gateway_key, "", op="sysinfo", gateway_verdict={})
    result = _perform(daemon, claims)
    assert result["status"] == "completed" and '"hostname": "test"' in result["stdout"]


def test_admission_reruns_an_id_claimed_but_never_started_before_a_restart(daemon, gateway_key):
    daemon.ledger.claim("cmd_1")  # the earlier process died before judging finished
    assert daemon.admit({"envelope": envelope(gateway_key)}).action == "run"


def test_perform_marks_the_command_started_before_running_it(daemon, gateway_key, tmp_path):
    claims = _claims(daemon, gateway_key, "echo hi", cwd=str(tmp_path))
    assert daemon.ledger.get("cmd_1").started_at is None
    _perform(daemon, claims)
    assert daemon.ledger.get("cmd_1").started_at is not None


def test_refused_commands_are_never_marked_started(daemon, gateway_key, tmp_path):
    _perform(daemon, _claims(daemon, gateway_key, "rm -rf /", cwd=str(tmp_path)))
    assert daemon.ledger.get("cmd_1").started_at is None
