"""Ctrl-C while `flowlink local up` is still starting: it stops what it already started and
leaves no process behind (moto and the gateway are found by their command lines)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from flowlink.local.harness import FLOWLINK, REPO, distinct_free_ports

pytestmark = pytest.mark.e2e


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(needle in cmdline for needle in needles):
            found.append(f"{entry.name}: {cmdline}")
    return found


def test_local_up_interrupted_during_start_up_leaves_no_process(tmp_path: Path):
    gateway_port, aws_port, relay_health_port = distinct_free_ports(3)
    state_dir = tmp_path / "state"
    process = subprocess.Popen(
        [str(FLOWLINK), "local", "up", "--state-dir", str(state_dir), "--gateway-port", str(gateway_port),
         "--aws-port", str(aws_port), "--relay-health-port", str(relay_health_port),
         "--stack-name", "flowlink-e2e-interrupt"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    gateway_log = state_dir / "logs" / "gateway.log"
    deadline = time.monotonic() + 120
    while not gateway_log.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the gateway never started"
        time.sleep(0.1)
    assert _processes_mentioning(f"--port {aws_port}"), "moto should be running by now"

    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "interrupted" in output
    assert not (state_dir / "local.json").exists()
    deadline = time.monotonic() + 20
    while (left := _processes_mentioning(f"--port {aws_port}", f"--port {gateway_port}", str(state_dir))):
        assert time.monotonic() < deadline, left
        time.sleep(0.2)
