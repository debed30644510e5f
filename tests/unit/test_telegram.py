"""Telegram message shapes: button data without tokens, press parsing, secret check."""

import pytest
from flowlink.telegram import (
    approval_keyboard,
    callback_data,
    format_approval_message,
    parse_button_press,
    secret_matches,
)

pytestmark = pytest.mark.unit


def _update(data="apr:apr_123:approve", user_id=42, update_id=7):
    return {
        "update_id": update_id,
        "callback_query": {
            "id": "cbq1",
            "from": {"id": user_id, "username": "alice"},
            "data": data,
            "message": {"message_id": 99, "chat": {"id": 42}},
        },
    }


def test_keyboard_carries_only_approval_id_and_choice():
    buttons = approval_keyboard("apr_123")["inline_keyboard"][0]
    assert [b["callback_data"] for b in buttons] == ["apr:apr_123:approve", "apr:apr_123:deny"]


def test_callback_data_rejects_oversized_ids():
    with pytest.raises(ValueError):
        callback_data("x" * 80, "approve")


def test_parse_button_press_reads_presser_and_decision():
    press = parse_button_press(_update())
    assert (press.approval_id, press.decision, press.telegram_user_id, press.message_id) == ("apr_123", "approve", 42, 99)


@pytest.mark.parametrize(
    "update",
    [
        {},
        {"update_id": 1, "message": {"text": "hi"}},
        _update(data="apr:apr_123:maybe"),
        _update(data="other:thing"),
        _update(data="apr::approve"),
    ],
)
def test_parse_button_press_rejects_foreign_updates(update):
    with pytest.raises(ValueError):
        parse_button_press(update)


def test_secret_matches_is_exact():
    assert secret_matches("s3cret", "s3cret")
    assert not secret_matches("s3cre", "s3cret")
    assert not secret_matches(None, "s3cret")
    assert not secret_matches("anything", None)


def test_approval_message_escapes_command_html():
    text = format_approval_message(agent="web-01", host="h", command="echo <b>&", score=72,
                                   reasons=["r1", "r2", "r3", "r4"], expires_at="2026-01-01T00:00:00Z", approval_id="apr_1")
    assert "&lt;b&gt;&amp;" in text and "r3" in text and "r4" not in text
