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

from dataclasses import dataclass, field
from typing import Any

from shield.model import ParseResult, RuleHit, SimpleCommand
from shield.rules.facts import ArgView, PathEnv, classify_path, hosts_in, split_args, sql_kinds
from shield.rules.loader import Rule, RuleSet

_SCRIPT_FLAGS = frozenset({"-c", "-e", "-E", "-r", "--eval", "--execute", "--command", "-x", "--exec", "-q",
                           "--query", "-batch", "-ex", "--run"})  # fmt: skip
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
        for flag, values in self.view.values.items():
            if flag in _FILE_VALUE_FLAGS:
                words.extend(values)
        expanded: list[str] = []
        for word in words:
            for candidate in _file_operands(word):
                expanded.append(candidate)
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
                elif len(arg) > 2 and arg[0] == "-" and arg[1] != "-" and arg[-1] in "ce" and i + 1 < len(args):
                    parts.append(args[i + 1])  # clusters like -lc, -ne, -pe end with the code flag
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
    command = facts.command
    names = match.get("command")
    if names is not None and command.name not in names:
        if not any(n.endswith("*") and command.name.startswith(n[:-1]) for n in names):
            return False
    if "name_re" in match and not match["name_re"].search(command.name):
        return False
    if "path_re" in match and not (command.path and match["path_re"].search(command.path)):
        return False
    for key in ("privileged", "background", "dynamic", "stdin_network"):
        if key in match:
            actual = {
                "privileged": command.privileged,
                "background": command.background,
                "dynamic": command.dynamic,
                "stdin_network": command.stdin_is_network or any(u.stdin_is_network for u in facts.upstream),
            }[key]
            if actual != match[key]:
                return False
    if "origin_any" in match and command.origin not in match["origin_any"]:
        return False
    if "obfuscation_any" in match and not (set(command.obfuscation) & match["obfuscation_any"]):
        return False
    if "wrapper_any" in match and not any(w.split()[0] in match["wrapper_any"] for w in command.wrappers if w):
        return False

    view = facts.view
    skip = _subcommand_len(match, view)
    if skip is None:
        return False
    if "positional_any" in match and not (set(view.positionals[skip:]) & match["positional_any"]):
        return False
    if "positional_re" in match and not any(match["positional_re"].search(p) for p in view.positionals[skip:]):
        return False
    if "positional_none_re" in match and any(match["positional_none_re"].search(p) for p in view.positionals[skip:]):
        return False
    count = len(view.positionals) - skip
    if "positionals_max" in match and count > match["positionals_max"]:
        return False
    if "positionals_min" in match and count < match["positionals_min"]:
        return False
    for group in match.get("flags_all", ()):
        if not (view.flags & group):
            return False
    if "flags_any" in match and not (view.flags & match["flags_any"]):
        return False
    if "flags_none" in match and view.flags & match["flags_none"]:
        return False
    for flags, regex in match.get("flag_value", ()):
        if not any(regex.search(value) for flag in flags for value in view.values.get(flag, ())):
            return False
    if "args_re" in match and not any(match["args_re"].search(a) for a in command.args):
        return False
    if "args_none_re" in match and any(match["args_none_re"].search(a) for a in command.args):
        return False

    if "targets_any" in match or "targets_all" in match or "targets_none" in match:
        targets = facts.targets(skip)
        if "targets_any" in match and not any(classes & match["targets_any"] for _, classes in targets):
            return False
        if "targets_all" in match and (
            not targets or not all(classes & match["targets_all"] for _, classes in targets)
        ):
            return False
        if "targets_none" in match and any(classes & match["targets_none"] for _, classes in targets):
            return False
    for operand, classes in match.get("operand_class", ()):
        prefix = operand + "="
        values = [a[len(prefix) :] for a in command.args if a.startswith(prefix)]
        values += view.values.get("--" + operand, [])
        if not any(classify_path(v, facts.env) & classes for v in values):
            return False

    if "hosts_any" in match and not any(cls in match["hosts_any"] for _, cls in facts.hosts):
        return False
    if "hosts_none" in match and any(cls in match["hosts_none"] for _, cls in facts.hosts):
        return False

    if "redirect" in match and not _redirect_matches(match["redirect"], facts):
        return False
    if "redirect_none" in match and _redirect_matches(match["redirect_none"], facts):
        return False

    if "stdin_from" in match and not any(u.name in match["stdin_from"] for u in facts.upstream):
        return False
    if "self_pipe" in match:
        recursive = bool(command.name) and any(u.name == command.name for u in facts.upstream)
        if recursive != match["self_pipe"]:
            return False
    if "has_stdin" in match:
        fed = bool(facts.upstream or command.stdin_text or command.stdin_is_network
                   or any(r.op in _HEREDOC_OPS or r.op == "<" for r in command.redirects))
        if fed != match["has_stdin"]:
            return False
    if "stdin_from_hosts_any" in match:
        wanted = match["stdin_from_hosts_any"]
        if not any(cls in wanted for u in facts.upstream for _, cls in hosts_in(u)):
            return False
    if "stdin_from_targets_any" in match:
        wanted = match["stdin_from_targets_any"]
        found = False
        for upstream in facts.upstream:
            upstream_facts = Facts(upstream, facts.ruleset, facts.env)
            if any(classes & wanted for _, classes in upstream_facts.targets(0)):
                found = True
                break
            if any(classify_path(r.target, facts.env) & wanted for r in upstream.redirects if r.op == "<"):
                found = True
                break
        if not found:
            return False
    if "stdin_from_re" in match and not any(
        match["stdin_from_re"].search(a) for u in facts.upstream for a in u.argv
    ):
        return False
    if "stdin_text_re" in match:
        texts = [command.stdin_text or ""] + [r.target for r in command.redirects if r.op in _HEREDOC_OPS]
        if not any(match["stdin_text_re"].search(t) for t in texts if t):
            return False
    if "sql_any" in match and not (facts.sql & match["sql_any"]):
        return False
    if "sql_none" in match and facts.sql & match["sql_none"]:
        return False
    if "code_re" in match and not match["code_re"].search(facts.script):
        return False

    if "any" in match and not any(match_command(sub, facts) for sub in match["any"]):
        return False
    if "all" in match and not all(match_command(sub, facts) for sub in match["all"]):
        return False
    if "not" in match and match_command(match["not"], facts):
        return False
    return True


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
        for rule in ruleset.candidates(command.name):
            if rule.id in seen and not rule.tags and index in result.matched_commands:
                continue
            assert rule.match is not None
            if match_command(rule.match, facts):
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
            name in parsed.assignments and regex.search(parsed.assignments[name]) for name, regex in spec["assignment"]
        ):
            continue
        record(rule, parsed.normalized or parsed.source[:200])
    return result
