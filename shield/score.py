"""Shield level 3: the 0-100 risk score, built from contributions that add up exactly.

Every signal adds (or removes) a whole number of points and is listed as a
``Contribution``; the final score is their sum. When the running total leaves 0..100 a
``clamp`` contribution brings it back, so ``sum(c.points for c in contributions) ==
score`` always holds.

Signals, in the order they are applied:

1. the strongest risky rule hit (its decision and severity set the points),
2. additional risky rule hits (a fraction of their points, capped),
3. known-safe knowledge (a discount when only benign rules matched) or an
   unrecognised program (a small penalty when nothing at all matched),
4. privilege (sudo/doas/su), obfuscation and decoding, dynamic or unresolved code,
5. semantic intents (level 2), bounded so that a similarity alone cannot turn an
   allow into a deny unless it is very close to a deny exemplar,
6. floors: network content fed to a shell and unresolved code reach at least the
   soft-ask band; parse problems (parse_error, binary, too_deep, too_large, truncated,
   empty) reach at least the hard-ask band so bad input is never ``auto``,
7. clamping to 0..100.

Pure and deterministic: the same inputs give the same contributions in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shield.model import Contribution, IntentMatch, ParseResult, RuleHit

# Points for a rule by (suggested decision, severity). Deny rules start in the hard-ask
# band even at low severity; critical deny rules land above the deny threshold.
RULE_POINTS: dict[tuple[str, str], int] = {
    ("deny", "critical"): 95,
    ("deny", "high"): 80,
    ("deny", "medium"): 68,
    ("deny", "low"): 62,
    ("deny", "info"): 60,
    ("ask", "critical"): 72,
    ("ask", "high"): 62,
    ("ask", "medium"): 45,
    ("ask", "low"): 35,
    ("ask", "info"): 30,
}
EXTRA_HIT_FRACTION = 0.15
EXTRA_HITS_CAP = 12
BENIGN_DISCOUNT = -10
# An unknown program may do anything: run it, but tell a human (soft_ask band).
UNRECOGNISED_POINTS = 30
PRIVILEGE_ALONE = 30  # sudo with nothing else risky is worth asking about
PRIVILEGE_WITH_RISK = 8
DECODER_TECHNIQUES = frozenset({"base64", "base32", "hex", "printf", "ansi_c", "rot13", "rev", "gzip", "xxd",
                                "compression", "octal", "decode", "openssl"})  # fmt: skip
DECODER_POINTS = 12
OTHER_OBFUSCATION_POINTS = 6
OBFUSCATION_CAP = 25
UNNAMED_COMMAND_POINTS = 30
PARSE_PROBLEMS = frozenset({"parse_error", "binary", "too_deep", "too_large", "truncated", "empty"})
SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash", "fish", "python", "python3", "perl", "ruby", "node",
                    "php", "source", ".", "eval"})  # fmt: skip
NETWORK_SHELL_FLOOR = 50
UNRESOLVED_FLOOR = 35
PARSE_FLOOR_MARGIN = 5
SEMANTIC_MIN_SIMILARITY = 0.6
SEMANTIC_DENY_CAP = 25
SEMANTIC_DENY_CONFIDENT = 0.95
SEMANTIC_DENY_CONFIDENT_CAP = 55
SEMANTIC_CORROBORATION_CAP = 10
SEMANTIC_KNOWN_SAFE_CAP = 8
SEMANTIC_ASK_MIN = 0.8


@dataclass(frozen=True)
class ScoreInput:
    """What the score looks at; built by the engine from the earlier levels."""

    parsed: ParseResult
    hits: Sequence[RuleHit]
    intents: Sequence[IntentMatch] = ()
    unmatched_commands: Sequence[str] = ()
    soft_ask: int = 30
    hard_ask: int = 60
    deny: int = 85


def rule_points(hit: RuleHit) -> int:
    """Points a single rule hit is worth on its own (benign rules are worth 0)."""
    if hit.suggested not in ("deny", "ask"):
        return 0
    return RULE_POINTS.get((hit.suggested, hit.severity), 45)


def compute(data: ScoreInput) -> tuple[int, list[Contribution]]:
    """The score and its contributions; ``sum(points) == score`` by construction."""
    contributions: list[Contribution] = []
    total = 0

    def add(signal: str, points: int, reason: str) -> None:
        nonlocal total
        if points:
            contributions.append(Contribution(signal=signal, points=float(points), reason=reason))
            total += points

    # (points, hit) of the risky hits, strongest first.
    risky = sorted(
        ((points, h) for h in data.hits if (points := rule_points(h)) > 0),
        key=lambda scored: (-scored[0], scored[1].id),
    )
    benign = [h for h in data.hits if h.suggested == "allow"]
    if risky:
        top_points, top = risky[0]
        add(f"rule:{top.id}", top_points, f"{top.explanation} [{top.severity}, {top.attack}]")
        budget = EXTRA_HITS_CAP
        for hit_points, hit in risky[1:]:
            points = min(budget, max(1, round(hit_points * EXTRA_HIT_FRACTION)))
            if points <= 0:
                break
            add(f"rule:{hit.id}", points, f"also: {hit.explanation}")
            budget -= points
    if data.unmatched_commands and not risky:
        names = ", ".join(sorted(set(data.unmatched_commands))[:4])
        add("unrecognised", UNRECOGNISED_POINTS, f"no rule knows what these programs do: {names}")

    # One pass over the commands for every per-command signal below.
    privileged = unnamed = network_to_shell = False
    found_techniques: set[str] = set()
    for c in data.parsed.commands:
        privileged = privileged or c.privileged
        unnamed = unnamed or not c.name
        network_to_shell = network_to_shell or (c.stdin_is_network and c.name in SHELLS)
        if c.obfuscation:
            found_techniques.update(c.obfuscation)
    if privileged:
        # Alone, sudo is worth a notification; on top of another reason to ask it adds little.
        add(
            "privilege",
            PRIVILEGE_WITH_RISK if total >= data.soft_ask else PRIVILEGE_ALONE,
            "runs with elevated privileges (sudo/doas/su)",
        )

    techniques = sorted(found_techniques)
    obfuscation_points = 0
    if techniques:
        points = sum(
            DECODER_POINTS if t in DECODER_TECHNIQUES else OTHER_OBFUSCATION_POINTS for t in techniques
        )
        obfuscation_points = min(OBFUSCATION_CAP, points)
        add("obfuscation", obfuscation_points, "evasion techniques: " + ", ".join(techniques))

    if benign and not risky and not data.unmatched_commands and obfuscation_points:
        # Every program is known-safe: odd quoting or paths around them are not a threat by themselves.
        add(
            "benign",
            -min(-BENIGN_DISCOUNT, obfuscation_points),
            "known-safe operations: " + ", ".join(sorted({h.id for h in benign})[:4]),
        )

    if unnamed:
        add("dynamic", UNNAMED_COMMAND_POINTS, "a program name is only known at run time")

    # Level 2 before the floors, so a "safe intent" can never undercut a parse-problem floor.
    _add_semantic(data, add, bool(risky), total)

    flags = data.parsed.flags
    if network_to_shell:
        add(
            "network_to_shell",
            max(0, NETWORK_SHELL_FLOOR - total),
            "content fetched from the network is executed",
        )
    if flags & {"unresolved", "dynamic_code"}:
        add("unresolved", max(0, UNRESOLVED_FLOOR - total), "part of the code only exists at run time")
    problems = sorted(flags & PARSE_PROBLEMS)
    if problems:
        add(
            "parse",
            max(0, data.hard_ask + PARSE_FLOOR_MARGIN - total),
            "the command could not be fully analysed: " + ", ".join(problems),
        )

    if total > 100:
        add("clamp", 100 - total, "score capped at 100")
    elif total < 0:
        add("clamp", -total, "score floored at 0")
    return total, contributions


def _add_semantic(data: ScoreInput, add, has_risky_rule: bool, running: int) -> None:
    """Turn the nearest labelled intents into at most one contribution.

    The rules are more precise than the embedding, so a deny intent counts fully only for
    programs no rule recognised: it corroborates risky hits (at most +10), barely moves
    known-safe commands (at most +8), and only a very close match (>= 0.95) on an
    unrecognised command can reach the hard-ask band on its own.
    """
    if not data.intents:
        return
    # intents() lists the riskiest part of a chained command first: `ls ; rm -rf /` must be
    # judged by the rm, not by the ls that matches read_files more closely.
    best = data.intents[0]
    similarity = best.similarity
    if similarity < SEMANTIC_MIN_SIMILARITY:
        return
    strength = (similarity - SEMANTIC_MIN_SIMILARITY) / (1 - SEMANTIC_MIN_SIMILARITY)
    known_safe = (
        not has_risky_rule and not data.unmatched_commands and any(h.suggested == "allow" for h in data.hits)
    )
    if best.risk == "deny":
        if has_risky_rule:
            cap = SEMANTIC_CORROBORATION_CAP
        elif known_safe:
            cap = SEMANTIC_KNOWN_SAFE_CAP
        elif similarity >= SEMANTIC_DENY_CONFIDENT:
            cap = SEMANTIC_DENY_CONFIDENT_CAP
        else:
            cap = SEMANTIC_DENY_CAP
        points = round(cap * strength)
        add(f"semantic:{best.intent}", points, f"resembles '{best.exemplar}' ({similarity:.2f}, deny intent)")
    elif best.risk == "ask":
        if (
            not has_risky_rule
            and not known_safe
            and running < data.soft_ask
            and similarity >= SEMANTIC_ASK_MIN
        ):
            add(
                f"semantic:{best.intent}",
                data.soft_ask - running,
                f"resembles '{best.exemplar}' ({similarity:.2f}, state-changing intent)",
            )
    elif best.risk == "allow" and not has_risky_rule and similarity >= 0.8 and running > 0:
        add(
            f"semantic:{best.intent}",
            -min(running, 5),
            f"resembles '{best.exemplar}' ({similarity:.2f}, safe intent)",
        )
