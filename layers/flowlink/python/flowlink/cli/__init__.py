"""The `flowlink` command line: one entry point that dispatches to subcommand modules.

Each subcommand lives in its own module under ``flowlink.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
``(args) -> int`` returning the exit code. Modules are imported lazily by name so a
missing optional dependency breaks only its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# (module under flowlink.cli, subcommand name). Add a line here to add a subcommand.
SUBCOMMANDS: list[tuple[str, str]] = [
    ("shield_cmd", "shield"),
    ("local_cmd", "local"),
    ("crypto_cmd", "keygen, encrypt, decrypt"),
    ("secrets_cmd", "secrets"),
    ("approvals_cmd", "approve, deny, approvals, telegram"),
    ("audit_cmd", "audit"),
    ("admin_cmd", "admin"),
    ("keys_cmd", "keys, enrollment-token, relays"),
]

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowlink", description="FlowLink: governance gateway for AI coding agents")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name, _ in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"flowlink.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("flowlink.cli."):
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
