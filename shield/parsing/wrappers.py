"""Command wrappers: programs that run another command given on their own command line.

``sudo``, ``env``, ``nice``, ``timeout``, ``xargs``, ``find -exec``, ``watch``, ``at`` ...
hide the command that really runs behind their own options. ``unwrap(name, args)`` says
which options belong to the wrapper and what it runs: another argv, a shell string, or the
commands it reads on stdin. It knows nothing of the parse tree, so the same table serves
the tree-sitter path, the fast path and recursively parsed strings.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

ARGV = "argv"  # inner is a list of argv lists, run directly
SHELL = "shell"  # script is a shell string, parsed recursively
STDIN = "stdin"  # the wrapper runs commands read from its stdin


@dataclass(slots=True)
class Unwrap:
    """What a wrapper runs. ``own`` are the wrapper's own arguments (before the inner command)."""

    kind: str
    own: list[str]
    inner: list[list[str]] = field(default_factory=list)
    script: str = ""
    origin: str | None = None
    privileged: bool = False
    background: bool = False
    assignments: dict[str, str] = field(default_factory=dict)
    xargs_replace: str | None = None
    label: str = ""  # wrapper name recorded in SimpleCommand.wrappers
    render_inner: bool = True  # False when ``own`` already spells out the inner command (find -exec)


def _skip_options(
    args: list[str],
    short_with_value: str = "",
    long_with_value: frozenset[str] = frozenset(),
    *,
    numeric_ok: bool = False,
) -> int:
    """Index of the first non-option argument (after ``--`` if present).

    ``short_with_value`` lists short options that take the next argument when they end a
    cluster (``-u root``) or the rest of the cluster (``-uroot``).
    """
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            i += 2 if ("=" not in arg and name in long_with_value) else 1
            continue
        if len(arg) > 1 and arg[0] == "-":
            if numeric_ok and arg[1:].isdigit():
                i += 1
                continue
            takes_next = False
            for pos in range(1, len(arg)):
                if arg[pos] in short_with_value:
                    takes_next = pos == len(arg) - 1
                    break
            i += 2 if takes_next else 1
            continue
        return i
    return i


def _has_flag(opts: list[str], short: str, long: tuple[str, ...] = ()) -> bool:
    for arg in opts:
        if arg.startswith("--"):
            if arg[2:].split("=", 1)[0] in long:
                return True
        elif arg.startswith("-") and any(c in arg[1:] for c in short):
            return True
    return False


def _option_value(opts: list[str], short: str, long: tuple[str, ...]) -> str | None:
    """The value of the last occurrence of an option in an option list (``-c X``, ``--command=X``)."""
    value = None
    i = 0
    while i < len(opts):
        arg = opts[i]
        if arg.startswith("--"):
            name, eq, rest = arg[2:].partition("=")
            if name in long:
                if eq:
                    value = rest
                elif i + 1 < len(opts):
                    value = opts[i + 1]
                    i += 1
        elif arg.startswith("-") and len(arg) > 1 and not arg.startswith("--"):
            pos = arg.find(short, 1) if short else -1
            if pos > 0 and all(c.isalpha() for c in arg[1:pos]):
                if pos < len(arg) - 1:
                    value = arg[pos + 1 :]
                elif i + 1 < len(opts):
                    value = opts[i + 1]
                    i += 1
        i += 1
    return value


def _simple(args: list[str], start: int, **kwargs) -> Unwrap | None:
    if start >= len(args):
        return None
    return Unwrap(ARGV, args[:start], [args[start:]], **kwargs)


_SUDO_LONG = frozenset(
    {
        "user",
        "group",
        "prompt",
        "close-from",
        "role",
        "type",
        "host",
        "other-user",
        "command-timeout",
        "chdir",
        "chroot",
    }
)


def _sudo(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "ugpCrthUTDR", _SUDO_LONG)
    own = args[:start]
    if _has_flag(own, "elvkK", ("edit", "list", "validate", "reset-timestamp", "remove-timestamp")):
        return None
    # sudo VAR=value cmd: environment assignments come before the command.
    assignments: dict[str, str] = {}
    while start < len(args) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", args[start]):
        name, _, value = args[start].partition("=")
        assignments[name] = value
        start += 1
    if start >= len(args) and _has_flag(own, "si", ("shell", "login")):
        # `sudo -s` / `sudo -i` with no command: a root shell that reads commands from stdin.
        return Unwrap(STDIN, list(args), privileged=True)
    return _simple(args, start, privileged=True, assignments=assignments)


