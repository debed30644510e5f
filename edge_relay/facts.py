"""Facts about the host the relay runs on: sent in ``hello``/enrollment and fed to Shield.

Reads only harmless, world-readable system information (uname, /proc/meminfo,
/etc/os-release); never environment variables, which may hold secrets.
"""

from __future__ import annotations

import getpass
import os
import platform
import socket
from importlib import metadata
from pathlib import Path
from typing import Any


def relay_version() -> str:
    """The installed FlowLink version (the relay ships in the same distribution)."""
    return metadata.version("flowlink")


def _memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _os_release() -> str | None:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def home_directory() -> str:
    return os.path.expanduser("~")


def collect_facts() -> dict[str, Any]:
    """Host facts as plain JSON-able data."""
    return {
        "hostname": socket.gethostname(),
        "os": platform.system().lower(),
        "os_release": _os_release(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "python": platform.python_version(),
        "user": current_user(),
        "uid": os.getuid(),
        "home": home_directory(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "relay_version": relay_version(),
    }
