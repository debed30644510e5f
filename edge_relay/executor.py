"""Runs one shell command for the relay: own process group, timeout, output cap, minimal env.

Blocking by design (the daemon calls it from a worker thread): plain ``subprocess`` with a
selector loop is easier to reason about than asyncio child watchers, and keeps this module
testable without an event loop.

- The command runs as ``bash -c CMD`` (``/bin/sh`` when bash is missing) in a NEW session,
  so its process group holds every child and grandchild it starts.
- On timeout the whole group gets SIGTERM, then SIGKILL after the grace period; the
  result only comes back once nothing is left alive in the group.
- stdout and stderr are each kept up to ``output_cap`` bytes; the rest is drained and
  dropped (so the child never blocks on a full pipe) and ``truncated`` is set.
- The environment is a minimal safe base plus the envelope's variables; variables that
  change what a shell or the dynamic loader executes behind Shield's back are refused.

It never logs command text or output.
"""

from __future__ import annotations

import logging
import os
import pwd
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHELL_CANDIDATES = ("/bin/bash", "/usr/bin/bash", "/bin/sh")

# Variables that would make the shell or the loader run code Shield never saw: refused
# outright instead of silently dropped, so the agent learns why.
FORBIDDEN_ENV_NAMES = frozenset(
    {
        "LD_PRELOAD",
        "LD_LIBRARY_PATH",
        "LD_AUDIT",
        "BASH_ENV",
        "ENV",
        "PROMPT_COMMAND",
        "SHELLOPTS",
        "BASHOPTS",
        "PS4",
        "IFS",
        "CDPATH",
        "GLOBIGNORE",
        "PYTHONSTARTUP",
        "PERL5OPT",
        "NODE_OPTIONS",
    }
)
FORBIDDEN_ENV_PREFIXES = ("BASH_FUNC_", "LD_")

STATUS_COMPLETED = "completed"
STATUS_TIMEOUT = "timeout"
STATUS_FAILED = "failed"


class InvalidEnvironmentError(ValueError):
    """The envelope's environment contains a name or value the relay will not pass on."""


@dataclass
class ExecOutcome:
    """What happened to one command (the daemon turns it into a ``result`` message)."""

    status: str
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration_ms: int = 0
    truncated: bool = False
    error: str | None = None  # why it failed/was killed; safe to report back


def find_shell() -> str:
    for candidate in SHELL_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError("no shell found (tried " + ", ".join(SHELL_CANDIDATES) + ")")


def base_environment() -> dict[str, str]:
    """The environment every command starts from: nothing inherited from the relay itself."""
    try:
        entry = pwd.getpwuid(os.getuid())
        home, user, shell = entry.pw_dir, entry.pw_name, entry.pw_shell or "/bin/sh"
    except KeyError:
        home, user, shell = "/", str(os.getuid()), "/bin/sh"
    return {
        "PATH": SAFE_PATH,
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": shell,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "FLOWLINK_RELAY": "1",
    }


def build_environment(extra: Mapping[str, object] | None) -> dict[str, str]:
    """Base env + the envelope's variables. Raises InvalidEnvironmentError for a bad one."""
    env = base_environment()
    for name, value in (extra or {}).items():
        if not isinstance(name, str) or not name or "=" in name or "\0" in name:
            raise InvalidEnvironmentError(f"invalid environment variable name {name!r}")
        if name in FORBIDDEN_ENV_NAMES or name.startswith(FORBIDDEN_ENV_PREFIXES):
            raise InvalidEnvironmentError(f"environment variable {name} is not allowed (it bypasses Shield)")
        if not isinstance(value, str) or "\0" in value:
            raise InvalidEnvironmentError(f"environment variable {name} must be a string without NUL")
        env[name] = value
    return env


