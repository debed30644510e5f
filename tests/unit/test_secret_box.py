"""Sealed-box secret encryption: round trip, wrong key, tampering, malformed documents."""

import base64
import json

import pytest
from flowlink.secret_box import (
    SecretBoxError,
    generate_keypair,
    key_fingerprint,
    open_sealed,
    parse_document,
    seal,
)

pytestmark = pytest.mark.unit


def test_seal_round_trip_only_for_recipient():
    relay = generate_keypair()
    document = seal("postgres://u:p@db/x", relay.public_key)
    assert document["kid"] == relay.fingerprint == key_fingerprint(relay.public_key)
    assert "postgres" not in json.dumps(document)
    assert open_sealed(document, relay.private_key) == b"postgres://u:p@db/x"


def test_open_sealed_refuses_another_relays_ciphertext():
    document = seal("value", generate_keypair().public_key)
    with pytest.raises(SecretBoxError, match="another key"):
        open_sealed(document, generate_keypair().private_key)


def test_open_sealed_detects_tampering():
    relay = generate_keypair()
    document = seal("value", relay.public_key)
    raw = bytearray(base64.b64decode(document["ct"]))
    raw[-1] ^= 1
    with pytest.raises(SecretBoxError, match="authentication"):
        open_sealed({**document, "ct": base64.b64encode(bytes(raw)).decode()}, relay.private_key)


@pytest.mark.parametrize(
    "document, message",
    [
        ("not json", "not JSON"),
        ([], "JSON object"),
        ({"v": 2, "alg": "x25519-sealedbox", "kid": "SHA256:x", "ct": ""}, "unsupported"),
        ({"v": 1, "alg": "x25519-sealedbox", "ct": "AAAA"}, "fingerprint"),
        ({"v": 1, "alg": "x25519-sealedbox", "kid": "SHA256:x", "ct": "!!!"}, "base64"),
        ({"v": 1, "alg": "x25519-sealedbox", "kid": "SHA256:x", "ct": base64.b64encode(b"x" * 20).decode()}, "truncated"),
    ],
)
def test_parse_document_rejects_malformed_ciphertext(document, message):
    with pytest.raises(SecretBoxError, match=message):
        parse_document(document)
