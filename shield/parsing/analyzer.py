"""The tree-sitter-bash walker that finds every command a shell string would execute.

One ``Analyzer`` handles one ``shield.parse.parse`` call: it walks the tree-sitter tree,
evaluates words (quotes, escapes, variables, arrays, namerefs, positional parameters,
``${...}`` operators, brace and tilde expansion, command substitution with a static
model of what echo/printf/base64/xxd/tr/rev/gunzip print), unwraps wrappers, re-parses
strings run by shells, ``eval``, aliases, functions and interpreters, and decodes
payloads piped or substituted into a shell. It keeps shell state only for the duration
of the call, never touches the file system and bounds its work (commands, tree nodes,
nesting) so hostile input cannot make it slow or recurse without end.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass

import tree_sitter
import tree_sitter_bash

from shield import decode
from shield.model import ParseResult, Redirect, SimpleCommand
from shield.parsing import interpreters, words
from shield.parsing.wrappers import ARGV, SHELL, STDIN, unwrap

logger = logging.getLogger(__name__)

MAX_UNWRAP_DEPTH = 16  # nested sh -c / eval / decoded payload levels
MAX_TREE_DEPTH = 64  # nesting of syntax inside one parsed string
MAX_COMMANDS = 160  # emitted commands per call
MAX_NODES = 3_000  # syntax nodes visited per call
MAX_NESTED_SOURCE = 32 * 1024  # bytes of a nested string (sh -c, decoded payload) that are parsed
MAX_SOURCE_NESTING = 96  # bracket nesting tree-sitter is asked to parse
MAX_FALLBACK_BYTES = 2048  # input given to the repair scan and the shlex fallback tokenizer
MAX_ARGS = 512  # arguments per command that are normalised and judged
MAX_LOOP_VALUES = 4  # for-loop bodies are walked once per value, up to this many

_LANGUAGE = tree_sitter.Language(tree_sitter_bash.language())
_local = threading.local()


def _parser() -> tree_sitter.Parser:
    # tree-sitter parsers are not thread-safe; the gateway calls parse() from threads.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = tree_sitter.Parser(_LANGUAGE)
        _local.parser = parser
    return parser


SHELLS = frozenset(
    {
        "sh",
        "bash",
        "zsh",
        "dash",
        "ksh",
        "mksh",
        "ash",
        "rbash",
        "fish",
        "csh",
        "tcsh",
        "yash",
        "pdksh",
        "oksh",
        "posh",
    }
)
NETWORK_SOURCES = frozenset(
    {
        "curl",
        "wget",
        "nc",
        "ncat",
        "netcat",
        "fetch",
        "socat",
        "http",
        "https",
        "xh",
        "aria2c",
        "lynx",
        "w3m",
        "links",
        "ftp",
        "tftp",
        "telnet",
        "ssh",
        "scp",
        "sftp",
        "rsync",
        "smbclient",
        "dig",
        "nslookup",
        "host",
        "s3cmd",
        "gsutil",
        "invoke-webrequest",
        "iwr",
        "httpie",
        "openssl",
    }
)
# Variables whose value other programs run as a shell command.
_EXEC_VARIABLES = frozenset(
    {
        "GIT_SSH_COMMAND",
        "GIT_PAGER",
        "PAGER",
        "GIT_EDITOR",
        "EDITOR",
        "VISUAL",
        "GIT_EXTERNAL_DIFF",
        "GIT_PROXY_COMMAND",
        "PROMPT_COMMAND",
        "MANPAGER",
        "SYSTEMD_PAGER",
        "LESSOPEN",
        "GIT_ASKPASS",
        "SSH_ASKPASS",
    }
)
_RESERVED_FIRST = frozenset(
    {
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "for",
        "while",
        "until",
        "do",
        "done",
        "case",
        "esac",
        "function",
        "select",
        "in",
        "!",
        "{",
        "}",
        "[[",
        "]]",
        "time",
        "coproc",
    }
)
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ASSIGNMENT_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_BRACED = re.compile(
    r"^(?P<pre>[#!]?)(?P<name>[A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!\-])(?:\[(?P<idx>[^\]]*)\])?(?P<op>.*)$",
    re.DOTALL,
)
_SUBSTRING = re.compile(r"^:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")
_INLINE_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
_ARITH_SAFE = re.compile(r"^[\d\s+\-*/%()]+$")
# Input made only of plain words (~ expands as in the tree walk), simple quoted strings and
# ; && || | qualifies for the fast path.
_FAST_PATH = re.compile(r"""^(?:[A-Za-z0-9_./:,@%+=~-]++|'[^'\n]*+'|"[^"$`\\\n]*+"|&&|\|\||[;|]| )++$""")
_FAST_TOKEN = re.compile(r"""[A-Za-z0-9_./:,@%+=~-]+|'[^'\n]*'|"[^"$`\\\n]*"|&&|\|\||[;|]| +""")
_STATEMENT_SKIP = frozenset(
    {
        ";",
        ";;",
        "&",
        "&&",
        "||",
        "|",
        "|&",
        "\n",
        "(",
        ")",
        "{",
        "}",
        "do",
        "done",
        "then",
        "fi",
        "if",
        "elif",
        "else",
        "while",
        "until",
        "for",
        "in",
        "case",
        "esac",
        "comment",
        "heredoc_body",
        "heredoc_end",
        "heredoc_start",
        "function",
        "select",
        "!",
    }
)


@dataclass(slots=True)
class Stream:
    """What the parser knows about bytes flowing into stdin or out of stdout."""

    data: bytes | None = None  # None: content not statically known
    network: bool = False  # derived from a network fetch
    decoders: tuple[str, ...] = ()  # decoding steps applied on the way (base64, hex, ...)
    source: str = "pipe"  # pipe | heredoc | here_string | procsub | file

    def text(self) -> str | None:
        return None if self.data is None else self.data.decode("utf-8", "replace")


class _Ctx:
    """How the commands found in one region of input are reached (origin, wrappers, depth)."""

    __slots__ = ("background", "depth", "obf", "origin", "privileged", "src", "wrappers")

    def __init__(self, src, depth=0, origin="top", wrappers=(), privileged=False, background=False, obf=()):
        self.src = src
        self.depth = depth
        self.origin = origin
        self.wrappers = wrappers
        self.privileged = privileged
        self.background = background
        self.obf = obf

    def derive(self, **changes) -> _Ctx:
        ctx = _Ctx(
            self.src, self.depth, self.origin, self.wrappers, self.privileged, self.background, self.obf
        )
        for key, value in changes.items():
            setattr(ctx, key, value)
        return ctx


class _WordState:
    """Facts gathered while evaluating the words of one command."""

    __slots__ = ("decoders", "dynamic", "glob", "network", "obf")

    def __init__(self):
        self.dynamic = False
        self.obf: list[str] = []
        self.decoders: tuple[str, ...] = ()
        self.network = False
        self.glob = False

    def add_obf(self, label: str) -> None:
        if label not in self.obf:
            self.obf.append(label)


@dataclass(slots=True)
class _Outcome:
    stdout: Stream | None = None
    main: SimpleCommand | None = None  # innermost command (next pipeline stage reads from it)
    render: str | None = None  # one-line rendering of what ran


_EMPTY = _Outcome()


def _add(items: list[str], label: str) -> None:
    if label not in items:
        items.append(label)


