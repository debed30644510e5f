"""Telegram message shapes: button data without tokens, press parsing, secret check."""

import pytest
from flowlink.telegram import (
    approval_keyboard,
    audit_user_id,
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
        _update(update_id=2**64),
        _update(update_id=-1),
        _update(update_id=True),
        _update(user_id=True),
        {"update_id": 1, "callback_query": {"id": "c", "from": ["not", "a", "user"], "data": "apr:apr_1:deny"}},
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


def test_a_huge_presser_id_is_parsed_and_audited_as_text():
    huge = 99999999999999999999999999
    press = parse_button_press(_update(user_id=huge))
    assert press.telegram_user_id == huge
    assert audit_user_id(huge) == str(huge) and audit_user_id(-huge) == str(-huge)
    assert audit_user_id(2**53 - 1) == 2**53 - 1 and audit_user_id(42) == 42


def test_a_non_text_username_is_dropped():
    update = _update()
    update["callback_query"]["from"]["username"] = {"x": 1}
    assert parse_button_press(update).username is None
