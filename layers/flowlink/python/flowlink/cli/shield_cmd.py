"""`flowlink shield`: judge commands and file paths with Shield from the command line.

Subcommands:
    check "CMD"        one command, human-readable (``--explain`` for the full reasoning,
                       ``--json`` for one verdict object)
    check --jsonl      JSON objects with a ``cmd`` field on stdin, one verdict JSON per
                       line on stdout, in order, line for line
    path OP PATH       a read/list/write of a file path (the gateway's file tools)
    policy FILE        validate a policy file and print its version

This module is the I/O edge around the pure ``shield`` package: it reads argv, stdin
and the ``--policy`` file, and maps verdicts to exit codes (documented in
docs/shield-cli.md and below). It never prints from inside the engine.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from typing import Any, TextIO

from shield.model import Context, Decision, ParseResult, Verdict

logger = logging.getLogger(__name__)

# Exit codes. Decisions get spaced codes so scripts can test `-ge 20` ("needs a human").
EXIT_AUTO = 0
EXIT_USAGE = 2  # bad arguments, unreadable or invalid --policy file
EXIT_INPUT = 3  # --jsonl: at least one input line was not a JSON object with a string `cmd`
EXIT_ENGINE = 4  # the engine failed unexpectedly on at least one command (fail closed)
EXIT_SOFT_ASK = 10
EXIT_HARD_ASK = 20
EXIT_DENY = 30
EXIT_FOR_DECISION = {
    Decision.AUTO: EXIT_AUTO,
    Decision.SOFT_ASK: EXIT_SOFT_ASK,
    Decision.HARD_ASK: EXIT_HARD_ASK,
    Decision.DENY: EXIT_DENY,
}

_DECISION_LABEL = {
    Decision.AUTO: "AUTO      runs",
    Decision.SOFT_ASK: "SOFT_ASK  runs, approvers are notified",
    Decision.HARD_ASK: "HARD_ASK  blocked until a human approves",
    Decision.DENY: "DENY      never runs",
}


class _UsageError(Exception):
    """Bad arguments or an unusable --policy file: exit 2 with the message."""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `shield` subcommand tree to the `flowlink` parser."""
    parser = subparsers.add_parser(
        "shield",
        help="judge commands and paths with Shield",
        description="Judge commands and file paths with Shield (levels 1-4).",
    )
    parser.set_defaults(func=lambda args: _print_help(parser))
    sub = parser.add_subparsers(dest="shield_command", metavar="SUBCOMMAND")

    check = sub.add_parser(
        "check",
        help="judge one command, or JSON lines from stdin with --jsonl",
        description=(
            "Judge a shell command. Exit codes: 0 auto, 10 soft_ask, 20 hard_ask, 30 deny, "
            "2 usage or policy error, 3 bad --jsonl input line, 4 engine failure."
        ),
    )
    check.add_argument("cmd", nargs="?", help="the command to judge (omit with --jsonl)")
    output = check.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    output.add_argument(
        "--jsonl",
        action="store_true",
        help='read {"cmd": ...} objects from stdin, one per line; write one verdict JSON per line',
    )
    check.add_argument(
        "--explain", action="store_true", help="show parse, rules, intents and score breakdown"
    )
    _add_context_options(check)
    check.add_argument(
        "--semantic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run level 2 (semantic intent); on by default, --no-semantic for rules and score only",
    )
    check.set_defaults(func=_run_check)

    path = sub.add_parser("path", help="judge a read/list/write of a file path")
    path.add_argument("operation", choices=["read", "list", "write"])
    path.add_argument("path")
    path.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    _add_context_options(path)
    path.set_defaults(func=_run_path)

    policy = sub.add_parser("policy", help="validate a policy file and print its version")
    policy.add_argument("file")
    policy.set_defaults(func=_run_policy)


def _add_context_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--policy", metavar="FILE", help="org policy file (YAML, or TOML if it ends in .toml)"
    )
    parser.add_argument("--cwd", help="working directory the command would run in")
    parser.add_argument("--agent", help="name of the agent asking (for agent-scoped policy rules)")


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


# --------------------------------------------------------------------------------------
# context
# --------------------------------------------------------------------------------------


def _context(args: argparse.Namespace) -> Context:
    from shield.policy import PolicyError, load_policy_file

    policy = None
    if args.policy:
        try:
            policy = load_policy_file(args.policy)
        except PolicyError as exc:
            raise _UsageError(f"invalid policy: {exc}") from None
    return Context(policy=policy, cwd=args.cwd, agent=args.agent)


def _with_usage_errors(run):
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except _UsageError as exc:
            sys.stderr.write(f"flowlink shield: {exc}\n")
            return EXIT_USAGE

    return wrapped


# --------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------