class _CappedBuffer:
    def __init__(self, cap: int):
        self.cap = cap
        self.chunks: list[bytes] = []
        self.kept = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.cap - self.kept
        if room > 0:
            piece = data[:room]
            self.chunks.append(piece)
            self.kept += len(piece)
            self.dropped += len(data) - len(piece)
        else:
            self.dropped += len(data)

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _Run:
    process: subprocess.Popen
    kill_reason: str | None = None
    killer: threading.Thread | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ProcessRunner:
    """Runs commands and can kill every group it started (used at shutdown)."""

    def __init__(self, *, output_cap: int, kill_grace: float, drain_seconds: float = 0.5):
        self.output_cap = output_cap
        self.kill_grace = kill_grace
        # How long to keep reading after the shell exited while a background child still
        # holds the pipes open (`cmd &`): the result must not wait for it.
        self.drain_seconds = drain_seconds
        self._runs: dict[int, _Run] = {}
        self._lock = threading.Lock()

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._runs)

    def run_shell(self, command: str, *, cwd: str, env: Mapping[str, str], timeout: float) -> ExecOutcome:
        """Run ``command`` and return its outcome; never raises for command failures."""
        started = time.monotonic()
        if not os.path.isdir(cwd):
            return ExecOutcome(STATUS_FAILED, None, error=f"working directory does not exist: {cwd}")
        try:
            shell = find_shell()
            process = subprocess.Popen(
                [shell, "-c", command],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return ExecOutcome(
                STATUS_FAILED, None, error=f"could not start the command: {exc.strerror or exc}"
            )

        run = _Run(process)
        with self._lock:
            self._runs[process.pid] = run
        deadline_timer = threading.Timer(timeout, self._kill, args=(run, "timeout"))
        deadline_timer.daemon = True
        deadline_timer.start()
        try:
            stdout, stderr = self._collect(process)
            exit_code = process.wait()
        finally:
            deadline_timer.cancel()
            with self._lock:
                self._runs.pop(process.pid, None)
        with run.lock:
            killer, reason = run.killer, run.kill_reason
        if killer is not None:
            # The result must not come back while anything of the group is still alive.
            killer.join()
        duration_ms = int((time.monotonic() - started) * 1000)
        truncated = bool(stdout.dropped or stderr.dropped)
        if reason == "timeout":
            return ExecOutcome(
                STATUS_TIMEOUT,
                exit_code,
                stdout.text(),
                stderr.text(),
                duration_ms,
                truncated,
                error=f"timed out after {timeout:g} s; process group killed",
            )
        if reason is not None:
            return ExecOutcome(
                STATUS_FAILED, exit_code, stdout.text(), stderr.text(), duration_ms, truncated, error=reason
            )
        return ExecOutcome(STATUS_COMPLETED, exit_code, stdout.text(), stderr.text(), duration_ms, truncated)

    def kill_all(self, reason: str) -> int:
        """Kill every running command's group (graceful shutdown); returns how many."""
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            self._kill(run, reason)
        return len(runs)

    def _collect(self, process: subprocess.Popen) -> tuple[_CappedBuffer, _CappedBuffer]:
        buffers = {
            process.stdout: _CappedBuffer(self.output_cap),
            process.stderr: _CappedBuffer(self.output_cap),
        }
        selector = selectors.DefaultSelector()
        for stream in buffers:
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, selectors.EVENT_READ)
        exited_at: float | None = None
        try:
            while selector.get_map():
                # Normally EOF wakes us as soon as the shell exits; the timeout only matters
                # when a background child keeps the pipes open after the shell is gone.
                events = selector.select(timeout=0.1)
                for key, _ in events:
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if data:
                        buffers[key.fileobj].add(data)
                    else:
                        selector.unregister(key.fileobj)
                if events:
                    continue
                if process.poll() is not None:
                    now = time.monotonic()
                    exited_at = exited_at or now
                    if now - exited_at >= self.drain_seconds:
                        break
        finally:
            selector.close()
            for stream in buffers:
                stream.close()
        return buffers[process.stdout], buffers[process.stderr]

    def _kill(self, run: _Run, reason: str) -> None:
        with run.lock:
            if run.killer is not None:
                return
            run.kill_reason = reason
            run.killer = threading.Thread(target=self._kill_group, args=(run.process.pid,), daemon=True)
            run.killer.start()

    def _kill_group(self, pgid: int) -> None:
        logger.info("killing process group pgid=%d", pgid)
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + self.kill_grace
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        # SIGKILL cannot be ignored; wait briefly until the kernel has torn the group down.
        for _ in range(100):
            if not group_alive(pgid):
                return
            time.sleep(0.02)
