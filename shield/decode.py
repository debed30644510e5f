"""Static decoders for payloads that attackers pipe or substitute into a shell.

The parser uses these to see what ``echo <b64> | base64 -d | sh``, ``printf '\\x72\\x6d'``,
``$'\\x72\\x6d'``, ``xxd -r -p``, ``tr`` rot13, ``rev`` and gzip+base64 payloads really run.
Every function is pure, never raises on bad input (it returns None instead) and bounds its
output size so a decompression bomb or a huge payload cannot stall the caller.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import functools
import lzma
import re
import zlib

# Decoded payloads larger than this are cut: the parser only needs enough to judge them.
MAX_DECODED_BYTES = 64 * 1024

_B64_JUNK = re.compile(rb"[^A-Za-z0-9+/=_-]")
_HEX_JUNK = re.compile(rb"[^0-9A-Fa-f]")
_XXD_LINE = re.compile(rb"^\s*[0-9A-Fa-f]+:\s*((?:[0-9A-Fa-f]{2,4}\s?)++)")


def b64decode(data: bytes) -> bytes | None:
    """Decode base64 the way ``base64 -d`` does (whitespace ignored, padding forgiven)."""
    cleaned = _B64_JUNK.sub(b"", data)
    if not cleaned:
        return None
    cleaned = cleaned.rstrip(b"=")
    cleaned += b"=" * (-len(cleaned) % 4)
    try:
        if b"-" in cleaned or b"_" in cleaned:
            return base64.urlsafe_b64decode(cleaned)[:MAX_DECODED_BYTES]
        return base64.b64decode(cleaned)[:MAX_DECODED_BYTES]
    except (binascii.Error, ValueError):
        return None


def b32decode(data: bytes) -> bytes | None:
    """Decode base32 as ``base32 -d`` does."""
    cleaned = re.sub(rb"[^A-Z2-7=]", b"", data.upper()).rstrip(b"=")
    if not cleaned:
        return None
    cleaned += b"=" * (-len(cleaned) % 8)
    try:
        return base64.b32decode(cleaned)[:MAX_DECODED_BYTES]
    except (binascii.Error, ValueError):
        return None


def hexdecode(data: bytes) -> bytes | None:
    """Decode plain hex (``xxd -r -p``): every non-hex character is ignored."""
    cleaned = _HEX_JUNK.sub(b"", data)
    if len(cleaned) % 2:
        cleaned = cleaned[:-1]
    if not cleaned:
        return None
    try:
        return binascii.unhexlify(cleaned)[:MAX_DECODED_BYTES]
    except (binascii.Error, ValueError):
        return None


def xxd_reverse(data: bytes) -> bytes | None:
    """Decode a classic ``xxd`` dump (``00000000: 726d 202d ...  rm -``), as ``xxd -r`` does."""
    out = bytearray()
    for line in data.splitlines():
        match = _XXD_LINE.match(line)
        if match:
            decoded = hexdecode(match.group(1))
            if decoded:
                out += decoded
    return bytes(out[:MAX_DECODED_BYTES]) if out else hexdecode(data)


def decompress(data: bytes, kind: str) -> bytes | None:
    """Decompress gzip/zlib ("gzip"), bzip2 ("bzip2") or xz/lzma ("xz"), bounded in size."""
    try:
        if kind == "gzip":
            # wbits=47 accepts both gzip and zlib headers.
            inflater = zlib.decompressobj(47)
            return inflater.decompress(data, MAX_DECODED_BYTES)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data, MAX_DECODED_BYTES)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(data, MAX_DECODED_BYTES)
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError):
        return None
    return None


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "e": "\x1b",
    "E": "\x1b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "?": "?",
}


def _unescape(text: str, *, octal_needs_zero: bool | None, stop_at_c: bool) -> tuple[str, bool]:
    """Shared backslash-escape decoder; returns (decoded, saw_numeric_escape).

    ``octal_needs_zero`` selects echo -e's ``\\0nnn`` octal form over printf's ``\\nnn``;
    None accepts both, as printf's ``%b`` does.
    """
    out: list[str] = []
    numeric = False
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch != "\\" or i + 1 >= n:
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt in _SIMPLE_ESCAPES and not (nxt in "'\"?" and octal_needs_zero):
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "x":
            digits = re.match(r"[0-9A-Fa-f]{1,2}", text[i + 2 : i + 4])
            if digits:
                out.append(chr(int(digits.group(0), 16)))
                i += 2 + len(digits.group(0))
                numeric = True
            else:
                out.append("\\x")
                i += 2
        elif nxt in "uU":
            width = 4 if nxt == "u" else 8
            digits = re.match(r"[0-9A-Fa-f]{1," + str(width) + "}", text[i + 2 : i + 2 + width])
            if digits:
                try:
                    out.append(chr(int(digits.group(0), 16)))
                except (ValueError, OverflowError):
                    out.append("\ufffd")
                i += 2 + len(digits.group(0))
                numeric = True
            else:
                out.append("\\" + nxt)
                i += 2
        elif octal_needs_zero and nxt == "0":
            digits = re.match(r"[0-7]{0,3}", text[i + 2 : i + 5]).group(0)
            out.append(chr(int(digits or "0", 8) & 0xFF))
            i += 2 + len(digits)
            numeric = True
        elif octal_needs_zero is None and nxt in "01234567":
            # printf's %b: ``\0nnn`` (up to three digits after the zero) or ``\nnn``.
            start = i + 2 if nxt == "0" else i + 1
            digits = re.match(r"[0-7]{0,3}", text[start : start + 3]).group(0)
            out.append(chr(int(digits or "0", 8) & 0xFF))
            i = start + len(digits)
            numeric = True
        elif not octal_needs_zero and nxt in "01234567":
            digits = re.match(r"[0-7]{1,3}", text[i + 1 : i + 4]).group(0)
            out.append(chr(int(digits, 8) & 0xFF))
            i += 1 + len(digits)
            numeric = True
        elif nxt == "c":
            if stop_at_c:
                break
            # $'\cX' is a control character.
            if i + 2 < n:
                out.append(chr(ord(text[i + 2]) & 0x1F))
                i += 3
            else:
                i += 2
        else:
            out.append("\\" + nxt)
            i += 2
    return "".join(out), numeric


def ansi_c(text: str) -> tuple[str, bool]:
    """Decode the body of a ``$'...'`` string; the flag says whether hex/octal escapes were used."""
    return _unescape(text, octal_needs_zero=False, stop_at_c=False)


def echo_escapes(text: str) -> tuple[str, bool]:
    """Decode ``echo -e`` escapes (octal is ``\\0nnn``; ``\\c`` stops output)."""
    return _unescape(text, octal_needs_zero=True, stop_at_c=True)


_PRINTF_SPEC = re.compile(r"%([-+ #0]*)(\*|\d+)?(?:\.(\*|\d+))?([diouxXeEfFgGcsbq%])")


def printf(fmt: str, args: list[str]) -> tuple[str, bool]:
    """Render ``printf FMT ARGS...`` like bash's builtin (the format is reused for extra args).

    Returns (output, saw_numeric_escape).
    """
    decoded_fmt, numeric = _unescape(fmt, octal_needs_zero=False, stop_at_c=True)
    out: list[str] = []
    remaining = list(args)
    for _ in range(64):  # the format is reused while arguments remain; bound it
        consumed = False

        def substitute(match: re.Match[str]) -> str:
            nonlocal consumed, numeric
            conv = match.group(4)
            if conv == "%":
                return "%"
            value = remaining.pop(0) if remaining else ""
            consumed = True
            if conv == "b":
                text, escaped = _unescape(value, octal_needs_zero=None, stop_at_c=True)
                numeric = numeric or escaped
                return text
            if conv in "diouxXc":
                if conv == "c":
                    return value[:1]
                try:
                    number = int(value, 0) if value else 0
                except ValueError:
                    number = 0
                return {"x": "%x", "X": "%X", "o": "%o"}.get(conv, "%d") % number
            return value

        out.append(_PRINTF_SPEC.sub(substitute, decoded_fmt))
        if not remaining or not consumed:
            break
    return "".join(out), numeric


_TR_CLASSES = {
    "[:lower:]": "abcdefghijklmnopqrstuvwxyz",
    "[:upper:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "[:digit:]": "0123456789",
    "[:alpha:]": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "[:alnum:]": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    "[:space:]": " \t\n\r\v\f",
    "[:blank:]": " \t",
}


@functools.lru_cache(maxsize=256)
def tr_set(spec: str) -> str:
    """Expand a ``tr`` character set: ranges (a-z), classes ([:lower:]) and escapes."""
    spec, _ = echo_escapes(spec)
    out: list[str] = []
    i = 0
    while i < len(spec) and len(out) < 4096:
        matched_class = next((c for c in _TR_CLASSES if spec.startswith(c, i)), None)
        if matched_class:
            out.append(_TR_CLASSES[matched_class])
            i += len(matched_class)
        elif i + 2 < len(spec) and spec[i + 1] == "-" and ord(spec[i]) <= ord(spec[i + 2]):
            out.append("".join(chr(c) for c in range(ord(spec[i]), ord(spec[i + 2]) + 1)))
            i += 3
        else:
            out.append(spec[i])
            i += 1
    return "".join(out)


def tr_translate(data: str, set1: str, set2: str) -> str:
    """Apply ``tr SET1 SET2`` (SET2 padded with its last character, as GNU tr does)."""
    source = tr_set(set1)
    target = tr_set(set2)
    if not source or not target:
        return data
    if len(target) < len(source):
        target += target[-1] * (len(source) - len(target))
    table = {ord(a): b for a, b in zip(source, target)}
    return data.translate(table)


def tr_delete(data: str, set1: str) -> str:
    """Apply ``tr -d SET1``."""
    return data.translate({ord(c): None for c in tr_set(set1)})


def is_rot13(set1: str, set2: str) -> bool:
    """True when ``tr SET1 SET2`` is a rot13 (or other Caesar) rotation of letters."""
    source, target = tr_set(set1), tr_set(set2)
    return bool(source) and any(c.isalpha() for c in source) and source != target[: len(source)]


def reverse_lines(data: str) -> str:
    """Apply ``rev``: reverse the characters of every line."""
    return "\n".join(line[::-1] for line in data.split("\n"))


def perl_pack_hex(code: str) -> str | None:
    """The text produced by ``pack("H*", "<hex>")`` (or ``pack 'H*', '<hex>'``) in Perl code."""
    match = re.search(r"""pack\s*\(?\s*["']H\*["']\s*,\s*["']([0-9A-Fa-f\s]+)["']""", code)
    if not match:
        return None
    decoded = hexdecode(match.group(1).encode())
    return decoded.decode("utf-8", "replace") if decoded is not None else None
