"""A local stand-in for the Telegram Bot API: records calls and plays button presses back.

Serves ``POST /bot<token>/<method>`` on loopback for the methods FlowLink uses
(sendMessage, editMessageText, answerCallbackQuery, setWebhook, getWebhookInfo), keeps
every request, and can press an inline button the way Telegram does: by POSTing a
``callback_query`` update to the registered webhook with the registered secret token.
It can also be told to fail or hang, to exercise FlowLink when the Bot API is down.

Used by the test suite and available to the local stack; never talks to Telegram.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass
class RecordedCall:
    method: str
    token: str
    payload: dict[str, Any]


@dataclass
class FakeTelegramState:
    calls: list[RecordedCall] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    mode: str = "ok"  # "ok" | "error" (HTTP 500) | "refuse" (ok=false) | "hang"
    hang_seconds: float = 10.0
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeTelegram:
    """Start with ``start()``; ``api_base`` is what TELEGRAM_API_BASE should be set to."""

    def __init__(self) -> None:
        self.state = FakeTelegramState()
        self._message_ids = itertools.count(1000)
        self._update_ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:  # keep test output quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                status, body = fake._handle(self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def api_base(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # -- inspection -------------------------------------------------------------------

    def calls(self, method: str | None = None) -> list[RecordedCall]:
        with self.state.lock:
            return [c for c in self.state.calls if method is None or c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 10.0) -> list[RecordedCall]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls(method)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"fake Telegram saw {len(self.calls(method))} {method} calls, expected {count}")

    def set_mode(self, mode: str, *, hang_seconds: float = 10.0) -> None:
        self.state.mode, self.state.hang_seconds = mode, hang_seconds

    # -- playing button presses back ----------------------------------------------------

    def press(
        self,
        message: RecordedCall,
        choice: str,
        *,
        user_id: int,
        username: str = "approver",
        secret: str | None = None,
        update_id: int | None = None,
        webhook_url: str | None = None,
    ) -> httpx.Response:
        """POST the callback_query update Telegram would send when ``user_id`` presses a button."""
        buttons = message.payload["reply_markup"]["inline_keyboard"][0]
        data = next(b["callback_data"] for b in buttons if b["callback_data"].endswith(":" + choice))
        update = {
            "update_id": update_id if update_id is not None else next(self._update_ids),
            "callback_query": {
                "id": f"cbq{next(self._update_ids)}",
                "from": {"id": user_id, "is_bot": False, "first_name": username, "username": username},
                "message": {"message_id": message.payload.get("_message_id", 0), "chat": {"id": message.payload["chat_id"], "type": "private"}},
                "chat_instance": "1",
                "data": data,
            },
        }
        headers = {}
        token = secret if secret is not None else self.state.webhook_secret
        if token is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = token
        url = webhook_url or self.state.webhook_url
        if not url:
            raise AssertionError("no webhook registered with the fake Bot API")
        return httpx.post(url, json=update, headers=headers, timeout=30)

    # -- the Bot API side -------------------------------------------------------------

    def _handle(self, path: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        token, method = parts[0][3:], parts[1]
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid JSON"}
        mode = self.state.mode
        if mode == "hang":
            time.sleep(self.state.hang_seconds)
        if mode == "error":
            return 500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}
        if mode == "refuse":
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        result: Any = True
        if method in ("sendMessage", "editMessageText"):
            message_id = payload.get("message_id") or next(self._message_ids)
            payload["_message_id"] = message_id
            result = {"message_id": message_id, "chat": {"id": payload.get("chat_id")}, "text": payload.get("text")}
        elif method == "setWebhook":
            self.state.webhook_url = payload.get("url")
            self.state.webhook_secret = payload.get("secret_token")
        elif method == "getWebhookInfo":
            result = {"url": self.state.webhook_url or "", "pending_update_count": 0}
        with self.state.lock:
            self.state.calls.append(RecordedCall(method, token, payload))
        return 200, {"ok": True, "result": result}
