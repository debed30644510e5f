"""Shield level 1: rule packs kept as YAML data and matched against the parsed command.

``default_ruleset()`` compiles the shipped packs once per process; ``match_parse`` runs
them over a ``ParseResult``. Rules look at the parsed structure (command name,
subcommand, flags, target classes, hosts, redirects, stdin, SQL kinds), never at the
raw text of the whole command line.
"""

from __future__ import annotations

import functools

from shield.rules.facts import PathEnv, classify_host, classify_path, split_args, sql_kinds
from shield.rules.loader import Rule, RulePackError, RuleSet, build_ruleset, load_default_ruleset, load_text
from shield.rules.matcher import MatchResult, match_parse

__all__ = [
    "MatchResult",
    "PathEnv",
    "Rule",
    "RulePackError",
    "RuleSet",
    "build_ruleset",
    "classify_host",
    "classify_path",
    "default_ruleset",
    "load_text",
    "match_parse",
    "split_args",
    "sql_kinds",
]


@functools.lru_cache(maxsize=1)
def default_ruleset() -> RuleSet:
    """The shipped packs, compiled once (raises ``RulePackError`` if a shipped pack is broken)."""
    return load_default_ruleset()
