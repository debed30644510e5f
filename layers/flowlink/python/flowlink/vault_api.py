"""REST routes for zero-trust secrets (mounted by the gateway app). Ciphertext only.

- ``GET    /api/v1/agents/{agent}/encryption-key`` — the relay's X25519 public key and fingerprint.
- ``GET    /api/v1/secrets``                       — names, relays, versions, who and when.
- ``PUT    /api/v1/secrets/{name}``                — ``{"ciphertexts": {relay: document}}`` (admin key).
- ``DELETE /api/v1/secrets/{name}[?agent=relay]``  — (admin key).

There is no route that returns a secret's value or ciphertext: nobody reads secrets back.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from flowlink.gateway.deps import AdminKey, AnyKey, get_runtime
from flowlink.vault import Vault

router = APIRouter()



class PutSecretBody(BaseModel):
    ciphertexts: dict[str, Any] = Field(description="relay id or name → ciphertext document from `flowlink encrypt`")


def vault_for(request: Request) -> Vault:
    runtime = get_runtime(request)
    return Vault(runtime.settings, runtime.store)


@router.get("/api/v1/agents/{agent}/encryption-key")
async def encryption_key(request: Request, agent: str, auth: AnyKey) -> dict[str, Any]:
    return await anyio.to_thread.run_sync(vault_for(request).recipient_key, auth.org_id, agent)


@router.get("/api/v1/secrets")
async def list_secrets(request: Request, auth: AnyKey) -> dict[str, Any]:
    items = await anyio.to_thread.run_sync(vault_for(request).list, auth.org_id)
    return {"secrets": [item.to_dict() for item in items]}


@router.put("/api/v1/secrets/{name}")
async def put_secret(request: Request, name: str, body: PutSecretBody, auth: AdminKey) -> dict[str, Any]:
    stored = await anyio.to_thread.run_sync(
        partial(vault_for(request).put, auth.org_id, name, body.ciphertexts, actor=auth)
    )
    return {"stored": [item.to_dict() for item in stored]}


@router.delete("/api/v1/secrets/{name}")
async def delete_secret(request: Request, name: str, auth: AdminKey, agent: str | None = None) -> dict[str, Any]:
    deleted = await anyio.to_thread.run_sync(
        partial(vault_for(request).delete, auth.org_id, name, actor=auth, relay_ref=agent)
    )
    return {"deleted": deleted}