@_with_usage_errors
def _run_check(args: argparse.Namespace) -> int:
    if args.jsonl and args.cmd is not None:
        raise _UsageError("--jsonl reads commands from stdin; do not pass CMD as well")
    if not args.jsonl and args.cmd is None:
        raise _UsageError('give a command to check, e.g. flowlink shield check "rm -rf /", or use --jsonl')
    if args.jsonl and args.explain:
        raise _UsageError("--explain is for a single command; --jsonl output is always full verdict JSON")
    context = _context(args)
    engine = _engine(args.semantic)
    if args.jsonl:
        return _check_jsonl(engine, context, sys.stdin.buffer, sys.stdout)
    try:
        verdict = engine.analyze(args.cmd, context)
    except Exception as exc:  # the engine must not raise; if it does, say so and fail closed
        logger.exception("shield engine failed")
        sys.stderr.write(f"flowlink shield: engine error, treat as deny: {type(exc).__name__}: {exc}\n")
        return EXIT_ENGINE
    if args.json:
        payload = verdict.to_dict()
        if args.explain:
            payload["parse"] = [_command_dict(c) for c in _parse(args.cmd, context).commands]
        sys.stdout.write(json.dumps(payload, ensure_ascii=True) + "\n")
    else:
        sys.stdout.write(_render(verdict, args.cmd, engine, context, explain=args.explain))
    return EXIT_FOR_DECISION[verdict.decision]


def _engine(semantic: bool):
    from shield.engine import Shield

    return Shield(semantic=semantic)


def _parse(cmd: str, context: Context) -> ParseResult:
    """The parse the engine judged, for --explain (parsing is deterministic, so re-parsing
    with the same home and cwd shows exactly what the engine saw)."""
    from shield.parse import parse

    return parse(cmd, home=context.host.home, cwd=context.cwd)


def _check_jsonl(engine: Any, context: Context, stdin, stdout: TextIO) -> int:
    """One output line per input line, in order; bad lines get an error object."""
    exit_code = EXIT_AUTO
    for line_number, raw in enumerate(stdin, 1):
        result, problem = _judge_line(engine, context, raw, line_number)
        if problem == "input":
            exit_code = max(exit_code, EXIT_INPUT)
        elif problem == "engine":
            exit_code = max(exit_code, EXIT_ENGINE)
        stdout.write(json.dumps(result, ensure_ascii=True) + "\n")
        stdout.flush()  # a consumer reading line by line gets each verdict at once
    return exit_code


def _judge_line(
    engine: Any, context: Context, raw: bytes, line_number: int
) -> tuple[dict[str, Any], str | None]:
    def error(code: str, message: str, kind: str = "input") -> tuple[dict[str, Any], str]:
        return {"line": line_number, "error": code, "message": message}, kind

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error("invalid_utf8", f"line is not valid UTF-8 (byte {exc.start})")
    text = text.rstrip("\r\n")
    if not text.strip():
        return error("empty_line", "empty line: expected a JSON object with a 'cmd' field")
    try:
        item = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        return error("invalid_json", f"not JSON: {exc}")
    if not isinstance(item, dict):
        return error("not_an_object", "expected a JSON object with a 'cmd' field")
    cmd = item.get("cmd")
    if not isinstance(cmd, str):
        return error("missing_cmd", "the object needs a string 'cmd' field")
    for key in ("cwd", "agent"):
        if key in item and item[key] is not None and not isinstance(item[key], str):
            return error(f"bad_{key}", f"'{key}' must be a string when given")
    line_context = context
    overrides = {key: item[key] for key in ("cwd", "agent") if isinstance(item.get(key), str)}
    if overrides:
        line_context = Context(
            policy=context.policy,
            agent=overrides.get("agent", context.agent),
            cwd=overrides.get("cwd", context.cwd),
            project_root=context.project_root,
            host=context.host,
        )
    try:
        verdict = engine.analyze(cmd, line_context)
    except Exception as exc:  # the engine must not raise; if it does, fail closed, keep going
        logger.exception("shield engine failed on line %d", line_number)
        return error("engine_error", f"{type(exc).__name__}: {exc}", kind="engine")
    result = verdict.to_dict()
    if "id" in item:
        result["id"] = item["id"]
    return result, None


# --------------------------------------------------------------------------------------
# path / policy
# --------------------------------------------------------------------------------------


@_with_usage_errors
def _run_path(args: argparse.Namespace) -> int:
    from shield.paths import check_path

    verdict = check_path(args.operation, args.path, _context(args))
    if args.json:
        sys.stdout.write(json.dumps(verdict.to_dict(), ensure_ascii=True) + "\n")
    else:
        sys.stdout.write(_render(verdict, f"{args.operation} {args.path}", None, None, explain=False))
    return EXIT_FOR_DECISION[verdict.decision]


