"""Every policy example in docs/policy.md loads, so the documentation cannot rot."""

from __future__ import annotations

import pathlib
import re

import pytest

from shield.model import Decision
from shield.policy import load_policy

pytestmark = pytest.mark.unit

DOC = pathlib.Path(__file__).resolve().parents[3] / "docs" / "policy.md"
FENCE = re.compile(r"^```(yaml|toml)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _examples() -> list[tuple[str, str, int]]:
    text = DOC.read_text(encoding="utf-8")
    return [
        (match.group(1), match.group(2), text[: match.start()].count("\n") + 1)
        for match in FENCE.finditer(text)
    ]


def test_policy_docs_have_yaml_and_toml_examples():
    kinds = [kind for kind, _, _ in _examples()]
    assert kinds.count("yaml") >= 5
    assert "toml" in kinds


@pytest.mark.parametrize(("kind", "body", "line"), _examples(), ids=lambda value: str(value)[:20])
def test_policy_docs_example_loads(kind, body, line):
    policy = load_policy(body, source=f"docs/policy.md@{line}.{kind}")
    assert policy.version
    assert policy.rules


def test_policy_docs_default_summary_matches_the_default_policy():
    from shield.policy import default_policy

    policy = default_policy()
    for path in (
        "/etc/shadow",
        "/etc/gshadow",
        "/home/a/.ssh/id_rsa",
        "/root/.aws/credentials",
        "/proc/1/mem",
    ):
        assert policy.evaluate_path("read", path, agent=None).decision is Decision.DENY, path
    assert policy.evaluate_path("write", "/etc/hosts", agent=None).decision is Decision.HARD_ASK
    assert policy.evaluate_path("read", "/etc/passwd", agent=None).decision is Decision.SOFT_ASK
