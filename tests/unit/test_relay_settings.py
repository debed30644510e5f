"""Unit tests for the relay's settings object and identity files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from flowlink import relay_protocol

from edge_relay.errors import IdentityError, RelaySettingsError
from edge_relay.identity import RelayIdentity, RelayKeys
from edge_relay.settings import RelaySettings

pytestmark = pytest.mark.unit


def test_relay_settings_defaults_and_state_dir_from_env(tmp_path):
    settings = RelaySettings.from_env({"FLOWLINK_RELAY_STATE_DIR": str(tmp_path)})
    assert settings.state_dir == tmp_path
    assert (settings.health_host, settings.health_port, settings.heartbeat_seconds) == (
        "127.0.0.1",
        9081,
        20.0,
    )
    assert settings.output_cap_bytes == 1024 * 1024
    assert RelaySettings.from_env({}).state_dir == Path("~/.flowlink/relay").expanduser()


def test_relay_settings_cli_overrides_win(tmp_path):
    settings = RelaySettings.from_env({"FLOWLINK_RELAY_HEALTH_PORT": "1234"}).with_overrides(
        state_dir=str(tmp_path), health_port=0, health_host=None
    )
    assert (
        settings.health_port == 0 and settings.state_dir == tmp_path and settings.health_host == "127.0.0.1"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"FLOWLINK_RELAY_HEARTBEAT_SECONDS": "soon"},
        {"FLOWLINK_RELAY_HEARTBEAT_SECONDS": "0"},
        {"FLOWLINK_RELAY_HEALTH_PORT": "70000"},
        {"FLOWLINK_RELAY_BACKOFF_BASE_SECONDS": "5", "FLOWLINK_RELAY_BACKOFF_CAP_SECONDS": "1"},
        {"FLOWLINK_RELAY_OUTPUT_CAP_BYTES": "0"},
    ],
)
def test_relay_settings_reject_malformed_values(env):
    with pytest.raises(RelaySettingsError):
        RelaySettings.from_env(env)


def test_relay_identity_round_trips_with_private_files(tmp_path):
    key = relay_protocol.generate_signing_key()
    identity = RelayIdentity(
        "rly_1", "org_1", "flk_rly_x", "ws://127.0.0.1:9/ws", relay_protocol.public_key_to_pem(key)
    )
    identity.save(tmp_path / "identity.json")
    keys = RelayKeys.generate()
    keys.save(tmp_path / "signing.pem", tmp_path / "box.b64")
    assert RelayIdentity.load(tmp_path / "identity.json") == identity
    loaded = RelayKeys.load(tmp_path / "signing.pem", tmp_path / "box.b64")
    assert loaded.signing_public_key_b64 == keys.signing_public_key_b64
    assert loaded.box_public_key_b64 == keys.box_public_key_b64
    for name in ("identity.json", "signing.pem", "box.b64"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600


@pytest.mark.parametrize(
    "change",
    [
        {"relay_id": ""},
        {"ws_url": "http://example.com"},
        {"gateway_public_key": "not a key"},
    ],
)
def test_relay_identity_rejects_damaged_files(tmp_path, change):
    key = relay_protocol.generate_signing_key()
    data = {
        "relay_id": "rly_1",
        "org_id": "org_1",
        "relay_credential": "flk_rly_x",
        "ws_url": "ws://127.0.0.1:9/ws",
        "gateway_public_key": relay_protocol.public_key_to_pem(key),
        **change,
    }
    (tmp_path / "identity.json").write_text(json.dumps(data))
    with pytest.raises(IdentityError):
        RelayIdentity.load(tmp_path / "identity.json")


def test_relay_identity_missing_tells_how_to_enroll(tmp_path):
    with pytest.raises(IdentityError, match="flowlink-relay enroll"):
        RelayIdentity.load(tmp_path / "identity.json")
