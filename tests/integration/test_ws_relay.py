"""Relay sessions and the exec round trip over real sockets: MCP client → gateway (uvicorn) →
local API Gateway emulation → fake relay (websockets) → result back, against moto over HTTP."""

from __future__ import annotations

import dataclasses
import json
import time

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


async def _call(url: str, key: str, mode: str, calls: list[tuple[str, dict]]):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        return [await client.call_tool(name, arguments) for name, arguments in calls]


def call_tools(gateway, key: str, *calls: tuple[str, dict], mode: str = "2026-07-28"):
    return anyio.run(_call, gateway.mcp_url, key, mode, list(calls))


def call_tool(gateway, key: str, name: str, arguments: dict, mode: str = "2026-07-28"):
    return call_tools(gateway, key, (name, arguments), mode=mode)[0]


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_exec_round_trip_returns_output_exit_code_and_verdict(live_gateway, connected_relay, mode):
    org, relay = connected_relay
    result = call_tool(
        live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo hello"}, mode=mode
    )
    assert result.is_error is False, result.content
    out = result.structured_content
    assert out["stdout"] == "hello\n" and out["exit_code"] == 0 and out["status"] == "completed"
    assert out["duration_ms"] == 3
    assert out["verdict"]["gateway"]["decision"] in ("auto", "soft_ask")
    assert out["verdict"]["relay"]["decision"] == "auto"
    assert out["verdict"]["decision"] == out["verdict"]["gateway"]["decision"]
    assert [c["command"] for c in relay.claims] == ["echo hello"]
    assert relay.claims[0]["org_id"] == org["org_id"] and relay.claims[0]["aud"] == relay.identity["relay_id"]


def test_exec_by_relay_id_and_env_reach_the_relay(live_gateway, connected_relay):
    org, relay = connected_relay
    result = call_tool(
        live_gateway,
        org["api_key"],
        "exec",
        {
            "agent": relay.identity["relay_id"],
            "command": "printenv GREETING",
            "env": {"GREETING": "hi"},
            "cwd": "/tmp",
        },
    )
    assert result.structured_content["stdout"] == "hi\n"
    assert relay.claims[0]["cwd"] == "/tmp"
    record = live_gateway.stack.store.get_command(org["org_id"], result.structured_content["command_id"])
    assert record.env_keys == ["GREETING"] and record.pending_env is None


def test_exec_denied_by_gateway_shield_dispatches_nothing(live_gateway, connected_relay):
    org, relay = connected_relay
    result = call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "rm -rf /"})
    assert result.is_error is True
    assert "refused by Shield" in result.content[0].text
    history = call_tool(live_gateway, org["api_key"], "history", {"agent": relay.name}).structured_content
    assert history["commands"][0]["status"] == "denied" and history["commands"][0]["command"] == "rm -rf /"
    assert relay.claims == []


def test_exec_refused_by_the_relay_is_an_error_with_its_reasons(live_gateway, connected_relay):
    org, relay = connected_relay
    result = call_tool(
        live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "relay-refuse now"}
    )
    assert result.is_error is True
    assert "relay policy forbids this" in result.content[0].text
    history = call_tool(live_gateway, org["api_key"], "history", {"agent": relay.name}).structured_content
    assert history["commands"][0]["status"] == "refused"
    assert history["commands"][0]["verdict"]["decision"] == "deny"


def test_exec_with_an_idempotency_key_runs_once(live_gateway, connected_relay):
    org, relay = connected_relay
    arguments = {"agent": relay.name, "command": "echo once", "idempotency_key": "deploy-42"}
    first, second = call_tools(live_gateway, org["api_key"], ("exec", arguments), ("exec", arguments))
    assert first.structured_content["command_id"] == second.structured_content["command_id"]
    assert second.structured_content["stdout"] == "once\n"
    assert len(relay.claims) == 1
    history = call_tool(live_gateway, org["api_key"], "history", {"agent": relay.name}).structured_content
    assert len(history["commands"]) == 1
    reused = call_tool(
        live_gateway,
        org["api_key"],
        "exec",
        {"agent": relay.name, "command": "echo other", "idempotency_key": "deploy-42"},
    )
    assert reused.is_error is True and "idempotency_key" in reused.content[0].text
    assert len(relay.claims) == 1


def test_exec_on_an_offline_agent_fails_clearly_and_queues_nothing(live_gateway, connected_relay):
    org, relay = connected_relay
    relay.close()
    store = live_gateway.stack.store
    wait_for(lambda: store.get_agent(org["org_id"], relay.identity["relay_id"]).status == "offline")
    result = call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo late"})
    assert result.is_error is True and "offline" in result.content[0].text
    history = call_tool(live_gateway, org["api_key"], "history", {"agent": relay.name}).structured_content
    assert history["commands"][0]["status"] == "failed"
    assert store.list_pending_commands(org["org_id"], relay.identity["relay_id"]) == []


