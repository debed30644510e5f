"""API keys and the authenticated caller: minting, hashing, authenticating and revoking keys.

A key looks like ``flk_live_<random>``; it is shown once when created and stored only as
its SHA-256 hex (``api_keys.key_hash``), so a leaked table never leaks a usable key.
Scopes: ``agent`` (MCP tools), ``approver`` (answers approvals, issue 4) and ``admin``
(manages keys and enrollment; admin is allowed wherever a scope is required).
Never logs a key, only its ``key_id`` and display prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from flowlink.errors import AuthenticationFailed, InvalidInput, NotFound, PermissionDenied
from flowlink.storage import Store, utc_now_iso

logger = logging.getLogger(__name__)

KEY_PREFIX = "flk_live_"
SCOPE_AGENT = "agent"
SCOPE_APPROVER = "approver"
SCOPE_ADMIN = "admin"
SCOPES = (SCOPE_AGENT, SCOPE_APPROVER, SCOPE_ADMIN)
DISPLAY_PREFIX_LENGTH = 12
MAX_KEY_NAME_LENGTH = 100
# A presented key longer than this cannot be ours; refuse before hashing attacker input.
MAX_PRESENTED_KEY_LENGTH = 256


@dataclass(frozen=True)
class AuthContext:
    """Who is calling: the org every query is scoped to, and the key that proved it."""

    org_id: str
    key_id: str
    scope: str
    name: str

    def actor(self) -> dict[str, str]:
        """The ``actor`` of audit events: never the key itself."""
        return {"type": "api_key", "key_id": self.key_id, "scope": self.scope, "name": self.name}

    def allows(self, *scopes: str) -> bool:
        return self.scope == SCOPE_ADMIN or self.scope in scopes


def hash_secret(value: str) -> str:
    """SHA-256 hex of a key, credential or token: what the tables store instead of the value."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)


def create_api_key(
    store: Store, org_id: str, *, scope: str, name: str, created_by: str | None = None
) -> tuple[dict[str, Any], str]:
    """Mint a key for ``org_id``; returns (public record, plaintext key shown once).

    Raises InvalidInput for an unknown scope or a bad name.
    """
    if scope not in SCOPES:
        raise InvalidInput(f"scope must be one of {', '.join(SCOPES)}")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_KEY_NAME_LENGTH:
        raise InvalidInput(f"name must be a non-empty string of at most {MAX_KEY_NAME_LENGTH} characters")
    plaintext = generate_api_key()
    record = store.put_api_key(
        key_hash=hash_secret(plaintext),
        key_id=new_key_id(),
        org_id=org_id,
        scope=scope,
        name=name.strip(),
        prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
        created_at=utc_now_iso(),
        created_by=created_by,
    )
    logger.info("api key created", extra={"org_id": org_id, "key_id": record.key_id, "scope": scope})
    return key_to_dict(record), plaintext


def issue_api_key(
    store: Store,
    audit_log: Any,
    org_id: str,
    *,
    scope: str,
    name: str,
    created_by: str | None,
    actor: dict[str, Any],
) -> tuple[dict[str, Any], str]:
    """``create_api_key`` plus its ``key.created`` audit event: how every caller mints a key.

    ``audit_log`` is the ``flowlink.audit.AuditStore`` of the key's stack (passed in, so a
    CLI talking to another stack's tables audits there too). The event carries the display
    prefix, never the key. Raises what ``create_api_key`` and ``AuditStore.append`` raise.
    """
    record, plaintext = create_api_key(store, org_id, scope=scope, name=name, created_by=created_by)
    audit_log.append(
        org_id,
        "key.created",
        {"key_id": record["key_id"], "scope": record["scope"], "name": record["name"], "prefix": record["prefix"]},
        actor=actor,
    )
    return record, plaintext


def key_to_dict(record: Any) -> dict[str, Any]:
    return {
        "key_id": record.key_id,
        "org_id": record.org_id,
        "scope": record.scope,
        "name": record.name,
        "prefix": record.prefix,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }


def extract_presented_key(headers: Any) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``x-api-key`` (headers are case-insensitive)."""
    authorization = (headers.get("authorization") or "").strip()
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    api_key = (headers.get("x-api-key") or "").strip()
    return api_key or None


def authenticate(store: Store, presented: str | None) -> AuthContext:
    """Resolve a presented key to its AuthContext.

    Raises AuthenticationFailed when the key is missing, malformed, unknown or revoked.
    """
    if not presented:
        raise AuthenticationFailed("missing API key: send 'Authorization: Bearer <key>' or 'x-api-key'")
    if not presented.startswith(KEY_PREFIX) or len(presented) > MAX_PRESENTED_KEY_LENGTH:
        raise AuthenticationFailed("invalid API key")
    key_hash = hash_secret(presented)
    record = store.get_api_key_by_hash(key_hash)
    # compare_digest keeps the final check constant-time even though the lookup is by hash.
    if record is None or not hmac.compare_digest(record.key_hash, key_hash):
        raise AuthenticationFailed("invalid API key")
    if record.revoked_at:
        raise AuthenticationFailed("API key revoked")
    return AuthContext(org_id=record.org_id, key_id=record.key_id, scope=record.scope, name=record.name)


def require_scope(auth: AuthContext, *scopes: str) -> None:
    """Raises PermissionDenied unless the caller's scope is one of ``scopes`` (admin always passes)."""
    if scopes and not auth.allows(*scopes):
        raise PermissionDenied(
            f"this operation needs a key with scope {' or '.join(scopes)}; yours is {auth.scope}"
        )


def list_api_keys(store: Store, org_id: str) -> list[dict[str, Any]]:
    return [key_to_dict(record) for record in store.list_api_keys(org_id)]


def revoke_api_key(store: Store, org_id: str, key_id: str) -> dict[str, Any]:
    """Revoke one of the org's keys (idempotent). Raises NotFound for a key of no or another org."""
    record = store.find_api_key(org_id, key_id)
    if record is None:
        raise NotFound(f"no API key {key_id!r} in this org")
    store.revoke_api_key(record, utc_now_iso())
    refreshed = store.find_api_key(org_id, key_id)
    return key_to_dict(refreshed or record)
