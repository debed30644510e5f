"""`flowlink admin init`: the first org and keys of a stack deployed with `sam deploy` (or LocalStack).

A freshly deployed gateway has no key yet, so nothing can go through its REST API: this
command writes straight to the stack's DynamoDB tables with the caller's own AWS
credentials (boto3's default chain: AWS_PROFILE, AWS_ACCESS_KEY_ID, SSO ...; the endpoint
from AWS_ENDPOINT_URL when set, never a built-in one). It finds the tables by
``--stack-name`` (the stack's ``TablePrefix`` output, and its ``HttpApiUrl``/``McpUrl`` for
the next steps) or by ``--table-prefix``, checks that every table exists before writing
anything, refuses an org name that exists unless ``--existing-org`` asks to add keys to
it, and prints the keys once (only their hashes are stored). Everything after that goes
through the REST API with the admin key: ``flowlink keys``, ``flowlink enrollment-token``.

Exit codes: 0 done; 1 AWS or stack error (no credentials, no such stack, missing tables:
nothing written); 2 usage (no region, a bad org or relay name: nothing written); 3 the org
exists and ``--existing-org`` was not given (nothing written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from flowlink.errors import FlowLinkError, InvalidInput, OrgExists

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_ORG_EXISTS = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("admin", help="set up a deployed stack with your AWS credentials")
    sub = parser.add_subparsers(dest="admin_command", metavar="ACTION")

    init = sub.add_parser(
        "init",
        help="create an org, its admin key and (optionally) an agent key and a relay enrollment token",
        description="Create the first org and keys of a deployed stack, straight in its DynamoDB tables.",
    )
    init.add_argument("--org", required=True, help="org name (refused if it exists, see --existing-org)")
    target = init.add_mutually_exclusive_group(required=True)
    target.add_argument("--stack-name", help="the `sam deploy` stack: table prefix and URLs from its outputs")
    target.add_argument("--table-prefix", help="the tables' prefix (FLOWLINK_TABLE_PREFIX; the stack name)")
    init.add_argument("--region", help="AWS region of the stack (default: AWS_REGION or your AWS config)")
    init.add_argument("--api-url", help="gateway base URL for the next steps (default: the stack's HttpApiUrl)")
    init.add_argument("--relay", metavar="NAME", help="also mint a one-time enrollment token (1 h) for relay NAME")
    init.add_argument("--no-agent-key", dest="agent_key", action="store_false", help="mint no agent key")
    init.add_argument(
        "--existing-org", action="store_true",
        help="the org exists: add a new admin key (and agent key, token) to it, e.g. after losing the admin key",
    )
    init.add_argument("--json", action="store_true", help="print the result as JSON")
    init.set_defaults(func=_init)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), EXIT_USAGE)[1])


def _init(args: argparse.Namespace) -> int:
    # Imported here: boto3 and the storage models are heavy, and other subcommands never need them.
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError
    from pynamodb.exceptions import PynamoDBException

    from flowlink.audit import AuditStore
    from flowlink.bootstrap import DeployedStack, describe_deployed_stack, init_org, require_stack_tables
    from flowlink.settings import ENV_AWS_ENDPOINT, Settings
    from flowlink.storage import Store

    session = boto3.session.Session(region_name=args.region)
    if not session.region_name:
        print("flowlink admin init: no AWS region: pass --region or set AWS_REGION", file=sys.stderr)
        return EXIT_USAGE
    tables_checked = False
    try:
        if args.stack_name:
            stack = describe_deployed_stack(session.client("cloudformation"), args.stack_name)
        else:
            stack = DeployedStack(table_prefix=args.table_prefix)
        settings = Settings(
            table_prefix=stack.table_prefix,
            region=session.region_name,
            aws_endpoint=os.environ.get(ENV_AWS_ENDPOINT) or None,
        )
        dynamodb = session.client("dynamodb")
        require_stack_tables(settings, dynamodb)
        tables_checked = True  # from here on a failure may leave part of the org behind
        result = init_org(
            Store(settings),
            AuditStore(settings=settings, client=dynamodb),
            args.org,
            agent_key=args.agent_key,
            relay_name=args.relay,
            existing=args.existing_org,
        )
    except OrgExists as exc:
        print(f"flowlink admin init: {exc.detail}.\n"
              "  To add keys to it: rerun with --existing-org, or use `flowlink keys create` with its admin key.",
              file=sys.stderr)
        return EXIT_ORG_EXISTS
    except InvalidInput as exc:
        print(f"flowlink admin init: {exc.detail}", file=sys.stderr)
        return EXIT_USAGE
    except FlowLinkError as exc:
        print(f"flowlink admin init: {exc.detail}", file=sys.stderr)
        return EXIT_ERROR
    except (BotoCoreError, ClientError, PynamoDBException) as exc:
        cause = getattr(exc, "cause", None) or exc
        hint = (
            "; if the org was created before this, add its keys with --existing-org"
            if tables_checked else "; nothing was written"
        )
        print(f"flowlink admin init: AWS error: {cause}{hint}", file=sys.stderr)
        return EXIT_ERROR
    api_url = (args.api_url or stack.api_url or "").rstrip("/") or None
    mcp_url = stack.mcp_url or (api_url + "/mcp" if api_url else None)
    result.update(
        table_prefix=stack.table_prefix, region=session.region_name, api_url=api_url, mcp_url=mcp_url
    )
    print(json.dumps(result, indent=2) if args.json else render_init(result))
    return EXIT_OK


def render_init(result: dict[str, Any]) -> str:
    """What `admin init` prints: the keys, once, and the exact next commands."""
    from flowlink.local.client_configs import client_config_lines

    api_url = result["api_url"] or "<HttpApiUrl>"
    mcp_url = result["mcp_url"] or "<McpUrl>"
    admin, agent, enrollment = result["admin_key"], result["agent_key"], result["enrollment"]
    verb = "created" if result["org_created"] else "already existed; new keys added"
    lines = [
        f"Org {result['org_name']!r} ({result['org_id']}) {verb} in stack {result['table_prefix']} ({result['region']}).",
        "",
        "Shown once, only their hashes are stored: keep them in a password manager or secret store.",
        f"  admin key      {admin['key']}   ({admin['key_id']}: keys, enrollment tokens, org settings)",
    ]
    if agent:
        lines.append(f"  agent key      {agent['key']}   ({agent['key_id']}: for MCP clients)")
    if enrollment:
        lines.append(
            f"  enrollment     {enrollment['token']}   (relay {enrollment['name']!r}, one-time, "
            f"expires {enrollment['expires_at']})"
        )
    lines += [
        "",
        "Next steps:",
        f"  export FLOWLINK_API_URL={api_url}",
        "  read -rs FLOWLINK_API_KEY && export FLOWLINK_API_KEY   # paste the admin key: kept out of shell history",
        "",
        "  On each server, enroll a relay (a token is one-time and lasts 1 h):",
    ]
    if enrollment:
        lines.append(
            f"    flowlink-relay enroll --api-url {api_url} --token {enrollment['token']} --name {enrollment['name']}"
        )
    else:
        lines += [
            "    flowlink enrollment-token NAME        # prints a token for relay NAME",
            f"    flowlink-relay enroll --api-url {api_url} --token <token> --name NAME",
        ]
    lines += [
        "    flowlink-relay run",
        "  More tokens:   flowlink enrollment-token NAME",
        "  More keys:     flowlink keys create --scope agent|approver|admin --name NAME",
        "  List, revoke:  flowlink keys list; flowlink keys revoke KEY_ID",
    ]
    if agent:
        lines += ["", f"MCP endpoint {mcp_url}; ready-to-paste client configs with the agent key:"]
        lines += client_config_lines(mcp_url, agent["key"])
    return "\n".join(lines)
