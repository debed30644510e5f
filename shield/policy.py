"""Shield level 4: org and agent policy — allow / ask / deny rules and score thresholds.

A policy is written in YAML (or TOML) as command-prefix patterns in the style coding
agents already use (``Bash(git push:*)``), regexes, and path rules
(``Read(/etc/**)``, ``Write(~/.ssh/**)``, ``List(...)``), optionally scoped to agents and
working directories. It is validated once, on load, into an immutable ``Policy``:
every problem is reported as a ``PolicyError`` naming the source, line, rule and reason.

``Policy.evaluate`` reports only what the policy's own rules say about a parsed
command (precedence deny > ask > allow); combining that with rule packs and the risk
score is the engine's job. ``Policy.decision_for_score`` maps a level-3 score to a
decision with the policy's thresholds.

Pure: this module reads nothing but the text it is given and the built-in default
policy shipped in ``shield/policies/default.yaml``. It never touches the environment,
the network or the user's home directory (``~`` in a pattern means *any* home
directory, because a policy is evaluated for hosts it cannot see).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import importlib.resources
import json
import posixpath
import re
import shlex
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from shield.model import Decision, ParseResult, SimpleCommand
from shield.parsing.wrappers import RUNNER_NAMES

__all__ = [
    "PATH_OPERATIONS",
    "Policy",
    "PolicyError",
    "PolicyOutcome",
    "Thresholds",
    "default_policy",
    "load_policy",
    "load_policy_file",
]

PATH_OPERATIONS = ("read", "list", "write")

# A policy is configuration written by people; anything bigger than this is a mistake
# or an attack on the loader (YAML alias bombs expand to far more nodes than bytes).
MAX_POLICY_BYTES = 1024 * 1024
MAX_POLICY_NODES = 200_000
MAX_POLICY_DEPTH = 32  # real policies nest 4 levels; deeper input only attacks the recursion
# Python's `re` has no timeout: cap how much text one regex rule scans so a
# pathological org regex cannot stall the engine on a huge command. Oversized input
# is flagged `too_large` by the parser and never reaches `auto` anyway.
REGEX_SCAN_LIMIT = 64 * 1024

# Input facts that make an allow rule unsafe to honour: the policy cannot vouch for
# text the parser could not fully see.
_UNSAFE_FOR_ALLOW = frozenset(
    {"parse_error", "too_large", "too_deep", "binary", "truncated", "unresolved", "dynamic_code"}
)

# Wrappers that only change how a command runs, not who runs it. An allow rule for the
# wrapped command covers these (project and secret runners too: `poetry run`, `op run`);
# privilege wrappers (sudo, doas, su, pkexec) and interpreters (bash -c, eval) must be
# allowed explicitly.
_TRANSPARENT_WRAPPERS = frozenset(
    {"nice", "ionice", "timeout", "nohup", "time", "env", "command", "exec", "stdbuf", "chrt", "taskset"}
) | RUNNER_NAMES

_OUTPUT_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&", "<>"})
_INPUT_REDIRECTS = frozenset({"<", "<>"})


class PolicyError(ValueError):
    """A policy that cannot be loaded: names where (source, line), what (rule) and why.

    ``str(error)`` reads like a compiler message, e.g.
    ``policy.yaml:12: rule 'Bash(rm:*)': unknown action 'alow'``.
    """

    def __init__(
        self, reason: str, *, source: str = "<policy>", line: int | None = None, rule: str | None = None
    ):
        self.source = source
        self.line = line
        self.rule = rule
        self.reason = reason
        where = f"{source}:{line}" if line is not None else source
        what = f" rule {rule!r}:" if rule is not None else ""
        super().__init__(f"{where}:{what} {reason}")


@dataclass(frozen=True)
class Thresholds:
    """Score cut-offs: a score at or above a threshold gets that decision."""

    soft_ask: int = 30
    hard_ask: int = 60
    deny: int = 85

    def to_dict(self) -> dict[str, int]:
        return {"soft_ask": self.soft_ask, "hard_ask": self.hard_ask, "deny": self.deny}


@dataclass
class PolicyOutcome:
    """What the policy's explicit rules say. ``decision`` is None when no rule matched."""

    decision: Decision | None = None
    matches: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------
# Located document tree: YAML/TOML values that remember the line they came from.
# --------------------------------------------------------------------------------------


@dataclass
class _Node:
    value: Any  # scalar, list[_Node] or dict[str, _Node]
    line: int | None
    key_lines: dict[str, int | None] = field(default_factory=dict)

    def plain(self) -> Any:
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        if isinstance(self.value, dict):
            return {key: item.plain() for key, item in self.value.items()}
        return self.value


class _YamlTree:
    """Turns composed YAML nodes into ``_Node`` trees, keeping 1-based line numbers."""

    def __init__(self, source: str):
        self.source = source
        self.visited = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, depth: int = 0) -> _Node:
        self.visited += 1
        line = node.start_mark.line + 1
        if self.visited > MAX_POLICY_NODES:
            raise PolicyError(
                "policy too large (too many YAML nodes; alias expansion?)", source=self.source, line=line
            )
        if depth > MAX_POLICY_DEPTH:
            raise PolicyError("policy nested too deeply", source=self.source, line=line)
        if isinstance(node, yaml.MappingNode):
            mapping: dict[str, _Node] = {}
            key_lines: dict[str, int | None] = {}
            for key_node, value_node in node.value:
                key_line = key_node.start_mark.line + 1
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    raise PolicyError("mapping keys must be plain strings", source=self.source, line=key_line)
                key = str(self.constructor.construct_object(key_node))
                if key in mapping:
                    raise PolicyError(f"duplicate key {key!r}", source=self.source, line=key_line)
                mapping[key] = self.convert(value_node, depth + 1)
                key_lines[key] = key_line
            return _Node(mapping, line, key_lines)
        if isinstance(node, yaml.SequenceNode):
            return _Node([self.convert(item, depth + 1) for item in node.value], line)
        try:
            return _Node(self.constructor.construct_object(node), line)
        except yaml.YAMLError as exc:
            raise PolicyError(f"bad value: {exc}", source=self.source, line=line) from None