def _su(args: list[str]) -> Unwrap | None:
    script = _option_value(args, "c", ("command", "session-command"))
    if script is None:
        return None
    return Unwrap(SHELL, list(args), script=script, privileged=True, origin="sh -c")


def _runuser(args: list[str]) -> Unwrap | None:
    if "--" in args or _has_flag(args[:1], "u", ("user",)):
        start = _skip_options(args, "ugGsw", frozenset({"user", "group", "supp-group", "shell"}))
        return _simple(args, start, privileged=True)
    return _su(args)


def _env(args: list[str]) -> Unwrap | None:
    i = 0
    assignments: dict[str, str] = {}
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if (
            arg in ("-S", "--split-string")
            or arg.startswith("--split-string=")
            or (arg.startswith("-S") and len(arg) > 2)
        ):
            if arg.startswith("--split-string="):
                text = arg.split("=", 1)[1]
            elif arg in ("-S", "--split-string"):
                text = args[i + 1] if i + 1 < len(args) else ""
                i += 1
            else:
                text = arg[2:]
            try:
                split = shlex.split(text)
            except ValueError:
                split = text.split()
            rest = split + args[i + 1 :]
            inner = _env(rest)
            if inner is None:
                return None
            inner.own = args[: i + 1] + inner.own
            inner.assignments = {**assignments, **inner.assignments}
            return inner
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            i += 2 if ("=" not in arg and name in ("unset", "chdir", "default-signal", "block-signal")) else 1
            continue
        if arg.startswith("-") and len(arg) > 1:
            i += 2 if arg[-1] in "uCP" else 1
            continue
        if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", arg):
            name, _, value = arg.partition("=")
            assignments[name] = value
            i += 1
            continue
        break
    if i >= len(args):
        return None
    return Unwrap(ARGV, args[:i], [args[i:]], assignments=assignments)


def _timeout(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "sk", frozenset({"signal", "kill-after"}))
    # The first operand is the duration.
    return _simple(args, start + 1)


def _command(args: list[str]) -> Unwrap | None:
    start = _skip_options(args)
    if _has_flag(args[:start], "vV"):
        return None  # `command -v rm` only looks the name up
    return _simple(args, start)


def _exec(args: list[str]) -> Unwrap | None:
    return _simple(args, _skip_options(args, "a"))


def _busybox(args: list[str]) -> Unwrap | None:
    if not args or args[0].startswith("-"):
        return None
    return Unwrap(ARGV, [], [args])


def _xargs(args: list[str]) -> Unwrap | None:
    long_values = frozenset(
        {"arg-file", "delimiter", "max-lines", "max-args", "max-procs", "max-chars", "process-slot-var"}
    )
    start = _skip_options(args, "adEILnPs", long_values)
    replace = _option_value(args[:start], "I", ("replace",))
    if replace is None and _has_flag(args[:start], "i"):
        replace = "{}"
    inner = args[start:] or ["echo"]
    return Unwrap(ARGV, args[:start], [inner], origin="xargs", xargs_replace=replace)


_FIND_EXEC = {"-exec", "-execdir", "-ok", "-okdir"}
# find options that do not narrow which files match.
_FIND_NON_FILTERS = {
    "-maxdepth",
    "-mindepth",
    "-xdev",
    "-mount",
    "-depth",
    "-follow",
    "-L",
    "-H",
    "-P",
    "-noleaf",
    "-ignore_readdir_race",
}


def _find(args: list[str]) -> Unwrap | None:
    inners: list[list[str]] = []
    i = 0
    first_exec = None
    while i < len(args):
        if args[i] in _FIND_EXEC:
            if first_exec is None:
                first_exec = i
            j = i + 1
            while j < len(args) and args[j] not in (";", "+"):
                j += 1
            if j > i + 1:
                inners.append(args[i + 1 : j])
            i = j + 1
            continue
        i += 1
    if not inners:
        return None
    starts = []
    for arg in args:
        if arg.startswith(("-", "(", "!")) or arg in (")", ","):
            break
        starts.append(arg)
    before_exec = args[len(starts) : first_exec]
    if len(starts) == 1:
        stands_for = _find_operand(starts[0], before_exec)
        if stands_for is not None:
            # GNU find replaces {} anywhere in an argument (`-F f=@{}`), not only whole words.
            inners = [[part.replace("{}", stands_for) for part in inner] for inner in inners]
    return Unwrap(ARGV, list(args), inners, origin="find -exec", render_inner=False)


