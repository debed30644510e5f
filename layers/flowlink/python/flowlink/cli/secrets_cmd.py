"""`flowlink secrets put | list | delete`: end-to-end encrypted secrets for relays.

``put`` reads the value from standard input (or a hidden prompt on a terminal), never from
the command line, encrypts it on this machine to each named relay's public key, and
uploads only ciphertext. The gateway cannot decrypt it; only those relays can.
Uses an admin key: --api-key, FLOWLINK_API_KEY, or the admin key in .flowlink/local.json.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from flowlink.cli.api_client import ApiClient, ApiError, add_connection_options
from flowlink.secret_box import SecretBoxError, decode_key, key_fingerprint, seal

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2

ARGV_VALUE_ADVICE = (
    "refusing a secret value on the command line (it would be kept in shell history and visible in "
    "process listings). Pipe it instead, e.g.:  printf %s \"$VALUE\" | flowlink secrets put NAME --agent RELAY"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("secrets", help="end-to-end encrypted secrets for relays")
    sub = parser.add_subparsers(dest="secrets_command", metavar="ACTION")

    put = sub.add_parser("put", help="encrypt a value from stdin for relays and upload the ciphertext")
    put.add_argument("name", help="UPPER_SNAKE_CASE name, used as $NAME in commands")
    put.add_argument("value", nargs="?", help=argparse.SUPPRESS)
    put.add_argument("--agent", action="append", required=True, help="relay id or name (repeat for several relays)")
    add_connection_options(put)
    put.set_defaults(func=_put)

    listing = sub.add_parser("list", help="names, relays, versions and who changed them (never values)")
    listing.add_argument("--json", action="store_true")
    add_connection_options(listing)
    listing.set_defaults(func=_list)

    delete = sub.add_parser("delete", help="delete a secret (later commands that need it fail clearly)")
    delete.add_argument("name")
    delete.add_argument("--agent", help="only for this relay")
    add_connection_options(delete)
    delete.set_defaults(func=_delete)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), EXIT_USAGE)[1])


def _read_value() -> bytes:
    if sys.stdin.isatty():
        return getpass.getpass("secret value (not echoed): ").encode("utf-8")
    data = sys.stdin.buffer.read()
    # A trailing newline from `echo` is almost never part of the secret.
    return data[:-1] if data.endswith(b"\n") else data


def _put(args: argparse.Namespace) -> int:
    if args.value is not None:
        print(f"flowlink secrets put: {ARGV_VALUE_ADVICE}", file=sys.stderr)
        return EXIT_USAGE
    value = _read_value()
    if not value:
        print("flowlink secrets put: empty value on stdin; nothing stored", file=sys.stderr)
        return EXIT_USAGE
    try:
        client = ApiClient.from_args(args, local_key_field="admin_key")
        ciphertexts = {}
        for agent in args.agent:
            recipient = client.request("GET", f"/api/v1/agents/{agent}/encryption-key")
            public = decode_key(recipient["box_public_key"], what="relay key")
            if key_fingerprint(public) != recipient["fingerprint"]:
                raise SecretBoxError("the gateway returned a key that does not match its fingerprint")
            ciphertexts[recipient["relay_id"]] = seal(value, public)
        result = client.request("PUT", f"/api/v1/secrets/{args.name}", json={"ciphertexts": ciphertexts})
    except (ApiError, SecretBoxError) as exc:
        print(f"flowlink secrets put: {exc}", file=sys.stderr)
        return EXIT_ERROR
    for item in result["stored"]:
        print(f"{item['name']} v{item['version']} stored for {item['relay_id']} (encrypted to {item['kid']})")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    try:
        result = ApiClient.from_args(args, local_key_field="admin_key").request("GET", "/api/v1/secrets")
    except ApiError as exc:
        print(f"flowlink secrets list: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    for item in result["secrets"]:
        print(f"{item['name']:<24} {item['relay_id']:<24} v{item['version']}  updated {item['updated_at']} by {item['updated_by']}")
    if not result["secrets"]:
        print("no secrets")
    return EXIT_OK


def _delete(args: argparse.Namespace) -> int:
    try:
        client = ApiClient.from_args(args, local_key_field="admin_key")
        params = {"agent": args.agent} if args.agent else None
        result = client.request("DELETE", f"/api/v1/secrets/{args.name}", params=params)
    except ApiError as exc:
        print(f"flowlink secrets delete: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"deleted {result['deleted']} ciphertext(s) of {args.name}")
    return EXIT_OK
