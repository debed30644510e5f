"""Reading and writing the files subcommands are given, with one clear line on failure.

A missing directory, a directory given where a file belongs, or a permission problem is
a usage error, not a bug: these helpers turn the ``OSError`` into ``FileProblem`` with a
message naming the path and what to do, which commands print after their prefix and
exit 2 (usage error or unreadable file, as ``flowlink audit`` documents).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

EXIT_FILE = 2


class FileProblem(Exception):
    """A file a command reads or writes cannot be used; ``str()`` is the message."""


def describe(exc: OSError, path: str | os.PathLike[str], *, what: str, writing: bool) -> str:
    """One line saying why ``path`` (the ``what``, e.g. "output file") cannot be used."""
    path = Path(path)
    parent = path.parent
    if isinstance(exc, IsADirectoryError) or exc.errno == errno.EISDIR:
        return f"{what} {path} is a directory; give a file path"
    if isinstance(exc, NotADirectoryError) or exc.errno == errno.ENOTDIR:
        return f"cannot use {what} {path}: a part of that path is a file, not a directory"
    if isinstance(exc, FileNotFoundError):
        if writing:
            return f"cannot write {what} {path}: the directory {parent} does not exist (create it first)"
        return f"{what} {path} does not exist"
    if isinstance(exc, PermissionError):
        action = "write" if writing else "read"
        return f"cannot {action} {what} {path}: permission denied"
    return f"cannot {'write' if writing else 'read'} {what} {path}: {exc.strerror or exc}"


def read_bytes(path: str | os.PathLike[str], *, what: str = "file") -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise FileProblem(describe(exc, path, what=what, writing=False)) from None


def read_text(path: str | os.PathLike[str], *, what: str = "file") -> str:
    """The file decoded as UTF-8 (undecodable bytes are a FileProblem too)."""
    data = read_bytes(path, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FileProblem(f"{what} {path} is not UTF-8 text") from None


def open_text(path: str | os.PathLike[str], *, what: str = "file"):
    """``path`` opened for reading UTF-8 text (to stream a large file)."""
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise FileProblem(describe(exc, path, what=what, writing=False)) from None


def write_text(path: str | os.PathLike[str], content: str, *, what: str = "output file", mode: int | None = None) -> None:
    """Write ``content`` to ``path``; with ``mode``, a new file is created with that mode."""
    try:
        if mode is None:
            Path(path).write_text(content, encoding="utf-8")
            return
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(path, mode)
    except OSError as exc:
        raise FileProblem(describe(exc, path, what=what, writing=True)) from None


def make_directory(path: str | os.PathLike[str], *, what: str = "output directory") -> Path:
    """``path`` as a directory, created with its parents if missing."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileProblem(f"{what} {directory} exists and is not a directory") from None
    except (PermissionError, NotADirectoryError) as exc:
        raise FileProblem(describe(exc, directory, what=what, writing=True)) from None
    except OSError as exc:
        raise FileProblem(f"cannot create {what} {directory}: {exc.strerror or exc}") from None
    return directory
