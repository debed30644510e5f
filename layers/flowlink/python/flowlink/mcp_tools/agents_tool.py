"""MCP tool ``agents``: the relays enrolled in the caller's org."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel

from flowlink.mcp_tools.common import AgentInfo, call_domain, caller


class AgentsResult(BaseModel):
    agents: list[AgentInfo]


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="agents",
        title="List agents",
        description="The servers (edge relays) enrolled in your org, with status and last contact.",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def agents(ctx: Context) -> AgentsResult:
        listing = await call_domain(runtime.commands.list_agents, caller(ctx))
        return AgentsResult(agents=[AgentInfo.model_validate(a) for a in listing])
