"""Load and validate level-1 rule packs (YAML data files) into compiled, indexed rules.

A pack file looks like::

    pack: filesystem
    description: deleting files and directories
    defaults: {category: destruction, attack: T1485}
    profiles:                      # optional: per-command option knowledge
      rm: {value_flags: []}
    rules:
      - id: fs.rm-recursive-root
        severity: critical          # critical | high | medium | low | info
        decision: deny              # deny | ask | allow  (the pack author's suggestion)
        attack: T1485               # MITRE ATT&CK technique id
        category: destruction
        explanation: Recursively deletes the root filesystem.
        match: {command: [rm], flags_all: [[-r, -R, --recursive]], targets_any: [root]}

``match`` predicates (all must hold) are documented in ``shield.rules.matcher``; a rule
with ``line`` instead of ``match`` combines the ``tags`` of other rules that matched
any command of the same input (e.g. "reads a secret" + "sends to an untrusted host").

Validation is strict: an unknown key, a missing field, a bad severity or an invalid
regex raises ``RulePackError`` naming the file and the rule id. Packs are compiled
once; matching a command only looks at the rules indexed under its name plus the
generic ones.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from shield.rules.facts import CommandProfile

SEVERITIES = ("critical", "high", "medium", "low", "info")
DECISIONS = ("deny", "ask", "allow")
_ATTACK_ID = re.compile(r"^(T\d{4}(\.\d{3})?|none)$")

RULE_KEYS = frozenset(
    {"id", "severity", "decision", "attack", "category", "explanation", "match", "line", "tags", "report",
     "points"}
)  # fmt: skip
MATCH_KEYS = frozenset(
    {
        "command", "subcommand", "positional_any", "positional_re", "positional_none_re", "flags_all",
        "flags_any", "flags_none", "flag_value", "targets_any", "targets_all", "targets_none", "operand_class",
        "args_re", "args_none_re", "hosts_any", "hosts_none", "redirect", "redirect_none", "stdin_network",
        "stdin_from", "stdin_from_targets_any", "stdin_from_re", "stdin_text_re", "sql_any", "sql_none",
        "code_re", "privileged", "background", "dynamic", "origin_any", "obfuscation_any", "any", "all",
        "not", "positionals_max", "positionals_min", "name_re", "path_re", "wrapper_any", "stdin_from_hosts_any",
        "self_pipe", "has_stdin",
    }
)  # fmt: skip
REDIRECT_KEYS = frozenset({"op_any", "classes_any", "target_re"})
LINE_KEYS = frozenset({"tags_all", "tags_any", "tags_none", "assignment"})
PACK_KEYS = frozenset({"pack", "description", "defaults", "profiles", "rules"})
DEFAULT_KEYS = frozenset({"category", "attack", "severity", "decision"})
PROFILE_KEYS = frozenset({"value_flags", "leading_targets", "script_first"})
_REGEX_KEYS = frozenset({"positional_re", "positional_none_re", "args_re", "args_none_re", "stdin_text_re",
                         "code_re", "name_re", "path_re", "stdin_from_re"})  # fmt: skip


# libyaml's C loader is ~10x faster than the pure-Python one; both are "safe" loaders.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RulePackError(ValueError):
    """A rule pack file is malformed; the message names the file and the rule id."""


@dataclass(frozen=True)
class Rule:
    """One compiled rule."""

    id: str
    pack: str
    severity: str
    decision: str
    attack: str
    category: str
    explanation: str
    match: dict[str, Any] | None = None
    line: dict[str, Any] | None = None
    tags: tuple[str, ...] = ()
    report: bool = True
    points: float | None = None
    commands: tuple[str, ...] = ()  # names this rule is indexed under (exact)
    prefixes: tuple[str, ...] = ()  # name prefixes (from `mkfs*`)


@dataclass
class RuleSet:
    """All rules, indexed for fast matching."""

    rules: list[Rule] = field(default_factory=list)
    by_name: dict[str, list[Rule]] = field(default_factory=dict)
    by_prefix: list[tuple[str, Rule]] = field(default_factory=list)
    generic: list[Rule] = field(default_factory=list)
    redirect_only: list[Rule] = field(default_factory=list)  # rules (or alternatives) that need a redirect
    path_only: list[Rule] = field(default_factory=list)  # rules (or alternatives) about a program's path
    line_rules: list[Rule] = field(default_factory=list)
    profiles: dict[str, CommandProfile] = field(default_factory=dict)
    leading_targets: frozenset[str] = frozenset()
    script_first: frozenset[str] = frozenset()  # commands whose first positional is a program (sed, awk)
    packs: list[str] = field(default_factory=list)
    fingerprint: str = "custom"  # sha256 prefix of the pack files, stamped on verdicts
    # Built lazily by the matcher (shield.rules.matcher._Index): compiled predicates per command shape.
    matcher_index: Any = field(default=None, repr=False)

    def candidates(self, name: str, has_redirects: bool = True, has_path: bool = True) -> list[Rule]:
        """Rules that may match a command called ``name``, each once (indexed ones first, then generic)."""
        found: dict[str, Rule] = {rule.id: rule for rule in self.by_name.get(name, ())}
        for prefix, rule in self.by_prefix:
            if name.startswith(prefix):
                found.setdefault(rule.id, rule)
        for rule in self.generic:
            found.setdefault(rule.id, rule)
        if has_redirects:
            for rule in self.redirect_only:
                found.setdefault(rule.id, rule)
        if has_path:
            for rule in self.path_only:
                found.setdefault(rule.id, rule)
        return list(found.values())


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


class _Validator:
    def __init__(self, source: str):
        self.source = source

    def fail(self, rule_id: str | None, message: str) -> RulePackError:
        where = f"{self.source}: rule {rule_id!r}" if rule_id else self.source
        return RulePackError(f"{where}: {message}")

    def compile_match(self, spec: Any, rule_id: str, path: str = "match") -> dict[str, Any]:
        if not isinstance(spec, dict) or not spec:
            raise self.fail(rule_id, f"{path} must be a non-empty mapping")
        unknown = set(spec) - MATCH_KEYS
        if unknown:
            raise self.fail(rule_id, f"unknown {path} key(s): {', '.join(sorted(unknown))}")
        out: dict[str, Any] = {}
        for key, value in spec.items():
            if key in _REGEX_KEYS:
                out[key] = self.regex(value, rule_id, f"{path}.{key}")
            elif key in ("any", "all"):
                items = _as_list(value)
                if not items:
                    raise self.fail(rule_id, f"{path}.{key} must list sub-matches")
                out[key] = [
                    self.compile_match(item, rule_id, f"{path}.{key}[{i}]") for i, item in enumerate(items)
                ]
            elif key == "not":
                out[key] = self.compile_match(value, rule_id, f"{path}.not")
            elif key in ("redirect", "redirect_none"):
                if not isinstance(value, dict) or set(value) - REDIRECT_KEYS:
                    raise self.fail(rule_id, f"{path}.{key} accepts only {sorted(REDIRECT_KEYS)}")
                compiled = dict(value)
                if "target_re" in compiled:
                    compiled["target_re"] = self.regex(
                        compiled["target_re"], rule_id, f"{path}.{key}.target_re"
                    )
                for list_key in ("op_any", "classes_any"):
                    if list_key in compiled:
                        compiled[list_key] = frozenset(
                            self.words(compiled[list_key], rule_id, f"{path}.{key}.{list_key}")
                        )
                out[key] = compiled
            elif key in ("flags_all",):
                out[key] = [frozenset(self.words(group, rule_id, f"{path}.{key}")) for group in _as_list(value)]
            elif key == "flag_value":
                if not isinstance(value, dict):
                    raise self.fail(rule_id, f"{path}.flag_value must map flag names to regexes")
                out[key] = [
                    (frozenset(str(name).split("|")), self.regex(regex, rule_id, f"{path}.flag_value.{name}"))
                    for name, regex in value.items()
                ]
            elif key == "operand_class":
                if not isinstance(value, dict):
                    raise self.fail(rule_id, f"{path}.operand_class must map operand names to classes")
                out[key] = [(str(name), frozenset(_as_list(classes))) for name, classes in value.items()]
            elif key == "subcommand":
                alternatives = self.words(value, rule_id, f"{path}.{key}")
                out[key] = [tuple(_word_matcher(w) for w in alt.split()) for alt in alternatives]
            elif key == "command":
                names = self.words(value, rule_id, f"{path}.{key}")
                out[key] = frozenset(n for n in names if not n.endswith("*"))
                out["command_prefixes"] = tuple(n[:-1] for n in names if n.endswith("*"))
                out["_index"] = frozenset(names)
            elif key in ("privileged", "background", "dynamic", "stdin_network", "self_pipe", "has_stdin"):
                if not isinstance(value, bool):
                    raise self.fail(rule_id, f"{path}.{key} must be true or false")
                out[key] = value
            elif key in ("positionals_max", "positionals_min"):
                if not isinstance(value, int):
                    raise self.fail(rule_id, f"{path}.{key} must be an integer")
                out[key] = value
            else:
                out[key] = frozenset(self.words(value, rule_id, f"{path}.{key}"))
        return out

    def words(self, value: Any, rule_id: str, where: str) -> list[str]:
        """A list of words (command names, flags, operands), each a string.

        YAML 1.1 reads bare true/false/yes/no/on/off/null as booleans and None, so an
        unquoted ``true`` in a command list would silently become ``"True"`` and never match.
        """
        items = _as_list(value)
        for item in items:
            if not isinstance(item, str):
                raise self.fail(
                    rule_id, f"{where} must hold strings; quote {item!r} (YAML reads bare true/yes/no/null as non-strings)"
                )
        return items

    def regex(self, value: Any, rule_id: str, where: str) -> re.Pattern[str]:
        if not isinstance(value, str):
            raise self.fail(rule_id, f"{where} must be a regex string")
        try:
            return re.compile(value)
        except re.error as exc:
            raise self.fail(rule_id, f"{where} is not a valid regex: {exc}") from None


def _word_matcher(word: str) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """A subcommand word: ``a|b`` alternatives, ``*`` any word, ``delete-*`` a glob."""
    options = frozenset(word.split("|"))
    if "*" in word and word != "*":
        return options, re.compile("^(?:" + "|".join(fnmatch.translate(o) for o in options) + ")")
    return options, None


# Pseudo command names for rules that can only match a command with a redirect / a path.
REDIRECT_BUCKET = "<redirect>"
PATH_BUCKET = "<path>"


def _index_names(match: dict[str, Any]) -> frozenset[str] | None:
    """Command names a match can only hold for, or None when it may hold for any command.

    Used to index rules by name so matching a command skips rules about other programs;
    ``any`` alternatives contribute the union of their names, ``all`` the first known set.
    """
    if "command" in match:
        return match["_index"]
    if "redirect" in match:
        return frozenset({REDIRECT_BUCKET})
    if "path_re" in match:
        return frozenset({PATH_BUCKET})
    if "any" in match:
        found: set[str] = set()
        for alternative in match["any"]:
            names = _index_names(alternative)
            if names is None:
                return None
            found |= names
        return frozenset(found)
    for sub in match.get("all", ()):
        names = _index_names(sub)
        if names is not None:
            return names
    return None


def compile_pack(data: Any, source: str) -> tuple[str, list[Rule], dict[str, CommandProfile], set[str]]:
    """Validate one parsed pack document; returns (pack name, rules, profiles, leading-target names)."""
    v = _Validator(source)
    if not isinstance(data, dict):
        raise v.fail(None, "a pack must be a mapping with `pack` and `rules`")
    unknown = set(data) - PACK_KEYS
    if unknown:
        raise v.fail(None, f"unknown top-level key(s): {', '.join(sorted(unknown))}")
    pack = data.get("pack")
    if not isinstance(pack, str) or not pack:
        raise v.fail(None, "missing `pack` name")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict) or set(defaults) - DEFAULT_KEYS:
        raise v.fail(None, f"`defaults` accepts only {sorted(DEFAULT_KEYS)}")

    profiles: dict[str, CommandProfile] = {}
    leading: set[str] = set()
    script_first: set[str] = set()
    for name, spec in (data.get("profiles") or {}).items():
        if not isinstance(spec, dict) or set(spec) - PROFILE_KEYS:
            raise v.fail(None, f"profile {name!r} accepts only {sorted(PROFILE_KEYS)}")
        value_flags = frozenset(v.words(spec.get("value_flags"), None, f"profile {name!r} value_flags"))
        for command in str(name).split("|"):
            profiles[command] = CommandProfile(value_flags)
            if spec.get("leading_targets"):
                leading.add(command)
            if spec.get("script_first"):
                script_first.add(command)

    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(_as_list(data.get("rules"))):
        if not isinstance(raw, dict):
            raise v.fail(None, f"rule #{index + 1} is not a mapping")
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise v.fail(None, f"rule #{index + 1} has no `id`")
        if rule_id in seen:
            raise v.fail(rule_id, "duplicate id")
        seen.add(rule_id)
        unknown = set(raw) - RULE_KEYS
        if unknown:
            raise v.fail(rule_id, f"unknown key(s): {', '.join(sorted(unknown))}")
        merged = {**defaults, **raw}
        for required in ("severity", "decision", "attack", "category", "explanation"):
            if not merged.get(required):
                raise v.fail(rule_id, f"missing `{required}`")
        if merged["severity"] not in SEVERITIES:
            raise v.fail(rule_id, f"severity must be one of {', '.join(SEVERITIES)}")
        if merged["decision"] not in DECISIONS:
            raise v.fail(rule_id, f"decision must be one of {', '.join(DECISIONS)}")
        if not _ATTACK_ID.match(str(merged["attack"])):
            raise v.fail(rule_id, "attack must be a MITRE ATT&CK technique id like T1485 or T1059.004")
        has_match, has_line = "match" in raw, "line" in raw
        if has_match == has_line:
            raise v.fail(rule_id, "needs exactly one of `match` or `line`")
        match = line = None
        names: tuple[str, ...] = ()
        prefixes: tuple[str, ...] = ()
        if has_match:
            match = v.compile_match(raw["match"], rule_id)
            commands = sorted(_index_names(match) or ())
            names = tuple(c for c in commands if not c.endswith("*"))
            prefixes = tuple(c[:-1] for c in commands if c.endswith("*"))
        else:
            spec = raw["line"]
            if not isinstance(spec, dict) or not spec or set(spec) - LINE_KEYS:
                raise v.fail(rule_id, f"`line` accepts only {sorted(LINE_KEYS)}")
            line = {}
            for key, val in spec.items():
                if key == "assignment":
                    if not isinstance(val, dict) or not val:
                        raise v.fail(rule_id, "line.assignment must map variable names to value regexes")
                    line[key] = [
                        (str(name), v.regex(regex, rule_id, f"line.assignment.{name}"))
                        for name, regex in val.items()
                    ]
                else:
                    line[key] = frozenset(_as_list(val))
        points = raw.get("points")
        if points is not None and not isinstance(points, (int, float)):
            raise v.fail(rule_id, "points must be a number")
        rules.append(
            Rule(
                id=rule_id,
                pack=pack,
                severity=merged["severity"],
                decision=merged["decision"],
                attack=str(merged["attack"]),
                category=str(merged["category"]),
                explanation=" ".join(str(merged["explanation"]).split()),
                match=match,
                line=line,
                tags=tuple(str(t) for t in _as_list(raw.get("tags"))),
                report=bool(raw.get("report", True)),
                points=float(points) if points is not None else None,
                commands=names,
                prefixes=prefixes,
            )
        )
    return pack, rules, profiles, leading | {f"script:{name}" for name in script_first}


def build_ruleset(documents: list[tuple[str, Any]]) -> RuleSet:
    """Compile (source, parsed YAML) documents into one indexed ``RuleSet``."""
    ruleset = RuleSet()
    ids: dict[str, str] = {}
    leading: set[str] = set()
    for source, data in documents:
        pack, rules, profiles, lead = compile_pack(data, source)
        ruleset.packs.append(pack)
        ruleset.profiles.update(profiles)
        leading |= lead
        for rule in rules:
            if rule.id in ids:
                raise RulePackError(f"{source}: rule {rule.id!r}: id already used in {ids[rule.id]}")
            ids[rule.id] = source
            ruleset.rules.append(rule)
            if rule.line is not None:
                ruleset.line_rules.append(rule)
                continue
            if not rule.commands and not rule.prefixes:
                ruleset.generic.append(rule)
            for name in rule.commands:
                if name == REDIRECT_BUCKET:
                    ruleset.redirect_only.append(rule)
                elif name == PATH_BUCKET:
                    ruleset.path_only.append(rule)
                else:
                    ruleset.by_name.setdefault(name, []).append(rule)
            for prefix in rule.prefixes:
                ruleset.by_prefix.append((prefix, rule))
    ruleset.leading_targets = frozenset(n for n in leading if not n.startswith("script:"))
    ruleset.script_first = frozenset(n[len("script:") :] for n in leading if n.startswith("script:"))
    return ruleset


def load_text(text: str, source: str) -> Any:
    """Parse YAML text, turning syntax errors into ``RulePackError`` naming the source and line."""
    try:
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise RulePackError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None


def load_default_ruleset() -> RuleSet:
    """Compile every pack shipped in ``shield/rules/packs`` (sorted by file name)."""
    folder = resources.files("shield.rules") / "packs"
    documents = []
    digest = hashlib.sha256()
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            source = f"shield/rules/packs/{entry.name}"
            text = entry.read_text(encoding="utf-8")
            digest.update(entry.name.encode() + b"\0" + text.encode() + b"\0")
            documents.append((source, load_text(text, source)))
    ruleset = build_ruleset(documents)
    ruleset.fingerprint = digest.hexdigest()[:12]
    return ruleset
