"""Match compiled rule packs against the commands of one ``ParseResult``.

Predicates a rule's ``match`` may use (all listed ones must hold):

- ``command``: executable names (``mkfs*`` matches by prefix); ``name_re``/``path_re``.
- ``subcommand``: alternatives like ``"s3 rb"`` or ``"delete|del"``; the first positional
  words must match in order (``*`` matches any word).
- ``positional_any`` / ``positional_re`` / ``positional_none_re``: a positional word
  equals one of / matches / no positional matches.
- ``flags_all`` (groups of equivalent spellings, each group needed), ``flags_any``,
  ``flags_none``; short clusters count (``-rf`` has ``-r`` and ``-f``).
- ``flag_value``: ``{"--replicas|-r": "^0$"}``, a value given to one of those flags.
- ``targets_any`` / ``targets_all`` / ``targets_none``: path classes (see
  ``shield.rules.facts.classify_path``) of the target words (positionals after the
  subcommand, and file operands such as ``@file``, ``FILE:path``, ``--post-file=path``).
- ``operand_class``: ``{of: [block_device]}`` for ``key=value`` operands (dd).
- ``args_re`` / ``args_none_re``: a regex on ONE argument word (never the whole line).
- ``hosts_any`` / ``hosts_none``: host classes (local, internal, vendor, public_ip, unknown).
- ``redirect`` / ``redirect_none``: ``{op_any, classes_any, target_re}`` on any redirect.
- ``stdin_network``, ``stdin_from`` (names of upstream pipeline commands),
  ``stdin_from_targets_any`` (classes of what upstream commands read), ``stdin_from_re``
  (a regex on one argument of an upstream command), ``stdin_text_re``.
- ``sql_any`` / ``sql_none``: kinds of the SQL/Mongo/Redis text the command runs.
- ``code_re``: a regex on the inline program given to an interpreter (``-c``/``-e``...).
- ``privileged``, ``background``, ``dynamic``: booleans; ``origin_any``,
  ``obfuscation_any``, ``wrapper_any``: sets; ``positionals_min``/``_max``.
- ``any`` / ``all`` / ``not``: combine sub-matches.

Rules are not tried one by one: each command's shape (name, first positional word,
redirects, wrappers, pipeline ...) selects a plan of the rules that can still apply,
partially evaluated once per shape (see ``_Index``); ``match_command`` is the plain
evaluation of one match, and ``rules_matching`` the per-command answer of the index.

Pure and deterministic; never raises on odd commands (the plans are caches of pure
functions, bounded in size).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shield.model import ParseResult, RuleHit, SimpleCommand
from shield.rules.facts import ArgView, PathEnv, classify_path, hosts_in, split_args, sql_kinds
from shield.rules.loader import Rule, RuleSet

_SCRIPT_FLAGS = frozenset({"-c", "-e", "-E", "-r", "--eval", "--execute", "--command", "-x", "--exec", "-q",
                           "--query", "-batch", "-ex", "--run"})  # fmt: skip
_SCRIPT_GIVEN_FLAGS = frozenset({"-e", "-f", "--expression", "--file"})
_AWK = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_SQL_POSITIONAL = frozenset({"redis-cli", "sqlite3", "valkey-cli", "keydb-cli"})
_TEXT_PRODUCERS = frozenset({"echo", "printf", "cat", "print"})
_HEREDOC_OPS = frozenset({"<<", "<<-", "<<<"})
_FILE_VALUE_FLAGS = frozenset({"-T", "--upload-file", "--post-file", "--body-file", "-d", "--data",
                               "--data-binary", "--data-raw", "--data-urlencode", "-F", "--form", "-i",
                               "--input", "-in", "--file"})  # fmt: skip

MAX_HITS = 64  # a pathological input cannot make the verdict unbounded
# Key a specialised match uses instead of ``subcommand`` when the shape already decides
# which alternative matches: only its length (the words to skip) is left.
_STATIC_SKIP = "_skip"


class Facts:
    """Lazily computed facts about one command, shared by every rule that looks at it.

    One is built for every command matched, so it is a plain slotted class: a dataclass
    with default factories costs more to build than most of the checks cost to run.
    """

    __slots__ = ("_hosts", "_script", "_sql", "_targets", "_upstream", "_view", "command", "env", "ruleset")

    def __init__(self, command: SimpleCommand, ruleset: RuleSet, env: PathEnv):
        self.command = command
        self.ruleset = ruleset
        self.env = env
        self._view: ArgView | None = None
        self._targets: dict[int, list[tuple[str, frozenset[str]]]] = {}  # by subcommand words skipped
        self._hosts: list[tuple[str, str]] | None = None
        self._sql: frozenset[str] | None = None
        self._script: str | None = None
        self._upstream: list[SimpleCommand] | None = None

    @property
    def view(self) -> ArgView:
        if self._view is None:
            self._view = split_args(self.command.args, self.ruleset.profiles.get(self.command.name))
        return self._view

    def positionals_after(self, skip: int) -> list[str]:
        return self.view.positionals[skip:]

    def targets(self, skip: int) -> list[tuple[str, frozenset[str]]]:
        cached = self._targets.get(skip)
        if cached is not None:
            return cached
        words: list[str]
        if self.command.name in self.ruleset.leading_targets:
            words = []
            for arg in self.command.args:
                if arg.startswith(("-", "(", "!", "\\(")) and arg not in ("-",):
                    break
                words.append(arg)
        else:
            words = list(self.positionals_after(skip))
            if (
                self.command.name in self.ruleset.script_first
                and not skip
                and words
                and not self.view.flags & _SCRIPT_GIVEN_FLAGS
            ):
                words = words[1:]  # `sed 's/a/b/' file`: the first word is the program, not a target
        for flag, values in self.view.values.items():
            if flag in _FILE_VALUE_FLAGS:
                words.extend(values)
        expanded = [candidate for word in words for candidate in _file_operands(word)]
        result = [(w, classify_path(w, self.env)) for w in expanded if w and "://" not in w]
        self._targets[skip] = result
        return result

    @property
    def hosts(self) -> list[tuple[str, str]]:
        if self._hosts is None:
            self._hosts = hosts_in(self.command)
        return self._hosts

    @property
    def script(self) -> str:
        """Inline program text: interpreter -c/-e code, stdin text, heredocs, piped echo text."""
        if self._script is None:
            parts: list[str] = []
            args = self.command.args
            for i, arg in enumerate(args):
                if arg in _SCRIPT_FLAGS and i + 1 < len(args):
                    parts.append(args[i + 1])
                elif arg.startswith(("--eval=", "--execute=", "--command=", "--query=")):
                    parts.append(arg.split("=", 1)[1])
                elif (
                    len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[-1] in "ce" and i + 1 < len(args)
                ):
                    parts.append(args[i + 1])  # clusters like -lc, -ne, -pe end with the code flag
                elif (
                    len(arg) > 3
                    and arg[:2] in ("-e", "-c", "-r")
                    and any(ch in arg[2:] for ch in "=(;'\" .$/")
                ):
                    parts.append(arg[2:])  # code glued to its flag: ruby -e'...', python -c'...'
            if self.command.name in _AWK:
                for arg in args:
                    if not arg.startswith("-"):
                        parts.append(arg)
                        break
            if self.command.name in _SQL_POSITIONAL:
                positionals = self.view.positionals
                if self.command.name == "sqlite3":
                    positionals = positionals[1:]
                if positionals:
                    parts.append(" ".join(positionals))
            if self.command.stdin_text:
                parts.append(self.command.stdin_text)
            for redirect in self.command.redirects:
                if redirect.op in _HEREDOC_OPS:
                    parts.append(redirect.target)
            for upstream in self.upstream:
                if upstream.name in _TEXT_PRODUCERS:
                    parts.append(" ".join(a for a in upstream.args if not a.startswith("-")))
                    if upstream.stdin_text:
                        parts.append(upstream.stdin_text)
            self._script = "\n".join(parts)
        return self._script

    @property
    def sql(self) -> frozenset[str]:
        if self._sql is None:
            self._sql = sql_kinds(self.script)
        return self._sql

    @property
    def upstream(self) -> list[SimpleCommand]:
        if self._upstream is None:
            chain: list[SimpleCommand] = []
            current = self.command.stdin_from
            while current is not None and len(chain) < 32:
                chain.append(current)
                current = current.stdin_from
            self._upstream = chain
        return self._upstream


def _file_operands(word: str) -> list[str]:
    """The file paths a word refers to: itself, ``@file``, ``name=@file``, ``FILE:path``."""
    out = [word]
    if word.startswith("@") and len(word) > 1:
        out.append(word[1:])
    if "=@" in word:
        out.append(word.split("=@", 1)[1])
    upper = word[:5].upper()
    if upper in ("FILE:", "OPEN:"):
        out.append(word[5:].split(",", 1)[0])
    if word.startswith("<") and len(word) > 1:
        out.append(word[1:])
    return out


def _subcommand_len(match: dict[str, Any], view: ArgView) -> int | None:
    """Length of the first matching subcommand alternative, or None when none matches."""
    alternatives = match.get("subcommand")
    if not alternatives:
        return 0
    positionals = view.positionals
    for words in alternatives:
        if len(words) > len(positionals):
            continue
        if all(_word_ok(matcher, positionals[i]) for i, matcher in enumerate(words)):
            return len(words)
    return None


def _word_ok(matcher: tuple[frozenset[str], Any], word: str) -> bool:
    options, pattern = matcher
    if pattern is not None:
        return bool(pattern.match(word))
    return "*" in options or word in options


def match_command(match: dict[str, Any], facts: Facts) -> bool:
    """Whether one compiled ``match`` mapping holds for a command."""
    entry = _COMPILED.get(id(match))
    if entry is None or entry[0] is not match:
        entry = (match, _compile(match))
        _COMPILED[id(match)] = entry
    return entry[1](facts)


# id(match) -> (match, predicate); the match is kept so a recycled id is detected.
_COMPILED: dict[int, tuple[dict[str, Any], Callable[[Facts], bool]]] = {}

Check = Callable[[Facts, int], bool]


def _compile(match: dict[str, Any]) -> Callable[[Facts], bool]:
    """Turn a match mapping into one predicate that only evaluates the keys it has.

    Cheap checks (name, flags, positionals) run before expensive ones (path classes,
    hosts, SQL, upstream pipeline), and evaluation stops at the first failing check.
    """
    names = match.get("command")
    prefixes = match.get("command_prefixes", ())
    alternatives = match.get("subcommand")
    static_skip = match.get(_STATIC_SKIP, 0)
    cheap: list[Check] = []
    costly: list[Check] = []

    def key(name: str) -> Any:
        return match[name]

    if "name_re" in match:
        regex = key("name_re")
        cheap.append(lambda f, s: bool(regex.search(f.command.name)))
    if "path_re" in match:
        regex_p = key("path_re")
        cheap.append(lambda f, s: bool(f.command.path and regex_p.search(f.command.path)))
    for flag_key, attribute in (
        ("privileged", "privileged"),
        ("background", "background"),
        ("dynamic", "dynamic"),
    ):
        if flag_key in match:
            wanted = match[flag_key]
            cheap.append(lambda f, s, a=attribute, w=wanted: getattr(f.command, a) == w)
    if "stdin_network" in match:
        wanted_net = match["stdin_network"]
        cheap.append(
            lambda f, s: (
                (f.command.stdin_is_network or any(u.stdin_is_network for u in f.upstream)) == wanted_net
            )
        )
    if "origin_any" in match:
        origins = key("origin_any")
        cheap.append(lambda f, s: f.command.origin in origins)
    if "obfuscation_any" in match:
        techniques = key("obfuscation_any")
        cheap.append(lambda f, s: not techniques.isdisjoint(f.command.obfuscation))
    if "wrapper_any" in match:
        wrappers = key("wrapper_any")
        cheap.append(lambda f, s: any(w.split()[0] in wrappers for w in f.command.wrappers if w.strip()))
    if "positional_any" in match:
        words = key("positional_any")
        cheap.append(lambda f, s: not words.isdisjoint(f.view.positionals[s:]))
    if "positional_re" in match:
        regex_pos = key("positional_re")
        cheap.append(lambda f, s: any(map(regex_pos.search, f.view.positionals[s:])))
    if "positional_none_re" in match:
        regex_none = key("positional_none_re")
        cheap.append(lambda f, s: not any(map(regex_none.search, f.view.positionals[s:])))
    if "positionals_max" in match:
        most = key("positionals_max")
        cheap.append(lambda f, s: len(f.view.positionals) - s <= most)
    if "positionals_min" in match:
        least = key("positionals_min")
        cheap.append(lambda f, s: len(f.view.positionals) - s >= least)
    for group in match.get("flags_all", ()):
        cheap.append(lambda f, s, g=group: not g.isdisjoint(f.view.flags))
    if "flags_any" in match:
        flags_any = key("flags_any")
        cheap.append(lambda f, s: not flags_any.isdisjoint(f.view.flags))
    if "flags_none" in match:
        flags_none = key("flags_none")
        cheap.append(lambda f, s: flags_none.isdisjoint(f.view.flags))
    for flags, regex_v in match.get("flag_value", ()):
        cheap.append(lambda f, s, fl=flags, r=regex_v: _flag_value_matches(f.view.values, fl, r))
    if "args_re" in match:
        regex_a = key("args_re")
        cheap.append(lambda f, s: any(map(regex_a.search, f.command.args)))
    if "args_none_re" in match:
        regex_an = key("args_none_re")
        cheap.append(lambda f, s: not any(map(regex_an.search, f.command.args)))
    if "stdin_from" in match:
        upstream_names = key("stdin_from")
        cheap.append(lambda f, s: any(u.name in upstream_names for u in f.upstream))
    if "self_pipe" in match:
        wanted_self = match["self_pipe"]
        cheap.append(
            lambda f, s: (
                (bool(f.command.name) and any(u.name == f.command.name for u in f.upstream)) == wanted_self
            )
        )
    if "has_stdin" in match:
        wanted_stdin = match["has_stdin"]
        cheap.append(lambda f, s: _has_stdin(f) == wanted_stdin)
    if "stdin_from_re" in match:
        regex_up = key("stdin_from_re")
        cheap.append(lambda f, s: any(regex_up.search(a) for u in f.upstream for a in u.argv))
    if "stdin_text_re" in match:
        regex_t = key("stdin_text_re")
        cheap.append(lambda f, s: any(regex_t.search(t) for t in _stdin_texts(f.command)))

    if "targets_any" in match:
        classes_any = key("targets_any")
        costly.append(lambda f, s: any(not classes_any.isdisjoint(c) for _, c in f.targets(s)))
    if "targets_all" in match:
        classes_all = key("targets_all")
        costly.append(lambda f, s: _all_targets(f.targets(s), classes_all))
    if "targets_none" in match:
        classes_none = key("targets_none")
        costly.append(lambda f, s: all(classes_none.isdisjoint(c) for _, c in f.targets(s)))
    for operand, classes in match.get("operand_class", ()):
        costly.append(lambda f, s, o=operand, c=classes: _operand_has_class(f, o, c))
    if "hosts_any" in match:
        hosts_any = key("hosts_any")
        costly.append(lambda f, s: any(cls in hosts_any for _, cls in f.hosts))
    if "hosts_none" in match:
        hosts_none = key("hosts_none")
        costly.append(lambda f, s: not any(cls in hosts_none for _, cls in f.hosts))
    if "redirect" in match:
        spec = key("redirect")
        costly.append(lambda f, s: _redirect_matches(spec, f))
    if "redirect_none" in match:
        spec_none = key("redirect_none")
        costly.append(lambda f, s: not _redirect_matches(spec_none, f))
    if "stdin_from_hosts_any" in match:
        wanted_hosts = key("stdin_from_hosts_any")
        costly.append(lambda f, s: any(cls in wanted_hosts for u in f.upstream for _, cls in hosts_in(u)))
    if "stdin_from_targets_any" in match:
        wanted_targets = key("stdin_from_targets_any")
        costly.append(lambda f, s: _upstream_reads(f, wanted_targets))
    if "sql_any" in match:
        sql_any = key("sql_any")
        costly.append(lambda f, s: not sql_any.isdisjoint(f.sql))
    if "sql_none" in match:
        sql_none = key("sql_none")
        costly.append(lambda f, s: sql_none.isdisjoint(f.sql))
    if "code_re" in match:
        regex_c = key("code_re")
        costly.append(lambda f, s: bool(regex_c.search(f.script)))
    if "any" in match:
        # Dispatch alternatives by command name so a command only tries the ones about it.
        by_name: dict[str, list[Callable[[Facts], bool]]] = {}
        unnamed: list[Callable[[Facts], bool]] = []
        for sub in match["any"]:
            sub_names = sub.get("command")
            compiled = _compile(sub)
            if sub_names is None or sub.get("command_prefixes"):
                unnamed.append(compiled)
            else:
                for sub_name in sub_names:
                    by_name.setdefault(sub_name, []).append(compiled)
        if by_name:
            costly.append(
                lambda f, s: _any_holds(by_name.get(f.command.name, ()), f) or _any_holds(unnamed, f)
            )
        else:
            costly.append(lambda f, s: _any_holds(unnamed, f))
    if "all" in match:
        subs_all = [_compile(sub) for sub in match["all"]]
        costly.append(lambda f, s: all(p(f) for p in subs_all))
    if "not" in match:
        sub_not = _compile(match["not"])
        costly.append(lambda f, s: not sub_not(f))
    checks = tuple(cheap + costly)

    if names is None and not alternatives:
        # No name or subcommand to look at (the usual case for a specialised match).
        def unnamed_predicate(facts: Facts) -> bool:
            for check in checks:
                if not check(facts, static_skip):
                    return False
            return True

        return unnamed_predicate

    def predicate(facts: Facts) -> bool:
        if names is not None:
            name = facts.command.name
            if name not in names and not (prefixes and name.startswith(prefixes)):
                return False
        skip = static_skip
        if alternatives:
            found = _subcommand_len(match, facts.view)
            if found is None:
                return False
            skip = found
        for check in checks:
            if not check(facts, skip):
                return False
        return True

    return predicate


def _any_holds(predicates: list[Callable[[Facts], bool]], facts: Facts) -> bool:
    for predicate in predicates:
        if predicate(facts):
            return True
    return False


def _flag_value_matches(values: dict[str, list[str]], flags: frozenset[str], regex: re.Pattern[str]) -> bool:
    """Whether a value given to one of ``flags`` matches ``regex`` (most commands give no values)."""
    if not values:
        return False
    return any(regex.search(v) for flag in flags if flag in values for v in values[flag])


def _has_stdin(facts: Facts) -> bool:
    command = facts.command
    return bool(
        facts.upstream
        or command.stdin_text
        or command.stdin_is_network
        or (command.redirects and any(r.op in _HEREDOC_OPS or r.op == "<" for r in command.redirects))
    )


def _stdin_texts(command: SimpleCommand) -> list[str]:
    texts = [command.stdin_text or ""] + [r.target for r in command.redirects if r.op in _HEREDOC_OPS]
    return [t for t in texts if t]


def _all_targets(targets: list[tuple[str, frozenset[str]]], classes: frozenset[str]) -> bool:
    return bool(targets) and all(not classes.isdisjoint(c) for _, c in targets)


def _operand_has_class(facts: Facts, operand: str, classes: frozenset[str]) -> bool:
    prefix = operand + "="
    values = [a[len(prefix) :] for a in facts.command.args if a.startswith(prefix)]
    values += facts.view.values.get("--" + operand, [])
    return any(not classes.isdisjoint(classify_path(v, facts.env)) for v in values)


def _upstream_reads(facts: Facts, wanted: frozenset[str]) -> bool:
    for upstream in facts.upstream:
        upstream_facts = Facts(upstream, facts.ruleset, facts.env)
        if any(not wanted.isdisjoint(classes) for _, classes in upstream_facts.targets(0)):
            return True
        if any(
            not wanted.isdisjoint(classify_path(r.target, facts.env))
            for r in upstream.redirects
            if r.op == "<"
        ):
            return True
    return False


def _redirect_matches(spec: dict[str, Any], facts: Facts) -> bool:
    for redirect in facts.command.redirects:
        if "op_any" in spec and redirect.op not in spec["op_any"]:
            continue
        if redirect.op in _HEREDOC_OPS and "op_any" not in spec:
            continue
        if "target_re" in spec and not spec["target_re"].search(redirect.target):
            continue
        if "classes_any" in spec and not (classify_path(redirect.target, facts.env) & spec["classes_any"]):
            continue
        return True
    return False


@dataclass
class MatchResult:
    """What level 1 found: reported hits (with their rules) and every tag that fired."""

    hits: list[RuleHit] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)
    matched_commands: set[int] = field(default_factory=set)  # indexes into parsed.commands


def _describe(command: SimpleCommand) -> str:
    text = " ".join(command.argv).strip() or command.raw
    return text if len(text) <= 200 else text[:197] + "..."


# -- the rule index: which rules can apply to a command, decided once per command shape ----
#
# Most predicates of most rules can be decided from a handful of cheap facts about a
# command (its name, whether it has redirects, arguments, a path, upstream pipeline
# stages, which wrappers and obfuscations it came through ...), without looking at its
# words. Those facts form the command's ``Shape``. For each shape seen, every candidate
# rule is partially evaluated once: predicates the shape decides are dropped or make the
# rule impossible, so matching a command only runs the checks that need its words, and
# skips the rules that cannot apply at all. Evaluation is pure, so the residual
# predicate gives the same answer as the full one for every command of that shape.

_NO_WORD = None  # class of a positional word the command does not have
_NO_PATTERNS: frozenset[re.Pattern[str]] = frozenset()  # ... of a word no subcommand rule names
MAX_SHAPES = 4096  # shapes come from untrusted input; keep the plans bounded
MAX_PREDICATES = 16384


class Shape(NamedTuple):
    """The cheap structural facts about a command that decide many predicates outright.

    ``subcommand`` classifies the first positional words (as many as the longest
    subcommand of any rule has) so that every subcommand alternative is decided by the
    shape: each is the word itself when some rule names it at that position, else the
    frozenset of subcommand patterns it matches there (so that shapes do not multiply
    with every file name), or None when the command has no such word.
    """

    name: str
    subcommand: tuple[Any, ...]
    has_path: bool
    has_redirects: bool
    has_args: bool
    privileged: bool
    background: bool
    dynamic: bool
    origin: str
    obfuscation: tuple[str, ...]
    wrappers: tuple[str, ...]
    has_upstream: bool
    network_stdin: bool
    self_pipe: bool
    has_stdin: bool


Plan = list[tuple[Rule, Callable[[Facts], bool] | None]]  # None: the shape alone makes the rule hold


@dataclass
class _Index:
    """Per-ruleset matching state, built on first use: the subcommand vocabulary and the plans."""

    # Per position in a subcommand: the literal words and the patterns rules use there.
    subcommand_words: tuple[frozenset[str], ...]
    subcommand_patterns: tuple[tuple[re.Pattern[str], ...], ...]
    untagged_line_rules: list[Rule]  # line rules that can hold when no rule added a tag
    plans: dict[Shape, Plan] = field(default_factory=dict)
    # Compiled residual matches by structure: most shapes leave a rule with the same checks
    # (ra.miner keeps the same two for every program but grep & co.), compiled only once.
    predicates: dict[Any, Callable[[Facts], bool]] = field(default_factory=dict)
    no_positionals: tuple[None, ...] = field(init=False)

    def __post_init__(self) -> None:
        self.no_positionals = (_NO_WORD,) * len(self.subcommand_words)

    def shape(self, facts: Facts) -> Shape:
        # Built for every command matched: positional arguments, and no work for the
        # commonest case of no wrappers, obfuscation or pipeline.
        command = facts.command
        upstream = facts.upstream
        positionals = facts.view.positionals
        if positionals:
            classes = [_NO_WORD] * len(self.subcommand_words)
            for position, word in enumerate(positionals[: len(classes)]):
                classes[position] = _word_class(
                    word, self.subcommand_words[position], self.subcommand_patterns[position]
                )
            subcommand = tuple(classes)
        else:
            subcommand = self.no_positionals
        if upstream:
            network_stdin = command.stdin_is_network or any(u.stdin_is_network for u in upstream)
            self_pipe = bool(command.name) and any(u.name == command.name for u in upstream)
        else:
            network_stdin, self_pipe = command.stdin_is_network, False
        return Shape(
            command.name,
            subcommand,
            bool(command.path),
            bool(command.redirects),
            bool(command.args),
            command.privileged,
            command.background,
            command.dynamic,
            command.origin,
            tuple(command.obfuscation) if command.obfuscation else (),
            _wrapper_names(command.wrappers) if command.wrappers else (),
            bool(upstream),
            network_stdin,
            self_pipe,
            _has_stdin(facts),
        )

    def plan(self, ruleset: RuleSet, facts: Facts) -> Plan:
        """The rules to try on this command, in the order of ``RuleSet.candidates``."""
        shape = self.shape(facts)
        found = self.plans.get(shape)
        if found is None:
            found = []
            for rule in ruleset.candidates(shape.name, shape.has_redirects, shape.has_path):
                assert rule.match is not None
                residual = _specialize(rule.match, shape)
                if residual is None:
                    continue
                if not residual:
                    found.append((rule, None))
                else:
                    found.append((rule, self._predicate(residual)))
            if len(self.plans) >= MAX_SHAPES:
                self.plans.clear()
            self.plans[shape] = found
        return found

    def _predicate(self, residual: dict[str, Any]) -> Callable[[Facts], bool]:
        key = _structure(residual)
        predicate = self.predicates.get(key)
        if predicate is None:
            if len(self.predicates) >= MAX_PREDICATES:
                self.predicates.clear()
            predicate = self.predicates[key] = _compile(residual)
        return predicate


def _structure(value: Any) -> Any:
    """A hashable key that is equal for residual matches made of the same rule values.

    Residuals are new mappings, but their leaves (regexes, sets, lists of the compiled
    rule) are the rule's own objects, alive as long as the ruleset: their ids name them.
    """
    if isinstance(value, dict):
        return tuple((key, _structure(item)) for key, item in value.items())
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return tuple(_structure(item) for item in value)
    if isinstance(value, (bool, int, str)):
        return (type(value).__name__, value)
    return id(value)


def _wrapper_names(wrappers: list[str]) -> tuple[str, ...]:
    """Program names of the wrappers a command ran under (``sudo -u x`` -> ``sudo``)."""
    return tuple(w.split()[0] for w in wrappers if w.strip())


def _index_for(ruleset: RuleSet) -> _Index:
    index = ruleset.matcher_index
    if index is None:
        alternatives = [words for rule in ruleset.rules for words in _subcommand_alternatives(rule.match)]
        # At least one position, so the shape always tells whether there are positionals.
        longest = max([1, *(len(words) for words in alternatives)])
        literals: list[set[str]] = [set() for _ in range(longest)]
        patterns: list[dict[re.Pattern[str], None]] = [{} for _ in range(longest)]
        for words in alternatives:
            for position, (options, pattern) in enumerate(words):
                if pattern is not None:
                    patterns[position][pattern] = None
                elif "*" not in options:
                    literals[position] |= options
        # With no tags at all, a line rule that needs one (tags_all / tags_any) cannot hold.
        untagged = [r for r in ruleset.line_rules if not (r.line.get("tags_all") or r.line.get("tags_any"))]
        index = ruleset.matcher_index = _Index(
            tuple(frozenset(words) for words in literals), tuple(tuple(found) for found in patterns), untagged
        )
    return index


def _subcommand_alternatives(match: dict[str, Any] | None) -> list[tuple[tuple[frozenset[str], Any], ...]]:
    """Every subcommand alternative (a tuple of word matchers) anywhere in ``match``."""
    if not match:
        return []
    found = list(match.get("subcommand", ()))
    for sub in (*match.get("any", ()), *match.get("all", ()), *([match["not"]] if "not" in match else [])):
        found += _subcommand_alternatives(sub)
    return found


def _word_class(word: str, literals: frozenset[str], patterns: tuple[re.Pattern[str], ...]) -> Any:
    """A positional word as the shape records it (see ``Shape.subcommand``)."""
    if word in literals:
        return word
    matched = [pattern for pattern in patterns if pattern.match(word)]
    return frozenset(matched) if matched else _NO_PATTERNS


# Predicates that hold or fail by the shape alone: key -> test(value, shape).
_SHAPE_TESTS: dict[str, Callable[[Any, Shape], bool]] = {
    "name_re": lambda regex, shape: bool(regex.search(shape.name)),
    "privileged": lambda wanted, shape: shape.privileged == wanted,
    "background": lambda wanted, shape: shape.background == wanted,
    "dynamic": lambda wanted, shape: shape.dynamic == wanted,
    "stdin_network": lambda wanted, shape: shape.network_stdin == wanted,
    "self_pipe": lambda wanted, shape: shape.self_pipe == wanted,
    "has_stdin": lambda wanted, shape: shape.has_stdin == wanted,
    "origin_any": lambda origins, shape: shape.origin in origins,
    "obfuscation_any": lambda techniques, shape: not techniques.isdisjoint(shape.obfuscation),
    "wrapper_any": lambda names, shape: not names.isdisjoint(shape.wrappers),
}
# Predicates that look for something a command of this shape does not have at all:
# they fail outright (``_NEEDS``) or hold vacuously (``_VACUOUS``) when the test is false.
_NEEDS: dict[str, Callable[[Shape], bool]] = {
    "path_re": lambda shape: shape.has_path,
    "redirect": lambda shape: shape.has_redirects,
    "args_re": lambda shape: shape.has_args,
    "flags_any": lambda shape: shape.has_args,
    "flag_value": lambda shape: shape.has_args,
    "operand_class": lambda shape: shape.has_args,
    "targets_any": lambda shape: shape.has_args,
    "targets_all": lambda shape: shape.has_args,
    "positional_any": lambda shape: _has_positionals(shape),
    "positional_re": lambda shape: _has_positionals(shape),
    "stdin_from": lambda shape: shape.has_upstream,
    "stdin_from_re": lambda shape: shape.has_upstream,
    "stdin_from_hosts_any": lambda shape: shape.has_upstream,
    "stdin_from_targets_any": lambda shape: shape.has_upstream,
}
_VACUOUS: dict[str, Callable[[Shape], bool]] = {
    "redirect_none": lambda shape: shape.has_redirects,
    "args_none_re": lambda shape: shape.has_args,
    "flags_none": lambda shape: shape.has_args,
    "targets_none": lambda shape: shape.has_args,
    "positional_none_re": lambda shape: _has_positionals(shape),
}


def _specialize(match: dict[str, Any], shape: Shape) -> dict[str, Any] | None:
    """``match`` partially evaluated for commands of ``shape``.

    Returns None when no command of that shape can match, an empty mapping when every
    one does, else the mapping of the predicates still to check (``match`` itself when
    the shape decides none of them, so its compiled predicate can be shared).
    """
    residual = dict(match)
    if "command" in match:
        names, prefixes = match["command"], match.get("command_prefixes", ())
        if shape.name not in names and not (prefixes and shape.name.startswith(prefixes)):
            return None
        for key in ("command", "command_prefixes", "_index"):
            residual.pop(key, None)
    for key, value in match.items():
        if key in _SHAPE_TESTS:
            if not _SHAPE_TESTS[key](value, shape):
                return None
            del residual[key]
        elif key in _NEEDS and not _NEEDS[key](shape):
            return None
        elif key in _VACUOUS and not _VACUOUS[key](shape):
            del residual[key]
    if match.get("flags_all") and not shape.has_args:
        return None
    if match.get("subcommand"):
        # The shape decides every alternative; only the length of the first that matches
        # is left, as the number of positional words the other checks skip.
        length = next(
            (len(words) for words in match["subcommand"] if _alternative_matches(words, shape)), None
        )
        if length is None:
            return None
        del residual["subcommand"]
        residual[_STATIC_SKIP] = length
    if "any" in match:
        options: list[dict[str, Any]] = []
        for sub in match["any"]:
            specialized = _specialize(sub, shape)
            if specialized is None:
                continue
            if not specialized:  # one alternative always holds: so does `any`
                del residual["any"]
                break
            options.append(specialized)
        else:
            if not options:
                return None
            del residual["any"]
            if len(options) == 1 and _can_merge(residual, options[0]):
                residual.update(options[0])
            else:
                residual["any"] = match["any"] if _same_objects(options, match["any"]) else options
    if "all" in match:
        parts: list[dict[str, Any]] = []
        for sub in match["all"]:
            specialized = _specialize(sub, shape)
            if specialized is None:
                return None
            if specialized:
                parts.append(specialized)
        del residual["all"]
        if parts:
            residual["all"] = match["all"] if _same_objects(parts, match["all"]) else parts
    if "not" in match:
        negated = _specialize(match["not"], shape)
        if negated is None:
            del residual["not"]
        elif not negated:
            return None
        elif negated is not match["not"]:
            residual["not"] = negated
    if residual.keys() <= {_STATIC_SKIP}:
        return {}  # nothing left to check: the skip only matters to checks
    if residual.keys() == match.keys() and all(residual[key] is match[key] for key in match):
        return match
    return residual


def _same_objects(left: list[Any], right: list[Any]) -> bool:
    return len(left) == len(right) and all(a is b for a, b in zip(left, right, strict=True))


def _can_merge(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    """Whether ``inner``'s checks can join ``outer``'s (``outer`` and ``inner`` == both hold).

    Not when they share a key (one would overwrite the other) or either skips subcommand
    words: positional checks would then count positions from the wrong word.
    """
    skips = {"subcommand", _STATIC_SKIP}
    return outer.keys().isdisjoint(inner.keys()) and not (skips & (outer.keys() | inner.keys()))


def _alternative_matches(words: tuple[tuple[frozenset[str], Any], ...], shape: Shape) -> bool:
    """Whether a subcommand alternative matches the positional words of this shape."""
    for matcher, word in zip(words, shape.subcommand, strict=False):
        if word is _NO_WORD:
            return False
        options, pattern = matcher
        if isinstance(word, str):
            if not _word_ok(matcher, word):
                return False
        elif pattern is not None:
            if pattern not in word:
                return False
        elif "*" not in options:
            return False  # a word no rule names at this position: only "*" accepts it
    return True


def _has_positionals(shape: Shape) -> bool:
    return shape.subcommand[0] is not _NO_WORD


def rules_matching(ruleset: RuleSet, command: SimpleCommand, env: PathEnv) -> list[Rule]:
    """Every ``match`` rule that holds for one command, found through the index.

    ``match_parse`` runs the same plans (and skips rules it no longer needs); this is
    the plain per-command answer, e.g. to check the index against ``match_command``.
    """
    facts = Facts(command, ruleset, env)
    return [
        rule
        for rule, predicate in _index_for(ruleset).plan(ruleset, facts)
        if predicate is None or predicate(facts)
    ]


def match_parse(ruleset: RuleSet, parsed: ParseResult, env: PathEnv) -> MatchResult:
    """Every rule hit for every executed command of ``parsed`` (one hit per rule id)."""
    result = MatchResult()
    seen: set[str] = set()

    def record(rule: Rule, command: SimpleCommand | None) -> None:
        """Note a rule that held for ``command`` (None: for the whole line)."""
        result.tags.update(rule.tags)
        if rule.id in seen or not rule.report or len(result.hits) >= MAX_HITS:
            return
        text = _describe(command) if command is not None else parsed.normalized or parsed.source[:200]
        seen.add(rule.id)
        result.rules.append(rule)
        result.hits.append(
            RuleHit(
                id=rule.id,
                pack=rule.pack,
                severity=rule.severity,
                explanation=rule.explanation,
                attack=rule.attack,
                command=text,
                category=rule.category,
                suggested=rule.decision,
            )
        )

    rule_index = _index_for(ruleset)
    for index, command in enumerate(parsed.commands):
        facts = Facts(command, ruleset, env)
        for rule, predicate in rule_index.plan(ruleset, facts):
            if rule.id in seen and not rule.tags and index in result.matched_commands:
                continue
            if predicate is None or predicate(facts):
                if rule.report:  # tag-only rules do not make a program "known"
                    result.matched_commands.add(index)
                record(rule, command)
    for rule in ruleset.line_rules if result.tags else rule_index.untagged_line_rules:
        assert rule.line is not None
        spec = rule.line
        if "tags_all" in spec and not spec["tags_all"] <= result.tags:
            continue
        if "tags_any" in spec and not (spec["tags_any"] & result.tags):
            continue
        if "tags_none" in spec and spec["tags_none"] & result.tags:
            continue
        if "assignment" in spec and not any(
            name in parsed.assignments and regex.search(parsed.assignments[name])
            for name, regex in spec["assignment"]
        ):
            continue
        record(rule, None)
    return result
