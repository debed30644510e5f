"""The engine entry point: levels, policy precedence, caching and never raising."""

from __future__ import annotations

import pytest

import shield
from shield import engine as engine_module
from shield.engine import Shield
from shield.model import Context, Decision, IntentMatch
from shield.policy import load_policy

pytestmark = pytest.mark.unit


@pytest.fixture()
def fresh() -> Shield:
    return Shield(semantic=False)


BAD_INPUTS = [
    "",
    "   \n\t ",
    "echo 'never closed",
    "x" * (1024 * 1024),
    "ls\x00rm -rf /",
    b"\xff\xfe\xfa rm -rf /",
    "$(" * 1000 + "ls" + ")" * 1000,
    "a" * 5000 + " | " * 500,
]


@pytest.mark.parametrize("command", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_engine_bad_input_is_never_auto_and_never_raises(fresh, command):
    verdict = fresh.analyze(command)
    assert verdict.decision is not Decision.AUTO or not (
        set(verdict.flags) & {"parse_error", "binary", "too_deep", "too_large"}
    )
    if set(verdict.flags) & {"parse_error", "binary", "too_deep", "too_large", "truncated", "empty"}:
        assert verdict.decision in (Decision.HARD_ASK, Decision.DENY)


def test_engine_verdict_fields_and_levels(fresh):
    verdict = fresh.analyze("sudo rm -rf /etc")
    assert verdict.decision is Decision.DENY
    assert verdict.levels_run == ["parse", "rules", "score", "policy"]
    assert verdict.engine_version and verdict.policy_version
    assert verdict.normalized == "sudo rm -rf /etc"
    assert any("ATT&CK T1485" in reason for reason in verdict.reasons)
    assert verdict.to_dict()["decision"] == "deny"


def test_engine_internal_error_fails_closed(fresh, monkeypatch):
    def boom(*_args, **_kwargs):
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(engine_module, "parse", boom)
    verdict = fresh.analyze("ls")
    assert verdict.decision is Decision.HARD_ASK
    assert "engine_error" in verdict.flags
    assert "parser exploded" in verdict.reasons[0]


def test_engine_policy_deny_always_wins(fresh):
    policy = load_policy("version: 1\nname: t\ndeny:\n  - Bash(ls:*)\n")
    verdict = fresh.analyze("ls -la", Context(policy=policy))
    assert verdict.decision is Decision.DENY
    assert verdict.policy_matches


def test_engine_policy_ask_raises_the_decision(fresh):
    policy = load_policy("version: 1\nname: t\nask:\n  - Bash(git status:*)\n")
    assert fresh.analyze("git status", Context(policy=policy)).decision in (
        Decision.SOFT_ASK,
        Decision.HARD_ASK,
    )


def test_engine_policy_allow_lowers_only_without_critical_hits(fresh):
    policy = load_policy("version: 1\nname: t\nallow:\n  - Bash(kubectl delete:*)\n  - Bash(rm:*)\n")
    context = Context(policy=policy)
    assert fresh.analyze("kubectl delete pod web-0 -n dev", context).decision is Decision.AUTO
    assert fresh.analyze("rm -rf /", context).decision is Decision.DENY


def test_engine_cache_returns_independent_copies(fresh):
    first = fresh.analyze("git status")
    first.reasons.append("tampered")
    second = fresh.analyze("git status")
    assert "tampered" not in second.reasons
    assert second.score == first.score


def test_engine_semantic_requested_but_missing_is_reported():
    class Missing:
        available = False
        name = "missing"

        def intents(self, normalized):  # pragma: no cover - never called when unavailable
            raise AssertionError

    verdict = Shield(semantic=Missing()).analyze("ls")
    assert "semantic:unavailable" in verdict.levels_run


def test_engine_semantic_intents_feed_the_score():
    class Fake:
        available = True
        name = "fake"

        def intents(self, normalized):
            return [IntentMatch(intent="wipe_disk", similarity=0.95, exemplar="mkfs /dev/sda", risk="deny")]

    verdict = Shield(semantic=Fake(), cache_size=0).analyze("frobnicate --all")
    assert "semantic" in verdict.levels_run
    assert verdict.intents and verdict.intents[0].intent == "wipe_disk"
    assert any(c.signal == "semantic:wipe_disk" for c in verdict.contributions)


def test_engine_module_level_analyze_uses_a_default_shield():
    verdict = shield.analyze("git push origin main")
    assert verdict.decision in (Decision.SOFT_ASK, Decision.HARD_ASK)
    assert engine_module.default_shield() is engine_module.default_shield()


def test_engine_context_home_and_cwd_change_targets(fresh):
    context = Context(cwd="/home/dev/app", project_root="/home/dev/app")
    assert fresh.analyze("rm -rf /home/dev/app/dist", context).decision is Decision.AUTO
    assert fresh.analyze("rm -rf /home/dev/app/dist").decision in (
        Decision.DENY,
        Decision.HARD_ASK,
        Decision.SOFT_ASK,
    )


def test_engine_odd_context_fails_closed(fresh):
    verdict = fresh.analyze("ls", context="not a context")  # type: ignore[arg-type]
    assert verdict.decision is Decision.HARD_ASK
    assert "engine_error" in verdict.flags


def test_engine_version_names_the_rule_packs(fresh):
    version = fresh.analyze("ls").engine_version
    assert "+rules." in version and len(version.split("+rules.")[1]) == 12


def test_engine_cache_is_bounded_and_skips_huge_commands():
    small = Shield(semantic=False, cache_size=2)
    for command in ("ls", "pwd", "whoami", "id"):
        small.analyze(command)
    assert len(small._cache) == 2
    small.analyze("x" * (64 * 1024))
    assert all(len(key.command) < 64 * 1024 for key in small._cache)
