"""Shell commands hidden inside other programs' arguments.

``python3 -c 'os.system("rm -rf /")'``, ``awk 'BEGIN{system("...")}'``, ``vim -c '!cmd'``,
``tar --checkpoint-action=exec=cmd``, ``git -c alias.x='!cmd'``, ``ssh host 'cmd'``,
``kubectl exec pod -- cmd`` and ``docker run image cmd`` all execute a command that a
plain word-level parser would treat as data. ``extract(name, args, stdin_text)`` returns
those commands as payloads for the parser to analyse recursively. It only pulls out text
that is obviously executed (a call to system/exec/popen ...), so code that merely prints
or compares a string stays data.
"""

from __future__ import annotations

import ast
import codecs
import re
from dataclasses import dataclass

from shield import decode
from shield.parsing.wrappers import _option_value, _skip_options


@dataclass(slots=True)
class Payload:
    """One executed command found inside another program's arguments."""

    kind: str  # "shell" (text parsed as shell) | "argv" (a ready argument vector)
    text: str = ""
    argv: list[str] | None = None
    origin: str = "interpreter"
    obfuscation: tuple[str, ...] = ()
    label: str = ""  # recorded in SimpleCommand.wrappers
    dynamic: bool = False  # executes something the parser cannot see (e.g. sed s///e)


_STRING = r"""(?:[rRbBuUfF]{0,2})("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
_STRING_RE = re.compile(_STRING, re.DOTALL)


def _literal(token: str) -> str:
    """The value of a quoted string literal in Python/JS/Perl/Ruby-ish syntax."""
    try:
        value = ast.literal_eval(token)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return str(value)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return token[1:-1]


def _call_args(code: str, call_pattern: str) -> list[str]:
    """Raw text of the argument lists of every call matching ``call_pattern`` (balanced parens)."""
    found = []
    for match in re.finditer(call_pattern + r"\s*\(", code):
        if len(found) >= 16:
            break
        depth = 1
        i = match.end()
        start = i
        limit = min(len(code), start + 2048)  # bounded scan per call keeps this linear
        quote = ""
        while i < limit and depth:
            ch = code[i]
            if quote:
                if ch == "\\":
                    i += 1
                elif ch == quote:
                    quote = ""
            elif ch in "\"'`":
                quote = ch
            elif ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            i += 1
        found.append(code[start : i - 1] if not depth else code[start:i])
    return found


def _encoded_payloads(args_text: str) -> list[tuple[str, str]]:
    """Decode base64/hex literals used as a command inside a call; returns (text, technique)."""
    out = []
    for match in re.finditer(
        r"(?:b64decode|decode_base64|decode64|base64_decode|atob)\s*\(\s*" + _STRING, args_text
    ):
        decoded = decode.b64decode(_literal(match.group(1)).encode())
        if decoded is not None:
            out.append((decoded.decode("utf-8", "replace"), "base64"))
    for match in re.finditer(
        r"Buffer\s*\.\s*from\s*\(\s*" + _STRING + r"""\s*,\s*["']base64["']""", args_text
    ):
        decoded = decode.b64decode(_literal(match.group(1)).encode())
        if decoded is not None:
            out.append((decoded.decode("utf-8", "replace"), "base64"))
    for match in re.finditer(r"(?:fromhex|unhexlify)\s*\(\s*" + _STRING, args_text):
        decoded = decode.hexdecode(_literal(match.group(1)).encode())
        if decoded is not None:
            out.append((decoded.decode("utf-8", "replace"), "hex"))
    packed = decode.perl_pack_hex(args_text)
    if packed is not None:
        out.append((packed, "hex"))
    for match in re.finditer(
        r"""codecs\s*\.\s*(?:decode|encode)\s*\(\s*""" + _STRING + r"""\s*,\s*["']rot_?13["']""", args_text
    ):
        out.append((codecs.decode(_literal(match.group(1)), "rot13"), "rot13"))
    charcodes = _char_codes(args_text)
    if charcodes is not None:
        out.append((charcodes, "decode"))
    return out