def _parse_yaml(text: str, source: str) -> _Node | None:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise PolicyError("policy nested too deeply", source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise PolicyError(f"YAML syntax error: {problem}", source=source, line=line) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"YAML syntax error: {exc}", source=source) from None
    if root is None:
        return None
    return _YamlTree(source).convert(root)


_TOML_LINE = re.compile(r"at line (\d+)")


def _parse_toml(text: str, source: str) -> _Node:
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise PolicyError("policy nested too deeply", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_LINE.search(message)
        if match:
            line: int | None = int(match.group(1))
        elif "end of document" in message:
            line = max(
                (i + 1 for i, text_line in enumerate(text.splitlines()) if text_line.strip()), default=1
            )
        else:
            line = None
        reason = re.sub(r"\s*\(at (line \d+, column \d+|end of document)\)", "", message).strip()
        raise PolicyError(f"TOML syntax error: {reason}", source=source, line=line) from None
    # tomllib keeps no positions: find each value's line by searching the text, best effort.
    lines = text.splitlines()

    def line_of(needle: str, start: int) -> int | None:
        for index in range(max(start - 1, 0), len(lines)):
            if needle in lines[index]:
                return index + 1
        for index in range(min(start, len(lines))):
            if needle in lines[index]:
                return index + 1
        return None

    def convert(value: Any, hint: int, depth: int = 0) -> _Node:
        if depth > MAX_POLICY_DEPTH:
            raise PolicyError("policy nested too deeply", source=source, line=hint)
        if isinstance(value, dict):
            mapping: dict[str, _Node] = {}
            key_lines: dict[str, int | None] = {}
            for key, item in value.items():
                key_line = line_of(str(key), hint)
                key_lines[key] = key_line
                mapping[key] = convert(item, key_line or hint, depth + 1)
            return _Node(mapping, hint, key_lines)
        if isinstance(value, list):
            return _Node([convert(item, hint, depth + 1) for item in value], hint)
        if isinstance(value, str):
            return _Node(value, line_of(value, hint) or hint)
        return _Node(value, hint)

    return convert(data, 1)


# --------------------------------------------------------------------------------------
# Compiled rules
# --------------------------------------------------------------------------------------

_ACTIONS = {
    "allow": Decision.AUTO,
    "ask": None,  # soft or hard: resolved from the rule's `ask:` key, default hard
    "soft_ask": Decision.SOFT_ASK,
    "hard_ask": Decision.HARD_ASK,
    "deny": Decision.DENY,
}
_ACTION_WORD = {
    Decision.AUTO: "allow",
    Decision.SOFT_ASK: "soft_ask",
    Decision.HARD_ASK: "hard_ask",
    Decision.DENY: "deny",
}
_PATTERN = re.compile(r"^(?P<kind>[A-Za-z]+)\((?P<body>.*)\)$", re.DOTALL)
_PATTERN_KINDS = {
    "bash": "bash",
    "regex": "regex",
    "read": "read",
    "write": "write",
    "edit": "write",
    "list": "list",
}
_GLOB_CHARS = frozenset("*?[")
_HOME_PREFIX = r"(?:/root|/home/[^/]+|/Users/[^/]+|/var/root|~)"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _has_glob(text: str) -> bool:
    return any(ch in _GLOB_CHARS for ch in text)


def compile_path_glob(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: ``**`` spans directories, ``*``/``?``/``[..]`` stay in one
    segment, a leading ``~`` means any home directory, and a pattern without wildcards
    (or ending in ``/``) also matches everything below it."""
    pattern = re.sub(r"/{2,}", "/", pattern)
    subtree = pattern.endswith("/") or not _has_glob(pattern)
    pattern = pattern.rstrip("/") or "/"
    out: list[str] = []
    index = 0
    if pattern.startswith("~"):
        out.append(_HOME_PREFIX)
        index = 1
    while index < len(pattern):
        ch = pattern[index]
        if pattern.startswith("**/", index):
            out.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("/**", index) and index + 3 == len(pattern):
            out.append("(?:/.*)?")
            index += 3
        elif pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif ch == "*":
            out.append("[^/]*")
            index += 1
        elif ch == "?":
            out.append("[^/]")
            index += 1
        elif ch == "[":
            end = pattern.find("]", index + 2)
            if end == -1:
                raise ValueError("unclosed '[' in glob")
            body = pattern[index + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            index = end + 1
        else:
            out.append(re.escape(ch))
            index += 1
    if subtree and pattern != "/":
        out.append("(?:/.*)?")
    regex = "".join(out)
    if pattern == "/":
        regex = "/.*" if subtree else "/"
    return re.compile(regex + r"\Z", re.DOTALL)


def literal_needle(pattern: str) -> str:
    """The longest run of literal characters every match of a path glob must contain."""
    pattern = re.sub(r"/{2,}", "/", pattern.strip()).rstrip("/")
    pattern = pattern.removeprefix("~")  # `~` expands to one of several home prefixes
    # `**/` and a final `/**` may match nothing at all (the slash included): treat as `*`.
    pattern = pattern.replace("**/", "*")
    if pattern.endswith("/**"):
        pattern = pattern[:-3] + "*"
    runs = re.split(r"\*+|\?|\[[^\]]*\]", pattern)
    return max(runs, key=len, default="")


_MAX_LEADING_OPTIONS = 16


def _option_prefix_ends(args: list[str]) -> list[int]:
    """Indexes where a run of leading options could end: after each option, and after
    the word following an option (it may be that option's value)."""
    ends = [0]
    index = 0
    while index < len(args) and index < _MAX_LEADING_OPTIONS:
        arg = args[index]
        if not arg.startswith("-") or arg in ("-", "--"):
            break
        ends.append(index + 1)
        if "=" not in arg and index + 1 < len(args) and not args[index + 1].startswith("-"):
            ends.append(index + 2)
            index += 1
        index += 1
    return ends


def _split_flags(args: Iterable[str]) -> tuple[list[str], set[str]]:
    """Split argv words from flags; short clusters (``-rf``) become single letters."""
    words: list[str] = []
    flags: set[str] = set()
    end_of_flags = False
    for arg in args:
        if end_of_flags or arg == "-" or not arg.startswith("-"):
            words.append(arg)
        elif arg == "--":
            end_of_flags = True
        elif arg.startswith("--"):
            flags.add(arg.split("=", 1)[0])
        else:
            flags.update("-" + letter for letter in arg[1:])
    return words, flags


# A compiled pattern word: the literal string, or a compiled glob for words with * ? [.
_WordMatcher = str | re.Pattern[str]


def _word_matcher(token: str) -> _WordMatcher:
    return re.compile(fnmatch.translate(token)) if _has_glob(token) else token


def _word_matches(matcher: _WordMatcher, word: str) -> bool:
    if matcher.__class__ is str:
        return matcher == word
    return matcher.match(word) is not None  # type: ignore[union-attr]


def _words_match(matchers: tuple[_WordMatcher, ...], words: list[str], prefix: bool) -> bool:
    if len(words) < len(matchers) or (not prefix and len(words) != len(matchers)):
        return False
    for matcher, word in zip(matchers, words):
        if not _word_matches(matcher, word):
            return False
    return True


@dataclass(frozen=True, eq=False)  # identity equality/hash: rules are dict keys on the hot path
class _Rule:
    action: Decision
    kind: str  # bash | regex | read | write | list
    text: str  # the pattern as written, e.g. "Bash(git push:*)"
    source: str
    line: int | None
    tokens: tuple[str, ...] = ()
    prefix: bool = False
    regex: re.Pattern[str] | None = None
    path_glob: re.Pattern[str] | None = None
    agents: tuple[str, ...] = ()
    cwd_scopes: tuple[str, ...] = ()
    cwd_globs: tuple[re.Pattern[str], ...] = ()
    reason: str | None = None
    # Precomputed matchers (derived from `tokens`, so not part of identity).
    _head: _WordMatcher = field(default="", init=False, repr=False)
    _head_path: str | None = field(default=None, init=False, repr=False)
    _rest: tuple[_WordMatcher, ...] = field(default=(), init=False, repr=False)
    _loose_words: tuple[_WordMatcher, ...] = field(default=(), init=False, repr=False)
    _loose_flags: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _needle: str = field(default="", init=False, repr=False)
    _path_glob_folded: re.Pattern[str] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.path_glob is not None:
            object.__setattr__(self, "_needle", literal_needle(self.text[self.text.index("(") + 1 : -1]))
            # For hosts whose filesystems ignore case (macOS, Windows): /ETC/Shadow is /etc/shadow.
            folded = re.compile(self.path_glob.pattern, re.DOTALL | re.IGNORECASE)
            object.__setattr__(self, "_path_glob_folded", folded)
        if not self.tokens:
            return
        head = self.tokens[0]
        set_ = object.__setattr__  # frozen dataclass: derived fields are set once, here
        if "/" in head and not _has_glob(head):
            set_(self, "_head_path", head)
        set_(self, "_head", _word_matcher(head))
        set_(self, "_rest", tuple(_word_matcher(t) for t in self.tokens[1:]))
        words, flags = _split_flags(self.tokens[1:])
        set_(self, "_loose_words", tuple(_word_matcher(w) for w in words))
        set_(self, "_loose_flags", frozenset(flags))

    # -- identity ---------------------------------------------------------------------

    def canonical(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "pattern": self.text,
            "agents": list(self.agents),
            "paths": list(self.cwd_scopes),
            "reason": self.reason,
        }

    def describe(self) -> str:
        scope = []
        if self.agents:
            scope.append("agents " + ",".join(self.agents))
        if self.cwd_scopes:
            scope.append("paths " + ",".join(self.cwd_scopes))
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        scoped = f" [{'; '.join(scope)}]" if scope else ""
        return f"{_ACTION_WORD[self.action]} {self.text}{scoped} ({where})"

    @property
    def command_name(self) -> str | None:
        """The literal command name this Bash rule is about, or None for wildcard names."""
        if self.kind != "bash" or not self.tokens or _has_glob(self.tokens[0]):
            return None
        return posixpath.basename(self.tokens[0]) or self.tokens[0]

    # -- scope ------------------------------------------------------------------------

    def in_scope(self, agent: str | None, cwd: str | None) -> bool:
        """Whether the rule applies to this agent and working directory.

        Fail closed: when the agent or cwd is unknown, scoped deny/ask rules apply (the
        command might be running exactly there) and scoped allow rules do not.
        """
        restrictive = self.action is not Decision.AUTO
        if self.agents:
            if agent is None:
                if not restrictive:
                    return False
            elif not any(fnmatch.fnmatchcase(agent.casefold(), g.casefold()) for g in self.agents):
                return False
        if self.cwd_globs:
            if cwd is None:
                if not restrictive:
                    return False
            else:
                normal = _normalise_path(cwd)
                if not any(g.match(normal) for g in self.cwd_globs):
                    return False
        return True

    # -- matching ---------------------------------------------------------------------

    def matches_command(self, command: SimpleCommand, *, loose: bool) -> bool:
        """Bash pattern vs one executed command's normalised argv.

        Strict matching is the coding-agent convention: the pattern's words are a
        prefix of (``:*``) or equal to the argv. ``loose`` (used for deny/ask only)
        also matches when flags are reordered, split or combined (``rm -rf`` vs
        ``rm -r -f`` / ``rm -fr /``), so a deny cannot be dodged by flag spelling.
        """
        if not self.tokens:
            return True  # Bash(*): any command
        if self._head_path is not None:
            if command.path != self._head_path and not (
                loose and posixpath.basename(self._head_path) == command.name
            ):
                return False
        elif not _word_matches(self._head, command.name):
            return False
        args = command.args
        if _words_match(self._rest, args, self.prefix):
            return True
        if not loose:
            return False
        all_flags = _split_flags(args)[1]
        if not self._loose_flags <= all_flags:
            return False
        # Global options may sit between the program and the words a rule names
        # (`git -C /repo push`, `kubectl -n prod delete`): try each place the leading
        # options could end, then compare words with flags set aside.
        for start in _option_prefix_ends(args):
            rest = args[start:]
            if start and _words_match(self._rest, rest, self.prefix):
                return True
            if _words_match(self._loose_words, _split_flags(rest)[0], self.prefix):
                return True
        return False

    def matches_text(self, text: str) -> bool:
        assert self.regex is not None
        return self.regex.search(text[:REGEX_SCAN_LIMIT]) is not None

    def matches_path(self, path: str, *, case_insensitive: bool = False) -> bool:
        # The literal needle is a cheap `in` test that rejects almost every path before
        # the regex runs (a policy has dozens of path rules; most paths match none).
        if case_insensitive:
            if self._needle and self._needle.lower() not in path.lower():
                return False
            assert self._path_glob_folded is not None
            return self._path_glob_folded.match(path) is not None
        if self._needle and self._needle not in path:
            return False
        assert self.path_glob is not None
        return self.path_glob.match(path) is not None


def _normalise_path(path: str) -> str:
    # Lexical only (no filesystem): collapse //, ., .. so scopes cannot be side-stepped.
    normal = posixpath.normpath(path) if path else path
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    return normal


# --------------------------------------------------------------------------------------
# Loader / validator
# --------------------------------------------------------------------------------------

_TOP_KEYS = {
    "version",
    "name",
    "description",
    "extends",
    "thresholds",
    "allow",
    "ask",
    "soft_ask",
    "hard_ask",
    "deny",
    "rules",
    "scopes",
}
_LIST_KEYS = ("allow", "ask", "soft_ask", "hard_ask", "deny")
_RULE_KEYS = {"pattern", "match", "regex", "action", "ask", "agents", "agent", "paths", "path", "reason"}
_SCOPE_KEYS = {"agents", "agent", "paths", "path", "description", "name", "rules", *_LIST_KEYS}
_THRESHOLD_KEYS = ("soft_ask", "hard_ask", "deny")


class _Compiler:
    def __init__(self, source: str):
        self.source = source

    def error(self, reason: str, line: int | None, rule: str | None = None) -> PolicyError:
        return PolicyError(reason, source=self.source, line=line, rule=rule)

    # -- scalars ----------------------------------------------------------------------

    def string(self, node: _Node, what: str, rule: str | None = None) -> str:
        if not isinstance(node.value, str) or not node.value.strip():
            raise self.error(f"{what} must be a non-empty string", node.line, rule)
        return node.value.strip()

    def string_list(self, node: _Node, what: str, rule: str | None = None) -> tuple[str, ...]:
        items = node.value if isinstance(node.value, list) else [node]
        if not items:
            raise self.error(f"{what} must not be empty", node.line, rule)
        return tuple(self.string(item, what, rule) for item in items)

    def mapping(self, node: _Node, what: str, allowed: set[str], rule: str | None = None) -> dict[str, _Node]:
        if not isinstance(node.value, dict):
            raise self.error(f"{what} must be a mapping", node.line, rule)
        for key in node.value:
            if key not in allowed:
                raise self.error(
                    f"unknown key {key!r} in {what} (expected one of: {', '.join(sorted(allowed))})",
                    node.key_lines.get(key, node.line),
                    rule,
                )
        return node.value

    # -- scope ------------------------------------------------------------------------

    def scope(self, entries: dict[str, _Node], rule: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if "agents" in entries and "agent" in entries:
            raise self.error("use either 'agents' or 'agent', not both", entries["agent"].line, rule)
        if "paths" in entries and "path" in entries:
            raise self.error("use either 'paths' or 'path', not both", entries["path"].line, rule)
        agents_node = entries.get("agents") or entries.get("agent")
        paths_node = entries.get("paths") or entries.get("path")
        agents = self.string_list(agents_node, "agents", rule) if agents_node is not None else ()
        paths: tuple[str, ...] = ()
        if paths_node is not None:
            paths = self.string_list(paths_node, "paths", rule)
            for scope_path in paths:
                if not scope_path.startswith(("/", "~", "*")):
                    raise self.error(
                        f"path scope {scope_path!r} must be absolute (start with '/', '~' or '**')",
                        paths_node.line,
                        rule,
                    )
                self.path_glob(scope_path, paths_node.line, rule)
        return agents, paths

    def path_glob(self, pattern: str, line: int | None, rule: str | None) -> re.Pattern[str]:
        try:
            return compile_path_glob(pattern)
        except (ValueError, re.error) as exc:
            raise self.error(f"malformed path pattern {pattern!r}: {exc}", line, rule) from None

    # -- rules ------------------------------------------------------------------------

    def rule(
        self,
        node: _Node,
        list_action: str | None,
        inherited_agents: tuple[str, ...],
        inherited_paths: tuple[str, ...],
    ) -> _Rule:
        """Compile one rule: a pattern string, or a mapping with pattern/regex and options."""
        fields: dict[str, _Node] = {}
        if isinstance(node.value, str):
            text = node.value.strip()
            if not text:
                raise self.error("rule pattern must be a non-empty string", node.line)
            rule_name = text
        elif isinstance(node.value, dict):
            pattern_keys = [k for k in ("pattern", "match", "regex") if k in node.value]
            if len(pattern_keys) != 1:
                raise self.error("a rule needs exactly one of 'pattern', 'match' or 'regex'", node.line)
            key = pattern_keys[0]
            body = self.string(node.value[key], key)
            text = f"Regex({body})" if key == "regex" else body
            rule_name = text
            fields = self.mapping(node, "rule", _RULE_KEYS, rule_name)
        else:
            raise self.error("a rule must be a pattern string or a mapping", node.line)
        line = (
            node.line
            if not fields
            else (fields.get("pattern") or fields.get("match") or fields.get("regex")).line
        )

        # Action: from the list it sits in, or from its own `action:` key in `rules:`.
        if list_action is None:
            if "action" not in fields:
                raise self.error(
                    "a rule in 'rules' needs an 'action' (allow, ask, soft_ask, hard_ask, deny)",
                    line,
                    rule_name,
                )
            action_name = self.string(fields["action"], "action", rule_name)
            action_line = fields["action"].line
        else:
            if "action" in fields and self.string(fields["action"], "action", rule_name) != list_action:
                raise self.error(
                    f"action {fields['action'].value!r} contradicts the {list_action!r} list it is in",
                    fields["action"].line,
                    rule_name,
                )
            action_name = list_action
            action_line = line
        if action_name not in _ACTIONS:
            raise self.error(
                f"unknown action {action_name!r} (expected allow, ask, soft_ask, hard_ask or deny)",
                action_line,
                rule_name,
            )
        action = _ACTIONS[action_name]
        if "ask" in fields:
            if action_name != "ask":
                raise self.error(
                    "'ask: soft|hard' is only valid on an ask rule", fields["ask"].line, rule_name
                )
            level = fields["ask"].value
            if level not in ("soft", "hard"):
                raise self.error(
                    f"unknown ask level {level!r} (expected soft or hard)", fields["ask"].line, rule_name
                )
            action = Decision.SOFT_ASK if level == "soft" else Decision.HARD_ASK
        if action is None:
            action = Decision.HARD_ASK  # a plain `ask` means a human must say yes

        # A block's scope and a rule's own scope would have to hold together, but one
        # tuple can only OR its entries: so a rule inside a scoped block keeps the block's.
        if inherited_agents and ("agents" in fields or "agent" in fields):
            raise self.error("a rule inside a scope block with 'agents' cannot set its own", line, rule_name)
        if inherited_paths and ("paths" in fields or "path" in fields):
            raise self.error("a rule inside a scope block with 'paths' cannot set its own", line, rule_name)
        agents, paths = self.scope(fields, rule_name)
        agents = inherited_agents or agents
        paths = inherited_paths or paths
        reason = self.string(fields["reason"], "reason", rule_name) if "reason" in fields else None
        cwd_globs = tuple(self.path_glob(p, line, rule_name) for p in paths)

        match = _PATTERN.match(text)
        if not match and re.match(r"^[A-Za-z]+\(", text):
            raise self.error("malformed pattern: missing closing ')'", line, rule_name)
        if not match:
            raise self.error(
                "malformed pattern: expected Bash(...), Regex(...), Read(...), Write(...), Edit(...) or List(...)",
                line,
                rule_name,
            )
        kind = _PATTERN_KINDS.get(match.group("kind").lower())
        if kind is None:
            raise self.error(
                f"unknown pattern type {match.group('kind')!r} (expected Bash, Regex, Read, Write, Edit or List)",
                line,
                rule_name,
            )
        body = match.group("body")
        common = {
            "action": action,
            "kind": kind,
            "text": text,
            "source": self.source,
            "line": line,
            "agents": agents,
            "cwd_scopes": paths,
            "cwd_globs": cwd_globs,
            "reason": reason,
        }
        if kind == "bash":
            tokens, prefix = self.bash_body(body, line, rule_name)
            return _Rule(tokens=tokens, prefix=prefix, **common)
        if kind == "regex":
            if not body:
                raise self.error("empty regex", line, rule_name)
            try:
                compiled = re.compile(body)
            except re.error as exc:
                raise self.error(f"bad regex: {exc}", line, rule_name) from None
            return _Rule(regex=compiled, **common)
        body = body.strip()
        if not body:
            raise self.error("empty path pattern", line, rule_name)
        if not body.startswith(("/", "~", "*")):
            raise self.error(
                f"path pattern {body!r} must be absolute (start with '/', '~' or '**')", line, rule_name
            )
        if body.startswith("~") and not (body == "~" or body.startswith("~/")):
            raise self.error(
                f"path pattern {body!r}: only '~/' (any home directory) is supported", line, rule_name
            )
        return _Rule(path_glob=self.path_glob(body, line, rule_name), **common)

    def bash_body(self, body: str, line: int | None, rule: str) -> tuple[tuple[str, ...], bool]:
        body = body.strip()
        if body in ("", "*", ":*"):
            if body == "":
                raise self.error("empty command pattern (use Bash(*) to match every command)", line, rule)
            return (), True
        prefix = False
        if body.endswith(":*"):
            prefix = True
            body = body[:-2].rstrip()
        if ":*" in body:
            raise self.error("':*' may only appear at the end of a command pattern", line, rule)
        try:
            tokens = shlex.split(body, posix=True)
        except ValueError as exc:
            raise self.error(f"malformed command pattern: {exc}", line, rule) from None
        if tokens and tokens[-1] == "*":
            # `Bash(git push *)` is the newer spelling of `Bash(git push:*)`.
            prefix = True
            tokens = tokens[:-1]
        if not tokens:
            raise self.error("command pattern has no command name", line, rule)
        for token in tokens:
            if "[" in token and "]" not in token[token.index("[") :]:
                raise self.error(f"malformed pattern word {token!r}: unclosed '['", line, rule)
        return tuple(tokens), prefix

    def rule_list(
        self, node: _Node, list_action: str | None, agents: tuple[str, ...], paths: tuple[str, ...], what: str
    ) -> list[_Rule]:
        if node.value is None:
            return []
        if not isinstance(node.value, list):
            raise self.error(f"{what!r} must be a list of rules", node.line)
        return [self.rule(item, list_action, agents, paths) for item in node.value]

    def block(
        self, entries: dict[str, _Node], agents: tuple[str, ...], paths: tuple[str, ...]
    ) -> list[_Rule]:
        rules: list[_Rule] = []
        for key in _LIST_KEYS:
            if key in entries:
                rules.extend(self.rule_list(entries[key], key, agents, paths, key))
        if "rules" in entries:
            rules.extend(self.rule_list(entries["rules"], None, agents, paths, "rules"))
        return rules

    def thresholds(self, node: _Node, base: Thresholds, key_line: int | None) -> Thresholds:
        entries = self.mapping(node, "thresholds", set(_THRESHOLD_KEYS))
        values = base.to_dict()
        for key, value_node in entries.items():
            value = value_node.value
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(
                    f"threshold {key!r} must be an integer 0-100, got {value!r}", value_node.line
                )
            if not 0 <= value <= 100:
                raise self.error(f"threshold {key!r} must be between 0 and 100, got {value}", value_node.line)
            values[key] = value
        if not values["soft_ask"] <= values["hard_ask"] <= values["deny"]:
            raise self.error(
                "thresholds must satisfy 0 <= soft_ask <= hard_ask <= deny <= 100, got "
                f"soft_ask={values['soft_ask']} hard_ask={values['hard_ask']} deny={values['deny']}",
                key_line or node.line,
            )
        return Thresholds(**values)

    def policy(self, root: _Node | None, *, default_name: str, base: Policy | None) -> Policy:
        entries = self.mapping(root, "policy", _TOP_KEYS) if root is not None else {}
        if "version" in entries and entries["version"].value not in (1, "1"):
            raise self.error(
                f"unsupported policy format version {entries['version'].value!r} (expected 1)",
                entries["version"].line,
            )
        name = default_name
        if "name" in entries:
            name = self.string(entries["name"], "name")
            if not _NAME_RE.match(name):
                raise self.error(
                    f"name {name!r} may only use letters, digits, '.', '_' and '-'", entries["name"].line
                )
        if "description" in entries and not isinstance(entries["description"].value, str):
            raise self.error("description must be a string", entries["description"].line)
        inherited: Policy | None = None
        if "extends" in entries:
            extends = entries["extends"].value
            if extends not in ("default", "none"):
                raise self.error(
                    f"extends must be 'default' or 'none', got {extends!r}", entries["extends"].line
                )
            inherited = base if extends == "default" else None
        else:
            inherited = base
        thresholds = inherited.thresholds if inherited is not None else Thresholds()
        if "thresholds" in entries:
            thresholds = self.thresholds(entries["thresholds"], thresholds, root.key_lines.get("thresholds"))
        rules = list(inherited.rules) if inherited is not None else []
        rules.extend(self.block(entries, (), ()))
        if "scopes" in entries:
            scopes = entries["scopes"]
            if not isinstance(scopes.value, list):
                raise self.error("'scopes' must be a list of blocks", scopes.line)
            for block in scopes.value:
                fields = self.mapping(block, "scope block", _SCOPE_KEYS)
                agents, paths = self.scope(fields, None)
                if not agents and not paths:
                    raise self.error("a scope block needs 'agents' and/or 'paths'", block.line)
                if not any(key in fields for key in (*_LIST_KEYS, "rules")):
                    raise self.error("a scope block needs at least one rule list", block.line)
                rules.extend(self.block(fields, agents, paths))
        return Policy(name=name, rules=rules, thresholds=thresholds)


# --------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------


class Policy:
    """A validated, immutable policy. Build with ``load_policy`` or ``default_policy``."""

    def __init__(self, *, name: str, rules: list[_Rule], thresholds: Thresholds):
        self.name = name
        self.rules: tuple[_Rule, ...] = tuple(rules)
        self.thresholds = thresholds
        canonical = json.dumps(
            {"thresholds": thresholds.to_dict(), "rules": [rule.canonical() for rule in self.rules]},
            sort_keys=True,
            separators=(",", ":"),
        )
        self.version = f"{name}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"
        # Index Bash rules by command name so evaluation costs O(commands), not O(rules).
        self._restrictive_by_name: dict[str, list[_Rule]] = {}
        self._restrictive_any: list[_Rule] = []
        self._allow_by_name: dict[str, list[_Rule]] = {}
        self._allow_any: list[_Rule] = []
        self._regex_restrictive: list[_Rule] = []
        self._regex_allow: list[_Rule] = []
        self._path_rules: dict[str, list[_Rule]] = {op: [] for op in PATH_OPERATIONS}
        for rule in self.rules:
            allow = rule.action is Decision.AUTO
            if rule.kind == "bash":
                name_key = rule.command_name
                if name_key is None:
                    (self._allow_any if allow else self._restrictive_any).append(rule)
                else:
                    index = self._allow_by_name if allow else self._restrictive_by_name
                    index.setdefault(name_key, []).append(rule)
            elif rule.kind == "regex":
                (self._regex_allow if allow else self._regex_restrictive).append(rule)
            else:
                self._path_rules[rule.kind].append(rule)
        self._path_needles: dict[str, tuple[tuple[str, _Rule], ...]] = {
            op: tuple((rule._needle, rule) for rule in rules) for op, rules in self._path_rules.items()
        }

    def __repr__(self) -> str:
        return f"Policy({self.version!r}, {len(self.rules)} rules, {self.thresholds})"

    # -- thresholds -------------------------------------------------------------------

    def decision_for_score(self, score: int) -> Decision:
        """Map a 0-100 risk score to a decision: at or above a threshold gets it."""
        if score >= self.thresholds.deny:
            return Decision.DENY
        if score >= self.thresholds.hard_ask:
            return Decision.HARD_ASK
        if score >= self.thresholds.soft_ask:
            return Decision.SOFT_ASK
        return Decision.AUTO

    # -- commands ---------------------------------------------------------------------

    def evaluate(self, parsed: ParseResult, *, agent: str | None, cwd: str | None) -> PolicyOutcome:
        """What the explicit rules say about every executed command of ``parsed``.

        A deny or ask rule matches if ANY executed command (wrapped, nested or decoded
        ones included) matches it; an allow applies only if EVERY executed command is
        covered by some allow rule and the parse had no uncertainty. Path rules also
        see redirections: ``Write`` rules the output targets, ``Read`` rules ``< file``.
        ``decision`` is None when no rule matched.
        """
        restrictive: dict[_Rule, str] = {}  # rule -> the command text it matched
        commands = parsed.commands
        command_rules = bool(self._restrictive_by_name or self._restrictive_any)
        redirect_rules = bool(self._path_rules["write"] or self._path_rules["read"])
        # Where each command runs only matters to a rule that looks at it: skip the work
        # for the commonest case (no command rules, no redirections).
        if command_rules or (redirect_rules and any(command.redirects for command in commands)):
            where = _command_cwds(commands, cwd)
        else:
            where = [None] * len(commands)

        for command, command_cwd in zip(commands, where, strict=True):
            if command_rules:
                candidates = list(self._restrictive_by_name.get(command.name, ()))
                for wrapper in _wrapper_names(command):
                    # `Bash(sudo rm:*)` is indexed under sudo but must see the rm that sudo runs.
                    candidates.extend(self._restrictive_by_name.get(wrapper, ()))
                for rule in (*candidates, *self._restrictive_any):
                    if (
                        rule not in restrictive
                        and rule.in_scope(agent, command_cwd)
                        and self._matches_with_wrappers(rule, command)
                    ):
                        restrictive[rule] = _command_text(command)
            if redirect_rules:
                for redirect in command.redirects:
                    self._match_redirect(redirect.op, redirect.target, agent, command_cwd, restrictive)

        if self._regex_restrictive:
            # The whole input is judged from the caller's cwd, each command from its own.
            texts = [(parsed.normalized, cwd), *((_command_text(c), w) for c, w in zip(commands, where))]
            for rule in self._regex_restrictive:
                for text, text_cwd in texts:
                    if text and rule.in_scope(agent, text_cwd) and rule.matches_text(text):
                        restrictive[rule] = text
                        break

        if restrictive:
            decision = Decision.strictest(*(rule.action for rule in restrictive))
            ordered = sorted(restrictive, key=lambda r: -r.action.rank)
            return PolicyOutcome(
                decision=decision,
                matches=[rule.describe() for rule in ordered],
                reasons=[
                    _reason(rule, text)
                    for rule, text in sorted(restrictive.items(), key=lambda kv: -kv[0].action.rank)
                ],
            )

        allowed = self._allow_all(parsed, agent, cwd)
        if allowed:
            return PolicyOutcome(
                decision=Decision.AUTO,
                matches=[rule.describe() for rule in allowed],
                reasons=[f"policy allows every command: {', '.join(rule.text for rule in allowed)}"],
            )
        return PolicyOutcome()

    def _matches_with_wrappers(self, rule: _Rule, command: SimpleCommand) -> bool:
        if rule.matches_command(command, loose=True):
            return True
        # `Bash(sudo rm:*)` should also see the unwrapped `rm` that sudo ran.
        if command.wrappers and len(rule.tokens) > 1 and rule.tokens[0] in _wrapper_names(command):
            synthetic = SimpleCommand(name=rule.tokens[0], args=[command.name, *command.args], path=None)
            return rule.matches_command(synthetic, loose=True)
        return False

    def _match_redirect(
        self, op: str, target: str, agent: str | None, cwd: str | None, hits: dict[_Rule, str]
    ) -> None:
        if not target or target.isdigit() or target == "-":
            return
        operations = []
        if op in _OUTPUT_REDIRECTS or (op.endswith((">", ">>"))) and not op.startswith("<"):
            operations.append("write")
        if op in _INPUT_REDIRECTS:
            operations.append("read")
        if not operations:
            return  # heredoc / here-string bodies are text, not paths
        path = target
        if not path.startswith(("/", "~")) and cwd:
            path = posixpath.join(cwd, path)
        path = _normalise_path(path)
        for operation in operations:
            for rule in self._path_candidates(operation, path):
                if (
                    rule.action is not Decision.AUTO
                    and rule not in hits
                    and rule.in_scope(agent, cwd)
                    and rule.matches_path(path)
                ):
                    hits[rule] = f"{op} {target}"

    def _allow_all(self, parsed: ParseResult, agent: str | None, cwd: str | None) -> list[_Rule]:
        if not parsed.commands or parsed.flags & _UNSAFE_FOR_ALLOW:
            return []
        if not (self._allow_by_name or self._allow_any or self._regex_allow):
            return []
        used: dict[_Rule, None] = {}
        wrapped_names = {name for command in parsed.commands for name in _wrapper_names(command)}
        for command, command_cwd in zip(parsed.commands, _command_cwds(parsed.commands, cwd)):
            rule = self._allow_rule_for(command, agent, command_cwd)
            if rule is None:
                # A transparent wrapper (timeout, nice, env ...) is covered by the allow of
                # the command it wraps, which is itself in parsed.commands.
                if command.name in _TRANSPARENT_WRAPPERS and command.name in wrapped_names:
                    continue
                return []
            used[rule] = None
        return list(used)

    def _allow_rule_for(self, command: SimpleCommand, agent: str | None, cwd: str | None) -> _Rule | None:
        if not command.name or command.dynamic:
            return None  # the policy cannot vouch for a command it cannot see
        for rule in (*self._allow_by_name.get(command.name, ()), *self._allow_any):
            if rule.in_scope(agent, cwd) and rule.matches_command(command, loose=False):
                return rule
        text = _command_text(command)
        for rule in self._regex_allow:
            if rule.in_scope(agent, cwd) and rule.matches_text(text):
                return rule
        return None

    # -- paths ------------------------------------------------------------------------

    def _path_candidates(self, operation: str, path: str, case_insensitive: bool = False) -> list[_Rule]:
        # A policy has dozens of path rules and most paths match none: one `in` test per
        # rule on its literal needle, inlined here, is far cheaper than a call per rule.
        if case_insensitive:
            folded = path.lower()
            return [rule for needle, rule in self._path_needles[operation] if needle.lower() in folded]
        return [rule for needle, rule in self._path_needles[operation] if needle in path]

    def evaluate_path(
        self,
        operation: str,
        path: str,
        *,
        agent: str | None,
        cwd: str | None = None,
        case_insensitive: bool = False,
    ) -> PolicyOutcome:
        """What the path rules (``Read``/``List``/``Write``) say about one file operation.

        ``path`` should already be absolute and normalised (``shield.paths`` does that);
        it is normalised lexically again here. ``case_insensitive`` is for hosts whose
        filesystem ignores case (macOS, Windows). Raises ValueError for an unknown operation.
        """
        if operation not in PATH_OPERATIONS:
            raise ValueError(f"unknown path operation {operation!r} (expected one of {PATH_OPERATIONS})")
        normal = _normalise_path(path)
        restrictive: list[_Rule] = []
        allowed: list[_Rule] = []
        for rule in self._path_candidates(operation, normal, case_insensitive):
            if rule.in_scope(agent, cwd) and rule.matches_path(normal, case_insensitive=case_insensitive):
                (allowed if rule.action is Decision.AUTO else restrictive).append(rule)
        if restrictive:
            restrictive.sort(key=lambda r: -r.action.rank)
            return PolicyOutcome(
                decision=restrictive[0].action,
                matches=[rule.describe() for rule in restrictive],
                reasons=[_reason(rule, f"{operation} {normal}") for rule in restrictive],
            )
        if allowed:
            return PolicyOutcome(
                decision=Decision.AUTO,
                matches=[rule.describe() for rule in allowed],
                reasons=[_reason(allowed[0], f"{operation} {normal}")],
            )
        return PolicyOutcome()


_DIRECTORY_CHANGERS = frozenset({"cd", "pushd", "popd", "chdir"})


def _command_cwds(commands: list[SimpleCommand], cwd: str | None) -> list[str | None]:
    """Where each command runs, for path-scoped rules and relative redirections.

    The parser records the directory after earlier ``cd``s (``command.cwd``). When it
    does not know (``cd $DIR``), and the input changes directory at all, the place is
    unknown (None), so scoped deny/ask rules apply and scoped allows do not. Without
    any ``cd``, a command without its own cwd runs in the caller's ``cwd``.
    """
    changes_directory = any(command.name in _DIRECTORY_CHANGERS for command in commands)
    return [
        command.cwd if command.cwd is not None else (None if changes_directory else cwd)
        for command in commands
    ]


def _wrapper_names(command: SimpleCommand) -> list[str]:
    """Wrapper labels may carry options (``nice -n 5``) or paths: keep the program name."""
    names = []
    for label in command.wrappers:
        words = label.split()
        if words:
            names.append(posixpath.basename(words[0]) or words[0])
    return names


def _command_text(command: SimpleCommand) -> str:
    try:
        return shlex.join(command.argv)
    except (TypeError, ValueError):
        return " ".join(map(str, command.argv))


def _reason(rule: _Rule, text: str) -> str:
    shown = text if len(text) <= 200 else text[:197] + "..."
    base = f"policy {_ACTION_WORD[rule.action]} rule {rule.text} matched `{shown}`"
    return f"{base}: {rule.reason}" if rule.reason else base


# --------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------


def load_policy(text: str | bytes, *, source: str = "<policy>") -> Policy:
    """Validate and compile a policy. YAML, or TOML when ``source`` ends in ``.toml``.

    Unless the policy says ``extends: none`` it builds on the default policy: the
    default's rules stay in force and its thresholds are the starting point.

    Raises:
        PolicyError: naming source, line, rule and reason for anything invalid.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"policy is not valid UTF-8 (byte {exc.start})", source=source) from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise PolicyError(f"policy larger than {MAX_POLICY_BYTES} bytes", source=source)
    if "\x00" in text:
        raise PolicyError(
            "policy contains NUL bytes", source=source, line=text[: text.index("\x00")].count("\n") + 1
        )
    root = _parse_toml(text, source) if source.endswith(".toml") else _parse_yaml(text, source)
    return _Compiler(source).policy(root, default_name="org", base=default_policy())


def load_policy_file(path: str) -> Policy:
    """Read and compile a policy file (I/O lives here only for callers such as the CLI).

    Raises:
        PolicyError: unreadable file or invalid policy.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror or exc}", source=path) from None
    return load_policy(data, source=path)


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The built-in policy: conservative path rules and thresholds 30/60/85. Cached."""
    text = importlib.resources.files("shield").joinpath("policies/default.yaml").read_text(encoding="utf-8")
    root = _parse_yaml(text, "shield/policies/default.yaml")
    return _Compiler("shield/policies/default.yaml").policy(root, default_name="default", base=None)