@_with_usage_errors
def _run_policy(args: argparse.Namespace) -> int:
    from shield.policy import PolicyError, load_policy_file

    try:
        policy = load_policy_file(args.file)
    except PolicyError as exc:
        raise _UsageError(f"invalid policy: {exc}") from None
    thresholds = policy.thresholds
    sys.stdout.write(
        f"{args.file}: ok\n  version: {policy.version}\n  rules: {len(policy.rules)}"
        f" (including inherited)\n  thresholds: soft_ask {thresholds.soft_ask}, hard_ask {thresholds.hard_ask},"
        f" deny {thresholds.deny}\n"
    )
    return EXIT_AUTO


# --------------------------------------------------------------------------------------
# human-readable rendering
# --------------------------------------------------------------------------------------


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _one_line(text: str, limit: int = 160) -> str:
    """Printable, single-line text: commands are untrusted, and raw control characters
    (ANSI escapes, carriage returns) would let one rewrite what the reviewer sees."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(
        lambda m: {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(m.group(), f"\\x{ord(m.group()):02x}"), text
    )
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _render(verdict: Verdict, cmd: str, engine: Any, context: Context | None, *, explain: bool) -> str:
    lines = [
        f"{_DECISION_LABEL[verdict.decision]}",
        f"  command:    {_one_line(cmd)}",
        f"  normalized: {_one_line(verdict.normalized)}",
        f"  score:      {verdict.score}/100",
        "  reasons:",
    ]
    lines.extend(f"    - {_one_line(reason, 300)}" for reason in verdict.reasons)
    if verdict.policy_matches:
        lines.append("  policy rules matched:")
        lines.extend(f"    - {_one_line(match, 300)}" for match in verdict.policy_matches)
    if explain:
        lines.extend(_explain(verdict, cmd, engine, context))
    lines.append(
        f"  levels run: {', '.join(verdict.levels_run)}   engine {verdict.engine_version}"
        f"   policy {verdict.policy_version}"
    )
    if verdict.flags:
        lines.append(f"  input flags: {', '.join(verdict.flags)}")
    return "\n".join(lines) + "\n"


def _command_dict(command) -> dict[str, Any]:
    return {
        "argv": list(command.argv),
        "origin": command.origin,
        "depth": command.depth,
        "wrappers": list(command.wrappers),
        "privileged": command.privileged,
        "obfuscation": list(command.obfuscation),
        "dynamic": command.dynamic,
        "background": command.background,
        "redirects": [{"op": r.op, "target": r.target} for r in command.redirects],
    }


def _explain(verdict: Verdict, cmd: str, engine: Any, context: Context | None) -> list[str]:
    lines: list[str] = []
    if engine is not None and context is not None:
        parsed = _parse(cmd, context)
        lines.append("  parse (every command that would run):")
        if not parsed.commands:
            lines.append("    (no executable command found)")
        for index, command in enumerate(parsed.commands, 1):
            details = [f"origin={command.origin}", f"depth={command.depth}"]
            if command.wrappers:
                details.append("wrappers=" + ",".join(command.wrappers))
            if command.privileged:
                details.append("privileged")
            if command.obfuscation:
                details.append("obfuscation=" + ",".join(command.obfuscation))
            if command.dynamic:
                details.append("dynamic")
            if command.background:
                details.append("background")
            if command.redirects:
                details.append(
                    "redirects=" + ",".join(f"{r.op}{_one_line(r.target, 40)}" for r in command.redirects)
                )
            argv = " ".join(command.argv) or "(unresolved)"
            lines.append(f"    {index}. {_one_line(argv, 120)}   [{' '.join(details)}]")
        if parsed.errors:
            lines.append("  parse problems:")
            lines.extend(f"    - {_one_line(error)}" for error in parsed.errors)
    lines.append("  rules:")
    if not verdict.rules:
        lines.append("    (none matched)")
    for rule in verdict.rules:
        lines.append(f"    - {rule.id} [{rule.severity}, ATT&CK {rule.attack}, pack {rule.pack}]")
        lines.append(f"      {_one_line(rule.explanation, 300)}")
    lines.append("  intents (semantic, level 2):")
    if "semantic:unavailable" in verdict.levels_run:
        lines.append("    (level 2 requested but the model is not installed)")
    elif "semantic" not in verdict.levels_run and not verdict.intents:
        lines.append("    (level 2 did not run)")
    elif not verdict.intents:
        lines.append("    (no intent close enough)")
    for intent in verdict.intents:
        lines.append(
            f"    - {intent.intent}  similarity {intent.similarity:.3f}  ({intent.risk})"
            f"  nearest: {_one_line(intent.exemplar, 80)}"
        )
    lines.append("  score breakdown:")
    total = 0.0
    for contribution in verdict.contributions:
        total += contribution.points
        lines.append(
            f"    {contribution.points:+7.1f}  {contribution.signal}: {_one_line(contribution.reason, 200)}"
        )
    lines.append(f"    {'=':>7} {total:.1f} -> score {verdict.score}")
    return lines
