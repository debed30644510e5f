"""End-to-end encryption of secrets for relays: X25519 sealed boxes (libsodium via PyNaCl).

A secret is encrypted on the user's machine to the public key of the relay that will use
it; the control plane stores and forwards only the ciphertext document produced here and
can check that it is well formed and addressed to a registered key, but can never open it.
Only the relay, holding the private key, decrypts.

Ciphertext document (JSON, what the gateway stores)::

    {"v": 1, "alg": "x25519-sealedbox", "kid": "<recipient key fingerprint>", "ct": "<base64>"}

Never logs or returns plaintext except from ``open_sealed`` to its caller.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

ALGORITHM = "x25519-sealedbox"
FORMAT_VERSION = 1
# A sealed box adds an ephemeral public key (32 bytes) and a Poly1305 tag (16 bytes).
SEALED_BOX_OVERHEAD = 48
MAX_PLAINTEXT_BYTES = 64 * 1024


class SecretBoxError(ValueError):
    """A key or ciphertext is malformed, addressed to another key, or fails authentication."""


@dataclass(frozen=True)
class BoxKeyPair:
    private_key: bytes
    public_key: bytes

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(self.public_key)


def generate_keypair() -> BoxKeyPair:
    private = PrivateKey.generate()
    return BoxKeyPair(bytes(private), bytes(private.public_key))


def key_fingerprint(public_key: bytes) -> str:
    """``SHA256:<base64>`` of the raw public key, the form ssh users know."""
    digest = hashlib.sha256(public_key).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def decode_key(text: str, *, what: str = "key") -> bytes:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretBoxError(f"{what} is not valid base64") from exc
    if len(raw) != 32:
        raise SecretBoxError(f"{what} must be 32 bytes, got {len(raw)}")
    return raw


def seal(plaintext: bytes | str, recipient_public_key: bytes) -> dict[str, Any]:
    """Encrypt ``plaintext`` so only the holder of the matching private key can read it."""
    data = plaintext.encode("utf-8") if isinstance(plaintext, str) else plaintext
    if len(data) > MAX_PLAINTEXT_BYTES:
        raise SecretBoxError(f"secret larger than {MAX_PLAINTEXT_BYTES} bytes")
    ciphertext = SealedBox(PublicKey(recipient_public_key)).encrypt(data)
    return {
        "v": FORMAT_VERSION,
        "alg": ALGORITHM,
        "kid": key_fingerprint(recipient_public_key),
        "ct": base64.b64encode(ciphertext).decode("ascii"),
    }


def parse_document(document: dict[str, Any] | str) -> tuple[str, bytes]:
    """Check a ciphertext document's shape; return (recipient fingerprint, ciphertext bytes).

    This is all the gateway can and does check: it never holds a private key.
    """
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise SecretBoxError("ciphertext document is not JSON") from exc
    if not isinstance(document, dict):
        raise SecretBoxError("ciphertext document must be a JSON object")
    if document.get("v") != FORMAT_VERSION or document.get("alg") != ALGORITHM:
        raise SecretBoxError(f"unsupported ciphertext format (need v={FORMAT_VERSION}, alg={ALGORITHM})")
    kid = document.get("kid")
    if not isinstance(kid, str) or not kid.startswith("SHA256:"):
        raise SecretBoxError("ciphertext has no recipient key fingerprint")
    try:
        ciphertext = base64.b64decode(str(document.get("ct", "")), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SecretBoxError("ciphertext is not valid base64") from exc
    if len(ciphertext) <= SEALED_BOX_OVERHEAD:
        raise SecretBoxError("ciphertext is truncated")
    if len(ciphertext) > MAX_PLAINTEXT_BYTES + SEALED_BOX_OVERHEAD:
        raise SecretBoxError("ciphertext is too large")
    return kid, ciphertext


def open_sealed(document: dict[str, Any] | str, private_key: bytes) -> bytes:
    """Decrypt a ciphertext document with the recipient's private key.

    Raises SecretBoxError when the document is malformed, addressed to another key, or
    has been tampered with.
    """
    kid, ciphertext = parse_document(document)
    private = PrivateKey(private_key)
    if kid != key_fingerprint(bytes(private.public_key)):
        raise SecretBoxError("ciphertext was encrypted for another key")
    try:
        return SealedBox(private).decrypt(ciphertext)
    except CryptoError as exc:
        raise SecretBoxError("ciphertext failed authentication (tampered or corrupt)") from exc
