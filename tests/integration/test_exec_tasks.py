"""exec as an MCP task, through the real gateway app, a fake relay and a moto server that
really executes the approval state machine (its Lambda tasks run in-process).

Driven with raw JSON-RPC over HTTP (initialize handshake, then ``MCP-Protocol-Version``):
the official client (mcp 2.3.0) validates a 2025-11-25 ``tools/call`` answer as a
``CallToolResult`` and has no task methods, so it cannot make a task-augmented call.
Covers 2025-11-25 tasks (hard_ask → working → REST approval → completed → tasks/result is
the exec result; deny → failed; cancel before approval → never runs; another org's key →
not found; bad ids and params) and the 2026-07-28 tasks extension. Tasks are read after a
gateway restart, so nothing about them lives in the gateway's memory.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import boto3
import httpx
import pytest
from flowlink import audit
from flowlink.approvals import runtime as approvals_runtime
from flowlink.audit.store import item_to_record

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
EXTENSION = "io.modelcontextprotocol/tasks"
RELATED_TASK = "io.modelcontextprotocol/related-task"
POLICY = "name: tasks\nask:\n  - Bash(echo needs-approval:*)\n"


@pytest.fixture
def moto_server(sfn_moto: str) -> str:
    # Overrides the suite's emulator, so gateway_stack and live_gateway run on sfn_moto.
    return sfn_moto


@pytest.fixture
def gateway(live_gateway, provision_with_bridge, monkeypatch):
    """live_gateway with the rest of template.yaml on its table prefix (approvals table,
    approval state machine); the machine's Lambda tasks use the gateway's own approval
    service, so an approved command reaches the fake relay through the gateway."""
    stack = live_gateway.stack
    report = provision_with_bridge(stack.settings.table_prefix, stack.settings.region)
    machine = report.state_machines["ApprovalStateMachine"]
    # A short bounded wait, so tasks/result on an unfinished task answers quickly.
    stack.configure(FLOWLINK_APPROVAL_STATE_MACHINE_ARN=machine, FLOWLINK_EXEC_WAIT_SECONDS="2")
    live_gateway.restart()
    monkeypatch.setattr(
        approvals_runtime, "approval_service", lambda: live_gateway.app.state.runtime.commands.approvals
    )
    live_gateway.machine = machine
    return live_gateway


def poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached; last value: {value!r}")
        time.sleep(0.1)


class Wire:
    """One MCP client over raw JSON-RPC: the initialize handshake at 2025-11-25, or the
    2026-07-28 per-request envelope (declaring the tasks extension or not)."""

    def __init__(self, url: str, key: str, version: str = LEGACY, *, extension: bool = True):
        self.url, self.key, self.version, self.extension = url, key, version, extension
        self.init: dict[str, Any] | None = None  # the InitializeResult, after initialize()
        self._id = 0

    def _post(self, body: dict[str, Any], *, version: str | None) -> httpx.Response:
        headers = {
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            "authorization": f"Bearer {self.key}",
        }
        if version:
            headers["mcp-protocol-version"] = version
        if version == MODERN:
            params = body.setdefault("params", {})
            extensions = {EXTENSION: {}} if self.extension else {}
            params["_meta"] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {"extensions": extensions},
            }
            headers["mcp-method"] = body["method"]
            name = params.get("name", params.get("taskId"))
            if isinstance(name, str):
                headers["mcp-name"] = name
        return httpx.post(self.url, content=json.dumps(body), headers=headers, timeout=60)

    def initialize(self) -> dict[str, Any]:
        answer = self._post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": LEGACY,
                    "capabilities": {"tasks": {"list": {}, "cancel": {}}},
                    "clientInfo": {"name": "tasks-test", "version": "1"},
                },
            },
            version=None,
        ).json()["result"]
        assert answer["protocolVersion"] == LEGACY
        sent = self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, version=LEGACY)
        assert sent.status_code == 202
        return answer

    def call(self, method: str, params: dict[str, Any] | None = None, *, version: str | None = None) -> dict:
        self._id += 1
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            body["params"] = dict(params)
        response = self._post(body, version=version or self.version)
        # 2026-07-28 also maps some errors to an HTTP status (e.g. -32021 → 400); results are 200.
        assert response.status_code == 200 or "error" in response.json(), response.text
        return response.json()

    def result(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self.call(method, params)
        assert "error" not in answer, answer
        return answer["result"]

    def error(self, method: str, params: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        answer = self.call(method, params, **kwargs)
        assert "error" in answer, answer
        return answer["error"]

    def task(self, task_id: str) -> dict[str, Any]:
        return self.result("tasks/get", {"taskId": task_id})

    def exec(self, relay, command: str, key: str, *, task: bool = True) -> dict[str, Any]:
        """tools/call exec (with a 2025-11-25 ``task`` param unless ``task=False``)."""
        return self.result("tools/call", _exec_params(relay, command, key, task=task))


def _org(gateway, make_relay, version: str = LEGACY):
    """An org whose policy holds `echo needs-approval ...` for a human, its connected relay,
    and an agent-key client (after the initialize handshake at 2025-11-25)."""
    org = gateway.stack.org("acme")
    with gateway.admin(org) as admin:
        admin.patch("/api/v1/org/settings", json={"policy": POLICY}).raise_for_status()
    relay = make_relay(org, name="acme-web")
    relay.enroll()
    relay.connect()
    assert relay.wait_welcome()
    wire = Wire(gateway.mcp_url, org["api_key"], version)
    if version == LEGACY:
        wire.init = wire.initialize()
    return org, relay, wire


def _exec_params(relay, command: str, key: str, *, task: bool = True) -> dict[str, Any]:
    params: dict[str, Any] = {
        "name": "exec",
        "arguments": {"agent": relay.name, "command": command, "idempotency_key": key},
    }
    if task:
        params["task"] = {"ttl": 60_000}
    return params


def _decide(gateway, org, task_id: str, decision: str) -> dict[str, Any]:
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {org['approver_key']}"}) as api:
        pending = api.get("/api/v1/approvals", params={"status": "pending"}).json()["approvals"]
        approval = next(a for a in pending if a["command_id"] == task_id)
        answer = api.post(f"/api/v1/approvals/{approval['approval_id']}", json={"decision": decision})
        answer.raise_for_status()
        return {**approval, **answer.json()}


def _without_meta(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "_meta"}


def test_exec_task_waits_for_approval_then_completes_with_the_exec_result(gateway, make_relay):
    org, relay, wire = _org(gateway, make_relay)
    assert wire.init["capabilities"]["tasks"] == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
    tools = {t["name"]: t for t in wire.result("tools/list")["tools"]}
    assert tools["exec"]["execution"] == {"taskSupport": "optional"}
    assert "execution" not in tools["history"]

    command = "echo needs-approval one"
    created = wire.exec(relay, command, "task-approve")
    task = created["task"]
    task_id = task["taskId"]
    assert task["status"] == "working" and "waiting for human approval" in task["statusMessage"]
    assert task["ttl"] is None and task["pollInterval"] > 0 and task["createdAt"]
    assert "flowlink approve" in created["_meta"]["io.modelcontextprotocol/model-immediate-response"]

    # Not finished: tasks/result gives up after the gateway's bounded wait and says so.
    unfinished = wire.error("tasks/result", {"taskId": task_id})
    assert unfinished["code"] == -32001 and unfinished["data"]["status"] == "working"
    assert "waiting for human approval" in unfinished["message"]

    # A task lives in DynamoDB: a restarted gateway (as another Lambda instance) knows it.
    gateway.restart()
    relay.connect()
    assert relay.wait_welcome()
    assert wire.task(task_id)["status"] == "working"
    assert task_id in [t["taskId"] for t in wire.result("tasks/list")["tasks"]]

    _decide(gateway, org, task_id, "approve")
    done = poll(lambda: wire.task(task_id), lambda t: t["status"] != "working")
    assert done["status"] == "completed" and "exit code 0" in done["statusMessage"]
    assert "pollInterval" not in done

    result = wire.result("tasks/result", {"taskId": task_id})
    assert result["isError"] is False
    assert result["structuredContent"]["stdout"] == "needs-approval one\n"
    assert result["structuredContent"]["status"] == "completed"
    assert result["_meta"][RELATED_TASK] == {"taskId": task_id}
    # Exactly what exec returns for this command when called again with its idempotency key.
    again = wire.exec(relay, command, "task-approve", task=False)
    assert _without_meta(result) == _without_meta(again)
    assert [claims["jti"] for claims in relay.claims] == [task_id]


def test_exec_task_denied_by_an_approver_fails_and_never_runs(gateway, make_relay):
    org, relay, wire = _org(gateway, make_relay)
    command = "echo needs-approval two"
    task_id = wire.exec(relay, command, "task-deny")["task"]["taskId"]

    _decide(gateway, org, task_id, "deny")
    failed = poll(lambda: wire.task(task_id), lambda t: t["status"] != "working")
    assert failed["status"] == "failed" and failed["statusMessage"] == "denied by an approver; not run"

    result = wire.result("tasks/result", {"taskId": task_id})
    assert result["isError"] is True
    assert "command_denied: denied by an approver; not run" in result["content"][0]["text"]
    again = wire.exec(relay, command, "task-deny", task=False)
    assert _without_meta(result) == _without_meta(again)
    assert relay.claims == []


def test_exec_task_cancelled_before_approval_never_runs(gateway, make_relay):
    org, relay, wire = _org(gateway, make_relay)
    command = "echo needs-approval three"
    task_id = wire.exec(relay, command, "task-cancel")["task"]["taskId"]

    cancelled = wire.result("tasks/cancel", {"taskId": task_id})
    assert cancelled["taskId"] == task_id and cancelled["status"] == "cancelled"
    assert "before approval; not run" in cancelled["statusMessage"]
    assert wire.task(task_id)["status"] == "cancelled"

    # The approval is closed for humans too, and a late approval changes nothing.
    with httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {org['approver_key']}"}) as api:
        approvals = api.get("/api/v1/approvals", params={"status": "cancelled"}).json()["approvals"]
        approval = next(a for a in approvals if a["command_id"] == task_id)
        assert approval["decisions"][-1]["decision"] == "cancel"
        late = api.post(f"/api/v1/approvals/{approval['approval_id']}", json={"decision": "approve"}).json()
        assert late["recorded"] is False and late["status"] == "cancelled"
    # Once the approval machine has ended, nothing can ever dispatch the command.
    sfn = boto3.client("stepfunctions", region_name=gateway.stack.settings.region)
    poll(
        lambda: sfn.describe_execution(
            executionArn=gateway.machine.replace(":stateMachine:", ":execution:") + ":" + approval["approval_id"]
        )["status"],
        lambda status: status != "RUNNING",
    )
    assert relay.claims == []
    assert wire.task(task_id)["status"] == "cancelled"

    refused = wire.error("tasks/cancel", {"taskId": task_id})
    assert refused["code"] == -32602 and "terminal status 'cancelled'" in refused["message"]
    again = wire.exec(relay, command, "task-cancel", task=False)
    assert again["structuredContent"]["status"] == "cancelled" and again["isError"] is False
    assert _without_meta(wire.result("tasks/result", {"taskId": task_id})) == _without_meta(again)


def test_exec_task_of_a_running_command_is_not_cancelled(gateway, make_relay):
    _, relay, wire = _org(gateway, make_relay)
    # Auto, and the fake relay acknowledges "hang" without ever answering.
    task = wire.exec(relay, "hang forever", "task-hang")["task"]
    assert task["status"] == "working"
    running = poll(lambda: wire.task(task["taskId"]), lambda t: t["statusMessage"].startswith("running on"))
    assert running["pollInterval"] > 0
    refused = wire.error("tasks/cancel", {"taskId": task["taskId"]})
    assert refused["code"] == -32602 and "does not stop a running command" in refused["message"]
    assert wire.task(task["taskId"])["status"] == "working"


def test_exec_task_ids_are_bound_to_the_org_and_bad_params_are_32602(gateway, make_relay):
    _, relay, wire = _org(gateway, make_relay)
    task_id = wire.exec(relay, "echo needs-approval four", "task-org")["task"]["taskId"]

    other = gateway.stack.org("globex")
    stranger = Wire(gateway.mcp_url, other["api_key"])
    stranger.initialize()
    for method in ("tasks/get", "tasks/result", "tasks/cancel"):
        error = stranger.error(method, {"taskId": task_id})
        assert error["code"] == -32602 and f"no task '{task_id}' in this org" in error["message"]
    assert task_id not in [t["taskId"] for t in stranger.result("tasks/list")["tasks"]]

    for method in ("tasks/get", "tasks/cancel", "tasks/result"):
        assert wire.error(method, {"taskId": "cmd_" + uuid.uuid4().hex})["code"] == -32602
        missing = wire.error(method, {})
        assert missing["code"] == -32602 and "taskId" in missing["message"]
    bad_cursor = wire.error("tasks/list", {"cursor": "not-a-cursor"})
    assert bad_cursor["code"] == -32602 and "page_token" in bad_cursor["message"]
    bad_task = wire.error("tools/call", {**_exec_params(relay, "echo hi", "task-bad"), "task": "soon"})
    assert bad_task["code"] == -32602 and "task" in bad_task["message"]
    # Only exec declares taskSupport; a task-augmented call of another tool is -32601.
    not_a_task = wire.error("tools/call", {"name": "health", "arguments": {}, "task": {}})
    assert not_a_task["code"] == -32601 and "health" in not_a_task["message"]
    # Tasks are a 2025-11-25 feature: an older protocol version has no such methods, and its
    # tools/call ignores a task param (the spec's rule for receivers without the capability).
    assert wire.error("tasks/get", {"taskId": task_id}, version="2025-06-18")["code"] == -32601
    older = wire.call("tools/call", _exec_params(relay, "echo needs-approval five", "task-older"), version="2025-06-18")
    assert "task" not in older["result"] and older["result"]["structuredContent"]["status"] == "pending_approval"
    # None of this touched the task.
    assert wire.task(task_id)["status"] == "working"


def test_exec_task_extension_at_2026_07_28(gateway, make_relay):
    org, relay, wire = _org(gateway, make_relay, MODERN)
    plain = Wire(gateway.mcp_url, org["api_key"], MODERN, extension=False)
    assert wire.result("server/discover")["capabilities"]["extensions"][EXTENSION] == {}

    # Without the extension declared, exec answers as always: a pending result to poll.
    pending = plain.exec(relay, "echo needs-approval five", "ext-plain", task=False)
    assert pending["resultType"] == "complete" and pending["structuredContent"]["status"] == "pending_approval"

    created = wire.exec(relay, "echo needs-approval six", "ext-approve", task=False)
    assert created["resultType"] == "task" and created["status"] == "working"
    assert created["ttlMs"] is None and created["pollIntervalMs"] > 0
    approved_id = created["taskId"]
    denied_id = wire.exec(relay, "echo needs-approval seven", "ext-deny", task=False)["taskId"]
    missing_capability = plain.error("tasks/get", {"taskId": approved_id})
    assert missing_capability["code"] == -32021
    assert wire.task(approved_id)["status"] == "working"
    acknowledged = wire.result("tasks/update", {"taskId": approved_id, "inputResponses": {}})
    assert _without_meta(acknowledged) == {"resultType": "complete"}

    _decide(gateway, org, approved_id, "approve")
    _decide(gateway, org, denied_id, "deny")
    done = poll(lambda: wire.task(approved_id), lambda t: t["status"] != "working")
    assert done["status"] == "completed" and done["resultType"] == "complete"
    assert done["result"]["structuredContent"]["stdout"] == "needs-approval six\n"
    assert done["result"]["isError"] is False
    # A denial is a tool error, not a JSON-RPC one: the extension calls that completed.
    denied = poll(lambda: wire.task(denied_id), lambda t: t["status"] != "working")
    assert denied["status"] == "completed" and denied["result"]["isError"] is True
    assert "denied by an approver" in denied["result"]["content"][0]["text"]

    assert wire.error("tasks/cancel", {"taskId": approved_id})["code"] == -32602
    # tasks/result and tasks/list are 2025-11-25 methods: the extension has neither.
    assert wire.error("tasks/result", {"taskId": approved_id})["code"] == -32601
    assert wire.error("tasks/list", {})["code"] == -32601
    assert [claims["jti"] for claims in relay.claims] == [approved_id]


def test_removing_a_relay_closes_its_pending_approvals_and_a_later_decision_says_so(gateway, make_relay):
    org, relay, wire = _org(gateway, make_relay)
    admin = gateway.admin(org)
    relay_id = relay.identity["relay_id"]
    command_id = wire.exec(relay, "echo needs-approval please", "removed-relay")["task"]["taskId"]
    approver = httpx.Client(base_url=gateway.base_url, headers={"Authorization": f"Bearer {org['approver_key']}"})
    approval = poll(
        lambda: [a for a in approver.get("/api/v1/approvals", params={"status": "pending"}).json()["approvals"]
                 if a["command_id"] == command_id],
        bool,
    )[0]
    approval_id = approval["approval_id"]

    removed = admin.delete(f"/api/v1/agents/{relay_id}")
    assert removed.status_code == 200, removed.text
    assert removed.json()["approvals_closed"] == [approval_id]
    assert command_id in removed.json()["commands_failed"]

    # A later decision is a clear no-op: no grant, nothing dispatched.
    decided = approver.post(f"/api/v1/approvals/{approval_id}", json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["recorded"] is False and "relay was removed" in decided.json()["message"]
    closed = approver.get(f"/api/v1/approvals/{approval_id}").json()
    assert closed["status"] == "failed" and closed["dispatched_at"] is None
    command = gateway.stack.store.get_command(org["org_id"], command_id)
    assert command.status == "failed" and "relay removed" in command.error
    assert getattr(command, "grant", None) is None
    # The state machine ended (the recorder ran) and the command kept its reason.
    def events(kind: str) -> list[dict[str, Any]]:
        chain = (json.loads(item_to_record(i)["event"]) for i in audit.default_store().iter_items(org["org_id"]))
        return [e for e in chain if e["kind"] == kind]

    poll(lambda: events("approval.failed"), bool)
    assert "relay removed" in gateway.stack.store.get_command(org["org_id"], command_id).error
    (event,) = events("relay.removed")
    assert event["fields"]["approvals_closed"] == [approval_id] and command_id in event["fields"]["commands_failed"]
    assert events("approval.grant_issued") == []
    assert relay.claims == []
    # Its history stays readable by id.
    history = httpx.get(f"{gateway.base_url}/api/v1/agents/{relay_id}/commands",
                        headers={"Authorization": f"Bearer {org['api_key']}"})
    assert history.status_code == 200 and history.json()["commands"][0]["status"] == "failed"