# chr()/fromCharCode() over a literal list of numbers: String.fromCharCode(114,109),
# map{chr}(114,109), ''.join(map(chr,[114,109])), [114,109].pack("c*"), bytes([114,109]).
_CHAR_CODE_CALL = re.compile(r"fromCharCode|\bchr\b|pack\s*\(\s*[\"']?[cCU]\*|\bbytes\s*\(\s*\[")
_CHAR_CODE_LIST = re.compile(r"[\[(]\s*(\d{1,3}(?:\s*,\s*\d{1,3}){2,})\s*,?\s*[\])]")


def _char_codes(args_text: str) -> str | None:
    """Text spelled as a literal list of character codes, when the code turns codes into text."""
    if not _CHAR_CODE_CALL.search(args_text):
        return None
    match = _CHAR_CODE_LIST.search(args_text)
    if match is None:
        return None
    codes = [int(n) for n in match.group(1).split(",")]
    if not all(9 <= c < 127 for c in codes):
        return None
    return "".join(map(chr, codes))


def _payloads_from_calls(code: str, call_pattern: str, label: str) -> list[Payload]:
    """Shell strings or argv lists passed to exec-like calls in interpreter code."""
    payloads: list[Payload] = []
    for args_text in _call_args(code, call_pattern):
        encoded = _encoded_payloads(args_text)
        if encoded:
            payloads.extend(
                Payload("shell", text, origin=tech, obfuscation=(tech,), label=label)
                for text, tech in encoded
            )
            continue
        stripped = args_text.lstrip()
        if stripped.startswith("["):
            # A list literal is an argv vector: ["rm", "-rf", "/"].
            inner = stripped[1 : stripped.find("]")] if "]" in stripped else stripped[1:]
            argv = [_literal(m.group(1)) for m in _STRING_RE.finditer(inner)]
            if argv:
                payloads.append(Payload("argv", argv=argv, label=label))
            continue
        strings = [m for m in _STRING_RE.finditer(args_text)]
        if not strings:
            payloads.append(Payload("shell", text="", label=label, dynamic=True))
            continue
        first = strings[0]
        between = args_text[first.end() :].lstrip()
        if between.startswith(",") and len(strings) > 1 and "=" not in args_text[: first.start()]:
            # system("rm", "-rf", "/") style: several string arguments are one argv.
            comma_separated = [m for m in strings if "=" not in args_text[: m.start()].rsplit(",", 1)[-1]]
            argv = [_literal(m.group(1)) for m in comma_separated]
            if len(argv) > 1 and not re.search(r"\bshell\s*=\s*True", args_text):
                payloads.append(Payload("argv", argv=argv, label=label))
                continue
        payloads.append(Payload("shell", text=_literal(first.group(1)), label=label))
    return payloads


def _bare_calls(code: str, label: str) -> list[Payload]:
    """Perl/Ruby calls written without parentheses: ``exec "/bin/sh"``, ``system 'id'``."""
    return [
        Payload("shell", text=_literal(m.group(1)), label=label)
        for m in re.finditer(r"(?<![\w$.])(?:system|exec)\s+" + _STRING, code)
    ]


def _backticks(code: str, label: str) -> list[Payload]:
    out = [Payload("shell", text=m.group(1), label=label) for m in re.finditer(r"`([^`]+)`", code)]
    for match in re.finditer(r"%x\(([^)]*)\)|qx\{([^}]*)\}|qx\(([^)]*)\)|qx/([^/]*)/", code):
        out.append(Payload("shell", text=next(g for g in match.groups() if g is not None), label=label))
    return out


