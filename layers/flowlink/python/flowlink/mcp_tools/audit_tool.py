"""MCP tool ``audit``: the org's tamper-evident audit trail, filtered and paginated, with the
chain's integrity status (``flowlink.audit.query``). Read-only; events carry digests, never
secrets or command output."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.audit import store_for
from flowlink.audit.query import MAX_LIMIT, MAX_TEXT_LENGTH, query_events
from flowlink.mcp_tools.common import call_domain, caller


class AuditEvent(BaseModel):
    seq: int
    ts: str | None = None
    kind: str | None = None
    actor: dict[str, Any] | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    chain_hash: str
    hash_ok: bool = Field(description="the event's content matches its chain hash")


class ChainStatus(BaseModel):
    length: int = Field(description="number of events in the org's chain")
    head_hash: str
    merkle_root: str | None = None
    intact: bool | None = Field(None, description="full verification result (null when verify=false)")
    broken_at: int | float | None = Field(None, description="seq of the first bad record")
    reason: str | None = None
    checked_at: str | None = None


class AuditResult(BaseModel):
    events: list[AuditEvent]
    next_page_token: str | None = Field(None, description="pass as page_token for the next (older) page")
    chain: ChainStatus


def register(server: MCPServer, runtime) -> None:
    store = store_for(runtime.settings)

    @server.tool(
        name="audit",
        title="Audit trail",
        description="The org's tamper-evident audit events (commands, verdicts, approvals, relay and key "
        "changes), newest first, filtered by agent, key, decision, time range or text, with the hash "
        "chain's integrity status. Paginate with page_token.",
        annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                                    open_world_hint=False),
    )
    async def audit(
        ctx: Context,
        agent: Annotated[str | None, Field(description="relay id (rly_...) or name", max_length=128)] = None,
        key_id: Annotated[str | None, Field(description="API key id (key_...) that acted", max_length=64)] = None,
        decision: Annotated[str | None, Field(description="auto, soft_ask, hard_ask or deny", max_length=32)] = None,
        since: Annotated[str | None, Field(description="ISO-8601 time, inclusive")] = None,
        until: Annotated[str | None, Field(description="ISO-8601 time, inclusive")] = None,
        text: Annotated[str | None, Field(description="case-insensitive text in the event",
                                          max_length=MAX_TEXT_LENGTH)] = None,
        limit: Annotated[int, Field(description="page size", ge=1, le=MAX_LIMIT)] = 50,
        page_token: Annotated[str | None, Field(description="next_page_token of the previous page")] = None,
        verify: Annotated[bool, Field(description="verify the whole chain (reads every event)")] = True,
    ) -> AuditResult:
        auth = caller(ctx)
        result = await call_domain(
            query_events,
            auth.org_id,
            agent=agent,
            key_id=key_id,
            decision=decision,
            since=since,
            until=until,
            text=text,
            page_token=page_token,
            limit=limit,
            include_integrity=verify,
            store=store,
        )
        return AuditResult.model_validate(result)
