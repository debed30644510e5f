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

Pure and deterministic; never raises on odd commands.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class Facts:
    """Lazily computed facts about one command, shared by every rule that looks at it."""

    command: SimpleCommand
    ruleset: RuleSet
    env: PathEnv
    _view: ArgView | None = None
    _targets: list[tuple[str, frozenset[str]]] | None = None
    _hosts: list[tuple[str, str]] | None = None
    _sql: frozenset[str] | None = None
    _script: str | None = None
    _upstream: list[SimpleCommand] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def view(self) -> ArgView:
        if self._view is None:
            self._view = split_args(self.command.args, self.ruleset.profiles.get(self.command.name))
        return self._view

    def positionals_after(self, skip: int) -> list[str]:
        return self.view.positionals[skip:]

    def targets(self, skip: int) -> list[tuple[str, frozenset[str]]]:
        key = f"targets:{skip}"
        if key in self._cache:
            return self._cache[key]
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
        self._cache[key] = result
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
        cheap.append(lambda f, s: any(regex_pos.search(p) for p in f.view.positionals[s:]))
    if "positional_none_re" in match:
        regex_none = key("positional_none_re")
        cheap.append(lambda f, s: not any(regex_none.search(p) for p in f.view.positionals[s:]))
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
        cheap.append(
            lambda f, s, fl=flags, r=regex_v: any(
                r.search(v) for flag in fl for v in f.view.values.get(flag, ())
            )
        )
    if "args_re" in match:
        regex_a = key("args_re")
        cheap.append(lambda f, s: any(regex_a.search(a) for a in f.command.args))
    if "args_none_re" in match:
        regex_an = key("args_none_re")
        cheap.append(lambda f, s: not any(regex_an.search(a) for a in f.command.args))
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
        costly.append(
            lambda f, s: any(p(f) for p in by_name.get(f.command.name, ())) or any(p(f) for p in unnamed)
        )
    if "all" in match:
        subs_all = [_compile(sub) for sub in match["all"]]
        costly.append(lambda f, s: all(p(f) for p in subs_all))
    if "not" in match:
        sub_not = _compile(match["not"])
        costly.append(lambda f, s: not sub_not(f))
    checks = tuple(cheap + costly)

    def predicate(facts: Facts) -> bool:
        if names is not None:
            name = facts.command.name
            if name not in names and not (prefixes and name.startswith(prefixes)):
                return False
        skip = 0
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


def _has_stdin(facts: Facts) -> bool:
    command = facts.command
    return bool(
        facts.upstream
        or command.stdin_text
        or command.stdin_is_network
        or any(r.op in _HEREDOC_OPS or r.op == "<" for r in command.redirects)
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


def _candidates(
    ruleset: RuleSet, name: str, has_redirects: bool, has_path: bool
) -> list[tuple[Rule, Callable[[Facts], bool]]]:
    """The (rule, predicate) pairs to try for a command name, compiled and cached per ruleset."""
    cache = ruleset.compiled_candidates
    key = (name, has_redirects, has_path)
    found = cache.get(key)
    if found is None:
        candidates = ruleset.candidates(name, has_redirects, has_path)
        found = [(rule, _rule_predicate(ruleset, rule)) for rule in candidates]
        if len(cache) < 4096:  # names come from untrusted input; keep the cache bounded
            cache[key] = found
    return found


def _rule_predicate(ruleset: RuleSet, rule: Rule) -> Callable[[Facts], bool]:
    predicate = ruleset.predicates.get(rule.id)
    if predicate is None:
        assert rule.match is not None
        predicate = _compile(rule.match)
        ruleset.predicates[rule.id] = predicate
    return predicate


def match_parse(ruleset: RuleSet, parsed: ParseResult, env: PathEnv) -> MatchResult:
    """Every rule hit for every executed command of ``parsed`` (one hit per rule id)."""
    result = MatchResult()
    seen: set[str] = set()

    def record(rule: Rule, text: str) -> None:
        result.tags.update(rule.tags)
        if rule.id in seen or not rule.report or len(result.hits) >= MAX_HITS:
            return
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

    for index, command in enumerate(parsed.commands):
        facts = Facts(command, ruleset, env)
        for rule, predicate in _candidates(
            ruleset, command.name, bool(command.redirects), bool(command.path)
        ):
            if rule.id in seen and not rule.tags and index in result.matched_commands:
                continue
            if predicate(facts):
                if rule.report:  # tag-only rules do not make a program "known"
                    result.matched_commands.add(index)
                record(rule, _describe(command))
    for rule in ruleset.line_rules:
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
        record(rule, parsed.normalized or parsed.source[:200])
    return result
