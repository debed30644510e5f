"""REST routes for org settings: ``GET /api/v1/org/settings`` (any key of the org) and
``PATCH /api/v1/org/settings`` (admin key): approvers, approvals required, approval timeout,
notification channels, drift refusal and the Shield policy (YAML, validated on save; a new
policy is pushed, signed, to the org's online relays, contracts §8)."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Body, Request

from flowlink.errors import NotFound
from flowlink.gateway.deps import AdminKey, AnyKey, get_runtime
from flowlink.org_settings import settings_view, update_settings
from flowlink.relays import enforce_drift_refusal, push_policy

router = APIRouter()



@router.get("/api/v1/org/settings")
async def get_settings(request: Request, auth: AnyKey) -> dict[str, Any]:
    store = get_runtime(request).store
    org = await anyio.to_thread.run_sync(store.get_org, auth.org_id)
    if org is None:
        raise NotFound("org not found")
    return settings_view(org)


@router.patch("/api/v1/org/settings")
async def patch_settings(request: Request, auth: AdminKey, changes: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    runtime = get_runtime(request)
    view = await anyio.to_thread.run_sync(
        partial(update_settings, runtime.store, auth.org_id, changes, actor=auth.actor())
    )
    if "policy" in changes:
        await anyio.to_thread.run_sync(push_policy, runtime.store, runtime.settings, runtime.channel, auth.org_id)
    if changes.get("refuse_drifted_relays") is True:
        # Connected relays that reported drift are flagged and disconnected now, not at their next hello.
        await anyio.to_thread.run_sync(
            enforce_drift_refusal, runtime.store, runtime.settings, runtime.channel, auth.org_id
        )
    return view
