"""MCP tool ``health``: the gateway's state and each of the org's agents, online or not."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel

from flowlink.mcp_tools.common import call_domain, caller


class GatewayHealth(BaseModel):
    status: str
    server_time: str
    environment: str


class AgentHealth(BaseModel):
    relay_id: str
    name: str
    online: bool
    last_seen: str | None = None


class HealthResult(BaseModel):
    gateway: GatewayHealth
    agents: list[AgentHealth]


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="health",
        title="Gateway and agent health",
        description="Gateway status and, for every agent of your org, whether it is online and when it was last seen.",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def health(ctx: Context) -> HealthResult:
        return HealthResult.model_validate(await call_domain(runtime.commands.health, caller(ctx)))
