"""`$NAME` references to a relay's secrets through the gateway: a deleted secret leaves a
tombstone, so a command still referencing it fails clearly instead of running with an empty
value; a name that never was a secret stays a plain shell variable."""

from __future__ import annotations

import anyio
import boto3
import httpx2
import pytest
from flowlink.secret_box import decode_key, seal
from flowlink.vault import SecretNotFound, Vault
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

pytestmark = pytest.mark.integration


@pytest.fixture
def create_gateway_tables(create_gateway_tables):
    """The suite's small tables plus the secrets table (keys as in template.yaml)."""

    def create(settings) -> None:
        create_gateway_tables(settings)
        boto3.client("dynamodb", region_name=settings.region).create_table(
            TableName=settings.table("secrets"), BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "org_id", "AttributeType": "S"},
                                  {"AttributeName": "secret_key", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "org_id", "KeyType": "HASH"},
                       {"AttributeName": "secret_key", "KeyType": "RANGE"}],
        )

    return create


async def _call(url: str, key: str, arguments: dict):
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode="2026-07-28") as client,
    ):
        return await client.call_tool("exec", arguments)


def exec_(gateway, org, relay, command: str, **extra):
    return anyio.run(_call, gateway.mcp_url, org["api_key"], {"agent": relay.name, "command": command, **extra})


def put_secret(admin, relay, name: str, value: bytes) -> dict:
    recipient = admin.get(f"/api/v1/agents/{relay.name}/encryption-key").json()
    document = seal(value, decode_key(recipient["box_public_key"]))
    response = admin.put(f"/api/v1/secrets/{name}", json={"ciphertexts": {recipient["relay_id"]: document}})
    assert response.status_code == 200, response.text
    return response.json()["stored"][0]


def test_a_reference_to_a_deleted_secret_fails_clearly_until_it_is_put_again(live_gateway, connected_relay):
    org, relay = connected_relay
    admin = live_gateway.admin(org)
    assert put_secret(admin, relay, "DB_PASS", b"hunter2")["version"] == 1

    before = exec_(live_gateway, org, relay, "echo pw=$DB_PASS")
    assert before.is_error is False, before.content
    assert set(relay.claims[-1]["secrets"]) == {"DB_PASS"}

    assert admin.delete("/api/v1/secrets/DB_PASS").json() == {"deleted": 1}
    assert admin.get("/api/v1/secrets").json()["secrets"] == []
    sent = len(relay.claims)
    for command, extra in (("echo pw=$DB_PASS", {}), ("echo pw=${DB_PASS}", {}),
                           ("printenv DB_PASS", {"secrets": ["DB_PASS"]})):
        refused = exec_(live_gateway, org, relay, command, **extra)
        assert refused.is_error is True, command
        text = refused.content[0].text
        assert "secret DB_PASS was deleted on 20" in text and "put it again or remove the reference" in text
        assert "nothing was run" in text
    assert len(relay.claims) == sent  # nothing reached the relay
    # A command queued before the delete (e.g. awaiting approval) fails the same way at signing.
    with pytest.raises(SecretNotFound, match="secret DB_PASS was deleted on"):
        Vault(live_gateway.stack.settings).ciphertexts_for(org["org_id"], relay.identity["relay_id"], ["DB_PASS"])

    # A name that never was a secret is the shell's; an env value of the same name wins.
    plain = exec_(live_gateway, org, relay, "echo home=$NEVER_A_SECRET")
    assert plain.is_error is False and "secrets" not in relay.claims[-1]
    overridden = exec_(live_gateway, org, relay, "echo pw=$DB_PASS", env={"DB_PASS": "given"})
    assert overridden.is_error is False and "secrets" not in relay.claims[-1]

    # Deleting again finds nothing; putting it again clears the tombstone (versions go on).
    assert admin.delete("/api/v1/secrets/DB_PASS").status_code == 404
    assert put_secret(admin, relay, "DB_PASS", b"new-value")["version"] == 2
    after = exec_(live_gateway, org, relay, "echo pw=$DB_PASS")
    assert after.is_error is False, after.content
    assert set(relay.claims[-1]["secrets"]) == {"DB_PASS"}
    assert [s["name"] for s in admin.get("/api/v1/secrets").json()["secrets"]] == ["DB_PASS"]


def test_a_secret_deleted_for_another_relay_only_does_not_block_this_one(live_gateway, connected_relay, make_relay):
    org, relay = connected_relay
    admin = live_gateway.admin(org)
    token = admin.post("/api/v1/agents/enrollment-tokens", json={"name": "fake-02"}).json()["token"]
    other = make_relay({"enrollment_token": token}, name="fake-02")
    other.enroll()
    put_secret(admin, relay, "API_TOKEN", b"t1")
    put_secret(admin, other, "API_TOKEN", b"t2")
    assert admin.delete("/api/v1/secrets/API_TOKEN", params={"agent": "fake-02"}).json() == {"deleted": 1}
    result = exec_(live_gateway, org, relay, "echo $API_TOKEN")
    assert result.is_error is False, result.content
    assert set(relay.claims[-1]["secrets"]) == {"API_TOKEN"}
