"""MCP tool ``read``: Read a file on an agent's host (output capped by the relay). The path policy is checked first: e.g. /etc/shadow is refused."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from flowlink.mcp_tools.common import CommandResult, call_domain, caller, refused_text
from flowlink.relay_protocol import OP_READ


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="read",
        title="Read a file",
        description="Read a file on an agent's host (output capped by the relay). The path policy is checked first: e.g. /etc/shadow is refused. The result is in stdout.",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
        ),
    )
    async def read_path(
        agent: Annotated[str, Field(description="relay id (rly_...) or name", min_length=1, max_length=128)],
        path: Annotated[
            str, Field(description="absolute path on the agent's host", min_length=1, max_length=4096)
        ],
        ctx: Context,
    ) -> CommandResult:
        view = await call_domain(runtime.commands.path_operation, caller(ctx), agent, OP_READ, path)
        if view["status"] == "refused":
            raise ToolError(refused_text(view))
        return CommandResult.model_validate(view)
