"""Shield's entry point: parse (level 0), rules (1), semantic intent (2), score (3), policy (4).

``Shield.analyze(command, context) -> Verdict`` ties the levels together:

1. the parser turns the text into every command that would execute;
2. the rule packs (compiled once per ``Shield``) match the parsed structure;
3. level 2, when enabled and installed, finds the nearest labelled intents;
4. the score adds up contributions from all of the above;
5. the policy maps the score to a decision with its thresholds, then its own rules
   apply with precedence deny > ask > allow. An allow rule may lower the decision to
   ``auto`` only when no critical rule matched, the score is below the deny threshold
   and the input parsed cleanly (fail closed).

``analyze`` never raises: any internal error yields a ``hard_ask`` verdict flagged
``engine_error`` with the reason. Results are cached in a small LRU keyed by the command,
the context fields that influence the verdict and the policy version; that is sound
because analysis is a pure function of those inputs.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from shield.model import Context, Decision, IntentMatch, ParseResult, RuleHit, Verdict
from shield.parse import parse
from shield.policy import Policy, default_policy
from shield.rules import PathEnv, RuleSet, default_ruleset, match_parse
from shield.score import ScoreInput, compute
from shield.version import ENGINE_VERSION

logger = logging.getLogger(__name__)

__all__ = ["Shield", "analyze", "default_shield"]

CACHE_SIZE = 4096
# Longer commands are analysed every time: caching them could pin gigabytes of keys.
CACHE_MAX_COMMAND = 16 * 1024
SEMANTIC_TOP_K = 3
MAX_REASONS = 8
# Input facts that must never end in auto, whatever a policy allow rule says.
_NEVER_AUTO = frozenset({"parse_error", "binary", "too_deep", "too_large", "truncated", "empty"})


@dataclass(frozen=True)
class _CacheKey:
    command: str | bytes
    agent: str | None
    cwd: str | None
    project_root: str | None
    home: str
    environment: str | None
    policy_version: str


class Shield:
    """A reusable analyser: rule packs and (optionally) the semantic model loaded once.

    Args:
        semantic: ``True`` to load the default level-2 model (``shield.semantic.load_default``),
            a ``SemanticLevel`` instance to use that one, ``False``/``None`` to skip level 2.
        policy: the policy used when a call's context carries none (default: built-in).
        ruleset: compiled rule packs (default: the shipped packs).
        cache_size: entries kept in the verdict cache (0 disables it).
    """

    def __init__(
        self,
        semantic: Any = None,
        *,
        policy: Policy | None = None,
        ruleset: RuleSet | None = None,
        cache_size: int = CACHE_SIZE,
    ):
        self.ruleset = ruleset if ruleset is not None else default_ruleset()
        self.policy = policy if policy is not None else default_policy()
        self.semantic_requested = bool(semantic)
        self.semantic = _load_semantic(semantic)
        self._cache: OrderedDict[_CacheKey, Verdict] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._engine_version = f"{ENGINE_VERSION}+rules.{self.ruleset.fingerprint}"

    # -- public -------------------------------------------------------------------------

    def analyze(self, command: str | bytes, context: Context | None = None) -> Verdict:
        """Judge one command. Never raises; see the module docstring for the decision rules.

        Results come from an LRU cache of this pure function when the same command is
        analysed again with the same context fields and policy version.
        """
        try:
            context = context if context is not None else Context()
            policy = context.policy if context.policy is not None else self.policy
        except Exception as exc:  # noqa: BLE001 - not a Context: refuse to guess, fail closed
            return _error_verdict(exc, self.policy)
        key = self._cache_key(command, context, policy)
        if key is not None:
            with self._lock:
                cached = self._cache.get(key)
                if cached is not None:
                    self._cache.move_to_end(key)
                    return _copy(cached)
        try:
            verdict = self._analyze(command, context, policy)
        except Exception as exc:  # fail closed: an engine bug must never let a command through
            logger.exception("shield engine error")
            verdict = _error_verdict(exc, policy)
            return verdict
        if key is None:
            return verdict  # nobody else holds it: no copy needed
        with self._lock:
            self._cache[key] = verdict
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return _copy(verdict)

    def _cache_key(self, command: str | bytes, context: Context, policy: Policy) -> _CacheKey | None:
        """The verdict cache key for this call, or None when the result must not be cached."""
        if not self._cache_size or len(command) > CACHE_MAX_COMMAND:
            return None
        try:
            key = _CacheKey(
                command=command,
                agent=context.agent,
                cwd=context.cwd,
                project_root=context.project_root,
                home=context.host.home,
                environment=context.host.environment,
                policy_version=str(getattr(policy, "version", "?")),
            )
            hash(key)
        except Exception:  # noqa: BLE001 - an unhashable or odd context: analyse without the cache
            return None
        return key

    def clear_cache(self) -> None:
        """Forget cached verdicts (e.g. after swapping rule packs in tests)."""
        with self._lock:
            self._cache.clear()

    # -- levels -------------------------------------------------------------------------

    def _analyze(self, command: str | bytes, context: Context, policy: Policy) -> Verdict:
        levels = ["parse"]
        home = context.host.home or "/root"
        parsed = parse(command, home=home, cwd=context.cwd)

        levels.append("rules")
        env = PathEnv(home=home, cwd=context.cwd, project_root=context.project_root or context.cwd)
        matched = match_parse(self.ruleset, parsed, env)
        hits = matched.hits
        unmatched = _unmatched_commands(parsed, matched.matched_commands)

        intents: list[IntentMatch] = []
        if self.semantic is not None and getattr(self.semantic, "available", False):
            intents = list(self.semantic.intents(parsed.normalized or _text(command))[:SEMANTIC_TOP_K])
            levels.append("semantic")
        elif self.semantic_requested:
            levels.append("semantic:unavailable")

        levels.append("score")
        thresholds = policy.thresholds
        score, contributions = compute(
            ScoreInput(
                parsed=parsed,
                hits=hits,
                intents=intents,
                unmatched_commands=unmatched,
                soft_ask=thresholds.soft_ask,
                hard_ask=thresholds.hard_ask,
                deny=thresholds.deny,
            )
        )

        levels.append("policy")
        decision = policy.decision_for_score(score)
        outcome = policy.evaluate(parsed, agent=context.agent, cwd=context.cwd)
        decision = _apply_policy(decision, outcome.decision, hits, score, parsed, thresholds.deny)

        return Verdict(
            decision=decision,
            score=score,
            reasons=_reasons(hits, contributions, outcome.reasons),
            rules=list(hits),
            intents=intents,
            normalized=parsed.normalized,
            levels_run=levels,
            engine_version=self._engine_version,
            policy_version=str(policy.version),
            contributions=contributions,
            policy_matches=list(outcome.matches),
            flags=sorted(parsed.flags),
        )


def _apply_policy(
    decision: Decision,
    policy_decision: Decision | None,
    hits: list[RuleHit],
    score: int,
    parsed: ParseResult,
    deny_threshold: int,
) -> Decision:
    """Combine the score's decision with the policy's explicit rules (deny > ask > allow)."""
    if policy_decision is Decision.DENY:
        return Decision.DENY
    if policy_decision in (Decision.SOFT_ASK, Decision.HARD_ASK):
        return Decision.strictest(decision, policy_decision)
    if policy_decision is Decision.AUTO:
        critical = any(h.severity == "critical" and h.suggested == "deny" for h in hits)
        if not critical and score < deny_threshold and not (parsed.flags & _NEVER_AUTO):
            return Decision.AUTO
    if parsed.flags & _NEVER_AUTO:
        return Decision.strictest(decision, Decision.HARD_ASK)
    return decision


def _unmatched_commands(parsed: ParseResult, matched: set[int]) -> list[str]:
    """Names of executed programs no rule (risky or benign) said anything about.

    Wrappers (sudo, env, nohup ...) are judged through the command they run, so they
    do not count as unrecognised themselves.
    """
    wrappers = {w.split()[0] for c in parsed.commands for w in c.wrappers if w.split()}
    return [
        c.name
        for i, c in enumerate(parsed.commands)
        if c.name and i not in matched and c.name not in wrappers
    ]


def _reasons(hits: list[RuleHit], contributions, policy_reasons: list[str]) -> list[str]:
    reasons: list[str] = []
    for contribution in contributions:
        if contribution.signal.startswith("rule:") or contribution.points == 0:
            continue
        if contribution.signal in ("clamp",):
            continue
        reasons.append(f"{contribution.reason} ({contribution.points:+.0f})")
    rule_lines = [
        f"{h.explanation} [{h.id}, ATT&CK {h.attack}]" for h in hits if h.suggested in ("deny", "ask")
    ]
    ordered = rule_lines + reasons + list(policy_reasons)
    if not ordered:
        ordered = ["no risky operation recognised"]
    return ordered[:MAX_REASONS]


def _text(command: str | bytes) -> str:
    if isinstance(command, bytes):
        return command.decode("utf-8", "replace")
    return command


def _copy(verdict: Verdict) -> Verdict:
    # Verdicts are handed to callers who may append to their lists; the cached one must not change.
    return replace(
        verdict,
        reasons=list(verdict.reasons),
        rules=list(verdict.rules),
        intents=list(verdict.intents),
        levels_run=list(verdict.levels_run),
        contributions=list(verdict.contributions),
        policy_matches=list(verdict.policy_matches),
        flags=list(verdict.flags),
    )


def _error_verdict(exc: BaseException, policy: Any) -> Verdict:
    from shield.model import Contribution

    score = 70
    return Verdict(
        decision=Decision.HARD_ASK,
        score=score,
        reasons=[
            f"Shield could not analyse this command ({type(exc).__name__}: {exc}); a human must decide."
        ],
        rules=[],
        intents=[],
        normalized="",
        levels_run=["error"],
        engine_version=ENGINE_VERSION,
        policy_version=str(getattr(policy, "version", "unknown")),
        contributions=[Contribution("engine_error", float(score), "internal error; failing closed")],
        policy_matches=[],
        flags=["engine_error"],
    )


def _load_semantic(semantic: Any) -> Any:
    if semantic is None or semantic is False:
        return None
    if semantic is True:
        from shield.semantic import load_default

        return load_default()
    return semantic


_default_lock = threading.Lock()
_default: Shield | None = None


def default_shield() -> Shield:
    """The process-wide ``Shield`` (rule packs and default policy, level 2 off), built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Shield(semantic=False)
    return _default


def analyze(command: str | bytes, context: Context | None = None) -> Verdict:
    """Judge one command with the default ``Shield`` (level 2 off). Never raises."""
    try:
        shield = default_shield()
    except Exception as exc:  # a broken shipped pack must still fail closed, not crash the caller
        logger.exception("shield failed to initialise")
        return _error_verdict(exc, None)
    return shield.analyze(command, context)
