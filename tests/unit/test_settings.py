"""flowlink.settings outside local mode: what a Lambda must be given, and what only signers need."""

from __future__ import annotations

import pytest
from flowlink.errors import ServiceMisconfigured
from flowlink.relays import load_signing_key
from flowlink.settings import Settings, SettingsError

pytestmark = pytest.mark.unit

AWS = {
    "FLOWLINK_ENV": "aws",
    "FLOWLINK_WS_URL": "wss://example.execute-api.us-east-1.amazonaws.com/prod",
    "FLOWLINK_WS_MANAGEMENT_URL": "https://example.execute-api.us-east-1.amazonaws.com/prod",
}


def test_settings_outside_local_mode_refuse_to_start_without_the_websocket_urls():
    with pytest.raises(SettingsError, match="FLOWLINK_WS_MANAGEMENT_URL, FLOWLINK_WS_URL"):
        Settings.from_env({"FLOWLINK_ENV": "aws"})


def test_settings_start_without_the_signing_key_and_signing_then_fails_clearly():
    # Functions that never sign ($connect, $disconnect, the authorizer, approval notify and
    # record) are not given the private key; one that signs without it gets a typed error,
    # never an ephemeral key that relays would reject.
    settings = Settings.from_env(AWS)
    assert settings.signing_key_pem is None and not settings.is_local
    with pytest.raises(ServiceMisconfigured, match="FLOWLINK_SIGNING_KEY"):
        load_signing_key(settings)