class Analyzer:
    """Walks one input and fills a ParseResult. Create one per parse() call."""

    def __init__(self, result: ParseResult, home: str, cwd: str | None):
        self.result = result
        self.home = home or "/root"
        self.cwd = cwd
        self.cwd_from_cd = False
        self.vars: dict[str, str | list[str]] = {}
        self.dynamic_vars: set[str] = set()
        self.namerefs: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        self.functions: dict[str, tuple[tree_sitter.Node, bytes]] = {}
        self.called_functions: set[str] = set()
        # (name, definition) of functions being walked: a function that redefines itself
        # and calls the new body is not recursion, calling the same body again is.
        self.call_stack: list[tuple[str, int]] = []
        self.positional: list[str] = []
        self.procsubs: dict[str, Stream] = {}
        self.files: dict[str, Stream] = {}  # scripts written earlier in the same input
        self.network_fds: set[int] = set()  # descriptors opened on /dev/tcp or /dev/udp
        self.units: list[str | None] = []
        self.nodes = 0
        self.tree_depth = 0
        self.exhausted = False
        self._env: dict[str, str] | None = None

    @property
    def parser(self) -> tree_sitter.Parser:
        return _parser()

    @property
    def env(self) -> dict[str, str]:
        """The environment assumed for variables the input does not set (built on first use)."""
        if self._env is None:
            user = self.home.rstrip("/").rsplit("/", 1)[-1] or "root"
            self._env = {
                "HOME": self.home,
                "PATH": _DEFAULT_PATH,
                "IFS": " \t\n",
                "SHELL": "/bin/bash",
                "USER": user,
                "LOGNAME": user,
                "PWD": self.cwd or self.home,
                "TMPDIR": "/tmp",
            }
        return self._env

    # ------------------------------------------------------------------ entry points

    def run(self, text: str) -> None:
        text = _without_astral(text)
        if _FAST_PATH.match(text):
            statements = _fast_statements(text)
            if statements is not None:
                self.run_fast(text, statements)
                return
        self.parse_text(text, _Ctx(b""), top=True)
        self._walk_uncalled_functions()

    def run_fast(self, text: str, statements) -> None:
        """Plain commands joined by ; && || | skip tree-sitter; same results as the tree walk."""
        ctx = _Ctx(text.encode())
        for pipeline in statements:
            slot = self._reserve_unit()
            previous_out = None
            previous_main = None
            renders = []
            for argv, name_quoted, raw in pipeline:
                state = _WordState()
                argv = [self._fast_tilde(word, state) if word[:1] == "~" else word for word in argv]
                outcome = self.exec_argv(
                    argv,
                    [False] * len(argv),
                    ctx,
                    state,
                    raw=raw,
                    stdin=previous_out,
                    pipe_from=previous_main,
                    name_quoted=name_quoted,
                )
                renders.append(outcome.render or raw)
                previous_out = outcome.stdout if outcome.stdout is not None else Stream()
                previous_main = outcome.main or previous_main
                if (
                    previous_out.network is False
                    and previous_main is not None
                    and previous_main.stdin_is_network
                    and previous_out.data is None
                ):
                    previous_out = Stream(None, True, previous_out.decoders)
            # A lone command keeps its own rendering (None for an alias: its expansion renders).
            self.units[slot] = " | ".join(renders) if len(pipeline) > 1 else outcome.render

    def _fast_tilde(self, word: str, state: _WordState) -> str:
        """Tilde expansion of an unquoted fast-path word, exactly as ``_segments`` does it."""
        text, other_user = words.expand_tilde(word, self.home)
        if other_user:
            state.add_obf("tilde_user")
        return text

    def parse_text(
        self,
        text: str,
        ctx: _Ctx,
        *,
        top: bool = False,
        stdin: Stream | None = None,
        positional: list[str] | None = None,
    ) -> _Outcome:
        """Parse a shell string (the input, or one run by sh -c/eval/a decoder) and walk it."""
        if not top:
            if ctx.depth >= MAX_UNWRAP_DEPTH:
                self._flag("too_deep", "nested shell strings exceed the unwrap depth limit")
                return _Outcome(Stream())
            ctx = ctx.derive(depth=ctx.depth + 1)
        if "\\\n" in text:
            text = _join_continuations(text)
        text = _without_astral(text)
        src = text.encode("utf-8", "replace")
        if len(src) > MAX_NESTED_SOURCE and not top:
            src = src[:MAX_NESTED_SOURCE]
            self._flag("truncated", "a nested shell string was cut to the parse limit")
        src = self._cap_nesting(src)
        tree = self.parser.parse(src)
        root = tree.root_node
        broken = False
        if root.has_error and b"<>" in src:
            # tree-sitter-bash does not know the read-write redirection `3<>/dev/tcp/...`;
            # judged as `3>` it keeps its target visible to the rules.
            retry_src = re.sub(rb"(\d*)<>", rb"\1>", src)
            retry = self.parser.parse(retry_src)
            if not retry.root_node.has_error:
                src, root = retry_src, retry.root_node
        if root.has_error:
            rewritten = _rewrite_command_braces(src)
            if rewritten is not None:
                # `{rm,-rf,/}` in command position: bash brace-expands it, tree-sitter cannot.
                retry = self.parser.parse(rewritten)
                if not retry.root_node.has_error:
                    src, root = rewritten, retry.root_node
                    ctx = ctx.derive(obf=ctx.obf + ("brace_expansion",))
        if root.has_error and not _only_heredoc_quirks(root):
            broken = True
            self._flag(
                "parse_error", "syntax error in %s" % ("input" if top else f"nested string ({ctx.origin})")
            )
            repaired = self._repair(src)
            if repaired is not None:
                retry = self.parser.parse(repaired)
                if not retry.root_node.has_error:
                    src, root = repaired, retry.root_node
                    broken = False
        ctx = ctx.derive(src=src)
        saved = self.positional
        if positional is not None:
            self.positional = positional
        try:
            before = len(self.result.commands)
            outcome = self.walk(root, ctx, stdin)
            if broken and len(self.result.commands) == before:
                # The tolerant tokenizer is pure Python: give it a bounded prefix.
                self._fallback(src[:MAX_FALLBACK_BYTES].decode("utf-8", "ignore"), ctx)
            return outcome
        finally:
            self.positional = saved

    def _cap_nesting(self, src: bytes) -> bytes:
        """Cut input whose bracket nesting is absurd: tree-sitter slows down sharply on it."""
        if src.count(b"(") + src.count(b"{") <= MAX_SOURCE_NESTING:
            return src
        depth = 0
        for match in _NESTING_CHARS.finditer(src):
            depth += 1 if match.group(0) in (b"(", b"{") else -1
            if depth > MAX_SOURCE_NESTING:
                self._flag(
                    "too_deep",
                    f"brackets nest more than {MAX_SOURCE_NESTING} deep; the rest was not analysed",
                )
                self._flag("truncated")
                self._flag("unresolved")
                return src[: match.start()]
        return src

    def _fallback(self, text: str, ctx: _Ctx) -> None:
        """Tolerant tokenizer for input tree-sitter cannot make sense of: judge the words anyway."""
        for argv in _fallback_statements(text):
            slot = self._reserve_unit()
            state = _WordState()
            expanded: list[str] = []
            for word in argv:
                if word.startswith("~"):
                    word, _ = words.expand_tilde(word, self.home)
                expanded.extend(words.brace_expand(word) if "{" in word else [word])
            outcome = self.exec_argv(
                expanded, [False] * len(expanded), ctx.derive(origin=ctx.origin), state, raw=" ".join(argv)
            )
            self.units[slot] = outcome.render

    @staticmethod
    def _repair(src: bytes) -> bytes | None:
        """Close an unbalanced quote/substitution so the rest of the input can still be judged."""
        if len(src) > MAX_FALLBACK_BYTES * 4:
            return None
        state: list[str] = []
        i = 0
        n = len(src)
        while i < n:
            ch = src[i : i + 1]
            top = state[-1] if state else ""
            if top == "'":
                if ch == b"'":
                    state.pop()
            elif ch == b"\\":
                i += 1
            elif top == '"' and ch == b'"':
                state.pop()
            elif ch == b'"' and top != '"':
                state.append('"')
            elif ch == b"'" and top != '"':
                state.append("'")
            elif ch == b"`":
                if top == "`":
                    state.pop()
                else:
                    state.append("`")
            elif src[i : i + 2] == b"$(" and top != "'":
                state.append(")")
                i += 1
            elif ch == b")" and top == ")":
                state.pop()
            i += 1
            if len(state) > 256:
                return None
        if not state:
            return None
        return src + "".join(reversed(state)).encode()

    def _walk_uncalled_functions(self) -> None:
        # A function that is defined but never called by name may still run (trap, $f, later
        # input); judge its body once so it is never silently treated as inert data.
        for name, (body, src) in list(self.functions.items()):
            if name in self.called_functions or len(self.result.commands) >= MAX_COMMANDS:
                continue
            self.called_functions.add(name)
            self.call_stack.append((name, body.id))
            try:
                self.walk(body, _Ctx(src, depth=1, origin="function", obf=("function_definition",)), None)
            finally:
                self.call_stack.pop()

    # ------------------------------------------------------------------ bookkeeping

    def _flag(self, flag: str, message: str | None = None) -> None:
        if flag not in self.result.flags:
            self.result.flags.add(flag)
            if message:
                self.result.errors.append(message)

    def _reserve_unit(self) -> int:
        self.units.append(None)
        return len(self.units) - 1

    def _budget(self) -> bool:
        self.nodes += 1
        if self.nodes > MAX_NODES or len(self.result.commands) >= MAX_COMMANDS:
            self.exhausted = True
            self._flag("truncated", "analysis stopped at the work limit")
            return False
        return True

    def _text(self, node: tree_sitter.Node, ctx: _Ctx) -> str:
        return ctx.src[node.start_byte : node.end_byte].decode("utf-8", "replace")

    # ------------------------------------------------------------------ statements

    def walk(self, node: tree_sitter.Node, ctx: _Ctx, stdin: Stream | None, pipe_from=None) -> _Outcome:
        if not self._budget():
            return _EMPTY
        if self.tree_depth >= MAX_TREE_DEPTH:
            self._flag("too_deep", "syntax nesting exceeds the depth limit")
            self._flag("unresolved")
            return _Outcome(Stream())
        # One counter for the whole call (nested strings included) keeps Python's own
        # recursion far below its limit whatever the input looks like.
        self.tree_depth += 1
        try:
            return self._walk(node, ctx, stdin, pipe_from)
        finally:
            self.tree_depth -= 1

    def _walk(self, node: tree_sitter.Node, ctx: _Ctx, stdin: Stream | None, pipe_from) -> _Outcome:
        kind = node.type
        if kind == "command":
            return self._command(node, ctx, stdin, [], pipe_from)
        if kind == "pipeline":
            return self._pipeline([c for c in node.children if c.is_named], ctx, stdin, pipe_from)
        if kind == "redirected_statement":
            return self._redirected(node, ctx, stdin, pipe_from)
        if kind in (
            "program",
            "list",
            "subshell",
            "compound_statement",
            "do_group",
            "else_clause",
            "elif_clause",
            "if_statement",
            "while_statement",
            "until_statement",
            "negated_command",
        ):
            return self._sequence(node.children, ctx, stdin, pipe_from)
        if kind == "for_statement":
            return self._for(node, ctx, stdin)
        if kind == "case_statement":
            return self._case(node, ctx, stdin)
        if kind == "function_definition":
            self._define_function(node, ctx)
            return _Outcome(Stream(b""))
        if kind == "variable_assignment":
            assigned = self._assign(node, ctx)
            render = None
            if assigned is not None:
                name, value, _dynamic = assigned
                shown = (
                    "({})".format(" ".join(words.quote(v) for v in value))
                    if isinstance(value, list)
                    else words.quote(value)
                )
                render = f"{name}={shown}"
            return _Outcome(Stream(b""), None, render)
        if kind == "variable_assignments":
            for child in node.named_children:
                if child.type == "variable_assignment":
                    self._assign(child, ctx)
            return _Outcome(Stream(b""))
        if kind == "declaration_command":
            argv = self._declaration_argv(node, ctx)
            self._declare(node, ctx)
            return self.exec_argv(
                argv,
                [False] * len(argv),
                ctx,
                _WordState(),
                raw=self._text(node, ctx),
                pipe_from=pipe_from,
                state_effects=False,
            )
        if kind == "unset_command":
            argv = [node.children[0].type if node.children else "unset"]
            for child in node.named_children:
                name = self._text(child, ctx)
                argv.append(name)
                self.vars.pop(name, None)
                self.namerefs.pop(name, None)
            # unset HISTFILE and friends matter to rules: emit it like any command.
            return self.exec_argv(
                argv,
                [False] * len(argv),
                ctx,
                _WordState(),
                raw=self._text(node, ctx),
                pipe_from=pipe_from,
                state_effects=False,
            )
        if kind == "comment":
            return _Outcome(Stream(b""))
        if kind == "ERROR":
            self._flag("parse_error", f"syntax error near byte {node.start_byte}")
            return self._sequence(node.children, ctx, stdin, pipe_from)
        # test_command, arithmetic, c-style for, anything else: run what it substitutes.
        self._scan_substitutions(node, ctx)
        if kind == "c_style_for_statement":
            body = node.child_by_field_name("body")
            if body is not None:
                return self.walk(body, ctx, stdin)
        return _Outcome(Stream())

    def _sequence(self, children, ctx: _Ctx, stdin: Stream | None, pipe_from=None) -> _Outcome:
        outputs: list[Stream] = []
        main = None
        count = len(children)
        for index, child in enumerate(children):
            if self.exhausted:
                break
            kind = child.type
            if not child.is_named or kind in _STATEMENT_SKIP:
                continue
            background = index + 1 < count and children[index + 1].type == "&"
            child_ctx = ctx.derive(background=True) if background and not ctx.background else ctx
            before = len(self.result.commands)
            if kind in _UNIT_KINDS:
                slot = self._reserve_unit()
                outcome = self.walk(child, child_ctx, stdin, pipe_from)
                self.units[slot] = outcome.render
            else:
                outcome = self.walk(child, child_ctx, stdin, pipe_from)
            if pipe_from is not None:
                # Only the first command of a compound pipeline stage reads the pipe.
                for command in self.result.commands[before : before + 1]:
                    command.stdin_from = command.stdin_from or pipe_from
                pipe_from = None
            stdin = None
            if outcome.stdout is not None:
                outputs.append(outcome.stdout)
            else:
                outputs.append(Stream())
            if outcome.main is not None:
                main = outcome.main
        return _Outcome(_concat(outputs), main)

    def _pipeline(self, stages, ctx: _Ctx, stdin: Stream | None, pipe_from=None) -> _Outcome:
        renders: list[str] = []
        previous_out = stdin
        previous_main = pipe_from
        for stage in stages:
            if stage.type == "comment":
                continue
            if stage.type == "command":
                outcome = self._command(stage, ctx, previous_out, [], previous_main)
            elif stage.type == "redirected_statement":
                outcome = self._redirected(stage, ctx, previous_out, previous_main)
            else:
                outcome = self._sequence([stage], ctx, previous_out, previous_main)
                if outcome.render is None:
                    outcome.render = " ".join(self._text(stage, ctx).split())
            renders.append(outcome.render or self._text(stage, ctx))
            previous_out = outcome.stdout if outcome.stdout is not None else Stream()
            previous_main = outcome.main or previous_main
            if (
                previous_out.network is False
                and previous_main is not None
                and previous_main.stdin_is_network
                and previous_out.data is None
            ):
                previous_out = Stream(None, True, previous_out.decoders)
        return _Outcome(previous_out, previous_main, " | ".join(renders))

    def _redirected(self, node, ctx: _Ctx, stdin: Stream | None, pipe_from) -> _Outcome:
        body = node.child_by_field_name("body")
        redirect_nodes = [
            c for c in node.children if c.type in ("file_redirect", "heredoc_redirect", "herestring_redirect")
        ]
        redirects, extra_args, redirect_stdin, continuation = self._redirects(redirect_nodes, ctx)
        effective_stdin = redirect_stdin or stdin
        if body is None:
            if not redirects:
                return _Outcome(Stream())
            # `> ~/.bash_history` alone is bash's null command with redirections: the file
            # is still opened and truncated (or created). Judge it as `: > file`.
            return self.exec_argv(
                [":"],
                [False],
                ctx,
                _WordState(),
                stdin=effective_stdin,
                redirects=redirects,
                raw=self._text(node, ctx),
                pipe_from=pipe_from,
            )
        if body.type == "command":
            outcome = self._command(body, ctx, effective_stdin, redirects, pipe_from, extra_args)
        elif body.type == "pipeline":
            stages = [c for c in body.children if c.is_named]
            # Redirections written after a pipeline belong to its last stage.
            outcome = self._pipeline_with_last_redirects(
                stages, ctx, stdin, pipe_from, redirects, redirect_stdin
            )
        elif body.type == "list":
            outcome = self._list_with_last_redirects(body, ctx, stdin, pipe_from, redirects, redirect_stdin)
        else:
            before = len(self.result.commands)
            outcome = self.walk(body, ctx, effective_stdin, pipe_from)
            for command in self.result.commands[before:]:
                command.redirects.extend(r for r in redirects if r.op not in ("<<", "<<-", "<<<"))
        # tree-sitter hangs `cmd <<EOF | sh` / `cmd <<EOF && next` off the heredoc node.
        for op, cont in continuation:
            if op == "|":
                stages = [c for c in cont.children if c.is_named]
                piped = self._pipeline(stages, ctx, outcome.stdout or Stream(), outcome.main)
                render = (outcome.render or "") + " | " + (piped.render or "")
                outcome = _Outcome(piped.stdout, piped.main, render)
            else:
                slot = self._reserve_unit()
                after = self.walk(cont, ctx, None)
                self.units[slot] = after.render
        return outcome

    def _list_with_last_redirects(self, body, ctx, stdin, pipe_from, redirects, redirect_stdin) -> _Outcome:
        # `a || b > f`: the redirection belongs to b only.
        children = body.children
        last_index = max((i for i, c in enumerate(children) if c.is_named), default=-1)
        if last_index < 0:
            return _Outcome(Stream())
        first = self._sequence(children[:last_index], ctx, stdin, pipe_from)
        last = children[last_index]
        slot = self._reserve_unit()
        if last.type == "command":
            tail = self._command(last, ctx, redirect_stdin, redirects, None)
        elif last.type == "pipeline":
            tail = self._pipeline_with_last_redirects(
                [c for c in last.children if c.is_named], ctx, None, None, redirects, redirect_stdin
            )
        elif last.type == "list":
            tail = self._list_with_last_redirects(last, ctx, None, None, redirects, redirect_stdin)
        else:
            tail = self.walk(last, ctx, redirect_stdin)
        self.units[slot] = tail.render
        return _Outcome(
            _concat([first.stdout or Stream(), tail.stdout or Stream()]), tail.main or first.main, None
        )

    def _pipeline_with_last_redirects(self, stages, ctx, stdin, pipe_from, redirects, redirect_stdin):
        if not stages:
            return _Outcome(Stream())
        head, last = stages[:-1], stages[-1]
        first = self._pipeline(head, ctx, stdin, pipe_from) if head else _Outcome(stdin, pipe_from, None)
        last_stdin = redirect_stdin or first.stdout or Stream()
        if last.type == "command":
            tail = self._command(last, ctx, last_stdin, redirects, first.main)
        else:
            tail = self._pipeline([last], ctx, last_stdin, first.main)
        render = " | ".join(r for r in (first.render, tail.render) if r)
        return _Outcome(tail.stdout, tail.main, render)

    def _for(self, node, ctx: _Ctx, stdin) -> _Outcome:
        variable = node.child_by_field_name("variable")
        body = node.child_by_field_name("body")
        values: list[str] = []
        dynamic = False
        for child in node.children_by_field_name("value"):
            state = _WordState()
            values.extend(self.eval_word(child, ctx, state))
            dynamic = dynamic or state.dynamic
        name = self._text(variable, ctx) if variable is not None else ""
        if body is None:
            return _Outcome(Stream())
        if dynamic or not values:
            if name:
                self.vars[name] = "$" + name
                self.dynamic_vars.add(name)
            return self.walk(body, ctx, stdin)
        outcome = _EMPTY
        for value in values[:MAX_LOOP_VALUES]:
            if name:
                self._set_var(name, value, False)
            outcome = self.walk(body, ctx, stdin)
        return outcome

    def _case(self, node, ctx: _Ctx, stdin) -> _Outcome:
        subject = node.child_by_field_name("value")
        if subject is not None:
            self.eval_word(subject, ctx, _WordState())
        outcome = _EMPTY
        for item in node.named_children:
            if item.type != "case_item":
                continue
            statements = [
                c
                for c in item.children
                if c.is_named and item.field_name_for_child(item.children.index(c)) != "value"
            ]
            outcome = self._sequence(statements, ctx, stdin)
        return outcome

    def _define_function(self, node, ctx: _Ctx) -> None:
        name_node = node.child_by_field_name("name")
        body = node.child_by_field_name("body")
        if name_node is None or body is None:
            return
        name = self._text(name_node, ctx)
        self.functions[name] = (body, ctx.src)
        self.called_functions.discard(name)
        self.result.functions[name] = self._text(body, ctx)

    def _scan_substitutions(self, node, ctx: _Ctx) -> None:
        stack = list(node.children)
        while stack:
            child = stack.pop()
            if not self._budget():
                return
            if child.type in ("command_substitution", "process_substitution"):
                self.eval_word(child, ctx, _WordState())
            elif child.type in ("variable_assignment",):
                self._assign(child, ctx)
            else:
                stack.extend(child.children)

    # ------------------------------------------------------------------ assignments

    def _set_var(self, name: str, value, dynamic: bool, *, append: bool = False) -> None:
        for _ in range(8):
            if name in self.namerefs:
                name = self.namerefs[name]
        if append:
            old = self.vars.get(name)
            if isinstance(old, list) or isinstance(value, list):
                value = (old if isinstance(old, list) else ([old] if old else [])) + (
                    value if isinstance(value, list) else [value]
                )
            else:
                value = (old or "") + value
        self.vars[name] = value
        if dynamic:
            self.dynamic_vars.add(name)
        else:
            self.dynamic_vars.discard(name)
        if len(self.result.assignments) < 256:
            self.result.assignments[name] = " ".join(value) if isinstance(value, list) else value

    def _assign(self, node, ctx: _Ctx, *, persist: bool = True) -> tuple[str, str | list[str], bool] | None:
        name_node = node.child_by_field_name("name")
        value_node = node.child_by_field_name("value")
        if name_node is None:
            return None
        append = any(c.type == "+=" for c in node.children)
        index = None
        if name_node.type == "subscript":
            var = name_node.child_by_field_name("name")
            index_node = name_node.child_by_field_name("index")
            name = self._text(var, ctx) if var is not None else self._text(name_node, ctx)
            index = self._text(index_node, ctx) if index_node is not None else None
        else:
            name = self._text(name_node, ctx)
        state = _WordState()
        if value_node is None:
            value: str | list[str] = ""
        elif value_node.type == "array":
            value = []
            for element in value_node.named_children:
                value.extend(self.eval_word(element, ctx, state))
        else:
            value = " ".join(self.eval_word(value_node, ctx, state, assignment=True))
        if persist:
            if index is not None:
                current = self.vars.get(name)
                items = list(current) if isinstance(current, list) else ([current] if current else [])
                if index.isdigit() and int(index) < 1024:
                    position = int(index)
                    items.extend([""] * (position + 1 - len(items)))
                    items[position] = value if isinstance(value, str) else " ".join(value)
                    self._set_var(name, items, state.dynamic)
            else:
                self._set_var(name, value, state.dynamic, append=append)
        return name, value, state.dynamic

    def _declaration_argv(self, node, ctx: _Ctx) -> list[str]:
        argv = [node.children[0].type if node.children else "declare"]
        for child in node.named_children:
            if child.type == "variable_assignment":
                name_node = child.child_by_field_name("name")
                value_node = child.child_by_field_name("value")
                value = ""
                if value_node is not None:
                    raw = self._text(value_node, ctx)
                    if value_node.type == "array" or "$(" in raw or "`" in raw or "<(" in raw or ">(" in raw:
                        # Substitutions run once, in _declare; show them here as written.
                        value = raw
                    else:
                        value = " ".join(self.eval_word(value_node, ctx, _WordState(), assignment=True))
                argv.append(
                    "{}={}".format(self._text(name_node, ctx) if name_node is not None else "", value)
                )
            else:
                argv.extend(self.eval_word(child, ctx, _WordState()))
        return argv

    def _declare(self, node, ctx: _Ctx) -> None:
        flags = ""
        for child in node.children:
            if child.type == "word":
                text = self._text(child, ctx)
                if text.startswith("-"):
                    flags += text[1:]
        for child in node.named_children:
            if child.type != "variable_assignment":
                continue
            if "n" in flags:
                name_node = child.child_by_field_name("name")
                value_node = child.child_by_field_name("value")
                if name_node is not None and value_node is not None:
                    target = " ".join(self.eval_word(value_node, ctx, _WordState()))
                    self.namerefs[self._text(name_node, ctx)] = target
            else:
                self._assign(child, ctx)

    # ------------------------------------------------------------------ lookups

    def lookup(self, name: str) -> tuple[str | list[str] | None, bool, str]:
        """(value, dynamic, kind) of a variable; kind is "var" (set in the input), "env" or ""."""
        for _ in range(8):
            if name in self.namerefs:
                name = self.namerefs[name]
            else:
                break
        if name in self.vars:
            return self.vars[name], name in self.dynamic_vars, "var"
        if name.isdigit():
            position = int(name)
            if position == 0:
                return "bash", False, "env"
            if position <= len(self.positional):
                return self.positional[position - 1], False, "var"
            return None, True, ""
        if name in self.env:
            return self.env[name], False, "env"
        return None, True, ""

    def _special(self, name: str, quoted: bool, segments: list, state: _WordState) -> bool:
        if name in ("@", "*"):
            if not self.positional:
                return True
            state.add_obf("var_indirection")
            if quoted and name == "@":
                for index, item in enumerate(self.positional):
                    if index:
                        segments.append(("B", ""))
                    segments.append(("E", item))
            else:
                segments.append(("E" if quoted else "S", " ".join(self.positional)))
            return True
        if name == "#":
            segments.append(("E", str(len(self.positional))))
            return True
        if name in ("?", "$", "!", "-"):
            segments.append(("E", {"?": "0", "$": "4242", "!": "4243", "-": "hB"}[name]))
            return True
        return False

    # ------------------------------------------------------------------ words

    def eval_word(self, node, ctx: _Ctx, state: _WordState, *, assignment: bool = False) -> list[str]:
        """The fields a word expands to (after quote removal, expansion, splitting, braces)."""
        segments: list[tuple[str, str]] = []
        self._segments(node, ctx, False, segments, state, True)
        ifs = self.vars.get("IFS")
        fields = _assemble(segments, _ifs_splitter(ifs) if isinstance(ifs, str) else _DEFAULT_SPLIT)
        if assignment:
            return ["".join(text for _, text in segments)]
        if "ifs_substitution" in state.obf:
            # rm${IFS}-rf${IFS}~ : judge the ~ as the home directory it is meant to name.
            fields = [words.expand_tilde(f, self.home)[0] if f.startswith("~") else f for f in fields]
        brace = any(kind == "U" and "{" in text for kind, text in segments)
        if brace and (len(fields) == 1):
            expanded = words.brace_expand(fields[0])
            if len(expanded) > 1:
                state.add_obf("brace_expansion_used")
                return expanded
        return fields

    def _segments(self, node, ctx: _Ctx, quoted: bool, out: list, state: _WordState, first: bool) -> None:
        if not self._budget():
            return
        kind = node.type
        if kind in (
            "word",
            "number",
            "brace_expression",
            "extglob_pattern",
            "regex",
            "special_variable_name",
            "variable_name",
            "test_operator",
            "file_descriptor",
        ):
            raw = self._text(node, ctx)
            if quoted:
                out.append(("Q", raw))
                return
            text, escaped = words.unescape_unquoted(raw)
            if escaped:
                state.add_obf("backslash_escape")
            if first and raw.startswith("~"):
                text, other_user = words.expand_tilde(text, self.home)
                if other_user:
                    state.add_obf("tilde_user")
            if words.has_glob(raw):
                state.glob = True
            out.append(("U", text))
            return
        if kind == "string" or kind == "translated_string":
            self._string(node, ctx, out, state)
            return
        if kind == "raw_string":
            out.append(("Q", self._text(node, ctx)[1:-1]))
            return
        if kind == "ansi_c_string":
            text, numeric = decode.ansi_c(self._text(node, ctx)[2:-1])
            if numeric:
                state.add_obf("ansi_c")
                if "ansi_c" not in state.decoders:
                    state.decoders = state.decoders + ("ansi_c",)
            out.append(("Q", text))
            return
        if kind == "concatenation":
            children = node.children
            self._detect_quote_splitting(children, ctx, state)
            for index, child in enumerate(children):
                self._segments(child, ctx, quoted, out, state, first and index == 0)
            return
        if kind == "simple_expansion":
            self._simple_expansion(self._text(node, ctx)[1:], quoted, out, state)
            return
        if kind == "expansion":
            self._scan_substitutions(node, ctx)
            self._braced_expansion(self._text(node, ctx), quoted, out, state)
            return
        if kind == "command_substitution":
            stream = self._substitute(node, ctx)
            if stream is None or stream.data is None:
                state.dynamic = True
                if stream is not None and stream.network:
                    state.network = True
                out.append(("Q", self._text(node, ctx)))
                return
            text = stream.text().rstrip("\n")
            if stream.source != "value":
                # $(echo rm), $(printf ...): static text spelled through a substitution hides it.
                state.add_obf("command_substitution")
            for decoder in stream.decoders:
                state.add_obf(decoder)
            state.decoders = state.decoders + stream.decoders
            state.network = state.network or stream.network
            out.append(("E" if quoted else "S", text))
            return
        if kind == "process_substitution":
            out.append(("Q", self._process_substitution(node, ctx)))
            return
        if kind == "arithmetic_expansion":
            self._scan_substitutions(node, ctx)
            raw = self._text(node, ctx)
            inner = raw[3:-2]
            value = raw
            if _ARITH_SAFE.match(inner) and len(inner) < 64 and "**" not in inner:
                try:
                    value = str(int(eval(inner, {"__builtins__": {}}, {})))
                except (ArithmeticError, SyntaxError, ValueError, TypeError):
                    value = raw
            out.append(("E", value))
            return
        if kind == "ERROR":
            self._flag("parse_error", f"syntax error near byte {node.start_byte}")
        # Anything else (arrays in odd places, unknown node types): keep the text as written.
        self._scan_substitutions(node, ctx)
        out.append(("Q" if quoted else "U", self._text(node, ctx)))

    def _string(self, node, ctx: _Ctx, out: list, state: _WordState) -> None:
        start = node.start_byte + (2 if node.type == "translated_string" else 1)
        end = node.end_byte - 1
        position = start
        produced = False
        for child in node.children:
            if not child.is_named:
                continue
            if child.start_byte > position:
                out.append(
                    (
                        "Q",
                        words.unescape_double_quoted(
                            ctx.src[position : child.start_byte].decode("utf-8", "replace")
                        ),
                    )
                )
                produced = True
            if child.type == "string_content":
                out.append(("Q", words.unescape_double_quoted(self._text(child, ctx))))
            else:
                self._segments(child, ctx, True, out, state, False)
            produced = True
            position = child.end_byte
        if end > position:
            out.append(("Q", words.unescape_double_quoted(ctx.src[position:end].decode("utf-8", "replace"))))
            produced = True
        if not produced:
            out.append(("Q", ""))

    def _detect_quote_splitting(self, children, ctx: _Ctx, state: _WordState) -> None:
        # r''m, "r"m, -r"f", 'sh'red: quotes inside a plain word only serve to hide it.
        has_word = False
        quoted_plain = False
        for child in children:
            kind = child.type
            if kind == "word":
                has_word = True
            elif kind in ("raw_string", "string"):
                content = self._text(child, ctx)[1:-1]
                if content == "" or re.fullmatch(r"[A-Za-z0-9_.-]+", content):
                    quoted_plain = True
        if quoted_plain and (has_word or len(children) > 1):
            texts = [self._text(c, ctx) for c in children]
            if not any(t.endswith("=") for t in texts):
                state.add_obf("quoting")

    def _simple_expansion(self, name: str, quoted: bool, out: list, state: _WordState) -> None:
        if self._special(name, quoted, out, state):
            return
        value, dynamic, source = self.lookup(name)
        if value is None:
            state.dynamic = True
            out.append(("Q", "$" + name))
            return
        if isinstance(value, list):
            value = value[0] if value else ""
        self._note_variable(source, name, dynamic, state)
        if name == "IFS" and not quoted:
            state.add_obf("ifs_substitution")
        out.append(("E" if quoted else "S", value))

    def _note_variable(self, source: str, name: str, dynamic: bool, state: _WordState) -> None:
        if dynamic:
            state.dynamic = True
        if source == "var":
            state.add_obf("var_indirection")

    def _braced_expansion(self, raw: str, quoted: bool, out: list, state: _WordState) -> None:
        inner = raw[2:-1]
        match = _BRACED.match(inner)
        if not match:
            state.dynamic = True
            out.append(("Q", raw))
            return
        prefix, name, index, op = (
            match.group("pre"),
            match.group("name"),
            match.group("idx"),
            match.group("op"),
        )
        if not prefix and index is None and not op and self._special(name, quoted, out, state):
            return
        if prefix == "!" and index is None and not op.startswith(("*", "@")):
            target, dynamic, _ = self.lookup(name)
            if target is None or isinstance(target, list) or dynamic:
                state.dynamic = True
                out.append(("Q", raw))
                return
            state.add_obf("var_indirection")
            name = target
        value, dynamic, source = self.lookup(name)
        if name in ("@", "*"):
            value, dynamic, source = list(self.positional), False, "var"
        whole_array = False
        if index is not None:
            if isinstance(value, list):
                if index in ("@", "*"):
                    whole_array = index == "@"
                else:
                    position = self._index(index)
                    value = (
                        value[position]
                        if position is not None and -len(value) <= position < len(value)
                        else ("" if position is not None else None)
                    )
            elif value is not None and index not in ("@", "*", "0"):
                value = ""
        elif isinstance(value, list):
            value = value[0] if value else ""
            if name in ("@", "*"):
                whole_array = True
                value = list(self.positional)
        if prefix == "#":
            length = len(value) if value is not None else 0
            out.append(("E", str(length)))
            return
        if value is not None:
            self._note_variable(source, name, dynamic, state)
        result = self._apply_operator(value, op, state)
        if result is _UNRESOLVED:
            state.dynamic = True
            out.append(("Q", raw))
            return
        if result is None:
            state.dynamic = True
            out.append(("Q", raw))
            return
        if name == "IFS" and not quoted:
            state.add_obf("ifs_substitution")
        if isinstance(result, list):
            if quoted and whole_array:
                for position, item in enumerate(result):
                    if position:
                        out.append(("B", ""))
                    out.append(("E", item))
            else:
                out.append(("E" if quoted else "S", " ".join(result)))
            return
        out.append(("E" if quoted else "S", result))

    def _index(self, index: str) -> int | None:
        index = index.strip()
        if re.fullmatch(r"-?\d+", index):
            return int(index)
        value, dynamic, _ = self.lookup(index.lstrip("$"))
        if isinstance(value, str) and re.fullmatch(r"-?\d+", value) and not dynamic:
            return int(value)
        return None

    def _inline(self, text: str, state: _WordState) -> str | None:
        """Expand a ${x:-default} operand: quotes removed, simple variables substituted."""
        if "$(" in text or "`" in text:
            return None
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            text = text[1:-1]
        failed = False

        def substitute(match):
            nonlocal failed
            value, dynamic, _ = self.lookup(match.group(1) or match.group(2))
            if value is None or dynamic:
                failed = True
                return match.group(0)
            return " ".join(value) if isinstance(value, list) else value

        text = _INLINE_VAR.sub(substitute, text)
        if text.startswith("~"):
            text, _ = words.expand_tilde(text, self.home)
        return None if failed else text

    def _apply_operator(self, value, op: str, state: _WordState):
        if not op:
            return value
        if op.startswith("@"):
            return value
        match = re.match(r"^(:?)([-=?+])(.*)$", op, re.DOTALL)
        if match and not _SUBSTRING.match(op):
            colon, operator, operand = match.groups()
            is_set = value is not None and not (colon and (value == "" or value == []))
            if operator in "-=":
                if is_set:
                    return value
                state.add_obf("env_expansion")
                return self._inline(operand, state) if operand else ""
            if operator == "+":
                return (self._inline(operand, state) if operand else "") if is_set else ""
            return value if is_set else _UNRESOLVED
        if value is None:
            return _UNRESOLVED
        substring = _SUBSTRING.match(op)
        if substring:
            state.add_obf("env_expansion")
            offset = int(substring.group(1))
            length = int(substring.group(2)) if substring.group(2) is not None else None
            sequence = value
            if offset < 0:
                offset = max(0, len(sequence) + offset)
            if length is None:
                return sequence[offset:]
            if length < 0:
                return sequence[offset : len(sequence) + length]
            return sequence[offset : offset + length]
        if isinstance(value, list):
            return [self._apply_scalar(item, op, state) for item in value]
        return self._apply_scalar(value, op, state)

    def _apply_scalar(self, value: str, op: str, state: _WordState):
        state.add_obf("env_expansion")
        for prefix in ("##", "%%", "#", "%"):
            if op.startswith(prefix):
                pattern = self._inline(op[len(prefix) :], state)
                return value if pattern is None else words.remove_pattern(value, pattern, prefix)
        if op.startswith("/"):
            mode = "/"
            body = op[1:]
            if body[:1] in ("/", "#", "%"):
                mode = "/" + body[0]
                body = body[1:]
            pattern, _, replacement = body.partition("/")
            pattern = self._inline(pattern, state)
            replacement = self._inline(replacement, state)
            if pattern is None or replacement is None:
                return _UNRESOLVED
            return words.replace_pattern(value, pattern, replacement, mode)
        if op in ("^^", "^"):
            return value.upper() if op == "^^" else value[:1].upper() + value[1:]
        if op in (",,", ","):
            return value.lower() if op == ",," else value[:1].lower() + value[1:]
        return _UNRESOLVED

    def _substitute(self, node, ctx: _Ctx) -> Stream | None:
        inner = [c for c in node.children if c.is_named]
        sub_ctx = ctx.derive(origin="substitution", depth=ctx.depth + 1, wrappers=(), privileged=False)
        if ctx.depth + 1 > MAX_UNWRAP_DEPTH:
            self._flag("too_deep", "command substitutions nest beyond the depth limit")
            return None
        raw = self._text(node, ctx)
        if raw.startswith("`") and "\\`" in raw:
            # Nested backticks are escaped inside backticks: re-parse the unescaped text.
            text = raw[1:-1].replace("\\`", "`").replace("\\\\", "\\").replace("\\$", "$")
            outcome = self.parse_text(text, sub_ctx.derive(depth=ctx.depth))
            return outcome.stdout
        outcome = self._sequence(inner, sub_ctx, None)
        return outcome.stdout

    def _process_substitution(self, node, ctx: _Ctx) -> str:
        inner = [c for c in node.children if c.is_named]
        sub_ctx = ctx.derive(
            origin="process_substitution", depth=ctx.depth + 1, wrappers=(), privileged=False
        )
        outcome = self._sequence(inner, sub_ctx, None)
        placeholder = f"/dev/fd/{63 - len(self.procsubs)}"
        stream = outcome.stdout or Stream()
        self.procsubs[placeholder] = Stream(stream.data, stream.network, stream.decoders, "procsub")
        return placeholder

    # ------------------------------------------------------------------ redirects

    def _redirects(self, nodes, ctx: _Ctx):
        redirects: list[Redirect] = []
        extra_args: list[str] = []
        stdin: Stream | None = None
        continuation: list[tuple[str, tree_sitter.Node]] = []
        pending_fd = None
        for position, node in enumerate(nodes):
            kind = node.type
            if kind == "file_redirect":
                glued = None
                following = nodes[position + 1] if position + 1 < len(nodes) else None
                last = node.named_children[-1] if node.named_children else None
                if (
                    following is not None
                    and last is not None
                    and last.type == "number"
                    and self._text(last, ctx).isdigit()
                    and last.end_byte == following.start_byte
                    and len(node.named_children) > 1
                ):
                    # tree-sitter reads `>& x 0>&1` as destinations (x, 0) plus `>&1`.
                    glued = last
                redirect, extra, stream = self._file_redirect(node, ctx, skip=glued)
                if redirect is not None:
                    if pending_fd is not None and redirect.fd is None:
                        redirect = Redirect(redirect.op, redirect.target, pending_fd)
                    redirects.append(redirect)
                pending_fd = int(self._text(glued, ctx)) if glued is not None else None
                extra_args.extend(extra)
                if stream is not None:
                    stdin = stream
            elif kind == "herestring_redirect":
                state = _WordState()
                value_nodes = [c for c in node.children if c.is_named]
                fields: list[str] = []
                for value_node in value_nodes:
                    fields.extend(self.eval_word(value_node, ctx, state))
                text = " ".join(fields)
                redirects.append(Redirect("<<<", text, None))
                data = None if state.dynamic else (text + "\n").encode("utf-8", "replace")
                stdin = Stream(data, state.network, state.decoders, "here_string")
            elif kind == "heredoc_redirect":
                redirect, stream, cont, extra_redirects = self._heredoc(node, ctx)
                redirects.append(redirect)
                redirects.extend(extra_redirects)
                stdin = stream
                continuation.extend(cont)
        return redirects, extra_args, stdin, continuation

    def _file_redirect(self, node, ctx: _Ctx, skip=None):
        descriptor = None
        op = ""
        targets: list[str] = []
        extra: list[str] = []
        stream = None
        for child in node.children:
            if skip is not None and child.start_byte == skip.start_byte and child.type == skip.type:
                continue
            field = node.field_name_for_child(node.children.index(child)) if child.is_named else None
            if child.type == "file_descriptor" and field != "destination":
                try:
                    descriptor = int(self._text(child, ctx))
                except ValueError:
                    descriptor = None
            elif not child.is_named:
                op = child.type
            else:
                state = _WordState()
                values = self.eval_word(child, ctx, state)
                if not targets:
                    targets.extend(values[:1])
                    extra.extend(values[1:])
                else:
                    extra.extend(values)
        target = targets[0] if targets else ""
        target, _ = words.normalize_path_arg(target, self.cwd)
        if descriptor is not None and descriptor > 2 and target.startswith(("/dev/tcp/", "/dev/udp/")):
            self.network_fds.add(descriptor)  # exec 3<>/dev/tcp/host/port
        if op == "<&" and target.isdigit() and int(target) > 2:
            # sh <&3: reads whatever fd 3 carries (a socket when opened on /dev/tcp).
            stream = Stream(None, int(target) in self.network_fds)
        if op == "<" and target:
            if target.startswith(("/dev/tcp/", "/dev/udp/")):
                stream = Stream(None, True)  # `sh < /dev/tcp/host/port` runs what the network sends
            else:
                stream = self.procsubs.get(target) or self._written(target) or Stream(None, False, (), "file")
        return Redirect(op or ">", target, descriptor), extra, stream

    def _heredoc(self, node, ctx: _Ctx):
        op = "<<"
        quoted = False
        body_text = None
        body_node = None
        start_node = None
        end_node = None
        for child in node.children:
            kind = child.type
            if kind in ("<<", "<<-"):
                op = kind
            elif kind == "heredoc_start":
                start_node = child
                start = self._text(child, ctx)
                quoted = any(c in start for c in "'\"\\")
            elif kind == "heredoc_body":
                body_node = child
            elif kind == "heredoc_end":
                end_node = child
        # The body is the source between the end of the operator's line and the delimiter line.
        # Taken from the bytes, not only from heredoc_body: tree-sitter mis-parses bodies such
        # as one starting with a backslash (it leaves heredoc_body empty).
        body_start = body_end = None
        if start_node is not None and end_node is not None:
            newline = ctx.src.find(b"\n", start_node.end_byte)
            if 0 <= newline < end_node.start_byte:
                body_start, body_end = newline + 1, end_node.start_byte
        state = _WordState()
        if body_node is not None and (
            body_start is None or (body_node.start_byte <= body_start and body_node.end_byte >= body_end)
        ):
            body_text = self._heredoc_body(body_node, ctx, quoted, state)
        elif body_start is not None:
            body_text = ctx.src[body_start:body_end].decode("utf-8", "replace")
            if not quoted and ("$" in body_text or "`" in body_text):
                state.dynamic = True  # expansions we could not evaluate: never run a guess
        body_text = body_text or ""
        continuation: list[tuple[str, tree_sitter.Node]] = []
        extra_redirects: list[Redirect] = []
        pending_op = None
        for child in node.children:
            kind = child.type
            if body_start is not None and child.start_byte >= body_start:
                continue  # inside the body (tree-sitter sometimes makes words of it)
            if kind == "pipeline":
                continuation.append(("|", child))
            elif kind in ("&&", "||", ";", "&"):
                pending_op = kind
            elif kind == "file_redirect":
                redirect, _extra, _stream = self._file_redirect(child, ctx)
                if redirect is not None:
                    extra_redirects.append(redirect)
            elif child.is_named and kind not in ("heredoc_end", "heredoc_start", "heredoc_body"):
                continuation.append((pending_op or ";", child))
        if op == "<<-":
            body_text = "\n".join(line.lstrip("\t") for line in body_text.split("\n"))
        # Unknown parts inside an unquoted heredoc: keep the text for rules (the Redirect), but
        # never execute a guess of it.
        data = None if state.dynamic and not quoted else body_text.encode("utf-8", "replace")
        stream = Stream(data, state.network, state.decoders, "heredoc")
        return Redirect(op, body_text, None), stream, continuation, extra_redirects

    def _heredoc_body(self, node, ctx: _Ctx, quoted: bool, state: _WordState) -> str:
        if quoted or not node.named_children:
            return self._text(node, ctx)
        pieces: list[str] = []
        position = node.start_byte
        for child in node.named_children:
            if child.start_byte > position:
                pieces.append(ctx.src[position : child.start_byte].decode("utf-8", "replace"))
            if child.type == "heredoc_content":
                pieces.append(self._text(child, ctx))
            else:
                segments: list[tuple[str, str]] = []
                self._segments(child, ctx, True, segments, state, False)
                pieces.append("".join(text for _, text in segments))
            position = child.end_byte
        if node.end_byte > position:
            pieces.append(ctx.src[position : node.end_byte].decode("utf-8", "replace"))
        return "".join(pieces)

    # ------------------------------------------------------------------ commands

    def _command(
        self,
        node,
        ctx: _Ctx,
        stdin: Stream | None,
        redirects: list[Redirect],
        pipe_from,
        extra_args: list[str] | None = None,
    ) -> _Outcome:
        state = _WordState()
        argv: list[str] = []
        dyn: list[bool] = []
        assignments: list[tuple[str, str | list[str], bool]] = []
        inline_redirect_nodes = []
        name_quoted = False
        split_rest = None
        seen_name = False
        children = node.children
        for index, child in enumerate(children):
            kind = child.type
            if kind == "variable_assignment" and not seen_name:
                assigned = self._assign(child, ctx, persist=False)
                if assigned is not None:
                    assignments.append(assigned)
                continue
            if kind in ("file_redirect", "herestring_redirect", "heredoc_redirect"):
                inline_redirect_nodes.append(child)
                continue
            if kind == "ERROR":
                if self._text(child, ctx).strip() in (";", "&", "&&", "||", "|"):
                    # tree-sitter's heredoc quirk: `cmd <<EOF && a; b` glues `b` onto `a`.
                    split_rest = children[index + 1 :]
                    break
                self._flag("parse_error", f"syntax error near byte {child.start_byte}")
                continue
            if not child.is_named or kind == "comment":
                continue
            word = child.named_children[0] if kind == "command_name" and child.named_children else child
            if kind == "command_name":
                seen_name = True
                name_quoted = word.type != "word" or "\\" in self._text(word, ctx)
            before = state.dynamic
            state.dynamic = False
            fields = self.eval_word(word, ctx, state)
            if kind == "command_name" and "brace_expansion_used" in state.obf:
                state.add_obf("brace_expansion")
            argv.extend(fields)
            dyn.extend([state.dynamic] * len(fields))
            state.dynamic = state.dynamic or before
        if "brace_expansion_used" in state.obf:
            state.obf.remove("brace_expansion_used")
        if extra_args:
            argv.extend(extra_args)
            dyn.extend([False] * len(extra_args))
        if inline_redirect_nodes:
            more, more_args, more_stdin, _continuation = self._redirects(inline_redirect_nodes, ctx)
            redirects = list(redirects) + more
            argv.extend(more_args)
            dyn.extend([False] * len(more_args))
            stdin = more_stdin or stdin
        raw = self._text(node, ctx)
        if not argv:
            # Bare assignments made by a command node: they persist like `a=b` statements.
            for name, value, dynamic in assignments:
                self._set_var(name, value, dynamic)
            return _Outcome(Stream(b""), None, None)
        saved = {}
        for name, value, dynamic in assignments:
            saved[name] = (self.vars.get(name), name in self.dynamic_vars)
            self._set_var(name, value, dynamic)
        try:
            outcome = self.exec_argv(
                argv,
                dyn,
                ctx,
                state,
                stdin=stdin,
                redirects=redirects,
                raw=raw,
                pipe_from=pipe_from,
                name_quoted=name_quoted,
                env_assignments={n: v for n, v, _ in assignments},
            )
        finally:
            for name, (value, dynamic) in saved.items():
                if value is None:
                    self.vars.pop(name, None)
                else:
                    self.vars[name] = value
                if dynamic:
                    self.dynamic_vars.add(name)
                else:
                    self.dynamic_vars.discard(name)
        if redirects and outcome.render:
            outcome.render += " " + _render_redirects(redirects)
        if redirects and outcome.stdout is not None and outcome.stdout.data is not None:
            self._remember_written(redirects, outcome.stdout)
        if split_rest:
            words_after = [c for c in split_rest if c.is_named]
            if words_after:
                rest_state = _WordState()
                rest_argv: list[str] = []
                for child in words_after:
                    rest_argv.extend(self.eval_word(child, ctx, rest_state))
                slot = self._reserve_unit()
                rest = self.exec_argv(
                    rest_argv,
                    [rest_state.dynamic] * len(rest_argv),
                    ctx,
                    rest_state,
                    raw=" ".join(self._text(c, ctx) for c in words_after),
                )
                self.units[slot] = rest.render
        return outcome

    def exec_argv(
        self,
        argv: list[str],
        dyn: list[bool],
        ctx: _Ctx,
        state: _WordState,
        *,
        stdin: Stream | None = None,
        redirects: list[Redirect] | None = None,
        raw: str = "",
        pipe_from=None,
        name_quoted: bool = True,
        env_assignments: dict | None = None,
        state_effects: bool = True,
    ) -> _Outcome:
        """Emit the command ``argv`` and everything it runs; the core shared by every path."""
        redirects = redirects or []
        if len(self.result.commands) >= MAX_COMMANDS:
            self._flag("truncated", "analysis stopped at the command limit")
            return _EMPTY
        if not argv:
            return _EMPTY
        if len(argv) > MAX_ARGS:
            self._flag(
                "truncated", f"a command had more than {MAX_ARGS} arguments; the rest were not analysed"
            )
            argv = argv[:MAX_ARGS]
            dyn = dyn[:MAX_ARGS]
        word = argv[0]
        name_dynamic = dyn[0] if dyn else False
        obf = list(ctx.obf)
        for label in state.obf:
            _add(obf, label)
        path = None
        name = word
        dynamic = state.dynamic
        if "/" in word:
            path = word
            name = word.rstrip("/").rsplit("/", 1)[-1]
            if name and _SYSTEM_BIN_PATH.search(word):
                # /bin/rm, /usr/bin/nc, ./../../bin/rm: a system binary named by path.
                _add(obf, "absolute_path")
            if "/.." in word or word.startswith(".."):
                _add(obf, "path_traversal")
        if words.has_glob(name) and (state.glob or not name_quoted):
            candidates = words.resolve_glob_name(word)
            if candidates:
                name = candidates[0]
                _add(obf, "glob_path")
                if len(candidates) > 1:
                    dynamic = True
            else:
                dynamic = True
                name_dynamic = True

        # Aliases and functions replace the command before it runs.
        if not name_quoted and word in self.aliases and ctx.depth < MAX_UNWRAP_DEPTH:
            expansion = self.aliases[word] + " " + " ".join(words.quote(a) for a in argv[1:])
            alias_ctx = ctx.derive(origin="alias", obf=tuple(obf) + ("alias",))
            saved_aliases = self.aliases
            # An alias is not expanded again inside its own expansion (ls='ls; x').
            self.aliases = {k: v for k, v in self.aliases.items() if k != word}
            try:
                return self.parse_text(expansion.strip(), alias_ctx, stdin=stdin)
            finally:
                self.aliases = saved_aliases
        if name in self.functions and not path and word == name:
            return self._call_function(name, argv, dyn, ctx, state, stdin, redirects, raw, pipe_from, obf)

        args = argv[1:]
        normalised_args = []
        cwd = self.cwd
        for arg in args:
            value, climbed = words.normalize_path_arg(arg, cwd)
            if climbed:
                _add(obf, "path_traversal")
            if self.cwd_from_cd and cwd and arg in ("*", ".*", "."):
                value = (cwd.rstrip("/") + "/" + arg) if arg != "." else cwd
                _add(obf, "wildcard")
            elif "*" in value and _BROAD_GLOB.match(value):
                _add(obf, "wildcard")  # /*, /home/*, /etc/* : everything in a system directory
            normalised_args.append(value)
        if self.call_stack and any(frame[0] == name for frame in self.call_stack):
            _add(obf, "recursive_function")
            self._flag("recursive_function")
        command = SimpleCommand(
            name=name,
            args=normalised_args,
            raw=raw,
            path=path,
            redirects=list(redirects),
            wrappers=list(ctx.wrappers),
            privileged=ctx.privileged,
            origin=ctx.origin,
            depth=ctx.depth,
            stdin_from=pipe_from,
            stdin_text=stdin.text() if stdin is not None and stdin.data is not None else None,
            stdin_is_network=bool(stdin is not None and stdin.network),
            dynamic=dynamic or name_dynamic,
            obfuscation=obf,
            background=ctx.background,
        )
        command.cwd = self.cwd
        if name_dynamic:
            command.name = "" if not word else name
            self._flag("dynamic_code", "the command name could not be resolved statically")
            # r${UNSET}m runs rm when the variable is empty: judge the most likely binary.
            emptied = _UNKNOWN_EXPANSION.sub("", word)
            if emptied != word:
                base = emptied.rstrip("/").rsplit("/", 1)[-1]
                if base in words.KNOWN_BINARIES:
                    command.name = base
                    _add(command.obfuscation, "empty_expansion")
        self.result.commands.append(command)
        if command.dynamic:
            self._flag("unresolved")

        if state_effects:
            self._builtin_effects(name, args, state)
            if name == "read" and stdin is not None and stdin.data is not None:
                self._read_into(args, stdin)
            elif name == "tee" and stdin is not None and stdin.data is not None:
                targets = [
                    Redirect(">>" if ("-a" in args or "--append" in args) else ">", a, None)
                    for a in normalised_args
                    if not a.startswith("-")
                ]
                self._remember_written(targets, stdin)
        render = _render(command.name or name, normalised_args, [])
        stdout = self._simulate(name, normalised_args, stdin, command)
        if command.dynamic and stdout.data is not None:
            # Output built from words the parser could not resolve is itself unknown.
            stdout = Stream(None, stdout.network, stdout.decoders)
        outcome = _Outcome(stdout, command, render)

        if name in _FILE_INPUT_READERS and command.stdin_text is None and self.files:
            # crontab FILE installs FILE: when FILE was written earlier in this input, rules
            # judge the installed text like `... | crontab -`.
            for arg in normalised_args:
                written = self._written(arg) if not arg.startswith("-") else None
                if written is not None and written.data is not None:
                    command.stdin_text = written.text()
                    break

        if env_assignments:
            for var, value in env_assignments.items():
                if var in _EXEC_VARIABLES and isinstance(value, str) and value:
                    # GIT_SSH_COMMAND='...' git fetch: the variable's value is run as a command.
                    self.parse_text(value.lstrip("|"), ctx.derive(obf=tuple(obf), origin="interpreter"))

        if path is not None and self._written(path) is not None:
            written = self._written(path)
            self._run_payload(
                written.text(),
                command,
                ctx,
                self._exec_origin(written, "script_file"),
                network=written.network,
                decoders=written.decoders,
                wrappers=tuple(command.wrappers) + (name,),
            )
        elif name in SHELLS:
            self._run_shell(command, args, dyn, ctx, state, stdin)
        elif name in ("eval",):
            self._run_eval(command, args, dyn, ctx, state)
        elif name in ("source", "."):
            self._run_source(command, args, ctx, stdin)
        else:
            unwrapped = unwrap(name, args)
            if unwrapped is not None:
                inner = self._run_wrapper(
                    command, unwrapped, ctx, state, stdin, redirects, raw, pipe_from, obf
                )
                if inner is not None:
                    if unwrapped.render_inner:
                        own = " ".join(words.quote(a) for a in unwrapped.own)
                        outcome.render = " ".join(p for p in (name, own, inner.render) if p)
                    if inner.main is not None:
                        outcome.main = inner.main
                    if inner.stdout is not None:
                        outcome.stdout = inner.stdout
            elif interpreters.has_extractor(name) or _SCRIPT_INTERPRETER.match(name):
                self._run_interpreter(command, name, args, ctx, obf, stdin)
        return outcome

    def _call_function(self, name, argv, dyn, ctx, state, stdin, redirects, raw, pipe_from, obf) -> _Outcome:
        body, src = self.functions[name]
        if (name, body.id) in self.call_stack or len(self.call_stack) >= 8:
            # Recursion (a fork bomb's `bomb | bomb &`): record the call, do not walk again.
            command = SimpleCommand(
                name=name,
                args=list(argv[1:]),
                raw=raw,
                redirects=list(redirects),
                wrappers=list(ctx.wrappers),
                privileged=ctx.privileged,
                origin=ctx.origin,
                depth=ctx.depth,
                stdin_from=pipe_from,
                obfuscation=obf + ["recursive_function"],
                background=ctx.background,
            )
            command.cwd = self.cwd
            self.result.commands.append(command)
            self._flag("recursive_function")
            return _Outcome(Stream(), command, _render(name, argv[1:], []))
        self.called_functions.add(name)
        command = SimpleCommand(
            name=name,
            args=list(argv[1:]),
            raw=raw,
            redirects=list(redirects),
            wrappers=list(ctx.wrappers),
            privileged=ctx.privileged,
            origin=ctx.origin,
            depth=ctx.depth,
            stdin_from=pipe_from,
            obfuscation=list(obf),
            background=ctx.background,
            dynamic=state.dynamic,
        )
        command.cwd = self.cwd
        self.result.commands.append(command)
        body_ctx = _Ctx(
            src,
            depth=ctx.depth + 1,
            origin="function",
            wrappers=ctx.wrappers,
            privileged=ctx.privileged,
            background=ctx.background,
            obf=tuple(obf) + ("function_definition",),
        )
        saved = self.positional
        self.positional = list(argv[1:])
        self.call_stack.append((name, body.id))
        try:
            outcome = self.walk(body, body_ctx, stdin)
        finally:
            self.call_stack.pop()
            self.positional = saved
        return _Outcome(outcome.stdout, outcome.main or command, _render(name, argv[1:], []))

    def _remember_written(self, redirects: list[Redirect], stdout: Stream) -> None:
        # echo 'rm -rf ~' > /tmp/x.sh; sh /tmp/x.sh: remember what was written so running
        # the file later in the same input is judged by its content.
        for redirect in redirects:
            if (
                redirect.op in (">", ">>", ">|", "&>")
                and redirect.fd in (None, 1)
                and redirect.target
                and not redirect.target.startswith("/dev/")
                and len(self.files) < 32
            ):
                key = _file_key(redirect.target)
                previous = self.files.get(key) if redirect.op == ">>" else None
                data = (previous.data or b"") + stdout.data if previous is not None else stdout.data
                self.files[key] = Stream(data[:MAX_NESTED_SOURCE], stdout.network, stdout.decoders, "file")

    def _written(self, path: str) -> Stream | None:
        return self.files.get(_file_key(path)) if self.files else None

    def _builtin_effects(self, name: str, args: list[str], state: _WordState) -> None:
        if name == "alias":
            for arg in args:
                alias_name, eq, value = arg.partition("=")
                if eq and alias_name:
                    self.aliases[alias_name] = value
        elif name == "unalias":
            for arg in args:
                self.aliases.pop(arg, None)
        elif name == "set":
            if args and args[0] == "--":
                self.positional = list(args[1:])
            elif args and not args[0].startswith(("-", "+")):
                self.positional = list(args)
        elif name == "shift":
            count = int(args[0]) if args and args[0].isdigit() else 1
            self.positional = self.positional[count:]
        elif name == "cd":
            target = args[-1] if args and not args[-1].startswith("-") else (None if args else self.home)
            if target is None or state.dynamic:
                self.cwd = None
            else:
                if target.startswith("~"):
                    target, _ = words.expand_tilde(target, self.home)
                if target.startswith("/"):
                    self.cwd = words._norm(target, None)
                elif self.cwd:
                    self.cwd = words._norm(target, self.cwd)
                else:
                    self.cwd = None
            self.cwd_from_cd = self.cwd is not None
        elif name in ("read", "mapfile", "readarray"):
            for arg in args:
                if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", arg):
                    self.vars[arg] = "$" + arg
                    self.dynamic_vars.add(arg)
        elif name == "pushd" and args:
            self._builtin_effects("cd", args[-1:], state)
        elif name == "printf" and len(args) >= 3 and args[0] == "-v":
            text, _numeric = decode.printf(args[2], args[3:])
            self._set_var(args[1], text, False)
        elif name in ("export", "declare", "typeset", "local", "readonly"):
            for arg in args:
                if _ASSIGNMENT_WORD.match(arg):
                    var, _, value = arg.partition("=")
                    self._set_var(var, value, state.dynamic)

    def _read_into(self, args: list[str], stdin: Stream) -> None:
        """``read a b <<< "rm -rf"``: assign the words of the first line like bash does."""
        names = [a for a in args if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", a)]
        if not names or "-a" in args:
            return
        line = (stdin.text() or "").split("\n", 1)[0]
        parts = line.split(None, len(names) - 1)
        for index, var in enumerate(names):
            self._set_var(var, parts[index] if index < len(parts) else "", False)

    def _exec_origin(self, stream: Stream | None, default: str) -> str:
        if stream is not None and stream.decoders:
            return stream.decoders[-1]
        return default

    def _run_payload(
        self,
        text: str | None,
        command: SimpleCommand,
        ctx: _Ctx,
        origin: str,
        *,
        network: bool = False,
        decoders: tuple[str, ...] = (),
        positional=None,
        wrappers: tuple[str, ...] | None = None,
        privileged: bool | None = None,
        stdin: Stream | None = None,
    ) -> None:
        """Parse code that ``command`` executes; unknown code marks it dynamic, never safe."""
        if network:
            command.stdin_is_network = True
        if text is None:
            command.dynamic = True
            self._flag("unresolved")
            self._flag("dynamic_code", "%s runs code the parser cannot see" % (command.name or "a command"))
            return
        obf = list(command.obfuscation)
        for decoder in decoders:
            _add(obf, decoder)
        payload_ctx = ctx.derive(
            origin=origin,
            obf=tuple(obf),
            wrappers=tuple(command.wrappers) if wrappers is None else wrappers,
            privileged=command.privileged if privileged is None else privileged,
        )
        self.parse_text(text, payload_ctx, positional=positional, stdin=stdin)

    def _run_shell(
        self,
        command: SimpleCommand,
        args: list[str],
        dyn: list[bool],
        ctx: _Ctx,
        state: _WordState,
        stdin: Stream | None,
    ) -> None:
        script_mode = False
        reads_stdin = False
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                index += 1
                break
            if arg in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
                index += 2
                continue
            if arg.startswith("--"):
                index += 1
                continue
            if arg.startswith(("-", "+")) and len(arg) > 1:
                if "c" in arg[1:]:
                    script_mode = True
                if "s" in arg[1:]:
                    reads_stdin = True
                index += 1
                continue
            if arg == "-":
                reads_stdin = True
                index += 1
            break
        operands = args[index:]
        operand_dyn = dyn[1 + index :] if len(dyn) > index else []
        wrappers = tuple(command.wrappers) + (command.name,)
        if script_mode:
            if not operands:
                return
            if operand_dyn and operand_dyn[0]:
                self._run_payload(None, command, ctx, "sh -c", network=state.network)
                return
            self._run_payload(
                operands[0],
                command,
                ctx,
                self._exec_origin(Stream(decoders=state.decoders), "sh -c"),
                network=state.network,
                decoders=state.decoders,
                positional=operands[2:] if len(operands) > 1 else [],
                wrappers=wrappers,
            )
            return
        if operands and not reads_stdin:
            script = operands[0]
            stream = self.procsubs.get(script)
            if stream is not None:
                self._run_payload(
                    stream.text(),
                    command,
                    ctx,
                    self._exec_origin(stream, "process_substitution"),
                    network=stream.network,
                    decoders=stream.decoders,
                    wrappers=wrappers,
                )
            elif script in ("/dev/stdin", "/proc/self/fd/0", "/dev/fd/0") and stdin is not None:
                self._run_stdin(command, ctx, stdin, wrappers)
            elif self._written(script) is not None:
                written = self._written(script)
                self._run_payload(
                    written.text(),
                    command,
                    ctx,
                    self._exec_origin(written, "script_file"),
                    network=written.network,
                    decoders=written.decoders,
                    wrappers=wrappers,
                )
            return
        if stdin is None:
            return  # an interactive shell: nothing more to analyse here
        self._run_stdin(command, ctx, stdin, wrappers)

    def _run_stdin(
        self, command: SimpleCommand, ctx: _Ctx, stdin: Stream, wrappers, origin: str | None = None
    ):
        if stdin.source == "file" and stdin.data is None:
            return  # `sh < script.sh` runs a file, like `sh script.sh`
        default = {"heredoc": "heredoc", "here_string": "here_string", "procsub": "process_substitution"}.get(
            stdin.source, "pipeline"
        )
        self._run_payload(
            stdin.text(),
            command,
            ctx,
            origin or self._exec_origin(stdin, default),
            network=stdin.network,
            decoders=stdin.decoders,
            wrappers=wrappers,
        )

    def _run_eval(self, command, args, dyn, ctx, state) -> None:
        if not args:
            return
        if all(dyn[1:]) if len(dyn) > 1 else False:
            self._run_payload(None, command, ctx, "eval", network=state.network)
            return
        self._run_payload(
            " ".join(args),
            command,
            ctx,
            self._exec_origin(Stream(decoders=state.decoders), "eval"),
            network=state.network,
            decoders=state.decoders,
            wrappers=tuple(command.wrappers) + ("eval",),
        )

    def _run_source(self, command, args, ctx, stdin) -> None:
        if not args:
            return
        stream = self.procsubs.get(args[0])
        wrappers = tuple(command.wrappers) + (command.name,)
        if stream is not None:
            self._run_payload(
                stream.text(),
                command,
                ctx,
                self._exec_origin(stream, "process_substitution"),
                network=stream.network,
                decoders=stream.decoders,
                wrappers=wrappers,
            )
        elif args[0] in ("/dev/stdin", "/proc/self/fd/0", "/dev/fd/0", "-") and stdin is not None:
            self._run_stdin(command, ctx, stdin, wrappers)
        elif self._written(args[0]) is not None:
            written = self._written(args[0])
            self._run_payload(
                written.text(),
                command,
                ctx,
                self._exec_origin(written, "script_file"),
                network=written.network,
                decoders=written.decoders,
                wrappers=wrappers,
            )

    def _run_wrapper(
        self, command, unwrapped, ctx: _Ctx, state: _WordState, stdin, redirects, raw, pipe_from, obf
    ) -> _Outcome | None:
        label = unwrapped.label
        inner_ctx = ctx.derive(
            depth=ctx.depth + 1,
            wrappers=ctx.wrappers + (label,),
            privileged=ctx.privileged or unwrapped.privileged,
            background=ctx.background or unwrapped.background,
            origin=unwrapped.origin or ctx.origin,
            obf=tuple(obf),
        )
        if ctx.depth + 1 > MAX_UNWRAP_DEPTH:
            self._flag("too_deep", "wrappers nest beyond the depth limit")
            return None
        if unwrapped.kind == ARGV:
            result = None
            inner_stdin = stdin
            for inner in unwrapped.inner:
                if label == "xargs":
                    inner = self._xargs_argv(inner, unwrapped, stdin, command)
                    inner_stdin = None
                inner_redirects = redirects
                if label == "xargs":
                    inner_redirects = [r for r in redirects if r.op not in ("<", "<<", "<<-", "<<<")]
                result_i = self.exec_argv(
                    inner,
                    [state.dynamic] * len(inner),
                    inner_ctx,
                    _WordState(),
                    stdin=inner_stdin,
                    redirects=inner_redirects,
                    raw=raw,
                    pipe_from=pipe_from,
                    name_quoted=True,
                )
                result = result or result_i
            return result
        if unwrapped.kind == SHELL:
            self._run_payload(
                unwrapped.script,
                command,
                inner_ctx,
                unwrapped.origin or "sh -c",
                network=state.network,
                decoders=state.decoders,
                wrappers=inner_ctx.wrappers,
                privileged=inner_ctx.privileged,
            )
            return None
        if unwrapped.kind == STDIN and stdin is not None:
            self._run_stdin(command, inner_ctx, stdin, inner_ctx.wrappers, origin=unwrapped.origin)
        return None

    def _xargs_argv(self, inner: list[str], unwrapped, stdin: Stream | None, command) -> list[str]:
        """The argv xargs builds from its (statically known) stdin."""
        if stdin is None:
            return inner
        text = stdin.text()
        if text is None:
            command.dynamic = True
            self._flag("unresolved")
            return inner
        replace = unwrapped.xargs_replace
        own = unwrapped.own
        if "-0" in own or "--null" in own:
            items = [item for item in text.split("\0") if item]
        elif replace:
            items = [line for line in text.split("\n") if line.strip()]  # -I takes whole lines
        else:
            items = text.split()
        items = items[:64]
        if replace:
            return [part.replace(replace, items[0] if items else "") for part in inner]
        return inner + items

    def _run_interpreter(self, command, name, args, ctx: _Ctx, obf, stdin: Stream | None) -> None:
        program = self._interpreter_program(name, args, stdin)
        # Only a program read from stdin is code; data piped into `python3 script.py` is not.
        stdin_text = None
        if program is not None:
            if program.network:
                command.stdin_is_network = True
            if program.data is None:
                # python3 <(curl ...), curl ... | perl: runs a program nobody can see.
                command.dynamic = True
                self._flag("unresolved")
                self._flag("dynamic_code", f"{name} runs a program the parser cannot see")
                return
            stdin_text = program.text()
        elif name in _STDIN_TEXT_READERS and command.stdin_text:
            # sed's `e` runs its input lines; make -f - reads its makefile from a here-string.
            stdin_text = command.stdin_text
        saved_aliases = self.aliases
        if name == "alias":
            # An alias body is judged as written: bash never expands an alias inside its own text.
            self.aliases = {}
        try:
            self._run_payloads(command, name, args, ctx, obf, stdin, stdin_text)
        finally:
            self.aliases = saved_aliases

    def _run_payloads(self, command, name, args, ctx: _Ctx, obf, stdin: Stream | None, stdin_text) -> None:
        for payload in interpreters.extract(name, args, stdin_text):
            payload_ctx = ctx.derive(
                depth=ctx.depth + 1,
                origin=payload.origin,
                wrappers=ctx.wrappers + (payload.label or name,),
                obf=tuple(obf) + tuple(p for p in payload.obfuscation if p not in obf),
            )
            if payload.dynamic:
                self._run_payload(None, command, ctx, payload.origin)
            elif payload.kind == "argv" and payload.argv:
                if ctx.depth + 1 > MAX_UNWRAP_DEPTH:
                    self._flag("too_deep")
                    continue
                # docker exec -i db sh <<< '...': the container command reads our stdin.
                self.exec_argv(
                    list(payload.argv),
                    [False] * len(payload.argv),
                    payload_ctx,
                    _WordState(),
                    raw=" ".join(payload.argv),
                    stdin=stdin if payload.origin == "container" else None,
                )
            elif payload.kind == "shell":
                self._run_payload(
                    payload.text,
                    command,
                    payload_ctx.derive(depth=ctx.depth),
                    payload.origin,
                    wrappers=payload_ctx.wrappers,
                    decoders=payload.obfuscation,
                    stdin=stdin if payload.origin == "ssh" else None,
                )

    def _interpreter_program(self, name: str, args: list[str], stdin: Stream | None) -> Stream | None:
        """The program a script interpreter reads from stdin, a process substitution or a file
        written earlier, when it has no inline code (-c/-e) and no ordinary script file."""
        if not _SCRIPT_INTERPRETER.match(name):
            return None
        operand = None
        for index, arg in enumerate(args):
            if arg in _INLINE_CODE_FLAGS or arg in ("-m", "--version", "-V", "--help", "-h", "-v"):
                return None
            if arg.startswith("-") and arg != "-":
                if any(
                    arg.startswith(flag) and len(arg) > 2 for flag in ("-c", "-e", "-E", "-r")
                ) and not arg.startswith("--"):
                    return None
                continue
            operand = arg
            break
        if operand is None or operand in ("-", "/dev/stdin"):
            if stdin is None or stdin.source == "file":
                return None
            return stdin
        if operand in self.procsubs:
            return self.procsubs[operand]
        return self._written(operand)

    # ------------------------------------------------------------------ stdout model

    def _simulate(self, name: str, args: list[str], stdin: Stream | None, command: SimpleCommand) -> Stream:
        """What ``name args`` prints, when it is statically known (echo, printf, decoders ...)."""
        if name not in _SIMULATED:
            # Ordinary programs: output unknown, but network taint flows through filters.
            if stdin is not None and stdin.network:
                return Stream(None, True, stdin.decoders)
            return Stream()
        network_in = bool(stdin is not None and stdin.network)
        decoders = stdin.decoders if stdin is not None else ()
        data_in = stdin.data if stdin is not None else None
        if name == "echo":
            index = 0
            newline, escapes = True, False
            while index < len(args) and re.fullmatch(r"-[neE]+", args[index]):
                newline = newline and "n" not in args[index]
                escapes = "e" in args[index] or (escapes and "E" not in args[index])
                index += 1
            text = " ".join(args[index:])
            added: tuple[str, ...] = ()
            if escapes:
                text, numeric = decode.echo_escapes(text)
                if numeric:
                    added = ("printf",)
            return Stream((text + ("\n" if newline else "")).encode("utf-8", "replace"), False, added)
        if name == "printf":
            if not args or args[0] == "-v":
                return Stream(b"")
            offset = 1 if args[0] == "--" else 0
            if offset >= len(args):
                return Stream(b"")
            text, numeric = decode.printf(args[offset], args[offset + 1 :])
            return Stream(text.encode("utf-8", "replace"), False, ("printf",) if numeric else ())
        if name in ("cat", "tee", "head", "tail", "dd") and stdin is not None:
            files = [a for a in args if not a.startswith("-") and a != "-"]
            if name in ("tee",) or not files:
                if name in ("head", "tail", "dd"):
                    return Stream(None, network_in, decoders)
                return Stream(data_in, network_in, decoders)
            return Stream(None, network_in)
        decoded = self._decode_stage(name, args, stdin)
        if decoded is not None:
            return decoded
        if name in NETWORK_SOURCES and (name != "openssl" or (args and args[0] == "s_client")):
            return Stream(None, True)
        if name == "ls" and args and any(re.fullmatch(r"-[1d]*d[1d]*", a) for a in args):
            # `ls -d /home/*` prints its operands (the glob is expanded by the shell).
            paths = [a for a in args if not a.startswith("-")]
            if paths and all(re.fullmatch(r"-[1d]+", a) for a in args if a.startswith("-")):
                return Stream(("\n".join(paths) + "\n").encode("utf-8", "replace"))
        if name in ("which", "type", "command") and args:
            target = args[-1]
            if name == "command" and not any(a in ("-v", "-V") for a in args):
                return Stream(None, network_in)
            if re.fullmatch(r"[\w.+-]+", target):
                return Stream((f"/usr/bin/{target}\n").encode())
        if name == "cut" and data_in is not None:
            cut = _cut_simulate(args, data_in.decode("utf-8", "replace"))
            if cut is not None:
                return Stream(cut.encode("utf-8", "replace"), network_in, decoders)
        value = self._value_of(name, args)
        if value is not None:
            return Stream((value + "\n").encode("utf-8", "replace"), source="value")
        return Stream(None, network_in, decoders)

    def _value_of(self, name: str, args: list[str]) -> str | None:
        """Stand-in output of programs that print a harmless value ($(whoami), $(nproc) ...).

        The value only has to be of the right kind so that arguments built from it stay
        judgeable (``$(whoami) ALL=(ALL) NOPASSWD: ALL``); it is deterministic on purpose.
        """
        if name == "whoami" or (name == "id" and args and args[0] in ("-un", "-nu")):
            return self.env["USER"]
        if name == "id" and args and args[0] == "-u":
            return "0" if self.env["USER"] == "root" else "1000"
        if name == "hostname" and not args:
            return "localhost"
        if name == "nproc":
            return "2"
        if name == "date":
            return "2026-01-01"
        if name == "uname":
            return "Linux" if not args or args[0] == "-s" else None
        if name == "pwd":
            return self.cwd
        if name == "mktemp":
            return "/tmp/tmp.XXXXXXXXXX"
        if name in ("basename", "dirname") and len(args) == 1 and not args[0].startswith("-"):
            trimmed = args[0].rstrip("/") or "/"
            if name == "basename":
                return trimmed.rsplit("/", 1)[-1] or "/"
            head = trimmed.rsplit("/", 1)[0] if "/" in trimmed else "."
            return head or "/"
        if name == "printenv" and len(args) == 1 and args[0] in self.env:
            return self.env[args[0]]
        if name == "getent" and len(args) == 2 and args[0] == "passwd" and re.fullmatch(r"[\w.-]+", args[1]):
            # `getent passwd "$USER" | cut -d: -f6` is the usual way to find a home directory.
            user = args[1]
            if user == self.env["USER"]:
                home = self.home
            else:
                home = "/root" if user == "root" else f"/home/{user}"
            uid = "0" if user == "root" else "1000"
            return f"{user}:x:{uid}:{uid}:{user}:{home}:/bin/bash"
        return None

    def _decode_stage(self, name: str, args: list[str], stdin: Stream | None) -> Stream | None:
        data = stdin.data if stdin is not None else None
        network = bool(stdin is not None and stdin.network)
        decoders = stdin.decoders if stdin is not None else ()
        flags = " ".join(a for a in args if a.startswith("-"))
        files = [a for a in args if not a.startswith("-")]

        def result(decoded: bytes | None, label: str) -> Stream:
            return Stream(decoded, network, decoders + (label,))

        if name in ("base64", "base32", "basenc") and re.search(r"(^|\s)-(\w*d\w*|D)\b|--decode", flags):
            if files:
                return result(None, "base64")
            if data is None:
                return result(None, "base64")
            decoded = decode.b32decode(data) if name == "base32" else decode.b64decode(data)
            return result(decoded, "base64")
        if (
            name == "openssl"
            and args
            and (args[0] == "base64" or (args[0] == "enc" and ("-base64" in args or "-a" in args)))
            and "-d" in args
        ):
            return result(decode.b64decode(data) if data is not None else None, "base64")
        if name == "xxd" and re.search(r"-\w*r|--revert", flags):
            if data is None:
                return result(None, "hex")
            plain = re.search(r"-\w*p|-ps|-plain", flags)
            return result(decode.hexdecode(data) if plain else decode.xxd_reverse(data), "hex")
        if name in ("gunzip", "zcat", "gzcat") or (
            name == "gzip" and re.search(r"-\w*d|--decompress", flags)
        ):
            return result(decode.decompress(data, "gzip") if data is not None else None, "gzip")
        if name in ("bunzip2", "bzcat") or (name == "bzip2" and re.search(r"-\w*d", flags)):
            return result(decode.decompress(data, "bzip2") if data is not None else None, "gzip")
        if name in ("unxz", "xzcat", "lzcat") or (name in ("xz", "lzma") and re.search(r"-\w*d", flags)):
            return result(decode.decompress(data, "xz") if data is not None else None, "gzip")
        if name == "rev":
            if files:
                return None
            text = data.decode("utf-8", "replace") if data is not None else None
            return result(
                decode.reverse_lines(text.rstrip("\n")).encode() + b"\n" if text is not None else None, "rev"
            )
        if name == "tr" and not files[2:]:
            text = data.decode("utf-8", "replace") if data is not None else None
            operands = [a for a in args if not re.fullmatch(r"-[cdsCt]+", a)]
            if "-d" in args and operands:
                return Stream(
                    decode.tr_delete(text, operands[0]).encode() if text is not None else None,
                    network,
                    decoders,
                )
            if len(operands) >= 2:
                label = "rot13" if decode.is_rot13(operands[0], operands[1]) else "tr"
                translated = decode.tr_translate(text, operands[0], operands[1]) if text is not None else None
                return result(
                    translated.encode("utf-8", "replace") if translated is not None else None, label
                )
        if name in ("sed", "gsed") and data is not None and not files[1:]:
            edited = _sed_simulate(args, data.decode("utf-8", "replace"))
            if edited is not None:
                return result(edited.encode("utf-8", "replace"), "sed")
        if name == "perl":
            code = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-e", "-E")), None)
            if code and re.search(r"\bprint\b", code):
                packed = decode.perl_pack_hex(code)
                if packed is not None:
                    return result(packed.encode("utf-8", "replace"), "hex")
        return None


_UNRESOLVED = object()


def _fast_statements(text: str):
    """[[(argv, name_quoted, raw), ...] per pipeline] for fast-path input, or None to use tree-sitter."""
    if "'" not in text and '"' not in text and ";" not in text and "|" not in text and "&" not in text:
        # The commonest case, one command of plain words: no tokenizer needed.
        argv = text.split()
        if not argv or "=" in argv[0] or argv[0] in _RESERVED_FIRST:
            return None
        return [[(argv, False, text)]]
    statements = []
    pipeline = []
    words_now: list[str] = []
    quoted_first = False
    start = end = -1
    previous_kind = "op"
    for match in _FAST_TOKEN.finditer(text):
        token = match.group(0)
        if token[0] == " ":
            previous_kind = "space"
            continue
        if token in ("&&", "||", ";", "|"):
            if not words_now:
                return None
            pipeline.append((words_now, quoted_first, text[start:end]))
            words_now = []
            if token != "|":
                statements.append(pipeline)
                pipeline = []
            previous_kind = "op"
            continue
        if previous_kind == "word":
            return None  # a word glued to a quoted string: quoting tricks belong to the tree walk
        quoted = token[0] in "'\""
        if not words_now:
            if not quoted and ("=" in token or token in _RESERVED_FIRST):
                return None
            quoted_first = quoted
            start = match.start()
        # Quoted, a leading ~ stays literal, but run_fast expands every word that starts
        # with ~ once the quotes are gone: leave such input to the tree walk.
        if quoted and token[1:2] == "~":
            return None
        words_now.append(token[1:-1] if quoted else token)
        end = match.end()
        previous_kind = "word"
    if words_now:
        pipeline.append((words_now, quoted_first, text[start:end]))
        statements.append(pipeline)
    elif pipeline or not statements:
        return None  # trailing | or && (a syntax error) or nothing at all
    return statements


# Programs whose stdout _simulate models (everything else prints something unknown).
_SIMULATED = frozenset(
    {
        "echo",
        "printf",
        "cat",
        "tee",
        "head",
        "tail",
        "dd",
        "which",
        "type",
        "command",
        "base64",
        "base32",
        "basenc",
        "openssl",
        "xxd",
        "gunzip",
        "zcat",
        "gzcat",
        "gzip",
        "bunzip2",
        "bzcat",
        "bzip2",
        "unxz",
        "xzcat",
        "lzcat",
        "xz",
        "lzma",
        "rev",
        "tr",
        "perl",
        "sed",
        "gsed",
        "whoami",
        "id",
        "getent",
        "cut",
        "ls",
        "hostname",
        "nproc",
        "date",
        "uname",
        "pwd",
        "mktemp",
        "basename",
        "dirname",
        "printenv",
    }
    | NETWORK_SOURCES
)
_UNKNOWN_EXPANSION = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def _cut_simulate(args: list[str], text: str) -> str | None:
    """``cut -d X -f LIST`` over known text (None for other forms: bytes, characters, files)."""
    delimiter, fields = "\t", None
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg in ("-d", "-f") and i + 1 < len(args):
            value = args[i + 1]
            i += 1
        elif arg.startswith(("-d", "-f")) and len(arg) > 2:
            value = arg[2:]
        elif arg.startswith(("--delimiter=", "--fields=")):
            value = arg.split("=", 1)[1]
        else:
            return None  # -b, -c, --complement, a file operand ...: not simulated
        if arg.startswith(("-d", "--delimiter")):
            if len(value) != 1:
                return None
            delimiter = value
        else:
            fields = value
        i += 1
    if fields is None or not re.fullmatch(r"\d+(-\d*)?(,\d+(-\d*)?)*", fields):
        return None
    wanted: list[tuple[int, int | None]] = []
    for part in fields.split(","):
        start, dash, end = part.partition("-")
        wanted.append((int(start), (int(end) if end else None) if dash else int(start)))
    out = []
    for line in text.splitlines():
        if delimiter not in line:
            out.append(line)
            continue
        cells = line.split(delimiter)
        picked = [
            cell
            for index, cell in enumerate(cells, start=1)
            if any(lo <= index and (hi is None or index <= hi) for lo, hi in wanted)
        ]
        out.append(delimiter.join(picked))
    return "\n".join(out) + ("\n" if out else "")


def _sed_simulate(args: list[str], text: str) -> str | None:
    """Apply simple sed scripts (s/a/b/g, y/abc/xyz/) to a known stream; None when unsure."""
    scripts = [args[i + 1] for i, a in enumerate(args[:-1]) if a in ("-e", "--expression")]
    if not scripts:
        operands = [a for a in args if not a.startswith("-")]
        if len(operands) != 1:
            return None
        scripts = operands
    if any(a.startswith("-") and a not in ("-e", "--expression", "-E", "-r") for a in args):
        return None
    for script in scripts:
        for command in script.split(";"):
            command = command.strip()
            if not command:
                continue
            if len(command) < 4 or command[0] not in "sy":
                return None
            delimiter = command[1]
            parts = command[2:].split(delimiter)
            if len(parts) != 3:
                return None
            pattern, replacement, flags = parts
            if command[0] == "y":
                if len(pattern) != len(replacement):
                    return None
                text = text.translate({ord(a): b for a, b in zip(pattern, replacement)})
                continue
            if set(flags) - set("gI"):
                return None
            # Attacker-written regexes: only simple ones (no groups/alternation, one star) on
            # short text, so a hostile pattern cannot make the parser slow.
            if len(text) > 2048 or re.search(r"[(){}|+?]|\\[(){}|+?]", pattern) or pattern.count("*") > 1:
                return None
            pattern = pattern.replace("\\(", "(").replace("\\)", ")").replace("\\{", "{").replace("\\}", "}")
            replacement = re.sub(r"\\([0-9])", r"\\\1", replacement).replace("&", "\\g<0>")
            try:
                regex = re.compile(pattern, re.IGNORECASE if "I" in flags else 0)
                text = "\n".join(
                    regex.sub(replacement, line, count=0 if "g" in flags else 1) for line in text.split("\n")
                )
            except (re.error, IndexError):
                return None
    return text


_STDIN_TEXT_READERS = frozenset({"sed", "gsed", "make", "gmake", "expect"})
_FILE_INPUT_READERS = frozenset({"crontab"})
_SCRIPT_INTERPRETER = re.compile(
    r"^(?:python[0-9.]*|pypy[0-9.]*|perl|ruby|node|nodejs|php|lua|luajit|tclsh)$"
)
_INLINE_CODE_FLAGS = frozenset({"-c", "-e", "-E", "-r", "-p", "--eval", "--print", "-x"})


def _file_key(path: str) -> str:
    return path.removeprefix("./")


_UNIT_KINDS = frozenset(
    {
        "command",
        "pipeline",
        "redirected_statement",
        "ERROR",
        "declaration_command",
        "unset_command",
        "variable_assignment",
    }
)


def _only_heredoc_quirks(root) -> bool:
    """True when every syntax error is tree-sitter's `cmd <<EOF && a; b` heredoc quirk (valid bash)."""
    # Track parents ourselves: Node.parent walks down from the root, O(depth) per call.
    stack = [(root, None, None)]
    found = False
    visited = 0
    while stack:
        node, parent, grandparent = stack.pop()
        visited += 1
        if visited > 5000:
            return False
        if node.type == "ERROR" or node.is_missing:
            if not (
                parent is not None
                and parent.type == "command"
                and grandparent is not None
                and grandparent.type == "heredoc_redirect"
                and node.end_byte - node.start_byte <= 2
                and node.text.strip() in (b";", b"&")
            ):
                return False
            found = True
            continue
        if node.has_error:
            stack.extend((child, node, parent) for child in node.children)
    return found


_BROAD_GLOB = re.compile(r"^/(?:[^/*?\[]+/?)?\*$")
_SYSTEM_BIN_PATH = re.compile(r"(?:^|/)s?bin/+[^/]+$")
_NESTING_CHARS = re.compile(rb"[(){}]")
# The first part excludes commas so the match is linear (no backtracking over split points).
_COMMAND_BRACE = re.compile(
    rb"(^|[;&|\n(`]\s*|\$\(\s*)\{([^\s{}'\"$`\\,]*+,[^\s{}'\"$`\\]*+)\}(?=[\s;&|)]|$)"
)


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def _without_astral(text: str) -> str:
    """Replace characters outside the BMP (4-byte UTF-8) with U+FFFD before tree-sitter sees them.

    tree-sitter-bash 0.25 crashes the whole process (SIGSEGV) on `{` followed later by a 4-byte
    UTF-8 sequence (upstream tree-sitter/tree-sitter-bash#337); one hostile command must not
    take the gateway or relay down. Emoji in commit messages become U+FFFD, nothing else changes.
    """
    return _ASTRAL.sub("\ufffd", text) if _ASTRAL.search(text) else text


_CONTINUATION_SCAN = re.compile(r"'[^']*'|\\\n|\\.|[^'\\]+|.", re.DOTALL)


def _join_continuations(text: str) -> str:
    """Remove backslash-newline outside single quotes, as bash does before splitting words."""
    return "".join("" if piece == "\\\n" else piece for piece in _CONTINUATION_SCAN.findall(text))


def _rewrite_command_braces(src: bytes) -> bytes | None:
    def expand(match: re.Match[bytes]) -> bytes:
        items = words.brace_expand("{" + match.group(2).decode("utf-8", "replace") + "}")
        return match.group(1) + " ".join(items).encode()

    rewritten = _COMMAND_BRACE.sub(expand, src)
    return rewritten if rewritten != src else None


def _fallback_statements(text: str) -> list[list[str]]:
    """Split text into argv lists at ; & | ( ) with shlex, closing an unbalanced quote."""
    import shlex

    for attempt in (text, text + "'", text + '"'):
        lexer = shlex.shlex(attempt, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenters = ""
        try:
            tokens = list(lexer)[:4096]
        except ValueError:
            continue
        statements: list[list[str]] = []
        current: list[str] = []
        skip_next = False
        for token in tokens:
            if skip_next:
                skip_next = False
                continue
            if token and all(c in ";&|()" for c in token):
                if current:
                    statements.append(current)
                current = []
            elif token and all(c in "<>&" for c in token):
                skip_next = True
            else:
                current.append(token)
        if current:
            statements.append(current)
        return statements[:64]
    return [text.split()[:256]] if text.split() else []


_DEFAULT_SPLIT = re.compile(r"[ \t\n]+")
_SPLITTERS: dict[str, re.Pattern[str]] = {}


def _ifs_splitter(ifs: str) -> re.Pattern[str]:
    """Field-splitting regex for a custom IFS (IFS=, turns a,b,c into three fields)."""
    splitter = _SPLITTERS.get(ifs)
    if splitter is None:
        white = "".join(c for c in ifs if c in " \t\n")
        other = "".join(c for c in ifs if c not in " \t\n")
        parts = []
        if other:
            parts.append(
                f"[{re.escape(white)}]*[{re.escape(other)}][{re.escape(white)}]*"
                if white
                else f"[{re.escape(other)}]"
            )
        if white:
            parts.append(f"[{re.escape(white)}]+")
        splitter = re.compile("|".join(parts)) if parts else re.compile(r"(?!)")
        if len(_SPLITTERS) < 64:
            _SPLITTERS[ifs] = splitter
    return splitter


def _assemble(segments: list[tuple[str, str]], splitter: re.Pattern[str] = _DEFAULT_SPLIT) -> list[str]:
    """Join word segments into fields, splitting unquoted expansion results on IFS."""
    fields: list[str] = []
    current: list[str] = []
    has = False
    for kind, text in segments:
        if kind == "B":
            fields.append("".join(current))
            current = []
            has = False
            continue
        if kind == "S":
            if not text:
                continue
            parts = splitter.split(text)
            for index, part in enumerate(parts):
                if index:
                    if has:
                        fields.append("".join(current))
                    current = []
                    has = False
                if part:
                    current.append(part)
                    has = True
            continue
        current.append(text)
        if kind in ("Q", "E") or text:
            has = True
    if has:
        fields.append("".join(current))
    return fields


def _concat(outputs: list[Stream]) -> Stream:
    if not outputs:
        return Stream(b"")
    if len(outputs) == 1:
        return outputs[0]
    network = any(o.network for o in outputs)
    decoders: tuple[str, ...] = ()
    for output in outputs:
        decoders += tuple(d for d in output.decoders if d not in decoders)
    if any(o.data is None for o in outputs):
        return Stream(None, network, decoders)
    return Stream(b"".join(o.data for o in outputs), network, decoders)


def _render_redirects(redirects: list[Redirect]) -> str:
    parts = []
    for redirect in redirects:
        descriptor = "" if redirect.fd is None else str(redirect.fd)
        if redirect.op in ("<<", "<<-", "<<<"):
            parts.append("{} {}".format(redirect.op, words.quote(redirect.target.rstrip("\n"))))
        else:
            separator = (
                ""
                if redirect.op.endswith("&") and (redirect.target.isdigit() or redirect.target == "-")
                else " "
            )
            parts.append(f"{descriptor}{redirect.op}{separator}{words.quote(redirect.target)}")
    return " ".join(parts)


def _render(name: str, args: list[str], redirects: list[Redirect]) -> str:
    text = " ".join([words.quote(name) if name else "''"] + [words.quote(a) for a in args])
    if redirects:
        text += " " + _render_redirects(redirects)
    return text