def test_exec_that_outlives_the_wait_returns_a_handle_to_poll(live_gateway, connected_relay, monkeypatch):
    org, relay = connected_relay
    # Shorten the bound the exec service waits (the relay never answers "hang").
    commands = live_gateway.app.state.runtime.commands
    monkeypatch.setattr(commands, "settings", dataclasses.replace(commands.settings, exec_wait_seconds=0.3))
    result = call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "hang forever"})
    assert result.is_error is False
    handle = result.structured_content
    assert handle["status"] == "running" and "history" in handle["message"]
    polled = call_tool(
        live_gateway, org["api_key"], "history", {"agent": relay.name, "command_id": handle["command_id"]}
    )
    assert polled.structured_content["commands"][0]["status"] == "running"


def test_read_and_list_pass_the_path_policy_first(live_gateway, connected_relay):
    org, relay = connected_relay
    shadow = call_tool(live_gateway, org["api_key"], "read", {"agent": relay.name, "path": "/etc/shadow"})
    assert shadow.is_error is True and "/etc/shadow" in shadow.content[0].text
    assert relay.claims == []
    hostname = call_tool(live_gateway, org["api_key"], "read", {"agent": relay.name, "path": "/etc/hostname"})
    assert hostname.structured_content["stdout"] == "contents of /etc/hostname\n"
    listing = call_tool(live_gateway, org["api_key"], "list", {"agent": relay.name, "path": "/tmp"})
    assert listing.structured_content["stdout"] == "a.txt\nb.txt\n"
    assert [(c["op"], c["path"]) for c in relay.claims] == [("read", "/etc/hostname"), ("list", "/tmp")]


def test_sysinfo_health_and_agents_show_the_relay(live_gateway, connected_relay):
    org, relay = connected_relay
    sysinfo, health, agents = call_tools(
        live_gateway, org["api_key"], ("sysinfo", {"agent": relay.name}), ("health", {}), ("agents", {})
    )
    assert (
        sysinfo.structured_content["live"] is True and sysinfo.structured_content["facts"]["kernel"] == "6.18"
    )
    assert health.structured_content["agents"][0]["online"] is True
    assert agents.structured_content["agents"][0]["name"] == relay.name
    assert agents.structured_content["agents"][0]["status"] == "online"


def test_history_is_newest_first_and_paginated(live_gateway, connected_relay):
    org, relay = connected_relay
    for word in ("one", "two", "three"):
        call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": f"echo {word}"})
    first = call_tool(
        live_gateway, org["api_key"], "history", {"agent": relay.name, "limit": 2}
    ).structured_content
    assert [c["command"] for c in first["commands"]] == ["echo three", "echo two"]
    assert first["next_page_token"]
    second = call_tool(
        live_gateway,
        org["api_key"],
        "history",
        {"agent": relay.name, "limit": 2, "page_token": first["next_page_token"]},
    ).structured_content
    assert [c["command"] for c in second["commands"]] == ["echo one"]


def test_one_org_never_sees_another_orgs_agents_or_commands(live_gateway, connected_relay):
    org, relay = connected_relay
    done = call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo secret"})
    other = live_gateway.stack.org("globex")
    for agent in (relay.name, relay.identity["relay_id"]):
        result = call_tool(live_gateway, other["api_key"], "exec", {"agent": agent, "command": "echo hi"})
        assert result.is_error is True and "no agent" in result.content[0].text
        history = call_tool(live_gateway, other["api_key"], "history", {"agent": agent})
        assert history.is_error is True
    assert call_tool(live_gateway, other["api_key"], "agents", {}).structured_content["agents"] == []
    assert len(relay.claims) == 1
    assert (
        live_gateway.stack.store.get_command(other["org_id"], done.structured_content["command_id"]) is None
    )
    audit_of_other = list(live_gateway.stack.store.models.orgs.scan())  # both orgs exist
    assert len(audit_of_other) == 2


def test_repeated_results_are_stored_once(live_gateway, connected_relay):
    org, relay = connected_relay
    relay.duplicate_results = True
    result = call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo first"})
    command_id = result.structured_content["command_id"]
    wait_for(
        lambda: sum(1 for a in relay.answers if a.get("type") == "error") >= 0 and len(relay.answers) >= 2
    )
    record = live_gateway.stack.store.get_command(org["org_id"], command_id)
    assert record.stdout == "first\n"


def test_ws_connect_with_a_bad_credential_is_refused(live_gateway, connected_relay):
    _, relay = connected_relay
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(
            live_gateway.ws_url,
            additional_headers={
                "Authorization": "Bearer flk_rly_wrong",
                "X-Flowlink-Relay-Id": relay.identity["relay_id"],
            },
        )
    assert refused.value.response.status_code == 403


