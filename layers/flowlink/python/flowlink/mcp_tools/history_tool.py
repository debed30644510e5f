"""MCP tool ``history``: an agent's commands, newest first, paginated with an opaque token."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.commands import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT
from flowlink.mcp_tools.common import AgentInfo, CommandResult, call_domain, caller


class HistoryResult(BaseModel):
    agent: AgentInfo
    commands: list[CommandResult]
    next_page_token: str | None = Field(None, description="pass as page_token for the next (older) page")


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="history",
        title="Command history",
        description="Commands run on an agent, newest first, with status, exit code, output and verdicts. "
        "Paginate with page_token; pass command_id to fetch one command (e.g. one still running).",
        annotations=ToolAnnotations(
            read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        ),
    )
    async def history(
        agent: Annotated[str, Field(description="relay id (rly_...) or name", min_length=1, max_length=128)],
        ctx: Context,
        limit: Annotated[
            int, Field(description="page size", ge=1, le=HISTORY_MAX_LIMIT)
        ] = HISTORY_DEFAULT_LIMIT,
        page_token: Annotated[str | None, Field(description="next_page_token of the previous page")] = None,
        command_id: Annotated[str | None, Field(description="fetch only this command")] = None,
    ) -> HistoryResult:
        result = await call_domain(
            runtime.commands.history,
            caller(ctx),
            agent,
            limit=limit,
            page_token=page_token,
            command_id=command_id,
        )
        return HistoryResult.model_validate(result)
