"""API keys: format, hash-only storage, presentation headers, authentication and scopes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from flowlink.auth import (
    AuthContext,
    authenticate,
    create_api_key,
    extract_presented_key,
    hash_secret,
    require_scope,
)
from flowlink.errors import AuthenticationFailed, InvalidInput, PermissionDenied
from flowlink.storage.repository import decode_page_token, encode_page_token

pytestmark = pytest.mark.unit


class FakeKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, SimpleNamespace] = {}

    def put_api_key(self, **fields):
        record = SimpleNamespace(revoked_at=None, **fields)
        self.records[fields["key_hash"]] = record
        return record

    def get_api_key_by_hash(self, key_hash: str):
        return self.records.get(key_hash)


def test_auth_keys_are_shown_once_and_stored_only_as_hashes():
    store = FakeKeyStore()
    public, plaintext = create_api_key(store, "org_a", scope="agent", name="ci")
    assert plaintext.startswith("flk_live_") and len(plaintext) > 40
    (stored,) = store.records.values()
    assert stored.key_hash == hash_secret(plaintext)
    assert plaintext not in repr(vars(stored)).replace(stored.prefix, "")
    assert public["prefix"] == plaintext[:12] and "key" not in public


def test_auth_two_keys_never_collide():
    store = FakeKeyStore()
    keys = {create_api_key(store, "org_a", scope="agent", name="k")[1] for _ in range(20)}
    assert len(keys) == 20


@pytest.mark.parametrize(("scope", "name"), [("root", "x"), ("agent", ""), ("agent", "x" * 101)])
def test_auth_create_key_rejects_bad_scope_or_name(scope, name):
    with pytest.raises(InvalidInput):
        create_api_key(FakeKeyStore(), "org_a", scope=scope, name=name)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"authorization": "Bearer flk_live_abc"}, "flk_live_abc"),
        ({"authorization": "bearer   flk_live_abc  "}, "flk_live_abc"),
        ({"x-api-key": "flk_live_xyz"}, "flk_live_xyz"),
        ({"authorization": "Basic dXNlcjpwYXNz", "x-api-key": "flk_live_xyz"}, "flk_live_xyz"),
        ({"authorization": "Bearer "}, None),
        ({}, None),
    ],
)
def test_auth_extract_presented_key(headers, expected):
    assert extract_presented_key(headers) == expected


def test_auth_authenticate_accepts_a_live_key_and_refuses_the_rest():
    store = FakeKeyStore()
    _, plaintext = create_api_key(store, "org_a", scope="approver", name="ops")
    auth = authenticate(store, plaintext)
    assert (auth.org_id, auth.scope, auth.name) == ("org_a", "approver", "ops")
    for presented, message in ((None, "missing"), ("nope", "invalid"), ("flk_live_unknown", "invalid")):
        with pytest.raises(AuthenticationFailed, match=message):
            authenticate(store, presented)
    next(iter(store.records.values())).revoked_at = "2026-11-25T09:00:00.000000Z"
    with pytest.raises(AuthenticationFailed, match="revoked"):
        authenticate(store, plaintext)


def test_auth_scopes_admin_passes_everywhere_others_only_their_own():
    admin = AuthContext("org_a", "k1", "admin", "a")
    agent = AuthContext("org_a", "k2", "agent", "b")
    require_scope(admin, "agent")
    require_scope(agent, "agent")
    require_scope(agent)
    with pytest.raises(PermissionDenied, match="admin"):
        require_scope(agent, "admin")
    assert "key_id" in agent.actor() and "flk_live_" not in repr(agent.actor())


def test_auth_history_page_tokens_round_trip_and_refuse_forgeries():
    key = {"command_id": {"S": "cmd_1"}, "agent_key": {"S": "org_a#rly_1"}, "created_at": {"S": "2026"}}
    token = encode_page_token(key)
    assert decode_page_token(token, "org_a#rly_1") == key
    with pytest.raises(InvalidInput, match="page_token"):
        decode_page_token(token, "org_b#rly_1")
    for garbage in ("", "!!!", "bm90IGpzb24", encode_page_token({"command_id": {"S": "x"}})):
        with pytest.raises(InvalidInput, match="page_token"):
            decode_page_token(garbage, "org_a#rly_1")
