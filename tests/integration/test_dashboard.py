"""The dashboard at /dashboard, against the real gateway app: how its three files are served
(types, CSP, nothing from another origin, also through Mangum as in Lambda), that the script
never turns data into HTML, and that every REST call in the script's API table is a route of
the app that answers an approver's key for a real pending approval — on a moto server that
really runs the approval state machine — including the approve request the page sends.
"""

from __future__ import annotations

import json
import re
import time
from html.parser import HTMLParser
from importlib import resources
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from flowlink.approvals import runtime as approval_runtime
from flowlink.auth import authenticate
from flowlink.commands import ExecRequest
from flowlink.gateway import create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

# The org policy of the approval tests: these commands wait for a human (hard_ask).
POLICY = "name: dashboard\nask:\n  - Bash(echo needs-approval:*)\n"
ASSETS = resources.files("flowlink.gateway.dashboard")
PAGE = ASSETS.joinpath("index.html").read_text()
SCRIPT = ASSETS.joinpath("app.js").read_text()
STYLES = ASSETS.joinpath("app.css").read_text()


API_TABLE = re.compile(r"^const API = Object\.freeze\(\{\n(.*?)^\}\);\n", re.DOTALL | re.MULTILINE)
API_ROW = re.compile(r'^\s+(\w+): \{ method: "([A-Z]+)", path: "([^"]+)" \},$', re.MULTILINE)


def js_api_table() -> dict[str, tuple[str, str]]:
    """The script's API table: call name → (method, path template)."""
    block = API_TABLE.search(SCRIPT)
    assert block, "app.js has no `const API = Object.freeze({ ... });` table"
    rows = API_ROW.findall(block.group(1))
    assert len(rows) == block.group(1).count("method:"), "an API table row is not in the one-line form"
    return {name: (method, path) for name, method, path in rows}


# --------------------------------------------------------------- serving


def test_dashboard_page_and_assets_have_their_types_and_a_strict_csp(live_gateway):
    expected = {
        "/dashboard": ("text/html; charset=utf-8", "<!doctype html>"),
        "/dashboard/app.js": ("text/javascript; charset=utf-8", '"use strict";'),
        "/dashboard/app.css": ("text/css; charset=utf-8", ":root"),
    }
    for path, (content_type, marker) in expected.items():
        response = httpx.get(live_gateway.base_url + path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == content_type
        assert marker in response.text
        csp = {d.split(" ", 1)[0]: d for d in response.headers["content-security-policy"].split("; ")}
        assert csp["default-src"] == "default-src 'none'"
        assert csp["script-src"] == "script-src 'self'" and csp["style-src"] == "style-src 'self'"
        assert csp["connect-src"] == "connect-src 'self'" and csp["frame-ancestors"] == "frame-ancestors 'none'"
        assert csp["require-trusted-types-for"] == "require-trusted-types-for 'script'"
        assert "unsafe" not in response.headers["content-security-policy"]
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"

    head = httpx.head(live_gateway.base_url + "/dashboard")
    assert head.status_code == 200 and "default-src 'none'" in head.headers["content-security-policy"]
    root = httpx.get(live_gateway.base_url + "/")
    assert root.status_code == 307 and root.headers["location"] == "/dashboard"
    for path in ("/dashboard/index.html", "/dashboard/../app.js", "/dashboard/app.js.map", "/dashboard/x/app.js"):
        assert httpx.get(live_gateway.base_url + path).status_code == 404, path


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline_code: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._open = tag

    def handle_data(self, data: str) -> None:
        if self._open in ("script", "style") and data.strip():
            self.inline_code.append(data)

    def handle_endtag(self, tag: str) -> None:
        self._open = None


def test_dashboard_page_loads_only_its_own_files(live_gateway):
    parser = _PageParser()
    parser.feed(httpx.get(live_gateway.base_url + "/dashboard").text)
    assert not parser.inline_code, "inline script or style would be blocked by the CSP"
    references = []
    for tag, attrs in parser.tags:
        assert tag != "style" and tag != "iframe"
        assert not [name for name in attrs if name.startswith("on") or name == "style"], (tag, attrs)
        for name in ("src", "href", "action", "srcset", "poster"):
            if attrs.get(name) is not None:
                references.append(attrs[name])
    assert sorted(references) == ["/dashboard/app.css", "/dashboard/app.js"]
    for reference in references:
        assert httpx.get(live_gateway.base_url + reference).status_code == 200
    # Nothing names another origin: no absolute URLs, no CSS imports or url() fetches.
    for name, text in (("index.html", PAGE), ("app.js", SCRIPT), ("app.css", STYLES)):
        assert "://" not in text, name
    assert "@import" not in STYLES and "url(" not in STYLES


def test_dashboard_is_served_through_mangum_as_in_lambda(gateway_stack, moto_server, load_event, lambda_context):
    import importlib

    gateway_stack.configure(FLOWLINK_WS_MANAGEMENT_URL=moto_server, FLOWLINK_WS_URL="wss://ws.example/prod")
    handler = importlib.reload(importlib.import_module("functions.gateway_http.app")).handler
    for path, content_type in (("/dashboard", "text/html"), ("/dashboard/app.js", "text/javascript")):
        event = load_event("apigw_http_health.json")
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
        event["headers"]["accept"] = "text/html,*/*"
        response = handler(event, lambda_context)
        assert response["statusCode"] == 200, response
        assert response["headers"]["content-type"].startswith(content_type)
        assert "default-src 'none'" in response["headers"]["content-security-policy"]
        assert not response.get("isBase64Encoded")
        assert response["body"] == (PAGE if path == "/dashboard" else SCRIPT)


# --------------------------------------------------------------- the script


def test_dashboard_script_never_turns_data_into_html():
    forbidden = ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "createContextualFragment",
                 "DOMParser", "eval(", "new Function", "setTimeout(\"", "srcdoc", ".href", "location ="]
    for word in forbidden:
        assert word not in SCRIPT, word
    # Every string the element builder and setText put into the page passes visibleText first.
    assert "node.append(child instanceof Node ? child : visibleText(child));" in SCRIPT
    assert "const value = visibleText(text);\n" in SCRIPT and "node.textContent = value;" in SCRIPT
    assert len(re.findall(r"\.textContent\s*=(?!=)", SCRIPT)) == 1, "text is set in setText() only"


