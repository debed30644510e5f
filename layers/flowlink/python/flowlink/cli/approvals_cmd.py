"""`flowlink approve <id>`, `flowlink deny <id>`, `flowlink approvals` and `flowlink telegram setup`.

Deciding uses an approver (or admin) key: from --api-key, FLOWLINK_API_KEY, or the
approver key `flowlink local up` wrote to .flowlink/local.json.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys

from flowlink.cli.api_client import ApiClient, ApiError, add_connection_options
from flowlink.settings import Settings
from flowlink.telegram import TelegramClient, TelegramError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    for verb in ("approve", "deny"):
        parser = subparsers.add_parser(verb, help=f"{verb} a pending hard_ask command")
        parser.add_argument("approval_id", help="apr_... (see `flowlink approvals`)")
        parser.add_argument("--comment", help="why (kept in the audit)")
        add_connection_options(parser)
        parser.set_defaults(func=_decide, decision=verb)

    listing = subparsers.add_parser("approvals", help="list approvals (pending by default)")
    listing.add_argument("--status", default="pending", choices=["pending", "approved", "denied", "timed_out", "failed", "cancelled"])
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_connection_options(listing)
    listing.set_defaults(func=_list)

    telegram = subparsers.add_parser("telegram", help="Telegram approvals")
    telegram_sub = telegram.add_subparsers(dest="telegram_command", metavar="ACTION")
    setup = telegram_sub.add_parser("setup", help="register the webhook and its secret with the Bot API")
    setup.add_argument("--webhook-url", required=True, help="public URL of POST /telegram/webhook")
    setup.add_argument("--secret", help="webhook secret (default: TELEGRAM_WEBHOOK_SECRET, else a new random one)")
    setup.set_defaults(func=_telegram_setup)
    telegram.set_defaults(func=lambda args: (telegram.print_help(sys.stderr), EXIT_USAGE)[1])


def _decide(args: argparse.Namespace) -> int:
    try:
        client = ApiClient.from_args(args, local_key_field="approver_key")
        body = {"decision": args.decision}
        if args.comment:
            body["comment"] = args.comment
        result = client.request("POST", f"/api/v1/approvals/{args.approval_id}", json=body)
    except ApiError as exc:
        print(f"flowlink {args.decision}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{result['approval_id']}: {result['status']} — {result['message']}")
    return EXIT_OK if result.get("recorded") else EXIT_ERROR


def _list(args: argparse.Namespace) -> int:
    try:
        client = ApiClient.from_args(args, local_key_field="approver_key")
        result = client.request("GET", "/api/v1/approvals", params={"status": args.status})
    except ApiError as exc:
        print(f"flowlink approvals: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    approvals = result.get("approvals", [])
    if not approvals:
        print(f"no {args.status} approvals")
    for item in approvals:
        print(f"{item['approval_id']}  {item['status']:<9} score {item['score']:>3}  {item['agent']}: {item['command']}")
        print(f"    {approval_detail(item)}")
    return EXIT_OK


def approval_detail(item: dict) -> str:
    """The second line of a listed approval: how to decide a pending one, who decided the rest."""
    decisions = item.get("decisions") or []
    if item["status"] == "pending":
        needed = int(item.get("needed") or 1)
        approved = [d.get("approver") for d in decisions if d.get("decision") == "approve"]
        names = f" ({', '.join(map(str, approved))})" if approved else ""
        progress = f"{len(approved)} of {needed} approvals{names}; " if needed > 1 else ""
        return (f"{progress}expires {item['expires_at']}; decide with: flowlink approve {item['approval_id']}"
                f"  |  flowlink deny {item['approval_id']}")
    who = ", ".join(f"{d.get('decision')} by {d.get('approver')} ({d.get('channel')})" for d in decisions)
    return f"{item['status']} at {item.get('decided_at') or item.get('expires_at')}" + (f": {who}" if who else "")


def _telegram_setup(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    if not settings.telegram_bot_token:
        print("flowlink telegram setup: set TELEGRAM_BOT_TOKEN (from @BotFather) first", file=sys.stderr)
        return EXIT_USAGE
    secret = args.secret or settings.telegram_webhook_secret or secrets.token_urlsafe(32)
    try:
        client = TelegramClient(settings.telegram_api_base, settings.telegram_bot_token)
        client.set_webhook(args.webhook_url, secret)
        info = client.get_webhook_info()
    except TelegramError as exc:
        print(f"flowlink telegram setup: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"webhook registered: {info.get('url') or args.webhook_url}")
    if not (args.secret or settings.telegram_webhook_secret):
        print("set this on the gateway so it accepts Telegram's calls:")
        print(f"  TELEGRAM_WEBHOOK_SECRET={secret}")
    return EXIT_OK
