"""Telegram Bot API client and message shapes for approvals.

Sends approval requests with Approve / Deny inline buttons, edits them to show who
decided, answers button presses, and registers the webhook. The API base URL is
configuration (``TELEGRAM_API_BASE``) so tests point it at a local fake Bot API.

Button data carries only the approval id and the choice, never a Step Functions task
token: tokens stay server-side. Never logs the bot token.
"""

from __future__ import annotations

import hmac
import html
import logging
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

CALLBACK_PREFIX = "apr"
DECISIONS = ("approve", "deny")
# Telegram limits callback_data to 64 bytes.
MAX_CALLBACK_DATA = 64
# Telegram ids have at most 52 significant bits; larger integers are not Telegram's and have
# no exact form in the audit chain's JSON (see ``audit_user_id``).
MAX_EXACT_ID = 2**53 - 1


class TelegramError(Exception):
    """The Bot API refused a call, failed, or did not answer in time."""


@dataclass(frozen=True)
class ButtonPress:
    """One Approve/Deny press taken from a webhook update."""

    update_id: int
    callback_query_id: str
    telegram_user_id: int
    username: str | None
    chat_id: int | None
    message_id: int | None
    approval_id: str
    decision: str  # "approve" | "deny"


def audit_user_id(telegram_user_id: int) -> int | str:
    """A presser's id as the audit records it: the integer when JSON keeps it exactly (every
    real Telegram id), else its decimal text, so a forged huge id is recorded, not fatal."""
    return telegram_user_id if abs(telegram_user_id) <= MAX_EXACT_ID else str(telegram_user_id)[:64]


def callback_data(approval_id: str, decision: str) -> str:
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}")
    data = f"{CALLBACK_PREFIX}:{approval_id}:{decision}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_DATA:
        raise ValueError("approval id too long for Telegram callback data")
    return data


def approval_keyboard(approval_id: str) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [
                {"text": "✅ Approve", "callback_data": callback_data(approval_id, "approve")},
                {"text": "⛔ Deny", "callback_data": callback_data(approval_id, "deny")},
            ]
        ]
    }


def format_approval_message(
    *,
    agent: str,
    host: str | None,
    command: str,
    score: int,
    reasons: list[str],
    expires_at: str,
    approval_id: str,
    needed: int = 1,
) -> str:
    """HTML text of an approval request (parse_mode=HTML); user text is escaped."""
    shown = command if len(command) <= 800 else command[:800] + " …"
    lines = [
        "<b>FlowLink approval needed</b>",
        f"Agent: <code>{html.escape(agent)}</code>" + (f" on <code>{html.escape(host)}</code>" if host else ""),
        f"Command:\n<pre>{html.escape(shown)}</pre>",
        f"Risk score: <b>{score}</b>/100",
    ]
    for reason in reasons[:3]:
        lines.append(f"• {html.escape(reason)}")
    if needed > 1:
        lines.append(f"Needs {needed} approvals.")
    lines.append(f"Expires: {html.escape(expires_at)}")
    lines.append(f"Approval id: <code>{html.escape(approval_id)}</code>")
    return "\n".join(lines)


def format_notice_message(
    *, agent: str, command: str, score: int, reasons: list[str], host: str | None = None, command_id: str | None = None
) -> str:
    """HTML text of a soft_ask notice: the command ran; no buttons."""
    shown = command if len(command) <= 800 else command[:800] + " …"
    lines = [
        "<b>FlowLink notice</b> (ran without approval: soft_ask)",
        f"Agent: <code>{html.escape(agent)}</code>" + (f" on <code>{html.escape(host)}</code>" if host else ""),
        f"Command:\n<pre>{html.escape(shown)}</pre>",
        f"Risk score: <b>{score}</b>/100",
    ]
    lines.extend(f"• {html.escape(reason)}" for reason in reasons[:3])
    if command_id:
        lines.append(f"Command id: <code>{html.escape(command_id)}</code>")
    return "\n".join(lines)


def secret_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time check of the X-Telegram-Bot-Api-Secret-Token header."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def parse_button_press(update: Any) -> ButtonPress:
    """Extract an approval button press from a webhook update.

    Raises ValueError when the update is not a well-formed FlowLink button press.
    """
    update_id = update.get("update_id") if isinstance(update, dict) else None
    # Stored (replay protection) and audited: bounded to what DynamoDB and JSON keep exactly.
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id <= MAX_EXACT_ID:
        raise ValueError("update has no valid update_id")
    query = update.get("callback_query")
    if not isinstance(query, dict):
        raise ValueError("update is not a button press")  # noqa: TRY004 - callers get one error type for any malformed update
    sender = query.get("from") or {}
    data = query.get("data")
    sender_id = sender.get("id") if isinstance(sender, dict) else None
    if not isinstance(sender_id, int) or isinstance(sender_id, bool) or not isinstance(data, str) \
            or not isinstance(query.get("id"), str):
        raise ValueError("button press lacks sender, id or data")  # noqa: TRY004 - callers get one error type for any malformed update
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_PREFIX or parts[2] not in DECISIONS or not parts[1]:
        raise ValueError("button data is not a FlowLink approval")
    message = query.get("message") or {}
    chat = message.get("chat") or {}
    return ButtonPress(
        update_id=update["update_id"],
        callback_query_id=query["id"],
        telegram_user_id=sender["id"],
        username=sender["username"][:64] if isinstance(sender.get("username"), str) else None,
        chat_id=chat.get("id") if isinstance(chat.get("id"), int) else None,
        message_id=message.get("message_id") if isinstance(message.get("message_id"), int) else None,
        approval_id=parts[1],
        decision=parts[2],
    )


class TelegramClient:
    """A small synchronous Bot API client (httpx), injectable for tests."""

    def __init__(self, api_base: str, bot_token: str, *, timeout: float = 5.0, http: httpx.Client | None = None):
        if not bot_token:
            raise TelegramError("no Telegram bot token configured")
        self._base = f"{api_base.rstrip('/')}/bot{bot_token}"
        self._http = http or httpx.Client(timeout=timeout)

    def call(self, method: str, payload: dict[str, Any]) -> Any:
        try:
            response = self._http.post(f"{self._base}/{method}", json=payload)
        except httpx.HTTPError as exc:
            # The exception text may contain the URL, which contains the token.
            raise TelegramError(f"Bot API {method} failed: {type(exc).__name__}") from None
        try:
            body = response.json()
        except ValueError:
            raise TelegramError(f"Bot API {method} answered HTTP {response.status_code} without JSON") from None
        if not body.get("ok"):
            raise TelegramError(f"Bot API {method} refused: {body.get('description', response.status_code)}")
        return body.get("result")

    def send_message(self, chat_id: int | str, text: str, *, reply_markup: dict | None = None) -> dict[str, Any]:
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text, "parse_mode": "HTML"}
        if reply_markup is not None:
            payload["reply_markup"] = reply_markup
        return self.call("sendMessage", payload)

    def edit_message_text(self, chat_id: int | str, message_id: int, text: str) -> Any:
        return self.call(
            "editMessageText", {"chat_id": chat_id, "message_id": message_id, "text": text, "parse_mode": "HTML"}
        )

    def answer_callback_query(self, callback_query_id: str, text: str) -> Any:
        return self.call("answerCallbackQuery", {"callback_query_id": callback_query_id, "text": text[:200]})

    def set_webhook(self, url: str, secret_token: str) -> Any:
        return self.call(
            "setWebhook",
            {"url": url, "secret_token": secret_token, "allowed_updates": ["callback_query", "message"]},
        )

    def get_webhook_info(self) -> Any:
        return self.call("getWebhookInfo", {})