_PY_CALLS = (
    r"(?:os\s*\.\s*(?:system|popen|exec[lv]p?e?|spawn[lv]p?e?)|subprocess\s*\.\s*"
    r"(?:run|call|Popen|check_output|check_call|getoutput|getstatusoutput)|commands\s*\.\s*getoutput"
    r"|pty\s*\.\s*spawn|(?<![\w.])system|__import__\s*\(\s*['\"]os['\"]\s*\)\s*\.\s*(?:system|popen))"
)
_SUBPROCESS_FUNCTIONS = "run|call|Popen|check_output|check_call|getoutput|getstatusoutput"
_PERL_CALLS = r"(?<![\w$])(?:system|exec)"
_RUBY_CALLS = r"(?:(?<![\w.])(?:system|exec|spawn)|IO\s*\.\s*popen|Open3\s*\.\s*\w+|Kernel\s*\.\s*\w+)"
_NODE_CALLS = r"(?:\bexec|\bexecSync|\bspawn|\bspawnSync|\bexecFile|\bexecFileSync)"
_PHP_CALLS = r"(?<![\w$])(?:system|exec|shell_exec|passthru|popen|proc_open)"
_AWK_CALLS = r"(?<![\w$])system"


def _code_arg(args: list[str], flags: tuple[str, ...]) -> str | None:
    for i, arg in enumerate(args):
        if arg in flags and i + 1 < len(args):
            return args[i + 1]
        for flag in flags:
            if len(flag) == 2 and arg.startswith(flag) and len(arg) > 2 and not arg.startswith("--"):
                return arg[2:]
            if flag.startswith("--") and arg.startswith(flag + "="):
                return arg.split("=", 1)[1]
    return None


def _python(args, stdin_text, depth=0):
    code = _code_arg(args, ("-c",))
    if code is None and stdin_text is not None:
        code = stdin_text
    if code is None:
        return []
    payloads = _payloads_from_calls(code, _PY_CALLS, "python")
    # `import subprocess as sp; sp.call(...)`, `from os import system as x`: calls through an alias.
    for module, functions in (("subprocess", _SUBPROCESS_FUNCTIONS), ("os", "system|popen")):
        for match in re.finditer(rf"import\s+{module}\s+as\s+(\w+)", code):
            payloads.extend(
                _payloads_from_calls(code, rf"(?<![\w.]){match.group(1)}\s*\.\s*(?:{functions})", "python")
            )
        for match in re.finditer(rf"from\s+{module}\s+import\s+([\w\s,]+)", code):
            names = [n.split(" as ")[-1].strip() for n in match.group(1).split(",")]
            names = [n for n in names if n]
            if names:
                payloads.extend(
                    _payloads_from_calls(
                        code, r"(?<![\w.])(?:{})".format("|".join(map(re.escape, names))), "python"
                    )
                )
    if depth < 3:
        # exec(base64.b64decode('...')) / exec('...'): Python code that runs more Python.
        for args_text in _call_args(code, r"(?<![\w.])(?:exec|eval)"):
            encoded = _encoded_payloads(args_text)
            inner_codes = [text for text, _ in encoded] or [
                _literal(m.group(1)) for m in _STRING_RE.finditer(args_text)
            ][:1]
            for inner in inner_codes:
                for payload in _python(["-c", inner], None, depth + 1):
                    if encoded and "base64" not in payload.obfuscation:
                        payload.obfuscation = payload.obfuscation + (encoded[0][1],)
                        payload.origin = encoded[0][1]
                    payloads.append(payload)
    return payloads


def _perl(args, stdin_text):
    code = _code_arg(args, ("-e", "-E"))
    if code is None and stdin_text is not None:
        code = stdin_text
    if code is None:
        return []
    return (
        _payloads_from_calls(code, _PERL_CALLS, "perl")
        + _bare_calls(code, "perl")
        + _backticks(code, "perl")
        + [
            Payload("shell", text=m.group(1), label="perl")
            for m in re.finditer(r"""open\s*\(?\s*\w+\s*,\s*["']\s*\|?\s*([^"'|]+?)\s*\|?\s*["']""", code)
            if "|" in m.group(0)
        ]
    )


