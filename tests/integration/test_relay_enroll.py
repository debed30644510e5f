"""Integration tests of ``flowlink-relay enroll`` (a real process) against a tiny fake HTTP gateway."""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flowlink import relay_protocol

from edge_relay.identity import RelayIdentity, RelayKeys

pytestmark = pytest.mark.integration

GOOD_TOKEN = "flk_enr_good"
GATEWAY_KEY_PEM = relay_protocol.public_key_to_pem(relay_protocol.generate_signing_key())


class FakeEnrollmentGateway:
    """Serves POST /api/v1/relays/enroll: one good one-time token, everything else 401."""

    def __init__(self):
        self.requests: list[dict] = []
        self.used: set[str] = set()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                gateway.requests.append({"path": self.path, "body": body})
                token = body.get("token")
                if self.path != "/api/v1/relays/enroll":
                    self._reply(404, {"error": "not_found"})
                elif token != GOOD_TOKEN or token in gateway.used:
                    self._reply(401, {"error": "enrollment_token_invalid"})
                else:
                    gateway.used.add(token)
                    self._reply(
                        200,
                        {
                            "relay_id": "rly_enrolled",
                            "org_id": "org_1",
                            "relay_credential": "flk_rly_secret",
                            "ws_url": "ws://127.0.0.1:9/ws",
                            "gateway_public_key": GATEWAY_KEY_PEM,
                        },
                    )

            def _reply(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_gateway():
    gateway = FakeEnrollmentGateway()
    yield gateway
    gateway.close()


def enroll_cli(api_url: str, token: str, state_dir, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_relay",
            "enroll",
            "--api-url",
            api_url,
            "--token",
            token,
            "--state-dir",
            str(state_dir),
            *extra,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_enroll_stores_a_private_identity_and_pins_the_gateway_key(fake_gateway, tmp_path):
    state = tmp_path / "relay"
    done = enroll_cli(fake_gateway.url, GOOD_TOKEN, state, "--name", "web-01")
    assert done.returncode == 0, done.stderr
    assert "rly_enrolled" in done.stdout
    assert "flk_rly_secret" not in done.stdout + done.stderr  # the credential is never printed

    identity = RelayIdentity.load(state / "identity.json")
    assert (identity.relay_id, identity.org_id, identity.relay_credential) == (
        "rly_enrolled",
        "org_1",
        "flk_rly_secret",
    )
    assert identity.gateway_public_key == GATEWAY_KEY_PEM and identity.name == "web-01"
    for name in ("identity.json", "signing_key.pem", "box_key.b64"):
        assert stat.S_IMODE(os.stat(state / name).st_mode) == 0o600, name
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700

    sent = fake_gateway.requests[0]["body"]
    keys = RelayKeys.load(state / "signing_key.pem", state / "box_key.b64")
    assert sent["signing_public_key"] == keys.signing_public_key_b64
    assert sent["box_public_key"] == keys.box_public_key_b64
    assert len(base64.b64decode(sent["box_public_key"])) == 32
    assert sent["name"] == "web-01" and sent["hostname"] and sent["facts"]["os"]


def test_enroll_with_a_used_token_exits_3_and_writes_nothing(fake_gateway, tmp_path):
    assert enroll_cli(fake_gateway.url, GOOD_TOKEN, tmp_path / "first").returncode == 0
    again = enroll_cli(fake_gateway.url, GOOD_TOKEN, tmp_path / "second")
    assert again.returncode == 3
    assert "rejected the enrollment token" in again.stderr
    assert not (tmp_path / "second" / "identity.json").exists()
    assert not (tmp_path / "second" / "signing_key.pem").exists()


def test_enroll_with_an_unreachable_gateway_exits_4(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    failed = enroll_cli(f"http://127.0.0.1:{port}", GOOD_TOKEN, tmp_path / "relay")
    assert failed.returncode == 4
    assert f"127.0.0.1:{port}" in failed.stderr


def test_enroll_refuses_to_overwrite_an_identity_without_force(fake_gateway, tmp_path):
    state = tmp_path / "relay"
    assert enroll_cli(fake_gateway.url, GOOD_TOKEN, state).returncode == 0
    again = enroll_cli(fake_gateway.url, "flk_enr_other", state)
    assert again.returncode == 2 and "already enrolled" in again.stderr


def test_run_without_enrollment_exits_with_a_clear_message(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_relay",
            "run",
            "--state-dir",
            str(tmp_path / "none"),
            "--health-port",
            "0",
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 5
    assert "flowlink-relay enroll" in done.stderr
