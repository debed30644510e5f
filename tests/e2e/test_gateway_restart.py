"""A gateway crash while the relay is connected: only the gateway process is killed and
restarted (the emulator and the relay keep running), the relay reconnects by itself, and a
command sent afterwards runs exactly once (a side-effect file counts the runs, the relay's
own counter agrees). Uses the programmatic LocalStack so one component can be restarted."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import pytest
from flowlink.local.harness import e2e_stack_config, mcp_client
from flowlink.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, dict]]:
    stack = LocalStack(e2e_stack_config(tmp_path_factory.mktemp("restart-stack"), relay_name="restart-relay"))
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


def _exec(info: dict, command: str) -> dict:
    async def go():
        async with mcp_client(info["mcp_url"], info["api_key"], "auto") as client:
            result = await client.call_tool("exec", {"agent": info["relay_id"], "command": command})
            assert not result.is_error, [getattr(block, "text", "") for block in result.content]
            return result.structured_content

    return anyio.run(go)


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_gateway_restart_relay_reconnects_and_next_command_runs_exactly_once(running, tmp_path):
    stack, info = running
    counter = tmp_path / "runs.txt"
    command = f"echo run >> {counter}"
    before = _exec(info, "echo before-restart")
    assert before["stdout"] == "before-restart\n"

    gateway_pid = stack.gateway.pid
    stack.kill_gateway()
    assert stack.relay.alive()
    assert stack.aws is None or stack.aws.alive(), "only the gateway may go down"
    _wait(lambda: (stack.relay_health() or {}).get("status") != "connected", 60, "the relay to notice the loss")
    assert stack.relay.alive(), "the relay must survive a gateway crash"

    stack.start_gateway()
    assert stack.gateway.pid != gateway_pid
    stack.wait_relay_connected(timeout=120)
    runs_before = stack.relay_health()["commands_run"]

    result = _exec(info, command)
    assert result["status"] == "completed" and result["exit_code"] == 0

    # A re-sync or a duplicate delivery would show up as a second line or a second run.
    _exec(info, "echo settle")
    assert counter.read_text().splitlines() == ["run"]
    assert stack.relay_health()["commands_run"] == runs_before + 2