def _ruby(args, stdin_text):
    code = _code_arg(args, ("-e",))
    if code is None:
        code = stdin_text
    if code is None:
        return []
    return (
        _payloads_from_calls(code, _RUBY_CALLS, "ruby") + _bare_calls(code, "ruby") + _backticks(code, "ruby")
    )


def _node(args, stdin_text):
    code = _code_arg(args, ("-e", "-p", "--eval", "--print"))
    if code is None:
        code = stdin_text
    if code is None:
        return []
    return _payloads_from_calls(code, _NODE_CALLS, "node")


def _php(args, stdin_text):
    code = _code_arg(args, ("-r",))
    if code is None:
        code = stdin_text
    if code is None:
        return []
    return _payloads_from_calls(code, _PHP_CALLS, "php") + _backticks(code, "php")


def _lua(args, stdin_text):
    code = _code_arg(args, ("-e",))
    if code is None:
        return []
    return _payloads_from_calls(code, r"(?:os\s*\.\s*execute|io\s*\.\s*popen)", "lua")


def _apt(args, stdin_text):
    # apt-get -o APT::Update::Pre-Invoke::=CMD / DPkg::Post-Invoke=CMD run CMD through sh.
    payloads = []
    for i, arg in enumerate(args):
        option = (
            args[i + 1] if arg == "-o" and i + 1 < len(args) else (arg[2:] if arg.startswith("-o") else None)
        )
        if option and "=" in option:
            key, value = option.split("=", 1)
            if re.search(r"(Pre|Post)-Invoke|Pre-Install-Pkgs", key, re.IGNORECASE) and value:
                payloads.append(Payload("shell", text=value, label="apt"))
    return payloads


