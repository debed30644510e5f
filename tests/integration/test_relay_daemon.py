"""Integration tests of the edge relay as a real process against a fake gateway over real WebSockets.

The fake gateway speaks contracts §6 with the ``websockets`` server and signs envelopes with
``flowlink.relay_protocol.sign_envelope``; the relay is ``python -m edge_relay run`` in a
subprocess with an identity written to a temp state dir. Ports are free ports.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from flowlink import relay_protocol
from websockets.asyncio.server import serve

from edge_relay.identity import RelayIdentity, RelayKeys, ensure_state_dir

pytestmark = pytest.mark.integration

RELAY_ID = "rly_integration"
ORG_ID = "org_integration"
CREDENTIAL = "flk_rly_integration-credential"
WAIT = 60  # generous upper bound for slow shared machines; never a timing assertion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FakeGateway:
    """A minimal gateway: authenticates the relay, answers hello/heartbeat, replays on sync."""

    def __init__(self, port: int):
        self.port = port
        self.received: queue.Queue[dict] = queue.Queue()
        self.handshakes: list[dict] = []
        self.resend_on_sync: list[str] = []
        self._connection = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    async def _handler(self, connection):
        request = connection.request
        query = parse_qs(urlsplit(request.path).query)
        handshake = {
            "authorization": request.headers.get("Authorization"),
            "relay_id_header": request.headers.get("X-Flowlink-Relay-Id"),
            "relay_id_query": query.get("relay_id", [None])[0],
            "token_query": query.get("token", [None])[0],
        }
        self.handshakes.append(handshake)
        if handshake["authorization"] != f"Bearer {CREDENTIAL}" or handshake["relay_id_header"] != RELAY_ID:
            await connection.close(4001, "unauthorized")
            return
        self._connection = connection
        async for raw in connection:
            message = json.loads(raw)
            self.received.put(message)
            action = message.get("action")
            if action == relay_protocol.ACTION_HELLO:
                await connection.send(json.dumps({"type": "welcome", "server_time": time.time()}))
            elif action == relay_protocol.ACTION_HEARTBEAT:
                await connection.send(json.dumps({"type": "heartbeat_ack", "ts": message.get("ts")}))
            elif action == relay_protocol.ACTION_SYNC:
                for envelope in self.resend_on_sync:
                    await connection.send(json.dumps({"type": "command", "envelope": envelope}))

    async def _serve(self, ready: threading.Event):
        self._stop = asyncio.Event()
        async with serve(self._handler, "127.0.0.1", self.port):
            ready.set()
            await self._stop.wait()

    def start(self) -> FakeGateway:
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._serve(ready),), daemon=True
        )
        self._thread.start()
        assert ready.wait(WAIT), "fake gateway did not start"
        return self

    def stop(self) -> None:
        """Kill the gateway: the server and every open connection go away."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(WAIT)
            self._loop.close()
        self._loop = None
        self._connection = None

    def send(self, message: dict) -> None:
        assert self._loop is not None and self._connection is not None, "relay not connected"
        future = asyncio.run_coroutine_threadsafe(self._connection.send(json.dumps(message)), self._loop)
        future.result(WAIT)

    def send_command(self, envelope: str) -> None:
        self.send({"type": "command", "envelope": envelope})

    def wait_for(self, predicate: Callable[[dict], bool], what: str) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                message = self.received.get(timeout=0.2)
            except queue.Empty:
                continue
            if predicate(message):
                return message
        raise AssertionError(f"relay never sent {what}")

    def wait_action(self, action: str, **fields) -> dict:
        return self.wait_for(
            lambda m: m.get("action") == action and all(m.get(k) == v for k, v in fields.items()),
            f"{action} {fields}",
        )


