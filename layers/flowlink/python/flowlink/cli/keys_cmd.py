"""`flowlink keys list | create | revoke`, `flowlink enrollment-token NAME` and `flowlink relays
list | remove RELAY`: an org's keys, relay tokens and relays.

Thin clients of the gateway's REST API (``/api/v1/keys``, ``/api/v1/agents/enrollment-tokens``,
``/api/v1/agents``, docs/contracts.md §5) with an admin key: --api-key, FLOWLINK_API_KEY, or the admin key in
.flowlink/local.json. Unlike ``flowlink admin init`` they need no AWS credentials, and the
gateway audits each change under the admin key that made it. A new key or token is
printed once; the gateway keeps only its hash.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any
from urllib.parse import quote

from flowlink.auth import SCOPES
from flowlink.cli.api_client import ApiClient, ApiError, add_connection_options

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("keys", help="list, create and revoke the org's API keys (admin key)")
    sub = parser.add_subparsers(dest="keys_command", metavar="ACTION")

    listing = sub.add_parser("list", help="the org's keys, newest first (prefixes only, never keys)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(listing)
    listing.set_defaults(func=_list)

    create = sub.add_parser("create", help="mint a key and print it once")
    create.add_argument("--scope", required=True, choices=SCOPES,
                        help="agent: MCP tools; approver: decides approvals; admin: manages the org")
    create.add_argument("--name", required=True, help="who or what holds it, e.g. ci or alice")
    create.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(create)
    create.set_defaults(func=_create)

    revoke = sub.add_parser("revoke", help="revoke a key at once (idempotent)")
    revoke.add_argument("key_id", help="key_... (see `flowlink keys list`)")
    add_connection_options(revoke)
    revoke.set_defaults(func=_revoke)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), EXIT_USAGE)[1])

    token = subparsers.add_parser("enrollment-token", help="mint a one-time token to enroll a relay (admin key)")
    token.add_argument("name", help="the relay's name (letters, digits, '.', '_', '-')")
    token.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(token)
    token.set_defaults(func=_enrollment_token)

    relays = subparsers.add_parser("relays", help="list the org's relays, or remove (decommission) one (admin key)")
    relays_sub = relays.add_subparsers(dest="relays_command", metavar="ACTION")
    relay_list = relays_sub.add_parser("list", help="the org's relays: name, id, status")
    relay_list.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(relay_list)
    relay_list.set_defaults(func=_relays_list)
    remove = relays_sub.add_parser(
        "remove",
        help="decommission a relay: its credential is refused from now on and its name is free again",
    )
    remove.add_argument("relay", help="rly_... or the relay's name (a name several relays share needs the id)")
    remove.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(remove)
    remove.set_defaults(func=_relays_remove)
    relays.set_defaults(func=lambda args: (relays.print_help(sys.stderr), EXIT_USAGE)[1])


def _run(args: argparse.Namespace, what: str, method: str, path: str, render: Any, **kwargs: Any) -> int:
    """Call the gateway and print its answer: JSON with --json, else ``render(result, api_url)``."""
    try:
        client = ApiClient.from_args(args, local_key_field="admin_key")
        result = client.request(method, path, **kwargs)
    except ApiError as exc:
        print(f"flowlink {what}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(result, indent=2) if getattr(args, "json", False) else render(result, client.base_url))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    return _run(args, "keys list", "GET", "/api/v1/keys", _render_keys)


def _render_keys(result: dict[str, Any], _api_url: str) -> str:
    lines = []
    for key in result["keys"]:
        state = f"revoked {key['revoked_at']}" if key["revoked_at"] else "active"
        lines.append(
            f"{key['key_id']}  {key['scope']:<8} {key['prefix']}…  {key['name']:<24} created {key['created_at']}  {state}"
        )
    return "\n".join(lines) or "no keys"


def _create(args: argparse.Namespace) -> int:
    return _run(
        args, "keys create", "POST", "/api/v1/keys",
        lambda key, _: f"{key['scope']} key {key['key_id']} ({key['name']!r}), shown once:\n  {key['key']}",
        json={"scope": args.scope, "name": args.name},
    )


def _revoke(args: argparse.Namespace) -> int:
    return _run(
        args, "keys revoke", "DELETE", f"/api/v1/keys/{args.key_id}",
        lambda key, _: f"{key['key_id']} ({key['scope']}, {key['name']!r}) revoked at {key['revoked_at']}",
    )


def _enrollment_token(args: argparse.Namespace) -> int:
    return _run(
        args, "enrollment-token", "POST", "/api/v1/agents/enrollment-tokens", _render_token, json={"name": args.name}
    )


def _render_token(token: dict[str, Any], api_url: str) -> str:
    return (
        f"one-time token for relay {token['name']!r}, expires {token['expires_at']}:\n  {token['token']}\n"
        f"on the server: flowlink-relay enroll --api-url {api_url} --token {token['token']} --name {token['name']}"
    )


def _relays_list(args: argparse.Namespace) -> int:
    return _run(args, "relays list", "GET", "/api/v1/agents", _render_relays)


def _render_relays(result: dict[str, Any], _api_url: str) -> str:
    lines = [
        f"{a['name']:<24} {a['relay_id']}  {a['status']}"
        + (f"  FLAGGED: {a.get('flag_detail') or a['flagged']}" if a.get("flagged") else "")
        for a in result["agents"]
    ]
    return "\n".join(lines) or "no relays enrolled"


def _relays_remove(args: argparse.Namespace) -> int:
    return _run(
        args, "relays remove", "DELETE", f"/api/v1/agents/{quote(args.relay, safe='')}",
        lambda r, _: f"relay {r['name']!r} ({r['relay_id']}) removed at {r['removed_at']}"
        + (f"; {len(r['commands_failed'])} waiting command(s) failed" if r["commands_failed"] else ""),
    )
