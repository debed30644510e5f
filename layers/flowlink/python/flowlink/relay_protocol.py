"""The gateway↔relay wire protocol: message names, command ids and the signed command envelope.

Shared by the gateway (which signs) and the edge relay (which verifies), so both sides
agree byte for byte. See docs/contracts.md §6–7. No I/O here.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ENVELOPE_ISSUER = "flowlink-gateway"
ENVELOPE_ALGORITHM = "EdDSA"
ENVELOPE_TTL_SECONDS = 300
# Clock skew tolerated between gateway and relay when checking iat/exp.
ENVELOPE_LEEWAY_SECONDS = 30

# Relay -> gateway actions.
ACTION_HELLO = "hello"
ACTION_HEARTBEAT = "heartbeat"
ACTION_SYNC = "sync"
ACTION_ACK = "ack"
ACTION_RESULT = "result"
RELAY_ACTIONS = frozenset({ACTION_HELLO, ACTION_HEARTBEAT, ACTION_SYNC, ACTION_ACK, ACTION_RESULT})

# Gateway -> relay message types.
TYPE_COMMAND = "command"
TYPE_WELCOME = "welcome"
TYPE_HEARTBEAT_ACK = "heartbeat_ack"
TYPE_ERROR = "error"

# Operations a command envelope can carry.
OP_EXEC = "exec"
OP_READ = "read"
OP_LIST = "list"
OP_SYSINFO = "sysinfo"
OPERATIONS = frozenset({OP_EXEC, OP_READ, OP_LIST, OP_SYSINFO})

# Result statuses a relay reports.
RESULT_COMPLETED = "completed"
RESULT_REFUSED = "refused"
RESULT_TIMEOUT = "timeout"
RESULT_FAILED = "failed"
RESULT_STATUSES = frozenset({RESULT_COMPLETED, RESULT_REFUSED, RESULT_TIMEOUT, RESULT_FAILED})


class EnvelopeError(Exception):
    """A command envelope failed verification; ``reason`` is safe to report back."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def command_sha256(command: str) -> str:
    """Hex SHA-256 of the command text (UTF-8), the value grants and envelopes bind to."""
    return hashlib.sha256(command.encode("utf-8", "surrogatepass")).hexdigest()


def new_command_id() -> str:
    return "cmd_" + secrets.token_hex(16)


def derive_command_id(org_id: str, relay_id: str, idempotency_key: str) -> str:
    """Deterministic id for an idempotent exec, so a retried call finds the first record."""
    material = f"{org_id}\0{relay_id}\0{idempotency_key}".encode()
    return "cmd_" + hashlib.sha256(material).hexdigest()[:32]


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_to_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def private_key_from_pem(pem: str | bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("signing key must be an Ed25519 private key")  # noqa: TRY004 - bad key material is a value error to callers
    return key


def public_key_to_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode(
        "ascii"
    )


def public_key_from_pem(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("gateway public key must be an Ed25519 public key")  # noqa: TRY004 - as above
    return key


def sign_envelope(
    private_key: Ed25519PrivateKey,
    *,
    relay_id: str,
    org_id: str,
    command_id: str,
    op: str = OP_EXEC,
    command: str = "",
    path: str | None = None,
    cwd: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    gateway_verdict: dict[str, Any] | None = None,
    grant: str | None = None,
    secrets: dict[str, dict[str, Any]] | None = None,
    now: float | None = None,
    ttl: int = ENVELOPE_TTL_SECONDS,
) -> str:
    """Sign one command for one relay. The result is a compact JWT (EdDSA)."""
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": ENVELOPE_ISSUER,
        "aud": relay_id,
        "jti": command_id,
        "iat": issued,
        "exp": issued + ttl,
        "org_id": org_id,
        "op": op,
        "command": command,
        "sha256": command_sha256(command),
        "cwd": cwd,
        "timeout": timeout,
        "env": dict(env or {}),
        "gateway_verdict": gateway_verdict or {},
    }
    if path is not None:
        claims["path"] = path
    if grant is not None:
        claims["grant"] = grant
    if secrets:
        # Ciphertext documents sealed to this relay's key; only the relay can open them.
        claims["secrets"] = dict(secrets)
    return jwt.encode(claims, private_key, algorithm=ENVELOPE_ALGORITHM)


def verify_envelope(
    token: str, public_key: Ed25519PublicKey, *, relay_id: str, now: float | None = None
) -> dict[str, Any]:
    """Verify an envelope addressed to ``relay_id`` and return its claims.

    Raises EnvelopeError for a bad signature, wrong audience or issuer, expiry, a missing
    claim, an unknown operation, or a ``sha256`` that does not match the command.
    """
    options = {"require": ["iss", "aud", "jti", "iat", "exp", "sha256", "op"]}
    try:
        if now is None:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=[ENVELOPE_ALGORITHM],
                audience=relay_id,
                issuer=ENVELOPE_ISSUER,
                leeway=ENVELOPE_LEEWAY_SECONDS,
                options=options,
            )
        else:
            claims = jwt.decode(
                token,
                public_key,
                algorithms=[ENVELOPE_ALGORITHM],
                audience=relay_id,
                issuer=ENVELOPE_ISSUER,
                options={**options, "verify_exp": False, "verify_iat": False},
            )
            if claims["exp"] + ENVELOPE_LEEWAY_SECONDS < now:
                raise EnvelopeError("envelope expired")
    except jwt.ExpiredSignatureError as exc:
        raise EnvelopeError("envelope expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise EnvelopeError("envelope addressed to another relay") from exc
    except jwt.InvalidSignatureError as exc:
        raise EnvelopeError("envelope signature invalid") from exc
    except jwt.PyJWTError as exc:
        raise EnvelopeError(f"envelope invalid: {exc}") from exc
    if claims.get("op") not in OPERATIONS:
        raise EnvelopeError(f"unknown operation {claims.get('op')!r}")
    if command_sha256(str(claims.get("command", ""))) != claims["sha256"]:
        raise EnvelopeError("command does not match its sha256")
    return claims
