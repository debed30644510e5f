"""Turn a (normalised) shell command into English-like words for a sentence-embedding model.

A model trained on sentences sees ``rm -rf /`` as three odd tokens; it understands
``rm remove delete recursive force root filesystem``. This module rewrites a command
with the glossary kept as data in ``glossary.yaml``: executables get a short description,
flags are read per command (``-rf`` for ``rm`` is "recursive force"), paths get the meaning
of their longest known prefix (``/dev/sda1`` is a "block device disk") and shell operators
become words ("pipe into"). The command is also cut into segments at ``;``, ``&&``,
``||``, ``&`` and newlines, so a benign prefix cannot dilute a dangerous suffix.

Pure and cheap: no I/O after the glossary is loaded, no exceptions on any input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GLOSSARY_PATH = Path(__file__).with_name("glossary.yaml")

# Bounds that keep the cost of one call small whatever the input: the level never
# needs more than the first few thousand characters to know what a command is about.
MAX_INPUT_CHARS = 4000
MAX_SEGMENTS = 12
MAX_WORDS_PER_SEGMENT = 96
# A single "word" this long is an encoded payload, not language.
PAYLOAD_MIN_CHARS = 40
ARGUMENT_CACHE_SIZE = 20_000

_TOKEN_RE = re.compile(
    r"""
    (?P<op>\|\||&&|>>|<<<|<<|\d?>&\d?|&>|\$\(|<\(|[|;&<>()`{}\n])
    | (?P<word>[^\s|;&<>()`{},]+)  # commas too: brace lists and code arguments are word lists
    """,
    re.VERBOSE,
)
_SEARCH_COMMANDS = frozenset({"grep", "egrep", "fgrep", "rg", "ag", "ack", "zgrep"})
_MESSAGE_FLAGS = frozenset({"-m", "--message", "--grep", "-am"})
_PATH_LIKE_RE = re.compile(r"/|^[.~]|\*|\.[A-Za-z0-9]{1,5}$")
_SEGMENT_BREAKS = frozenset({";", "&&", "||", "&", "\n"})
_COMMAND_STARTERS = frozenset({"|", ";", "&&", "||", "&", "\n", "$(", "`", "<(", "(", "{"})
# Wrappers run the next word as a command; the glossary still describes the wrapper itself.
_WRAPPERS = frozenset(
    {"sudo", "doas", "env", "nohup", "setsid", "timeout", "nice", "xargs", "exec", "command",
     "time", "builtin", "busybox", "stdbuf", "ionice", "chroot", "nsenter", "watch", "strace",
     "eval", "then", "do", "else", "if", "while", "until", "!"}
)
# These take a command string after -c / -e; the string is a command too.
_INLINE_COMMAND_FLAGS = {
    "sh": "-c", "bash": "-c", "zsh": "-c", "dash": "-c", "ksh": "-c", "su": "-c", "busybox": "sh",
}
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_NUMBER_RE = re.compile(r"^\d+[smhd]?$")
_IP_RE = re.compile(r"^\d{1,3}(\.\d{1,3}){3}(:\d+)?$")
_URL_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>[^/:?#]*)(?::\d+)?(?P<path>[^?#]*)", re.IGNORECASE)
_SPLIT_WORD_RE = re.compile(r"[A-Za-z]+|\d+")
_HOME_VARIABLE_RE = re.compile(r"\$\{HOME\}|\$HOME\b")
_BASE64_RE = re.compile(r"^[A-Za-z0-9+/]{12,}={0,2}$")
_HEX_RE = re.compile(r"^(?:(?:x[0-9a-fA-F]{2}){3,}|[0-9a-fA-F]{16,}|\d{9,})$")
_HOME_RE = re.compile(r"^(\$\{HOME\}|\$HOME|/root|/home/[A-Za-z0-9._-]+)(?=/|$)")


@dataclass(frozen=True)
class Glossary:
    """The data of ``glossary.yaml``, indexed for lookups."""

    commands: dict[str, str]
    flags: dict[str, dict[str, str]]
    paths: dict[str, str]
    words: dict[str, str]
    operators: dict[str, str]
    patterns: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path = GLOSSARY_PATH) -> Glossary:
        """Read and validate a glossary file.

        Raises:
            OSError: the file cannot be read.
            ValueError: the file is not a mapping of the expected sections.
        """
        import yaml  # only when the YAML is newer than the artifact's JSON copy: keeps load fast

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return cls.from_mapping(yaml.load(path.read_text(encoding="utf-8"), Loader=loader))

    @classmethod
    def from_mapping(cls, data: Any) -> Glossary:
        if not isinstance(data, dict):
            raise ValueError("glossary: top level must be a mapping")  # noqa: TRY004 - bad data

        def section(name: str) -> dict[str, Any]:
            value = data.get(name) or {}
            if not isinstance(value, dict):
                raise ValueError(f"glossary: section {name!r} must be a mapping")  # noqa: TRY004 - bad data
            return value

        flags: dict[str, dict[str, str]] = {}
        for command, table in section("flags").items():
            if not isinstance(table, dict):
                raise ValueError(f"glossary: flags of {command!r} must be a mapping")  # noqa: TRY004 - bad data
            flags[str(command)] = {str(k): str(v or "") for k, v in table.items()}
        patterns = []
        for regex, words in section("patterns").items():
            try:
                patterns.append((re.compile(str(regex)), str(words)))
            except re.error as exc:
                raise ValueError(f"glossary: bad pattern {regex!r}: {exc}") from exc
        return cls(
            commands={str(k): str(v or "") for k, v in section("commands").items()},
            flags=flags,
            paths={str(k): str(v or "") for k, v in section("paths").items()},
            words={str(k).lower(): str(v or "") for k, v in section("words").items()},
            operators={str(k): str(v or "") for k, v in section("operators").items()},
            patterns=patterns,
        )


class Expander:
    """Rewrites commands into words, segment by segment, using one glossary."""

    def __init__(self, glossary: Glossary) -> None:
        self._glossary = glossary
        self._paths = {key.rstrip("/") or "/": words for key, words in glossary.paths.items()}
        # Device names are prefixes of a name, not of a path ("/dev/sd" covers "/dev/sdb1").
        self._device_prefixes = sorted(
            (key for key in glossary.paths if key.startswith("/dev/")), key=len, reverse=True
        )
        self._generic_flags = glossary.flags.get("*", {})
        # Commands reuse few words: remember each (word, command) rewrite, bounded.
        self._argument_cache: dict[tuple[str, str], str] = {}

    def expand(self, command: str) -> str:
        """The whole command as one line of words."""
        return " ".join(self.segments(command))

    def segments(self, command: str) -> list[str]:
        """The command cut at ``;``/``&&``/``||``/``&``/newline, each segment as words.

        Never raises; returns [] for empty input.
        """
        if not isinstance(command, str):
            return []
        text = command[:MAX_INPUT_CHARS]
        hints = [words for regex, words in self._glossary.patterns if regex.search(text)]
        # Quotes and backslashes only group or escape characters; the words inside
        # (an ``sh -c`` string, an SQL statement) are what matters to the model.
        text = text.replace("\\\n", " ").translate(_STRIP_QUOTES)
        text = _HOME_VARIABLE_RE.sub("~", text)
        segments: list[list[str]] = [[]]
        expect_command = True
        current = ""
        # Text that is only data (a search pattern, a commit message) is replaced by one
        # placeholder: "grep 'DROP TABLE' db/" searches, it does not drop anything.
        mention = ""  # "" | "pattern" (inside a search pattern) | "message" (to the next operator)
        for match in _TOKEN_RE.finditer(text):
            op, word = match.group("op"), match.group("word")
            if op is None and mention:
                if mention == "message" or not _PATH_LIKE_RE.search(word):
                    continue
                mention = ""  # the first path ends a search pattern
            if (
                op is None
                and current in _SEARCH_COMMANDS
                and not expect_command
                and not word.startswith("-")
                and not _PATH_LIKE_RE.search(word)
                and "searched" not in segments[-1]
            ):
                self._emit(segments[-1], "text pattern searched")
                mention = "pattern"
                continue
            if op is None and current == "git" and word == "grep":
                self._emit(segments[-1], "grep search code")
                current = "grep"  # the rest reads like grep's arguments
                continue
            if op is None and current == "git" and (word in _MESSAGE_FLAGS or word.startswith("--grep")):
                self._emit(segments[-1], "message text")
                mention = "message"
                continue
            if op is not None:
                mention = ""
                if op in _SEGMENT_BREAKS:
                    if segments[-1] and len(segments) < MAX_SEGMENTS:
                        segments.append([])
                else:
                    self._emit(segments[-1], self._glossary.operators.get(op, ""))
                expect_command = op in _COMMAND_STARTERS or op in _SEGMENT_BREAKS
                if expect_command:
                    current = ""
                continue
            if expect_command and current in _WRAPPERS and (word.startswith("-") or _NUMBER_RE.match(word)):
                continue  # a wrapper's own options: "timeout 5", "nice -n 10", "sudo -u x"
            if expect_command and not _ASSIGNMENT_RE.match(word) and not word.startswith("-"):
                current = self._command_name(word)
                described = self._command_words(current)
                # "sudo" is described as "sudo as root ...": do not say the name twice.
                if described.split(" ", 1)[0] != current:
                    described = current + " " + described
                self._emit(segments[-1], described)
                expect_command = current in _WRAPPERS
                continue
            if expect_command and _ASSIGNMENT_RE.match(word):
                name, _, value = word.partition("=")
                self._emit(segments[-1], "set " + self._split_words(name) + " " + self._argument(value, current))
                continue
            key = (word, current)
            rewritten = self._argument_cache.get(key)
            if rewritten is None:
                rewritten = self._argument(word, current)
                if len(self._argument_cache) >= ARGUMENT_CACHE_SIZE:
                    self._argument_cache.clear()
                self._argument_cache[key] = rewritten
            self._emit(segments[-1], rewritten)
            if _INLINE_COMMAND_FLAGS.get(current) == word or (current in ("python", "python3") and word == "-c"):
                expect_command = current != "python" and current != "python3"
        rendered = [" ".join(words[:MAX_WORDS_PER_SEGMENT]) for words in segments if words]
        if hints and rendered:
            rendered[0] = " ".join(hints) + " " + rendered[0]
        elif hints:
            rendered = [" ".join(hints)]
        return rendered

    # -- pieces --------------------------------------------------------------------------

    @staticmethod
    def _emit(words: list[str], text: str) -> None:
        if text:
            words.extend(text.split())

    @staticmethod
    def _command_name(word: str) -> str:
        name = word.rsplit("/", 1)[-1] or word
        return name.lower()

    def _command_words(self, name: str) -> str:
        commands = self._glossary.commands
        if name in commands:
            return commands[name]
        # mkfs.ext4, python3.11, pip3.12: the family name carries the meaning.
        family = re.split(r"[.\d]", name, maxsplit=1)[0]
        if family and family in commands:
            return commands[family]
        return self._split_words(name) if name.isascii() else ""

    def _flag_words(self, flag: str, command: str) -> str:
        own = self._glossary.flags.get(command, {})
        for table in (own, self._generic_flags):
            if flag in table:
                return table[flag]
        if flag.startswith("--"):
            return flag[2:].replace("-", " ").replace("_", " ")
        letters = flag[1:]
        if letters.isalpha() and len(letters) <= 6:
            found = [own.get("-" + letter) or self._generic_flags.get("-" + letter, "") for letter in letters]
            return " ".join(word for word in found if word)
        return ""

    def _argument(self, word: str, command: str) -> str:
        if not word:
            return ""
        if word.startswith("-") and len(word) > 1:
            flag, _, value = word.partition("=")
            words = self._flag_words(flag, command)
            return words + (" " + self._argument(value, command) if value else "")
        lowered = word.lower()
        if lowered in self._glossary.words:
            return self._glossary.words[lowered]
        url = _URL_RE.match(word)
        if url:
            return self._url_words(url)
        if _IP_RE.match(word):
            return "remote ip address"
        if "=" in word and not word.startswith("/"):
            key, _, value = word.partition("=")
            own = self._glossary.flags.get(command, {})
            return (own.get(key + "=") or self._split_words(key)) + " " + self._argument(value, command)
        if _looks_encoded(word):
            return "encoded payload"
        if "/" in word or word.startswith(("~", ".")):
            return self._path_words(word)
        if len(word) >= PAYLOAD_MIN_CHARS:
            return "encoded payload"
        return self._split_words(word)

    def _url_words(self, url: re.Match[str]) -> str:
        host = url.group("host")
        host_words = "remote ip address" if _IP_RE.match(host) else self._split_words(host)
        return "url " + url.group("scheme").lower() + " " + host_words + " " + self._split_words(url.group("path"))

    def _path_words(self, word: str) -> str:
        path = _HOME_RE.sub("~", word)
        words = ""
        if path.startswith("~") and not path.startswith(("~/", "~.")) and len(path) > 1:
            user, _, rest = path[1:].partition("/")
            words = f"home directory of user {user.lower()}"
            path = "~/" + rest if rest else "~"
        if ".." in path:
            path, climbed = _collapse_parents(path)
            if climbed >= 3:
                words += " climb parent directories up to root filesystem"
        meaning = self._path_meaning(path)
        return f"{words} {meaning} {self._split_words(path)}".strip()

    def _path_meaning(self, path: str) -> str:
        """Words of the longest glossary prefix of ``path`` (whole components only)."""
        for candidate in (path, path[2:] if path.startswith("./") else None):
            if not candidate:
                continue
            for prefix in self._device_prefixes:
                if candidate.startswith(prefix):
                    return self._glossary.paths[prefix]
            probe = candidate.rstrip("/") or "/"
            while probe:
                if probe in self._paths:
                    return self._paths[probe]
                cut = probe.rfind("/")
                if cut <= 0:  # "/" itself only names the root, not everything under it
                    break
                probe = probe[:cut]
        return ""

    @staticmethod
    def _split_words(text: str) -> str:
        return " ".join(piece.lower() for piece in _SPLIT_WORD_RE.findall(text)[:12])


def _looks_encoded(word: str) -> bool:
    """Base64, hex or escaped-byte runs: a payload, whatever it decodes to."""
    if _HEX_RE.match(word):
        return True
    if not _BASE64_RE.match(word) or word.startswith("/"):
        return False
    uppers = sum(c.isupper() for c in word)
    lowers = sum(c.islower() for c in word)
    digits = sum(c.isdigit() for c in word)
    # Long CamelCase names (AmazonS3ReadOnlyAccess) are not payloads: base64 of text has
    # a length that is a multiple of 4 or ends with padding, and mixes all three classes.
    return uppers >= 3 and lowers >= 3 and digits >= 1 and (word.endswith("=") or len(word) % 4 == 0)


def _collapse_parents(path: str) -> tuple[str, int]:
    """``a/../../etc`` -> (``../etc`` with the leading climbs dropped as ``/etc``, climbs)."""
    parts: list[str] = []
    climbed = 0
    for part in path.split("/"):
        if part == "..":
            if parts and parts[-1] not in ("", "~", "."):
                parts.pop()
            else:
                climbed += 1
        elif part != ".":
            parts.append(part)
    collapsed = "/".join(parts)
    if climbed >= 3 and not collapsed.startswith("/"):
        collapsed = "/" + collapsed.lstrip("/")  # climbing far enough reaches the root
    return collapsed or "/", climbed


_STRIP_QUOTES = str.maketrans({"'": None, '"': None, "\\": None})


_default_expander: Expander | None = None


def default_expander() -> Expander:
    """The expander built from the packaged glossary (loaded once).

    Raises:
        OSError, ValueError: the packaged glossary is missing or malformed.
    """
    global _default_expander
    if _default_expander is None:
        _default_expander = Expander(Glossary.load())
    return _default_expander
