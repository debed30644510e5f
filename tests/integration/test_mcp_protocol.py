"""The /mcp endpoint over real HTTP (uvicorn) with the official MCP client and raw JSON-RPC:
both protocol generations, authentication, and every kind of bad input."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.integration

MODERN = "2026-07-28"
LEGACY = "2025-06-18"
EXPECTED_TOOLS = {
    "exec", "health", "sysinfo", "agents", "list", "read", "history", "approve", "audit", "secrets", "fingerprint",
}


async def _with_client(url: str, key: str, mode: str, action):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as client,
    ):
        return await action(client)


def mcp(url: str, key: str, mode: str, action):
    return anyio.run(_with_client, url, key, mode, action)


def raw(
    url: str, key: str | None, body: Any, *, version: str | None = LEGACY, **headers: str
) -> httpx.Response:
    sent = {"content-type": "application/json", "accept": "application/json, text/event-stream", **headers}
    if key:
        sent["authorization"] = f"Bearer {key}"
    if version:
        sent["mcp-protocol-version"] = version
    if version == MODERN and isinstance(body, dict) and isinstance(body.get("method"), str):
        # 2026-07-28 routing headers mirror the body (the SDK checks they agree).
        sent["mcp-method"] = body["method"]
        name = (body.get("params") or {}).get("name")
        if isinstance(name, str):
            sent["mcp-name"] = name
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers=sent)


def modern_params(**params: Any) -> dict[str, Any]:
    return {
        **params,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        },
    }


@pytest.mark.parametrize(
    ("mode", "negotiated"), [("legacy", "2025-11-25"), ("auto", MODERN), (MODERN, MODERN)]
)
def test_mcp_serves_both_protocol_generations(live_gateway, mode, negotiated):
    org = live_gateway.stack.org("acme")

    async def action(client):
        tools = await client.list_tools()
        health = await client.call_tool("health", {})
        return client.protocol_version, tools, health

    version, tools, health = mcp(live_gateway.mcp_url, org["api_key"], mode, action)
    assert version == negotiated
    assert {t.name for t in tools.tools} == EXPECTED_TOOLS
    for tool in tools.tools:
        assert tool.input_schema["type"] == "object" and tool.output_schema is not None
        assert tool.input_schema["additionalProperties"] is False, tool.name
        assert tool.annotations is not None and tool.annotations.read_only_hint is not None
        assert tool.annotations.destructive_hint is not None and tool.annotations.idempotent_hint is not None
    exec_tool = next(t for t in tools.tools if t.name == "exec")
    assert exec_tool.annotations.destructive_hint is True and exec_tool.annotations.read_only_hint is False
    assert set(exec_tool.input_schema["properties"]) == {
        "agent",
        "command",
        "cwd",
        "timeout",
        "env",
        "idempotency_key",
        "secrets",
    }
    assert health.is_error is False
    assert health.structured_content["gateway"]["status"] == "ok"


@pytest.mark.parametrize("version", [MODERN, LEGACY, None])
@pytest.mark.parametrize("key", [None, "flk_live_unknown", "not-even-a-key"])
def test_mcp_refuses_missing_or_bad_keys_with_401(live_gateway, version, key):
    live_gateway.stack.org("acme")
    response = raw(
        live_gateway.mcp_url, key, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, version=version
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="flowlink"'
    assert response.json()["error"] == "unauthorized"


def test_mcp_refuses_a_revoked_key(live_gateway):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        created = admin.post("/api/v1/keys", json={"scope": "agent", "name": "tmp"}).json()
        assert (
            raw(
                live_gateway.mcp_url, created["key"], {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            ).status_code
            == 200
        )
        admin.delete(f"/api/v1/keys/{created['key_id']}")
    response = raw(live_gateway.mcp_url, created["key"], {"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert response.status_code == 401 and response.json()["detail"] == "API key revoked"


@pytest.mark.parametrize("version", [MODERN, LEGACY, None])
def test_mcp_malformed_json_is_a_parse_error(live_gateway, version):
    org = live_gateway.stack.org("acme")
    response = raw(live_gateway.mcp_url, org["api_key"], b'{"jsonrpc": "2.0", "id": 1,', version=version)
    assert response.json()["error"]["code"] == -32700


@pytest.mark.parametrize("version", [MODERN, LEGACY, None])
@pytest.mark.parametrize(
    "body",
    [
        {"jsonrpc": "2.0", "id": 1},
        [],
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}],
        "hello",
        {"id": 1, "method": "x"},
    ],
)
def test_mcp_invalid_request_is_32600(live_gateway, version, body):
    org = live_gateway.stack.org("acme")
    response = raw(live_gateway.mcp_url, org["api_key"], body, version=version)
    assert response.json()["error"]["code"] == -32600


@pytest.mark.parametrize("params", [{}, modern_params()])
def test_mcp_unsupported_protocol_version_is_400_listing_the_supported_ones(live_gateway, params):
    org = live_gateway.stack.org("acme")
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": params},
        version="1999-01-01",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["id"] == 9
    error = body["error"]
    assert "Unsupported protocol version '1999-01-01'" in error["message"]
    assert "_meta" not in error["message"]
    for supported in (MODERN, "2025-11-25", LEGACY):
        assert supported in error["message"] and supported in error["data"]["supported"]
    assert error["data"]["requested"] == "1999-01-01"


def test_mcp_modern_request_without_the_meta_envelope_is_still_refused(live_gateway):
    org = live_gateway.stack.org("acme")
    response = raw(
        live_gateway.mcp_url, org["api_key"], {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, version=MODERN
    )
    assert response.json()["error"]["code"] == -32602
    assert "protocolVersion" in response.json()["error"]["message"]


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_mcp_unknown_method_is_32601(live_gateway, version):
    org = live_gateway.stack.org("acme")
    params = modern_params() if version == MODERN else {}
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 7, "method": "no/such", "params": params},
        version=version,
    )
    error = response.json()["error"]
    assert error["code"] == -32601


@pytest.mark.parametrize(
    ("version", "params", "field"),
    [
        (LEGACY, {"name": 5, "arguments": {}}, "name"),
        (LEGACY, {"name": "health", "arguments": "oops"}, "arguments"),
        # 2026-07-28 routes tools/call by the Mcp-Name header, so a non-string name is a
        # header mismatch there; a bad arguments member is the params error to check.
        (MODERN, {"name": "health", "arguments": "oops"}, "arguments"),
    ],
)
def test_mcp_bad_params_are_32602_naming_the_field(live_gateway, version, params, field):
    org = live_gateway.stack.org("acme")
    if version == MODERN:
        params = modern_params(**params)
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params},
        version=version,
    )
    error = response.json()["error"]
    assert error["code"] == -32602
    assert field in error["message"]


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_mcp_unknown_tool_is_an_error(live_gateway, version):
    org = live_gateway.stack.org("acme")
    params = {"name": "format_disk", "arguments": {}}
    if version == MODERN:
        params = modern_params(**params)
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params},
        version=version,
    )
    error = response.json()["error"]
    assert error["code"] == -32602 and "format_disk" in error["message"]


def test_mcp_tool_arguments_failing_the_schema_name_the_field(live_gateway):
    org = live_gateway.stack.org("acme")

    async def action(client):
        return await client.call_tool("exec", {"agent": "web-01"})

    result = mcp(live_gateway.mcp_url, org["api_key"], "legacy", action)
    assert result.is_error is True
    assert result.content[0].text == "Error executing tool exec: missing argument 'command'"


@pytest.mark.parametrize("mode", ["legacy", MODERN])
@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("exec", {"agent": "web-01", "command": "true", "bogus": 1}, "unknown argument 'bogus' (expected: agent, "),
        ("exec", {"agent": "web-01", "command": "true", "timout": 5}, "unknown argument 'timout' (expected: agent, "),
        ("exec", {"agent": "web-01", "command": "true", "a": 1, "b": 2}, "unknown arguments 'a', 'b' (expected: "),
        ("health", {"verbose": True}, "unknown argument 'verbose' (it takes no arguments)"),
    ],
)
def test_mcp_unknown_tool_arguments_are_refused_naming_them(live_gateway, mode, tool, arguments, message):
    org = live_gateway.stack.org("acme")

    async def action(client):
        return await client.call_tool(tool, arguments)

    result = mcp(live_gateway.mcp_url, org["api_key"], mode, action)
    assert result.is_error is True
    # One plain line naming the tool and the argument, not pydantic's dump of its model.
    text = result.content[0].text
    assert text.startswith(f"Error executing tool {tool}: {message}"), text
    assert "\n" not in text and "pydantic" not in text and "Arguments" not in text


@pytest.mark.parametrize("version", [MODERN, LEGACY])
def test_mcp_body_over_the_limit_gets_413(live_gateway, version):
    org = live_gateway.stack.org("acme")
    limit = live_gateway.stack.settings.max_body_bytes
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "exec", "arguments": {"agent": "a", "command": "x" * limit}},
    }
    response = raw(live_gateway.mcp_url, org["api_key"], body, version=version)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_mcp_foreign_host_is_refused(live_gateway):
    org = live_gateway.stack.org("acme")
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        host="evil.example",
    )
    assert response.status_code == 421
    response = raw(
        live_gateway.mcp_url,
        org["api_key"],
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        origin="http://evil.example",
    )
    assert response.status_code == 403


def test_mcp_unknown_agent_lists_the_orgs_agents(live_gateway):
    org = live_gateway.stack.org("acme")
    url = live_gateway.base_url + "/api/v1/relays/enroll"
    httpx.post(
        url, json={"token": org["enrollment_token"], "name": "db-01", "signing_public_key": "A" * 43 + "="}
    ).raise_for_status()

    async def action(client):
        return await client.call_tool("exec", {"agent": "web-99", "command": "echo hi"})

    result = mcp(live_gateway.mcp_url, org["api_key"], MODERN, action)
    assert result.is_error is True
    text = result.content[0].text
    assert "web-99" in text and "db-01" in text


def test_mcp_history_rejects_a_bad_page_token(live_gateway):
    org = live_gateway.stack.org("acme")
    url = live_gateway.base_url + "/api/v1/relays/enroll"
    httpx.post(
        url, json={"token": org["enrollment_token"], "name": "db-01", "signing_public_key": "A" * 43 + "="}
    ).raise_for_status()

    async def action(client):
        return await client.call_tool("history", {"agent": "db-01", "page_token": "bm90LWEtdG9rZW4"})

    result = mcp(live_gateway.mcp_url, org["api_key"], "legacy", action)
    assert result.is_error is True and "page_token" in result.content[0].text
