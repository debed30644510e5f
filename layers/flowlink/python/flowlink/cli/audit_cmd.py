"""`flowlink audit`: export the audit log, verify an export offline, check proofs and integrity.

Subcommands:
    export --out FILE [--format jsonl|cef]   from the gateway (--api-url/--api-key, env or
                                             .flowlink/local.json, admin key) or, with
                                             --org, straight from the audit table
    verify FILE --public-key KEY [--hmac-key-file F] [--json]
                                             offline: no access to FlowLink servers
    verify-proof PROOF --public-key KEY      an inclusion proof (GET /api/v1/audit/proof/N)
                                             checked offline against its signed checkpoint
    integrity [--org ORG]                    the integrity report (gateway or table)
    public-key --out FILE                    the checkpoint-signing public key, as PEM
    publish --org ORG                        publish a witness and checkpoint now (table)

Exit codes of `verify` and `verify-proof` (docs/audit.md): 0 verified; 1 tampered (the
report names the first bad record); 2 usage error or unreadable file/key; 3 not a FlowLink
export / proof; 4 not anchored (no valid checkpoint covers the whole export, or a
checkpoint/witness was forged). `integrity` exits 0 when intact, 1 when not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from flowlink.cli import files

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_MALFORMED = 3
EXIT_UNANCHORED = 4


# What the --org paths (straight to the audit table) need from the environment.
DIRECT_ACCESS_ENV = ("AWS credentials and region (AWS_ENDPOINT_URL for the local emulator) and "
                     "FLOWLINK_TABLE_PREFIX (the stack name)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("audit", help="export and verify the tamper-evident audit log",
                                   description="Export the audit log and verify it offline.")
    sub = parser.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")

    export = sub.add_parser("export", help="write the log as JSON lines with checkpoints, or as CEF")
    export.add_argument("--out", required=True, help="output file ('-' for stdout)")
    export.add_argument("--format", choices=("jsonl", "cef"), default="jsonl")
    export.add_argument("--org", help="read the audit table directly (needs " + DIRECT_ACCESS_ENV + ")")
    _connection_options(export)
    export.set_defaults(func=_export)

    verify = sub.add_parser("verify", help="verify an export offline")
    verify.add_argument("file", help="the export (JSON lines)")
    verify.add_argument("--public-key", required=True, help="the gateway's Ed25519 public key (PEM file)")
    verify.add_argument("--hmac-key-file", help="also check the HMAC witness snapshots with this key file")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    verify.set_defaults(func=_verify)

    proof = sub.add_parser("verify-proof", help="verify an inclusion proof against its signed checkpoint")
    proof.add_argument("file", help="JSON from GET /api/v1/audit/proof/{seq}")
    proof.add_argument("--public-key", required=True, help="the gateway's Ed25519 public key (PEM file)")
    proof.set_defaults(func=_verify_proof)

    integrity = sub.add_parser("integrity", help="verify the stored chain and print the report")
    integrity.add_argument("--org", help="read the audit table directly instead of asking the gateway "
                                              "(needs " + DIRECT_ACCESS_ENV + ")")
    _connection_options(integrity)
    integrity.set_defaults(func=_integrity)

    public_key = sub.add_parser(
        "public-key", help="save the gateway's checkpoint-signing public key (PEM) for `verify`",
        description="Fetch the Ed25519 public key the gateway signs checkpoints with (GET "
                    "/api/v1/audit/public-key) and write it as PEM. It comes from the server being "
                    "audited: compare the printed key id with one obtained out of band (the deployer, "
                    "a relay's pinned key) before trusting a verification with it.")
    public_key.add_argument("--out", required=True, help="PEM file to write ('-' for stdout)")
    _connection_options(public_key)
    public_key.set_defaults(func=_public_key)

    publish = sub.add_parser(
        "publish", help="publish a witness snapshot and checkpoint of an org now",
        description="Publish a witness snapshot (HMAC) and a signed checkpoint of one org's chain, as the "
                    "scheduled witness publisher does. Reads the audit table and writes the witness bucket "
                    "directly, so it needs what that Lambda has: " + DIRECT_ACCESS_ENV + ", plus "
                    "FLOWLINK_WITNESS_BUCKET, FLOWLINK_WITNESS_HMAC_KEY and FLOWLINK_SIGNING_KEY or "
                    "FLOWLINK_SIGNING_KEY_FILE.")
    publish.add_argument("--org", required=True, help="the org id (org_...) whose chain to witness")
    publish.set_defaults(func=_publish)

    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), EXIT_USAGE)[1])


def _connection_options(parser: argparse.ArgumentParser) -> None:
    from flowlink.cli.api_client import add_connection_options

    add_connection_options(parser)


def _store():
    from flowlink.audit import default_store

    return default_store()


def _api(args: argparse.Namespace):
    from flowlink.cli.api_client import ApiClient

    return ApiClient.from_args(args, local_key_field="admin_key")


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"flowlink audit: {message}\n")
    return code


def _write_output(out: str, content: str, *, what: str, done: str) -> int:
    """Write ``content`` to the file ``out`` (then say ``done`` on stderr), or to stdout for '-'."""
    if out == "-":
        sys.stdout.write(content)
        return EXIT_OK
    try:
        files.write_text(out, content, what=what)
    except files.FileProblem as exc:
        return _fail(str(exc), EXIT_USAGE)
    sys.stderr.write(done + "\n")
    return EXIT_OK


def _aws_failure(exc: Exception) -> int:
    """A clear message for an AWS error on the --org paths (no traceback)."""
    from botocore.exceptions import ClientError, NoCredentialsError

    from flowlink.settings import get_settings

    if isinstance(exc, NoCredentialsError):
        return _fail(f"no AWS credentials: the --org paths need {DIRECT_ACCESS_ENV}", EXIT_USAGE)
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
        table = get_settings().table("audit")
        return _fail(f"the audit table {table!r} does not exist at this endpoint: check FLOWLINK_TABLE_PREFIX "
                     f"(the stack name) and AWS_ENDPOINT_URL/region", EXIT_USAGE)
    return _fail(f"AWS error: {exc} (the --org paths need {DIRECT_ACCESS_ENV})", EXIT_USAGE)


def _export(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from flowlink.audit.export import export_cef, export_jsonl
    from flowlink.cli.api_client import ApiError
    from flowlink.errors import FlowLinkError

    try:
        if args.org:
            import io

            buffer = io.StringIO()
            writer = export_jsonl if args.format == "jsonl" else export_cef
            count = writer(_store(), args.org, buffer)
            content = buffer.getvalue()
        else:
            body = _api(args).request("GET", "/api/v1/audit/export", params={"format": args.format})
            content, count = body["content"], body["records"]
    except (ApiError, FlowLinkError) as exc:
        return _fail(str(getattr(exc, "detail", exc)), EXIT_USAGE)
    except (BotoCoreError, ClientError) as exc:
        return _aws_failure(exc)
    return _write_output(args.out, content, what="export file", done=f"wrote {count} records to {args.out}")


def _load_public_key(path: str):
    from flowlink import relay_protocol

    return relay_protocol.public_key_from_pem(files.read_bytes(path, what="public key file"))


def _verify(args: argparse.Namespace) -> int:
    from flowlink.audit.export import ExportFormatError, verify_export

    try:
        public_key = _load_public_key(args.public_key)
        hmac_key = files.read_bytes(args.hmac_key_file, what="HMAC key file").strip() if args.hmac_key_file else None
        with files.open_text(args.file, what="export") as handle:
            result = verify_export(handle, public_key, hmac_key=hmac_key)
    except files.FileProblem as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ExportFormatError):
            return _fail(f"{args.file} is not a FlowLink audit export: {exc}", EXIT_MALFORMED)
        return _fail(str(exc), EXIT_USAGE)
    summary = result.to_dict()
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        report = result.report
        if result.exit_code == EXIT_OK:
            sys.stdout.write(f"VERIFIED  org {result.org}: {report.length} records, chain intact, "
                             f"{result.checkpoints_valid} valid checkpoint(s) up to seq {result.anchored_to}\n")
        elif result.exit_code == EXIT_TAMPERED:
            sys.stdout.write(f"TAMPERED  org {result.org}: record {report.broken_at}: {report.reason}\n")
        else:
            problems = result.checkpoints_rejected + result.witnesses_rejected
            if result.anchored_to != report.length:
                problems.append(f"no valid checkpoint covers all {report.length} records "
                                f"(anchored up to {result.anchored_to})")
            sys.stdout.write(f"UNANCHORED org {result.org}: " + "; ".join(problems) + "\n")
    return result.exit_code


def _verify_proof(args: argparse.Namespace) -> int:
    from flowlink.audit import merkle
    from flowlink.audit.errors import CheckpointError
    from flowlink.audit.witness import verify_checkpoint

    try:
        public_key = _load_public_key(args.public_key)
        text = files.read_text(args.file, what="proof file")
    except files.FileProblem as exc:
        return _fail(str(exc), EXIT_USAGE)
    except (OSError, ValueError) as exc:
        return _fail(str(exc), EXIT_USAGE if isinstance(exc, OSError) else EXIT_MALFORMED)
    try:
        proof: Any = json.loads(text)
    except ValueError:
        proof = None
    if not isinstance(proof, dict):
        # E.g. an export (JSON lines) given where one proof document belongs.
        return _fail(
            f"{args.file} is not an inclusion proof: expected one JSON object as returned by "
            "GET /api/v1/audit/proof/N (org_id, event, leaf_index, tree_size, path, checkpoint); "
            "an audit export is checked with `flowlink audit verify`",
            EXIT_MALFORMED,
        )
    try:
        checkpoint = verify_checkpoint(public_key, proof["checkpoint"], org_id=proof["org_id"])
        leaf = merkle.leaf_hash(proof["event"].encode("utf-8"))
        path = [bytes.fromhex(node) for node in proof["path"]]
        index, size = int(proof["leaf_index"]), int(proof["tree_size"])
    except CheckpointError as exc:
        return _fail(exc.detail, EXIT_UNANCHORED)
    except (KeyError, TypeError, ValueError) as exc:
        return _fail(f"not an inclusion proof: {exc}", EXIT_MALFORMED)
    if checkpoint["tree_size"] != size:
        return _fail("the checkpoint is for another tree size", EXIT_UNANCHORED)
    if not merkle.verify_inclusion(leaf, index, size, path, bytes.fromhex(checkpoint["root"])):
        sys.stdout.write(f"TAMPERED  event {index + 1} is not in the signed tree of size {size}\n")
        return EXIT_TAMPERED
    sys.stdout.write(f"VERIFIED  event {index + 1} is in the signed tree of size {size} (root {checkpoint['root'][:16]}…)\n")
    return EXIT_OK


def _integrity(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from flowlink.cli.api_client import ApiError
    from flowlink.errors import FlowLinkError

    try:
        if args.org:
            from flowlink.audit.integrity import verify_chain

            report = verify_chain(args.org, store=_store()).to_dict()
        else:
            report = _api(args).request("GET", "/api/v1/audit/integrity")
    except (ApiError, FlowLinkError) as exc:
        return _fail(str(getattr(exc, "detail", exc)), EXIT_USAGE)
    except (BotoCoreError, ClientError) as exc:
        return _aws_failure(exc)
    if args.org and report.get("length") == 0:
        # Intact is right for an empty log, but an empty log usually means a mistyped org id.
        sys.stderr.write(f"flowlink audit: org {args.org!r} has no audit events in this table "
                         "(an unknown org id has an empty log)\n")
    sys.stdout.write(json.dumps(report, indent=2) + "\n")
    return EXIT_OK if report.get("intact") else EXIT_TAMPERED


def _public_key(args: argparse.Namespace) -> int:
    from flowlink.cli.api_client import ApiError
    from flowlink.errors import FlowLinkError

    try:
        body = _api(args).request("GET", "/api/v1/audit/public-key")
    except (ApiError, FlowLinkError) as exc:
        return _fail(str(getattr(exc, "detail", exc)), EXIT_USAGE)
    return _write_output(args.out, body["public_key_pem"], what="public key file",
                         done=f"wrote the public key {body['key_id']} to {args.out}")


def _publish(args: argparse.Namespace) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from flowlink.audit import witness
    from flowlink.errors import FlowLinkError

    try:
        result = witness.publish(_store(), args.org)
    except FlowLinkError as exc:
        return _fail(exc.detail, EXIT_USAGE)
    except (BotoCoreError, ClientError) as exc:
        return _aws_failure(exc)
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return EXIT_OK
