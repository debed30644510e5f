"""MCP tool ``approve``: list pending approvals, and approve or deny one (humans' keys only).

Listing works with any key of the org, so an agent can see what it waits for; deciding
needs an approver or admin key, and an agent's own key gets a clear refusal: an agent
can never approve its own commands.
"""

from __future__ import annotations

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.approvals.runtime import approval_service_for
from flowlink.approvals.service import approver_for_key
from flowlink.mcp_tools.common import call_domain, caller


class ApprovalDecision(BaseModel):
    approver: str | None = None
    channel: str | None = None
    decision: str | None = None
    at: str | None = None
    comment: str | None = None


class ApprovalInfo(BaseModel):
    approval_id: str
    status: str = Field(description="pending, approved, denied, timed_out, failed or cancelled (by the requester)")
    command_id: str
    agent: str
    relay_id: str
    command: str
    score: int
    reasons: list[str] = Field(default_factory=list)
    needed: int = Field(description="approvals needed (2 under a two-person rule)")
    decisions: list[ApprovalDecision] = Field(default_factory=list)
    created_at: str
    expires_at: str
    decided_at: str | None = None
    dispatched_at: str | None = None
    notify_errors: list[str] = Field(default_factory=list)


class ApproveResult(BaseModel):
    action: str
    approvals: list[ApprovalInfo] = Field(default_factory=list, description="for list and get")
    approval_id: str | None = None
    status: str | None = None
    recorded: bool | None = Field(None, description="whether this call changed anything")
    message: str | None = None


def _decide(service, auth, approval_id: str, decision: str, comment: str | None) -> dict:
    approver = approver_for_key(auth, "mcp")
    return service.decide(auth.org_id, approval_id, decision, approver, comment=comment).to_dict()


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="approve",
        title="Approvals",
        description=(
            "Human approvals of hard_ask commands. action=list shows the org's approvals (status=pending by "
            "default); action=get shows one; action=approve or action=deny decides one (approver or admin key "
            "only: an agent key is refused). A decision is recorded once; repeats and late answers change nothing."
        ),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False),
    )
    async def approve(
        action: Annotated[Literal["list", "get", "approve", "deny"], Field(description="what to do")],
        ctx: Context,
        approval_id: Annotated[str | None, Field(description="apr_... (for get, approve, deny)", max_length=64)] = None,
        status: Annotated[
            Literal["pending", "approved", "denied", "timed_out", "failed", "cancelled"] | None,
            Field(description="filter for list"),
        ] = "pending",
        comment: Annotated[str | None, Field(description="why (kept in the audit)", max_length=1000)] = None,
    ) -> ApproveResult:
        auth = caller(ctx)
        service = approval_service_for(runtime)
        if action == "list":
            items = await call_domain(service.list, auth.org_id, status=status)
            return ApproveResult(action=action, approvals=[ApprovalInfo.model_validate(i) for i in items])
        if not approval_id:
            raise ToolError(f"invalid_input: approval_id is required for action={action}")
        if action == "get":
            item = await call_domain(service.get, auth.org_id, approval_id)
            return ApproveResult(action=action, approvals=[ApprovalInfo.model_validate(service.public_view(item))])
        result = await call_domain(_decide, service, auth, approval_id, action, comment)
        return ApproveResult(action=action, **result)
