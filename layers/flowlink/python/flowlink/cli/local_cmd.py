"""`flowlink local up|status`: run the whole stack on this machine (DESIGN §4).

``up`` starts the emulator, provisions it from template.yaml, starts the gateway, mints dev
keys, enrolls and starts a relay, prints the MCP URL, keys and client configs, then waits:
Ctrl-C or SIGTERM stops every process it started. A taken port exits with code 2 and names
the port. ``status`` reads ``local.json`` and asks each component whether it answers. ``secret`` prints
a fresh control-plane secret for ``sam deploy`` (the JSON the template's ``SecretsId`` names).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from flowlink.local.client_configs import client_config_lines
from flowlink.local.processes import PortInUseError
from flowlink.local.stack import LocalStack, LocalStackError, StackConfig, probe_status, read_local_info
from flowlink.relay_protocol import generate_signing_key, private_key_to_pem
from flowlink.settings import ENV_AWS_ENDPOINT, ENV_TELEGRAM_BOT_TOKEN, ENV_TELEGRAM_WEBHOOK_SECRET

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_PORT_IN_USE = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("local", help="run the FlowLink stack on this machine")
    commands = parser.add_subparsers(dest="local_command", metavar="ACTION")

    up = commands.add_parser("up", help="start emulator, gateway and relay; Ctrl-C stops them")
    up.add_argument("--state-dir", default=".flowlink", help="keys, logs and local.json (default .flowlink)")
    up.add_argument("--gateway-port", type=int, default=9080)
    up.add_argument("--aws-port", type=int, default=4566, help="moto port (ignored with an external endpoint)")
    up.add_argument("--relay-health-port", type=int, default=9081)
    up.add_argument("--aws-endpoint", default=None,
                    help=f"use this AWS endpoint (LocalStack, AWS) instead of starting moto (default ${ENV_AWS_ENDPOINT})")
    up.add_argument("--stack-name", default="flowlink-local", help="table/bucket prefix (default flowlink-local)")
    up.add_argument("--relay-name", default=None, help="name of the local relay (default: hostname)")
    up.add_argument("--template", type=Path, default=None, help="SAM template to provision from (default: template.yaml)")
    up.add_argument("--moto-plugin", action="append", default=[], help="module whose install() runs inside moto")
    up.add_argument("--no-wait", action="store_true", help="start, print and stop at once (smoke test)")
    up.add_argument("--schedule-interval", type=float, default=None, metavar="SECONDS",
                    help="run the template's scheduled functions (the witness publisher) every SECONDS "
                         "instead of at their rate (5 minutes); 0 turns them off")
    up.set_defaults(func=run_up)

    status = commands.add_parser("status", help="show whether the local stack's components answer")
    status.add_argument("--state-dir", default=".flowlink")
    status.set_defaults(func=run_status)

    secret = commands.add_parser(
        "secret", help="print a fresh control-plane secret (JSON) for the template's SecretsId parameter"
    )
    secret.set_defaults(func=run_secret)

    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def _config(args: argparse.Namespace) -> StackConfig:
    return StackConfig(
        state_dir=Path(args.state_dir),
        gateway_port=args.gateway_port,
        aws_port=args.aws_port,
        relay_health_port=args.relay_health_port,
        aws_endpoint=args.aws_endpoint or os.environ.get(ENV_AWS_ENDPOINT) or None,
        stack_name=args.stack_name,
        relay_name=args.relay_name,
        template=args.template,
        moto_plugins=list(args.moto_plugin),
        schedule_interval=args.schedule_interval,
    )


# The Inspector preload, relative to the repository root (where template.yaml is).
INSPECTOR_PRELOAD = Path("tests/e2e/inspector_auth.cjs")


def run_up(args: argparse.Namespace) -> int:
    stack = LocalStack(_config(args))
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return  # already stopping: a second Ctrl-C must not abandon children half-stopped
        stop.set()
        # A signal during start-up interrupts the blocking waits; up() then stops what it started.
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            info = stack.up()
        except PortInUseError as exc:
            print(f"flowlink local up: {exc}", file=sys.stderr)
            return EXIT_PORT_IN_USE
        except LocalStackError as exc:
            print(f"flowlink local up: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("flowlink local up: interrupted during start-up; everything started was stopped", file=sys.stderr)
            return EXIT_OK
        print(render_banner(info, stack, waiting=not args.no_wait), flush=True)
        if args.no_wait:
            print("--no-wait: stopping the local stack again ...", flush=True)
            stack.down()
            print("stopped.", flush=True)
            return EXIT_OK
        try:
            while not stop.is_set():
                stop.wait(1.0)
                _report_deaths(stack)
        except KeyboardInterrupt:
            pass
        print("\nstopping the local stack ...", flush=True)
        stack.down()
        print("stopped.", flush=True)
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_reported_deaths: set[str] = set()


def _report_deaths(stack: LocalStack) -> None:
    for component in (stack.aws, stack.gateway, stack.relay):
        dead = component is not None and component.process is not None and not component.alive()
        if dead and component.name not in _reported_deaths:
            _reported_deaths.add(component.name)
            print(f"warning: {component.name} exited (code {component.process.returncode}); "
                  f"see {component.log_path}", file=sys.stderr, flush=True)


def inspector_command(mcp_url: str, api_key: str, preload: Path) -> str:
    """A one-line MCP Inspector CLI call that lists the tools with the dev key.

    Inspector 0.15.0 (the newest that runs on Node 20) has no header option for HTTP
    servers, so the repository's preload adds the Authorization header to its requests."""
    return (f'NODE_OPTIONS="--require {preload}" FLOWLINK_BEARER={api_key} '
            f"npx -y @modelcontextprotocol/inspector@0.15.0 --cli {mcp_url} --transport http --method tools/list")