def _awk(args, stdin_text):
    start = _skip_options(args, "Fvf", frozenset({"field-separator", "assign", "file"}))
    if start >= len(args) or _option_value(args[:start], "f", ("file",)) is not None:
        return []
    program = args[start]
    # cmd="rm -rf /"; system(cmd): substitute simple string variables first.
    variables = {
        m.group(1): m.group(2) for m in re.finditer(r'(?<![\w$])(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"', program)
    }
    if variables:
        program = re.sub(
            r"(system\s*\(\s*)(\w+)(\s*\))",
            lambda m: (
                m.group(1)
                + (f'"{variables[m.group(2)]}"' if m.group(2) in variables else m.group(2))
                + m.group(3)
            ),
            program,
        )
    payloads = _payloads_from_calls(program, _AWK_CALLS, "awk")
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"\s*\|\s*getline|\|\s*"((?:[^"\\]|\\.)*)"', program):
        payloads.append(Payload("shell", text=match.group(1) or match.group(2) or "", label="awk"))
    return payloads


def _sed(args, stdin_text):
    payloads = []
    scripts = [a for i, a in enumerate(args) if i > 0 and args[i - 1] in ("-e", "--expression")]
    if not scripts:
        start = _skip_options(args, "eflsE", frozenset({"expression", "file", "line-length"}))
        scripts = args[start : start + 1]
    for script in scripts:
        for match in re.finditer(r"(?:^|[;\n}])\s*(?:\d+|\$|/[^/]*/)?\s*e\s+([^;\n]+)", script):
            payloads.append(Payload("shell", text=match.group(1), label="sed"))
        if re.search(r"(?:^|[;\n{])\s*(?:\d+|\$|/[^/]*/)?\s*e\s*(?:$|[;\n}])", script):
            # GNU sed's bare `e` runs the pattern space (the input lines) as shell commands.
            if stdin_text:
                payloads.append(Payload("shell", text=stdin_text, label="sed"))
            else:
                payloads.append(Payload("shell", text="", label="sed", dynamic=True))
        if any(_sed_substitution_executes(part) for part in re.split(r"[;\n]", script)):
            payloads.append(Payload("shell", text="", label="sed", dynamic=True))
    return payloads


def _sed_substitution_executes(command: str) -> bool:
    """True for a GNU sed `s/pat/rep/e` command (runs the pattern space as a shell command)."""
    command = command.strip()
    if len(command) < 4 or command[0] != "s" or command[1].isalnum() or command[1] in " \\\n":
        return False
    parts = command[2:].split(command[1])
    return (
        len(parts) >= 3 and "e" in parts[-1] and re.fullmatch(r"[gpiImMe0-9w]*", parts[-1] or "") is not None
    )


def _vim(args, stdin_text):
    payloads = []
    commands = []
    for i, arg in enumerate(args):
        if arg in ("-c", "--cmd") and i + 1 < len(args):
            commands.append(args[i + 1])
        elif arg.startswith("+") and len(arg) > 1:
            commands.append(arg[1:])
    for command in commands:
        command = command.lstrip(": ")
        bang = re.match(r"^(?:\d*,?\d*|%)?\s*(?:r(?:ead)?\s*|w(?:rite)?\s*)?!(.*)$", command, re.DOTALL)
        if bang:
            payloads.append(Payload("shell", text=bang.group(1), label="vim"))
        elif command.startswith(("sh", "shell")):
            payloads.append(Payload("argv", argv=["sh"], label="vim"))
        else:
            payloads.extend(_payloads_from_calls(command, r"(?<![\w])system", "vim"))
            if command.startswith(("py", "python")):
                payloads.extend(_payloads_from_calls(command, _PY_CALLS, "vim"))
    return payloads


def _gdb(args, stdin_text):
    payloads = []
    for i, arg in enumerate(args):
        if arg in ("-ex", "--eval-command", "-eval-command") and i + 1 < len(args):
            command = args[i + 1]
            match = re.match(r"^\s*(?:!|shell\s+)(.*)$", command, re.DOTALL)
            if match:
                payloads.append(Payload("shell", text=match.group(1), label="gdb"))
            elif command.lstrip().startswith("python"):
                payloads.extend(_payloads_from_calls(command, _PY_CALLS, "gdb"))
    return payloads


def _tar(args, stdin_text):
    payloads = []
    for i, arg in enumerate(args):
        value = None
        for option in (
            "--to-command",
            "--use-compress-program",
            "--info-script",
            "--new-volume-script",
            "--rsh-command",
        ):
            if arg.startswith(option + "="):
                value = arg.split("=", 1)[1]
            elif arg == option and i + 1 < len(args):
                value = args[i + 1]
        if arg.startswith("--checkpoint-action="):
            action = arg.split("=", 1)[1]
            if action.startswith("exec="):
                value = action[5:]
        if arg in ("-I", "-F") and i + 1 < len(args):
            value = args[i + 1]
        if value:
            payloads.append(Payload("shell", text=value, label="tar"))
    return payloads


_GIT_EXEC_KEYS = re.compile(
    r"^(core\.(pager|sshcommand|editor|fsmonitor|gitproxy|askpass)|sequence\.editor|diff\.external|"
    r"pager\.[\w.-]+|gpg\.program|gpg\.\w+\.program|uploadpack\.packobjectshook|"
    r"filter\.[\w.-]+\.(clean|smudge|process)|diff\.[\w.-]+\.(command|textconv)|"
    r"merge\.[\w.-]+\.driver|credential\.helper|alias\.[\w.-]+)$",
    re.IGNORECASE,
)


def _git(args, stdin_text):
    if not any(a.startswith(("-c", "--upload-pack", "--receive-pack", "--exec")) for a in args):
        return []  # the common case: nothing that runs a command
    payloads = []
    for i, arg in enumerate(args):
        setting = None
        if arg == "-c" and i + 1 < len(args):
            setting = args[i + 1]
        elif arg.startswith("-c") and len(arg) > 2 and "=" in arg:
            setting = arg[2:]
        if setting and "=" in setting:
            key, value = setting.split("=", 1)
            if _GIT_EXEC_KEYS.match(key):
                if key.lower().startswith(("alias.", "credential.")):
                    if value.startswith("!"):
                        payloads.append(Payload("shell", text=value[1:], label="git"))
                else:
                    payloads.append(Payload("shell", text=value, label="git"))
        for option in ("--upload-pack", "--receive-pack", "--exec"):
            if arg.startswith(option + "="):
                payloads.append(Payload("shell", text=arg.split("=", 1)[1], label="git"))
            elif arg == option and i + 1 < len(args):
                payloads.append(Payload("shell", text=args[i + 1], label="git"))
    return payloads


_SSH_VALUE_OPTIONS = "bcDEeFIiJLlmOopQRSWwB"


def _ssh(args, stdin_text):
    payloads = []
    for i, arg in enumerate(args):
        option = None
        if arg == "-o" and i + 1 < len(args):
            option = args[i + 1]
        elif arg.startswith("-o") and len(arg) > 2:
            option = arg[2:]
        if option:
            match = re.match(r"^\s*(\w+)\s*(?:=|\s)\s*(.*)$", option, re.DOTALL)
            key, value = (match.group(1), match.group(2)) if match else ("", "")
            if key.lower() in ("proxycommand", "localcommand") and value:
                payloads.append(Payload("shell", text=value, label="ssh"))
    start = _skip_options(args, _SSH_VALUE_OPTIONS)
    # OpenSSH also accepts options after the destination (ssh host -N -L ...).
    rest = args[start + 1 :]
    remote = rest[_skip_options(rest, _SSH_VALUE_OPTIONS) :]
    if remote:
        payloads.append(Payload("shell", text=" ".join(remote), origin="ssh", label="ssh"))
    return payloads


_DOCKER_VALUE_SHORT = "eplvwuhmcaLN"
_DOCKER_NOVALUE_LONG = frozenset(
    {
        "rm",
        "privileged",
        "init",
        "read-only",
        "interactive",
        "tty",
        "detach",
        "publish-all",
        "no-healthcheck",
        "oom-kill-disable",
        "sig-proxy",
        "quiet",
        "help",
        "disable-content-trust",
        "no-deps",
        "service-ports",
        "use-aliases",
        "remove-orphans",
        "build",
        "pull",
    }
)


def _skip_docker_options(args: list[str]) -> int:
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return i + 1
        if arg.startswith("--"):
            name = arg[2:].split("=", 1)[0]
            i += 1 if ("=" in arg or name in _DOCKER_NOVALUE_LONG) else 2
            continue
        if arg.startswith("-") and len(arg) > 1:
            i += 2 if arg[-1] in _DOCKER_VALUE_SHORT else 1
            continue
        return i
    return i


def _docker(args, stdin_text):
    sub = 0
    if args and args[0] in ("container", "compose"):
        sub = 1
    if len(args) <= sub or args[sub] not in ("exec", "run"):
        return []
    rest = args[sub + 1 :]
    start = _skip_docker_options(rest)
    inner = rest[start + 1 :]
    if not inner:
        return []
    return [Payload("argv", argv=inner, origin="container", label="docker")]


def _kubectl(args, stdin_text):
    if "exec" not in args[:3] and "run" not in args[:3] and "debug" not in args[:3]:
        return []
    if "--" not in args:
        return []
    inner = args[args.index("--") + 1 :]
    if not inner:
        return []
    return [Payload("argv", argv=inner, origin="container", label="kubectl")]


def _rsync(args, stdin_text):
    value = _option_value(args, "e", ("rsh",))
    payloads = [Payload("shell", text=value, label="rsync")] if value else []
    path = _option_value(args, "", ("rsync-path",))
    if path:
        payloads.append(Payload("shell", text=path, label="rsync"))
    return payloads


def _zip(args, stdin_text):
    value = _option_value(args, "", ("unzip-command",))
    if value is None and "-TT" in args:
        index = args.index("-TT")
        value = args[index + 1] if index + 1 < len(args) else None
    return [Payload("shell", text=value, label="zip")] if value else []


def _tcl(args, stdin_text):
    """tclsh/wish/expect: `exec CMD ...`, expect's `spawn CMD ...` and `system CMD ...` run commands."""
    code = _code_arg(args, ("-c",))
    if code is None:
        code = stdin_text
    if code is None:
        return []
    payloads = []
    for m in re.finditer(r'(?:^|[;\[{\n])\s*(exec|spawn|system)\s+((?:[^;\]}\n"]|"[^"]*")+)', code):
        text = m.group(2).strip()
        if len(text) > 1 and text[0] == text[-1] == '"':
            text = text[1:-1]
        payloads.append(Payload("shell", text=text, label="tcl"))
    return payloads


def _make(args, stdin_text):
    """Recipes of `make --eval='t:; cmd'` or of a makefile read from stdin (make -f -)."""
    texts = []
    for i, arg in enumerate(args):
        if arg.startswith("--eval="):
            texts.append(arg.split("=", 1)[1])
        elif arg == "--eval" and i + 1 < len(args):
            texts.append(args[i + 1])
    if stdin_text and _option_value(args, "f", ("file", "makefile")) in ("-", "/dev/stdin"):
        texts.append(stdin_text)
    payloads = []
    for text in texts:
        for line in text.split("\n"):
            recipe = None
            if line.startswith("\t"):
                recipe = line[1:]
            else:
                rule = re.match(r"^[^:=#]+::?(?![=])[^;]*;(.*)$", line)
                if rule:
                    recipe = rule.group(1)
            if recipe and recipe.strip():
                payloads.append(Payload("shell", text=recipe.strip().lstrip("@-+"), label="make"))
    return payloads


def _alias(args, stdin_text):
    """`alias ls='ls; curl ... | sh'`: the body runs whenever the name is typed later."""
    payloads = []
    for arg in args:
        name, eq, body = arg.partition("=")
        if eq and name and body.strip():
            payloads.append(Payload("shell", text=body, origin="delayed", label="alias"))
    return payloads


_EXTRACTORS = {
    "awk": _awk,
    "gawk": _awk,
    "mawk": _awk,
    "nawk": _awk,
    "perl": _perl,
    "ruby": _ruby,
    "node": _node,
    "nodejs": _node,
    "php": _php,
    "sed": _sed,
    "gsed": _sed,
    "vim": _vim,
    "vi": _vim,
    "nvim": _vim,
    "ex": _vim,
    "view": _vim,
    "rvim": _vim,
    "gdb": _gdb,
    "tar": _tar,
    "gtar": _tar,
    "bsdtar": _tar,
    "git": _git,
    "ssh": _ssh,
    "docker": _docker,
    "podman": _docker,
    "nerdctl": _docker,
    "kubectl": _kubectl,
    "oc": _kubectl,
    "rsync": _rsync,
    "zip": _zip,
    "lua": _lua,
    "luajit": _lua,
    "apt": _apt,
    "apt-get": _apt,
    "tclsh": _tcl,
    "wish": _tcl,
    "expect": _tcl,
    "make": _make,
    "gmake": _make,
    "alias": _alias,
}

_PYTHON_NAME = re.compile(r"^(python|pypy)[0-9.]*$")


def has_extractor(name: str) -> bool:
    """True when ``name`` is a program whose arguments may hide executed commands."""
    return name in _EXTRACTORS or (name[:1] == "p" and bool(_PYTHON_NAME.match(name)))


def extract(name: str, args: list[str], stdin_text: str | None = None) -> list[Payload]:
    """Commands that ``name args...`` obviously executes (empty for ordinary programs).

    ``stdin_text`` is the script fed on stdin, when known, for interpreters that read it.
    """
    if _PYTHON_NAME.match(name):
        handler = _python
    else:
        handler = _EXTRACTORS.get(name)
    if handler is None:
        return []
    try:
        payloads = handler(args, stdin_text)
    except (ValueError, IndexError, RecursionError):
        return []
    for payload in payloads:
        if not payload.label:
            payload.label = name
    return payloads
