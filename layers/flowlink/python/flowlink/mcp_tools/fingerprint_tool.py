"""MCP tool ``fingerprint``: a relay's key fingerprints and host facts, to verify out of band."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.mcp_tools.common import call_domain, caller
from flowlink.secret_box import key_fingerprint


class FingerprintResult(BaseModel):
    relay_id: str
    name: str
    status: str
    encryption_key_fingerprint: str | None = Field(None, description="X25519 key secrets are encrypted to")
    signing_key_fingerprint: str | None = Field(None, description="Ed25519 identity key")
    enrolled_at: str | None = None
    identity_flagged: bool = Field(
        False, description="refused until re-enrolled (presented another key, or its code drifted)"
    )
    facts: dict[str, Any] = Field(default_factory=dict)


def _fingerprint(value: str | None) -> str | None:
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raw = value.encode()
    return key_fingerprint(raw)


def _describe(runtime, auth, agent: str) -> dict[str, Any]:
    record = runtime.commands.resolve_agent(auth, agent)
    return {
        "relay_id": record.relay_id,
        "name": record.name,
        "status": record.status,
        "encryption_key_fingerprint": _fingerprint(record.box_public_key),
        "signing_key_fingerprint": _fingerprint(record.signing_public_key),
        "enrolled_at": record.enrolled_at,
        "identity_flagged": getattr(record, "flagged", None) is not None,
        "facts": dict(record.facts or {}),
    }


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="fingerprint",
        title="Relay fingerprints",
        description="Key fingerprints (encryption and signing) and host facts of a relay, to compare with "
        "`flowlink-relay status` on the host before trusting it with secrets.",
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
    )
    async def fingerprint(
        agent: Annotated[str, Field(description="relay id (rly_...) or name", min_length=1, max_length=128)],
        ctx: Context,
    ) -> FingerprintResult:
        return FingerprintResult.model_validate(await call_domain(_describe, runtime, caller(ctx), agent))
