"""Drive a local stack from outside, as a developer or CI does: run ``flowlink local up`` on
free ports, wait for ``local.json``, talk to it with the official MCP client, stop it with
SIGTERM. Used by the e2e tests and ``scripts/bench_stack.py``; never by the stack itself.

``mcp_client(url, key, mode)`` opens the official MCP SDK client in either protocol
generation: ``mode="auto"`` probes ``server/discover`` and speaks 2026-07-28 (stateless);
``mode="legacy"`` performs the initialize handshake (2025-11-25).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowlink.local.processes import free_port
from flowlink.local.provision import find_template

REPO = find_template().parent
FLOWLINK = Path(sys.executable).with_name("flowlink")
STARTUP_TIMEOUT = 240.0


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class RunningStack:
    process: subprocess.Popen[str]
    state_dir: Path
    info: dict[str, Any]
    gateway_port: int
    aws_port: int
    relay_health_port: int
    stdout_path: Path

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")


def e2e_stack_config(state_dir: Path, *, relay_name: str, **options: Any) -> Any:
    """A ``StackConfig`` for a programmatic e2e stack: free ports, a unique stack name, and
    ``AWS_ENDPOINT_URL`` honoured (the suite may run against LocalStack); ``options`` are
    further StackConfig fields."""
    from flowlink.local.stack import StackConfig

    gateway_port, aws_port, relay_health_port = distinct_free_ports(3)
    return StackConfig(
        state_dir=state_dir,
        gateway_port=gateway_port,
        aws_port=aws_port,
        relay_health_port=relay_health_port,
        aws_endpoint=os.environ.get("AWS_ENDPOINT_URL") or None,
        stack_name=f"flowlink-e2e-{uuid.uuid4().hex[:8]}",
        relay_name=relay_name,
        **options,
    )


def start_local_up(state_dir: Path, *, relay_name: str = "e2e-relay") -> RunningStack:
    """`flowlink local up` on free ports; returns once local.json exists (the stack is ready)."""
    gateway_port, aws_port, relay_health_port = distinct_free_ports(3)
    state_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = state_dir / "local-up.out"
    argv = [
        str(FLOWLINK), "local", "up",
        "--state-dir", str(state_dir),
        "--gateway-port", str(gateway_port),
        "--aws-port", str(aws_port),
        "--relay-health-port", str(relay_health_port),
        "--stack-name", f"flowlink-e2e-{uuid.uuid4().hex[:8]}",
        "--relay-name", relay_name,
    ]
    with open(stdout_path, "w") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True)
    info_path = state_dir / "local.json"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not info_path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"flowlink local up exited {process.returncode}:\n{stdout_path.read_text()}")
        if time.monotonic() > deadline:
            stop_local_up(process)
            raise RuntimeError(f"flowlink local up not ready in {STARTUP_TIMEOUT} s:\n{stdout_path.read_text()}")
        time.sleep(0.25)
    info = json.loads(info_path.read_text())
    return RunningStack(process, state_dir, info, gateway_port, aws_port, relay_health_port, stdout_path)


def stop_local_up(process: subprocess.Popen[str], timeout: float = 60.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0) until its parent reaps it; it no longer runs anything.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@contextlib.asynccontextmanager
async def mcp_client(url: str, api_key: str, mode: str) -> AsyncIterator[Any]:
    """The official MCP client over Streamable HTTP with the key as a Bearer header."""
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    http = create_mcp_http_client(headers={"Authorization": f"Bearer {api_key}"})
    async with http, Client(streamable_http_client(url, http_client=http), mode=mode) as client:
        yield client


