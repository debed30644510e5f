"""Run-time secrets on the relay: open the sealed documents of one command and redact output.

The envelope's ``secrets`` claim maps NAME → a ciphertext document sealed to this relay's
X25519 key. They are opened only here, only for the command that names them, and go
into that command's environment (never its command line). Every value, and its
base64/hex/URL-encoded forms, is then replaced by ``[REDACTED:NAME]`` in stdout and
stderr before anything leaves the host. Values are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flowlink.redaction import Redactor, StreamRedactor
from flowlink.secret_box import SecretBoxError, open_sealed

SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
MAX_SECRETS = 32


class SecretInjectionError(ValueError):
    """A secret could not be opened; the command must not run (the reason names the secret)."""


def open_secrets(documents: Any, box_private_key: bytes) -> dict[str, str]:
    """NAME → plaintext for a command's ``secrets`` claim. Raises SecretInjectionError."""
    if not documents:
        return {}
    if not isinstance(documents, Mapping) or len(documents) > MAX_SECRETS:
        raise SecretInjectionError(f"secrets must be an object of at most {MAX_SECRETS} names")
    values: dict[str, str] = {}
    for name, document in documents.items():
        if not isinstance(name, str) or not SECRET_NAME.match(name):
            raise SecretInjectionError(f"invalid secret name {name!r}")
        try:
            plaintext = open_sealed(document, box_private_key)
        except SecretBoxError as exc:
            raise SecretInjectionError(f"secret {name} could not be opened on this relay: {exc}") from None
        try:
            value = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise SecretInjectionError(f"secret {name} is not UTF-8 text") from None
        if "\0" in value:
            raise SecretInjectionError(f"secret {name} contains a NUL byte")
        values[name] = value
    return values


def redact_output(text: str, redactor: Redactor, *, truncated: bool) -> str:
    """Redact captured output. When the capture was cut off at the output cap, the tail
    that could hold the start of a value is dropped too, so no partial secret leaves."""
    if not redactor.active or not text:
        return text
    if not truncated:
        return redactor.redact(text)
    stream = StreamRedactor(redactor)
    return stream.feed(text) + "[output truncated]"
