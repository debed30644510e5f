"""Unit tests for the relay's at-most-once ledger and result outbox."""

from __future__ import annotations

import stat

import pytest

from edge_relay.ledger import CommandLedger

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self, now: float = 1_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_ledger_claims_an_id_only_once(tmp_path):
    ledger = CommandLedger(tmp_path / "ledger.sqlite3")
    assert ledger.claim("cmd_1") is True
    assert ledger.claim("cmd_1") is False
    assert ledger.claim("cmd_2") is True


def test_ledger_claim_survives_a_restart(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    first = CommandLedger(path)
    assert first.claim("cmd_1")
    first.close()
    second = CommandLedger(path)
    assert second.claim("cmd_1") is False
    entry = second.get("cmd_1")
    assert entry is not None and entry.result is None


def test_ledger_keeps_results_and_queues_them(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    ledger = CommandLedger(path)
    ledger.claim("cmd_1")
    ledger.record_result("cmd_1", {"command_id": "cmd_1", "status": "completed", "stdout": "hi"})
    ledger.close()
    reopened = CommandLedger(path)
    assert reopened.get("cmd_1").result["stdout"] == "hi"
    assert [r["command_id"] for r in reopened.outbox()] == ["cmd_1"]


def test_ledger_outbox_drops_only_results_past_retention(tmp_path):
    clock = FakeClock()
    ledger = CommandLedger(tmp_path / "ledger.sqlite3", clock=clock)
    ledger.record_result("cmd_old", {"command_id": "cmd_old"})
    clock.now += 601
    ledger.record_result("cmd_new", {"command_id": "cmd_new"})
    assert ledger.prune_outbox(600) == 1
    assert [r["command_id"] for r in ledger.outbox()] == ["cmd_new"]
    # The ledger row (the at-most-once memory) outlives the outbox entry.
    assert ledger.get("cmd_old").result == {"command_id": "cmd_old"}


def test_ledger_prune_forgets_only_delivered_old_ids(tmp_path):
    clock = FakeClock()
    ledger = CommandLedger(tmp_path / "ledger.sqlite3", clock=clock)
    ledger.claim("cmd_a")
    ledger.record_result("cmd_b", {"command_id": "cmd_b"})
    clock.now += 10_000
    assert ledger.prune_commands(5_000) == 1  # cmd_b still waits in the outbox
    assert ledger.get("cmd_a") is None
    assert ledger.get("cmd_b") is not None


def test_ledger_file_is_private(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    CommandLedger(path).claim("cmd_1")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_ledger_mark_started_is_durable(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    ledger = CommandLedger(path)
    ledger.claim("cmd_1")
    assert ledger.get("cmd_1").started_at is None
    ledger.mark_started("cmd_1")
    ledger.close()
    assert CommandLedger(path).get("cmd_1").started_at is not None
