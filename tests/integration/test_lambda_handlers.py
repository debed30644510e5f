"""The Lambda handlers invoked with real-shaped API Gateway events (events/*.json) against moto:
the Mangum-wrapped gateway several times in one process, and the four WebSocket handlers."""

from __future__ import annotations

import base64
import importlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

pytestmark = pytest.mark.integration


@pytest.fixture
def lambda_stack(gateway_stack, moto_server):
    # Management API posts go to moto, which accepts any connection id: no real AWS.
    gateway_stack.configure(FLOWLINK_WS_MANAGEMENT_URL=moto_server, FLOWLINK_WS_URL="wss://ws.example/prod")
    return gateway_stack


def _gateway_handler():
    # The module builds its app from the environment at import, as a Lambda container does.
    module = importlib.import_module("functions.gateway_http.app")
    return importlib.reload(module).handler


def _with_key(event: dict, key: str) -> dict:
    event["headers"]["authorization"] = f"Bearer {key}"
    return event


def _body(response: dict) -> dict:
    body = response["body"]
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body)


def test_lambda_gateway_answers_repeated_invocations_in_one_container(
    lambda_stack, load_event, lambda_context
):
    org = lambda_stack.org("acme")
    handler = _gateway_handler()
    for _ in range(3):
        listed = handler(
            _with_key(load_event("apigw_http_mcp_tools_list.json"), org["api_key"]), lambda_context
        )
        assert listed["statusCode"] == 200, listed
        assert "exec" in {tool["name"] for tool in _body(listed)["result"]["tools"]}
        called = handler(
            _with_key(load_event("apigw_http_mcp_tools_call_health.json"), org["api_key"]), lambda_context
        )
        assert called["statusCode"] == 200, called
        result = _body(called)["result"]
        assert result["isError"] is False and result["structuredContent"]["gateway"]["status"] == "ok"


def test_lambda_gateway_serves_both_protocol_generations(lambda_stack, load_event, lambda_context):
    org = lambda_stack.org("acme")
    handler = _gateway_handler()
    initialized = handler(
        _with_key(load_event("apigw_http_mcp_initialize.json"), org["api_key"]), lambda_context
    )
    assert _body(initialized)["result"]["protocolVersion"] == "2025-11-25"
    discovered = handler(
        _with_key(load_event("apigw_http_mcp_discover.json"), org["api_key"]), lambda_context
    )
    assert discovered["statusCode"] == 200, discovered
    assert "2026-07-28" in _body(discovered)["result"]["supportedVersions"]


def test_lambda_gateway_refuses_a_bad_key_and_serves_rest(lambda_stack, load_event, lambda_context):
    handler = _gateway_handler()
    refused = handler(
        _with_key(load_event("apigw_http_mcp_tools_list.json"), "flk_live_wrong"), lambda_context
    )
    assert refused["statusCode"] == 401
    assert refused["headers"]["www-authenticate"] == 'Bearer realm="flowlink"'
    health = handler(load_event("apigw_http_health.json"), lambda_context)
    assert health["statusCode"] == 200 and _body(health)["status"] == "ok"


def _enrolled_relay(stack) -> tuple[dict, dict]:
    from flowlink.relays import enroll_relay

    org = stack.org("acme")
    public = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    identity = enroll_relay(
        stack.store,
        stack.settings,
        {
            "token": org["enrollment_token"],
            "name": "web-01",
            "signing_public_key": base64.b64encode(public).decode(),
        },
    )
    return org, identity


def _relay_event(event: dict, identity: dict) -> dict:
    if "Authorization" in event.get("headers", {}):
        event["headers"]["Authorization"] = f"Bearer {identity['relay_credential']}"
        event["headers"]["X-Flowlink-Relay-Id"] = identity["relay_id"]
    if "authorizer" in event["requestContext"]:
        event["requestContext"]["authorizer"].update(
            principalId=identity["relay_id"], relay_id=identity["relay_id"], org_id=identity["org_id"]
        )
    return event


