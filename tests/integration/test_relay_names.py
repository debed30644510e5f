"""Relay names are unique within an org, and a name never resolves by which relay is online.

Real parts throughout: the live gateway (uvicorn) on moto over HTTP, relays enrolling over
REST and connecting over WebSocket, `flowlink-relay enroll` and `flowlink` as processes,
the MCP client for ``exec``. Covers enrollment refusals (also under concurrency), the
re-enrollment of a flagged relay, names shared by relays enrolled before names were unique,
and decommissioning with `flowlink relays remove`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import anyio
import httpx
import httpx2
import pytest
from flowlink import audit
from flowlink.attestation import save_baseline
from flowlink.audit.store import item_to_record
from flowlink.auth import hash_secret
from flowlink.bootstrap import bootstrap_local
from flowlink.storage import utc_now_iso
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect as ws_connect

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def call_tool(live_gateway, key: str, name: str, arguments: dict):
    """One MCP tool call through the official client."""

    async def call():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
            Client(streamable_http_client(live_gateway.mcp_url, http_client=http)) as client,
        ):
            return await client.call_tool(name, arguments)

    return anyio.run(call)


def exec_tool(live_gateway, key: str, agent: str, command: str):
    return call_tool(live_gateway, key, "exec", {"agent": agent, "command": command})


def audit_events(org_id: str, kind: str) -> list[dict]:
    events = (json.loads(item_to_record(item)["event"]) for item in audit.default_store().iter_items(org_id))
    return [event for event in events if event["kind"] == kind]


def new_token(live_gateway, org: dict, name: str) -> str:
    response = live_gateway.admin(org).post("/api/v1/agents/enrollment-tokens", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()["token"]


@pytest.fixture
def enroll(make_relay):
    """enroll(token, name) -> the gateway's answer (201 with the identity, or the refusal)."""

    def enroll(token: str, name: str) -> httpx.Response:
        relay = make_relay({"enrollment_token": token}, name=name)
        try:
            relay.enroll()
        except httpx.HTTPStatusError as exc:
            return exc.response
        return httpx.Response(201, json=relay.identity)

    return enroll


def cli_env(live_gateway, key: str) -> dict[str, str]:
    return {**os.environ, "FLOWLINK_API_URL": live_gateway.base_url, "FLOWLINK_API_KEY": key}


