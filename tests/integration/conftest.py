"""Fixtures for the gateway's integration tests: a moto server, per-test tables, a live gateway.

- ``moto_server``: the session's moto server (``ThreadedMotoServer`` on a free loopback
  port, ``MOTO_PORT`` set; see ``tests/conftest.py::moto_endpoint``), or the endpoint in
  ``AWS_ENDPOINT_URL`` when a developer points the suite elsewhere.
- ``aws_env``: fake credentials, empty AWS config files and ``AWS_ENDPOINT_URL`` for this test.
- ``gateway_stack``: the contracts §3 tables under a fresh prefix (created with boto3 here,
  deliberately small, unless a module overrides ``create_gateway_tables``; the real stack is
  provisioned from template.yaml elsewhere), the
  FlowLink environment for it, and the audit writer pointed at it.
- ``live_gateway``: the local gateway app (``create_local_app``) served by uvicorn on a free
  port in a background thread, with its WebSocket URL and management API configured.
- ``FakeRelay``: a tiny relay (websockets, sync client in a thread) that verifies envelopes
  with ``relay_protocol.verify_envelope`` and answers with canned results.
- ``sfn_moto``: a moto server of the module's own that really executes state machines, and
  ``provision_with_bridge``, which provisions template.yaml on it with the machines' Lambda
  tasks running our handlers in-process. A module that wants ``gateway_stack`` and
  ``live_gateway`` on it overrides ``moto_server`` to return ``sfn_moto``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flowlink import audit, relay_protocol
from flowlink.audit.store import AuditStore
from flowlink.bootstrap import bootstrap_local
from flowlink.local import lambda_bridge
from flowlink.local.provision import ProvisionReport, enable_stepfunctions_execution, provision
from flowlink.settings import Settings
from flowlink.storage import Store
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

# docs/contracts.md §3: (hash key, range key, {index: (hash, range)}) per table this suite uses.
TABLES: dict[str, tuple[tuple[str, str], tuple[str, str] | None, dict[str, tuple[str, str]]]] = {
    "orgs": (("org_id", "S"), None, {}),
    "api_keys": (("key_hash", "S"), None, {"by_org": ("org_id", "created_at")}),
    "agents": (("relay_id", "S"), None, {"by_org": ("org_id", "name")}),
    "connections": (("connection_id", "S"), None, {}),
    "commands": (
        ("command_id", "S"),
        None,
        {"by_agent": ("agent_key", "created_at"), "by_org": ("org_id", "created_at")},
    ),
    "enrollments": (("token_hash", "S"), None, {}),
    "audit": (("org_id", "S"), ("seq", "N"), {}),
}


def create_tables(settings: Settings) -> None:
    client = boto3.client("dynamodb", region_name=settings.region)
    for name, (hash_key, range_key, indexes) in TABLES.items():
        attributes = {hash_key[0]: hash_key[1]}
        key_schema = [{"AttributeName": hash_key[0], "KeyType": "HASH"}]
        if range_key:
            attributes[range_key[0]] = range_key[1]
            key_schema.append({"AttributeName": range_key[0], "KeyType": "RANGE"})
        extra: dict[str, Any] = {}
        if indexes:
            extra["GlobalSecondaryIndexes"] = []
            for index_name, (index_hash, index_range) in indexes.items():
                attributes.setdefault(index_hash, "S")
                attributes.setdefault(index_range, "S")
                extra["GlobalSecondaryIndexes"].append(
                    {
                        "IndexName": index_name,
                        "KeySchema": [
                            {"AttributeName": index_hash, "KeyType": "HASH"},
                            {"AttributeName": index_range, "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                )
        client.create_table(
            TableName=settings.table(name),
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": k, "AttributeType": t} for k, t in attributes.items()],
            KeySchema=key_schema,
            **extra,
        )


@pytest.fixture
def moto_server(moto_endpoint: str) -> str:
    return moto_endpoint


@pytest.fixture
def aws_env(moto_server: str, no_local_aws_config, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    return moto_server


@dataclass
class GatewayStack:
    settings: Settings
    store: Store
    monkeypatch: pytest.MonkeyPatch

    def configure(self, **env: str) -> Settings:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)
        self.settings = Settings.from_env()
        return self.settings

    def org(self, name: str) -> dict[str, Any]:
        return bootstrap_local(self.settings, org_name=name, store=self.store)


@pytest.fixture
def create_gateway_tables():
    """How ``gateway_stack`` creates its tables: ``create_tables`` (a module may override this
    fixture, e.g. to provision the whole template.yaml)."""
    return create_tables


@pytest.fixture
def gateway_stack(
    aws_env: str, create_gateway_tables, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> Iterator[GatewayStack]:
    prefix = "gw-" + secrets.token_hex(4)
    monkeypatch.setenv("FLOWLINK_ENV", "local")
    monkeypatch.setenv("FLOWLINK_TABLE_PREFIX", prefix)
    monkeypatch.setenv("FLOWLINK_SIGNING_KEY_FILE", str(tmp_path / "gateway-signing.pem"))
    monkeypatch.setenv("FLOWLINK_EXEC_WAIT_SECONDS", "8")
    monkeypatch.setenv("FLOWLINK_WS_URL", "ws://127.0.0.1:1/ws")
    settings = Settings.from_env()
    create_gateway_tables(settings)
    audit.set_default_store(AuditStore(settings=settings))
    try:
        yield GatewayStack(settings=settings, store=Store(settings), monkeypatch=monkeypatch)
    finally:
        audit.set_default_store(None)


@dataclass
class LiveGateway:
    base_url: str
    ws_url: str
    stack: GatewayStack
    app: Any
    port: int = 0
    _server: Any = None
    _thread: threading.Thread | None = None
    _socket: socket.socket | None = None
    management_token: str = field(default_factory=lambda: secrets.token_urlsafe(16))

    @property
    def mcp_url(self) -> str:
        return self.base_url + "/mcp"

    def admin(self, org: dict[str, Any]) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {org['admin_key']}"})

    def start(self) -> None:
        """Serve a fresh app (as a restarted process would) on this gateway's port."""
        from flowlink.gateway.local import create_local_app

        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", self.port))
        self.port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.stack.configure(FLOWLINK_WS_URL=self.ws_url, FLOWLINK_WS_MANAGEMENT_URL=self.base_url,
                             FLOWLINK_LOCAL_MANAGEMENT_TOKEN=self.management_token)
        self.app = create_local_app(self.stack.settings)
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("gateway did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def live_gateway(gateway_stack: GatewayStack) -> Iterator[LiveGateway]:
    """The local gateway app served by uvicorn in a thread on a free port (restartable)."""
    gateway = LiveGateway(base_url="", ws_url="", stack=gateway_stack, app=None)
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _b64_public(key: Any) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@dataclass
class FakeRelay:
    """A minimal relay: enrolls, connects, verifies envelopes and answers with canned results.

    ``mode`` per command text: ``echo X`` → stdout ``X\\n``; ``exit N`` → exit code N;
    ``relay-refuse ...`` → refused with a reason; ``hang ...`` → ack but never a result.
    ``read``/``list``/``sysinfo`` return fixed contents. Received envelopes' claims are kept
    in ``claims`` (so tests can count deliveries).
    """

    gateway: LiveGateway
    enrollment_token: str
    name: str = "fake-01"
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    identity: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    answers: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duplicate_results: bool = False
    ignore_commands: bool = False
    _socket: Any = None
    _sockets: ExitStack = field(default_factory=ExitStack)
    _thread: threading.Thread | None = None
    _welcome: threading.Event = field(default_factory=threading.Event)

    def enroll(self) -> dict[str, Any]:
        response = httpx.post(
            self.gateway.base_url + "/api/v1/relays/enroll",
            json={
                "token": self.enrollment_token,
                "name": self.name,
                "hostname": self.name + ".example",
                "facts": {"os": "linux", "hostname": self.name + ".example"},
                "signing_public_key": _b64_public(self.signing_key),
                "box_public_key": _b64_public(X25519PrivateKey.generate()),
            },
        )
        response.raise_for_status()
        self.identity = response.json()
        return self.identity

    def connect(self, *, hello_key: str | None = None) -> FakeRelay:
        self._welcome.clear()
        self._socket = self._sockets.enter_context(
            ws_connect(
                self.identity["ws_url"],
                additional_headers={
                    "Authorization": f"Bearer {self.identity['relay_credential']}",
                    "X-Flowlink-Relay-Id": self.identity["relay_id"],
                },
            )
        )
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        self.send(
            {
                "action": "hello",
                "relay_id": self.identity["relay_id"],
                "version": "test",
                "facts": {"os": "linux", "hostname": self.name + ".example"},
                "attestation": None,
                "signing_public_key": hello_key or _b64_public(self.signing_key),
            }
        )
        return self

    def wait_welcome(self, timeout: float = 10) -> bool:
        return self._welcome.wait(timeout)

    def send(self, message: dict[str, Any]) -> None:
        self._socket.send(json.dumps(message))

    def answers_of(self, kind: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The gateway messages of type ``kind`` received so far, waiting for at least one."""
        return wait_for(lambda: [a for a in self.answers if a.get("type") == kind], timeout)

    def close(self) -> None:
        self._sockets.close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        public_key = relay_protocol.public_key_from_pem(self.identity["gateway_public_key"])
        try:
            for raw in self._socket:
                message = json.loads(raw)
                self.answers.append(message)
                if message.get("type") == "welcome":
                    self._welcome.set()
                if message.get("type") != "command":
                    continue
                try:
                    claims = relay_protocol.verify_envelope(
                        message["envelope"], public_key, relay_id=self.identity["relay_id"]
                    )
                except relay_protocol.EnvelopeError as exc:
                    self.errors.append(exc.reason)
                    continue
                self.claims.append(claims)
                if not self.ignore_commands:
                    self._answer(claims)
        except ConnectionClosed:
            return

    def _answer(self, claims: dict[str, Any]) -> None:
        command_id = claims["jti"]
        self.send({"action": "ack", "command_id": command_id})
        op, command = claims["op"], claims.get("command", "")
        result: dict[str, Any] = {
            "action": "result",
            "command_id": command_id,
            "status": "completed",
            "exit_code": 0,
            "stdout": "",
            "stderr": "",
            "duration_ms": 3,
            "truncated": False,
            "relay_verdict": {"decision": "auto", "score": 0, "reasons": []},
        }
        if op == "exec" and command.startswith("hang"):
            return
        if op == "exec" and command.startswith("echo "):
            result["stdout"] = command[5:] + "\n"
        elif op == "exec" and command.startswith("exit "):
            result["exit_code"] = int(command.split()[1])
        elif op == "exec" and command.startswith("relay-refuse"):
            result.update(
                status="refused",
                exit_code=None,
                relay_verdict={"decision": "deny", "score": 95, "reasons": ["relay policy forbids this"]},
            )
        elif op == "exec" and command.startswith("printenv "):
            result["stdout"] = claims["env"].get(command.split()[1], "") + "\n"
        elif op == "read":
            result["stdout"] = f"contents of {claims['path']}\n"
        elif op == "list":
            result["stdout"] = "a.txt\nb.txt\n"
        elif op == "sysinfo":
            result["stdout"] = json.dumps({"os": "linux", "kernel": "6.18", "cpus": 2})
        self.send(result)
        if self.duplicate_results:
            self.send({**result, "stdout": "a repeated, different result"})


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
def make_relay(live_gateway: LiveGateway):
    """Factory of FakeRelay objects for an org (enroll/connect them yourself)."""
    made: list[FakeRelay] = []

    def make(org: dict[str, Any], name: str = "fake-01") -> FakeRelay:
        relay = FakeRelay(live_gateway, org["enrollment_token"], name=name)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        relay.close()


@pytest.fixture
def connected_relay(live_gateway: LiveGateway) -> Iterator[tuple[dict[str, Any], FakeRelay]]:
    """An org (bootstrap keys) with one fake relay enrolled, connected and welcomed."""
    org = live_gateway.stack.org("acme")
    relay = FakeRelay(live_gateway, org["enrollment_token"])
    relay.enroll()
    relay.connect()
    assert relay.wait_welcome(), "relay was not welcomed"
    try:
        yield org, relay
    finally:
        relay.close()


EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"


@pytest.fixture
def load_event():
    """Load a sample event from events/ (a fresh copy each call, safe to modify)."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS_DIR / name).read_text())

    return load


@dataclass
class FakeLambdaContext:
    """The attributes of a Lambda context that Powertools' inject_lambda_context reads."""

    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    aws_request_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(scope="module")
def sfn_moto() -> Iterator[str]:
    """A moto server of this module's own that executes state machines.

    Its own because switching Step Functions execution on swaps moto's backends (DESIGN §4:
    switch first, then provision) and because the interpreter calls back to the server that
    ``MOTO_PORT`` names, which this sets while the module runs.
    """
    from flowlink.local.serialized import serialized_moto_server

    server = serialized_moto_server("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_port}"
    saved = os.environ.get("MOTO_PORT")
    os.environ["MOTO_PORT"] = str(server.server_port)
    enable_stepfunctions_execution(endpoint)
    try:
        yield endpoint
    finally:
        server.shutdown()
        thread.join()
        if saved is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = saved


@pytest.fixture(scope="module")
def provision_with_bridge(sfn_moto: str) -> Callable[..., ProvisionReport]:
    """``provision_with_bridge(stack_name, region)``: template.yaml's resources under that
    stack name on ``sfn_moto``, with the functions its state machines call registered there
    and routed to our handlers in-process (``flowlink.local.lambda_bridge``; the last call's
    stack is the one whose tasks run)."""

    def provision_stack(stack_name: str, region: str = "us-east-1") -> ProvisionReport:
        session = boto3.session.Session(region_name=region)
        report = provision(stack_name=stack_name, region=region, session=session, endpoint_url=sfn_moto)
        lam, iam = (session.client(name, endpoint_url=sfn_moto) for name in ("lambda", "iam"))
        lambda_bridge.install(lambda_bridge.register_functions(lam, iam, report.functions))
        return report

    return provision_stack
