"""Shield level 0: turn a shell command string into the list of commands that would run.

``parse(command, home=..., cwd=...) -> ParseResult`` is the one entry point. It is pure
(no I/O beyond the tree-sitter-bash grammar), thread-safe, never raises, and bounds its
work: oversized, binary, unbalanced or absurdly nested input is still analysed as far as
is safe and always carries a flag (``too_large``, ``binary``, ``parse_error``,
``too_deep`` ...) so later levels never treat it as harmless.
"""

from __future__ import annotations

import logging

from shield.model import ParseResult
from shield.parsing import analyzer, words

logger = logging.getLogger(__name__)

# Bytes of input that are parsed; anything longer is cut and flagged too_large/truncated.
MAX_SOURCE_BYTES = 64 * 1024
# Of those, tree-sitter sees at most this much: the walk is bounded separately, but parsing
# a pathological 64 KiB list of commands alone would take tens of milliseconds.
MAX_PARSE_BYTES = 8 * 1024


def _decode_input(command: str | bytes, result_flags: set[str]) -> str:
    if isinstance(command, (bytes, bytearray, memoryview)):
        raw = bytes(command)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            result_flags.add("binary")
    elif isinstance(command, str):
        text = command
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (e.g. from JSON with broken escapes).
            text = text.encode("utf-8", "replace").decode("utf-8", "replace")
            result_flags.add("binary")
    else:
        text = "" if command is None else str(command)
    if "\r" in text:
        # CRLF from Windows clients: judge `rm -rf /\r\n` as the rm -rf / it was meant to be.
        text = text.replace("\r\n", "\n")
    if "\x00" in text:
        result_flags.add("binary")
        # bash drops NUL bytes from its input, so r\0m still runs rm: remove them the same way.
        text = text.replace("\x00", "")
    return text


def parse(command: str | bytes, *, home: str = "/root", cwd: str | None = None) -> ParseResult:
    """Every command ``command`` would execute, normalised, with flags describing the input.

    ``home`` resolves ``~`` and ``$HOME``; ``cwd`` (absolute) resolves relative ``..`` paths.
    Never raises: an internal failure returns a result flagged ``parse_error``.
    """
    flags: set[str] = set()
    try:
        text = _decode_input(command, flags)
    except Exception:
        logger.exception("could not decode command input")
        return ParseResult(source="", flags={"binary", "parse_error"}, errors=["undecodable input"])
    source = text
    encoded = text.encode("utf-8", "replace")
    errors: list[str] = []
    if len(encoded) > MAX_SOURCE_BYTES:
        flags.update({"too_large", "truncated"})
        errors.append(f"command is {len(encoded)} bytes; only the first {MAX_SOURCE_BYTES} were analysed")
        source = encoded[:MAX_SOURCE_BYTES].decode("utf-8", "ignore")
    result = ParseResult(source=source, flags=flags, errors=errors)
    if not source.strip():
        result.flags.add("empty")
        return result
    parse_text = source
    if len(encoded) > MAX_PARSE_BYTES:
        flags.update({"too_large", "truncated"})
        parse_text = encoded[:MAX_PARSE_BYTES].decode("utf-8", "ignore")
        if len(encoded) <= MAX_SOURCE_BYTES:
            errors.append(f"command is {len(encoded)} bytes; only the first {MAX_PARSE_BYTES} were parsed")
    if cwd is not None and not cwd.startswith("/"):
        cwd = None
    worker = analyzer.Analyzer(result, home, cwd)
    try:
        worker.run(parse_text.strip())
    except RecursionError:
        result.flags.update({"too_deep", "unresolved"})
        result.errors.append("input nests too deeply to analyse")
    except Exception as exc:
        logger.exception("parser failure")
        result.flags.update({"parse_error", "unresolved"})
        result.errors.append(f"internal parser error: {type(exc).__name__}")
    result.normalized = " ; ".join(unit for unit in worker.units if unit)
    if not result.commands and not result.flags & {"empty"} and not result.normalized:
        result.normalized = ""
    return result


__all__ = ["parse", "words"]
