"""Org notification channels as the approval service reads them: never set means both,
an empty list (set by an admin) means nobody is messaged, also for soft_ask notices."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flowlink.approvals import service as service_module
from flowlink.approvals.service import ApprovalService, OrgApprovalSettings
from flowlink.settings import Settings

pytestmark = pytest.mark.unit


def _org(channels):
    return SimpleNamespace(
        org_id="org_1", approvers=[{"name": "alice", "telegram_user_id": 42}], approvals_required=1,
        approval_timeout_seconds=600, notification_channels=channels,
    )


class RecordingTelegram:
    def __init__(self):
        self.sent = []

    def send_message(self, chat_id, text, **_):
        self.sent.append(chat_id)
        return {"message_id": 1}


@pytest.mark.parametrize(
    ("stored", "channels"),
    [(None, ["telegram", "dashboard"]), ([], []), (["telegram"], ["telegram"]), (["dashboard"], ["dashboard"])],
)
def test_org_channels_distinguish_never_set_from_off(stored, channels):
    assert OrgApprovalSettings.from_org(_org(stored)).channels == channels


@pytest.mark.parametrize(("stored", "messaged"), [(None, [42]), (["telegram"], [42]), ([], []), (["dashboard"], [])])
def test_soft_ask_notices_respect_the_channels(monkeypatch, stored, messaged):
    events = []
    monkeypatch.setattr(service_module.audit, "append_event", lambda *a, **k: events.append(a))
    telegram = RecordingTelegram()
    store = SimpleNamespace(get_org=lambda org_id: _org(stored))
    service = ApprovalService(Settings(), store=store, telegram=telegram)
    outcome = service.notify_soft_ask(
        "org_1", command_id="cmd_1", agent="web-01", host=None, command="echo hi", verdict={"score": 30}
    )
    assert telegram.sent == messaged and outcome["notified"] == len(messaged) and outcome["errors"] == []
    assert len(events) == (1 if messaged else 0)
