"""`flowlink approvals` listing: how a pending approval is decided, who decided the others."""

from __future__ import annotations

import argparse

import pytest
from flowlink.approvals import models
from flowlink.cli import approvals_cmd

pytestmark = pytest.mark.unit

PENDING = {
    "approval_id": "apr_1", "status": "pending", "needed": 1, "decisions": [],
    "expires_at": "2026-12-07T20:10:00Z", "decided_at": None,
}


def test_pending_approval_says_how_to_decide_it():
    line = approvals_cmd.approval_detail(PENDING)
    assert "expires 2026-12-07T20:10:00Z" in line
    assert "flowlink approve apr_1" in line and "flowlink deny apr_1" in line
    assert "of 1" not in line


def test_two_person_rule_shows_progress_and_who_approved():
    item = {**PENDING, "needed": 2,
            "decisions": [{"approver": "alice", "decision": "approve", "channel": "telegram"}]}
    assert approvals_cmd.approval_detail(item).startswith("1 of 2 approvals (alice); expires")
    assert approvals_cmd.approval_detail({**item, "decisions": []}).startswith("0 of 2 approvals; expires")


@pytest.mark.parametrize("status", ["approved", "denied", "cancelled"])
def test_decided_approvals_show_the_outcome_not_how_to_decide(status):
    item = {**PENDING, "status": status, "decided_at": "2026-12-07T20:01:00Z",
            "decisions": [{"approver": "bob", "decision": "deny" if status == "denied" else "approve",
                           "channel": "cli"}]}
    line = approvals_cmd.approval_detail(item)
    assert line.startswith(f"{status} at 2026-12-07T20:01:00Z: ")
    assert "bob (cli)" in line and "flowlink approve" not in line


def test_timed_out_approval_shows_when_it_expired():
    line = approvals_cmd.approval_detail({**PENDING, "status": "timed_out"})
    assert line == "timed_out at 2026-12-07T20:10:00Z"


def test_every_approval_state_can_be_listed():
    parser = argparse.ArgumentParser()
    approvals_cmd.register(parser.add_subparsers())
    for status in sorted({models.PENDING} | models.FINAL_STATES):
        assert parser.parse_args(["approvals", "--status", status]).status == status
