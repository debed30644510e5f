"""The issue's "Done when", end to end: `flowlink local up` as a process on free ports, then
the official MCP SDK client (both protocol generations) and the MCP Inspector CLI list
tools, run `echo hello` on the local relay, get `rm -rf /` refused with reasons and see
both in `history`. The module's last tests check the CLI's edges: a taken port exits 2
naming it, and SIGTERM (Ctrl-C) stops every process the stack started."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator

import anyio
import pytest
from flowlink.local.harness import (
    FLOWLINK,
    REPO,
    RunningStack,
    distinct_free_ports,
    mcp_client,
    pid_alive,
    start_local_up,
    stop_local_up,
)

pytestmark = pytest.mark.e2e

MODES = {"auto": "2026-07-28", "legacy": "2025-11-25"}
EXPECTED_TOOLS = {
    "exec", "health", "sysinfo", "agents", "list", "read", "history", "approve", "audit", "secrets", "fingerprint",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_local_up(tmp_path_factory.mktemp("local-up"))
    yield running
    stop_local_up(running.process)


def _call(stack: RunningStack, mode: str, tool: str, arguments: dict):
    async def go():
        async with mcp_client(stack.info["mcp_url"], stack.info["api_key"], mode) as client:
            assert client.protocol_version == MODES[mode]
            return await client.call_tool(tool, arguments)

    return anyio.run(go)


def _text(result) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


def test_local_up_writes_local_json_with_contract_fields(stack: RunningStack):
    info = stack.info
    for key in ("mcp_url", "api_url", "api_key", "approver_key", "aws_endpoint", "relay_id"):
        assert info[key], key
    assert info["mcp_url"] == f"http://127.0.0.1:{stack.gateway_port}/mcp"
    # Our own moto on the given port, unless the suite runs against an external endpoint.
    assert info["aws_endpoint"] == (os.environ.get("AWS_ENDPOINT_URL") or f"http://127.0.0.1:{stack.aws_port}")
    assert info["api_key"].startswith("flk_live_") and info["approver_key"] != info["api_key"]
    assert (stack.state_dir / "local.json").stat().st_mode & 0o077 == 0


def test_local_up_prints_url_keys_and_client_configs(stack: RunningStack):
    out = stack.output()
    assert stack.info["mcp_url"] in out
    assert stack.info["api_key"] in out and stack.info["approver_key"] in out
    for marker in (".mcp.json", "~/.cursor/mcp.json", ".vscode/mcp.json", "mcp_config.json", '"serverUrl"', '"servers"'):
        assert marker in out, marker


def test_local_status_reports_every_component_up(stack: RunningStack):
    completed = subprocess.run(
        [str(FLOWLINK), "local", "status", "--state-dir", str(stack.state_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert re.search(r"relay\s+connected", completed.stdout)


@pytest.mark.parametrize("mode", list(MODES))
def test_mcp_client_lists_tools(stack: RunningStack, mode: str):
    async def go():
        async with mcp_client(stack.info["mcp_url"], stack.info["api_key"], mode) as client:
            assert client.protocol_version == MODES[mode]
            return await client.list_tools()

    tools = {tool.name: tool for tool in anyio.run(go).tools}
    assert EXPECTED_TOOLS <= set(tools)
    assert tools["exec"].annotations.destructive_hint is True
    assert tools["history"].annotations.read_only_hint is True
    assert tools["exec"].output_schema is not None


@pytest.mark.parametrize("mode", list(MODES))
def test_mcp_exec_echo_hello_runs_on_the_relay(stack: RunningStack, mode: str):
    result = _call(stack, mode, "exec", {"agent": stack.info["relay_id"], "command": "echo hello"})
    assert not result.is_error, _text(result)
    assert result.structured_content["stdout"] == "hello\n"
    assert result.structured_content["exit_code"] == 0
    assert result.structured_content["status"] == "completed"


@pytest.mark.parametrize("mode", list(MODES))
def test_mcp_exec_rm_rf_root_is_refused_with_reasons(stack: RunningStack, mode: str):
    result = _call(stack, mode, "exec", {"agent": "e2e-relay", "command": "rm -rf /"})
    assert result.is_error
    text = _text(result)
    assert re.search(r"den(y|ied)|refus", text, re.IGNORECASE), text
    assert len(text) > len("denied: rm -rf /"), "a refusal must say why"


def test_mcp_history_shows_the_run_and_the_refusal(stack: RunningStack):
    _call(stack, "auto", "exec", {"agent": stack.info["relay_id"], "command": "echo hello"})
    _call(stack, "auto", "exec", {"agent": stack.info["relay_id"], "command": "rm -rf /"})
    result = _call(stack, "legacy", "history", {"agent": stack.info["relay_id"]})
    assert not result.is_error, _text(result)
    commands = result.structured_content["commands"]
    by_command = {}
    for entry in commands:  # newest first: keep the newest of each
        by_command.setdefault(entry["command"], entry)
    assert by_command["echo hello"]["status"] == "completed"
    assert by_command["echo hello"]["exit_code"] == 0
    assert by_command["rm -rf /"]["status"] in ("denied", "refused")
    created = [entry["created_at"] for entry in commands]
    assert created == sorted(created, reverse=True)


def test_inspector_cli_lists_tools(stack: RunningStack, inspector, run_inspector):
    completed = run_inspector(inspector, stack.info["mcp_url"], stack.info["api_key"], "--method", "tools/list")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    names = {tool["name"] for tool in json.loads(completed.stdout)["tools"]}
    assert EXPECTED_TOOLS <= names


def test_inspector_cli_exec_echo_hello(stack: RunningStack, inspector, run_inspector):
    completed = run_inspector(
        inspector, stack.info["mcp_url"], stack.info["api_key"],
        "--method", "tools/call", "--tool-name", "exec",
        "--tool-arg", f"agent={stack.info['relay_id']}", "--tool-arg", "command=echo hello",
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result = json.loads(completed.stdout)
    assert not result.get("isError"), result
    assert result["structuredContent"]["stdout"] == "hello\n"
    assert result["structuredContent"]["exit_code"] == 0


def test_inspector_cli_exec_rm_rf_is_refused(stack: RunningStack, inspector, run_inspector):
    completed = run_inspector(
        inspector, stack.info["mcp_url"], stack.info["api_key"],
        "--method", "tools/call", "--tool-name", "exec",
        "--tool-arg", f"agent={stack.info['relay_id']}", "--tool-arg", "command=rm -rf /",
    )
    output = completed.stdout + completed.stderr
    result = json.loads(completed.stdout) if completed.returncode == 0 else {"isError": True}
    assert result.get("isError"), output
    assert re.search(r"den(y|ied)|refus", output, re.IGNORECASE), output


def test_local_up_try_it_line_runs_as_printed(stack: RunningStack, inspector):
    # The banner's Inspector line, with the locally installed Inspector instead of npx's copy.
    line = next(text for text in stack.output().splitlines() if "inspector@0.15.0 --cli" in text).strip()
    command = line.replace("npx -y @modelcontextprotocol/inspector@0.15.0", shlex.quote(str(inspector)))
    completed = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "exec" in {tool["name"] for tool in json.loads(completed.stdout)["tools"]}


def test_inspector_without_key_is_rejected(stack: RunningStack, inspector, run_inspector):
    completed = run_inspector(inspector, stack.info["mcp_url"], "", "--method", "tools/list")
    assert completed.returncode != 0
    assert "unauthorized" in completed.stdout + completed.stderr


def test_local_up_on_a_taken_port_exits_2_naming_it(stack: RunningStack, tmp_path):
    completed = subprocess.run(
        [str(FLOWLINK), "local", "up", "--state-dir", str(tmp_path / "second"),
         "--gateway-port", str(stack.gateway_port), "--aws-port", "0", "--relay-health-port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert str(stack.gateway_port) in completed.stderr
    assert "gateway" in completed.stderr


def test_local_up_no_wait_starts_prints_and_stops_everything(tmp_path):
    gateway_port, aws_port, health_port = distinct_free_ports(3)
    completed = subprocess.run(
        [str(FLOWLINK), "local", "up", "--no-wait", "--state-dir", str(tmp_path / "nowait"),
         "--gateway-port", str(gateway_port), "--aws-port", str(aws_port), "--relay-health-port", str(health_port),
         "--stack-name", "flowlink-nowait"],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"http://127.0.0.1:{gateway_port}/mcp" in completed.stdout
    assert "Press Ctrl-C" not in completed.stdout
    assert completed.stdout.rstrip().endswith("stopped.")
    assert not (tmp_path / "nowait" / "local.json").exists()
    for port in (gateway_port, aws_port, health_port):
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"


def test_local_up_sigterm_stops_every_process_it_started(stack: RunningStack):
    # Runs last in this module: it ends the module's stack.
    pids = [pid for pid in stack.info["pids"].values() if pid]
    assert len(pids) == 4 or stack.info["pids"]["aws"] is None
    assert all(pid_alive(pid) for pid in pids)
    assert stop_local_up(stack.process) == 0
    deadline = time.monotonic() + 30
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pids if pid_alive(pid)] == []
    assert not (stack.state_dir / "local.json").exists()