class RelayProcess:
    """``python -m edge_relay run`` with a written identity, health on a free port."""

    def __init__(self, state_dir: Path, gateway_port: int, gateway_key):
        self.state_dir = state_dir
        ensure_state_dir(state_dir)
        RelayKeys.generate().save(state_dir / "signing_key.pem", state_dir / "box_key.b64")
        RelayIdentity(
            relay_id=RELAY_ID,
            org_id=ORG_ID,
            relay_credential=CREDENTIAL,
            ws_url=f"ws://127.0.0.1:{gateway_port}/ws",
            gateway_public_key=relay_protocol.public_key_to_pem(gateway_key),
            name="integration-relay",
        ).save(state_dir / "identity.json")
        self.health_port = free_port()
        self.log_path = state_dir / "relay.log"
        self.process: subprocess.Popen | None = None

    def start(self, **extra_env: str) -> RelayProcess:
        env = dict(os.environ)
        env.update(
            {
                "FLOWLINK_RELAY_HEARTBEAT_SECONDS": "0.5",
                "FLOWLINK_RELAY_BACKOFF_BASE_SECONDS": "0.05",
                "FLOWLINK_RELAY_BACKOFF_CAP_SECONDS": "0.5",
                "FLOWLINK_RELAY_KILL_GRACE_SECONDS": "1",
                "FLOWLINK_RELAY_LOG_LEVEL": "DEBUG",
            }
        )
        env.update(extra_env)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edge_relay",
                "run",
                "--state-dir",
                str(self.state_dir),
                "--health-port",
                str(self.health_port),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def health(self) -> dict | None:
        try:
            return httpx.get(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2).json()
        except httpx.HTTPError:
            return None

    def wait_health(self, predicate: Callable[[dict], bool], what: str) -> dict:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"relay exited early:\n{self.log()}"
            health = self.health()
            if health is not None and predicate(health):
                return health
            time.sleep(0.1)
        raise AssertionError(f"relay health never showed {what}:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def gateway_key():
    return relay_protocol.generate_signing_key()


@pytest.fixture
def gateway():
    fake = FakeGateway(free_port()).start()
    yield fake
    fake.stop()


@pytest.fixture
def relay(tmp_path, gateway, gateway_key):
    process = RelayProcess(tmp_path / "state", gateway.port, gateway_key).start()
    yield process
    process.stop()


def sign(key, command: str, command_id: str, **kwargs) -> str:
    kwargs.setdefault("gateway_verdict", {"decision": "auto", "score": 0, "reasons": []})
    return relay_protocol.sign_envelope(
        key, relay_id=RELAY_ID, org_id=ORG_ID, command_id=command_id, command=command, **kwargs
    )


def test_relay_session_authenticates_says_hello_syncs_and_heartbeats(relay, gateway):
    hello = gateway.wait_action("hello")
    assert hello["relay_id"] == RELAY_ID
    assert hello["attestation"] is None or isinstance(hello["attestation"], dict)
    assert {"hostname", "os", "kernel", "arch", "python", "user", "cpu_count", "memory_bytes"} <= set(
        hello["facts"]
    )
    keys = RelayKeys.load(relay.state_dir / "signing_key.pem", relay.state_dir / "box_key.b64")
    assert hello["signing_public_key"] == keys.signing_public_key_b64
    gateway.wait_action("sync")
    gateway.wait_action("heartbeat")
    assert gateway.handshakes[0] == {
        "authorization": f"Bearer {CREDENTIAL}",
        "relay_id_header": RELAY_ID,
        "relay_id_query": RELAY_ID,
        "token_query": CREDENTIAL,
    }
    health = relay.wait_health(lambda h: h["status"] == "connected" and h["last_heartbeat"], "connected")
    assert health["relay_id"] == RELAY_ID
    metrics = httpx.get(f"http://127.0.0.1:{relay.health_port}/metrics", timeout=5).text
    assert "flowlink_relay_connected 1" in metrics


def test_relay_runs_echo_and_returns_the_result(relay, gateway, gateway_key, tmp_path):
    gateway.wait_action("sync")
    gateway.send_command(sign(gateway_key, "echo hello", "cmd_echo", cwd=str(tmp_path)))
    gateway.wait_action("ack", command_id="cmd_echo")
    result = gateway.wait_action("result", command_id="cmd_echo")
    assert result["status"] == "completed", result
    assert (result["stdout"], result["exit_code"], result["truncated"]) == ("hello\n", 0, False)
    assert result["relay_verdict"]["decision"] in ("auto", "soft_ask")
    # The relay ran the full Shield locally, semantic intent (level 2) included.
    assert "semantic" in result["relay_verdict"]["levels_run"]
    assert relay.wait_health(lambda h: h["commands_run"] == 1, "commands_run=1")


def test_relay_refuses_what_its_shield_or_the_gateway_denies(relay, gateway, gateway_key, tmp_path):
    gateway.wait_action("sync")
    marker = tmp_path / "marker"
    # The gateway said auto, the relay's own Shield says deny: the stricter wins.
    gateway.send_command(sign(gateway_key, "rm -rf /", "cmd_rm", cwd=str(tmp_path)))
    refused = gateway.wait_action("result", command_id="cmd_rm")
    assert refused["status"] == "refused" and refused["reasons"], refused
    gateway.send_command(
        sign(
            gateway_key,
            f"touch {marker}",
            "cmd_gw_deny",
            cwd=str(tmp_path),
            gateway_verdict={"decision": "deny", "score": 100, "reasons": ["org policy"]},
        )
    )
    denied = gateway.wait_action("result", command_id="cmd_gw_deny")
    assert denied["status"] == "refused" and "org policy" in denied["reasons"]
    forged = sign(relay_protocol.generate_signing_key(), f"touch {marker}", "cmd_forged", cwd=str(tmp_path))
    gateway.send_command(forged)
    assert gateway.wait_action("result", command_id="cmd_forged")["status"] == "refused"
    assert not marker.exists()


def test_relay_reconnects_after_gateway_restart_and_runs_a_resent_command_once(
    relay, gateway, gateway_key, tmp_path
):
    counter = tmp_path / "counter"
    first = sign(gateway_key, f"echo run >> {counter}", "cmd_once", cwd=str(tmp_path))
    gateway.wait_action("sync")
    gateway.send_command(first)
    assert gateway.wait_action("result", command_id="cmd_once")["status"] == "completed"

    # Kill the gateway; the relay notices and keeps dialling the same port.
    gateway.stop()
    relay.wait_health(lambda h: h["status"] != "connected", "the loss of the session")
    restarted = FakeGateway(gateway.port)
    restarted.resend_on_sync = [first]  # the gateway re-sends it as if it never saw the ack
    restarted.start()
    try:
        restarted.wait_action("hello")
        # Results are delivered at least once: the outbox is re-sent after the reconnect...
        resent = restarted.wait_action("result", command_id="cmd_once")
        assert resent["status"] == "completed"
        restarted.wait_action("sync")
        # ...and the duplicate delivery gets the stored result again instead of a second run.
        again = restarted.wait_action("result", command_id="cmd_once")
        assert again["status"] == "completed"
        restarted.send_command(sign(gateway_key, f"echo after >> {counter}", "cmd_after", cwd=str(tmp_path)))
        assert restarted.wait_action("result", command_id="cmd_after")["status"] == "completed"
        restarted.send_command(first)
        assert restarted.wait_action("result", command_id="cmd_once")["status"] == "completed"
        assert counter.read_text() == "run\nafter\n"
        assert relay.health()["status"] == "connected"
    finally:
        restarted.stop()


def test_relay_delivers_a_result_finished_while_the_gateway_was_down(relay, gateway, gateway_key, tmp_path):
    gateway.wait_action("sync")
    flag = tmp_path / "go"
    command = f"while [ ! -e {flag} ]; do sleep 0.05; done; echo late"
    gateway.send_command(sign(gateway_key, command, "cmd_late", cwd=str(tmp_path)))
    gateway.wait_action("ack", command_id="cmd_late")
    gateway.stop()
    relay.wait_health(lambda h: h["status"] != "connected", "the loss of the session")
    flag.touch()  # the command finishes with nobody to tell
    relay.wait_health(lambda h: h["outbox"] == 1 and h["commands_running"] == 0, "the result in the outbox")
    restarted = FakeGateway(gateway.port).start()
    try:
        result = restarted.wait_action("result", command_id="cmd_late")
        assert (result["status"], result["stdout"]) == ("completed", "late\n")
    finally:
        restarted.stop()


def test_relay_reports_timeout_and_kills_the_command(relay, gateway, gateway_key, tmp_path):
    gateway.wait_action("sync")
    pidfile = tmp_path / "pid"
    gateway.send_command(
        sign(gateway_key, f"sleep 300 & echo $! > {pidfile}; wait", "cmd_slow", cwd=str(tmp_path), timeout=1)
    )
    result = gateway.wait_action("result", command_id="cmd_slow")
    assert result["status"] == "timeout" and "timed out" in result["error"]
    pid = int(pidfile.read_text())
    state_file = Path(f"/proc/{pid}/stat")
    assert not state_file.exists() or state_file.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_relay_sigterm_lets_running_command_finish_and_exits_zero(relay, gateway, gateway_key, tmp_path):
    gateway.wait_action("sync")
    flag = tmp_path / "go"
    # The command waits for the test's signal file, so it is certainly running at SIGTERM.
    command = f"while [ ! -e {flag} ]; do sleep 0.05; done; echo finished"
    gateway.send_command(sign(gateway_key, command, "cmd_long", cwd=str(tmp_path)))
    gateway.wait_action("ack", command_id="cmd_long")
    relay.wait_health(lambda h: h["commands_running"] == 1, "a running command")
    relay.process.send_signal(signal.SIGTERM)
    flag.touch()
    result = gateway.wait_action("result", command_id="cmd_long")
    assert (result["status"], result["stdout"]) == ("completed", "finished\n")
    assert relay.process.wait(WAIT) == 0
    assert not (relay.state_dir / "runtime.json").exists()


def test_relay_fails_closed_while_gateway_is_down(tmp_path, gateway_key):
    port = free_port()
    process = RelayProcess(tmp_path / "state", port, gateway_key).start()
    try:
        health = process.wait_health(lambda h: h["status"] in ("connecting", "disconnected"), "not connected")
        assert health["commands_run"] == 0
        # The relay keeps dialling; once a gateway appears it connects.
        late = FakeGateway(port).start()
        try:
            late.wait_action("hello")
            process.wait_health(lambda h: h["status"] == "connected", "connected")
        finally:
            late.stop()
    finally:
        assert process.stop() == 0


def test_relay_health_port_in_use_exits_2_naming_the_port(tmp_path, gateway_key):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = RelayProcess(tmp_path / "state", free_port(), gateway_key)
        process.health_port = port
        process.start()
        assert process.process.wait(WAIT) == 2
        process.stop()
    assert f"port {port}" in process.log()


def test_relay_status_command_reports_the_running_daemon(relay, gateway):
    gateway.wait_action("sync")
    relay.wait_health(lambda h: h["status"] == "connected", "connected")
    status = subprocess.run(
        [sys.executable, "-m", "edge_relay", "status", "--state-dir", str(relay.state_dir)],
        check=False,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["relay_id"] == RELAY_ID and report["daemon"]["status"] == "connected"


def test_relay_refuses_a_command_whose_policy_it_gets_only_forged_then_judges_with_the_genuine_one(
    relay, gateway, gateway_key, tmp_path
):
    from shield.policy import load_policy

    text = "name: acme\ndeny:\n  - Bash(echo relay-probe:*)\n"
    version = load_policy(text).version
    ref = relay_protocol.policy_ref(version, text)
    forged = relay_protocol.sign_policy_document(
        relay_protocol.generate_signing_key(), relay_id=RELAY_ID, org_id=ORG_ID, version=version, text=text
    )
    gateway.wait_action("sync")
    gateway.send({"type": "policy", "document": forged})
    relay.wait_health(lambda h: h["policy"]["rejected"] == 1, "the forged policy document refused")
    marker = tmp_path / "marker"
    gateway.send_command(sign(gateway_key, f"touch {marker}", "cmd_forged_policy", cwd=str(tmp_path), policy=ref))
    # The relay asks for the policy; this gateway answers only with the forgery again.
    assert gateway.wait_action("policy_request")["sha256"] == ref.sha256
    gateway.send({"type": "policy", "document": forged})
    refused = gateway.wait_action("result", command_id="cmd_forged_policy")
    assert refused["status"] == "refused" and version in refused["reasons"][0], refused
    assert not marker.exists()

    genuine = relay_protocol.sign_policy_document(gateway_key, relay_id=RELAY_ID, org_id=ORG_ID, version=version, text=text)
    gateway.send({"type": "policy", "document": genuine})
    relay.wait_health(lambda h: h["policy"]["versions"] == [version], "the genuine policy accepted")
    gateway.send_command(sign(gateway_key, "echo relay-probe", "cmd_denied_by_org", cwd=str(tmp_path), policy=ref))
    denied = gateway.wait_action("result", command_id="cmd_denied_by_org")
    assert denied["status"] == "refused" and denied["relay_verdict"]["policy_version"] == version, denied
    gateway.send_command(sign(gateway_key, f"touch {marker}", "cmd_allowed", cwd=str(tmp_path), policy=ref))
    allowed = gateway.wait_action("result", command_id="cmd_allowed")
    assert allowed["status"] == "completed" and allowed["relay_verdict"]["policy_version"] == version, allowed
