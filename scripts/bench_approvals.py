"""`make bench` section "approvals": hard_ask figures on a local stack.

- Time from an approval decision (REST ``POST /api/v1/approvals/{id}``, what a Telegram
  press or the CLI ends in) to the command starting on the relay (the relay's ack of the
  dispatched command, ``acked_at``), p50/p99 (goal p50 <= 500 ms);
- how many approvals one org holds pending at once (goal >= 1,000; 100 with --quick), and
  the MCP ``exec`` round trip of ``true`` for other commands while they are pending, to
  compare with the stack section's figure.

The stack runs on free ports in a temporary state dir. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
from flowlink.local.harness import distinct_free_ports, mcp_client
from flowlink.local.stack import LocalStack, StackConfig

from scripts.bench_stack import percentile

POLICY = "name: bench\nask:\n  - Bash(echo approve-me:*)\n"
DECISIONS = 20
QUICK_DECISIONS = 5
PENDING = 1000
QUICK_PENDING = 100


def _ts(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


async def _exec(info: dict, commands: list[str]) -> list[tuple[dict, float]]:
    results = []
    async with mcp_client(info["mcp_url"], info["api_key"], "auto") as client:
        for command in commands:
            started = time.perf_counter()
            result = await client.call_tool("exec", {"agent": info["relay_id"], "command": command})
            results.append((result.structured_content or {}, time.perf_counter() - started))
    return results


def _history(info: dict, command_id: str) -> dict:
    async def go():
        async with mcp_client(info["mcp_url"], info["api_key"], "auto") as client:
            result = await client.call_tool("history", {"agent": info["relay_id"], "command_id": command_id})
            return result.structured_content["commands"][0]

    return anyio.run(go)


def run(args: argparse.Namespace) -> None:
    quick = getattr(args, "quick", False)
    pending_target = QUICK_PENDING if quick else PENDING
    decisions = QUICK_DECISIONS if quick else DECISIONS
    gateway_port, aws_port, relay_health_port = distinct_free_ports(3)
    with tempfile.TemporaryDirectory(prefix="flowlink-bench-approvals-") as state_dir:
        config = StackConfig(
            state_dir=Path(state_dir), gateway_port=gateway_port, aws_port=aws_port,
            relay_health_port=relay_health_port, stack_name=f"flowlink-bench-{uuid.uuid4().hex[:8]}",
            relay_name="bench-relay",
        )
        with LocalStack(config) as stack:
            info = stack.up()
            admin = httpx.Client(base_url=info["api_url"], headers={"Authorization": f"Bearer {info['admin_key']}"},
                                 timeout=60)
            approver = httpx.Client(base_url=info["api_url"],
                                    headers={"Authorization": f"Bearer {info['approver_key']}"}, timeout=60)
            admin.patch("/api/v1/org/settings", json={"policy": POLICY}).raise_for_status()

            # 1. decision -> command start
            latencies = []
            for index in range(decisions):
                (view, _), = anyio.run(_exec, info, [f"echo approve-me {index}"])
                approval_id, command_id = view["approval_id"], view["command_id"]
                # Let the state machine reach its callback task first, as a human would.
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if approver.get(f"/api/v1/approvals/{approval_id}").json().get("status") == "pending":
                        time.sleep(0.3)
                        break
                decided = time.time()
                approver.post(f"/api/v1/approvals/{approval_id}", json={"decision": "approve"}).raise_for_status()
                while True:
                    record = _history(info, command_id)
                    if record["status"] in ("completed", "failed", "refused", "timeout"):
                        break
                    if time.time() > decided + 60:
                        raise RuntimeError(f"approved command {command_id} did not run within 60 s")
                    time.sleep(0.05)
                # The relay's start time: when it finished minus how long the command ran.
                started = _ts(record["completed_at"]) - (record.get("duration_ms") or 0) / 1000
                latencies.append((started - decided) * 1000)
            print(f"approval decision -> command start over {len(latencies)} approvals: "
                  f"p50 {statistics.median(latencies):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms "
                  f"(goal p50 <= 500 ms)")

            # 2. many pending approvals, and exec of other commands meanwhile
            before = [t * 1000 for _, t in anyio.run(_exec, info, ["true"] * 20)]
            started = time.perf_counter()

            def request(index: int) -> str:
                (view, _), = anyio.run(_exec, info, [f"echo approve-me pending-{index}"])
                return view.get("status", "?")

            with ThreadPoolExecutor(max_workers=8) as pool:
                statuses = list(pool.map(request, range(pending_target)))
            held = approver.get("/api/v1/approvals", params={"status": "pending", "limit": 500}).json()["approvals"]
            print(f"pending approvals: created {statuses.count('pending_approval')} of {pending_target} in "
                  f"{time.perf_counter() - started:.1f}s; the listing shows {len(held)} (first page, max 500)")
            during = [t * 1000 for _, t in anyio.run(_exec, info, ["true"] * 20)]
            print(f"exec `true` p50 with none pending {statistics.median(before):.0f} ms, with "
                  f"{statuses.count('pending_approval')} pending {statistics.median(during):.0f} ms")
