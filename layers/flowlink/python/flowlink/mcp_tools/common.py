"""What every gateway tool shares: the authenticated caller, domain calls off the event loop,
and the output models of commands and agents.

Domain errors become ``ToolError`` (an ``isError`` tool result whose text is the error's
detail, e.g. the org's agents for an unknown agent); anything unexpected is left to the
SDK, which reports a generic failure without internals.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from flowlink.auth import AuthContext
from flowlink.errors import FlowLinkError
from flowlink.gateway.middleware import AUTH_SCOPE_KEY

T = TypeVar("T")


def request_caller(request: Any) -> AuthContext | None:
    """The AuthContext McpAuthMiddleware put into this HTTP request's scope, if any."""
    auth = getattr(request, "scope", {}).get(AUTH_SCOPE_KEY) if request is not None else None
    return auth if isinstance(auth, AuthContext) else None


def caller(ctx: Context) -> AuthContext:
    """The authenticated caller of a tool; ToolError without one."""
    auth = request_caller(ctx.request_context.request)
    if auth is None:
        # Fail closed: a tool never runs for an unauthenticated request.
        raise ToolError("unauthenticated request")
    return auth


def domain_tool_error(exc: FlowLinkError) -> ToolError:
    """The tool error a domain error becomes (its code and detail, never internals)."""
    return ToolError(f"{exc.code}: {exc.detail}")


async def call_domain(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run synchronous domain code in a worker thread; FlowLinkError → ToolError."""
    try:
        return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))
    except FlowLinkError as exc:
        raise domain_tool_error(exc) from exc


class VerdictSummary(BaseModel):
    decision: str | None = None
    score: float | None = None
    reasons: list[str] = Field(default_factory=list)
    policy_version: str | None = Field(None, description="the Shield policy that judged (name@digest)")


class CombinedVerdict(BaseModel):
    decision: str | None = Field(None, description="the stricter of the gateway and relay decisions")
    gateway: VerdictSummary | None = None
    relay: VerdictSummary | None = None


class AgentRef(BaseModel):
    relay_id: str
    name: str | None = None


class CommandResult(BaseModel):
    command_id: str
    agent: AgentRef
    op: str
    command: str | None = None
    path: str | None = None
    cwd: str | None = None
    status: str = Field(
        description="completed, refused, timeout, failed, denied or cancelled (withdrawn before approval); "
        "running while still going (history, and exec run as an MCP task, also show dispatched: sent but not "
        "yet acknowledged by the relay); pending_approval while a hard_ask command waits for a human (see "
        "approval_id and message)"
    )
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: int | None = None
    truncated: bool = False
    error: str | None = None
    requested_by: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    verdict: CombinedVerdict
    message: str | None = Field(None, description="how to get the result when the command is still running")
    approval_id: str | None = Field(None, description="hard_ask: the approval this command waits for")


class AgentInfo(BaseModel):
    relay_id: str
    name: str
    hostname: str | None = None
    status: str
    last_seen: str | None = None
    enrolled_at: str | None = None
    version: str | None = None
    flagged: str | None = Field(None, description="why the gateway refuses this relay (e.g. attestation_drift)")
    flag_detail: str | None = None


def refused_text(view: dict[str, Any]) -> str:
    relay = (view.get("verdict") or {}).get("relay") or {}
    reasons = list(relay.get("reasons") or []) or (
        [view["error"]] if view.get("error") else ["no reason given"]
    )
    return f"refused by the relay (command {view['command_id']}): " + "; ".join(reasons)


def exec_outcome(view: dict[str, Any]) -> CommandResult:
    """What ``exec`` answers for a command view: the result, or ToolError when the relay refused it."""
    if view["status"] == "refused":
        raise ToolError(refused_text(view))
    return CommandResult.model_validate(view)
