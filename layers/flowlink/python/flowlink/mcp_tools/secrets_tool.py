"""MCP tool ``secrets``: manage end-to-end encrypted secrets without ever seeing a value.

list, put (ciphertext documents only, made by `flowlink encrypt` or `flowlink secrets put`),
rotate (a new ciphertext version of an existing secret), delete, and key (the relay public key
to encrypt to). No action returns a value or a ciphertext: that operation does not exist.
Writing needs an admin key.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from flowlink.auth import SCOPE_ADMIN, require_scope
from flowlink.mcp_tools.common import call_domain, caller
from flowlink.vault import SecretNotFound, Vault


class SecretInfo(BaseModel):
    name: str
    relay_id: str
    version: int
    kid: str = Field(description="fingerprint of the relay key it is encrypted to")
    created_at: str
    created_by: str | None = None
    updated_at: str
    updated_by: str | None = None


class RecipientKey(BaseModel):
    relay_id: str
    name: str
    box_public_key: str
    fingerprint: str


class SecretsResult(BaseModel):
    action: str
    secrets: list[SecretInfo] = Field(default_factory=list)
    key: RecipientKey | None = None
    deleted: int | None = None


def _write(vault: Vault, auth, action: str, name: str, ciphertexts: dict[str, Any]) -> list:
    require_scope(auth, SCOPE_ADMIN)
    if action == "rotate" and not any(s.name == name for s in vault.list(auth.org_id)):
        raise SecretNotFound(f"no secret {name!r} to rotate; use action=put to create it")
    return vault.put(auth.org_id, name, ciphertexts, actor=auth)


def _delete(vault: Vault, auth, name: str, agent: str | None) -> int:
    require_scope(auth, SCOPE_ADMIN)
    return vault.delete(auth.org_id, name, actor=auth, relay_ref=agent)


def register(server: MCPServer, runtime) -> None:
    @server.tool(
        name="secrets",
        title="Encrypted secrets",
        description=(
            "End-to-end encrypted secrets for relays. action=list (names, versions, who/when), action=key "
            "(the relay public key to encrypt to), action=put / action=rotate (ciphertext documents only, "
            "keyed by relay; admin key), action=delete (admin key). Values are never readable through FlowLink: "
            "commands use them as $NAME and the relay injects them at run time."
        ),
        annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False),
    )
    async def secrets(
        action: Annotated[Literal["list", "key", "put", "rotate", "delete"], Field(description="what to do")],
        ctx: Context,
        name: Annotated[str | None, Field(description="secret name (UPPER_SNAKE_CASE)", max_length=128)] = None,
        agent: Annotated[str | None, Field(description="relay id or name (key, delete)", max_length=128)] = None,
        ciphertexts: Annotated[
            dict[str, dict[str, Any]] | None,
            Field(description="relay id or name -> ciphertext document {v, alg, kid, ct} (put, rotate)"),
        ] = None,
    ) -> SecretsResult:
        auth = caller(ctx)
        vault = Vault(runtime.settings, runtime.store)
        if action == "list":
            items = await call_domain(vault.list, auth.org_id)
            return SecretsResult(action=action, secrets=[SecretInfo.model_validate(i.to_dict()) for i in items])
        if action == "key":
            if not agent:
                raise ToolError("invalid_input: agent is required for action=key")
            key = await call_domain(vault.recipient_key, auth.org_id, agent)
            return SecretsResult(action=action, key=RecipientKey.model_validate(key))
        if not name:
            raise ToolError(f"invalid_input: name is required for action={action}")
        if action == "delete":
            return SecretsResult(action=action, deleted=await call_domain(_delete, vault, auth, name, agent))
        if not ciphertexts:
            raise ToolError(f"invalid_input: ciphertexts are required for action={action}")
        stored = await call_domain(_write, vault, auth, action, name, ciphertexts)
        return SecretsResult(action=action, secrets=[SecretInfo.model_validate(i.to_dict()) for i in stored])
