"""MCP tool ``exec``: run a shell command on an enrolled server, judged by Shield on both ends."""

from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from flowlink.commands import DEFAULT_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS, ExecRequest
from flowlink.mcp_tools.common import CommandResult, call_domain, caller, exec_outcome
from flowlink.mcp_tools.exec_tasks import legacy_task_requested

DESCRIPTION = (
    "Run a shell command on an enrolled server (agent = relay id or name). Shield judges it first: "
    "a denied command is refused with its reasons and never runs. Waits for the result up to a bounded "
    "time; if the command is still running, returns its command_id and status 'running' - poll with "
    "the history tool. Pass idempotency_key to make a retried call return the first call's result. "
    "Clients that support MCP tasks can run it as a task (task id = command_id) and get the final "
    "result from tasks/get or tasks/result, also for commands that wait for human approval."
)


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="exec",
        title="Run a command",
        description=DESCRIPTION,
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
        ),
    )
    async def exec_command(
        agent: Annotated[str, Field(description="relay id (rly_...) or name", min_length=1, max_length=128)],
        command: Annotated[str, Field(description="shell command line", min_length=1)],
        ctx: Context,
        cwd: Annotated[str | None, Field(description="absolute working directory")] = None,
        timeout: Annotated[
            float,
            Field(description="seconds before the relay kills the command", ge=1, le=MAX_TIMEOUT_SECONDS),
        ] = DEFAULT_TIMEOUT_SECONDS,
        env: Annotated[dict[str, str] | None, Field(description="extra environment variables")] = None,
        secrets: Annotated[
            list[str] | None,
            Field(description="names of encrypted secrets to inject as environment variables "
                  "(referencing $NAME in the command also injects it); values are never shown"),
        ] = None,
        idempotency_key: Annotated[
            str | None, Field(description="same key + same command = same single execution", max_length=128)
        ] = None,
    ) -> CommandResult:
        auth = caller(ctx)
        request = ExecRequest(
            agent=agent,
            command=command,
            cwd=cwd,
            timeout=timeout,
            env=dict(env or {}),
            idempotency_key=idempotency_key,
            secrets=list(secrets or []),
        )
        # Run as a 2025-11-25 task, the call returns once the command is sent or waits for
        # approval: the client follows the task (flowlink.mcp_tools.exec_tasks).
        wait = not legacy_task_requested(ctx.request_context)
        view = await call_domain(runtime.commands.exec, auth, request, wait=wait)
        return exec_outcome(view)
