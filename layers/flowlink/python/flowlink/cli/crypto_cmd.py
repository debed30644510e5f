"""`flowlink keygen | encrypt | decrypt`: the sealed-box primitives for files and text.

Plaintext is read from a file or standard input, never from the command line, where it
would land in shell history and process listings. Private keys are written with mode 0600.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flowlink.secret_box import SecretBoxError, decode_key, encode_key, generate_keypair, open_sealed, seal

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CRYPTO = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    keygen = subparsers.add_parser("keygen", help="create an X25519 key pair for sealed-box secrets")
    keygen.add_argument("--out", default=".", help="directory for box.key (private, 0600) and box.pub")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key pair")
    keygen.set_defaults(func=_keygen)

    encrypt = subparsers.add_parser("encrypt", help="encrypt stdin or a file to a public key")
    encrypt.add_argument("--to", required=True, help="recipient public key: base64 text or a file containing it")
    encrypt.add_argument("--in", dest="input", default="-", help="plaintext file (default: standard input)")
    encrypt.set_defaults(func=_encrypt)

    decrypt = subparsers.add_parser("decrypt", help="decrypt a ciphertext document with a private key file")
    decrypt.add_argument("--key", required=True, help="private key file (from `flowlink keygen`)")
    decrypt.add_argument("--in", dest="input", default="-", help="ciphertext document (default: standard input)")
    decrypt.set_defaults(func=_decrypt)


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _load_key_text(value: str) -> str:
    candidate = Path(value)
    if candidate.is_file():
        return candidate.read_text().strip()
    return value


def _keygen(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / "box.key", out / "box.pub"
    if private_path.exists() and not args.force:
        print(f"flowlink keygen: {private_path} exists; use --force to replace it", file=sys.stderr)
        return EXIT_USAGE
    pair = generate_keypair()
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(encode_key(pair.private_key) + "\n")
    os.chmod(private_path, 0o600)
    public_path.write_text(encode_key(pair.public_key) + "\n")
    print(f"private key: {private_path} (mode 0600)")
    print(f"public key:  {encode_key(pair.public_key)}")
    print(f"fingerprint: {pair.fingerprint}")
    return EXIT_OK


def _encrypt(args: argparse.Namespace) -> int:
    try:
        public_key = decode_key(_load_key_text(args.to), what="recipient public key")
        document = seal(_read_input(args.input), public_key)
    except (SecretBoxError, OSError) as exc:
        print(f"flowlink encrypt: {exc}", file=sys.stderr)
        return EXIT_CRYPTO
    print(json.dumps(document))
    return EXIT_OK


def _decrypt(args: argparse.Namespace) -> int:
    try:
        private_key = decode_key(Path(args.key).read_text().strip(), what="private key")
        plaintext = open_sealed(_read_input(args.input).decode("utf-8", "replace"), private_key)
    except (SecretBoxError, OSError) as exc:
        print(f"flowlink decrypt: {exc}", file=sys.stderr)
        return EXIT_CRYPTO
    sys.stdout.buffer.write(plaintext)
    sys.stdout.flush()
    return EXIT_OK

