"""The CLI's HTTP client for the gateway's REST API, and where it finds its URL and key.

Order: ``--api-url``/``--api-key`` options, then FLOWLINK_API_URL / FLOWLINK_API_KEY (read
through flowlink.settings), then ``.flowlink/local.json`` written by `flowlink local up`
(which key it takes from there depends on the command: approver or admin).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import httpx

from flowlink.settings import Settings

LOCAL_STATE_FILE = Path(".flowlink") / "local.json"


class ApiError(Exception):
    """The gateway answered with an error (``status`` and its JSON ``detail``) or was unreachable."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", help="gateway base URL (default: FLOWLINK_API_URL or .flowlink/local.json)")
    parser.add_argument("--api-key", help="API key (default: FLOWLINK_API_KEY or .flowlink/local.json); prefer the env var")


def _local_state() -> dict[str, Any]:
    try:
        return json.loads(LOCAL_STATE_FILE.read_text())
    except (OSError, ValueError):
        return {}


class ApiClient:
    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0):
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, local_key_field: str) -> ApiClient:
        settings = Settings.from_env()
        state = _local_state()
        base = args.api_url or settings.api_url or state.get("api_url")
        key = args.api_key or settings.api_key or state.get(local_key_field)
        if not base or not key:
            raise ApiError(
                "no gateway configured: pass --api-url/--api-key, set FLOWLINK_API_URL/FLOWLINK_API_KEY, "
                "or run `make up` in this directory"
            )
        return cls(base, key)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ApiError(f"gateway unreachable: {type(exc).__name__}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {"detail": response.text[:300]}
        if response.status_code >= 400:
            detail = body.get("detail") if isinstance(body, dict) else body
            raise ApiError(f"HTTP {response.status_code}: {detail}", response.status_code)
        return body
