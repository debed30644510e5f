"""`flowlink keygen | encrypt | decrypt`: the sealed-box primitives for files and text.

Plaintext is read from a file or standard input, never from the command line, where it
would land in shell history and process listings. Private keys are written with mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path

from nacl.public import PrivateKey

from flowlink.cli import files
from flowlink.secret_box import SecretBoxError, decode_key, encode_key, generate_keypair, open_sealed, seal

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CRYPTO = 3

# The first line of the private key file keygen writes, so tools (and people) can tell it
# from the public key: both are one line of base64.
PRIVATE_KEY_LABEL = "# flowlink sealed-box PRIVATE key: keep it secret; encrypt to box.pub, never to this file"


def register(subparsers: argparse._SubParsersAction) -> None:
    keygen = subparsers.add_parser("keygen", help="create an X25519 key pair for sealed-box secrets")
    keygen.add_argument("--out", default=".", help="directory for box.key (private, 0600) and box.pub")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    keygen.set_defaults(func=_keygen)

    encrypt = subparsers.add_parser("encrypt", help="encrypt stdin or a file to a public key")
    encrypt.add_argument("--to", required=True, help="recipient public key: a .pub file or the base64 key itself")
    encrypt.add_argument("--in", dest="input", default="-", help="plaintext file (default: standard input)")
    encrypt.set_defaults(func=_encrypt)

    decrypt = subparsers.add_parser("decrypt", help="decrypt a ciphertext document with a private key file")
    decrypt.add_argument("--key", required=True, help="private key file (from `flowlink keygen`)")
    decrypt.add_argument("--in", dest="input", default="-", help="ciphertext document (default: standard input)")
    decrypt.set_defaults(func=_decrypt)


def _read_input(path: str, *, what: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return files.read_bytes(path, what=what)


def _key_lines(text: str) -> str:
    """The key in a key file: its text without the ``#`` label lines keygen writes."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).strip()


def _is_private_key_file(path: Path, text: str) -> bool:
    """Whether ``path`` holds a private key: keygen's label, a sibling .pub holding the
    public half of this key, or keygen's shape for older unlabelled files (*.key, mode 0600)."""
    if PRIVATE_KEY_LABEL in text:
        return True
    try:
        public = encode_key(bytes(PrivateKey(decode_key(_key_lines(text))).public_key))
    except (SecretBoxError, ValueError):
        return False
    for sibling in {path.with_suffix(".pub"), path.parent / "box.pub"} - {path}:
        try:
            if _key_lines(sibling.read_text()) == public:
                return True
        except (OSError, UnicodeDecodeError):
            continue
    try:
        return path.suffix == ".key" and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
    except OSError:
        return False


def _recipient_key(value: str) -> bytes:
    """The public key ``--to`` names: a public key file, or the base64 key itself."""
    candidate = Path(value)
    if candidate.exists():
        text = files.read_text(candidate, what="recipient public key file")
        if _is_private_key_file(candidate, text):
            public_file = candidate.with_suffix(".pub")
            raise files.FileProblem(
                f"{value} is the private key; pass the .pub file ({public_file if public_file.exists() else 'box.pub'}) "
                "instead: nobody could open a ciphertext sealed to a private key, and it must stay secret"
            )
        return decode_key(_key_lines(text), what=f"recipient public key in {value}")
    try:
        return decode_key(value, what="recipient public key")
    except SecretBoxError:
        if os.sep in value or "/" in value or value.endswith((".pub", ".key")):
            raise files.FileProblem(
                f"recipient public key file {value} does not exist (--to takes a .pub file or the base64 key)"
            ) from None
        raise


def _keygen(args: argparse.Namespace) -> int:
    try:
        out = files.make_directory(args.out, what="key directory")
        private_path, public_path = out / "box.key", out / "box.pub"
        if private_path.exists() and not args.force:
            print(f"flowlink keygen: {private_path} exists; use --force to replace it", file=sys.stderr)
            return EXIT_USAGE
        pair = generate_keypair()
        files.write_text(private_path, f"{PRIVATE_KEY_LABEL}\n{encode_key(pair.private_key)}\n",
                         what="private key file", mode=0o600)
        files.write_text(public_path, encode_key(pair.public_key) + "\n", what="public key file")
    except files.FileProblem as exc:
        print(f"flowlink keygen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"private key: {private_path} (mode 0600)")
    print(f"public key:  {encode_key(pair.public_key)}")
    print(f"fingerprint: {pair.fingerprint}")
    return EXIT_OK


def _encrypt(args: argparse.Namespace) -> int:
    try:
        public_key = _recipient_key(args.to)
        document = seal(_read_input(args.input, what="plaintext file"), public_key)
    except files.FileProblem as exc:
        print(f"flowlink encrypt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SecretBoxError as exc:
        print(f"flowlink encrypt: {exc}", file=sys.stderr)
        return EXIT_CRYPTO
    print(json.dumps(document))
    return EXIT_OK


def _decrypt(args: argparse.Namespace) -> int:
    try:
        private_key = decode_key(_key_lines(files.read_text(args.key, what="private key file")), what="private key")
        plaintext = open_sealed(_read_input(args.input, what="ciphertext file").decode("utf-8", "replace"), private_key)
    except files.FileProblem as exc:
        print(f"flowlink decrypt: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SecretBoxError as exc:
        print(f"flowlink decrypt: {exc}", file=sys.stderr)
        return EXIT_CRYPTO
    sys.stdout.buffer.write(plaintext)
    sys.stdout.flush()
    return EXIT_OK
