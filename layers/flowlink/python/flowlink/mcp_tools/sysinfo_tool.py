"""MCP tool ``sysinfo``: host facts of one agent, live when it is online."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.mcp_tools.common import AgentInfo, call_domain, caller


class SysinfoResult(BaseModel):
    agent: AgentInfo
    facts: dict[str, Any]
    live: bool = Field(description="true when the facts were just reported by the relay")
    error: str | None = None


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="sysinfo",
        title="Host facts",
        description="Facts about an agent's host (OS, kernel, CPU, memory...): live from the relay when online, "
        "otherwise the last facts it reported.",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def sysinfo(
        agent: Annotated[str, Field(description="relay id (rly_...) or name", min_length=1, max_length=128)],
        ctx: Context,
    ) -> SysinfoResult:
        return SysinfoResult.model_validate(await call_domain(runtime.commands.sysinfo, caller(ctx), agent))
