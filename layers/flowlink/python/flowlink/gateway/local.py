"""Local stand-in for API Gateway: the relay WebSocket endpoint and the management API.

``create_local_app()`` is the same gateway app plus:

* ``GET /ws`` (WebSocket): each relay connection gets an id and every event of its life is
  handed to the SAME Lambda handlers as in AWS (``functions.ws_authorizer``,
  ``ws_connect``, ``ws_message``, ``ws_disconnect``) as API-Gateway-shaped events.
* ``POST/GET/DELETE /@connections/{id}``: the management API those handlers call through
  ``boto3.client("apigatewaymanagementapi", endpoint_url=FLOWLINK_WS_MANAGEMENT_URL)``.
  This module owns connection state: a closed or unknown connection answers 410
  ``GoneException`` (moto's emulation never does).

Handlers are synchronous and post back to this same server, so they always run in worker
threads (``anyio.to_thread``); calling them on the event loop would deadlock. The
management API is meant for 127.0.0.1 only, like the rest of the local stack.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import os
import secrets
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from flowlink.gateway.app import create_app
from flowlink.relays import LOCAL_MANAGEMENT_TOKEN_HEADER
from flowlink.settings import ENV_LOCAL_MANAGEMENT_TOKEN, Settings

STAGE = "local"
API_ID = "local"
ACCOUNT_ID = "000000000000"


@dataclass
class LocalLambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    function_name: str
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class LocalConnection:
    connection_id: str
    websocket: WebSocket
    connected_at: float
    source_ip: str
    last_active: float
    closed: bool = False
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ConnectionRegistry:
    """Open relay sockets by connection id (only touched from the event loop)."""

    def __init__(self) -> None:
        self._connections: dict[str, LocalConnection] = {}

    def add(self, connection: LocalConnection) -> None:
        self._connections[connection.connection_id] = connection

    def get(self, connection_id: str) -> LocalConnection | None:
        connection = self._connections.get(connection_id)
        return None if connection is None or connection.closed else connection

    def remove(self, connection_id: str) -> None:
        connection = self._connections.pop(connection_id, None)
        if connection is not None:
            connection.closed = True

    def __len__(self) -> int:
        return len(self._connections)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _request_context(
    websocket: WebSocket, connection_id: str, route_key: str, event_type: str, connected_at: float
) -> dict[str, Any]:
    now = time.time()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "messageDirection": "IN",
        "extendedRequestId": secrets.token_hex(8),
        "requestTime": datetime.fromtimestamp(now, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now * 1000),
        "stage": STAGE,
        "connectedAt": int(connected_at * 1000),
        "identity": {
            "sourceIp": websocket.client.host if websocket.client else "127.0.0.1",
            "userAgent": websocket.headers.get("user-agent", ""),
        },
        "requestId": secrets.token_hex(8),
        "domainName": websocket.headers.get("host", "127.0.0.1"),
        "connectionId": connection_id,
        "apiId": API_ID,
    }


def _invoke(module_name: str, event: dict[str, Any]) -> Any:
    module = importlib.import_module(f"functions.{module_name}.app")
    return module.handler(event, LocalLambdaContext(function_name=module_name))


async def _call_handler(module_name: str, event: dict[str, Any]) -> Any:
    return await anyio.to_thread.run_sync(partial(_invoke, module_name, event))


def add_local_routes(
    app: FastAPI, registry: ConnectionRegistry | None = None, *, management_token: str | None = None
) -> ConnectionRegistry:
    """Add ``/ws`` and ``/@connections/{id}``. The management routes answer only callers that
    present ``management_token`` (header ``X-Flowlink-Management-Token``, which RelayChannel
    adds from the same setting): on AWS IAM guards this API; here anyone on the machine could
    otherwise push messages to a relay or hang it up."""
    registry = registry or ConnectionRegistry()
    app.state.connections = registry
    if not management_token:
        raise ValueError("the local management API needs a token (FLOWLINK_LOCAL_MANAGEMENT_TOKEN)")
    expected = management_token.encode("utf-8")

    def forbidden(request: Request) -> Response | None:
        presented = request.headers.get(LOCAL_MANAGEMENT_TOKEN_HEADER, "").encode("utf-8")
        if secrets.compare_digest(presented, expected):
            return None
        body = {"__type": "ForbiddenException", "message": "missing or wrong management token"}
        return Response(json.dumps(body), status_code=403, media_type="application/json",
                        headers={"x-amzn-ErrorType": "ForbiddenException"})

    @app.websocket("/ws")
    async def relay_socket(websocket: WebSocket) -> None:
        connection_id = base64.urlsafe_b64encode(secrets.token_bytes(12)).decode().rstrip("=") + "="
        connected_at = time.time()
        headers = {k: v for k, v in websocket.headers.items()}
        query = dict(websocket.query_params) or None
        connect_context = _request_context(websocket, connection_id, "$connect", "CONNECT", connected_at)
        authorizer_event = {
            "type": "REQUEST",
            "methodArn": f"arn:aws:execute-api:us-east-1:{ACCOUNT_ID}:{API_ID}/{STAGE}/$connect",
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
            "stageVariables": {},
            "requestContext": connect_context,
        }
        decision = await _call_handler("ws_authorizer", authorizer_event)
        statement = ((decision or {}).get("policyDocument") or {}).get("Statement") or [{}]
        if statement[0].get("Effect") != "Allow":
            await websocket.close(code=1008)  # before accept: the client sees HTTP 403
            return
        authorizer = {"principalId": decision["principalId"], **(decision.get("context") or {})}
        connect_event = {
            "headers": headers,
            "multiValueHeaders": {k: [v] for k, v in headers.items()},
            "queryStringParameters": query,
            "requestContext": {**connect_context, "authorizer": authorizer},
            "isBase64Encoded": False,
        }
        local = LocalConnection(
            connection_id=connection_id,
            websocket=websocket,
            connected_at=connected_at,
            source_ip=connect_context["identity"]["sourceIp"],
            last_active=connected_at,
        )
        # Registered before $connect returns, like API Gateway, which accepts posts as soon
        # as the connect route succeeded.
        registry.add(local)
        answer = await _call_handler("ws_connect", connect_event)
        if (answer or {}).get("statusCode") != 200:
            registry.remove(connection_id)
            await websocket.close(code=1008)
            return
        await websocket.accept()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None and message.get("bytes") is not None:
                    text = message["bytes"].decode("utf-8", "replace")
                local.last_active = time.time()
                event = {
                    "requestContext": {
                        **_request_context(websocket, connection_id, "$default", "MESSAGE", connected_at),
                        "messageId": secrets.token_hex(8),
                        "authorizer": authorizer,
                    },
                    "body": text or "",
                    "isBase64Encoded": False,
                }
                await _call_handler("ws_message", event)
        except WebSocketDisconnect:
            pass
        finally:
            registry.remove(connection_id)
            disconnect_event = {
                "headers": headers,
                "requestContext": {
                    **_request_context(websocket, connection_id, "$disconnect", "DISCONNECT", connected_at),
                    "authorizer": authorizer,
                    "disconnectStatusCode": 1000,
                    "disconnectReason": "",
                },
                "isBase64Encoded": False,
            }
            await _call_handler("ws_disconnect", disconnect_event)

    def gone(connection_id: str) -> Response:
        body = {"__type": "GoneException", "message": f"connection {connection_id} is gone"}
        return Response(
            json.dumps(body),
            status_code=410,
            media_type="application/json",
            headers={"x-amzn-ErrorType": "GoneException"},
        )

    @app.post("/@connections/{connection_id}")
    async def post_to_connection(connection_id: str, request: Request) -> Response:
        if (refusal := forbidden(request)) is not None:
            return refusal
        connection = registry.get(connection_id)
        if connection is None:
            return gone(connection_id)
        data = await request.body()
        try:
            async with connection.send_lock:
                if connection.websocket.application_state != WebSocketState.CONNECTED:
                    return gone(connection_id)
                await connection.websocket.send_text(data.decode("utf-8", "replace"))
        except (RuntimeError, WebSocketDisconnect, OSError):
            registry.remove(connection_id)
            return gone(connection_id)
        return Response(status_code=200)

    @app.get("/@connections/{connection_id}")
    async def get_connection(connection_id: str, request: Request) -> Response:
        if (refusal := forbidden(request)) is not None:
            return refusal
        connection = registry.get(connection_id)
        if connection is None:
            return gone(connection_id)
        body = {
            "connectedAt": _iso(connection.connected_at),
            "identity": {"sourceIp": connection.source_ip},
            "lastActiveAt": _iso(connection.last_active),
        }
        return Response(json.dumps(body), status_code=200, media_type="application/json")

    @app.delete("/@connections/{connection_id}")
    async def delete_connection(connection_id: str, request: Request) -> Response:
        if (refusal := forbidden(request)) is not None:
            return refusal
        connection = registry.get(connection_id)
        if connection is None:
            return gone(connection_id)
        registry.remove(connection_id)
        try:
            await connection.websocket.close(code=1000)
        except (RuntimeError, WebSocketDisconnect):
            # The peer may already have gone; the connection is removed either way.
            pass
        return Response(status_code=204)

    return registry


def create_local_app(settings: Settings | None = None) -> FastAPI:
    """The gateway app with the local WebSocket endpoint and management API (uvicorn --factory).

    The management API's token comes from FLOWLINK_LOCAL_MANAGEMENT_TOKEN (``flowlink local
    up`` generates one per stack and gives it to every process that posts to relays). Run
    by hand without one, a random token is made and put in this process's environment, so
    the handlers this app runs in-process (which read their settings from the environment)
    can still reach relays, and nothing outside the process can.
    """
    settings = settings or Settings.from_env()
    token = settings.local_management_token
    if not token:
        token = secrets.token_urlsafe(32)
        os.environ[ENV_LOCAL_MANAGEMENT_TOKEN] = token
        settings = replace(settings, local_management_token=token)
    app = create_app(settings)
    add_local_routes(app, management_token=token)
    return app
