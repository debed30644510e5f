"""Data model shared by every Shield level: parsed commands, context and verdicts.

This module is the contract between the parser (level 0), the rule packs
(level 1), semantic intent (level 2), the risk score (level 3) and policy
(level 4). It holds plain data only: no parsing, no I/O, no scoring.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Decision(str, Enum):
    """How a command may proceed, ordered from most to least permissive."""

    AUTO = "auto"
    SOFT_ASK = "soft_ask"
    HARD_ASK = "hard_ask"
    DENY = "deny"

    @property
    def rank(self) -> int:
        return _DECISION_RANK[self]

    @staticmethod
    def strictest(*decisions: Decision) -> Decision:
        return max(decisions, key=lambda d: d.rank)


_DECISION_RANK = {Decision.AUTO: 0, Decision.SOFT_ASK: 1, Decision.HARD_ASK: 2, Decision.DENY: 3}


@dataclass(frozen=True)
class Redirect:
    """One redirection of a simple command, e.g. ``> /dev/sda`` or ``<<< "DROP DATABASE x"``.

    ``op`` is the operator as written (``>``, ``>>``, ``<``, ``<<``, ``<<-``, ``<<<``, ``&>``,
    ``>&``, ``2>`` ...); ``target`` is the normalised file name, or the heredoc /
    here-string body for ``<<``/``<<-``/``<<<``.
    """

    op: str
    target: str
    fd: int | None = None


@dataclass
class SimpleCommand:
    """One command that would actually be executed, after unwrapping and normalisation.

    The parser emits one of these for every executed command anywhere in the input:
    pipeline stages, list members, subshells, loop bodies, command and process
    substitutions, heredocs fed to shells, ``sh -c``/``eval`` strings, decoded payloads
    and the command under a wrapper (``sudo rm -rf /`` yields ``rm`` with
    ``wrappers=["sudo"]``; the wrapper itself is also emitted so rules can see it).

    Attributes:
        name: basename of the executable after quote/escape/variable/glob resolution,
            e.g. ``rm`` for ``/bin/rm``, ``\\rm``, ``r''m``, ``$a`` with ``a=rm``.
            Empty string when the name could not be resolved statically.
        path: the executable as written when it contained a ``/`` (``/bin/rm``), else None.
        args: normalised argument words (quotes removed, ``~``/``${HOME}``/simple variables
            resolved, ``..`` collapsed in path-like words, brace expansion applied).
        raw: the source text of this command (for explanations).
        redirects: redirections attached to this command.
        wrappers: wrappers stripped to reach this command, outermost first.
        privileged: True when run under ``sudo``/``doas``/``su -c``/``pkexec``.
        origin: how it was found: ``"top"``, ``"pipeline"``, ``"subshell"``,
            ``"substitution"``, ``"process_substitution"``, ``"sh -c"``, ``"eval"``,
            ``"heredoc"``, ``"here_string"``, ``"base64"``, ``"hex"``, ``"printf"``,
            ``"ansi_c"``, ``"rot13"``, ``"rev"``, ``"gzip"``, ``"function"``, ``"alias"``,
            ``"xargs"``, ``"find -exec"``, ``"interpreter"``, ``"delayed"``, ``"ssh"``,
            ``"container"`` (docker/kubectl exec), ``"script_file"`` (a file written earlier in
            the same input and then run), ``"sed"`` ...
        depth: nesting depth of unwrapping (0 at top level).
        stdin_from: the previous stage when this command reads a pipe, else None.
        stdin_text: text fed to stdin by heredoc or here-string, or piped from a stage
            whose output is statically known (``echo 'DROP DATABASE x' | psql``), if any.
        stdin_is_network: True when stdin comes (directly or through a decoder chain)
            from a network fetch (curl/wget/nc ...), or when the code this command runs
            does (``bash <(curl ...)``, ``eval "$(wget -qO- ...)"``).
        dynamic: True when the name or an argument came from an expansion the parser
            could not resolve (unknown variable, command substitution output, unresolved
            glob). Rules and the score treat this as uncertainty, never as safety.
        obfuscation: evasion techniques seen on the way to this command
            (``"quoting"``, ``"base64"``, ``"var_indirection"``, ``"absolute_path"`` ...).
        background: True when run with ``&``, ``nohup``, ``setsid`` or delayed via at/systemd-run.
        cwd: the directory the command would run in when the parser knows it (the ``cwd``
            given to ``parse`` or an earlier ``cd`` in the same input), else None.
    """

    name: str
    args: list[str] = field(default_factory=list)
    raw: str = ""
    path: str | None = None
    redirects: list[Redirect] = field(default_factory=list)
    wrappers: list[str] = field(default_factory=list)
    privileged: bool = False
    origin: str = "top"
    depth: int = 0
    stdin_from: SimpleCommand | None = None
    stdin_text: str | None = None
    stdin_is_network: bool = False
    dynamic: bool = False
    obfuscation: list[str] = field(default_factory=list)
    background: bool = False
    cwd: str | None = None

    @property
    def argv(self) -> list[str]:
        return [self.name, *self.args]


@dataclass
class ParseResult:
    """Everything the parser learned about one input string.

    Attributes:
        source: the command as received (possibly truncated for size).
        commands: every executed ``SimpleCommand``, in source order, nested ones included.
        normalized: a canonical one-line rendering of what runs (used for embeddings,
            explanations and reproducibility), e.g. ``sudo rm -rf /``.
        errors: human-readable parse problems; non-empty means uncertainty.
        flags: input-level facts: ``"empty"``, ``"parse_error"``, ``"too_large"``,
            ``"too_deep"``, ``"binary"`` (NUL or invalid UTF-8), ``"truncated"``,
            ``"unresolved"`` (something the parser could not resolve statically: an unknown
            variable or substitution output; see ``SimpleCommand.dynamic``),
            ``"dynamic_code"`` (stronger: a command name or code that a shell/eval/interpreter
            runs is unknown, e.g. ``curl ... | sh``, ``eval "$(...)"``, ``$CMD args``),
            ``"recursive_function"`` (a function calls itself, e.g. a fork bomb).
        functions: names of shell functions defined in the input.
        assignments: final values of simple variable assignments seen at top level.
    """

    source: str
    commands: list[SimpleCommand] = field(default_factory=list)
    normalized: str = ""
    errors: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    functions: dict[str, str] = field(default_factory=dict)
    assignments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HostFacts:
    """Facts about the machine the command would run on (all optional)."""

    os: str = "linux"
    hostname: str | None = None
    home: str = "/root"
    user: str = "root"
    environment: str | None = None  # e.g. "production", "staging", "dev"


@dataclass(frozen=True)
class Context:
    """What Shield knows besides the command text.

    ``policy`` is a compiled ``shield.policy.Policy``; None means the built-in default.
    ``project_root`` lets rules tell build outputs inside the project from other paths;
    it defaults to ``cwd``.
    """

    policy: Any = None
    agent: str | None = None
    cwd: str | None = None
    project_root: str | None = None
    host: HostFacts = field(default_factory=HostFacts)


@dataclass(frozen=True)
class RuleHit:
    """One level-1 rule that matched."""

    id: str
    pack: str
    severity: str  # "critical" | "high" | "medium" | "low" | "info"
    explanation: str
    attack: str  # MITRE ATT&CK technique id, e.g. "T1485"
    command: str  # the normalised command it matched
    category: str = ""
    suggested: str | None = None  # "deny" | "ask" | "allow" as the pack author intends

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pack": self.pack,
            "severity": self.severity,
            "explanation": self.explanation,
            "attack": self.attack,
            "command": self.command,
            "category": self.category,
            "suggested": self.suggested,
        }


@dataclass(frozen=True)
class IntentMatch:
    """One level-2 semantic intent: the nearest labelled exemplar and its cosine similarity."""

    intent: str
    similarity: float
    exemplar: str
    risk: str  # "deny" | "ask" | "allow" label of the exemplar's intent

    def to_dict(self) -> dict[str, Any]:
        return {
            "intent": self.intent,
            "similarity": round(self.similarity, 4),
            "exemplar": self.exemplar,
            "risk": self.risk,
        }


@dataclass(frozen=True)
class Contribution:
    """One signal's contribution to the level-3 score; contributions add up to the score."""

    signal: str
    points: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "points": round(self.points, 2), "reason": self.reason}


@dataclass
class Verdict:
    """Shield's answer for one command: data, reproducible from (command, policy, engine)."""

    decision: Decision
    score: int
    reasons: list[str]
    rules: list[RuleHit]
    intents: list[IntentMatch]
    normalized: str
    levels_run: list[str]
    engine_version: str
    policy_version: str
    contributions: list[Contribution] = field(default_factory=list)
    policy_matches: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision.value,
            "score": self.score,
            "reasons": list(self.reasons),
            "rules": [r.to_dict() for r in self.rules],
            "intents": [i.to_dict() for i in self.intents],
            "normalized": self.normalized,
            "levels_run": list(self.levels_run),
            "engine_version": self.engine_version,
            "policy_version": self.policy_version,
            "contributions": [c.to_dict() for c in self.contributions],
            "policy_matches": list(self.policy_matches),
            "flags": list(self.flags),
        }