def test_lambda_ws_authorizer_allows_only_the_enrolled_credential(lambda_stack, load_event, lambda_context):
    from functions.ws_authorizer.app import handler

    _, identity = _enrolled_relay(lambda_stack)
    allowed = handler(_relay_event(load_event("apigw_ws_authorizer_connect.json"), identity), lambda_context)
    assert allowed["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    assert allowed["context"] == {"org_id": identity["org_id"], "relay_id": identity["relay_id"]}

    wrong = _relay_event(load_event("apigw_ws_authorizer_connect.json"), identity)
    wrong["headers"]["Authorization"] = "Bearer flk_rly_wrong"
    assert handler(wrong, lambda_context)["policyDocument"]["Statement"][0]["Effect"] == "Deny"

    by_query = load_event("apigw_ws_authorizer_connect.json")
    del by_query["headers"]["Authorization"], by_query["headers"]["X-Flowlink-Relay-Id"]
    by_query["queryStringParameters"] = {
        "relay_id": identity["relay_id"],
        "token": identity["relay_credential"],
    }
    assert handler(by_query, lambda_context)["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_lambda_ws_connect_message_disconnect_track_the_relay(lambda_stack, load_event, lambda_context):
    from flowlink.relays import handle_relay_message

    from functions.ws_connect.app import handler as connect
    from functions.ws_disconnect.app import handler as disconnect
    from functions.ws_message.app import handler as message

    org, identity = _enrolled_relay(lambda_stack)
    store = lambda_stack.store
    assert connect(_relay_event(load_event("apigw_ws_connect.json"), identity), lambda_context) == {
        "statusCode": 200
    }
    # Connected but not yet checked: no command may be sent to it before its hello.
    assert store.get_connection("L0SM9cOFvHcCIhw=").relay_id == identity["relay_id"]
    assert store.get_agent(org["org_id"], identity["relay_id"]).status == "offline"
    sent: list[dict] = []

    class Capture:
        def send(self, connection_id: str, payload: dict) -> None:
            sent.append(payload)

    answer = handle_relay_message(
        store, lambda_stack.settings, Capture(), "L0SM9cOFvHcCIhw=", json.dumps({"action": "sync"})
    )
    assert answer["code"] == "hello_first" and sent == [answer]

    hello = _relay_event(load_event("apigw_ws_message_heartbeat.json"), identity)
    enrolled_key = store.get_agent(org["org_id"], identity["relay_id"]).signing_public_key
    hello["body"] = json.dumps({"action": "hello", "signing_public_key": enrolled_key, "version": "1"})
    assert message(hello, lambda_context) == {"statusCode": 200}
    agent = store.get_agent(org["org_id"], identity["relay_id"])
    assert agent.status == "online" and agent.connection_id == "L0SM9cOFvHcCIhw="
    seen = agent.last_seen

    assert message(_relay_event(load_event("apigw_ws_message_heartbeat.json"), identity), lambda_context) == {
        "statusCode": 200
    }
    assert store.get_agent(org["org_id"], identity["relay_id"]).last_seen > seen

    assert disconnect(_relay_event(load_event("apigw_ws_disconnect.json"), identity), lambda_context) == {
        "statusCode": 200
    }
    agent = store.get_agent(org["org_id"], identity["relay_id"])
    assert agent.status == "offline" and agent.connection_id is None
    assert store.get_connection("L0SM9cOFvHcCIhw=") is None


def test_lambda_ws_connect_without_authorizer_context_is_refused(lambda_stack, load_event, lambda_context):
    from functions.ws_connect.app import handler as connect

    event = load_event("apigw_ws_connect.json")
    event["requestContext"]["authorizer"] = {"principalId": "x", "relay_id": "rly_nope", "org_id": "org_nope"}
    assert connect(event, lambda_context) == {"statusCode": 403}
