"""The gateway's side of org policies on relays (contracts §8), over real sockets with a fake
relay: the welcome carries the org's policy signed for the relay, a PATCH pushes the new one,
envelopes name it, and a relay that asks gets the current one."""

from __future__ import annotations

import json

import anyio
import httpx2
import pytest
from flowlink import relay_protocol
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

from shield.policy import default_policy, load_policy

pytestmark = pytest.mark.integration

POLICY_TEXT = "name: acme\ndeny:\n  - Bash(echo relay-probe:*)\n"


def documents(relay, kind: str) -> list[relay_protocol.PolicyDocument]:
    """The policy documents a fake relay got in messages of ``kind`` (waiting for one),
    verified as a relay would."""
    key = relay_protocol.public_key_from_pem(relay.identity["gateway_public_key"])
    field = "policy" if kind == "welcome" else "document"
    return [
        relay_protocol.verify_policy_document(
            answer[field], key, relay_id=relay.identity["relay_id"], org_id=relay.identity["org_id"]
        )
        for answer in relay.answers_of(kind)
    ]


async def _exec(url: str, key: str, command: str):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        return await client.call_tool("exec", {"agent": "fake-01", "command": command})


def test_welcome_carries_the_default_policy_when_the_org_has_none(live_gateway, connected_relay):
    _, relay = connected_relay
    (welcome,) = documents(relay, "welcome")
    assert welcome.text is None and welcome.sha256 is None
    assert welcome.version == default_policy().version


def test_a_policy_patch_reaches_the_relay_and_the_next_envelope_names_it(live_gateway, connected_relay):
    org, relay = connected_relay
    with live_gateway.admin(org) as admin:
        response = admin.patch("/api/v1/org/settings", json={"policy": POLICY_TEXT})
    assert response.status_code == 200, response.text
    version = response.json()["policy"]["version"]
    assert version == load_policy(POLICY_TEXT).version

    pushed = documents(relay, "policy")
    assert [(d.text, d.version) for d in pushed] == [(POLICY_TEXT, version)]
    result = anyio.run(_exec, live_gateway.mcp_url, org["api_key"], "echo hello")
    assert result.is_error is False, result.content
    assert relay.claims[-1]["policy"] == {"version": version, "sha256": relay_protocol.policy_sha256(POLICY_TEXT)}
    assert result.structured_content["verdict"]["gateway"]["policy_version"] == version


def test_a_relay_that_asks_gets_the_current_policy(live_gateway, connected_relay):
    org, relay = connected_relay
    record = live_gateway.stack.store.get_org(org["org_id"])
    record.policy_text = POLICY_TEXT
    record.save()  # stored without a push, as if the push had been lost
    relay.send({"action": "policy_request", "sha256": relay_protocol.policy_sha256(POLICY_TEXT)})
    (answer,) = documents(relay, "policy")
    assert answer.text == POLICY_TEXT and answer.version == load_policy(POLICY_TEXT).version


def test_a_policy_patch_with_no_relay_online_still_saves(live_gateway):
    org = live_gateway.stack.org("quiet")
    with live_gateway.admin(org) as admin:
        response = admin.patch("/api/v1/org/settings", json={"policy": POLICY_TEXT})
        assert response.status_code == 200, response.text
        assert json.loads(admin.get("/api/v1/org/settings").text)["policy"]["text"] == POLICY_TEXT
