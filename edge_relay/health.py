"""Local health and metrics endpoint of the relay (127.0.0.1:9081 by default).

A deliberately tiny HTTP/1.1 server on asyncio streams: two GET routes, no dependencies,
bound to loopback by default. ``GET /healthz`` returns JSON, ``GET /metrics`` the
Prometheus text format. It exposes no command text, output or secrets.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections.abc import Callable
from typing import Any

from edge_relay.errors import HealthPortInUseError, RelaySettingsError

logger = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192


class HealthServer:
    """Serves ``snapshot()`` (a dict) as /healthz and ``metrics()`` (text) as /metrics."""

    def __init__(
        self, host: str, port: int, *, snapshot: Callable[[], dict[str, Any]], metrics: Callable[[], str]
    ):
        self.host = host
        self.port = port
        self._snapshot = snapshot
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Bind and start serving; returns the bound port.

        Raises HealthPortInUseError naming the port when it is taken, RelaySettingsError
        when the host cannot be bound at all.
        """
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise HealthPortInUseError(
                    f"relay health port {self.port} on {self.host} is already in use; "
                    f"stop the other process or pass --health-port"
                ) from exc
            raise RelaySettingsError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            request_line = head[:MAX_REQUEST_HEAD].split(b"\r\n", 1)[0].decode("latin-1")
            method, target, _version = request_line.split(" ", 2)
        except ValueError:
            await self._respond(writer, 400, "text/plain", "bad request\n")
            return
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            await self._respond(writer, 405, "text/plain", "method not allowed\n", head_only=False)
        elif path == "/healthz":
            body = json.dumps(self._snapshot()) + "\n"
            await self._respond(writer, 200, "application/json", body, head_only=method == "HEAD")
        elif path == "/metrics":
            await self._respond(
                writer,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                self._metrics(),
                head_only=method == "HEAD",
            )
        else:
            await self._respond(writer, 404, "text/plain", "not found\n")

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter, status: int, content_type: str, body: str, *, head_only: bool = False
    ) -> None:
        reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        payload = body.encode("utf-8")
        headers = (
            f"HTTP/1.1 {status} {reasons[status]}\r\n"
            f"Content-Type: {content_type}\r\n"
            f"Content-Length: {len(payload)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("ascii")
        try:
            writer.write(headers if head_only else headers + payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
