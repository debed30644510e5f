"""The parser's fast path gives exactly the tree walk's result, on the whole dev corpus.

Plain input (words, simple quotes, ~, ; && || |) skips tree-sitter. That is only an
optimisation if nothing else changes: every command the fast path accepts is parsed both
ways here and the results compared field by field.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from shield.parse import parse
from shield.parsing import analyzer

pytestmark = pytest.mark.unit

DEV_CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "commands-dev.jsonl"
TILDE_CASES = [
    "ls ~",
    "cat ~/.ssh/id_rsa",
    "rm -rf ~root/.ssh",
    "cp notes.txt ~bob/",
    "echo '~/x' \"~/y\"",
    "ls ~+ ~- ~/a~b",
    "git log HEAD~3",
    "scp host:~/x .",
    "~/bin/tool --flag ~",
    "cd ~ && ls ~/x | grep ~",
    "tar czf ~/backup.tgz ~/project; rm -rf ~/project",
    "find ~ -name id_rsa",
]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _fast_path_takes(command: str) -> bool:
    text = analyzer._without_astral(command.strip())
    return bool(analyzer._FAST_PATH.match(text)) and analyzer._fast_statements(text) is not None


def _commands() -> list[str]:
    found = list(TILDE_CASES)
    if DEV_CORPUS.is_file():
        with DEV_CORPUS.open(encoding="utf-8") as handle:
            found += [json.loads(line)["cmd"] for line in handle if line.strip()]
    return [command for command in found if _fast_path_takes(command)]


def test_parse_fast_path_matches_tree_walk_on_every_command_it_takes(monkeypatch) -> None:
    commands = _commands()
    contexts = [("/root", None), ("/home/dev", "/home/dev/project")]
    fast = [_plain(parse(command, home=home, cwd=cwd)) for command in commands for home, cwd in contexts]
    monkeypatch.setattr(analyzer, "_FAST_PATH", analyzer.re.compile(r"(?!)"))
    slow = [_plain(parse(command, home=home, cwd=cwd)) for command in commands for home, cwd in contexts]
    for index, (quick, walked) in enumerate(zip(fast, slow, strict=True)):
        assert quick == walked, commands[index // len(contexts)]


def test_parse_fast_path_takes_tilde_words_but_not_quoted_ones() -> None:
    assert _fast_path_takes("cat ~/.ssh/id_rsa")
    assert not _fast_path_takes("echo '~/x'")
