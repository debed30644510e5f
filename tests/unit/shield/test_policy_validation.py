"""Shield level 4: a broken policy is refused with an error naming source, line, rule and reason."""

from __future__ import annotations

import pytest

from shield.policy import MAX_POLICY_BYTES, PolicyError, load_policy, load_policy_file

pytestmark = pytest.mark.unit

# (policy text, expected line, expected rule or None, words the reason must contain)
BROKEN = [
    pytest.param("deny:\n  - Bash(rm:*)\n  - [unclosed\n", 4, None, "YAML syntax error", id="yaml-syntax"),
    pytest.param('deny: ["Bash(rm:*)"\n', 2, None, "YAML syntax error", id="yaml-unclosed-flow"),
    pytest.param("deny:\n\t- Bash(rm:*)\n", 2, None, "YAML syntax error", id="yaml-tab"),
    pytest.param("- Bash(rm:*)\n", 1, None, "policy must be a mapping", id="not-a-mapping"),
    pytest.param("version: 1\nalow:\n  - Bash(ls)\n", 2, None, "unknown key 'alow'", id="unknown-top-key"),
    pytest.param("version: 2\n", 1, None, "unsupported policy format version", id="bad-version"),
    pytest.param(
        "rules:\n  - match: Bash(rm:*)\n    action: alow\n",
        3,
        "Bash(rm:*)",
        "unknown action 'alow'",
        id="unknown-action",
    ),
    pytest.param(
        "rules:\n  - match: Bash(rm:*)\n", 2, "Bash(rm:*)", "needs an 'action'", id="missing-action"
    ),
    pytest.param(
        "ask:\n  - pattern: Bash(git push:*)\n    ask: medium\n",
        3,
        "Bash(git push:*)",
        "unknown ask level",
        id="bad-ask-level",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    ask: soft\n",
        3,
        "Bash(rm:*)",
        "only valid on an ask rule",
        id="ask-level-on-deny",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    agnets: [x]\n",
        3,
        "Bash(rm:*)",
        "unknown key 'agnets'",
        id="unknown-rule-key",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    regex: rm\n",
        2,
        None,
        "exactly one of",
        id="two-patterns",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    action: allow\n",
        3,
        "Bash(rm:*)",
        "contradicts",
        id="contradiction",
    ),
    pytest.param(
        "deny:\n  - Bash(git push\n", 2, "Bash(git push", "missing closing ')'", id="unclosed-paren"
    ),
    pytest.param("deny:\n  - git push:*\n", 2, "git push:*", "malformed pattern", id="no-pattern-type"),
    pytest.param("deny:\n  - Shell(ls)\n", 2, "Shell(ls)", "unknown pattern type 'Shell'", id="unknown-type"),
    pytest.param("deny:\n  - Bash()\n", 2, "Bash()", "empty command pattern", id="empty-bash"),
    pytest.param(
        "deny:\n  - Bash(git:*push)\n", 2, "Bash(git:*push)", "only appear at the end", id="inner-colon-star"
    ),
    pytest.param(
        "deny:\n  - Bash(echo 'a)\n", 2, "Bash(echo 'a)", "malformed command pattern", id="shlex-quote"
    ),
    pytest.param("deny:\n  - Bash(ls [ab)\n", 2, "Bash(ls [ab)", "unclosed '['", id="glob-bracket"),
    pytest.param("deny:\n  - Regex(a(b)\n", 2, "Regex(a(b)", "bad regex", id="bad-regex"),
    pytest.param("deny:\n  - regex: '*oops'\n", 2, "Regex(*oops)", "bad regex", id="bad-regex-key"),
    pytest.param("deny:\n  - Regex()\n", 2, "Regex()", "empty regex", id="empty-regex"),
    pytest.param(
        "deny:\n  - Read(etc/passwd)\n", 2, "Read(etc/passwd)", "must be absolute", id="relative-path"
    ),
    pytest.param("deny:\n  - Read(~bob/x)\n", 2, "Read(~bob/x)", "only '~/'", id="tilde-user"),
    pytest.param(
        "deny:\n  - Read(/etc/[ab)\n", 2, "Read(/etc/[ab)", "malformed path pattern", id="path-bracket"
    ),
    pytest.param("deny:\n  - Read()\n", 2, "Read()", "empty path pattern", id="empty-path"),
    pytest.param("deny:\n  - 42\n", 2, None, "pattern string or a mapping", id="number-rule"),
    pytest.param("deny: Bash(rm:*)\n", 1, None, "must be a list of rules", id="rules-not-a-list"),
    pytest.param(
        "thresholds:\n  soft_ask: 30\n  hard_ask: 20\n", 1, None, "soft_ask <= hard_ask", id="threshold-order"
    ),
    pytest.param("thresholds:\n  deny: 101\n", 2, None, "between 0 and 100", id="threshold-range"),
    pytest.param("thresholds:\n  deny: -1\n", 2, None, "between 0 and 100", id="threshold-negative"),
    pytest.param("thresholds:\n  deny: high\n", 2, None, "must be an integer", id="threshold-type"),
    pytest.param("thresholds:\n  deny: true\n", 2, None, "must be an integer", id="threshold-bool"),
    pytest.param("thresholds:\n  deny: 90.5\n", 2, None, "must be an integer", id="threshold-float"),
    pytest.param("thresholds:\n  block: 90\n", 2, None, "unknown key 'block'", id="threshold-key"),
    pytest.param("deny: []\ndeny: []\n", 2, None, "duplicate key 'deny'", id="duplicate-key"),
    pytest.param("extends: parent\n", 1, None, "extends must be", id="bad-extends"),
    pytest.param("name: 'a b'\n", 1, None, "may only use", id="bad-name"),
    pytest.param(
        "scopes:\n  - deny: [Bash(rm:*)]\n", 2, None, "needs 'agents' and/or 'paths'", id="unscoped-block"
    ),
    pytest.param("scopes:\n  - agents: [x]\n", 2, None, "at least one rule list", id="empty-block"),
    pytest.param(
        "scopes:\n  - agents: [x]\n    deny:\n      - pattern: Bash(rm:*)\n        agents: [y]\n",
        4,
        "Bash(rm:*)",
        "cannot set its own",
        id="nested-agents",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    paths: [srv/prod]\n",
        3,
        "Bash(rm:*)",
        "must be absolute",
        id="relative-scope",
    ),
    pytest.param(
        "deny:\n  - pattern: Bash(rm:*)\n    agents: []\n",
        3,
        "Bash(rm:*)",
        "must not be empty",
        id="empty-agents",
    ),
]