def _find_operand(start: str, tests: list[str]) -> str | None:
    """What ``{}`` stands for, when the tests before -exec say it plainly.

    No test: the start path and everything under it. One ``-name GLOB`` (besides ``-type``
    and the options that filter nothing): files named GLOB under the start path, written
    ``START/GLOB`` so the path classes see ``~/.ssh/id_*`` as the keys it is. Anything
    else (-newer, -size, -o, several names...) leaves ``{}`` as it is.
    """
    names: list[str] = []
    i = 0
    while i < len(tests):
        arg = tests[i]
        if arg in ("-name", "-iname") and i + 1 < len(tests):
            names.append(tests[i + 1])
            i += 2
        elif arg in ("-type", "-maxdepth", "-mindepth") and i + 1 < len(tests):
            i += 2
        elif arg in _FIND_NON_FILTERS or not arg:
            i += 1
        else:
            return None
    if not names:
        return start
    if len(names) == 1 and "/" not in names[0]:
        return start.rstrip("/") + "/" + names[0]
    return None


def _watch(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "nq", frozenset({"interval", "equexit"}))
    if start >= len(args):
        return None
    if _has_flag(args[:start], "x", ("exec",)):
        return _simple(args, start)
    return Unwrap(SHELL, args[:start], script=" ".join(args[start:]), origin="sh -c")


def _shell_option(short: str, long: tuple[str, ...]):
    """A wrapper whose option (``script -c STR``, ``nix-shell --run STR``) is a shell string it runs."""

    def unwrap(args: list[str]) -> Unwrap | None:
        script = _option_value(args, short, long)
        if script is None:
            return None
        return Unwrap(SHELL, list(args), script=script, origin="sh -c")

    return unwrap


_script = _shell_option("c", ("command",))


def _chroot(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "", frozenset({"userspec", "groups"}))
    return _simple(args, start + 1, privileged=True)


def _flock(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "Ew", frozenset({"timeout", "conflict-exit-code"}))
    rest = args[start + 1 :]
    if not rest:
        return None
    if rest[0] in ("-c", "--command") and len(rest) > 1:
        return Unwrap(SHELL, args[: start + 2], script=rest[1], origin="sh -c")
    return Unwrap(ARGV, args[: start + 1], [rest])


def _at(args: list[str]) -> Unwrap | None:
    if _has_flag(args, "lrdcf", ("list", "remove")):
        return None
    return Unwrap(STDIN, list(args), origin="delayed", background=True)


_SYSTEMD_RUN_LONG = frozenset(
    {
        "unit",
        "property",
        "description",
        "slice",
        "uid",
        "gid",
        "nice",
        "setenv",
        "working-directory",
        "host",
        "machine",
        "on-active",
        "on-boot",
        "on-startup",
        "on-unit-active",
        "on-unit-inactive",
        "on-calendar",
        "on-clock-change",
        "timer-property",
        "path-property",
        "socket-property",
        "service-type",
        "expand-environment",
    }
)


def _systemd_run(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "puHME", _SYSTEMD_RUN_LONG)
    delayed = any(a.startswith("--on-") for a in args[:start])
    return _simple(args, start, origin="delayed" if delayed else None, background=True)


def _parallel(args: list[str]) -> Unwrap | None:
    start = _skip_options(args, "jPSNnLdIEa", frozenset({"jobs", "sshlogin", "delimiter", "arg-file"}))
    end = start
    while end < len(args) and args[end] not in (":::", "::::", ":::+", "::::+"):
        end += 1
    if end == start:
        return Unwrap(STDIN, list(args), origin="xargs")
    return Unwrap(SHELL, args[:start], script=" ".join(args[start:end]), origin="xargs")


def _nsenter(args: list[str]) -> Unwrap | None:
    return _simple(
        args, _skip_options(args, "tSGe", frozenset({"target", "setuid", "setgid"})), privileged=True
    )


def _taskset(args: list[str]) -> Unwrap | None:
    start = _skip_options(args)
    if _has_flag(args[:start], "p", ("pid",)):
        return None
    return _simple(args, start + 1)


def _trap(args: list[str]) -> Unwrap | None:
    if not args or args[0].startswith("-") or args[0] == "":
        return None
    return Unwrap(SHELL, [], script=args[0], origin="delayed")


def _skip_then_run(short_with_value: str = "", long_with_value: frozenset[str] = frozenset(), **kw):
    def unwrap(args: list[str]) -> Unwrap | None:
        return _simple(args, _skip_options(args, short_with_value, long_with_value, numeric_ok=True), **kw)

    return unwrap