def test_dashboard_script_requests_go_through_the_api_table_only():
    table = js_api_table()
    assert SCRIPT.count("fetch(") == 1, "every request goes through call()"
    assert set(re.findall(r'\bcall\("(\w+)"', SCRIPT)) == set(table), "table rows and call() uses must agree"
    outside = API_TABLE.sub("", SCRIPT)
    assert "/api/" not in outside, "an API path outside the table"


def test_dashboard_api_table_names_routes_the_app_has(gateway_stack):
    # The OpenAPI document lists every REST route of the app (included routers too) by method.
    paths = create_app(gateway_stack.settings).openapi()["paths"]
    for name, (method, path) in js_api_table().items():
        assert method.lower() in paths.get(path, {}), f"{name}: {method} {path} is not a route of the gateway app"


# --------------------------------------------------------------- against real approvals


@pytest.fixture
def moto_server(sfn_moto: str) -> str:
    # gateway_stack and live_gateway run on this module's moto server, which executes the
    # approval state machine.
    return sfn_moto


@pytest.fixture
def create_gateway_tables(create_gateway_tables, provision_with_bridge, request, monkeypatch):
    """For the approval tests, the whole template.yaml on the test's prefix: the approvals
    table and the approval state machine too, which the gateway then starts for hard_ask
    commands. The other tests keep the suite's small tables (provisioning costs seconds)."""
    if "approvals" not in request.fixturenames:
        return create_gateway_tables

    def create(settings) -> None:
        report = provision_with_bridge(settings.table_prefix, settings.region)
        monkeypatch.setenv("FLOWLINK_APPROVAL_STATE_MACHINE_ARN", report.state_machines["ApprovalStateMachine"])

    return create


@pytest.fixture
def approvals(live_gateway, connected_relay, monkeypatch) -> dict[str, Any]:
    """An org with a connected fake relay; ``pending(command, needed)`` has the agent key run
    a command the org policy asks a human about, and returns its approval once the state
    machine waits for the decision. The machine's tasks use the gateway's own approval
    service, so an approved command reaches the fake relay through the gateway."""
    org, relay = connected_relay
    runtime = live_gateway.app.state.runtime
    monkeypatch.setattr(approval_runtime, "approval_service", lambda: runtime.commands.approvals)
    agent = authenticate(runtime.store, org["api_key"])

    def pending(command: str, *, needed: int = 1) -> dict[str, Any]:
        with live_gateway.admin(org) as admin:
            changed = admin.patch("/api/v1/org/settings", json={"policy": POLICY, "approvals_required": needed})
            assert changed.status_code == 200, changed.text
        view = runtime.commands.exec(agent, ExecRequest(agent=relay.name, command=command))
        assert view["status"] == "pending_approval", view
        wait_for(lambda: runtime.commands.approvals.get(org["org_id"], view["approval_id"]).task_token)
        return view

    return {"base_url": live_gateway.base_url, "org": org, "relay": relay, "pending": pending}


def wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def js_request(base_url: str, key: str, name: str, *, params=None, query=None, body=None) -> httpx.Response:
    """The request app.js's requestFor() builds for table row ``name``, sent with httpx."""
    method, template = js_api_table()[name]
    # quote(safe=...) leaves exactly what encodeURIComponent leaves.
    path = re.sub(r"\{(\w+)\}", lambda m: quote(params[m.group(1)], safe="!~*'()"), template)
    headers = {"Accept": "application/json", "Authorization": f"Bearer {key}"}
    content = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(body)
    query = {k: v for k, v in (query or {}).items() if v is not None}
    return httpx.request(method, base_url + path, params=query, headers=headers, content=content, timeout=30)


def test_dashboard_calls_answer_an_approver_and_approve_a_real_pending_approval(approvals):
    base, org, relay = approvals["base_url"], approvals["org"], approvals["relay"]
    relay_id = relay.identity["relay_id"]
    pending = approvals["pending"]("echo needs-approval restart nginx")
    key = org["approver_key"]

    def get(name, **kw):
        response = js_request(base, key, name, **kw)
        assert response.status_code == 200, (name, response.text)
        return response.json()

    agents = get("agents")["agents"]
    assert [(a["relay_id"], a["hostname"], a["status"]) for a in agents] == [(relay_id, "fake-01.example", "online")]
    listed = get("approvals", query={"status": "pending"})["approvals"]
    assert [a["approval_id"] for a in listed] == [pending["approval_id"]]
    shown = listed[0]
    assert shown["command"] == "echo needs-approval restart nginx" and shown["relay_id"] == relay_id
    assert shown["agent"] == relay.name and isinstance(shown["score"], int) and shown["reasons"]
    assert shown["needed"] == 1 and shown["decisions"] == [] and shown["expires_at"]
    history = get("history", params={"agent": relay_id}, query={"limit": 20, "page_token": None})
    assert [c["status"] for c in history["commands"]] == ["pending_approval"]
    assert get("integrity")["intact"] is True
    attestation = get("attestation")
    assert attestation["gateway"]["digest"] and [r["relay_id"] for r in attestation["relays"]] == [relay_id]
    first = get("events", query={"limit": 2, "page_token": None})
    assert len(first["events"]) == 2 and first["next_page_token"]
    older = get("events", query={"limit": 2, "page_token": first["next_page_token"]})
    assert older["events"][0]["seq"] < first["events"][-1]["seq"]
    assert "approval.requested" in {e["kind"] for e in get("events", query={"limit": 25})["events"]}

    decided = js_request(base, key, "decide", params={"approval_id": pending["approval_id"]},
                         body={"decision": "approve", "comment": "checked with on-call"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["status"] == "approved" and decided.json()["recorded"] is True
    # The approved command really runs once on the relay, with a grant for exactly it.
    ran = wait_for(lambda: [c for c in relay.claims if c["jti"] == pending["command_id"]])
    assert len(ran) == 1 and ran[0]["grant"]
    done = wait_for(lambda: [c for c in get("history", params={"agent": relay_id})["commands"]
                             if c["status"] == "completed"])
    assert done[0]["stdout"] == "needs-approval restart nginx\n"
    assert get("approvals", query={"status": "pending"})["approvals"] == []
    again = js_request(base, key, "decide", params={"approval_id": pending["approval_id"]}, body={"decision": "deny"})
    assert again.status_code == 200 and again.json()["recorded"] is False
    decided_events = [e for e in get("events", query={"limit": 50})["events"] if e["kind"] == "approval.decided"]
    assert decided_events[0]["fields"]["comment"] == "checked with on-call"


def test_dashboard_two_person_rule_and_refused_keys(approvals):
    base, org, relay = approvals["base_url"], approvals["org"], approvals["relay"]
    pending = approvals["pending"]("echo needs-approval drop the cache", needed=2)
    target = {"approval_id": pending["approval_id"]}

    as_agent = js_request(base, org["api_key"], "decide", params=target, body={"decision": "approve"})
    assert as_agent.status_code == 403 and "agent key" in as_agent.json()["detail"]
    bad_key = js_request(base, "flk_live_not-a-key", "approvals", query={"status": "pending"})
    assert bad_key.status_code == 401 and bad_key.json()["detail"]

    first = js_request(base, org["approver_key"], "decide", params=target, body={"decision": "approve"})
    assert first.json()["status"] == "pending" and first.json()["recorded"] is True
    shown = js_request(base, org["api_key"], "approvals", query={"status": "pending"}).json()["approvals"][0]
    assert shown["needed"] == 2 and [d["decision"] for d in shown["decisions"]] == ["approve"]
    assert not [c for c in relay.claims if c["jti"] == pending["command_id"]]
    second = js_request(base, org["admin_key"], "decide", params=target, body={"decision": "approve"})
    assert second.json()["status"] == "approved"
    wait_for(lambda: [c for c in relay.claims if c["jti"] == pending["command_id"]])


def _approval_events(base: str, key: str, kind: str) -> list[dict[str, Any]]:
    events = js_request(base, key, "events", query={"limit": 100}).json()["events"]
    return [e for e in events if e["kind"] == kind]


def test_dashboard_decides_approvals_when_notification_channels_are_off(approvals, live_gateway):
    base, org, relay = approvals["base_url"], approvals["org"], approvals["relay"]
    with live_gateway.admin(org) as admin:
        changed = admin.patch("/api/v1/org/settings", json={
            "notification_channels": [], "approvers": [{"name": "alice", "telegram_user_id": 4242}],
        })
        assert changed.status_code == 200 and changed.json()["notification_channels"] == []
    pending = approvals["pending"]("echo needs-approval quietly")
    # Nobody was messaged (with channels on, the missing bot token would be a notify error).
    notified = wait_for(lambda: [e for e in _approval_events(base, org["admin_key"], "approval.notified")
                                 if e["fields"]["approval_id"] == pending["approval_id"]])
    assert notified[0]["fields"]["channels"] == [] and notified[0]["fields"]["sent"] == 0
    shown = js_request(base, org["approver_key"], "approvals", query={"status": "pending"}).json()["approvals"]
    assert [a["approval_id"] for a in shown] == [pending["approval_id"]] and shown[0]["notify_errors"] == []
    decided = js_request(base, org["approver_key"], "decide", params={"approval_id": pending["approval_id"]},
                         body={"decision": "approve"})
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    wait_for(lambda: [c for c in relay.claims if c["jti"] == pending["command_id"]])


def test_dashboard_approvals_page_with_a_token_and_refuse_another_querys(approvals):
    base, org = approvals["base_url"], approvals["org"]
    older = approvals["pending"]("echo needs-approval first")
    newer = approvals["pending"]("echo needs-approval second")
    key = org["approver_key"]
    first = js_request(base, key, "approvals", query={"status": "pending", "limit": 1}).json()
    assert [a["approval_id"] for a in first["approvals"]] == [newer["approval_id"]] and first["next_page_token"]
    second = js_request(base, key, "approvals",
                        query={"status": "pending", "limit": 1, "page_token": first["next_page_token"]}).json()
    assert [a["approval_id"] for a in second["approvals"]] == [older["approval_id"]]
    assert second["next_page_token"] is None
    other = js_request(base, key, "approvals", query={"limit": 1, "page_token": first["next_page_token"]})
    assert other.status_code == 400 and "page_token" in other.json()["detail"]


def test_telegram_press_with_a_huge_sender_id_is_refused_and_audited(approvals, live_gateway, monkeypatch):
    from dataclasses import replace

    base, org = approvals["base_url"], approvals["org"]
    service = live_gateway.app.state.runtime.commands.approvals
    monkeypatch.setattr(service, "settings", replace(service.settings, telegram_webhook_secret="hook-secret"))
    pending = approvals["pending"]("echo needs-approval from a stranger")
    huge = 99999999999999999999999999
    update = {
        "update_id": 7001,
        "callback_query": {
            "id": "cbq-1", "from": {"id": huge, "username": "mallory"},
            "data": f"apr:{pending['approval_id']}:approve",
            "message": {"message_id": 1, "chat": {"id": huge}},
        },
    }
    response = httpx.post(base + "/telegram/webhook", json=update,
                          headers={"X-Telegram-Bot-Api-Secret-Token": "hook-secret"}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True, "result": "refused"}
    refused = [e for e in _approval_events(base, org["admin_key"], "approval.decision_refused")
               if e["fields"]["approval_id"] == pending["approval_id"]]
    assert refused[0]["fields"]["telegram_user_id"] == str(huge)
    assert js_request(base, org["admin_key"], "integrity").json()["intact"] is True
    still = js_request(base, org["approver_key"], "approvals", query={"status": "pending"}).json()["approvals"]
    assert [a["approval_id"] for a in still] == [pending["approval_id"]] and still[0]["decisions"] == []
