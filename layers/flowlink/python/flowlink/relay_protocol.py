"""The gateway↔relay wire protocol: message names, command ids, the signed command envelope
and the signed org policy document.

Shared by the gateway (which signs) and the edge relay (which verifies), so both sides
agree byte for byte. See docs/contracts.md §6–8. No I/O here.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
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
ACTION_POLICY_REQUEST = "policy_request"
RELAY_ACTIONS = frozenset(
    {ACTION_HELLO, ACTION_HEARTBEAT, ACTION_SYNC, ACTION_ACK, ACTION_RESULT, ACTION_POLICY_REQUEST}
)

# Gateway -> relay message types.
TYPE_COMMAND = "command"
TYPE_WELCOME = "welcome"
TYPE_HEARTBEAT_ACK = "heartbeat_ack"
TYPE_ERROR = "error"
TYPE_POLICY = "policy"

# The ``typ`` claim of a policy document: no envelope or grant carries it, so none of the
# three token kinds the gateway key signs can pass for another.
POLICY_DOCUMENT_TYPE = "flowlink-org-policy"
MAX_POLICY_VERSION_CHARS = 200
# A policy document travels in one WebSocket message, and API Gateway allows 128 KB per
# message. The JWT is base64 (4/3) of JSON, so this much JSON-escaped text leaves room for
# the other claims, the signature and the message around it.
MAX_POLICY_TEXT_JSON_CHARS = 90_000
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")

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


class PolicyDocumentError(Exception):
    """A policy document failed verification; ``reason`` is safe to log and report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PolicyRef:
    """Which org policy judges a command: its version and the SHA-256 of its text.

    ``sha256`` None names the built-in default policy (the org has set none); then
    ``version`` is informational, because each engine build carries its own default.
    """

    version: str
    sha256: str | None

    def to_claim(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256}

    @classmethod
    def from_claim(cls, value: Any) -> PolicyRef:
        """Raises ValueError for anything but ``{"version": str, "sha256": hex64 | None}``."""
        if not isinstance(value, dict) or set(value) != {"version", "sha256"}:
            raise ValueError("policy claim must be an object with version and sha256")
        version, digest = value["version"], value["sha256"]
        if not isinstance(version, str) or not 0 < len(version) <= MAX_POLICY_VERSION_CHARS:
            raise ValueError("policy version must be a non-empty string")
        if digest is not None and (not isinstance(digest, str) or not _SHA256_HEX.match(digest)):
            raise ValueError("policy sha256 must be 64 lowercase hex digits or null")
        return cls(version=version, sha256=digest)


@dataclass(frozen=True)
class PolicyDocument:
    """A verified org policy: the text a relay compiles, and what the gateway says it is."""

    org_id: str
    version: str
    sha256: str | None  # None: the built-in default policy (no text)
    text: str | None
    issued_at: int

    @property
    def ref(self) -> PolicyRef:
        return PolicyRef(version=self.version, sha256=self.sha256)