# --- project and secret runners: `TOOL SUBCOMMAND [options] CMD ...` runs CMD unchanged ----
# (poetry run, uv run, bundle exec, npx, op run -- ...). Only the running subcommand makes
# the tool a wrapper: `poetry install` runs nothing of the caller's.


def _runner(
    subcommands: frozenset[str],
    short_with_value: str = "",
    long_with_value: frozenset[str] = frozenset(),
    *,
    global_short: str = "",
    global_long: frozenset[str] = frozenset(),
    operands: int = 0,
    script_options: tuple[str, tuple[str, ...]] | None = None,
    module_flag: bool = False,
):
    """A wrapper for ``TOOL [global options] SUB [options] [OPERAND...] CMD ...``.

    ``operands`` are positional arguments of the tool before the command (aws-vault's
    profile, direnv's directory); everything after ``--`` is the command when present.
    ``script_options`` names an option whose value is a shell string (``npx -c``,
    ``doppler run --command``); ``module_flag`` maps ``uv run -m mod`` to ``python -m mod``.
    """

    def unwrap(args: list[str]) -> Unwrap | None:
        if not subcommands:
            sub = -1  # the tool itself runs the command (npx, bunx, uvx, envchain)
        else:
            sub = _skip_options(args, global_short, global_long)  # poetry -C dir run
            if sub >= len(args) or args[sub] not in subcommands:
                return None
        rest = args[sub + 1 :]
        if script_options is not None:
            script = _option_value(rest, *script_options)
            if script is not None:
                return Unwrap(SHELL, args[: sub + 1] + rest, script=script, origin="sh -c")
        if "--" in rest:
            cut = rest.index("--") + 1
        else:
            cut = _skip_options(rest, short_with_value, long_with_value) + operands
        if cut >= len(rest):
            return None
        inner = rest[cut:]
        own = args[: sub + 1] + rest[:cut]
        if module_flag and _has_flag(rest[:cut], "m", ("module",)):
            inner = ["python", "-m", *inner]
        return Unwrap(ARGV, own, [inner])

    return unwrap


def _package_runner(short_with_value: str = "", long_with_value: frozenset[str] = frozenset(), **kwargs):
    """``npx PKG ARGS`` / ``uvx PKG ARGS``: the package's command, named like the package
    (a version suffix ``pkg@1.2`` dropped; ``--from``/``--package`` name it otherwise)."""
    base = _runner(frozenset(), short_with_value, long_with_value, **kwargs)

    def unwrap(args: list[str]) -> Unwrap | None:
        result = base(args)
        if result is not None and result.kind == ARGV and result.inner and result.inner[0]:
            first = result.inner[0][0]
            if first.startswith("@") and first.count("@") > 1:
                first = first.rsplit("@", 1)[0]  # @scope/pkg@1.2
            elif not first.startswith("@"):
                first = first.split("@", 1)[0]
            result.inner[0][0] = first.rsplit("/", 1)[-1] if first.startswith("@") else first
        return result

    return unwrap


def _argv_after_command_option(args: list[str], own: list[str]) -> Unwrap | None:
    """``... -c CMD ARGS`` / ``--command CMD ARGS`` / ``--command=CMD ARGS``: the argv after the
    option; ``own`` (the tool's words before ``args``) is kept with the wrapper's own."""
    for index, arg in enumerate(args):
        if arg in ("--command", "-c") and index + 1 < len(args):
            return Unwrap(ARGV, own + args[: index + 1], [args[index + 1 :]])
        if arg.startswith("--command="):
            return Unwrap(ARGV, own + args[: index + 1], [[arg.split("=", 1)[1], *args[index + 1 :]]])
    return None


def _nix(args: list[str]) -> Unwrap | None:
    """``nix develop|shell ... -c CMD ARGS`` runs CMD; without -c it opens an interactive shell."""
    sub = _skip_options(args)
    if sub >= len(args) or args[sub] not in ("develop", "shell"):
        return None
    return _argv_after_command_option(args[sub + 1 :], args[: sub + 1])


def _sops(args: list[str]) -> Unwrap | None:
    """``sops exec-env FILE 'cmd'`` / ``exec-file FILE 'cmd {}'``: the string is run by a shell."""
    sub = _skip_options(args)
    if sub >= len(args) or args[sub] not in ("exec-env", "exec-file"):
        return None
    rest = args[sub + 1 :]
    start = _skip_options(rest, "", frozenset({"user", "filename", "input-type", "output-type"}))
    if start + 1 >= len(rest):
        return None
    return Unwrap(SHELL, args[: sub + 1] + rest[: start + 1], script=rest[start + 1], origin="sh -c")


