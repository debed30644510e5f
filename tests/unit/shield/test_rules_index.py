"""The rule index finds exactly the rules a naive evaluation of every rule finds.

``match_parse`` does not test every rule on every command: it looks up the rules indexed
under the command's name and partially evaluates them once per command shape (name,
first positional word, redirects, wrappers, pipeline ...). These tests compare that with
the reference ``match_command`` applied to every rule of the shipped packs, over the
development corpus and over generated commands, so an index that drops or invents a
match is caught whatever verdict it would have changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shield.model import Redirect, SimpleCommand
from shield.parse import parse
from shield.rules import PathEnv, default_ruleset
from shield.rules.matcher import Facts, match_command, rules_matching

pytestmark = pytest.mark.unit

DEV_CORPUS = Path(__file__).resolve().parents[4] / "shared" / "corpus" / "commands-dev.jsonl"
RULESET = default_ruleset()
ENVS = [
    PathEnv(),
    PathEnv(home="/home/dev", cwd="/home/dev/project", project_root="/home/dev/project"),
]


def _naive_ids(command: SimpleCommand, env: PathEnv) -> set[str]:
    facts = Facts(command, RULESET, env)
    return {rule.id for rule in RULESET.rules if rule.match is not None and match_command(rule.match, facts)}


def _assert_index_agrees(command: SimpleCommand, env: PathEnv) -> None:
    found = rules_matching(RULESET, command, env)
    assert {rule.id for rule in found} == _naive_ids(command, env), (command.name, command.args)
    # Hits keep the order of the loader's candidates (it decides the order of reasons).
    order = [
        rule.id for rule in RULESET.candidates(command.name, bool(command.redirects), bool(command.path))
    ]
    positions = [order.index(rule.id) for rule in found]
    assert positions == sorted(positions)


def _corpus_commands() -> list[str]:
    with DEV_CORPUS.open(encoding="utf-8") as handle:
        return [json.loads(line)["cmd"] for line in handle if line.strip()]


@pytest.mark.skipif(not DEV_CORPUS.is_file(), reason=f"dev corpus not found at {DEV_CORPUS}")
def test_rules_index_matches_naive_evaluation_on_the_corpus() -> None:
    for text in _corpus_commands():
        for env in ENVS:
            for command in parse(text, home=env.home, cwd=env.cwd).commands:
                _assert_index_agrees(command, env)


# -- generated commands: names, words and shapes the packs care about, mixed at random -------


def _rule_words(match: Any) -> set[str]:
    """Flags, subcommand words and positional words the packs mention (any nesting)."""
    found: set[str] = set()
    if isinstance(match, dict):
        for key, value in match.items():
            if key in ("flags_any", "flags_none", "positional_any"):
                found |= set(value)
            elif key == "flags_all":
                found |= {flag for group in value for flag in group}
            elif key == "flag_value":
                found |= {flag for flags, _ in value for flag in flags}
            elif key == "subcommand":
                found |= {w for words in value for options, _ in words for w in options if w != "*"}
            elif key in ("any", "all"):
                for sub in value:
                    found |= _rule_words(sub)
            elif key == "not":
                found |= _rule_words(value)
    return found


_NAMES = sorted(RULESET.by_name)
_WORDS = sorted(set().union(*(_rule_words(rule.match) for rule in RULESET.rules)))
_TARGETS = [
    "/", "/*", "/etc", "/etc/passwd", "/etc/sudoers.d/x", "~", "~/.ssh/id_rsa", "~/.bashrc", "./dist",
    "node_modules", "src/app.py", "../../..", "/dev/sda", "/dev/null", "/dev/tcp/203.0.113.9/4444",
    "/tmp/.x", "/var/lib/mysql", "http://203.0.113.9/x.sh", "https://github.com/a/b", "user@198.51.100.7",
    "LD_PRELOAD=/tmp/x.so", "stratum+tcp://pool.example:3333", "of=/dev/nvme0n1", "@/etc/shadow",
    "DROP DATABASE prod", "db:drop", "deploy", "release:prod", "x",
]  # fmt: skip
_word = st.one_of(st.sampled_from(_WORDS), st.sampled_from(_TARGETS), st.text("ab-/.:=", max_size=6))
# Names with many rules come up often; any indexed name and a few unindexed ones now and then.
_BUSY_NAMES = ["sh", "bash", "rm", "git", "curl", "kubectl", "docker", "aws", "find", "python3", "psql", "dd", "tee",
               "npm", "sudo", "env", "chmod", "ssh", "nc", "crontab", "systemctl", "terraform", "redis-cli"]  # fmt: skip
_simple = st.builds(
    SimpleCommand,
    name=st.one_of(
        st.sampled_from(_BUSY_NAMES),
        st.sampled_from(_NAMES),
        st.sampled_from(["", "xmrig", "manage.py", "mkfs.ext4", "f", "linpeas.sh"]),
    ),
    args=st.lists(_word, max_size=6),
    path=st.sampled_from([None, "/usr/bin/x", "/tmp/run.sh", "./deploy.sh"]),
    redirects=st.lists(
        st.builds(
            Redirect,
            op=st.sampled_from([">", ">>", "<", "<<<", "2>", "&>"]),
            target=st.sampled_from(_TARGETS),
        ),
        max_size=2,
    ),
    wrappers=st.lists(
        st.sampled_from(["sudo", "env FOO=1", "nohup", "timeout 5", "doas -u root", "find", "xargs", "awk"]),
        max_size=2,
    ),
    privileged=st.booleans(),
    origin=st.sampled_from(
        ["top", "pipeline", "substitution", "function", "sh -c", "base64", "heredoc", "find -exec", "xargs"]
    ),
    stdin_text=st.sampled_from([None, "DROP TABLE users", "rm -rf /"]),
    stdin_is_network=st.booleans(),
    dynamic=st.booleans(),
    obfuscation=st.lists(
        st.sampled_from(["base64", "quoting", "var_indirection", "recursive_function", "absolute_path"]),
        max_size=2,
        unique=True,
    ),
    background=st.booleans(),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(command=_simple, upstream=st.none() | _simple, env=st.sampled_from(ENVS))
def test_rules_index_matches_naive_evaluation_on_generated_commands(
    command: SimpleCommand, upstream: SimpleCommand | None, env: PathEnv
) -> None:
    command.stdin_from = upstream
    _assert_index_agrees(command, env)
