"""Canonical JSON for audit events: the exact bytes that the hash chain and the Merkle log hash.

The form follows RFC 8785 (JSON Canonicalization Scheme): object keys sorted by their
UTF-16 code units, no insignificant whitespace, UTF-8 output, strings escaped as JSON
requires (``\\b \\f \\n \\r \\t``, other control characters as lowercase ``\\u00xx``, no
other escaping), numbers written as ECMAScript ``Number.prototype.toString`` writes them.
Only JSON types are accepted: ``None``, ``bool``, ``int``, finite ``float``, ``str``,
``list``/``tuple`` and ``dict`` with ``str`` keys. Anything else (bytes, sets, NaN,
lone surrogates, integers beyond 2**53 that a JSON reader would round) raises
``CanonicalizationError`` rather than being coerced silently: a value that cannot be
written exactly must never enter the chain.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

# Integers beyond this cannot be represented exactly by an IEEE double, so JCS readers
# (JavaScript, many SIEMs) would silently change them.
MAX_SAFE_INTEGER = 2**53 - 1
# Deep nesting has no business in an audit event; the limit keeps recursion bounded.
MAX_DEPTH = 64

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


class CanonicalizationError(ValueError):
    """A value that has no exact canonical JSON form."""


def canonical_json(value: Any) -> bytes:
    """Return the canonical UTF-8 bytes of ``value``; raises CanonicalizationError."""
    parts: list[str] = []
    _write(value, parts, 0)
    try:
        return "".join(parts).encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates
        raise CanonicalizationError(f"string is not valid Unicode: {exc.reason}") from exc


def canonical_text(value: Any) -> str:
    """Canonical form as ``str`` (what the audit table stores in its ``event`` attribute)."""
    return canonical_json(value).decode("utf-8")


def _write(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise CanonicalizationError(f"nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise CanonicalizationError(f"integer {value} is outside the exact JSON range (±2**53-1)")
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(format_number(value))
    elif isinstance(value, Decimal):
        # DynamoDB and pynamodb hand numbers back as Decimal: integral ones are ints,
        # others are written as the nearest double, like any JSON reader would read them.
        if not value.is_finite():
            raise CanonicalizationError("NaN and Infinity have no JSON form")
        out.append(format_number(int(value) if value == value.to_integral_value() else float(value)))
    elif isinstance(value, str):
        out.append(_quote(value))
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, depth + 1)
        out.append("]")
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(f"object key {key!r} is not a string")
        out.append("{")
        for index, key in enumerate(sorted(value, key=_utf16_sort_key)):
            if index:
                out.append(",")
            out.append(_quote(key))
            out.append(":")
            _write(value[key], out, depth + 1)
        out.append("}")
    else:
        raise CanonicalizationError(f"type {type(value).__name__} has no canonical JSON form")


def _utf16_sort_key(key: str) -> bytes:
    # RFC 8785 §3.2.3 sorts by UTF-16 code units, which differs from code-point order
    # only for characters above U+FFFF versus U+E000..U+FFFF.
    return key.encode("utf-16-be", "surrogatepass")


def _quote(text: str) -> str:
    chunks = ['"']
    for char in text:
        escaped = _ESCAPES.get(char)
        if escaped is not None:
            chunks.append(escaped)
        elif ord(char) < 0x20:
            chunks.append(f"\\u{ord(char):04x}")
        else:
            chunks.append(char)
    chunks.append('"')
    return "".join(chunks)


def format_number(number: float) -> str:
    """ECMAScript Number::toString of a finite number (RFC 8785 §3.2.2.3)."""
    if isinstance(number, int):
        if abs(number) > MAX_SAFE_INTEGER:
            raise CanonicalizationError(f"integer {number} is outside the exact JSON range")
        return str(number)
    if not math.isfinite(number):
        raise CanonicalizationError("NaN and Infinity have no JSON form")
    if number == 0:
        return "0"  # also for -0.0, as ECMAScript does
    sign = "-" if number < 0 else ""
    # repr gives the shortest digit string that round-trips; split it into digits and exponent.
    mantissa, _, exp_text = repr(abs(number)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0")
    # n is the ECMAScript exponent: value = 0.d1d2...dk × 10^n
    leading_zeros = len(int_part + frac_part) - len((int_part + frac_part).lstrip("0"))
    n = len(int_part) - leading_zeros + (int(exp_text) if exp_text else 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        exponent = n - 1
        exp_sign = "+" if exponent >= 0 else "-"
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + exp_sign + str(abs(exponent))
    return sign + body