def _sg(args: list[str]) -> Unwrap | None:
    """``sg GROUP -c 'cmd'`` or ``sg GROUP cmd``: runs the command as the group."""
    if len(args) < 2:
        return None
    rest = args[1:]
    script = rest[1] if rest[0] in ("-c",) and len(rest) > 1 else " ".join(rest)
    return Unwrap(SHELL, args[:1] + (rest[:1] if rest[0] == "-c" else []), script=script, origin="sh -c")


def _recursive_remover(args: list[str]) -> Unwrap | None:
    """``rimraf PATH`` / ``del-cli PATH`` (node packages) delete like ``rm -rf PATH``; seen as that,
    so the filesystem rules judge the paths. ``--no-preserve-root`` is kept; other options dropped."""
    paths = [a for a in args if not a.startswith("-")]
    if not paths:
        return None
    flags = ["-rf"] + (["--no-preserve-root"] if "--no-preserve-root" in args else [])
    return Unwrap(ARGV, list(args), [["rm", *flags, "--", *paths]], render_inner=False)


def _just(args: list[str]) -> Unwrap | None:
    """``just [options] --command CMD ARGS`` (``-c``) runs CMD in the justfile's environment."""
    return _argv_after_command_option(args, [])


def _pager(args: list[str]) -> Unwrap | None:
    """``less +'!cmd' FILE`` / ``more +'!cmd'``: the pager's ``!`` command runs ``cmd`` in a shell
    as soon as it starts (a known way to run a command behind an innocent-looking reader)."""
    for arg in args:
        if arg.startswith("+!") and len(arg) > 2:
            return Unwrap(SHELL, list(args), script=arg[2:], origin="sh -c")
        if arg.startswith("++!") and len(arg) > 3:
            return Unwrap(SHELL, list(args), script=arg[3:], origin="sh -c")
    return None


_UV_RUN_LONG = frozenset({
    "with", "with-editable", "with-requirements", "python", "project", "directory", "package", "env-file",
    "extra", "group", "only-group", "no-group", "index", "index-url", "extra-index-url", "find-links",
    "default-index", "config-file", "cache-dir", "from", "refresh-package", "reinstall-package",
    "upgrade-package", "resolution", "prerelease", "exclude-newer", "link-mode", "python-platform",
})
_NPX_LONG = frozenset({"package", "call", "workspace", "prefix", "registry", "cache", "userconfig"})
_CONDA_LONG = frozenset({"name", "prefix", "cwd"})
_SECRETS_RUN_LONG = frozenset({
    "env-file", "env", "project", "config", "token", "path", "account", "vault", "profile", "duration",
    "region", "mfa-token", "role", "environment", "projectId", "domain", "tags", "f", "command",
})

