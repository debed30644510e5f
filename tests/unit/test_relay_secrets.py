"""Relay-side secrets: opening sealed documents for one command, redacting its output."""

import base64

import pytest
from flowlink.redaction import Redactor
from flowlink.secret_box import generate_keypair, seal

from edge_relay.secrets_injection import SecretInjectionError, open_secrets, redact_output

pytestmark = pytest.mark.unit

RELAY = generate_keypair()


def test_open_secrets_returns_values_for_this_relay():
    values = open_secrets({"DB_PASSWORD": seal("pw-123456", RELAY.public_key)}, RELAY.private_key)
    assert values == {"DB_PASSWORD": "pw-123456"}


@pytest.mark.parametrize(
    "documents, message",
    [
        ({"DB": seal("x", generate_keypair().public_key)}, "another key"),
        ({"bad-name": seal("x", RELAY.public_key)}, "invalid secret name"),
        ({"DB": {"v": 1, "alg": "x25519-sealedbox", "kid": "SHA256:x", "ct": "AAAA"}}, "truncated"),
        (["DB"], "object"),
    ],
)
def test_open_secrets_refuses_what_it_cannot_open(documents, message):
    with pytest.raises(SecretInjectionError, match=message):
        open_secrets(documents, RELAY.private_key)


def test_redact_output_hides_plain_and_base64_forms():
    redactor = Redactor({"DB_PASSWORD": "pw-123456-long"})
    text = "pw-123456-long\n" + base64.b64encode(b"pw-123456-long\n").decode() + "\n"
    out = redact_output(text, redactor, truncated=False)
    assert "pw-123456" not in out and out.count("[REDACTED:DB_PASSWORD]") == 2


def test_redact_output_drops_a_partial_value_at_the_output_cap():
    redactor = Redactor({"TOKEN": "abcdefgh-secret-value"})
    out = redact_output("x" * 100 + "abcdefgh-sec", redactor, truncated=True)
    assert "abcdefgh" not in out and out.endswith("[output truncated]")
