"""Approval grants: the proof a relay needs before it runs a hard_ask command.

When humans approve a hard_ask command, the gateway issues a short-lived JWT signed with
its Ed25519 key (asymmetric: relays hold only the public key pinned at enrollment, so no
relay can mint a grant). The grant is bound to exactly one command text (its SHA-256),
one relay, one command id and one approval id. The relay refuses a hard_ask command whose
grant is missing, expired, signed by another key, or bound to anything else.
No I/O here.
"""

from __future__ import annotations

import time
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from flowlink.relay_protocol import ENVELOPE_ALGORITHM, command_sha256, decode_gateway_token

GRANT_ISSUER = "flowlink-approvals"
GRANT_TYPE = "flowlink-approval-grant"
# Long enough to cover dispatch and re-sync after a brief reconnect, short enough that a
# leaked grant is useless soon after.
GRANT_TTL_SECONDS = 300
GRANT_LEEWAY_SECONDS = 10


class GrantError(Exception):
    """A grant failed verification; ``reason`` is safe to show to the agent and the audit."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def issue_grant(
    private_key: Ed25519PrivateKey,
    *,
    relay_id: str,
    org_id: str,
    command_id: str,
    approval_id: str,
    command: str,
    approvers: list[str],
    now: float | None = None,
    ttl: int = GRANT_TTL_SECONDS,
) -> str:
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": GRANT_ISSUER,
        "typ": GRANT_TYPE,
        "aud": relay_id,
        "sub": command_id,
        "jti": approval_id,
        "iat": issued,
        "exp": issued + ttl,
        "org_id": org_id,
        "sha256": command_sha256(command),
        "approvers": list(approvers),
    }
    return jwt.encode(claims, private_key, algorithm=ENVELOPE_ALGORITHM)


def verify_grant(
    token: str | None,
    public_key: Ed25519PublicKey,
    *,
    relay_id: str,
    command_id: str,
    command: str,
    now: float | None = None,
) -> dict[str, Any]:
    """Check that ``token`` approves exactly this command for this relay; return its claims.

    Raises GrantError naming what is wrong: missing, bad signature, expired, another
    relay, another command id, or another command text.
    """
    if not token:
        raise GrantError("hard_ask command has no approval grant")
    claims = decode_gateway_token(
        token,
        public_key,
        audience=relay_id,
        issuer=GRANT_ISSUER,
        leeway=GRANT_LEEWAY_SECONDS,
        options={
            "require": ["iss", "aud", "sub", "jti", "exp", "iat", "sha256", "typ"],
            "verify_exp": now is None,
        },
        error=GrantError,
        label="approval grant",
        other_audience="approval grant is for another relay",
    )
    if now is not None and claims["exp"] + GRANT_LEEWAY_SECONDS < now:
        raise GrantError("approval grant expired")
    if claims.get("typ") != GRANT_TYPE:
        raise GrantError("token is not an approval grant")
    if claims["sub"] != command_id:
        raise GrantError("approval grant is for another command id")
    if claims["sha256"] != command_sha256(command):
        raise GrantError("approval grant does not match this command text")
    return claims