def policy_sha256(text: str) -> str:
    """Hex SHA-256 of a policy's text (UTF-8): the identity envelopes name it by."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def policy_ref(version: str, text: str | None) -> PolicyRef:
    """The reference to a policy with this compiled ``version``; no text means the default."""
    return PolicyRef(version=version, sha256=policy_sha256(text) if text else None)


def policy_fits_one_message(text: str) -> bool:
    """Whether a policy document carrying ``text`` fits one WebSocket message.

    Measured on the JSON-escaped text the document signs: non-ASCII characters count as
    their ``\\uXXXX`` escapes (6 or 12 characters), as they are sent.
    """
    return len(json.dumps(text)) <= MAX_POLICY_TEXT_JSON_CHARS


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


def decode_gateway_token(
    token: str,
    public_key: Ed25519PublicKey,
    *,
    audience: str,
    issuer: str,
    leeway: float,
    options: dict[str, Any],
    error: Callable[[str], Exception],
    label: str,
    other_audience: str,
) -> dict[str, Any]:
    """Decode a JWT signed with the gateway's key (EdDSA only) and return its claims.

    Every failure raises ``error(reason)``, the reason naming ``label``: expired, signature
    invalid, ``other_audience`` for a wrong ``aud``, or invalid (unsigned, malformed,
    another issuer, a required claim missing).
    """
    try:
        return jwt.decode(
            token,
            public_key,
            algorithms=[ENVELOPE_ALGORITHM],
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options=options,
        )
    except jwt.ExpiredSignatureError as exc:
        raise error(f"{label} expired") from exc
    except jwt.InvalidAudienceError as exc:
        raise error(other_audience) from exc
    except jwt.InvalidSignatureError as exc:
        raise error(f"{label} signature invalid") from exc
    except jwt.PyJWTError as exc:
        raise error(f"{label} invalid: {exc}") from exc


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
    policy: PolicyRef | None = None,
    now: float | None = None,
    ttl: int = ENVELOPE_TTL_SECONDS,
) -> str:
    """Sign one command for one relay. The result is a compact JWT (EdDSA).

    ``policy`` names the org policy the relay must judge with (contracts §8); an envelope
    without it is judged with the relay's built-in default policy.
    """
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
    if policy is not None:
        claims["policy"] = policy.to_claim()
    return jwt.encode(claims, private_key, algorithm=ENVELOPE_ALGORITHM)


def verify_envelope(
    token: str, public_key: Ed25519PublicKey, *, relay_id: str, now: float | None = None
) -> dict[str, Any]:
    """Verify an envelope addressed to ``relay_id`` and return its claims.

    Raises EnvelopeError for a bad signature, wrong audience or issuer, expiry, a missing
    claim, an unknown operation, a ``sha256`` that does not match the command, or a
    malformed ``policy`` claim.
    """
    options: dict[str, Any] = {"require": ["iss", "aud", "jti", "iat", "exp", "sha256", "op"]}
    if now is not None:
        options.update(verify_exp=False, verify_iat=False)
    claims = decode_gateway_token(
        token,
        public_key,
        audience=relay_id,
        issuer=ENVELOPE_ISSUER,
        leeway=ENVELOPE_LEEWAY_SECONDS,
        options=options,
        error=EnvelopeError,
        label="envelope",
        other_audience="envelope addressed to another relay",
    )
    if now is not None and claims["exp"] + ENVELOPE_LEEWAY_SECONDS < now:
        raise EnvelopeError("envelope expired")
    if claims.get("op") not in OPERATIONS:
        raise EnvelopeError(f"unknown operation {claims.get('op')!r}")
    if command_sha256(str(claims.get("command", ""))) != claims["sha256"]:
        raise EnvelopeError("command does not match its sha256")
    if "policy" in claims:
        try:
            PolicyRef.from_claim(claims["policy"])
        except ValueError as exc:
            raise EnvelopeError(f"envelope policy claim invalid: {exc}") from exc
    return claims


def envelope_policy(claims: dict[str, Any]) -> PolicyRef | None:
    """The policy a verified envelope names, or None (an envelope from before contracts §8)."""
    if "policy" not in claims:
        return None
    return PolicyRef.from_claim(claims["policy"])


def sign_policy_document(
    private_key: Ed25519PrivateKey,
    *,
    relay_id: str,
    org_id: str,
    version: str,
    text: str | None,
    now: float | None = None,
) -> str:
    """Sign the org's policy for one relay (contracts §8). ``text`` None: the default policy.

    No expiry: a document only says "this text is policy ``version``". Which policy judges
    a command is named by the command's own short-lived envelope, so replaying an old
    document can never make a relay use it.
    """
    claims: dict[str, Any] = {
        "iss": ENVELOPE_ISSUER,
        "typ": POLICY_DOCUMENT_TYPE,
        "aud": relay_id,
        "iat": int(now if now is not None else time.time()),
        "org_id": org_id,
        "policy_version": version,
        "policy_sha256": policy_sha256(text) if text else None,
        "policy_text": text or None,
    }
    return jwt.encode(claims, private_key, algorithm=ENVELOPE_ALGORITHM)


def verify_policy_document(
    token: Any, public_key: Ed25519PublicKey, *, relay_id: str, org_id: str
) -> PolicyDocument:
    """Verify a policy document for this relay and org and return it.

    Raises PolicyDocumentError for anything but a document signed by ``public_key``
    (unsigned and foreign-key tokens included), addressed to ``relay_id`` in ``org_id``,
    whose text matches its ``policy_sha256``.
    """
    if not isinstance(token, str) or not token:
        raise PolicyDocumentError("policy document missing")
    claims = decode_gateway_token(
        token,
        public_key,
        audience=relay_id,
        issuer=ENVELOPE_ISSUER,
        leeway=ENVELOPE_LEEWAY_SECONDS,
        options={"require": ["iss", "aud", "iat", "typ"]},
        error=PolicyDocumentError,
        label="policy document",
        other_audience="policy document addressed to another relay",
    )
    if claims.get("typ") != POLICY_DOCUMENT_TYPE:
        raise PolicyDocumentError("not a policy document")
    if claims.get("org_id") != org_id:
        raise PolicyDocumentError("policy document is for another org")
    text, digest, version = claims.get("policy_text"), claims.get("policy_sha256"), claims.get("policy_version")
    try:
        ref = PolicyRef.from_claim({"version": version, "sha256": digest})
    except ValueError as exc:
        raise PolicyDocumentError(f"policy document invalid: {exc}") from exc
    if text is not None and not isinstance(text, str):
        raise PolicyDocumentError("policy document text must be a string")
    if (policy_sha256(text) if text else None) != ref.sha256:
        raise PolicyDocumentError("policy text does not match its sha256")
    return PolicyDocument(
        org_id=org_id, version=ref.version, sha256=ref.sha256, text=text or None, issued_at=int(claims["iat"])
    )
