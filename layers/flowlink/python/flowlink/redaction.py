"""Redaction of secret values from command output, audit events and logs.

A secret can leak in encoded form, so every value is also searched for as standard and
URL-safe base64 (at each of the three byte alignments it can take inside a longer
stream, and with the line breaks `base64` inserts every 76 characters), lower- and
upper-case hex, and URL encoding (any mix of literal and percent-encoded characters, in
either hex case, as ``quote``, ``encodeURIComponent``, ``encodeURI``, jq's ``@uri`` or an
over-eager encoder produce them). Matches become ``[REDACTED:NAME]``.

``StreamRedactor`` redacts output that arrives in chunks (a value split across chunks,
or printed one byte at a time, is still caught) by holding back the last few bytes of
each chunk until the next one or ``flush()``.

Never logs the values it holds.
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

# Encoded forms of very short values would match innocent output by chance; below this
# length only the literal value is redacted.
MIN_ENCODED_FORM_LENGTH = 6
# Shortest encoded fragment still worth matching (shorter fragments are too ambiguous).
MIN_FRAGMENT_LENGTH = 8
_BASE64_LINE_BREAK = r"(?:\r?\n)?"
# The one or two characters around a base64 fragment mix the value's bits with its
# neighbours'; they are swallowed too so no partial bits of the value remain visible.
_BASE64_LEAD = r"[A-Za-z0-9+/_-]{0,2}"
_BASE64_TAIL = r"[A-Za-z0-9+/_-]{0,3}={0,2}"


def redaction_marker(name: str) -> str:
    return f"[REDACTED:{name}]"


def _base64_fragments(value: bytes, alphabet: str) -> set[str]:
    """Parts of the base64 text of ``value`` that do not depend on surrounding bytes.

    Inside a longer stream the value can start at any byte offset modulo 3; for each
    offset only the characters whose 6 bits come entirely from the value are stable.
    """
    fragments: set[str] = set()
    n = len(value)
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + value + b"\0\0").decode("ascii")
        if alphabet == "urlsafe":
            encoded = encoded.replace("+", "-").replace("/", "_")
        first = -(-(8 * offset) // 6)  # ceil: first char made only of value bits
        last = (8 * (offset + n)) // 6  # floor: chars before this are only value bits
        fragment = encoded[first:last]
        if len(fragment) >= MIN_FRAGMENT_LENGTH:
            fragments.add(fragment)
    return fragments


def _hex_digit_class(digit: str) -> str:
    return f"[{digit.upper()}{digit.lower()}]" if digit.isalpha() else digit


def _url_encoded_pattern(value: str) -> str:
    """Every URL encoding of ``value``: each character literal or percent-encoded (UTF-8, any
    hex case), a space also as ``+``. Encoders differ in which characters they leave alone
    (``!``, ``'``, ``/``, ``:`` ...), so the pattern does not guess: it accepts both forms."""
    parts = []
    for char in value:
        encoded = "".join("%" + "".join(_hex_digit_class(d) for d in f"{byte:02X}") for byte in char.encode("utf-8"))
        forms = [re.escape(char), encoded] + (["\\+"] if char == " " else [])
        parts.append("(?:" + "|".join(forms) + ")")
    return "".join(parts)


def _pattern_for_secret(value: str) -> str:
    raw = value.encode("utf-8")
    alternatives = {re.escape(value)}
    if len(value) >= MIN_ENCODED_FORM_LENGTH:
        for alphabet in ("standard", "urlsafe"):
            for fragment in _base64_fragments(raw, alphabet):
                body = _BASE64_LINE_BREAK.join(re.escape(ch) for ch in fragment)
                alternatives.add(_BASE64_LEAD + body + _BASE64_TAIL)
        hex_lower = binascii.hexlify(raw).decode("ascii")
        alternatives.add(re.escape(hex_lower))
        alternatives.add(re.escape(hex_lower.upper()))
        if urllib.parse.quote(value, safe="") != value:
            alternatives.add(_url_encoded_pattern(value))
    # Longest first so a full match wins over a fragment of it.
    return "|".join(sorted(alternatives, key=len, reverse=True))


@dataclass(frozen=True)
class _Compiled:
    pattern: re.Pattern[str]
    names: tuple[str, ...]
    longest_match: int


class Redactor:
    """Replaces every known secret value, and its encodings, with ``[REDACTED:NAME]``."""

    def __init__(self, secrets: Mapping[str, str]):
        usable = {name: value for name, value in secrets.items() if value}
        self._compiled: _Compiled | None = None
        if not usable:
            return
        names: list[str] = []
        groups: list[str] = []
        longest = 1
        for index, (name, value) in enumerate(sorted(usable.items(), key=lambda item: -len(item[1]))):
            names.append(name)
            groups.append(f"(?P<s{index}>{_pattern_for_secret(value)})")
            # Encoded forms are at most ~3x the value (URL-encoding), plus line breaks.
            longest = max(longest, 3 * len(value.encode("utf-8")) + 2 * (len(value) // 50 + 2))
        self._compiled = _Compiled(re.compile("|".join(groups)), tuple(names), longest)

    @property
    def active(self) -> bool:
        return self._compiled is not None

    @property
    def holdback(self) -> int:
        """How many trailing characters a stream must hold back to catch split values."""
        return self._compiled.longest_match if self._compiled else 0

    def redact(self, text: str) -> str:
        if self._compiled is None or not text:
            return text
        names = self._compiled.names

        def replace(match: re.Match[str]) -> str:
            group = match.lastgroup or ""
            return redaction_marker(names[int(group[1:])]) if group else match.group(0)

        return self._compiled.pattern.sub(replace, text)

    def finditer(self, text: str):
        """Matches of any secret form in ``text``, in order (none when no secrets are set)."""
        if self._compiled is None:
            return iter(())
        return self._compiled.pattern.finditer(text)

    def redact_obj(self, value):
        """Redact every string inside a JSON-like structure (dicts, lists, tuples)."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {key: self.redact_obj(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact_obj(item) for item in value]
        return value


class StreamRedactor:
    """Redacts a text stream chunk by chunk without ever emitting part of a secret.

    ``feed(chunk)`` returns the text that is safe to emit now; ``flush()`` returns the rest.
    The unemitted tail is kept as raw text, so a value completed by a later chunk, and
    the encoded characters that follow it, are matched as one.
    """

    # Characters a match must be followed by before it is emitted (base64 tail + padding).
    _SETTLE = 6

    def __init__(self, redactor: Redactor):
        self._redactor = redactor
        self._pending = ""

    def feed(self, chunk: str) -> str:
        if not self._redactor.active:
            return chunk
        raw = self._pending + chunk
        safe_end = len(raw) - self._redactor.holdback
        if safe_end <= 0:
            self._pending = raw
            return ""
        for match in self._redactor.finditer(raw):
            if match.start() >= safe_end:
                break
            if match.end() + self._SETTLE > len(raw):
                safe_end = match.start()
                break
            # A complete match that straddles the cut is emitted whole.
            safe_end = max(safe_end, match.end())
        self._pending = raw[safe_end:]
        return self._redactor.redact(raw[:safe_end])

    def flush(self) -> str:
        rest = self._redactor.redact(self._pending)
        self._pending = ""
        return rest
