"""REST routes of binary attestation (RFC-002 layer 2) under /api/v1/attestation, mounted by
``flowlink.audit.api``'s router. Domain logic lives in ``flowlink.attestation``.

- ``GET /api/v1/attestation/report`` — gateway and relay digests and their status
- ``GET /api/v1/attestation/policy`` — the org's baselines
- ``POST /api/v1/attestation/policy`` (admin) — capture a baseline
- ``POST /api/v1/attestation/verify`` — ATTESTED or TAMPERED with the differing files
"""

from __future__ import annotations

from typing import Any, Literal

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flowlink.attestation import (
    COMPONENTS,
    compare,
    gateway_measurement,
    load_policy,
    save_baseline,
    validate_measurement,
)
from flowlink.errors import Conflict, InvalidInput, NotFound
from flowlink.gateway.deps import AdminKey, AnyKey, get_runtime
from flowlink.storage import find_relay

router = APIRouter(prefix="/api/v1/attestation", tags=["attestation"])



class PolicyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    component: Literal["gateway", "relay"]
    relay_id: str | None = Field(None, description="capture from this relay's last reported measurement")
    measurement: dict[str, Any] | None = Field(None, description="capture this measurement instead")


class VerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    component: Literal["gateway", "relay"]
    relay_id: str | None = None
    measurement: dict[str, Any] | None = None


def _relay_measurement(runtime: Any, org_id: str, relay_id: str | None) -> dict[str, Any] | None:
    if not relay_id:
        raise InvalidInput("relay_id is required for component 'relay' without a measurement")
    # An id or a name, like every other route (contracts §5); AgentNameAmbiguous for a shared name.
    found = find_relay(runtime.store, org_id, relay_id.strip())
    record = runtime.store.get_agent(org_id, found.relay_id, with_attestation=True) if found else None
    if record is None:
        raise NotFound(f"no relay {relay_id!r} in this org")
    return record.attestation


def _measurement_for(runtime: Any, org_id: str, body: PolicyRequest | VerifyRequest) -> dict[str, Any] | None:
    if body.measurement is not None:
        return validate_measurement(body.measurement)
    if body.component == "gateway":
        return gateway_measurement()
    return _relay_measurement(runtime, org_id, body.relay_id)


def _summary(baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if not baseline:
        return None
    return {"digest": baseline.get("digest"), "captured_at": baseline.get("captured_at"),
            "files": baseline.get("files", {})}


@router.get("/report")
async def report(request: Request, auth: AnyKey) -> dict[str, Any]:
    runtime = get_runtime(request)

    def build() -> dict[str, Any]:
        policy = load_policy(runtime.settings, auth.org_id)
        gateway = gateway_measurement()
        relays = []
        for record in runtime.store.list_agents(auth.org_id, with_attestation=True):
            reported = record.attestation if isinstance(record.attestation, dict) else None
            status = compare(policy["relay"], reported)["status"] if policy.get("relay") else None
            relays.append({"relay_id": record.relay_id, "name": record.name,
                           "digest": (reported or {}).get("digest"),
                           "measured_at": (reported or {}).get("measured_at"), "status": status})
        return {
            "gateway": {"digest": gateway["digest"], "measured_at": gateway["measured_at"],
                        "files": len(gateway["files"]),
                        "status": compare(policy["gateway"], gateway)["status"] if policy.get("gateway") else None},
            "relays": relays,
        }

    return await anyio.to_thread.run_sync(build)


@router.get("/policy")
async def get_policy(request: Request, auth: AnyKey) -> dict[str, Any]:
    runtime = get_runtime(request)
    policy = await anyio.to_thread.run_sync(lambda: load_policy(runtime.settings, auth.org_id))
    return {component: _summary(policy.get(component)) for component in COMPONENTS}


@router.post("/policy", status_code=201)
async def set_policy(body: PolicyRequest, request: Request, auth: AdminKey) -> dict[str, Any]:
    runtime = get_runtime(request)

    def capture() -> dict[str, Any]:
        measurement = _measurement_for(runtime, auth.org_id, body)
        if measurement is None:
            raise Conflict("that relay has not reported a measurement yet")
        baseline = save_baseline(runtime.settings, auth.org_id, body.component, measurement, auth.actor())
        return {"component": body.component, "digest": baseline["digest"], "files": len(baseline["files"]),
                "captured_at": baseline["captured_at"]}

    return await anyio.to_thread.run_sync(capture)


@router.post("/verify")
async def verify(body: VerifyRequest, request: Request, auth: AnyKey) -> dict[str, Any]:
    runtime = get_runtime(request)

    def check() -> dict[str, Any]:
        baseline = load_policy(runtime.settings, auth.org_id).get(body.component)
        return {"component": body.component, **compare(baseline, _measurement_for(runtime, auth.org_id, body))}

    return await anyio.to_thread.run_sync(check)
