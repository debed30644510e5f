"""PATCH /api/v1/org/settings against a live gateway and moto: every field's type is checked
strictly (400 naming the field, nothing stored), and an empty notification_channels list is
honoured (notifications off) rather than ignored."""

from __future__ import annotations

import httpx
import pytest
from flowlink import audit

pytestmark = pytest.mark.integration

SETTINGS = "/api/v1/org/settings"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"notification_channels": [{}]}, "notification_channels"),
        ({"notification_channels": [["telegram"]]}, "notification_channels"),
        ({"notification_channels": ["email"]}, "notification_channels"),
        ({"notification_channels": "telegram"}, "notification_channels"),
        ({"notification_channels": None}, "notification_channels"),
        ({"approvals_required": True}, "approvals_required"),
        ({"approvals_required": 1.0}, "approvals_required"),
        ({"approvals_required": 3}, "approvals_required"),
        ({"approvals_required": "2"}, "approvals_required"),
        ({"approval_timeout_seconds": True}, "approval_timeout_seconds"),
        ({"approval_timeout_seconds": 60.0}, "approval_timeout_seconds"),
        ({"approval_timeout_seconds": 5}, "approval_timeout_seconds"),
        ({"refuse_drifted_relays": 1}, "refuse_drifted_relays"),
        ({"refuse_drifted_relays": "true"}, "refuse_drifted_relays"),
        ({"approvers": {"name": "alice"}}, "approvers"),
        ({"approvers": [{"name": 7}]}, "approvers[0]"),
        ({"approvers": [{"name": "alice", "telegram_user_id": True}]}, "approvers[0].telegram_user_id"),
        ({"approvers": [{"name": "alice", "telegram_user_id": "42"}]}, "approvers[0].telegram_user_id"),
        ({"approvers": [{"name": "alice", "telegram_user_id": 99999999999999999999999999}]},
         "approvers[0].telegram_user_id"),
        ({"approvers": [{"name": "alice", "telegram_user_id": -5}]}, "approvers[0].telegram_user_id"),
        ({"policy": 42}, "policy"),
        ({"approvals_required": 2, "notification_channels": [{}]}, "notification_channels"),
    ],
)
def test_org_settings_bad_values_get_400_naming_the_field_and_nothing_is_stored(live_gateway, changes, field):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        before = admin.get(SETTINGS).json()
        events_before = audit.default_store().latest_head(org["org_id"])
        response = admin.patch(SETTINGS, json=changes)
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "invalid_input" and body["detail"].startswith(field), body
        assert admin.get(SETTINGS).json() == before
        assert audit.default_store().latest_head(org["org_id"]) == events_before


def test_org_settings_accepts_the_exact_types(live_gateway):
    org = live_gateway.stack.org("acme")
    changes = {
        "approvals_required": 2,
        "approval_timeout_seconds": 60,
        "refuse_drifted_relays": True,
        "notification_channels": ["dashboard", "telegram", "telegram"],
        "approvers": [{"name": "alice", "telegram_user_id": 2**53 - 1}],
    }
    with live_gateway.admin(org) as admin:
        response = admin.patch(SETTINGS, json=changes)
        assert response.status_code == 200, response.text
        shown = admin.get(SETTINGS).json()
    assert shown["approvals_required"] == 2 and shown["approval_timeout_seconds"] == 60
    assert shown["refuse_drifted_relays"] is True
    assert shown["notification_channels"] == ["dashboard", "telegram"]
    assert shown["approvers"] == [{"name": "alice", "telegram_user_id": 2**53 - 1}]


def test_org_settings_empty_notification_channels_turn_notifications_off(live_gateway):
    org = live_gateway.stack.org("acme")
    with live_gateway.admin(org) as admin:
        assert admin.get(SETTINGS).json()["notification_channels"] == ["telegram", "dashboard"]
        response = admin.patch(SETTINGS, json={"notification_channels": []})
        assert response.status_code == 200, response.text
        assert response.json()["notification_channels"] == []
        assert admin.get(SETTINGS).json()["notification_channels"] == []
        # Other changes keep them off; turning one back on works.
        assert admin.patch(SETTINGS, json={"approvals_required": 2}).json()["notification_channels"] == []
        assert admin.patch(SETTINGS, json={"notification_channels": ["telegram"]}).json()[
            "notification_channels"] == ["telegram"]
    assert httpx.get(live_gateway.base_url + SETTINGS, headers={"x-api-key": org["api_key"]}).json()[
        "notification_channels"] == ["telegram"]
