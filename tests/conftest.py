"""Suite-wide guard rails: no developer AWS config leaks in, unit tests cannot open sockets.

- Fake credentials and empty AWS config/credentials files are installed for the whole
  session (before any fixture builds a client), so a developer's ``~/.aws`` or
  ``AWS_PROFILE`` can never reach a test or, worse, a real account. ``AWS_ENDPOINT_URL``
  is deliberately left alone: the suite must run unchanged against LocalStack when a
  developer points it there (DESIGN §4).
- Model hubs are switched offline: nothing may download models or data at run time.
- Tests marked ``unit`` get ``socket.connect`` to internet addresses replaced by an error
  that names the test, so a "unit" test that talks to a server is caught at once.
- ``moto_endpoint``: a session-wide moto server on a free loopback port, for integration
  tests that only need *an* emulator (each test uses its own table prefix or names).
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

FAKE_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "SAM_CLI_TELEMETRY": "0",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
}
_LEAKY_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")


def pytest_configure(config: pytest.Config) -> None:
    # Session-wide, not a fixture: session-scoped fixtures and collection-time imports build
    # boto3 clients too, and they must never see the developer's real configuration.
    empty_config_dir = Path(tempfile.mkdtemp(prefix="flowlink-tests-aws-"))
    for name in ("config", "credentials"):
        (empty_config_dir / name).write_text("")
    os.environ["AWS_CONFIG_FILE"] = str(empty_config_dir / "config")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = str(empty_config_dir / "credentials")
    for name in _LEAKY_AWS_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(FAKE_AWS_ENVIRONMENT)


@pytest.fixture
def no_local_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Per-test variant for tests that change AWS variables themselves: fresh empty config files."""
    for name in ("config", "credentials"):
        (tmp_path / name).write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    for name in _LEAKY_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in FAKE_AWS_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return tmp_path


class SocketBlockedError(RuntimeError):
    """A test marked ``unit`` tried to open a network connection."""


@pytest.fixture(autouse=True)
def _block_sockets_in_unit_tests(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("unit") is None:
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    test_name = request.node.nodeid

    def guard(sock: socket.socket, address: object) -> None:
        # Unix sockets (asyncio's self-pipe, local IPC) are not network access.
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise SocketBlockedError(f"{test_name} is marked unit but connects to {address!r}; mark it integration")

    def connect(sock: socket.socket, address: object) -> None:
        guard(sock, address)
        return real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: object) -> int:
        guard(sock, address)
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a moto server shared by the session; honours an external ``AWS_ENDPOINT_URL``.

    When ``AWS_ENDPOINT_URL`` is set (LocalStack, a running `make up`), tests use it instead,
    so the same suite runs against any endpoint.
    """
    external = os.environ.get("AWS_ENDPOINT_URL")
    if external:
        yield external
        return
    import threading

    from flowlink.local.serialized import serialized_moto_server

    # DynamoDB requests are serialized as in the local stack, so conditions are atomic.
    server = serialized_moto_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_port
    # Step Functions executions call back to the server on $MOTO_PORT (DESIGN §4).
    os.environ["MOTO_PORT"] = str(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join()