def test_ws_query_parameters_authenticate_too(live_gateway, connected_relay):
    _, relay = connected_relay
    relay.close()
    url = f"{live_gateway.ws_url}?relay_id={relay.identity['relay_id']}&token={relay.identity['relay_credential']}"
    with ws_connect(url) as socket:
        socket.send('{"action": "heartbeat", "ts": 5}')
        assert '"heartbeat_ack"' in socket.recv(timeout=10)


def test_ws_hello_with_another_signing_key_is_an_identity_mismatch(live_gateway, make_relay):
    org = live_gateway.stack.org("acme")
    relay = make_relay(org)
    relay.enroll()
    relay.connect(hello_key="B" * 43 + "=")
    try:
        wait_for(lambda: any(a.get("code") == "identity_mismatch" for a in relay.answers))
        wait_for(lambda: relay._thread is not None and not relay._thread.is_alive())
        agent = live_gateway.stack.store.get_agent(org["org_id"], relay.identity["relay_id"])
        assert agent.status == "offline" and agent.flagged == "identity_mismatch"
    finally:
        relay.close()
    # Flagged until re-enrolled: even the right key is refused now.
    relay.answers.clear()
    relay.connect()
    try:
        wait_for(lambda: any(a.get("code") == "relay_flagged" for a in relay.answers))
        assert not relay.wait_welcome(timeout=1)
    finally:
        relay.close()


def test_ws_bad_messages_get_errors_and_change_nothing(live_gateway, connected_relay):
    org, relay = connected_relay
    relay._socket.send("not json")
    relay.send({"action": "explode"})
    relay.send({"action": "result", "command_id": "cmd_unknown", "status": "completed"})
    codes = wait_for(
        lambda: (
            [a["code"] for a in relay.answers if a.get("type") == "error"]
            if len([a for a in relay.answers if a.get("type") == "error"]) >= 3
            else None
        )
    )
    assert codes == ["bad_message", "unknown_action", "bad_message"]
    result = call_tool(
        live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo still fine"}
    )
    assert result.structured_content["stdout"] == "still fine\n"


def test_ws_sync_resends_unacknowledged_commands_after_reconnect(live_gateway, connected_relay, monkeypatch):
    org, relay = connected_relay
    commands = live_gateway.app.state.runtime.commands
    monkeypatch.setattr(commands, "settings", dataclasses.replace(commands.settings, exec_wait_seconds=0.3))
    relay.ignore_commands = True
    handle = call_tool(
        live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo later"}
    ).structured_content
    assert handle["status"] == "running" and "not yet acknowledged" in handle["message"]
    relay.close()
    relay.ignore_commands = False
    relay.claims.clear()
    relay.connect()
    assert relay.wait_welcome()
    relay.send({"action": "sync"})
    wait_for(lambda: relay.claims)
    assert relay.claims[0]["jti"] == handle["command_id"]
    done = wait_for(
        lambda: (
            (r := live_gateway.stack.store.get_command(org["org_id"], handle["command_id"])).status
            == "completed"
            and r
        )
    )
    assert done.stdout == "later\n"


def test_ws_disconnect_marks_the_agent_offline(live_gateway, connected_relay):
    org, relay = connected_relay
    agent_id = relay.identity["relay_id"]
    assert live_gateway.stack.store.get_agent(org["org_id"], agent_id).status == "online"
    relay.close()
    wait_for(lambda: live_gateway.stack.store.get_agent(org["org_id"], agent_id).status == "offline")
    assert httpx.get(live_gateway.base_url + "/api/v1/health").status_code == 200


def _audit_records(org_id: str) -> list[dict]:
    from flowlink import audit
    from flowlink.audit.store import item_to_record

    store = audit.default_store()
    # Each stored item carries the canonical event (kind, actor, fields) as JSON text.
    return [json.loads(item_to_record(item)["event"]) for item in store.iter_items(org_id)]


