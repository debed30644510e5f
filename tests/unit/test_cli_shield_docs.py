"""The terminal sessions shown in docs/shield-cli.md and docs/policy.md are true.

Each ```text block with ``$ `` lines is replayed in a scratch directory: every command
runs in bash with the project's virtualenv first on PATH, its output must match the
lines shown (``...`` stands for any text on a line, or for any number of whole lines),
and ``$ echo $?`` must print the exit code of the command before it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DOCS = Path(__file__).resolve().parents[2] / "docs"
TEXT_BLOCK = re.compile(r"^```text\n(.*?)^```", re.MULTILINE | re.DOTALL)
BROKEN_POLICY = "# org policy\n" + "#\n" * 8 + "rules:\n  - match: Bash(rm:*)\n    action: alow\n"


def _sessions() -> list[tuple[str, int, str]]:
    found = []
    for name in ("shield-cli.md", "policy.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        for match in TEXT_BLOCK.finditer(text):
            if any(line.startswith("$ ") for line in match.group(1).splitlines()):
                found.append((name, text[: match.start()].count("\n") + 1, match.group(1)))
    return found


def _steps(block: str) -> list[tuple[str, list[str]]]:
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
    return steps


def _pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split("...")) + r"\n")
    return re.compile("".join(parts) + r"\Z")


@pytest.fixture
def scratch(tmp_path) -> Path:
    policy_doc = (DOCS / "policy.md").read_text(encoding="utf-8")
    first_example = re.search(r"^```yaml\n(.*?)^```", policy_doc, re.MULTILINE | re.DOTALL)
    assert first_example
    (tmp_path / "acme.yaml").write_text(first_example.group(1))
    (tmp_path / "policy.yaml").write_text(BROKEN_POLICY)
    return tmp_path


def test_cli_shield_docs_have_sessions():
    assert len(_sessions()) >= 6


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("doc", "line", "block"), _sessions(), ids=lambda v: str(v)[:24])
def test_cli_shield_docs_session_is_true(doc, line, block, scratch):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    last_code: int | None = None
    for command, expected in _steps(block):
        if command == "echo $?":
            assert expected == [str(last_code)], f"{doc}:{line}: exit code"
            continue
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        last_code = result.returncode
        output = result.stdout + result.stderr
        assert _pattern(expected).match(output), f"{doc}:{line}: `{command}` printed:\n{output}"
