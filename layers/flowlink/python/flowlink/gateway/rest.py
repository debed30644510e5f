"""REST routes of the gateway under /api/v1: health, relay enrollment and removal, agents,
their command history and API keys.

Each route authenticates with ``require_key``, validates its body with a pydantic model,
calls one domain function in a worker thread and returns JSON; domain errors become
``{"error", "detail"}`` responses in the app's single FlowLinkError handler.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flowlink import __version__, audit
from flowlink.auth import SCOPES, AuthContext, issue_api_key, list_api_keys, revoke_api_key
from flowlink.commands import HISTORY_DEFAULT_LIMIT
from flowlink.gateway.deps import AdminKey, AnyKey, get_runtime
from flowlink.relays import create_enrollment_token, enroll_relay, remove_relay

router = APIRouter(prefix="/api/v1")



class EnrollmentTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=63)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: str = Field(description=f"one of {', '.join(SCOPES)}")
    name: str = Field(min_length=1, max_length=100)


@router.get("/health")
async def health() -> dict[str, Any]:
    return {"status": "ok", "version": __version__}


@router.post("/agents/enrollment-tokens", status_code=201)
async def create_token(body: EnrollmentTokenRequest, request: Request, auth: AdminKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(lambda: create_enrollment_token(runtime.store, auth, body.name))


@router.post("/relays/enroll", status_code=201)
async def enroll(request: Request) -> dict[str, Any]:
    # Validated by the domain function, which names the bad field and never half-enrolls.
    from flowlink.errors import InvalidInput

    try:
        body = await request.json()
    except ValueError as exc:
        raise InvalidInput("body must be valid JSON") from exc
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(enroll_relay, runtime.store, runtime.settings, body)


@router.get("/agents")
async def agents(request: Request, auth: AnyKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    return {"agents": await anyio.to_thread.run_sync(runtime.commands.list_agents, auth)}


@router.delete("/agents/{agent}")
async def delete_agent(agent: str, request: Request, auth: AdminKey) -> dict[str, Any]:
    """Decommission a relay (id or name): its credential is refused from now on, its name is
    free again, its waiting commands fail; history and audit stay."""
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(remove_relay, runtime.store, runtime.channel, auth, agent)


@router.get("/agents/{agent}/commands")
async def agent_commands(
    agent: str,
    request: Request,
    auth: AnyKey,
    limit: int = HISTORY_DEFAULT_LIMIT,
    page_token: str | None = None,
) -> dict[str, Any]:
    """An agent's commands, newest first: what the MCP ``history`` tool returns, for the
    dashboard. ``agent`` is a relay id or name; ``next_page_token`` pages to older ones."""
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(
        partial(runtime.commands.history, auth, agent, limit=limit, page_token=page_token)
    )


@router.get("/keys")
async def keys(request: Request, auth: AdminKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    return {"keys": await anyio.to_thread.run_sync(list_api_keys, runtime.store, auth.org_id)}


def _create_key(runtime: Any, auth: AuthContext, body: KeyRequest) -> dict[str, Any]:
    record, plaintext = issue_api_key(
        runtime.store,
        audit.default_store(),
        auth.org_id,
        scope=body.scope,
        name=body.name,
        created_by=auth.key_id,
        actor=auth.actor(),
    )
    return {**record, "key": plaintext}


@router.post("/keys", status_code=201)
async def create_key(body: KeyRequest, request: Request, auth: AdminKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(_create_key, runtime, auth, body)


def _revoke_key(runtime: Any, auth: AuthContext, key_id: str) -> dict[str, Any]:
    record = revoke_api_key(runtime.store, auth.org_id, key_id)
    audit.append_event(
        auth.org_id,
        "key.revoked",
        {"key_id": key_id, "name": record["name"], "scope": record["scope"]},
        actor=auth.actor(),
    )
    return record


@router.delete("/keys/{key_id}")
async def delete_key(key_id: str, request: Request, auth: AdminKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    return await anyio.to_thread.run_sync(_revoke_key, runtime, auth, key_id)
