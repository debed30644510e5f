"""The one typed settings object of the edge relay, built from the environment and CLI args.

Every environment variable the relay reads is a constant below and nowhere else. Values
are validated once at start-up (``RelaySettings.from_env``): a malformed number or an
impossible combination raises ``RelaySettingsError`` instead of surfacing later as odd
behaviour in the daemon. Nothing here reads files or touches the network.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge_relay.errors import RelaySettingsError

ENV_STATE_DIR = "FLOWLINK_RELAY_STATE_DIR"
ENV_NAME = "FLOWLINK_RELAY_NAME"
ENV_HEALTH_HOST = "FLOWLINK_RELAY_HEALTH_HOST"
ENV_HEALTH_PORT = "FLOWLINK_RELAY_HEALTH_PORT"
ENV_HEARTBEAT_SECONDS = "FLOWLINK_RELAY_HEARTBEAT_SECONDS"
ENV_BACKOFF_BASE_SECONDS = "FLOWLINK_RELAY_BACKOFF_BASE_SECONDS"
ENV_BACKOFF_CAP_SECONDS = "FLOWLINK_RELAY_BACKOFF_CAP_SECONDS"
ENV_CONNECT_TIMEOUT_SECONDS = "FLOWLINK_RELAY_CONNECT_TIMEOUT_SECONDS"
ENV_OUTPUT_CAP_BYTES = "FLOWLINK_RELAY_OUTPUT_CAP_BYTES"
ENV_READ_CAP_BYTES = "FLOWLINK_RELAY_READ_CAP_BYTES"
ENV_KILL_GRACE_SECONDS = "FLOWLINK_RELAY_KILL_GRACE_SECONDS"
ENV_SHUTDOWN_GRACE_SECONDS = "FLOWLINK_RELAY_SHUTDOWN_GRACE_SECONDS"
ENV_MAX_TIMEOUT_SECONDS = "FLOWLINK_RELAY_MAX_TIMEOUT_SECONDS"
ENV_MAX_CONCURRENT = "FLOWLINK_RELAY_MAX_CONCURRENT_COMMANDS"
ENV_OUTBOX_RETENTION_SECONDS = "FLOWLINK_RELAY_OUTBOX_RETENTION_SECONDS"
ENV_HOST_ENVIRONMENT = "FLOWLINK_RELAY_HOST_ENVIRONMENT"  # "production", "staging", "dev": fed to Shield
ENV_LOG_LEVEL = "FLOWLINK_RELAY_LOG_LEVEL"

DEFAULT_STATE_DIR = "~/.flowlink/relay"
DEFAULT_HEALTH_HOST = "127.0.0.1"
DEFAULT_HEALTH_PORT = 9081


def default_state_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$FLOWLINK_RELAY_STATE_DIR`` when set, else ``~/.flowlink/relay``."""
    env = os.environ if env is None else env
    return Path(env.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR).expanduser()


