"""The one typed settings object of a FlowLink process, read from the environment once.

Every environment variable FlowLink reads is named here and nowhere else. Endpoints are
never hard-coded: boto3 honours ``AWS_ENDPOINT_URL`` (moto, LocalStack or AWS), and the
few FlowLink URLs below are configuration too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache

ENV_ENVIRONMENT = "FLOWLINK_ENV"  # "local" (dev defaults allowed) or "aws"
ENV_TABLE_PREFIX = "FLOWLINK_TABLE_PREFIX"
ENV_REGION = "AWS_REGION"
ENV_DEFAULT_REGION = "AWS_DEFAULT_REGION"
ENV_AWS_ENDPOINT = "AWS_ENDPOINT_URL"
ENV_WS_MANAGEMENT_URL = "FLOWLINK_WS_MANAGEMENT_URL"  # API Gateway management API base (https://id.execute-api…/stage)
ENV_WS_URL = "FLOWLINK_WS_URL"  # the URL relays dial (wss://… or ws://127.0.0.1:9080/ws)
ENV_API_URL = "FLOWLINK_API_URL"  # public base URL of the HTTP API
ENV_API_KEY = "FLOWLINK_API_KEY"  # the CLI's key for the HTTP API (else .flowlink/local.json)
ENV_SIGNING_KEY = "FLOWLINK_SIGNING_KEY"  # Ed25519 private key, PEM (envelopes, grants, checkpoints)
ENV_SIGNING_KEY_FILE = "FLOWLINK_SIGNING_KEY_FILE"
ENV_WITNESS_BUCKET = "FLOWLINK_WITNESS_BUCKET"
ENV_WITNESS_HMAC_KEY = "FLOWLINK_WITNESS_HMAC_KEY"
ENV_WITNESS_WEBHOOK = "FLOWLINK_WITNESS_WEBHOOK_URL"
ENV_STATE_MACHINE_ARN = "FLOWLINK_APPROVAL_STATE_MACHINE_ARN"
ENV_TELEGRAM_API_BASE = "TELEGRAM_API_BASE"
ENV_TELEGRAM_BOT_TOKEN = "TELEGRAM_BOT_TOKEN"
ENV_TELEGRAM_WEBHOOK_SECRET = "TELEGRAM_WEBHOOK_SECRET"
ENV_EXEC_WAIT_SECONDS = "FLOWLINK_EXEC_WAIT_SECONDS"
ENV_SEMANTIC = "FLOWLINK_SEMANTIC"  # "1" to run Shield level 2 in this process
ENV_MAX_BODY_BYTES = "FLOWLINK_MAX_BODY_BYTES"
# Local stack only: the secret its management API emulation (/@connections) requires of callers.
ENV_LOCAL_MANAGEMENT_TOKEN = "FLOWLINK_LOCAL_MANAGEMENT_TOKEN"

TABLE_NAMES = (
    "orgs",
    "api_keys",
    "agents",
    "connections",
    "commands",
    "enrollments",
    "audit",
    "approvals",
    "secrets",
)


class SettingsError(ValueError):
    """Raised at start-up when the environment is missing or contradicts a required setting."""


@dataclass(frozen=True)
class Settings:
    environment: str = "local"
    table_prefix: str = "flowlink-local"
    region: str = "us-east-1"
    aws_endpoint: str | None = None
    ws_management_url: str | None = None
    ws_url: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    signing_key_pem: str | None = None
    signing_key_file: str | None = None
    witness_bucket: str | None = None
    witness_hmac_key: str | None = None
    witness_webhook_url: str | None = None
    approval_state_machine_arn: str | None = None
    telegram_api_base: str = "https://api.telegram.org"
    telegram_bot_token: str | None = None
    telegram_webhook_secret: str | None = None
    exec_wait_seconds: float = 25.0
    semantic: bool = False
    max_body_bytes: int = 1024 * 1024
    local_management_token: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        return self.environment == "local"

    def table(self, name: str) -> str:
        """Physical DynamoDB table name for a logical table (see docs/contracts.md §3)."""
        if name not in TABLE_NAMES:
            raise SettingsError(f"unknown table {name!r}")
        return f"{self.table_prefix}-{name}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``).

        Raises SettingsError when a value is malformed, or when a production
        environment lacks a setting that only development may default. The signing key
        is not among those: most functions never sign, so only the code that signs asks
        for it (``flowlink.relays.load_signing_key`` raises ServiceMisconfigured, the audit
        checkpoint signer AuditMisconfigured, outside local mode without a key).
        """
        env = os.environ if env is None else env
        environment = env.get(ENV_ENVIRONMENT, "local").strip() or "local"
        if environment not in ("local", "aws"):
            raise SettingsError(f"{ENV_ENVIRONMENT} must be 'local' or 'aws', not {environment!r}")
        try:
            wait = float(env.get(ENV_EXEC_WAIT_SECONDS, "25"))
            max_body = int(env.get(ENV_MAX_BODY_BYTES, str(1024 * 1024)))
        except ValueError as exc:
            raise SettingsError(f"malformed numeric setting: {exc}") from exc
        settings = cls(
            environment=environment,
            table_prefix=env.get(ENV_TABLE_PREFIX, "flowlink-local"),
            region=env.get(ENV_REGION) or env.get(ENV_DEFAULT_REGION) or "us-east-1",
            aws_endpoint=env.get(ENV_AWS_ENDPOINT) or None,
            ws_management_url=env.get(ENV_WS_MANAGEMENT_URL) or None,
            ws_url=env.get(ENV_WS_URL) or None,
            api_url=env.get(ENV_API_URL) or None,
            api_key=env.get(ENV_API_KEY) or None,
            signing_key_pem=env.get(ENV_SIGNING_KEY) or None,
            signing_key_file=env.get(ENV_SIGNING_KEY_FILE) or None,
            witness_bucket=env.get(ENV_WITNESS_BUCKET) or None,
            witness_hmac_key=env.get(ENV_WITNESS_HMAC_KEY) or None,
            witness_webhook_url=env.get(ENV_WITNESS_WEBHOOK) or None,
            approval_state_machine_arn=env.get(ENV_STATE_MACHINE_ARN) or None,
            telegram_api_base=(env.get(ENV_TELEGRAM_API_BASE) or "https://api.telegram.org").rstrip("/"),
            telegram_bot_token=env.get(ENV_TELEGRAM_BOT_TOKEN) or None,
            telegram_webhook_secret=env.get(ENV_TELEGRAM_WEBHOOK_SECRET) or None,
            exec_wait_seconds=wait,
            semantic=env.get(ENV_SEMANTIC, "0") == "1",
            max_body_bytes=max_body,
            local_management_token=env.get(ENV_LOCAL_MANAGEMENT_TOKEN) or None,
        )
        if not settings.is_local:
            missing = [
                name
                for name, value in (
                    (ENV_WS_MANAGEMENT_URL, settings.ws_management_url),
                    (ENV_WS_URL, settings.ws_url),
                )
                if not value
            ]
            if missing:
                raise SettingsError("missing required settings outside local mode: " + ", ".join(missing))
        return settings


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once (tests build their own with ``Settings.from_env``)."""
    return Settings.from_env()