def run(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_enrolling_a_second_relay_under_a_taken_name_is_refused_and_keeps_the_token(live_gateway, make_relay, enroll):
    org = live_gateway.stack.org("acme")
    first = make_relay(org, name="vm")
    first.enroll()

    token = new_token(live_gateway, org, "vm")
    refused = enroll(token, "vm")
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"] == "relay_name_taken" and body["relay_ids"] == [first.identity["relay_id"]]
    assert "vm" in body["detail"] and "flowlink relays remove" in body["detail"]
    (only,) = live_gateway.stack.store.list_agents(org["org_id"])
    assert only.relay_id == first.identity["relay_id"]

    # The refusal used nothing up: the same token enrolls the host under another name.
    assert enroll(token, "vm-2").status_code == 201
    assert sorted(a.name for a in live_gateway.stack.store.list_agents(org["org_id"])) == ["vm", "vm-2"]


def test_relay_names_are_per_org(live_gateway, make_relay, enroll):
    acme, globex = live_gateway.stack.org("acme"), live_gateway.stack.org("globex")
    make_relay(acme, name="vm").enroll()
    assert enroll(globex["enrollment_token"], "vm").status_code == 201


def test_flowlink_relay_enroll_under_a_taken_name_exits_7_and_writes_nothing(live_gateway, make_relay, enroll, tmp_path):
    org = live_gateway.stack.org("acme")
    make_relay(org, name="vm").enroll()
    env = cli_env(live_gateway, org["admin_key"])
    minted = run("flowlink.cli", "enrollment-token", "vm", "--json", env=env)
    assert minted.returncode == 0, minted.stderr
    token = json.loads(minted.stdout)["token"]

    state_dir = tmp_path / "relay2"
    done = run("edge_relay", "enroll", "--api-url", live_gateway.base_url, "--token", token,
               "--name", "vm", "--state-dir", str(state_dir))
    assert done.returncode == 7, (done.stdout, done.stderr)
    assert "already has a relay named 'vm'" in done.stderr and "token was not used" in done.stderr
    assert not (state_dir / "identity.json").exists()


def test_flowlink_relay_enroll_says_why_the_gateway_refused_its_arguments(live_gateway, enroll, tmp_path):
    org = live_gateway.stack.org("acme")
    token = new_token(live_gateway, org, "vm")
    state_dir = tmp_path / "relay"

    def relay_enroll(api_url: str, *name: str):
        return run("edge_relay", "enroll", "--api-url", api_url, "--token", token, *name, "--state-dir", str(state_dir))

    too_long = relay_enroll(live_gateway.base_url, "--name", "a" * 300)
    assert too_long.returncode == 2, too_long.stderr
    assert "name must be 1-63 characters" in too_long.stderr and "token was not used" in too_long.stderr
    empty = relay_enroll(live_gateway.base_url, "--name", "")
    assert empty.returncode == 2 and "--name must not be empty" in empty.stderr
    wrong_url = relay_enroll(live_gateway.base_url + "/api/v1", "--name", "vm")
    assert wrong_url.returncode == 1 and "HTTP 404" in wrong_url.stderr
    assert "without /api/v1" in wrong_url.stderr
    assert not (state_dir / "identity.json").exists()
    # None of them used the token up.
    assert enroll(token, "vm").status_code == 201


def test_concurrent_enrollments_under_one_name_enroll_exactly_one(live_gateway, enroll):
    org = live_gateway.stack.org("acme")
    tokens = [new_token(live_gateway, org, "vm") for _ in range(6)]
    answers: list[int] = []
    start = threading.Barrier(len(tokens))

    def go(token: str) -> None:
        start.wait()
        answers.append(enroll(token, "vm").status_code)

    threads = [threading.Thread(target=go, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(answers) == [201] + [409] * 5
    assert [a.name for a in live_gateway.stack.store.list_agents(org["org_id"])] == ["vm"]


def test_a_flagged_relay_is_re_enrolled_under_its_name_and_the_old_identity_is_gone(live_gateway, make_relay):
    org = live_gateway.stack.org("acme")
    old = make_relay(org, name="vm")
    old.enroll()
    old.connect(hello_key="B" * 43 + "=")  # another key: flagged until an admin re-enrolls it
    wait_for(lambda: any(a.get("code") == "identity_mismatch" for a in old.answers))
    old.close()

    new = make_relay({"enrollment_token": new_token(live_gateway, org, "vm")}, name="vm")
    new.enroll()
    new.connect()
    assert new.wait_welcome()
    (agent,) = live_gateway.stack.store.list_agents(org["org_id"])
    assert agent.relay_id == new.identity["relay_id"]
    result = exec_tool(live_gateway, org["api_key"], "vm", "echo hi")
    assert result.is_error is False, result.content
    assert new.claims[0]["aud"] == new.identity["relay_id"]
    with pytest.raises(InvalidStatus):
        ws_connect(live_gateway.ws_url, additional_headers={
            "Authorization": f"Bearer {old.identity['relay_credential']}",
            "X-Flowlink-Relay-Id": old.identity["relay_id"],
        })
    (removed,) = audit_events(org["org_id"], "relay.removed")
    assert removed["fields"]["relay_id"] == old.identity["relay_id"]
    assert removed["fields"]["reason"] == "replaced" and removed["fields"]["replaced_by"] == new.identity["relay_id"]


def _legacy_duplicates(live_gateway, org: dict, make_relay) -> tuple[object, str]:
    """Two relays named vm, as enrollments before names were unique could leave them: one online."""
    online = make_relay(org, name="vm")
    online.enroll()
    online.connect()
    assert online.wait_welcome()
    offline_id = "rly_" + "0" * 24
    live_gateway.stack.store.put_agent(
        relay_id=offline_id, org_id=org["org_id"], name="vm", credential_hash=hash_secret("flk_rly_x"),
        enrolled_at=utc_now_iso(), status="offline",
    )
    return online, offline_id


def test_a_name_two_relays_share_is_an_error_listing_both_everywhere(live_gateway, make_relay, enroll):
    org = live_gateway.stack.org("acme")
    online, offline_id = _legacy_duplicates(live_gateway, org, make_relay)
    ids = sorted([online.identity["relay_id"], offline_id])

    # exec by name is not sent to the one that happens to be online.
    result = exec_tool(live_gateway, org["api_key"], "vm", "echo hi")
    assert result.is_error is True
    text = result.content[0].text
    assert "several relays are named 'vm'" in text and all(i in text for i in ids)
    assert online.claims == []
    by_id = exec_tool(live_gateway, org["api_key"], online.identity["relay_id"], "echo hi")
    assert by_id.is_error is False, by_id.content

    # The encryption-key route and `flowlink secrets put --agent` say the same, not "no relay".
    agent_key = {"Authorization": f"Bearer {org['api_key']}"}
    key = httpx.get(live_gateway.base_url + "/api/v1/agents/vm/encryption-key", headers=agent_key)
    assert key.status_code == 409
    assert key.json()["error"] == "agent_name_ambiguous" and key.json()["relay_ids"] == ids
    put = subprocess.run(
        [sys.executable, "-m", "flowlink.cli", "secrets", "put", "TWO", "--agent", "vm"],
        input="value", env=cli_env(live_gateway, org["admin_key"]), capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert put.returncode != 0
    assert "HTTP 409" in put.stderr and "several relays are named 'vm'" in put.stderr and ids[0] in put.stderr
    history = httpx.get(live_gateway.base_url + "/api/v1/agents/vm/commands", headers=agent_key)
    assert history.status_code == 409 and history.json()["relay_ids"] == ids

    # And no third relay joins them.
    assert enroll(new_token(live_gateway, org, "vm"), "vm").status_code == 409


def test_flowlink_relays_remove_decommissions_a_relay(live_gateway, make_relay, enroll):
    org = live_gateway.stack.org("acme")
    relay = make_relay(org, name="vm")
    relay.enroll()
    relay.ignore_commands = True
    relay.connect()
    assert relay.wait_welcome()
    relay_id = relay.identity["relay_id"]
    waiting: list = []
    caller = threading.Thread(target=lambda: waiting.append(exec_tool(live_gateway, org["api_key"], "vm", "echo waits")))
    caller.start()
    (claims,) = wait_for(lambda: relay.claims)

    as_agent = run("flowlink.cli", "relays", "remove", "vm", env=cli_env(live_gateway, org["api_key"]))
    assert as_agent.returncode == 1 and "HTTP 403" in as_agent.stderr
    done = run("flowlink.cli", "relays", "remove", "vm", env=cli_env(live_gateway, org["admin_key"]))
    assert done.returncode == 0, done.stderr
    assert f"relay 'vm' ({relay_id}) removed" in done.stdout and "1 waiting command(s) failed" in done.stdout

    # The caller waiting on its command learns it failed; the relay is hung up on and refused.
    caller.join(timeout=30)
    (outcome,) = waiting
    assert outcome.structured_content["status"] == "failed"
    assert outcome.structured_content["error"] == "relay removed before it reported a result"
    command = live_gateway.stack.store.get_command(org["org_id"], claims["jti"])
    assert command.status == "failed"
    wait_for(lambda: relay._thread is not None and not relay._thread.is_alive())
    with pytest.raises(InvalidStatus):
        ws_connect(live_gateway.ws_url, additional_headers={
            "Authorization": f"Bearer {relay.identity['relay_credential']}", "X-Flowlink-Relay-Id": relay_id,
        })
    listed = run("flowlink.cli", "relays", "list", env=cli_env(live_gateway, org["admin_key"]))
    assert listed.returncode == 0 and listed.stdout.strip() == "no relays enrolled"
    (event,) = audit_events(org["org_id"], "relay.removed")
    assert event["fields"]["relay_id"] == relay_id and event["fields"]["commands_failed"] == [claims["jti"]]
    assert event["actor"]["type"] == "api_key"

    # The name is free again; removing twice is a clear 404.
    assert enroll(new_token(live_gateway, org, "vm"), "vm").status_code == 201
    again = live_gateway.admin(org).delete(f"/api/v1/agents/{relay_id}")
    assert again.status_code == 404 and relay_id in again.json()["detail"]


def test_removing_one_of_two_relays_sharing_a_name_needs_its_id(live_gateway, make_relay):
    org = live_gateway.stack.org("acme")
    online, offline_id = _legacy_duplicates(live_gateway, org, make_relay)
    ambiguous = live_gateway.admin(org).delete("/api/v1/agents/vm")
    assert ambiguous.status_code == 409 and ambiguous.json()["error"] == "agent_name_ambiguous"
    assert live_gateway.admin(org).delete(f"/api/v1/agents/{offline_id}").status_code == 200
    result = exec_tool(live_gateway, org["api_key"], "vm", "echo hi")
    assert result.is_error is False, result.content
    assert online.claims[0]["aud"] == online.identity["relay_id"]


def test_a_name_claim_is_never_listed_or_authenticated_as_a_relay(live_gateway, make_relay):
    org = live_gateway.stack.org("acme")
    make_relay(org, name="vm").enroll()
    store = live_gateway.stack.store
    assert store.get_agent_any_org(f"relay_name#{org['org_id']}#vm") is None
    listed = httpx.get(live_gateway.base_url + "/api/v1/agents", headers={"Authorization": f"Bearer {org['api_key']}"})
    assert [a["name"] for a in listed.json()["agents"]] == ["vm"]


def test_local_bootstrap_again_replaces_the_previous_local_relay(live_gateway, make_relay):
    # `flowlink local up` on an endpoint that keeps data: the second start re-enrolls its relay
    # under the same name, which must not be refused as taken.
    first = live_gateway.stack.org("keeps-data")
    old = make_relay({"enrollment_token": first["enrollment_token"]}, name="devbox")
    old.enroll()
    second = bootstrap_local(live_gateway.stack.settings, org_name="keeps-data", relay_name="devbox",
                             store=live_gateway.stack.store)
    assert second["org_id"] == first["org_id"]
    new = make_relay({"enrollment_token": second["enrollment_token"]}, name="devbox")
    assert new.enroll()["relay_id"] != old.identity["relay_id"]
    agents = live_gateway.stack.store.list_agents(first["org_id"])
    assert [(a.name, a.relay_id) for a in agents] == [("devbox", new.identity["relay_id"])]


def test_a_relay_removed_between_connect_and_hello_is_told_and_disconnected(live_gateway, make_relay):
    org = live_gateway.stack.org("race")
    relay = make_relay(org, name="racer")
    relay.enroll()
    store = live_gateway.stack.store
    with ws_connect(live_gateway.ws_url, additional_headers={
        "Authorization": f"Bearer {relay.identity['relay_credential']}",
        "X-Flowlink-Relay-Id": relay.identity["relay_id"],
    }) as socket:
        store.delete_agent(store.get_agent(org["org_id"], relay.identity["relay_id"]))
        socket.send(json.dumps({"action": "hello", "relay_id": relay.identity["relay_id"], "version": "test",
                                "facts": {}, "attestation": None, "signing_public_key": "x"}))
        answer = json.loads(socket.recv(timeout=10))
        assert answer["type"] == "error" and answer["code"] == "unknown_relay"
        with pytest.raises(ConnectionClosed):
            socket.recv(timeout=10)


# -- trust and life after enrollment: drift refusal, flags in listings, removed relays' history --

BASELINE = {"files": {"edge_relay/daemon.py": "0" * 64}, "digest": "d"}


def drifted_relay(live_gateway, make_relay, org_name: str):
    """An org with a relay baseline and a connected relay whose hello differs from it (it
    reports no measurement), tolerated because the org does not refuse drift (yet)."""
    org = live_gateway.stack.org(org_name)
    save_baseline(live_gateway.stack.settings, org["org_id"], "relay", BASELINE, None)
    relay = make_relay(org, name="vm")
    relay.enroll()
    relay.connect()
    assert relay.wait_welcome(), relay.answers
    record = live_gateway.stack.store.get_agent(org["org_id"], relay.identity["relay_id"])
    assert record.drifted_at and not record.flagged
    ran = call_tool(live_gateway, org["api_key"], "exec", {"agent": "vm", "command": "echo still-tolerated"})
    assert ran.is_error is False, ran.content
    return org, relay


def test_a_connected_drifted_relay_gets_nothing_once_its_org_refuses_drift(live_gateway, make_relay):
    org, relay = drifted_relay(live_gateway, make_relay, "drift-dispatch")
    store = live_gateway.stack.store
    # The setting flips underneath (another gateway instance, a direct write): the check at
    # dispatch still refuses, before anything is recorded or sent.
    record = store.get_org(org["org_id"])
    record.refuse_drifted_relays = True
    record.save()
    sent_before = len(relay.claims)
    for name, arguments in (
        ("exec", {"agent": "vm", "command": "echo must-not-run"}),
        ("read", {"agent": "vm", "path": "/etc/hostname"}),
        ("list", {"agent": "vm", "path": "/tmp"}),
    ):
        refused = call_tool(live_gateway, org["api_key"], name, arguments)
        assert refused.is_error is True, (name, refused.content)
        assert "flagged (attestation_drift)" in refused.content[0].text, refused.content[0].text
    time.sleep(0.3)
    assert len(relay.claims) == sent_before
    agent = store.get_agent(org["org_id"], relay.identity["relay_id"])
    assert agent.flagged == "attestation_drift"
    wait_for(lambda: any(a.get("code") == "attestation_drift" for a in relay.answers))
    wait_for(lambda: store.get_agent(org["org_id"], relay.identity["relay_id"]).status == "offline")
    assert [e["fields"]["refused"] for e in audit_events(org["org_id"], "relay.attestation_drift")] == [False, True]


def test_turning_refusal_on_flags_and_disconnects_drifted_relays_and_lists_show_why(live_gateway, make_relay):
    org, relay = drifted_relay(live_gateway, make_relay, "drift-setting")
    store = live_gateway.stack.store
    changed = live_gateway.admin(org).patch("/api/v1/org/settings", json={"refuse_drifted_relays": True})
    assert changed.status_code == 200, changed.text
    # Flagged and hung up on at once, not at its next hello.
    assert store.get_agent(org["org_id"], relay.identity["relay_id"]).flagged == "attestation_drift"
    wait_for(lambda: any(a.get("code") == "attestation_drift" for a in relay.answers))
    wait_for(lambda: relay._thread is not None and not relay._thread.is_alive())

    # The flag and its reason show wherever relays are listed.
    listed = httpx.get(live_gateway.base_url + "/api/v1/agents", headers={"Authorization": f"Bearer {org['api_key']}"})
    (agent,) = listed.json()["agents"]
    assert agent["flagged"] == "attestation_drift" and "attested baseline" in agent["flag_detail"]
    agents = call_tool(live_gateway, org["api_key"], "agents", {})
    assert agents.structured_content["agents"][0]["flagged"] == "attestation_drift"
    relays = run("flowlink.cli", "relays", "list", env=cli_env(live_gateway, org["admin_key"]))
    assert relays.returncode == 0 and "FLAGGED: flagged (attestation_drift)" in relays.stdout, relays.stdout
    refused = call_tool(live_gateway, org["api_key"], "exec", {"agent": "vm", "command": "echo no"})
    assert refused.is_error is True and "re-enrolls it" in refused.content[0].text


def test_a_removed_relays_history_stays_readable_by_its_id_in_its_org_only(live_gateway, make_relay):
    org = live_gateway.stack.org("keeps-history")
    other = live_gateway.stack.org("elsewhere")
    relay = make_relay(org, name="vm")
    relay.enroll()
    relay.connect()
    assert relay.wait_welcome()
    relay_id = relay.identity["relay_id"]
    ran = call_tool(live_gateway, org["api_key"], "exec", {"agent": "vm", "command": "echo kept"})
    command_id = ran.structured_content["command_id"]
    assert live_gateway.admin(org).delete(f"/api/v1/agents/{relay_id}").status_code == 200

    history = call_tool(live_gateway, org["api_key"], "history", {"agent": relay_id})
    assert history.is_error is False, history.content
    assert history.structured_content["agent"]["status"] == "removed"
    assert history.structured_content["agent"]["name"] == "vm"
    assert [c["command_id"] for c in history.structured_content["commands"]] == [command_id]
    one = call_tool(live_gateway, org["api_key"], "history", {"agent": relay_id, "command_id": command_id})
    assert one.structured_content["commands"][0]["stdout"] == "kept\n"
    rest = httpx.get(f"{live_gateway.base_url}/api/v1/agents/{relay_id}/commands",
                     headers={"Authorization": f"Bearer {org['api_key']}"})
    assert rest.status_code == 200 and rest.json()["commands"][0]["command_id"] == command_id

    # By name it is gone; another org never sees it.
    assert call_tool(live_gateway, org["api_key"], "history", {"agent": "vm"}).is_error is True
    foreign = httpx.get(f"{live_gateway.base_url}/api/v1/agents/{relay_id}/commands",
                        headers={"Authorization": f"Bearer {other['api_key']}"})
    assert foreign.status_code == 404 and foreign.json()["error"] == "agent_not_found"
    assert call_tool(live_gateway, other["api_key"], "history", {"agent": relay_id}).is_error is True
