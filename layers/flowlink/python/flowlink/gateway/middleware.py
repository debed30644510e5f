"""Pure-ASGI guards in front of the gateway: body size, Host/Origin checks and /mcp authentication.

They answer in JSON (``{"error", "detail"}``) before any route or the MCP SDK sees the
request: a body over ``Settings.max_body_bytes`` → 413; a Host or Origin not allowed
(DNS-rebinding protection for the MCP endpoint) → 421/403; an /mcp request without a valid
API key → 401 with ``WWW-Authenticate``. The authenticated caller is put into the ASGI
scope under ``AUTH_SCOPE_KEY``, where MCP tools read it from the SDK's request context.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlparse

import anyio
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowlink.auth import authenticate, extract_presented_key
from flowlink.errors import AuthenticationFailed, FlowLinkError, UnsupportedMediaType

AUTH_SCOPE_KEY = "flowlink.auth"
WWW_AUTHENTICATE = 'Bearer realm="flowlink"'


def error_body(error: FlowLinkError) -> bytes:
    return json.dumps(error.to_dict()).encode("utf-8")


def error_headers(error: FlowLinkError) -> dict[str, str]:
    headers = {"content-type": "application/json"}
    if isinstance(error, AuthenticationFailed):
        headers["www-authenticate"] = WWW_AUTHENTICATE
    return headers


async def send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    for name, value in (headers or {}).items():
        if name.lower() not in ("content-type", "content-length"):
            raw_headers.append((name.lower().encode(), value.encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Send, error: FlowLinkError) -> None:
    await send_json(send, error.http_status, error.to_dict(), error_headers(error))


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, whether declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = {"error": "payload_too_large", "detail": f"request body exceeds {self.max_bytes} bytes"}
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await send_json(send, 413, too_large)
            return
        # Read the whole (bounded) body first, then replay it to the app.
        chunks: deque[Message] = deque()
        size = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await send_json(send, 413, too_large)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in chunks if m["type"] == "http.request")
        trailing = [m for m in chunks if m["type"] != "http.request"]
        replay: deque[Message] = deque(
            [{"type": "http.request", "body": body, "more_body": False}, *trailing]
        )

        async def replay_receive() -> Message:
            if replay:
                return replay.popleft()
            return await receive()

        await self.app(scope, replay_receive, send)


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, parameters ignored."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


class JsonContentTypeMiddleware:
    """REST bodies are JSON: a POST, PUT or PATCH under ``prefix`` whose Content-Type says
    otherwise gets 415 naming the fix, instead of a validation error about its parsed value
    ("Input should be a valid dictionary"). No Content-Type at all is read as JSON."""

    def __init__(self, app: ASGIApp, prefix: str = "/api/"):
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in ("POST", "PUT", "PATCH")
            and scope["path"].startswith(self.prefix)
        ):
            content_type = Headers(scope=scope).get("content-type")
            if content_type is not None and not is_json_media_type(content_type):
                shown = content_type.split(";", 1)[0].strip()[:100]
                await send_error(send, UnsupportedMediaType(
                    f"request body must be JSON sent with Content-Type: application/json, not {shown!r}"
                ))
                return
        await self.app(scope, receive, send)


def allowed_hosts_for(settings: Any) -> tuple[set[str], tuple[str, ...]]:
    """(exact hosts, host suffixes) the MCP endpoint answers to.

    Loopback on any port (local stack, tests), the hosts of the configured public URLs,
    and API Gateway's ``*.execute-api.<region>.amazonaws.com`` (Lambda behind HTTP API).
    """
    exact = {"127.0.0.1", "localhost", "[::1]"}
    for url in (settings.api_url, settings.ws_url):
        if url:
            host = urlparse(url).hostname
            if host:
                exact.add(host.lower())
    suffixes = (f".execute-api.{settings.region}.amazonaws.com",)
    return exact, suffixes


class HostCheckMiddleware:
    """DNS-rebinding protection for the paths in ``paths``: Host and Origin must be ours."""

    def __init__(self, app: ASGIApp, settings: Any, paths: tuple[str, ...] = ("/mcp",)):
        self.app = app
        self.paths = paths
        self.exact, self.suffixes = allowed_hosts_for(settings)

    def _host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        name = host.lower()
        if name.startswith("["):
            name = name[: name.index("]") + 1] if "]" in name else name
        else:
            name = name.rsplit(":", 1)[0] if ":" in name else name
        return name in self.exact or any(name.endswith(suffix) for suffix in self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._host_allowed(headers.get("host")):
            await send_json(send, 421, {"error": "invalid_host", "detail": "Host header not allowed"})
            return
        origin = headers.get("origin")
        if origin and not self._host_allowed(urlparse(origin).netloc):
            await send_json(send, 403, {"error": "invalid_origin", "detail": "Origin not allowed"})
            return
        await self.app(scope, receive, send)


class McpAuthMiddleware:
    """Authenticate every /mcp request with an API key and expose the caller to the tools."""

    def __init__(self, app: ASGIApp, get_store: Callable[[], Any], path: str = "/mcp"):
        self.app = app
        self.get_store = get_store
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        presented = extract_presented_key(Headers(scope=scope))
        try:
            auth = await anyio.to_thread.run_sync(authenticate, self.get_store(), presented)
        except FlowLinkError as exc:
            await send_error(send, exc)
            return
        scope[AUTH_SCOPE_KEY] = auth
        await self.app(scope, receive, send)


_JSONRPC_INVALID_REQUEST = -32600


class JsonRpcShapeMiddleware:
    """-32600 for a POST /mcp body that parses as JSON but is no JSON-RPC message.

    The SDK's 2026-07-28 entry already answers -32600; its 2025 (handshake-era) entry
    answers such bodies with -32602, so requests without a modern ``MCP-Protocol-Version``
    are checked here. Unparsable JSON is left to the SDK, which answers -32700.
    """

    def __init__(self, app: ASGIApp, path: str = "/mcp"):
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"].rstrip("/") != self.path:
            await self.app(scope, receive, send)
            return
        version = Headers(scope=scope).get("mcp-protocol-version")
        if version is not None and version not in _served_versions():
            body, _ = await _buffer_body(receive)
            await send_json(send, 400, _unsupported_version_error(version, body))
            return
        if version is not None and version not in _handshake_versions():
            await self.app(scope, receive, send)
            return
        body, replay_receive = await _buffer_body(receive)
        try:
            message = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            await self.app(scope, replay_receive, send)
            return
        problem = _jsonrpc_problem(message)
        if problem is not None:
            request_id = message.get("id") if isinstance(message, dict) else None
            if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
                request_id = None
            await send_json(
                send,
                400,
                {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": _JSONRPC_INVALID_REQUEST, "message": problem},
                },
            )
            return
        await self.app(scope, replay_receive, send)


def _handshake_versions() -> frozenset[str]:
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

    return frozenset(HANDSHAKE_PROTOCOL_VERSIONS)


def _served_versions() -> tuple[str, ...]:
    """Every MCP-Protocol-Version /mcp answers, newest first (handshake era and 2026-07-28)."""
    from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

    return tuple(reversed((*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS)))


def _unsupported_version_error(version: str, body: bytes) -> dict[str, Any]:
    """The JSON-RPC error for an MCP-Protocol-Version header /mcp does not serve.

    The SDK's 2026-07-28 entry would take such a request and complain about the missing
    ``params._meta`` envelope instead; the streamable HTTP transport asks for 400 here.
    """
    from mcp_types.jsonrpc import UNSUPPORTED_PROTOCOL_VERSION

    try:
        message = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        message = None
    request_id = message.get("id") if isinstance(message, dict) else None
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        request_id = None
    supported = list(_served_versions())
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {
            "code": UNSUPPORTED_PROTOCOL_VERSION,
            "message": f"Unsupported protocol version {version!r} (MCP-Protocol-Version header); "
            f"supported versions: {', '.join(supported)}",
            "data": {"supported": supported, "requested": version},
        },
    }


def _jsonrpc_problem(message: Any) -> str | None:
    """Why ``message`` is not a JSON-RPC 2.0 request, notification or response (None if it is)."""
    if not isinstance(message, dict):
        return "Invalid Request: body must be a single JSON-RPC object (batches are not supported)"
    if message.get("jsonrpc") != "2.0":
        return 'Invalid Request: jsonrpc must be "2.0"'
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return "Invalid Request: method must be a non-empty string"
        if "id" in message and (isinstance(message["id"], bool) or not isinstance(message["id"], (str, int))):
            return "Invalid Request: id must be a string or an integer"
        if "params" in message and not isinstance(message["params"], dict):
            return "Invalid Request: params must be an object"
        return None
    if "result" in message or "error" in message:
        return None
    return "Invalid Request: method is required"


async def _buffer_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    trailing: list[Message] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            trailing.append(message)
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replay: deque[Message] = deque([{"type": "http.request", "body": body, "more_body": False}, *trailing])

    async def replay_receive() -> Message:
        if replay:
            return replay.popleft()
        return await receive()

    return body, replay_receive