def test_exec_writes_audit_events_with_output_digests_never_output(live_gateway, connected_relay):
    org, relay = connected_relay
    call_tool(
        live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "echo top-secret-output"}
    )
    call_tool(live_gateway, org["api_key"], "exec", {"agent": relay.name, "command": "rm -rf /"})

    def completed_trail():
        records = _audit_records(org["org_id"])
        return records if any(r["kind"] == "exec.completed" for r in records) else None

    records = wait_for(completed_trail)
    kinds = [r["kind"] for r in records]
    for kind in (
        "key.created",
        "relay.enrolled",
        "relay.connected",
        "exec.dispatched",
        "exec.completed",
        "exec.denied",
    ):
        assert kind in kinds
    completed = next(r for r in records if r["kind"] == "exec.completed")
    fields = completed["fields"]
    assert fields["command"] == "echo top-secret-output" and fields["exit_code"] == 0
    assert fields["stdout_length"] == len("top-secret-output\n") and len(fields["stdout_sha256"]) == 64
    assert fields["requested_by"] and fields["gateway_decision"] == "auto"
    assert "top-secret-output\n" not in json.dumps([r["fields"] for r in records])
    dispatched = next(r for r in records if r["kind"] == "exec.dispatched")
    assert dispatched["actor"]["key_id"] == dispatched["fields"]["key_id"]
    assert next(r for r in records if r["kind"] == "exec.denied")["fields"]["decision"] == "deny"
    assert _audit_records(live_gateway.stack.org("globex")["org_id"])[0]["kind"] == "key.created"


def test_local_management_api_tracks_connections_like_api_gateway(live_gateway, connected_relay):
    from botocore.exceptions import ClientError
    from flowlink.relays import RelayChannel

    org, relay = connected_relay
    agent = live_gateway.stack.store.get_agent(org["org_id"], relay.identity["relay_id"])
    # The gateway's own client: it carries the stack's management token.
    client = RelayChannel(live_gateway.stack.settings).client
    described = client.get_connection(ConnectionId=agent.connection_id)
    assert described["Identity"]["SourceIp"] == "127.0.0.1"
    client.post_to_connection(ConnectionId=agent.connection_id, Data=b'{"type": "note"}')
    wait_for(lambda: {"type": "note"} in relay.answers)
    client.delete_connection(ConnectionId=agent.connection_id)
    wait_for(lambda: live_gateway.stack.store.get_agent(org["org_id"], agent.relay_id).status == "offline")
    for call in (
        lambda: client.post_to_connection(ConnectionId=agent.connection_id, Data=b"{}"),
        lambda: client.get_connection(ConnectionId=agent.connection_id),
        lambda: client.post_to_connection(ConnectionId="never-existed", Data=b"{}"),
    ):
        with pytest.raises(ClientError) as gone:
            call()
        assert gone.value.response["Error"]["Code"] == "GoneException"


def test_local_management_api_refuses_callers_without_the_stack_token(live_gateway, connected_relay):
    import boto3
    from botocore.exceptions import ClientError
    from flowlink.relays import LOCAL_MANAGEMENT_TOKEN_HEADER

    org, relay = connected_relay
    agent = live_gateway.stack.store.get_agent(org["org_id"], relay.identity["relay_id"])
    # Any process on the machine can reach 127.0.0.1 and read connection ids from audit events.
    stranger = boto3.client("apigatewaymanagementapi", endpoint_url=live_gateway.base_url, region_name="us-east-1")

    def wrong_token(request, **_):
        request.headers[LOCAL_MANAGEMENT_TOKEN_HEADER] = "guessed"

    guesser = boto3.client("apigatewaymanagementapi", endpoint_url=live_gateway.base_url, region_name="us-east-1")
    guesser.meta.events.register("before-sign.apigatewaymanagementapi", wrong_token)
    for client in (stranger, guesser):
        for call in (
            lambda c=client: c.post_to_connection(ConnectionId=agent.connection_id, Data=b'{"type": "forged"}'),
            lambda c=client: c.get_connection(ConnectionId=agent.connection_id),
            lambda c=client: c.delete_connection(ConnectionId=agent.connection_id),
        ):
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    time.sleep(0.2)
    assert {"type": "forged"} not in relay.answers
    assert live_gateway.stack.store.get_agent(org["org_id"], agent.relay_id).status == "online"


def test_ws_drifted_relay_is_recorded_and_refused_when_the_org_says_so(live_gateway, make_relay):
    from flowlink.attestation import save_baseline

    org = live_gateway.stack.org("drift")
    settings = live_gateway.stack.settings
    save_baseline(settings, org["org_id"], "relay", {"files": {"edge_relay/daemon.py": "0" * 64}, "digest": "d"}, None)
    org_record = live_gateway.stack.store.get_org(org["org_id"])
    org_record.refuse_drifted_relays = True
    org_record.save()
    relay = make_relay(org)
    relay.enroll()
    relay.connect()  # reports no measurement at all: drift from the baseline
    try:
        wait_for(lambda: any(a.get("code") == "attestation_drift" for a in relay.answers))

        # The refusal is answered first; the $disconnect that marks the relay offline follows
        # asynchronously, so wait for it rather than racing it.
        def agent_record():
            return live_gateway.stack.store.get_agent(org["org_id"], relay.identity["relay_id"])

        wait_for(lambda: agent_record().status == "offline")
        assert agent_record().flagged == "attestation_drift"
    finally:
        relay.close()
