"""The relay's identity on disk: its keys and what enrollment returned (docs/contracts.md §5).

The state dir holds, all mode 0600 in a 0700 directory:
- ``signing_key.pem``: Ed25519 private key (PKCS#8 PEM) the relay identifies itself with;
- ``box_key.b64``: X25519 private key (raw, base64) secrets are sealed to (issue 6);
- ``identity.json``: relay_id, org_id, relay_credential, ws_url and the PINNED gateway
  public key every command envelope is verified against.

Files are written atomically (temp file, fsync, rename) so a crash never leaves half an
identity. This module never logs key material or the credential.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from flowlink import relay_protocol, secret_box
from nacl.public import PrivateKey

from edge_relay.errors import IdentityError

IDENTITY_FIELDS = ("relay_id", "org_id", "relay_credential", "ws_url", "gateway_public_key")


def ensure_state_dir(state_dir: Path) -> None:
    """Create the state dir (0700) if needed; tighten its mode if it is ours and looser."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.chmod(state_dir, 0o700)
    except PermissionError:
        # A state dir owned by someone else (e.g. a packaged /var/lib path): keep going,
        # the files themselves are still written 0600.
        pass


def write_private_file(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600 (never briefly world-readable)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def b64_public_signing_key(key: Ed25519PrivateKey) -> str:
    """Raw 32-byte Ed25519 public key, standard base64: the form enrollment and hello carry."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True)
class RelayKeys:
    """The relay's two private keys."""

    signing_key: Ed25519PrivateKey
    box_key: secret_box.BoxKeyPair

    @property
    def signing_public_key_b64(self) -> str:
        return b64_public_signing_key(self.signing_key)

    @property
    def box_public_key_b64(self) -> str:
        return secret_box.encode_key(self.box_key.public_key)

    @classmethod
    def generate(cls) -> RelayKeys:
        return cls(signing_key=relay_protocol.generate_signing_key(), box_key=secret_box.generate_keypair())

    def save(self, signing_key_path: Path, box_key_path: Path) -> None:
        write_private_file(
            signing_key_path, relay_protocol.private_key_to_pem(self.signing_key).encode("ascii")
        )
        write_private_file(
            box_key_path, (secret_box.encode_key(self.box_key.private_key) + "\n").encode("ascii")
        )

    @classmethod
    def load(cls, signing_key_path: Path, box_key_path: Path) -> RelayKeys:
        """Raises IdentityError when a key file is missing or damaged."""
        try:
            signing = relay_protocol.private_key_from_pem(signing_key_path.read_bytes())
            private = secret_box.decode_key(box_key_path.read_text(encoding="ascii"), what="box key")
            box = secret_box.BoxKeyPair(private, bytes(PrivateKey(private).public_key))
        except FileNotFoundError as exc:
            raise IdentityError(
                f"relay key missing: {exc.filename}; run `flowlink-relay enroll` first"
            ) from exc
        except (ValueError, TypeError) as exc:
            raise IdentityError(f"relay key file is damaged: {exc}") from exc
        return cls(signing_key=signing, box_key=box)


@dataclass(frozen=True)
class RelayIdentity:
    """What the gateway gave this relay at enrollment (docs/contracts.md §5)."""

    relay_id: str
    org_id: str
    relay_credential: str
    ws_url: str
    gateway_public_key: str  # PEM, pinned: envelopes signed by any other key are refused
    name: str | None = None
    enrolled_at: str | None = None

    def gateway_key(self) -> Ed25519PublicKey:
        return relay_protocol.public_key_from_pem(self.gateway_public_key)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> RelayIdentity:
        """Raises IdentityError when a required field is missing or not a non-empty string."""
        if not isinstance(data, dict):
            raise IdentityError("identity.json must hold a JSON object")
        missing = [f for f in IDENTITY_FIELDS if not isinstance(data.get(f), str) or not data.get(f)]
        if missing:
            raise IdentityError("identity.json lacks " + ", ".join(missing))
        identity = cls(
            relay_id=data["relay_id"],
            org_id=data["org_id"],
            relay_credential=data["relay_credential"],
            ws_url=data["ws_url"],
            gateway_public_key=data["gateway_public_key"],
            name=data.get("name") if isinstance(data.get("name"), str) else None,
            enrolled_at=data.get("enrolled_at") if isinstance(data.get("enrolled_at"), str) else None,
        )
        try:
            identity.gateway_key()
        except ValueError as exc:
            raise IdentityError(f"identity.json gateway_public_key is not an Ed25519 PEM key: {exc}") from exc
        if not identity.ws_url.startswith(("ws://", "wss://")):
            raise IdentityError("identity.json ws_url must start with ws:// or wss://")
        return identity

    def save(self, path: Path) -> None:
        write_private_file(
            path, (json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n").encode("utf-8")
        )

    @classmethod
    def load(cls, path: Path) -> RelayIdentity:
        """Raises IdentityError when the file is missing or malformed."""
        try:
            raw = path.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise IdentityError(
                f"not enrolled: {path} does not exist; run `flowlink-relay enroll` first"
            ) from exc
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise IdentityError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_json(data)
