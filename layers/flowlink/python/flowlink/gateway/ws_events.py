"""Reading API Gateway WebSocket events (and shaping authorizer answers) for the ws_* handlers.

Shared by the Lambda handlers in ``functions/ws_*`` and the local emulation, so both agree
on where the relay id, credential, connection id and management API URL come from
(docs/contracts.md §6). No I/O here.
"""

from __future__ import annotations

import base64
from typing import Any

from flowlink.settings import Settings

RELAY_ID_HEADER = "x-flowlink-relay-id"


def lower_headers(event: dict[str, Any]) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}


def relay_identity_from_event(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(relay_id, credential) from the headers, else the query parameters ``relay_id``/``token``."""
    headers = lower_headers(event)
    query = event.get("queryStringParameters") or {}
    relay_id = headers.get(RELAY_ID_HEADER) or query.get("relay_id")
    credential = None
    scheme, _, value = (headers.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        credential = value.strip()
    credential = credential or query.get("token")
    return relay_id, credential


def connection_id(event: dict[str, Any]) -> str:
    value = (event.get("requestContext") or {}).get("connectionId")
    if not isinstance(value, str) or not value:
        raise ValueError("event has no requestContext.connectionId")
    return value


def management_url(event: dict[str, Any], settings: Settings) -> str | None:
    """The management API base: the setting, else ``https://<domainName>/<stage>`` of the event."""
    if settings.ws_management_url:
        return settings.ws_management_url
    context = event.get("requestContext") or {}
    domain, stage = context.get("domainName"), context.get("stage")
    if domain and stage:
        return f"https://{domain}/{stage}"
    return None


def message_body(event: dict[str, Any]) -> str:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return base64.b64decode(body).decode("utf-8", "replace")
    return body


def authorizer_context(event: dict[str, Any]) -> dict[str, Any]:
    return (event.get("requestContext") or {}).get("authorizer") or {}


def iam_policy(principal_id: str, effect: str, resource: str, context: dict[str, str] | None = None) -> dict:
    """A REQUEST authorizer answer (IAM policy document) for API Gateway."""
    answer: dict[str, Any] = {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }
    if context:
        answer["context"] = dict(context)
    return answer
