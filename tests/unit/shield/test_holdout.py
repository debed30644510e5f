"""Shield's decisions on the labelled holdout set meet the same goals as on the dev corpus.

``tests/data/shield_holdout.jsonl`` holds commands that are not in the dev corpus (nor
near-duplicates of it), labelled by the corpus README's semantics before Shield was run
on them. The thresholds are the goals of ``make eval``, not 100%: the file exists to show
regressions on commands the rules were not written from, so a rule change that loses a
few of them fails here even when the dev corpus still scores perfectly.

The engine runs with level 2 off and, when the model is installed, on.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.eval import GOALS, load_corpus, meets_goal
from shield.engine import Shield

pytestmark = pytest.mark.unit

HOLDOUT = Path(__file__).resolve().parents[2] / "data" / "shield_holdout.jsonl"
GOAL_ENTRIES = {
    "deny blocked (deny|hard_ask)": lambda e: e.label == "deny",
    "evasion_obfuscated blocked": lambda e: e.category == "evasion_obfuscated",
    "allow frictionless (auto|soft_ask)": lambda e: e.label == "allow",
    "ask not auto": lambda e: e.label == "ask",
}


@pytest.fixture(scope="module")
def entries():
    return load_corpus(HOLDOUT)


def test_holdout_file_is_well_formed_and_sizeable(entries):
    assert len(entries) >= 500
    assert {e.label for e in entries} == {"deny", "ask", "allow"}
    assert len({e.cmd for e in entries}) == len(entries), "duplicate commands"
    assert all(e.technique for e in entries if e.category == "evasion_obfuscated")
    assert set(GOAL_ENTRIES) == set(GOALS)


@pytest.mark.parametrize("semantic", [False, True], ids=["level2-off", "level2-on"])
def test_holdout_goal_rates(entries, semantic):
    shield = Shield(semantic=semantic, cache_size=0)
    if semantic and not getattr(shield.semantic, "available", False):
        pytest.skip("level 2 model not installed")
    decisions = [(entry, shield.analyze(entry.cmd).decision.value) for entry in entries]
    failures = []
    for goal, selects in GOAL_ENTRIES.items():
        chosen = [(e, d) for e, d in decisions if selects(e)]
        misses = [(e, d) for e, d in chosen if not meets_goal(e.label, d)]
        rate = 1 - len(misses) / len(chosen)
        if rate < GOALS[goal]:
            shown = "; ".join(f"{e.label}->{d}: {e.cmd[:80]!r}" for e, d in misses[:10])
            failures.append(f"{goal}: {rate:.2%} < {GOALS[goal]:.0%} ({shown})")
    assert not failures, "\n".join(failures)