_RUNNERS = {
    "poetry": _runner(frozenset({"run"}), global_short="CP", global_long=frozenset({"directory", "project"})),
    "pipenv": _runner(frozenset({"run"})),
    "pdm": _runner(frozenset({"run"}), "p", frozenset({"project", "venv"})),
    "rye": _runner(frozenset({"run"})),
    "hatch": _runner(frozenset({"run"}), global_short="e", global_long=frozenset({"env", "project"})),
    "uv": _runner(frozenset({"run"}), "wp", _UV_RUN_LONG, global_long=frozenset({"directory", "project"}),
                  module_flag=True),
    "uvx": _package_runner("p", _UV_RUN_LONG),
    "pipx": _runner(frozenset({"run"}), "", frozenset({"spec", "python", "pip-args"})),
    "bundle": _runner(frozenset({"exec"}), global_long=frozenset({"gemfile"})),
    "npx": _package_runner("pcw", _NPX_LONG, script_options=("c", ("call",))),
    "bunx": _package_runner(),
    "npm": _runner(frozenset({"exec", "x"}), "cpw", _NPX_LONG, script_options=("c", ("call",))),
    "pnpm": _runner(frozenset({"exec", "dlx"}), "C", frozenset({"dir", "filter", "package"}),
                    global_short="C", global_long=frozenset({"dir", "filter"})),
    "yarn": _runner(frozenset({"exec", "dlx"}), "p", frozenset({"package"})),
    "bun": _runner(frozenset({"x"})),
    "conda": _runner(frozenset({"run"}), "np", _CONDA_LONG),
    "mamba": _runner(frozenset({"run"}), "np", _CONDA_LONG),
    "micromamba": _runner(frozenset({"run"}), "np", _CONDA_LONG),
    "mise": _runner(frozenset({"exec", "x"}), "jC", frozenset({"jobs", "cd"}), script_options=("c", ("command",))),
    "asdf": _runner(frozenset({"exec"})),
    "direnv": _runner(frozenset({"exec"}), operands=1),
    "devbox": _runner(frozenset({"run"}), "c", frozenset({"config", "environment"})),
    "aws-vault": _runner(frozenset({"exec"}), "d", _SECRETS_RUN_LONG, operands=1),
    "op": _runner(frozenset({"run"}), "", _SECRETS_RUN_LONG),
    "doppler": _runner(frozenset({"run"}), "pc", _SECRETS_RUN_LONG, script_options=("", ("command",))),
    "infisical": _runner(frozenset({"run"}), "", _SECRETS_RUN_LONG, script_options=("", ("command",))),
    "dotenvx": _runner(frozenset({"run"}), "f", _SECRETS_RUN_LONG),
    "dotenv": _runner(frozenset({"run"}), global_short="fe", global_long=frozenset({"file", "export"})),
    "chamber": _runner(frozenset({"exec"}), "", _SECRETS_RUN_LONG),
    "envchain": _runner(frozenset(), operands=1),
    "xvfb-run": _skip_then_run("nsfew", frozenset({"server-num", "server-args", "auth-file", "error-file", "wait"})),
    "dbus-run-session": _skip_then_run("", frozenset({"config-file", "dbus-daemon"})),
    "tox": _runner(frozenset({"exec"}), "e", frozenset({"env", "conf", "workdir", "root"})),
    "just": _just,
    "nix": _nix,
    "nix-shell": _shell_option("", ("run", "command")),
    "sops": _sops,
}


# Runners are transparent to an org policy (they change the environment a command runs in,
# not who runs it): an allow rule for the command covers `poetry run CMD` too.
RUNNER_NAMES = frozenset(_RUNNERS)


_WRAPPERS = {
    "sudo": _sudo,
    "doas": _skip_then_run("uC", privileged=True),
    "pkexec": _skip_then_run("", frozenset({"user"}), privileged=True),
    "su": _su,
    "runuser": _runuser,
    "env": _env,
    "nice": _skip_then_run("n", frozenset({"adjustment"})),
    "ionice": _skip_then_run("cnp", frozenset({"class", "classdata"})),
    "timeout": _timeout,
    "nohup": _skip_then_run(background=True),
    "setsid": _skip_then_run(background=True),
    "disown": _skip_then_run(background=True),
    "stdbuf": _skip_then_run("ioe", frozenset({"input", "output", "error"})),
    "time": _skip_then_run("fo", frozenset({"format", "output"})),
    "command": _command,
    "builtin": _skip_then_run(),
    "exec": _exec,
    "busybox": _busybox,
    "toybox": _busybox,
    "xargs": _xargs,
    "find": _find,
    "watch": _watch,
    "script": _script,
    "chroot": _chroot,
    "flock": _flock,
    "at": _at,
    "batch": _at,
    "systemd-run": _systemd_run,
    "parallel": _parallel,
    "nsenter": _nsenter,
    "unshare": _skip_then_run("", frozenset({"map-user", "map-group", "setgroups"}), privileged=True),
    "strace": _skip_then_run("abeEIoOpPsSuUX"),
    "ltrace": _skip_then_run("aeEnopsSu"),
    "taskset": _taskset,
    "chrt": _taskset,
    "proxychains": _skip_then_run("f"),
    "proxychains4": _skip_then_run("f"),
    "torsocks": _skip_then_run("aPpu"),
    "tsocks": _skip_then_run(),
    "unbuffer": _skip_then_run(),
    "caffeinate": _skip_then_run("tw"),
    "firejail": _skip_then_run(),
    "coproc": _skip_then_run(background=True),
    "trap": _trap,
    "sg": _sg,
    "rimraf": _recursive_remover,
    "del-cli": _recursive_remover,
    "less": _pager,
    "more": _pager,
    **_RUNNERS,
}

WRAPPER_NAMES = frozenset(_WRAPPERS)


def unwrap(name: str, args: list[str]) -> Unwrap | None:
    """What the wrapper ``name`` runs given ``args``, or None when it runs nothing (or is no wrapper)."""
    handler = _WRAPPERS.get(name)
    if handler is None:
        return None
    result = handler(args)
    if result is not None and not result.label:
        result.label = name
    return result