def _telegram_line(stack: LocalStack) -> str:
    env = stack.gateway_env()
    if env.get(ENV_TELEGRAM_BOT_TOKEN) and env.get(ENV_TELEGRAM_WEBHOOK_SECRET):
        return ("  Telegram: bot token and webhook secret are set; register the webhook with "
                "`flowlink telegram setup --webhook-url <public URL>/telegram/webhook`.")
    return "  Telegram buttons: set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET, then `flowlink telegram setup`."


def _schedule_lines(stack: LocalStack) -> list[str]:
    runs = stack.schedules.runs if stack.schedules is not None else []
    if not runs:
        return ["Scheduled functions (the audit witness publisher) are off: `flowlink audit publish --org ...`.", ""]
    every = ", ".join(f"{run.logical_id} every {run.period:g} s" for run in runs)
    return [f"Scheduled functions run from this process as on AWS: {every} (logs/schedules.log).", ""]


def render_banner(info: dict[str, Any], stack: LocalStack, *, waiting: bool = True) -> str:
    state_dir = Path(info["state_dir"])
    lines = [
        "",
        "FlowLink local stack is up.",
        "",
        f"  MCP endpoint   {info['mcp_url']}",
        f"  REST API       {info['api_url']}/api/v1",
        f"  dashboard      {info['api_url']}/dashboard   (paste the approver key)",
        f"  AWS endpoint   {info['aws_endpoint']}" + ("   (moto, provisioned from template.yaml)" if stack.aws else ""),
        f"  relay          {info['relay_name']} ({info['relay_id']}), health at {info['relay_health_url']}",
        "",
        f"  dev API key    {info['api_key']}      (agents: exec, read, list, history ...)",
        f"  approver key   {info['approver_key']}      (humans: decide hard_ask approvals)",
        f"  admin key      {info['admin_key']}",
        "",
        "Approvals: a hard_ask command waits for a human. No Telegram bot is needed locally:",
        "  .venv/bin/flowlink approvals              # pending approvals (uses the approver key in local.json)",
        "  .venv/bin/flowlink approve <apr_id>       # or: flowlink deny <apr_id>",
        "  or the `approve` MCP tool / POST /api/v1/approvals/<id> with the approver key.",
        _telegram_line(stack),
        "",
        *_schedule_lines(stack),
        f"Everything above is also in {state_dir / 'local.json'}; logs are in {state_dir / 'logs'}.",
        "",
        "Ready-to-paste client configs:",
    ]
    lines += client_config_lines(info["mcp_url"], info["api_key"])
    preload = stack.template_path().resolve().parent / INSPECTOR_PRELOAD
    if preload.is_file():
        lines += ["", "Try it (MCP Inspector CLI):", "  " + inspector_command(info["mcp_url"], info["api_key"], preload)]
    if waiting:
        lines += ["", "Press Ctrl-C to stop everything."]
    return "\n".join(lines)


def control_plane_secret() -> dict[str, str]:
    """The SecretString template.yaml resolves through ``SecretsId``: a new Ed25519 signing
    key (PEM) and a new witness HMAC key. Nothing is stored; the caller pipes it to AWS."""
    return {
        "signing_key_pem": private_key_to_pem(generate_signing_key()),
        "witness_hmac_key": secrets.token_hex(32),
    }


def run_secret(_args: argparse.Namespace) -> int:
    print(json.dumps(control_plane_secret()))
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    info = read_local_info(args.state_dir)
    if info is None:
        print(f"no local stack: {Path(args.state_dir) / 'local.json'} does not exist (start one with `make up`)")
        return EXIT_FAILED
    states = probe_status(info)
    print(f"MCP endpoint {info['mcp_url']}")
    for component, state in states.items():
        print(f"  {component:<8} {state}")
    healthy = states["gateway"] == "up" and states["aws"] == "up" and states["relay"] == "connected"
    return EXIT_OK if healthy else EXIT_FAILED
