"""Bad input never escapes as an exception, and unparsable input is never `auto`.

Durations are measured only to be reported (``record_property``, shown with
``--junitxml`` or ``-rP``); hangs are caught by pytest-timeout, never by asserting time.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shield.model import Context, Decision, Verdict
from shield.parse import parse
from shield.policy import PolicyError, load_policy

pytestmark = pytest.mark.unit

MIB = 1024 * 1024

# (id, command, flag the parser must raise) — input the engine cannot fully see.
UNPARSABLE = [
    ("one-mib", "echo " + "A" * MIB, "too_large"),
    ("one-mib-of-commands", "ls; " * (MIB // 4), "too_large"),
    ("nul-bytes", "ls\x00 -la /tmp", "binary"),
    ("nul-in-name", "r\x00m -rf /tmp/x", "binary"),
    ("invalid-utf8-bytes", b"ls \xff\xfe /tmp", "binary"),
    ("invalid-utf8-surrogates", "ls \udcff /tmp", "binary"),
    ("unbalanced-double-quote", 'echo "hello', "parse_error"),
    ("unbalanced-single-quote", "ls 'abc", "parse_error"),
    ("unbalanced-substitution", "echo $(ls", "parse_error"),
    ("nested-substitution-1000", "echo " + "$(" * 1000 + "ls" + ")" * 1000, "too_deep"),
    ("unclosed-substitution-1000", "$(" * 1000, None),
    ("nested-backticks", "echo " + "`echo " * 200 + "ls" + "`" * 200, None),
]
HARMLESS_EDGE = [
    ("empty", ""),
    ("whitespace", " \t\n  \r\n "),
    ("only-comment", "# nothing to run"),
    ("control-chars", "echo \x1b[31mred\x1b[0m \x07"),
    # `((` opens arithmetic in bash, so this runs nothing; deep, but not unparsable.
    ("nested-arithmetic-1000", "(" * 1000 + "ls" + ")" * 1000),
    ("nested-subshell-1000", "( " * 1000 + "ls" + " )" * 1000),
]


def _ids(cases):
    return [case[0] for case in cases]


# --- parser + policy (no engine needed) -------------------------------------------------------

ALLOW_EVERYTHING = load_policy("extends: none\nallow: ['Bash(*)', 'Regex(.*)']\n")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("case", "command", "flag"), UNPARSABLE, ids=_ids(UNPARSABLE))
def test_bad_input_parse_flags_it_and_policy_allow_is_not_honoured(case, command, flag, record_property):
    started = time.perf_counter()
    parsed = parse(command)
    outcome = ALLOW_EVERYTHING.evaluate(parsed, agent=None, cwd=None)
    record_property("duration_ms", round((time.perf_counter() - started) * 1000, 3))
    if flag is not None:
        assert flag in parsed.flags, parsed.flags
    assert parsed.flags & {"too_large", "binary", "parse_error", "too_deep", "truncated", "unresolved"}
    assert outcome.decision is not Decision.AUTO


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("case", "command"), HARMLESS_EDGE, ids=_ids(HARMLESS_EDGE))
def test_bad_input_edge_cases_evaluate_without_raising(case, command):
    parsed = parse(command)
    ALLOW_EVERYTHING.evaluate(parsed, agent="a", cwd="/tmp")


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_bad_input_any_text_parses_and_evaluates_without_raising(command):
    parsed = parse(command)
    outcome = ALLOW_EVERYTHING.evaluate(parsed, agent=None, cwd=None)
    if parsed.flags & {"binary", "parse_error", "too_deep", "too_large"}:
        assert outcome.decision is not Decision.AUTO


@pytest.mark.timeout(60)
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(max_size=400)
    | st.builds(
        lambda key, value: f"{key}:\n  - {value}\n",
        st.sampled_from(["allow", "deny", "ask", "rules", "thresholds", "scopes", "bogus"]),
        st.text(max_size=60),
    ),
    st.sampled_from(["policy.yaml", "policy.toml"]),
)
def test_bad_input_any_policy_text_loads_or_raises_policy_error(text, source):
    try:
        policy = load_policy(text, source=source)
    except PolicyError as error:
        assert error.source == source
        assert error.reason
    else:
        assert policy.version


def test_bad_input_broken_policy_is_refused_naming_the_line():
    with pytest.raises(PolicyError) as caught:
        load_policy("deny:\n  - Bash(rm -rf:*)\n  - Bash(dd:*\nallow: [Bash(ls)]\n", source="org.yaml")
    assert caught.value.line == 3
    assert str(caught.value).startswith("org.yaml:3: rule 'Bash(dd:*':")


# --- the whole engine -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    from shield.engine import Shield

    return Shield(semantic=False)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("case", "command", "flag"), UNPARSABLE, ids=_ids(UNPARSABLE))
def test_bad_input_engine_never_raises_and_never_autos_unparsable(
    engine, case, command, flag, record_property
):
    started = time.perf_counter()
    verdict = engine.analyze(command, Context())
    record_property("duration_ms", round((time.perf_counter() - started) * 1000, 3))
    assert isinstance(verdict, Verdict)
    assert verdict.decision is not Decision.AUTO, verdict.reasons
    assert verdict.reasons
    verdict.to_dict()  # serialisable


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("case", "command"), HARMLESS_EDGE, ids=_ids(HARMLESS_EDGE))
def test_bad_input_engine_handles_empty_and_odd_input(engine, case, command, record_property):
    started = time.perf_counter()
    verdict = engine.analyze(command, Context())
    record_property("duration_ms", round((time.perf_counter() - started) * 1000, 3))
    assert isinstance(verdict, Verdict)
    assert verdict.reasons
    verdict.to_dict()


@pytest.mark.timeout(10)
def test_bad_input_engine_with_semantic_level_never_autos_unparsable(record_property):
    from shield.engine import Shield

    engine = Shield()
    for case, command, _ in UNPARSABLE:
        started = time.perf_counter()
        verdict = engine.analyze(command, Context())
        record_property(f"{case}_ms", round((time.perf_counter() - started) * 1000, 3))
        assert verdict.decision is not Decision.AUTO, case


@pytest.mark.timeout(120)
@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(command=st.text(max_size=300))
def test_bad_input_engine_never_raises_on_any_text(engine, command):
    verdict = engine.analyze(command, Context(cwd="/tmp", agent="fuzz"))
    assert isinstance(verdict.decision, Decision)
    assert 0 <= verdict.score <= 100
