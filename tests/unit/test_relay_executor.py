"""Unit tests for the relay executor (process groups, timeout, output cap, env) and native ops."""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path

import pytest

from edge_relay import native_ops
from edge_relay.executor import (
    STATUS_COMPLETED,
    STATUS_FAILED,
    STATUS_TIMEOUT,
    InvalidEnvironmentError,
    ProcessRunner,
    base_environment,
    build_environment,
)

pytestmark = pytest.mark.unit


def _runner(**overrides) -> ProcessRunner:
    options = {"output_cap": 1024 * 1024, "kill_grace": 0.5}
    options.update(overrides)
    return ProcessRunner(**options)


def _dead(pid: int) -> bool:
    """Gone, or a zombie waiting for init to reap it (it runs nothing any more)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_executor_reports_output_and_exit_code(tmp_path):
    outcome = _runner().run_shell(
        "echo hello; echo oops >&2; exit 3", cwd=str(tmp_path), env=base_environment(), timeout=30
    )
    assert outcome.status == STATUS_COMPLETED
    assert outcome.exit_code == 3
    assert outcome.stdout == "hello\n"
    assert outcome.stderr == "oops\n"
    assert outcome.truncated is False


def test_executor_runs_in_the_requested_cwd(tmp_path):
    outcome = _runner().run_shell("pwd", cwd=str(tmp_path), env=base_environment(), timeout=30)
    assert outcome.stdout.strip() == str(tmp_path)


def test_executor_caps_output_and_flags_truncation(tmp_path):
    outcome = _runner(output_cap=1000).run_shell(
        "head -c 200000 /dev/zero | tr '\\0' a; echo tail >&2",
        cwd=str(tmp_path),
        env=base_environment(),
        timeout=30,
    )
    assert outcome.status == STATUS_COMPLETED
    assert outcome.exit_code == 0
    assert outcome.stdout == "a" * 1000
    assert outcome.stderr == "tail\n"
    assert outcome.truncated is True


def test_executor_timeout_kills_the_whole_group_including_grandchildren(tmp_path):
    pids = tmp_path / "pids"
    # A grandchild that ignores SIGTERM (needs the SIGKILL step) and one that does not.
    command = (
        f"(trap '' TERM; exec sleep 300) & echo $! >> {pids}; "
        f"bash -c 'sleep 300 & echo $! >> {pids}; wait' & "
        "sleep 300"
    )
    outcome = _runner(kill_grace=0.5).run_shell(command, cwd=str(tmp_path), env=base_environment(), timeout=1)
    assert outcome.status == STATUS_TIMEOUT
    assert "timed out" in outcome.error
    recorded = [int(line) for line in pids.read_text().split()]
    assert len(recorded) == 2
    assert all(_dead(pid) for pid in recorded)


def test_executor_does_not_wait_for_background_children_holding_the_pipes(tmp_path):
    pidfile = tmp_path / "pid"
    outcome = _runner().run_shell(
        f"sleep 60 & echo $! > {pidfile}; echo done", cwd=str(tmp_path), env=base_environment(), timeout=30
    )
    try:
        assert outcome.status == STATUS_COMPLETED
        assert outcome.stdout == "done\n"
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_executor_kill_all_stops_running_commands(tmp_path):
    import threading

    runner = _runner(kill_grace=0.2)
    results = []
    worker = threading.Thread(
        target=lambda: results.append(
            runner.run_shell(
                "echo started; sleep 300", cwd=str(tmp_path), env=base_environment(), timeout=600
            )
        )
    )
    worker.start()
    while runner.running == 0 and worker.is_alive():
        worker.join(0.01)
    assert runner.kill_all("relay shutting down") == 1
    worker.join(30)
    assert not worker.is_alive()
    assert results[0].status == STATUS_FAILED
    assert results[0].error == "relay shutting down"


def test_executor_fails_clearly_for_a_missing_cwd(tmp_path):
    outcome = _runner().run_shell("true", cwd=str(tmp_path / "nope"), env=base_environment(), timeout=5)
    assert outcome.status == STATUS_FAILED
    assert "working directory does not exist" in outcome.error


def test_executor_environment_is_minimal_plus_envelope(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAY_PROCESS_SECRET", "must-not-leak")
    env = build_environment({"GREETING": "hi there"})
    outcome = _runner().run_shell("env", cwd=str(tmp_path), env=env, timeout=30)
    assert "GREETING=hi there" in outcome.stdout
    assert "must-not-leak" not in outcome.stdout
    assert "PATH=/usr/local/sbin" in outcome.stdout


@pytest.mark.parametrize(
    "env",
    [
        {"LD_PRELOAD": "/tmp/evil.so"},
        {"BASH_ENV": "/tmp/x"},
        {"BASH_FUNC_ls%%": "() { rm -rf /; }"},
        {"A=B": "x"},
        {"": "x"},
        {"OK": 5},
        {"OK": "a\0b"},
    ],
)
def test_executor_environment_refuses_dangerous_or_malformed_variables(env):
    with pytest.raises(InvalidEnvironmentError):
        build_environment(env)


def test_native_read_returns_text(tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("héllo\n")
    outcome, encoding = native_ops.read_file(str(target), cap=1024)
    assert (outcome.status, outcome.stdout, encoding, outcome.truncated) == (
        STATUS_COMPLETED,
        "héllo\n",
        "utf-8",
        False,
    )


def test_native_read_base64_encodes_binary(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"\x00\xff\x10binary")
    outcome, encoding = native_ops.read_file(str(target), cap=1024)
    assert encoding == "base64"
    assert base64.b64decode(outcome.stdout) == b"\x00\xff\x10binary"


def test_native_read_caps_size(tmp_path):
    target = tmp_path / "big.txt"
    target.write_text("x" * 5000)
    outcome, encoding = native_ops.read_file(str(target), cap=100)
    assert outcome.stdout == "x" * 100 and outcome.truncated and encoding == "utf-8"


def test_native_read_refuses_non_regular_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    outcome, _ = native_ops.read_file(str(fifo), cap=100)
    assert outcome.status == STATUS_FAILED and "not a regular file" in outcome.error
    missing, _ = native_ops.read_file(str(tmp_path / "missing"), cap=100)
    assert missing.status == STATUS_FAILED and "no such file" in missing.error


def test_native_list_returns_json_entries(tmp_path):
    (tmp_path / "a.txt").write_text("abc")
    (tmp_path / "sub").mkdir()
    outcome = native_ops.list_directory(str(tmp_path))
    listing = json.loads(outcome.stdout)
    assert [(e["name"], e["type"]) for e in listing["entries"]] == [("a.txt", "file"), ("sub", "dir")]
    assert listing["entries"][0]["size"] == 3


def test_native_sysinfo_reports_facts(tmp_path):
    outcome = native_ops.sysinfo({"hostname": "web-01"})
    info = json.loads(outcome.stdout)
    assert info["hostname"] == "web-01" and "load_average" in info
