"""The real edge relay (``python -m edge_relay`` as a process) against this gateway over real
sockets: enrollment through the REST API, the WebSocket session through the local API Gateway
emulation, and exec/read round trips driven by the official MCP client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import anyio
import httpx
import httpx2
import pytest
from flowlink import relay_protocol
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from shield.policy import load_policy

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def real_relay(live_gateway, tmp_path):
    org = live_gateway.stack.org("acme")
    state_dir = tmp_path / "relay-state"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    enroll = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_relay",
            "enroll",
            "--api-url",
            live_gateway.base_url,
            "--token",
            org["enrollment_token"],
            "--name",
            "real-01",
            "--state-dir",
            str(state_dir),
        ],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
        env=env,
    )
    assert enroll.returncode == 0, enroll.stderr
    log = open(tmp_path / "relay.log", "w")  # noqa: SIM115 - closed in the fixture's finally
    process = subprocess.Popen(
        [sys.executable, "-m", "edge_relay", "run", "--state-dir", str(state_dir), "--health-port", "0"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        store = live_gateway.stack.store

        def online():
            agents = store.find_agents_by_name(org["org_id"], "real-01")
            return agents and agents[0].status == "online" and agents[0].version

        wait_for(online)
        yield org
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


async def _calls(url: str, key: str, calls):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=120) as http,
        Client(streamable_http_client(url, http_client=http), mode="auto") as client,
    ):
        return [await client.call_tool(name, arguments) for name, arguments in calls]


def test_real_relay_runs_exec_and_refuses_what_shield_denies(live_gateway, real_relay):
    org = real_relay
    hello, denied, read, history, sysinfo, listing = anyio.run(
        _calls,
        live_gateway.mcp_url,
        org["api_key"],
        [
            ("exec", {"agent": "real-01", "command": "echo hello"}),
            ("exec", {"agent": "real-01", "command": "rm -rf /"}),
            ("read", {"agent": "real-01", "path": "/etc/hostname"}),
            ("history", {"agent": "real-01"}),
            ("sysinfo", {"agent": "real-01"}),
            ("list", {"agent": "real-01", "path": "/etc"}),
        ],
    )
    assert hello.is_error is False, hello.content
    assert hello.structured_content["stdout"] == "hello\n" and hello.structured_content["exit_code"] == 0
    assert hello.structured_content["verdict"]["relay"]["decision"] == "auto"
    assert denied.is_error is True and "refused" in denied.content[0].text
    assert read.is_error is False, read.content
    with open("/etc/hostname") as handle:
        assert read.structured_content["stdout"] == handle.read()
    statuses = [c["status"] for c in history.structured_content["commands"]]
    assert statuses[1:] == ["denied", "completed"]
    assert sysinfo.is_error is False and sysinfo.structured_content["live"] is True, sysinfo.content
    assert sysinfo.structured_content["facts"]
    assert listing.is_error is False and "hostname" in listing.structured_content["stdout"], listing.content


def test_real_relay_reconnects_after_a_gateway_restart_and_runs_once(live_gateway, real_relay):
    org = real_relay
    store = live_gateway.stack.store
    (agent,) = store.find_agents_by_name(org["org_id"], "real-01")
    old_connection = agent.connection_id
    live_gateway.restart()

    def reconnected():
        (current,) = store.find_agents_by_name(org["org_id"], "real-01")
        return current.status == "online" and current.connection_id != old_connection

    wait_for(reconnected, timeout=120)
    (result, history) = anyio.run(
        _calls,
        live_gateway.mcp_url,
        org["api_key"],
        [
            ("exec", {"agent": "real-01", "command": "echo after-restart", "idempotency_key": "restart-1"}),
            ("history", {"agent": "real-01"}),
        ],
    )
    assert result.is_error is False, result.content
    assert result.structured_content["stdout"] == "after-restart\n"
    runs = [c for c in history.structured_content["commands"] if c["command"] == "echo after-restart"]
    assert len(runs) == 1 and runs[0]["status"] == "completed"


# -- the org's policy judges on the host (contracts §8) ----------------------------------------

# `history -c`: the default policy holds it for a human (hard_ask); this org allows it.
POLICY_V1 = "name: acme\nallow:\n  - Bash(history -c)\ndeny:\n  - Bash(echo relay-probe:*)\n"
POLICY_V2 = POLICY_V1 + "  - Bash(echo relay-probe-2:*)\n"


def _relay_health(tmp_path) -> dict:
    runtime = json.loads((tmp_path / "relay-state" / "runtime.json").read_text())
    return httpx.get(f"http://127.0.0.1:{runtime['health_port']}/healthz", timeout=10).json()


def _patch_policy(live_gateway, org, text: str) -> str:
    with live_gateway.admin(org) as admin:
        response = admin.patch("/api/v1/org/settings", json={"policy": text})
    assert response.status_code == 200, response.text
    return response.json()["policy"]["version"]


def _audit_records(org_id: str) -> list[dict]:
    from flowlink import audit
    from flowlink.audit.store import item_to_record

    return [json.loads(item_to_record(item)["event"]) for item in audit.default_store().iter_items(org_id)]


def test_real_relay_judges_with_the_orgs_policy_after_each_patch(live_gateway, real_relay, tmp_path):
    org = real_relay
    v1 = _patch_policy(live_gateway, org, POLICY_V1)
    # The gateway, judging with the org policy, sends `history -c` without an approval grant:
    # it runs only because the relay judges with that policy too (its default would hold it).
    (allowed,) = anyio.run(
        _calls, live_gateway.mcp_url, org["api_key"], [("exec", {"agent": "real-01", "command": "history -c"})]
    )
    assert allowed.is_error is False, allowed.content
    relay_verdict = allowed.structured_content["verdict"]["relay"]
    assert (relay_verdict["decision"], relay_verdict["policy_version"]) == ("auto", v1)

    v2 = _patch_policy(live_gateway, org, POLICY_V2)
    assert v2 != v1
    (after,) = anyio.run(
        _calls, live_gateway.mcp_url, org["api_key"], [("exec", {"agent": "real-01", "command": "history -c"})]
    )
    assert after.is_error is False, after.content
    assert after.structured_content["verdict"]["relay"]["policy_version"] == v2

    completed = [r["fields"] for r in _audit_records(org["org_id"]) if r["kind"] == "exec.completed"]
    assert [f["relay_policy_version"] for f in completed] == [v1, v2]
    assert wait_for(lambda: v2 in _relay_health(tmp_path)["policy"]["versions"])


def test_real_relay_refuses_forged_and_unsigned_policy_documents(live_gateway, real_relay, tmp_path):
    import jwt
    from flowlink.relays import RelayChannel

    org = real_relay
    (agent,) = live_gateway.stack.store.find_agents_by_name(org["org_id"], "real-01")
    text = "name: forged\nallow:\n  - Bash(*)\n"
    forged = relay_protocol.sign_policy_document(
        relay_protocol.generate_signing_key(),
        relay_id=agent.relay_id,
        org_id=org["org_id"],
        version=load_policy(text).version,
        text=text,
    )
    unsigned = jwt.encode(jwt.decode(forged, options={"verify_signature": False}), key=None, algorithm="none")
    # Posted as the gateway would (with the stack's management token): only the signature differs.
    client = RelayChannel(live_gateway.stack.settings).client
    before = _relay_health(tmp_path)["policy"]
    for document in (forged, unsigned):
        message = {"type": relay_protocol.TYPE_POLICY, "document": document}
        client.post_to_connection(ConnectionId=agent.connection_id, Data=json.dumps(message).encode())

    health = wait_for(lambda: (h := _relay_health(tmp_path)["policy"])["rejected"] == before["rejected"] + 2 and h)
    assert load_policy(text).version not in health["versions"]
    assert health["accepted"] == before["accepted"]
    # The org's own policy still judges: the relay reports it, not the forged one.
    v1 = _patch_policy(live_gateway, org, POLICY_V1)
    (result,) = anyio.run(
        _calls, live_gateway.mcp_url, org["api_key"], [("exec", {"agent": "real-01", "command": "echo still-judged"})]
    )
    assert result.is_error is False, result.content
    assert result.structured_content["verdict"]["relay"]["policy_version"] == v1


def test_a_removed_real_relay_says_it_is_refused_and_backs_off(live_gateway, real_relay, tmp_path):
    org = real_relay
    (agent,) = live_gateway.stack.store.find_agents_by_name(org["org_id"], "real-01")
    assert live_gateway.admin(org).delete(f"/api/v1/agents/{agent.relay_id}").status_code == 200

    health = wait_for(lambda: (h := _relay_health(tmp_path))["status"] == "refused" and h, timeout=30)
    assert health["refusal"]["code"] == "credential_refused" and "removed" in health["refusal"]["detail"]
    status = subprocess.run(
        [sys.executable, "-m", "edge_relay", "status", "--state-dir", str(tmp_path / "relay-state")],
        capture_output=True, check=False, text=True, timeout=60,
    )
    assert status.returncode == 1 and "the gateway refuses this relay (credential_refused)" in status.stderr
    # A long interval, not the usual backoff: no more attempts a few seconds later.
    runtime = json.loads((tmp_path / "relay-state" / "runtime.json").read_text())

    def reconnects() -> int:
        metrics = httpx.get(f"http://127.0.0.1:{runtime['health_port']}/metrics", timeout=10).text
        return int(next(line for line in metrics.splitlines() if line.startswith("flowlink_relay_reconnects_total ")).split()[1])

    before = reconnects()
    time.sleep(3)
    assert reconnects() == before and _relay_health(tmp_path)["status"] == "refused"
