"""Property tests for shield.parse: wrappers and encodings never hide the command that runs,
and no input (text or bytes) makes the parser raise.
"""

from __future__ import annotations

import base64
import shlex

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shield.model import ParseResult
from shield.parse import parse

pytestmark = pytest.mark.unit


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
    lambda w: not w.startswith("-") and w not in (".", "..")
)
_ARGS = st.lists(_WORD, min_size=0, max_size=4)
_NAMES = st.sampled_from(["rm", "shred", "mkfs.ext4", "dd", "nc", "chmod", "curl", "userdel"])

# Each wrapper turns an argv string into a command line that runs it.
_WRAPPERS = {
    "sudo": lambda c: "sudo " + c,
    "sudo_u": lambda c: "sudo -u root -- " + c,
    "doas": lambda c: "doas " + c,
    "env": lambda c: "env FOO=1 " + c,
    "nice": lambda c: "nice -n 10 " + c,
    "timeout": lambda c: "timeout 30 " + c,
    "nohup": lambda c: "nohup " + c + " &",
    "setsid": lambda c: "setsid " + c,
    "stdbuf": lambda c: "stdbuf -oL " + c,
    "time": lambda c: "time " + c,
    "command": lambda c: "command " + c,
    "exec": lambda c: "exec " + c,
    "busybox": lambda c: "busybox " + c,
    "sh_c": lambda c: "sh -c " + shlex.quote(c),
    "bash_c": lambda c: "bash -c " + shlex.quote(c),
    "eval": lambda c: "eval " + shlex.quote(c),
    "su_c": lambda c: "su -c " + shlex.quote(c),
    "here_string": lambda c: "bash <<< " + shlex.quote(c),
    # A delimiter that cannot occur inside c (nested heredocs would otherwise end early).
    "heredoc": lambda c: f"sh <<'END{len(c)}'\n{c}\nEND{len(c)}",
    "base64": lambda c: f"echo {base64.b64encode(c.encode()).decode()} | base64 -d | sh",
    "hex": lambda c: f"echo {c.encode().hex()} | xxd -r -p | bash",
    "printf_octal": lambda c: "printf '{}' | sh".format("".join(f"\\{b:03o}" for b in c.encode())),
    "ansi_c": lambda c: "bash <<< $'{}'".format("".join(f"\\x{b:02x}" for b in c.encode())),
    "rev": lambda c: f"echo {shlex.quote(c[::-1])} | rev | sh",
    "subshell": lambda c: "( " + c + " )",  # "((" would be arithmetic
    "group": lambda c: "{ " + c + "; }",
    "chain": lambda c: "true && " + c,
    "function": lambda c: "f() { " + c + "; }; f",
    "alias": lambda c: f"alias x={shlex.quote(c)}; x",
    "variable": lambda c: f"c={shlex.quote(c)}; $c",
    "array": lambda c: f'a=({c}); "${{a[@]}}"',
    "absolute_path": lambda c: "/usr/bin/" + c,
    "xargs": lambda c: "echo | xargs " + c,
    "find_exec": lambda c: "find . -name x -exec " + c + " \\;",
    "ssh": lambda c: "ssh host " + shlex.quote(c),
    "kubectl": lambda c: "kubectl exec pod -- " + c,
    "docker": lambda c: "docker exec web " + c,
    "python": lambda c: "python3 -c {}".format(shlex.quote(f"import os; os.system({c!r})")),
}


# Wrappers whose result is still a plain argv (they can wrap each other freely); the others
# produce shell syntax (pipes, groups, &) that only shell-level wrappers can take as input.
_ARGV_TO_ARGV = {
    "sudo",
    "sudo_u",
    "doas",
    "env",
    "nice",
    "timeout",
    "setsid",
    "stdbuf",
    "time",
    "command",
    "exec",
    "busybox",
    "sh_c",
    "bash_c",
    "eval",
    "su_c",
    "absolute_path",
    "xargs",
    "find_exec",
    "ssh",
    "kubectl",
    "docker",
    "python",
}
_NEEDS_PLAIN_WORDS = {
    "variable",
    "array",
    "absolute_path",
    "xargs",
    "find_exec",
    "kubectl",
    "docker",
    "busybox",
}
_NEEDS_ARGV = _ARGV_TO_ARGV | _NEEDS_PLAIN_WORDS | {"nohup"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=_NAMES, args=_ARGS, wrappers=st.lists(st.sampled_from(sorted(_WRAPPERS)), min_size=1, max_size=3))
def test_parse_wrapped_command_is_always_found(name: str, args: list[str], wrappers: list[str]) -> None:
    command = " ".join([name, *args])
    argv_like = True
    plain_words = True
    applied = []
    for wrapper in wrappers:
        if (wrapper in _NEEDS_ARGV and not argv_like) or (wrapper in _NEEDS_PLAIN_WORDS and not plain_words):
            continue
        command = _WRAPPERS[wrapper](command)
        applied.append(wrapper)
        argv_like = argv_like and wrapper in _ARGV_TO_ARGV
        plain_words = plain_words and wrapper in {
            "sudo",
            "sudo_u",
            "doas",
            "env",
            "nice",
            "timeout",
            "setsid",
            "stdbuf",
            "time",
            "command",
            "exec",
            "busybox",
        }
    wrappers = applied
    result = parse(command)
    expected_args = [a for a in args]
    found = [
        c
        for c in result.commands
        if c.name == name
        and c.args[-len(expected_args) or None :] == expected_args[-len(expected_args) or None :]
    ]
    if "xargs" in wrappers or "find_exec" in wrappers:
        # xargs appends its stdin, find -exec keeps {} and its terminator: the name must be there.
        found = [c for c in result.commands if c.name == name]
    assert found, (command, [c.argv for c in result.commands])


# Arbitrary text found tree-sitter-bash#337 (`{` + a 4-byte UTF-8 character segfaults the
# process); shield.parse now keeps such characters away from tree-sitter.
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_parse_never_raises_on_text(text: str) -> None:
    result = parse(text)
    assert isinstance(result, ParseResult)
    assert isinstance(result.normalized, str)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_on_bytes(data: bytes) -> None:
    result = parse(data)
    assert isinstance(result, ParseResult)


_SHELLISH = st.text(alphabet="ab rm-/$(){}[]'\"`\\|&;<>*?~!#=\n", max_size=120)


@settings(max_examples=300, deadline=None)
@given(_SHELLISH)
def test_parse_shell_punctuation_never_raises(text: str) -> None:
    result = parse(text)
    assert not any("internal parser error" in error for error in result.errors), result.errors
