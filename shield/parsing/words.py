"""Word-level helpers of the parser: quoting, brace expansion, parameter operators, paths.

Pure string functions with no knowledge of the parse tree, shared by the analyzer and
its tests. Nothing here raises on odd input; results are bounded in size.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re

MAX_BRACE_RESULTS = 256

# Names tried, in this order, when a command name is a glob such as /???/r? or /bin/r[m].
KNOWN_BINARIES = (
    "rm",
    "sh",
    "nc",
    "dd",
    "bash",
    "curl",
    "wget",
    "mkfs",
    "mkfs.ext4",
    "mkfs.xfs",
    "shred",
    "python3",
    "python",
    "perl",
    "ruby",
    "node",
    "php",
    "chmod",
    "chown",
    "kill",
    "pkill",
    "killall",
    "cat",
    "cp",
    "mv",
    "tee",
    "find",
    "xargs",
    "sudo",
    "su",
    "env",
    "base64",
    "xxd",
    "socat",
    "ncat",
    "telnet",
    "ssh",
    "scp",
    "crontab",
    "iptables",
    "systemctl",
    "mount",
    "umount",
    "useradd",
    "usermod",
    "passwd",
    "zsh",
    "dash",
    "ksh",
    "awk",
    "sed",
    "tar",
    "git",
    "id",
    "ls",
    "ln",
    "wipefs",
    "fdisk",
    "parted",
    "truncate",
    "busybox",
    "openssl",
    "gzip",
    "nohup",
    "ps",
    "reboot",
    "shutdown",
    "halt",
    "poweroff",
    "chattr",
    "setfacl",
    "visudo",
    "docker",
    "kubectl",
    "head",
    "tail",
    "less",
    "more",
    "echo",
    "printf",
    "whoami",
    "uname",
)
_BIN_DIRS = ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin")

_SAFE_WORD = re.compile(r"^[\w@%+=:,./~*?\[\]{}^!-]+$")
_DOTDOT = re.compile(r"(?:^|/)\.\.(?:/|$)")
_OPTION_VALUE = re.compile(r"^(-{0,2}[A-Za-z][\w.-]*=)(.+)$", re.DOTALL)


def has_glob(text: str) -> bool:
    # Three substring scans cost less than one regex call on the short words seen here.
    return "*" in text or "?" in text or "[" in text


def resolve_glob_name(word: str) -> list[str]:
    """Known binaries a globbed command name like ``/???/r?`` could run, most dangerous first."""
    directory, _, base = word.rpartition("/")
    if directory and has_glob(directory) and not any(fnmatch.fnmatchcase(d, directory) for d in _BIN_DIRS):
        # e.g. /???/??/r? cannot be a standard binary directory; still try the base name.
        pass
    return [name for name in KNOWN_BINARIES if fnmatch.fnmatchcase(name, base)]


def quote(word: str) -> str:
    """Shell-quote a word for the normalised one-line rendering (globs and ~ stay bare)."""
    if word.isalnum() or (word and _SAFE_WORD.match(word) and word[0] != "#"):
        return word  # isalnum: letters and digits only, a subset of the safe words, checked without a regex
    if "\n" in word or "\t" in word or "\r" in word:
        escaped = (
            word.replace("\\", "\\\\")
            .replace("'", "\\'")
            .replace("\n", "\\n")
            .replace("\t", "\\t")
            .replace("\r", "\\r")
        )
        return "$'" + escaped + "'"
    return "'" + word.replace("'", "'\"'\"'") + "'"


def unescape_unquoted(text: str) -> tuple[str, bool]:
    """Remove backslash escapes from an unquoted word; the flag says a letter was escaped (``\\rm``)."""
    if "\\" not in text:
        return text, False
    out = []
    letter = False
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt != "\n":
                out.append(nxt)
                letter = letter or nxt.isalnum()
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), letter


def unescape_double_quoted(text: str) -> str:
    """Remove the escapes bash honours inside double quotes (``\\$ \\` \\" \\\\ \\newline``)."""
    if "\\" not in text:
        return text
    return re.sub(r'\\([$`"\\\n])', lambda m: "" if m.group(1) == "\n" else m.group(1), text)


def brace_expand(word: str) -> list[str]:
    """Bash brace expansion: ``{rm,-rf,/}``, ``/etc/{passwd,shadow}``, ``{1..3}``; bounded."""
    if len(word) > 1024:
        return [word]
    results = _brace(word, 0)
    return results[:MAX_BRACE_RESULTS] if results else [word]


def _brace(word: str, depth: int) -> list[str]:
    if depth > 8 or "{" not in word:
        return [word]
    start = -1
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            close, parts = _brace_body(word, i)
            if close > 0 and parts is not None:
                start = i
                break
        i += 1
    if start < 0:
        return [word]
    prefix, suffix = word[:start], word[close + 1 :]
    out: list[str] = []
    for part in parts:
        for tail in _brace(suffix, depth + 1):
            for item in _brace(prefix + part + tail, depth + 1) if "{" in part else [prefix + part + tail]:
                out.append(item)
                if len(out) >= MAX_BRACE_RESULTS:
                    return out
    return out


def _brace_body(word: str, open_index: int) -> tuple[int, list[str] | None]:
    """(index of the matching ``}``, alternatives) or (-1, None) when it is no brace expression."""
    depth = 0
    parts: list[str] = []
    current_start = open_index + 1
    i = open_index
    while i < len(word):
        ch = word[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                parts.append(word[current_start:i])
                if len(parts) > 1:
                    return i, parts
                sequence = _sequence(parts[0])
                return (i, sequence) if sequence is not None else (-1, None)
        elif ch == "," and depth == 1:
            parts.append(word[current_start:i])
            current_start = i + 1
        i += 1
    return -1, None


def _sequence(body: str) -> list[str] | None:
    match = re.fullmatch(r"(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?", body)
    if match:
        first, last = int(match.group(1)), int(match.group(2))
        step = abs(int(match.group(3) or 1)) or 1
        if abs(last - first) // step > MAX_BRACE_RESULTS:
            return None
        rng = range(first, last + 1, step) if first <= last else range(first, last - 1, -step)
        return [str(n) for n in rng]
    match = re.fullmatch(r"([A-Za-z])\.\.([A-Za-z])", body)
    if match:
        a, b = ord(match.group(1)), ord(match.group(2))
        rng = range(a, b + 1) if a <= b else range(a, b - 1, -1)
        return [chr(c) for c in rng]
    return None


# Home directories Debian/RHEL packages give their service accounts: ``~postgres/16/main``
# is the database cluster, not a file under /home.
SERVICE_HOMES = {
    "root": "/root",
    "postgres": "/var/lib/postgresql",
    "mysql": "/var/lib/mysql",
    "mongodb": "/var/lib/mongodb",
    "redis": "/var/lib/redis",
    "elasticsearch": "/usr/share/elasticsearch",
    "jenkins": "/var/lib/jenkins",
    "git": "/var/opt/gitlab",
    "www-data": "/var/www",
    "nginx": "/var/lib/nginx",
    "backup": "/var/backups",
    "daemon": "/usr/sbin",
    "bin": "/bin",
    "sys": "/dev",
}


def expand_tilde(word: str, home: str) -> tuple[str, bool]:
    """Expand a leading ``~``/``~user``/``~+``; the flag says another user's home was named."""
    if not word.startswith("~"):
        return word, False
    user, sep, rest = word[1:].partition("/")
    if user == "":
        base, other = home, False
    elif user in SERVICE_HOMES:
        base, other = SERVICE_HOMES[user], True
    elif user == "+":
        return word, False
    elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", user):
        base, other = "/home/" + user, True
    else:
        return word, False
    return (base.rstrip("/") or "/") + (("/" + rest) if sep else ""), other


def _norm(path: str, cwd: str | None) -> str:
    trailing_glob = path.endswith("/*")
    if not path.startswith("/"):
        if cwd is None:
            normalised = posixpath.normpath(path)
            return normalised
        path = posixpath.join(cwd, path)
    normalised = posixpath.normpath(path)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if trailing_glob and not normalised.endswith("/*"):
        normalised += "/*"
    return normalised


def normalize_path_arg(word: str, cwd: str | None) -> tuple[str, bool]:
    """Collapse ``..``/``.``/``//`` in a path-like argument (relative to ``cwd`` when known).

    Returns (word, climbed): ``climbed`` is True when ``..`` segments were resolved, which
    is how ``./../../..`` style traversal is recorded as an evasion.
    """
    if not word or ("/" not in word and word[0] not in ".~") or "\n" in word or "://" in word or " " in word:
        return word, False
    option = _OPTION_VALUE.match(word)
    if option and option.group(2)[:1] in ("/", ".", "~"):
        value, climbed = normalize_path_arg(option.group(2), cwd)
        return option.group(1) + value, climbed
    first = word[0]
    if first == "/":
        if "/." in word or "//" in word or (word.endswith("/") and len(word) > 1):
            return _norm(word, None), bool(_DOTDOT.search(word))
        return word, False
    if _DOTDOT.search(word):
        # One `..` (a sibling directory) is ordinary; climbing two or more levels above the
        # starting point is how ./../../.. traversal reaches system directories.
        relative = posixpath.normpath(word)
        climbed = relative == "../.." or relative.startswith("../../")
        return _norm(word, cwd), climbed
    if first == "." and ("/./" in word or "//" in word):
        # ./dist stays as written; only collapse noise like ./a/./b
        return "./" + _norm(word, None), False
    return word, False


def pattern_to_regex(pattern: str, *, anchored_start: bool, anchored_end: bool) -> re.Pattern[str] | None:
    """Compile a shell glob used in ${var#pat} / ${var/pat/rep} into a regex (non-greedy form)."""
    try:
        body = fnmatch.translate(pattern)
    except (ValueError, re.error):
        return None
    # fnmatch.translate gives (?s:...)\Z; strip the anchor to control it ourselves.
    body = body.removesuffix(r"\Z")
    return re.compile(("^" if anchored_start else "") + body + ("$" if anchored_end else ""), re.DOTALL)


def remove_pattern(value: str, pattern: str, op: str) -> str:
    """``${v#p}``, ``${v##p}``, ``${v%p}``, ``${v%%p}`` with glob patterns."""
    if len(value) > 1024 or len(pattern) > 256:
        return value  # bounded: each candidate split is a glob match
    if op in ("#", "##"):
        indices = range(len(value) + 1) if op == "#" else range(len(value), -1, -1)
        for end in indices:
            if fnmatch.fnmatchcase(value[:end], pattern):
                return value[end:]
        return value
    indices = range(len(value), -1, -1) if op == "%" else range(len(value) + 1)
    for start in indices:
        if fnmatch.fnmatchcase(value[start:], pattern):
            return value[:start]
    return value


def replace_pattern(value: str, pattern: str, replacement: str, op: str) -> str:
    """``${v/p/r}``, ``${v//p/r}``, ``${v/#p/r}``, ``${v/%p/r}``."""
    if not pattern or len(value) > 1024 or len(pattern) > 256:
        return value
    regex = pattern_to_regex(pattern, anchored_start=op == "/#", anchored_end=op == "/%")
    if regex is None:
        return value
    count = 0 if op == "//" else 1
    try:
        return regex.sub(lambda _m: replacement, value, count=count)
    except re.error:
        return value
