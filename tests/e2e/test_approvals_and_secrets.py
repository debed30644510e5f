"""Issues 4 and 6 end to end on `flowlink local up`, driven by the official MCP client, the
`flowlink` CLI and a local fake Telegram Bot API that plays button presses back.

Approvals: an org policy makes a harmless command hard_ask; it shows up as a Telegram
message; Approve runs it exactly once and the agent gets its output by calling exec again
with the same idempotency key; a double press changes nothing; a stranger's press is
refused and audited; Deny (from the CLI) never runs it; a wrong webhook secret gets 401.

Secrets: `flowlink secrets put` with the value on stdin, then `exec 'echo "$DB_PASSWORD" |
base64'` returns redacted output while the command provably received the value (a hash
comparison that prints nothing secret), and a scan of every table, bucket and log finds no
plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import boto3
import httpx
import pytest
from flowlink.local.fake_telegram import FakeTelegram
from flowlink.local.harness import FLOWLINK, RunningStack, mcp_client, start_local_up, stop_local_up

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

WEBHOOK_SECRET = "e2e-webhook-secret"
ALICE = 4242
POLICY = "name: e2e\nask:\n  - Bash(echo needs-approval:*)\nsoft_ask:\n  - Bash(echo tell-approvers:*)\n"
SECRET_VALUE = "pg-Sup3r-s3cret-value-91"


@pytest.fixture(scope="module")
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, telegram: FakeTelegram) -> Iterator[RunningStack]:
    saved = {k: os.environ.get(k) for k in ("TELEGRAM_API_BASE", "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET")}
    os.environ.update(
        TELEGRAM_API_BASE=telegram.api_base, TELEGRAM_BOT_TOKEN="123:e2e", TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET
    )
    try:
        running = start_local_up(tmp_path_factory.mktemp("local-up-approvals"))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    yield running
    stop_local_up(running.process)


def _admin(stack: RunningStack) -> httpx.Client:
    return httpx.Client(
        base_url=stack.info["api_url"], headers={"Authorization": f"Bearer {stack.info['admin_key']}"}, timeout=30
    )


def _exec(stack: RunningStack, arguments: dict):
    async def go():
        async with mcp_client(stack.info["mcp_url"], stack.info["api_key"], "auto") as client:
            return await client.call_tool("exec", {"agent": stack.info["relay_id"], **arguments})

    return anyio.run(go)


def _cli(stack: RunningStack, *args: str, key: str, stdin: str | None = None, env: dict | None = None):
    environment = {**os.environ, "FLOWLINK_API_URL": stack.info["api_url"], "FLOWLINK_API_KEY": key, **(env or {})}
    return subprocess.run([str(FLOWLINK), *args], input=stdin, capture_output=True, text=True, timeout=120,
                          env=environment, check=False)


def _until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout} s")


@pytest.fixture(scope="module")
def approvals_ready(stack: RunningStack, telegram: FakeTelegram) -> None:
    with _admin(stack) as admin:
        response = admin.patch("/api/v1/org/settings", json={
            "approvers": [{"name": "alice", "telegram_user_id": ALICE}], "policy": POLICY,
        })
        assert response.status_code == 200, response.text
    setup = _cli(stack, "telegram", "setup", "--webhook-url", f"{stack.info['api_url']}/telegram/webhook",
                 key=stack.info["admin_key"], env={"TELEGRAM_API_BASE": telegram.api_base,
                                                   "TELEGRAM_BOT_TOKEN": "123:e2e",
                                                   "TELEGRAM_WEBHOOK_SECRET": WEBHOOK_SECRET})
    assert setup.returncode == 0, setup.stderr
    assert telegram.state.webhook_secret == WEBHOOK_SECRET


def _audit_kinds(stack: RunningStack, text: str) -> list[str]:
    with _admin(stack) as admin:
        response = admin.get("/api/v1/audit/events", params={"text": text, "limit": "100"})
    assert response.status_code == 200, response.text
    return [event["kind"] for event in response.json()["events"]]


def _approval_message(telegram: FakeTelegram, approval_id: str):
    return _until(
        lambda: next((c for c in telegram.calls("sendMessage") if approval_id in c.payload["text"]), None),
        what="approval message",
    )


def test_e2e_banner_says_telegram_is_configured_and_what_is_left_to_do(stack: RunningStack):
    out = stack.output()
    assert "Telegram: bot token and webhook secret are set" in out and "set TELEGRAM_BOT_TOKEN" not in out


def test_e2e_org_policy_with_a_broken_line_is_refused_and_names_it(stack: RunningStack):
    with _admin(stack) as admin:
        response = admin.patch("/api/v1/org/settings", json={"policy": "name: x\nask:\n  - Bash(echo:*\n"})
    assert response.status_code == 400 and "line" in response.text


def test_e2e_hard_ask_runs_exactly_once_after_telegram_approval(stack, telegram, approvals_ready):
    arguments = {"command": "echo needs-approval one", "idempotency_key": "e2e-approve-1"}
    first = _exec(stack, arguments)
    assert not first.is_error, first.content
    pending = first.structured_content
    assert pending["status"] == "pending_approval" and pending["approval_id"].startswith("apr_")
    assert "flowlink approve" in pending["message"]
    message = _approval_message(telegram, pending["approval_id"])
    assert "echo needs-approval one" in message.payload["text"]
    # The message names the host the command would run on (the relay reports its hostname).
    assert f"on <code>{socket.gethostname()}</code>" in message.payload["text"]

    press = telegram.press(message, "approve", user_id=ALICE, username="alice")
    assert press.status_code == 200 and press.json().get("recorded") is True
    done = _until(lambda: (r := _exec(stack, arguments).structured_content)["status"] == "completed" and r,
                  what="approved command completed")
    assert done["stdout"] == "needs-approval one\n" and done["exit_code"] == 0

    # A double press and a replayed update change nothing; the command ran once.
    again = telegram.press(message, "approve", user_id=ALICE, username="alice")
    assert again.status_code == 200 and not again.json().get("recorded")
    kinds = _audit_kinds(stack, pending["command_id"]) + _audit_kinds(stack, pending["approval_id"])
    assert kinds.count("exec.completed") == 1
    for kind in ("exec.pending_approval", "approval.requested", "approval.notified", "approval.decided",
                 "approval.grant_issued"):
        assert kind in kinds, kind


def test_e2e_soft_ask_runs_and_tells_the_approvers_without_buttons(stack, telegram, approvals_ready):
    result = _exec(stack, {"command": "echo tell-approvers now"})
    assert not result.is_error, result.content
    done = result.structured_content
    assert done["status"] == "completed" and done["stdout"] == "tell-approvers now\n"
    notice = _until(
        lambda: next((c for c in telegram.calls("sendMessage") if "tell-approvers now" in c.payload["text"]), None),
        what="soft_ask notice",
    )
    assert "FlowLink notice" in notice.payload["text"] and done["command_id"] in notice.payload["text"]
    assert str(notice.payload["chat_id"]) == str(ALICE) and "reply_markup" not in notice.payload
    assert "exec.notified" in _audit_kinds(stack, done["command_id"])  # written before exec answered


def test_e2e_stranger_press_is_refused_and_deny_from_the_cli_never_runs(stack, telegram, approvals_ready):
    pending = _exec(stack, {"command": "echo needs-approval two", "idempotency_key": "e2e-deny-1"}).structured_content
    message = _approval_message(telegram, pending["approval_id"])
    stranger = telegram.press(message, "approve", user_id=999, username="mallory")
    assert stranger.status_code == 200 and stranger.json()["result"] == "refused"

    wrong_secret = telegram.press(message, "approve", user_id=ALICE, secret="not-the-secret")
    assert wrong_secret.status_code == 401

    agent_key = _cli(stack, "approve", pending["approval_id"], key=stack.info["api_key"])
    assert agent_key.returncode != 0 and "agent" in agent_key.stderr
    denied = _cli(stack, "deny", pending["approval_id"], "--comment", "not today", key=stack.info["approver_key"])
    assert denied.returncode == 0, denied.stderr
    final = _until(lambda: (r := _exec(stack, {"command": "echo needs-approval two",
                                               "idempotency_key": "e2e-deny-1"})).is_error and r,
                   what="denied command closed")
    assert "denied" in json.dumps([getattr(b, "text", "") for b in final.content])
    kinds = _audit_kinds(stack, pending["approval_id"]) + _audit_kinds(stack, pending["command_id"])
    assert "approval.decision_refused" in kinds and "exec.completed" not in kinds


def test_e2e_secret_is_injected_redacted_and_never_stored_in_plaintext(stack: RunningStack):
    refused = _cli(stack, "secrets", "put", "DB_PASSWORD", SECRET_VALUE, "--agent", stack.info["relay_id"],
                   key=stack.info["admin_key"])
    assert refused.returncode == 2 and "pipe it" in refused.stderr.lower()
    put = _cli(stack, "secrets", "put", "DB_PASSWORD", "--agent", stack.info["relay_id"],
               key=stack.info["admin_key"], stdin=SECRET_VALUE + "\n")
    assert put.returncode == 0, put.stderr

    shown = _exec(stack, {"command": 'echo "$DB_PASSWORD" | base64'})
    assert not shown.is_error, shown.content
    assert "[REDACTED:DB_PASSWORD]" in shown.structured_content["stdout"]
    digest = hashlib.sha256(SECRET_VALUE.encode()).hexdigest()
    proof = _exec(stack, {"command": f'[ "$(printf %s "$DB_PASSWORD" | sha256sum | cut -d" " -f1)" = "{digest}" ]'
                                     ' && echo received'})
    assert proof.structured_content["stdout"] == "received\n"

    _scan_for_plaintext(stack, SECRET_VALUE)

    deleted = _cli(stack, "secrets", "delete", "DB_PASSWORD", key=stack.info["admin_key"])
    assert deleted.returncode == 0, deleted.stderr
    after = _exec(stack, {"command": "printenv DB_PASSWORD", "secrets": ["DB_PASSWORD"]})
    assert after.is_error and "DB_PASSWORD" in after.content[0].text


def _scan_for_plaintext(stack: RunningStack, value: str) -> None:
    """No table item, bucket object or log line anywhere in the stack holds the value."""
    import base64

    needles = [value, base64.b64encode(value.encode()).decode()[:16]]
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                                    region_name="us-east-1")
    endpoint = stack.info["aws_endpoint"]
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            text = json.dumps(page["Items"])
            for needle in needles:
                assert needle not in text, f"plaintext secret in table {table}"
    s3 = session.client("s3", endpoint_url=endpoint)
    for bucket in s3.list_buckets().get("Buckets", []):
        for item in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", []):
            body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read().decode("utf-8", "replace")
            assert value not in body, f"plaintext secret in s3://{bucket['Name']}/{item['Key']}"
    # Logs, local.json, the relay's ledger of results and outbox: every file of the stack.
    for path in Path(stack.state_dir).rglob("*"):
        if path.is_file():
            assert value.encode() not in path.read_bytes(), f"plaintext secret in {path}"


def test_e2e_secret_printed_slowly_byte_by_byte_is_still_redacted(stack: RunningStack):
    value = "slow-drip-secret-7781"
    put = _cli(stack, "secrets", "put", "SLOW_TOKEN", "--agent", stack.info["relay_id"],
               key=stack.info["admin_key"], stdin=value)
    assert put.returncode == 0, put.stderr
    result = _exec(stack, {"command": 'printf "%s\\n" "$SLOW_TOKEN" | fold -w1 | while read -r c; do printf %s "$c"; '
                                      'sleep 0.01; done; echo'})
    assert not result.is_error, result.content
    assert result.structured_content["stdout"] == "[REDACTED:SLOW_TOKEN]\n"


def test_e2e_gateway_refuses_bad_ciphertexts_and_offers_no_way_to_read_values(stack: RunningStack):
    from flowlink.secret_box import generate_keypair, seal

    relay = stack.info["relay_id"]
    with _admin(stack) as admin:
        recipient = admin.get(f"/api/v1/agents/{relay}/encryption-key").json()
        wrong_key = seal("v", generate_keypair().public_key)
        good = seal("v", base64.b64decode(recipient["box_public_key"]))
        truncated = {**good, "ct": good["ct"][:40]}
        tampered_raw = bytearray(base64.b64decode(good["ct"]))
        tampered_raw[-1] ^= 1
        for document, reason in ((wrong_key, "encrypted for key"), (truncated, "truncated"), ({"v": 9}, "format")):
            response = admin.put("/api/v1/secrets/BAD_ONE", json={"ciphertexts": {relay: document}})
            assert response.status_code == 400 and reason in response.text, response.text
        names = [s["name"] for s in admin.get("/api/v1/secrets").json()["secrets"]]
        assert "BAD_ONE" not in names
        # Tampering the gateway cannot see (it holds no key) is caught by the relay: nothing runs.
        tampered = {**good, "ct": base64.b64encode(bytes(tampered_raw)).decode()}
        assert admin.put("/api/v1/secrets/TAMPERED", json={"ciphertexts": {relay: tampered}}).status_code == 200
    result = _exec(stack, {"command": "echo should-not-run", "secrets": ["TAMPERED"]})
    assert "authentication" in json.dumps(result.structured_content or [b.text for b in result.content])
    assert "should-not-run" not in (result.structured_content or {}).get("stdout", "")

    agent = httpx.get(f"{stack.info['api_url']}/api/v1/secrets/TAMPERED",
                      headers={"Authorization": f"Bearer {stack.info['api_key']}"}, timeout=30)
    assert agent.status_code in (404, 405)
    agent_put = httpx.put(f"{stack.info['api_url']}/api/v1/secrets/X", json={"ciphertexts": {relay: good}},
                          headers={"Authorization": f"Bearer {stack.info['api_key']}"}, timeout=30)
    assert agent_put.status_code == 403