@pytest.mark.parametrize(("text", "line", "rule", "reason"), BROKEN)
def test_policy_validation_error_names_line_rule_and_reason(text, line, rule, reason):
    with pytest.raises(PolicyError) as caught:
        load_policy(text, source="policy.yaml")
    error = caught.value
    assert error.source == "policy.yaml"
    assert error.line == line, str(error)
    assert error.rule == rule, str(error)
    assert reason in error.reason, str(error)
    assert str(error).startswith(f"policy.yaml:{line}: ")
    if rule is not None:
        assert f"rule {rule!r}:" in str(error)


def test_policy_error_message_format_matches_the_documented_shape():
    with pytest.raises(PolicyError) as caught:
        load_policy(
            "# org policy\n\n\n\n\n\n\n\n\n\nrules:\n  - match: Bash(rm:*)\n    action: alow\n",
            source="policy.yaml",
        )
    assert str(caught.value).startswith("policy.yaml:13: rule 'Bash(rm:*)': unknown action 'alow'")


def test_policy_error_is_a_value_error():
    with pytest.raises(ValueError):
        load_policy("deny: [Bash(]")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ('deny = ["Bash(rm:*)"\n', 1, "TOML syntax error"),
        ('[thresholds]\nsoft_ask = 30\nhard_ask = "x"\n', 3, "must be an integer"),
        ('\n\n[[rules]]\nmatch = "Bash(rm:*)"\naction = "alow"\n', 5, "unknown action"),
        ('deny = ["Regex(a(b)"]\n', 1, "bad regex"),
    ],
)
def test_policy_toml_errors_name_the_line(text, line, reason):
    with pytest.raises(PolicyError) as caught:
        load_policy(text, source="org.toml")
    assert caught.value.line == line, str(caught.value)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"org.toml:{line}:")


def test_policy_refuses_nul_bytes_invalid_utf8_and_oversized_text():
    with pytest.raises(PolicyError, match="NUL") as caught:
        load_policy("deny:\n  - Bash(rm\x00:*)\n")
    assert caught.value.line == 2
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        load_policy(b"deny:\n  - Bash(\xff\xfe)\n")
    with pytest.raises(PolicyError, match="larger than"):
        load_policy("#" * (MAX_POLICY_BYTES + 1))


@pytest.mark.timeout(20)
def test_policy_refuses_yaml_alias_bombs():
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        bomb.append(
            f"{chr(97 + level)}: &{chr(97 + level)} [" + ", ".join([f"*{chr(96 + level)}"] * 10) + "]"
        )
    with pytest.raises(PolicyError, match="too large|unknown key"):
        load_policy("\n".join(bomb))
    nested = "deny:\n  - &r Bash(rm:*)\n" + "".join("  - *r\n" for _ in range(3))
    assert len(load_policy(nested, source="p.yaml").rules) > 3  # plain aliases are fine


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("[" * 100_000, "deep.yaml"),
        ("deny: " + "[" * 40 + "]" * 40, "deep.yaml"),
        ("a = " + "[" * 5000, "deep.toml"),
    ],
)
def test_policy_refuses_absurd_nesting_without_recursion_errors(text, source):
    with pytest.raises(PolicyError, match="nested too deeply"):
        load_policy(text, source=source)


def test_policy_empty_document_is_the_default_policy_plus_nothing():
    from shield.policy import default_policy

    assert load_policy("").rules == default_policy().rules
    assert load_policy("# only a comment\n").thresholds == default_policy().thresholds


def test_load_policy_file_names_the_file_and_line(tmp_path):
    path = tmp_path / "org.yaml"
    path.write_text("deny:\n  - Bash(rm:*)\n  - Regex([)\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_file(str(path))
    assert str(caught.value).startswith(f"{path}:3: rule 'Regex([)': bad regex")
    with pytest.raises(PolicyError, match="cannot read policy"):
        load_policy_file(str(tmp_path / "missing.yaml"))