@dataclass(frozen=True)
class RelaySettings:
    """Everything the relay daemon and CLI can be configured with.

    Durations are seconds, sizes bytes. ``health_port`` 0 asks the OS for a free port
    (the bound port is written to ``runtime.json`` in the state dir).
    """

    state_dir: Path
    name: str | None = None
    health_host: str = DEFAULT_HEALTH_HOST
    health_port: int = DEFAULT_HEALTH_PORT
    heartbeat_seconds: float = 20.0
    backoff_base_seconds: float = 0.5
    backoff_cap_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    output_cap_bytes: int = 1024 * 1024
    read_cap_bytes: int = 1024 * 1024
    kill_grace_seconds: float = 5.0
    shutdown_grace_seconds: float = 20.0
    max_timeout_seconds: float = 3600.0
    max_concurrent_commands: int = 8
    outbox_retention_seconds: float = 600.0
    host_environment: str | None = None
    log_level: str = "INFO"

    @property
    def identity_path(self) -> Path:
        return self.state_dir / "identity.json"

    @property
    def signing_key_path(self) -> Path:
        return self.state_dir / "signing_key.pem"

    @property
    def box_key_path(self) -> Path:
        return self.state_dir / "box_key.b64"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite3"

    @property
    def runtime_path(self) -> Path:
        return self.state_dir / "runtime.json"

    def with_overrides(self, **overrides: Any) -> RelaySettings:
        """A copy with the non-None overrides applied (CLI args win over the environment)."""
        changes = {key: value for key, value in overrides.items() if value is not None}
        if "state_dir" in changes:
            changes["state_dir"] = Path(changes["state_dir"]).expanduser()
        updated = replace(self, **changes)
        updated.validate()
        return updated

    def validate(self) -> None:
        """Raise RelaySettingsError when a value cannot work."""
        if not 0 <= self.health_port <= 65535:
            raise RelaySettingsError(f"health port must be 0-65535, not {self.health_port}")
        positive = {
            "heartbeat interval": self.heartbeat_seconds,
            "backoff base": self.backoff_base_seconds,
            "backoff cap": self.backoff_cap_seconds,
            "connect timeout": self.connect_timeout_seconds,
            "maximum command timeout": self.max_timeout_seconds,
        }
        for label, value in positive.items():
            if value <= 0:
                raise RelaySettingsError(f"{label} must be > 0, not {value}")
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise RelaySettingsError("backoff cap must not be smaller than the backoff base")
        for label, value in {
            "output cap": self.output_cap_bytes,
            "read cap": self.read_cap_bytes,
            "maximum concurrent commands": self.max_concurrent_commands,
        }.items():
            if value < 1:
                raise RelaySettingsError(f"{label} must be >= 1, not {value}")
        for label, value in {
            "kill grace": self.kill_grace_seconds,
            "shutdown grace": self.shutdown_grace_seconds,
            "outbox retention": self.outbox_retention_seconds,
        }.items():
            if value < 0:
                raise RelaySettingsError(f"{label} must be >= 0, not {value}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RelaySettings:
        """Build settings from ``env`` (default ``os.environ``); see the ENV_* constants.

        Raises RelaySettingsError for malformed or out-of-range values.
        """
        env = os.environ if env is None else env

        def number(name: str, default: float, kind: type = float) -> Any:
            raw = env.get(name)
            if raw is None or raw.strip() == "":
                return kind(default)
            try:
                return kind(raw)
            except ValueError as exc:
                raise RelaySettingsError(f"{name} must be a number, not {raw!r}") from exc

        settings = cls(
            state_dir=default_state_dir(env),
            name=env.get(ENV_NAME) or None,
            health_host=env.get(ENV_HEALTH_HOST) or DEFAULT_HEALTH_HOST,
            health_port=number(ENV_HEALTH_PORT, DEFAULT_HEALTH_PORT, int),
            heartbeat_seconds=number(ENV_HEARTBEAT_SECONDS, 20.0),
            backoff_base_seconds=number(ENV_BACKOFF_BASE_SECONDS, 0.5),
            backoff_cap_seconds=number(ENV_BACKOFF_CAP_SECONDS, 30.0),
            connect_timeout_seconds=number(ENV_CONNECT_TIMEOUT_SECONDS, 10.0),
            output_cap_bytes=number(ENV_OUTPUT_CAP_BYTES, 1024 * 1024, int),
            read_cap_bytes=number(ENV_READ_CAP_BYTES, 1024 * 1024, int),
            kill_grace_seconds=number(ENV_KILL_GRACE_SECONDS, 5.0),
            shutdown_grace_seconds=number(ENV_SHUTDOWN_GRACE_SECONDS, 20.0),
            max_timeout_seconds=number(ENV_MAX_TIMEOUT_SECONDS, 3600.0),
            max_concurrent_commands=number(ENV_MAX_CONCURRENT, 8, int),
            outbox_retention_seconds=number(ENV_OUTBOX_RETENTION_SECONDS, 600.0),
            host_environment=env.get(ENV_HOST_ENVIRONMENT) or None,
            log_level=(env.get(ENV_LOG_LEVEL) or "INFO").upper(),
        )
        settings.validate()
        return settings
