"""`make bench` section "stack": figures of the local stack as a user sees it.

- MCP ``exec`` round trip of ``true`` through the official MCP client (2026-07-28, one
  connection reused), gateway → relay → gateway, p50/p99 over 200 calls (50 with --quick);
- the relay's resident memory when idle (VmRSS from /proc);
- how long the relay takes to be connected again after the gateway is killed and restarted.

The stack runs on free ports in a temporary state dir, so a `make up` stack may keep
running. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import anyio
from flowlink.local.harness import distinct_free_ports, mcp_client
from flowlink.local.stack import LocalStack, StackConfig

CALLS = 200
QUICK_CALLS = 50
WARMUP_CALLS = 5


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def _exec_round_trips(info: dict, calls: int) -> list[float]:
    timings: list[float] = []
    async with mcp_client(info["mcp_url"], info["api_key"], "auto") as client:
        for index in range(WARMUP_CALLS + calls):
            started = time.perf_counter()
            result = await client.call_tool("exec", {"agent": info["relay_id"], "command": "true"})
            elapsed = time.perf_counter() - started
            if result.is_error or (result.structured_content or {}).get("exit_code") != 0:
                text = " ".join(getattr(block, "text", "") for block in result.content)
                raise RuntimeError(f"exec true failed: {text or result.structured_content}")
            if index >= WARMUP_CALLS:
                timings.append(elapsed)
    return timings


def run(args: argparse.Namespace) -> None:
    calls = QUICK_CALLS if getattr(args, "quick", False) else CALLS
    gateway_port, aws_port, relay_health_port = distinct_free_ports(3)
    with tempfile.TemporaryDirectory(prefix="flowlink-bench-") as state_dir:
        config = StackConfig(
            state_dir=Path(state_dir),
            gateway_port=gateway_port,
            aws_port=aws_port,
            relay_health_port=relay_health_port,
            stack_name=f"flowlink-bench-{uuid.uuid4().hex[:8]}",
            relay_name="bench-relay",
        )
        started = time.perf_counter()
        with LocalStack(config) as stack:
            info = stack.up()
            print(f"stack up in {time.perf_counter() - started:.1f}s (gateway :{gateway_port}, moto :{aws_port})")

            timings = [t * 1000 for t in anyio.run(_exec_round_trips, info, calls)]
            print(f"MCP exec `true` round trip over {len(timings)} calls: "
                  f"p50 {statistics.median(timings):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms, "
                  f"mean {statistics.fmean(timings):.1f} ms, max {max(timings):.1f} ms (goal p50 <= 25 ms)")

            time.sleep(3)  # let the relay settle after the burst
            rss = _rss_mib(stack.relay.pid) if stack.relay and stack.relay.pid else None
            print(f"relay idle RSS: {rss:.1f} MiB" if rss is not None else "relay idle RSS: unavailable (/proc)")

            stack.kill_gateway()
            killed = time.perf_counter()
            deadline = killed + 60
            while (stack.relay_health() or {}).get("status") == "connected" and time.perf_counter() < deadline:
                time.sleep(0.05)
            noticed = time.perf_counter()
            stack.start_gateway()
            gateway_ready = time.perf_counter()
            while (stack.relay_health() or {}).get("status") != "connected":
                if time.perf_counter() > gateway_ready + 120:
                    raise RuntimeError("the relay did not reconnect within 120 s")
                time.sleep(0.05)
            connected = time.perf_counter()
            print(f"relay reconnect after a gateway crash: noticed in {noticed - killed:.2f}s; "
                  f"connected {connected - gateway_ready:.2f}s after the new gateway was ready "
                  f"({connected - killed:.1f}s from kill to connected, gateway start included)")
