"""The relay's native operations: ``read``, ``list`` and ``sysinfo``, done in-process.

These never spawn a shell (nothing to inject into), but they are still judged by Shield
before they run (see ``edge_relay.judge``). Results use the same shape as ``exec``:
``read`` puts the file content in stdout (base64 when it is not UTF-8 text, with
``encoding: "base64"``); ``list`` and ``sysinfo`` put JSON in stdout.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import time
from datetime import UTC, datetime
from typing import Any

from edge_relay.executor import STATUS_COMPLETED, STATUS_FAILED, ExecOutcome

MAX_LIST_ENTRIES = 10_000


def resolve_path(path: Any, cwd: str) -> str:
    """Absolute, normalised path (relative paths are taken from the command's cwd).

    Raises ValueError for a missing or non-string path.
    """
    if not isinstance(path, str) or not path or "\0" in path:
        raise ValueError("a non-empty path is required")
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def read_file(path: str, *, cap: int) -> tuple[ExecOutcome, str]:
    """Read up to ``cap`` bytes of a regular file. Returns (outcome, encoding)."""
    started = time.monotonic()
    try:
        # O_NONBLOCK: opening a FIFO must not hang the relay; only regular files are read.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return ExecOutcome(STATUS_FAILED, None, error=f"not a regular file: {path}"), "utf-8"
            os.set_blocking(fd, True)
            data = handle.read(cap + 1)
    except FileNotFoundError:
        return ExecOutcome(STATUS_FAILED, None, error=f"no such file: {path}"), "utf-8"
    except IsADirectoryError:
        return ExecOutcome(STATUS_FAILED, None, error=f"is a directory: {path}"), "utf-8"
    except PermissionError:
        return ExecOutcome(STATUS_FAILED, None, error=f"permission denied: {path}"), "utf-8"
    except OSError as exc:
        return ExecOutcome(STATUS_FAILED, None, error=f"cannot read {path}: {exc.strerror or exc}"), "utf-8"
    truncated = len(data) > cap
    data = data[:cap]
    encoding = "utf-8"
    text: str | None = None
    if b"\0" not in data:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A cut at the cap may split one multi-byte character: that is still text.
            if truncated and exc.start >= len(data) - 3:
                try:
                    text = data[: exc.start].decode("utf-8")
                except UnicodeDecodeError:
                    text = None
    if text is None:
        text = base64.b64encode(data).decode("ascii")
        encoding = "base64"
    return ExecOutcome(STATUS_COMPLETED, 0, text, "", _elapsed_ms(started), truncated), encoding


def _entry_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISLNK(mode):
        return "symlink"
    return "other"


def list_directory(path: str, *, max_entries: int = MAX_LIST_ENTRIES) -> ExecOutcome:
    """Directory listing as JSON in stdout: {path, entries: [{name, type, size, mode, mtime}]}."""
    started = time.monotonic()
    entries: list[dict[str, Any]] = []
    truncated = False
    try:
        with os.scandir(path) as iterator:
            for entry in iterator:
                if len(entries) >= max_entries:
                    truncated = True
                    break
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    entries.append({"name": entry.name, "type": "unknown"})
                    continue
                entries.append(
                    {
                        "name": entry.name,
                        "type": _entry_type(info.st_mode),
                        "size": info.st_size,
                        "mode": stat.filemode(info.st_mode),
                        "mtime": datetime.fromtimestamp(info.st_mtime, UTC)
                        .isoformat()
                        .replace("+00:00", "Z"),
                    }
                )
    except FileNotFoundError:
        return ExecOutcome(STATUS_FAILED, None, error=f"no such directory: {path}")
    except NotADirectoryError:
        return ExecOutcome(STATUS_FAILED, None, error=f"not a directory: {path}")
    except PermissionError:
        return ExecOutcome(STATUS_FAILED, None, error=f"permission denied: {path}")
    except OSError as exc:
        return ExecOutcome(STATUS_FAILED, None, error=f"cannot list {path}: {exc.strerror or exc}")
    entries.sort(key=lambda item: item["name"])
    body = json.dumps({"path": path, "entries": entries, "truncated": truncated})
    return ExecOutcome(STATUS_COMPLETED, 0, body, "", _elapsed_ms(started), truncated)


def sysinfo(facts: dict[str, Any]) -> ExecOutcome:
    """Host facts plus load and uptime as JSON in stdout."""
    started = time.monotonic()
    info = dict(facts)
    try:
        info["load_average"] = list(os.getloadavg())
    except OSError:
        info["load_average"] = None
    try:
        with open("/proc/uptime") as handle:
            info["uptime_seconds"] = float(handle.read().split()[0])
    except (OSError, ValueError, IndexError):
        info["uptime_seconds"] = None
    try:
        usage = os.statvfs("/")
        info["root_disk"] = {
            "total_bytes": usage.f_blocks * usage.f_frsize,
            "free_bytes": usage.f_bavail * usage.f_frsize,
        }
    except OSError:
        info["root_disk"] = None
    return ExecOutcome(STATUS_COMPLETED, 0, json.dumps(info), "", _elapsed_ms(started), False)
