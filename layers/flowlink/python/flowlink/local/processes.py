"""Child processes of the local stack, each in its own process group.

Every component (moto, gateway, relay) runs as a child started with
``start_new_session=True``, so stopping it signals the whole group: a uvicorn worker or a
command the relay is running dies with its parent and nothing is orphaned. On Linux the
child also asks the kernel for SIGTERM when the orchestrator dies (``PR_SET_PDEATHSIG``),
which covers a ``kill -9`` of ``flowlink local up`` itself.

Output goes to one log file per component in the state dir, never to the terminal of the
person running ``make up``.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class PortInUseError(RuntimeError):
    """A port the stack needs is taken; ``port`` and ``what`` name it."""

    def __init__(self, port: int, what: str, host: str = "127.0.0.1"):
        super().__init__(
            f"port {port} ({what}) on {host} is already in use; stop whatever listens there "
            f"or choose another port"
        )
        self.port = port
        self.what = what


class ComponentFailedError(RuntimeError):
    """A child process exited or never became ready; the message quotes its log tail."""


def ensure_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Raise PortInUseError when ``host:port`` cannot be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Without SO_REUSEADDR a port in TIME_WAIT would count as busy, which the servers
        # themselves (all of which set it) would not mind.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(port, what, host) from exc
            raise


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free at this moment (tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass  # best effort: process groups still cover the normal shutdown path


class ManagedProcess:
    """One component: started in a new session, stopped by signalling its process group."""

    def __init__(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | None = None):
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            log.write(f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
            )
        finally:
            log.close()
        logger.info("%s started (pid %d)", self.name, self.process.pid)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s ignored SIGTERM for %.0f s; killing it", self.name, timeout)
                self._signal_group(signal.SIGKILL)
                self.process.wait(timeout=5)
        # The leader is gone; stragglers in its group (children it spawned) go too.
        self._signal_group(signal.SIGKILL)
        code = self.process.returncode
        logger.info("%s stopped (exit %s)", self.name, code)
        return code

    def kill(self) -> None:
        """SIGKILL the whole group at once (crash simulation in tests)."""
        if self.process is not None:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)

    def _signal_group(self, signum: int) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def fail(self, reason: str) -> ComponentFailedError:
        return ComponentFailedError(f"{self.name} {reason}; last lines of {self.log_path}:\n{self.log_tail()}")
