"""Command line of the edge relay: ``flowlink-relay enroll | run | status`` (also ``python -m edge_relay``).

Maps the relay's typed errors to a one-line message on stderr and the exit code each
error carries (see ``edge_relay.errors``). Reads its environment only through
``edge_relay.settings.RelaySettings``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

import httpx

from edge_relay.daemon import STATUS_CONNECTED, RelayDaemon
from edge_relay.enroll import enroll
from edge_relay.errors import EXIT_FAILURE, EXIT_NOT_RUNNING, EXIT_OK, RelayError
from edge_relay.identity import RelayIdentity, RelayKeys, ensure_state_dir
from edge_relay.settings import RelaySettings

logger = logging.getLogger("edge_relay")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowlink-relay", description="FlowLink edge relay")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_state_dir(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--state-dir",
            help="where identity, keys and the ledger live "
            "(default $FLOWLINK_RELAY_STATE_DIR or ~/.flowlink/relay)",
        )

    enroll_cmd = commands.add_parser("enroll", help="enroll this host with a one-time token")
    enroll_cmd.add_argument("--api-url", required=True, help="gateway base URL, e.g. http://127.0.0.1:9080")
    enroll_cmd.add_argument("--token", required=True, help="one-time enrollment token (flk_enr_...)")
    enroll_cmd.add_argument("--name", help="relay name shown to agents (default: hostname)")
    enroll_cmd.add_argument("--force", action="store_true", help="replace an existing identity")
    add_state_dir(enroll_cmd)

    run_cmd = commands.add_parser("run", help="run the relay daemon")
    add_state_dir(run_cmd)
    run_cmd.add_argument("--health-host", help="health/metrics bind address (default 127.0.0.1)")
    run_cmd.add_argument(
        "--health-port", type=int, help="health/metrics port (default 9081; 0 = any free port)"
    )

    status_cmd = commands.add_parser("status", help="show enrollment and the running daemon's health")
    add_state_dir(status_cmd)
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )
    # websockets logs frames at DEBUG; frames carry envelopes and output.
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _cmd_enroll(settings: RelaySettings, args: argparse.Namespace) -> int:
    identity = enroll(settings, api_url=args.api_url, token=args.token, name=args.name, force=args.force)
    sys.stdout.write(
        f"enrolled relay {identity.relay_id} (org {identity.org_id}) as {identity.name!r}\n"
        f"identity stored in {settings.identity_path}\n"
        f"start it with: flowlink-relay run --state-dir {settings.state_dir}\n"
    )
    return EXIT_OK


def _cmd_run(settings: RelaySettings) -> int:
    ensure_state_dir(settings.state_dir)
    identity = RelayIdentity.load(settings.identity_path)
    keys = RelayKeys.load(settings.signing_key_path, settings.box_key_path)
    daemon = RelayDaemon(settings, identity, keys)
    return asyncio.run(daemon.run())


def _cmd_status(settings: RelaySettings) -> int:
    identity = RelayIdentity.load(settings.identity_path)
    report: dict = {
        "relay_id": identity.relay_id,
        "org_id": identity.org_id,
        "name": identity.name,
        "ws_url": identity.ws_url,
        "state_dir": str(settings.state_dir),
    }
    try:
        runtime = json.loads(settings.runtime_path.read_text())
        host, port = runtime["health_host"], int(runtime["health_port"])
    except (OSError, ValueError, KeyError, TypeError):
        report["daemon"] = "not running"
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return EXIT_NOT_RUNNING
    try:
        response = httpx.get(f"http://{host}:{port}/healthz", timeout=3)
        health = response.json()
    except (httpx.HTTPError, ValueError):
        report["daemon"] = f"not answering on {host}:{port}"
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return EXIT_NOT_RUNNING
    report["daemon"] = health
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    refusal = health.get("refusal") if isinstance(health, dict) else None
    if isinstance(refusal, dict):
        sys.stderr.write(f"flowlink-relay: the gateway refuses this relay ({refusal.get('code')}): {refusal.get('detail')}\n")
    return EXIT_OK if health.get("status") == STATUS_CONNECTED else EXIT_FAILURE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = RelaySettings.from_env().with_overrides(
            state_dir=args.state_dir,
            health_host=getattr(args, "health_host", None),
            health_port=getattr(args, "health_port", None),
        )
        _configure_logging(settings.log_level)
        if args.command == "enroll":
            return _cmd_enroll(settings, args)
        if args.command == "run":
            return _cmd_run(settings)
        return _cmd_status(settings)
    except RelayError as exc:
        sys.stderr.write(f"flowlink-relay: error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
