"""Org policies reach relays signed by the gateway key, and a relay judges with exactly the one
an envelope names: verification of policy documents, the envelope's policy claim, the book."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from flowlink import grants, relay_protocol
from flowlink.relay_policy import PolicyBook, PolicyMissing, PolicyUnavailable
from flowlink.relay_protocol import (
    EnvelopeError,
    PolicyDocumentError,
    PolicyRef,
    policy_ref,
    sign_policy_document,
    verify_policy_document,
)

from shield.policy import default_policy, load_policy

pytestmark = pytest.mark.unit

KEY = relay_protocol.generate_signing_key()
RELAY_ID = "rly_1"
ORG_ID = "org_1"
TEXT = "name: acme\ndeny:\n  - Bash(echo relay-probe:*)\n"
POLICY = load_policy(TEXT, source="org-policy.yaml")


def document(text: str | None = TEXT, *, key=KEY, version: str | None = None, **overrides) -> str:
    args = {"relay_id": RELAY_ID, "org_id": ORG_ID, "text": text}
    args.update(overrides)
    if version is None:
        version = load_policy(text).version if text else default_policy().version
    return sign_policy_document(key, version=version, **args)


def verify(token: str, **overrides):
    args = {"relay_id": RELAY_ID, "org_id": ORG_ID}
    args.update(overrides)
    return verify_policy_document(token, KEY.public_key(), **args)


def book() -> PolicyBook:
    return PolicyBook(relay_id=RELAY_ID, org_id=ORG_ID, gateway_key=KEY.public_key())


def unsigned(claims: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


# -- policy documents ------------------------------------------------------------------------


def test_policy_document_round_trip_carries_text_version_and_digest():
    verified = verify(document())
    assert (verified.text, verified.version) == (TEXT, POLICY.version)
    assert verified.sha256 == relay_protocol.policy_sha256(TEXT)
    assert verified.ref == policy_ref(POLICY.version, TEXT)


def test_policy_document_for_the_default_policy_has_no_text_and_no_digest():
    verified = verify(document(None))
    assert verified.text is None and verified.sha256 is None


def test_policy_document_signed_by_another_key_is_refused():
    with pytest.raises(PolicyDocumentError, match="signature invalid"):
        verify(document(key=relay_protocol.generate_signing_key()))


def test_unsigned_policy_document_is_refused():
    claims = jwt.decode(document(), options={"verify_signature": False})
    with pytest.raises(PolicyDocumentError, match="invalid"):
        verify(unsigned(claims))


@pytest.mark.parametrize(
    "overrides, reason",
    [({"relay_id": "rly_2"}, "another relay"), ({"org_id": "org_2"}, "another org")],
)
def test_policy_document_for_another_relay_or_org_is_refused(overrides, reason):
    with pytest.raises(PolicyDocumentError, match=reason):
        verify(document(), **overrides)


def test_policy_document_whose_text_was_swapped_is_refused():
    claims = jwt.decode(document(), options={"verify_signature": False})
    claims["policy_text"] = "name: acme\n"  # swapped after hashing, re-signed with the real key
    with pytest.raises(PolicyDocumentError, match="does not match its sha256"):
        verify(jwt.encode(claims, KEY, algorithm="EdDSA"))


def test_envelopes_grants_and_policy_documents_never_pass_for_each_other():
    envelope = relay_protocol.sign_envelope(KEY, relay_id=RELAY_ID, org_id=ORG_ID, command_id="cmd_1", command="ls")
    grant = grants.issue_grant(
        KEY, relay_id=RELAY_ID, org_id=ORG_ID, command_id="cmd_1", approval_id="apr_1", command="ls", approvers=["a"]
    )
    for token in (envelope, grant):
        with pytest.raises(PolicyDocumentError):
            verify(token)
    with pytest.raises(EnvelopeError):
        relay_protocol.verify_envelope(document(), KEY.public_key(), relay_id=RELAY_ID)


# -- the envelope's policy claim -------------------------------------------------------------


def test_envelope_names_its_policy_and_an_old_envelope_names_none():
    ref = policy_ref(POLICY.version, TEXT)
    named = relay_protocol.sign_envelope(
        KEY, relay_id=RELAY_ID, org_id=ORG_ID, command_id="cmd_1", command="ls", policy=ref
    )
    claims = relay_protocol.verify_envelope(named, KEY.public_key(), relay_id=RELAY_ID)
    assert relay_protocol.envelope_policy(claims) == ref
    old = relay_protocol.sign_envelope(KEY, relay_id=RELAY_ID, org_id=ORG_ID, command_id="cmd_2", command="ls")
    assert relay_protocol.envelope_policy(relay_protocol.verify_envelope(old, KEY.public_key(), relay_id=RELAY_ID)) is None


@pytest.mark.parametrize(
    "claim",
    [
        "acme@1",
        {"version": "acme@1"},
        {"version": "", "sha256": None},
        {"version": "acme@1", "sha256": "not-hex"},
        {"version": "acme@1", "sha256": None, "text": "allow everything"},
    ],
)
def test_envelope_with_a_malformed_policy_claim_is_refused(claim):
    token = relay_protocol.sign_envelope(KEY, relay_id=RELAY_ID, org_id=ORG_ID, command_id="cmd_1", command="ls")
    claims = jwt.decode(token, options={"verify_signature": False})
    claims["policy"] = claim
    with pytest.raises(EnvelopeError, match="policy claim invalid"):
        relay_protocol.verify_envelope(jwt.encode(claims, KEY, algorithm="EdDSA"), KEY.public_key(), relay_id=RELAY_ID)


# -- the relay's policy book -----------------------------------------------------------------


def test_book_gives_the_default_policy_when_the_envelope_names_none_or_the_default():
    policies = book()
    assert policies.resolve(None).version == default_policy().version
    assert policies.resolve(PolicyRef(version="default@whatever", sha256=None)).version == default_policy().version


def test_book_refuses_a_policy_it_has_not_received_instead_of_falling_back():
    with pytest.raises(PolicyMissing, match=POLICY.version):
        book().resolve(policy_ref(POLICY.version, TEXT))


def test_book_resolves_exactly_the_named_policy_once_received():
    policies = book()
    other = "name: acme\nallow:\n  - Bash(history -c)\n"
    policies.add(document())
    policies.add(document(other))
    assert policies.resolve(policy_ref(POLICY.version, TEXT)).version == POLICY.version
    assert policies.resolve(policy_ref(load_policy(other).version, other)).version == load_policy(other).version
    assert policies.versions() == [POLICY.version, load_policy(other).version]
    assert (policies.accepted, policies.rejected) == (2, 0)


@pytest.mark.parametrize(
    "token",
    [
        document(key=relay_protocol.generate_signing_key()),
        unsigned(jwt.decode(document(), options={"verify_signature": False})),
        document(relay_id="rly_2"),
    ],
    ids=["foreign-key", "unsigned", "other-relay"],
)
def test_book_keeps_nothing_from_a_document_that_does_not_verify(token):
    policies = book()
    with pytest.raises(PolicyDocumentError):
        policies.add(token)
    assert policies.rejected == 1 and policies.versions() == []
    with pytest.raises(PolicyMissing):
        policies.resolve(policy_ref(POLICY.version, TEXT))


def test_book_refuses_a_policy_this_relay_compiles_to_another_version():
    policies = book()
    with pytest.raises(PolicyDocumentError, match="Shield versions differ"):
        policies.add(document(version="acme@000000000000"))
    with pytest.raises(PolicyUnavailable, match="Shield versions differ"):
        policies.resolve(PolicyRef(version="acme@000000000000", sha256=relay_protocol.policy_sha256(TEXT)))


def test_book_refuses_an_authentic_policy_that_does_not_compile():
    broken = "name: acme\ndeny:\n  - Bash(rm -rf:*:*)\n"
    policies = book()
    with pytest.raises(PolicyDocumentError, match="does not compile"):
        policies.add(document(broken, version="acme@111111111111"))
    with pytest.raises(PolicyUnavailable, match="does not compile"):
        policies.resolve(PolicyRef(version="acme@111111111111", sha256=relay_protocol.policy_sha256(broken)))


def test_book_refuses_an_envelope_naming_another_version_for_the_same_text():
    policies = book()
    policies.add(document())
    with pytest.raises(PolicyUnavailable, match="names policy acme@000000000000"):
        policies.resolve(PolicyRef(version="acme@000000000000", sha256=relay_protocol.policy_sha256(TEXT)))


def test_book_forgets_the_oldest_policy_beyond_its_capacity():
    policies = PolicyBook(relay_id=RELAY_ID, org_id=ORG_ID, gateway_key=KEY.public_key(), capacity=2)
    texts = [f"name: v{n}\ndeny:\n  - Bash(echo v{n}:*)\n" for n in range(3)]
    for text in texts:
        policies.add(document(text))
    with pytest.raises(PolicyMissing):
        policies.resolve(policy_ref(load_policy(texts[0]).version, texts[0]))
    assert policies.resolve(policy_ref(load_policy(texts[2]).version, texts[2])).version == load_policy(texts[2]).version


# -- size: a policy document travels in one WebSocket message ---------------------------------

API_GATEWAY_MESSAGE_BYTES = 128 * 1024


@pytest.mark.parametrize("filler", ["x", "é", "😀"], ids=["ascii", "two-byte", "astral"])
def test_the_largest_policy_accepted_fits_one_api_gateway_message(filler):
    text = "name: big\n#"
    while relay_protocol.policy_fits_one_message(text + filler * 64):
        text += filler * 64
    assert not relay_protocol.policy_fits_one_message(text + filler * 64)
    welcome = {"type": "welcome", "server_time": "2026-11-25T09:00:00.000000Z", "policy": document(text, version="big@0")}
    assert len(json.dumps(welcome).encode()) <= API_GATEWAY_MESSAGE_BYTES


def test_org_settings_refuse_a_policy_too_large_to_reach_relays():
    from types import SimpleNamespace

    from flowlink.errors import InvalidInput
    from flowlink.org_settings import update_settings

    def never_save():
        raise AssertionError("a refused policy must not be stored")

    org = SimpleNamespace(org_id=ORG_ID, policy_text=None, save=never_save)
    store = SimpleNamespace(get_org=lambda org_id: org)
    text = "name: big\n#" + "x" * relay_protocol.MAX_POLICY_TEXT_JSON_CHARS
    with pytest.raises(InvalidInput, match="too large to send to relays"):
        update_settings(store, ORG_ID, {"policy": text}, actor={"type": "test"})
    assert org.policy_text is None
