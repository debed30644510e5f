"""Integration tests of the audit REST API and of tampering done directly in DynamoDB and S3,
against the suite's moto server and a live gateway."""

from __future__ import annotations

import base64
import json
import secrets

import boto3
import httpx
import pytest
from flowlink import audit, relay_protocol
from flowlink.audit import merkle, witness
from flowlink.audit.integrity import verify_chain
from flowlink.audit.store import HEAD_HINT_STRIDE, AuditStore

pytestmark = pytest.mark.integration

HMAC_KEY = "test-witness-hmac-key"


@pytest.fixture
def witnessed_stack(gateway_stack):
    """The gateway stack with a witness bucket (Object Lock) and an HMAC key configured."""
    bucket = "witness-" + secrets.token_hex(4)
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings = gateway_stack.configure(FLOWLINK_WITNESS_BUCKET=bucket, FLOWLINK_WITNESS_HMAC_KEY=HMAC_KEY)
    audit.set_default_store(AuditStore(settings=settings))
    return gateway_stack


def _store(stack) -> AuditStore:
    return audit.store_for(stack.settings)


def _append(stack, org_id: str, count: int) -> list[dict]:
    store = _store(stack)
    return [store.append(org_id, "exec.requested", {"n": n, "relay_id": "rly_a", "decision": "auto"},
                         actor={"key_id": "key_t"}) for n in range(count)]


def _dynamodb(stack):
    return boto3.client("dynamodb", region_name="us-east-1"), stack.settings.table("audit")


def _key(org_id: str, seq) -> dict:
    return {"org_id": {"S": org_id}, "seq": {"N": str(seq)}}


def _get(stack, org_id: str, seq) -> dict:
    client, table = _dynamodb(stack)
    return client.get_item(TableName=table, Key=_key(org_id, seq), ConsistentRead=True)["Item"]


def _put(stack, item: dict) -> None:
    client, table = _dynamodb(stack)
    client.put_item(TableName=table, Item=item)


def _delete(stack, org_id: str, seq) -> None:
    client, table = _dynamodb(stack)
    client.delete_item(TableName=table, Key=_key(org_id, seq))


def test_audit_integrity_api_intact_then_names_the_modified_record(witnessed_stack, live_gateway):
    org = witnessed_stack.org("acme")
    _append(witnessed_stack, org["org_id"], 3)
    with live_gateway.admin(org) as client:
        report = client.get("/api/v1/audit/integrity").json()
        assert report["intact"] is True and report["length"] >= 6 and report["broken_at"] is None
        item = _get(witnessed_stack, org["org_id"], 2)
        item["event"]["S"] = item["event"]["S"].replace('"key.created"', '"key.revoked"')
        _put(witnessed_stack, item)
        report = client.get("/api/v1/audit/integrity").json()
    assert report["intact"] is False and report["broken_at"] == 2 and report["reason"].startswith("modified")


def test_audit_integrity_api_requires_a_key(live_gateway):
    assert httpx.get(live_gateway.base_url + "/api/v1/audit/integrity").status_code == 401


def test_audit_verify_empty_log_is_intact_with_length_zero(witnessed_stack):
    report = verify_chain("org_without_events", store=_store(witnessed_stack))
    assert (report.intact, report.length, report.broken_at) == (True, 0, None)


def test_audit_verify_deleted_record_is_named(witnessed_stack):
    _append(witnessed_stack, "org_del", 6)
    _delete(witnessed_stack, "org_del", 3)
    report = verify_chain("org_del", store=_store(witnessed_stack))
    assert report.broken_at == 3 and report.reason.startswith("deleted") and report.length == 5


def test_audit_verify_inserted_record_is_named(witnessed_stack):
    _append(witnessed_stack, "org_ins", 5)
    forged = _get(witnessed_stack, "org_ins", 2)
    forged["seq"] = {"N": "2.5"}
    _put(witnessed_stack, forged)
    report = verify_chain("org_ins", store=_store(witnessed_stack))
    assert report.broken_at == 2.5 and report.reason.startswith("inserted")


def test_audit_verify_reordered_records_are_named(witnessed_stack):
    _append(witnessed_stack, "org_swap", 5)
    third, fourth = _get(witnessed_stack, "org_swap", 3), _get(witnessed_stack, "org_swap", 4)
    third["seq"], fourth["seq"] = {"N": "4"}, {"N": "3"}
    _put(witnessed_stack, third)
    _put(witnessed_stack, fourth)
    report = verify_chain("org_swap", store=_store(witnessed_stack))
    assert report.broken_at == 3 and report.reason.startswith("reordered")


def test_audit_verify_truncated_tail_is_caught_through_the_witness(witnessed_stack):
    store = _store(witnessed_stack)
    count = HEAD_HINT_STRIDE + 5
    _append(witnessed_stack, "org_trunc", count)
    published = witness.publish(store, "org_trunc")
    assert published["witness"]["seq"] == count
    # The attacker deletes the newest events and rewinds the head hint to cover the tracks.
    keep = count - 2
    head_at_keep = _get(witnessed_stack, "org_trunc", keep)
    _delete(witnessed_stack, "org_trunc", count)
    _delete(witnessed_stack, "org_trunc", count - 1)
    head = _get(witnessed_stack, "org_trunc", 0)
    assert head["head_seq"] == {"N": str(HEAD_HINT_STRIDE)}
    head["head_seq"] = {"N": str(keep)}
    head["head_hash"] = head_at_keep["chain_hash"]
    head["frontier"] = head_at_keep["frontier"]
    _put(witnessed_stack, head)
    assert verify_chain("org_trunc", store=store, use_witnesses=False).intact  # a bare chain cannot tell
    report = verify_chain("org_trunc", store=store)
    assert not report.intact and report.broken_at == keep + 1 and report.reason.startswith("truncated")


def test_audit_verify_tail_deleted_behind_the_head_hint_is_truncated(witnessed_stack):
    store = _store(witnessed_stack)
    _append(witnessed_stack, "org_hint", HEAD_HINT_STRIDE)
    _delete(witnessed_stack, "org_hint", HEAD_HINT_STRIDE)
    report = verify_chain("org_hint", store=store, use_witnesses=False)
    assert not report.intact and report.broken_at == HEAD_HINT_STRIDE and report.reason.startswith("truncated")


def test_audit_witness_cannot_be_overwritten(witnessed_stack):
    store = _store(witnessed_stack)
    _append(witnessed_stack, "org_once", 2)
    assert witness.publish(store, "org_once")["published"] is True
    assert witness.publish(store, "org_once")["published"] is False


def test_audit_forged_witness_and_checkpoint_are_rejected(witnessed_stack):
    store = _store(witnessed_stack)
    _append(witnessed_stack, "org_forge", 3)
    s3 = boto3.client("s3", region_name="us-east-1")
    bucket = witnessed_stack.settings.witness_bucket
    forged_witness = witness.sign_snapshot(b"not-the-key", "org_forge", 50, "ab" * 32)
    s3.put_object(Bucket=bucket, Key=witness.witness_key("org_forge", 50), Body=json.dumps(forged_witness))
    other_key = relay_protocol.generate_signing_key()
    forged_checkpoint = witness.sign_checkpoint(other_key, "org_forge", 60, b"\x01" * 32)
    s3.put_object(Bucket=bucket, Key=witness.checkpoint_key("org_forge", 60), Body=json.dumps(forged_checkpoint))
    report = verify_chain("org_forge", store=store)
    assert report.intact and report.length == 3
    assert len(report.rejected_anchors) == 2
    assert any("HMAC" in reason for reason in report.rejected_anchors)
    assert any("signature" in reason for reason in report.rejected_anchors)


def test_audit_milestone_publishes_a_witness_every_1000_records(witnessed_stack, monkeypatch):
    monkeypatch.setattr("flowlink.audit.store.WITNESS_INTERVAL", 4)
    store = audit.default_store()
    store._on_append = audit._publish_milestone_witness  # the default store's hook
    for n in range(9):
        store.append("org_mile", "read", {"n": n})
    keys = [o["Key"] for o in boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket=witnessed_stack.settings.witness_bucket, Prefix="witness/org_mile/").get("Contents", [])]
    assert keys == [witness.witness_key("org_mile", 4), witness.witness_key("org_mile", 8)]


def test_audit_proof_api_inclusion_and_consistency_verify_against_signed_checkpoints(witnessed_stack, live_gateway):
    org = witnessed_stack.org("proofs")
    _append(witnessed_stack, org["org_id"], 10)
    public_key = relay_protocol.public_key_from_pem(
        relay_protocol.public_key_to_pem(witness.signing_key(witnessed_stack.settings))
    )
    with live_gateway.admin(org) as client:
        proof = client.get("/api/v1/audit/proof/5").json()
        checkpoint = witness.verify_checkpoint(public_key, proof["checkpoint"], org_id=org["org_id"])
        assert checkpoint["root"] == proof["root"] and checkpoint["tree_size"] == proof["tree_size"] == 13
        leaf = merkle.leaf_hash(proof["event"].encode())
        path = [bytes.fromhex(h) for h in proof["path"]]
        assert merkle.verify_inclusion(leaf, 4, 13, path, bytes.fromhex(checkpoint["root"]))
        assert not merkle.verify_inclusion(leaf, 5, 13, path, bytes.fromhex(checkpoint["root"]))

        older = client.get("/api/v1/audit/proof/2", params={"tree_size": 7}).json()
        assert merkle.verify_inclusion(merkle.leaf_hash(older["event"].encode()), 1, 7,
                                       [bytes.fromhex(h) for h in older["path"]], bytes.fromhex(older["root"]))

        consistency = client.get("/api/v1/audit/consistency", params={"from": 7, "to": 13}).json()
        assert consistency["from_root"] == older["root"]
        assert merkle.verify_consistency(7, 13, bytes.fromhex(consistency["from_root"]),
                                         bytes.fromhex(consistency["to_root"]),
                                         [bytes.fromhex(h) for h in consistency["proof"]])
        assert consistency["to_root"] == checkpoint["root"]


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/audit/proof/0", {}),
        ("/api/v1/audit/proof/abc", {}),
        ("/api/v1/audit/proof/999", {}),
        ("/api/v1/audit/proof/2", {"tree_size": "1"}),
        ("/api/v1/audit/proof/2", {"tree_size": "-4"}),
        ("/api/v1/audit/consistency", {"from": "5", "to": "2"}),
        ("/api/v1/audit/consistency", {"from": "x"}),
        ("/api/v1/audit/consistency", {"from": "2", "to": "999"}),
        ("/api/v1/audit/consistency", {}),
        ("/api/v1/audit/events", {"limit": "0"}),
        ("/api/v1/audit/events", {"limit": "many"}),
        ("/api/v1/audit/events", {"since": "2026-11-26T00:00:00Z", "until": "2026-11-25T00:00:00Z"}),
        ("/api/v1/audit/events", {"since": "yesterday"}),
        ("/api/v1/audit/events", {"page_token": "not-a-token"}),
        ("/api/v1/audit/events", {"page_token": base64.urlsafe_b64encode(b'{"v":1,"before":2,"f":"x"}').decode()}),
    ],
)
def test_audit_api_bad_ranges_and_tokens_are_400_with_a_reason(witnessed_stack, live_gateway, path, params):
    org = witnessed_stack.org("ranges")
    with live_gateway.admin(org) as client:
        response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize(
    "path, params, named",
    [
        ("/api/v1/audit/consistency", {"from": "2", "to": "999"}, "'to' must be between 0 and the log size"),
        ("/api/v1/audit/consistency", {"from": "999"}, "'from' must be between 0 and the log size"),
        ("/api/v1/audit/proof/1", {"tree_size": "999"}, "tree_size must be between 0 and the log size"),
    ],
)
def test_audit_api_out_of_range_sizes_name_the_query_parameter(witnessed_stack, live_gateway, path, params, named):
    org = witnessed_stack.org("ranges")
    with live_gateway.admin(org) as client:
        response = client.get(path, params=params)
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]


def test_audit_events_api_filters_and_pages(witnessed_stack, live_gateway):
    org = witnessed_stack.org("events")
    store = _store(witnessed_stack)
    for n in range(7):
        store.append(org["org_id"], "exec.requested", {"n": n, "relay_id": "rly_a" if n % 2 else "rly_b",
                                                       "decision": "deny" if n == 3 else "auto",
                                                       "command_sha256": f"marker-{n}"})
    with live_gateway.admin(org) as client:
        first = client.get("/api/v1/audit/events", params={"agent": "rly_a", "limit": 2}).json()
        assert [e["fields"]["n"] for e in first["events"]] == [5, 3]
        assert first["chain"]["length"] == 10
        second = client.get("/api/v1/audit/events", params={"agent": "rly_a", "limit": 2,
                                                               "page_token": first["next_page_token"]}).json()
        assert [e["fields"]["n"] for e in second["events"]] == [1]
        assert second["next_page_token"] is None
        denied = client.get("/api/v1/audit/events", params={"decision": "deny", "integrity": "true"}).json()
        assert [e["fields"]["n"] for e in denied["events"]] == [3] and denied["chain"]["intact"] is True
        found = client.get("/api/v1/audit/events", params={"text": "MARKER-6"}).json()
        assert [e["seq"] for e in found["events"]] == [10] and found["events"][0]["hash_ok"] is True
        # A page token of one query is refused by another.
        assert client.get("/api/v1/audit/events", params={"agent": "rly_b",
                                                            "page_token": first["next_page_token"]}).status_code == 400
    agent_events = httpx.get(live_gateway.base_url + "/api/v1/audit/events",
                             headers={"Authorization": f"Bearer {org['api_key']}"})
    assert agent_events.status_code == 200 and agent_events.json()["chain"]["length"] == 10
    agent_export = httpx.get(live_gateway.base_url + "/api/v1/audit/export",
                             headers={"Authorization": f"Bearer {org['api_key']}"})
    assert agent_export.status_code == 403


@pytest.fixture
def audit_tool_served(monkeypatch):
    """Serve the `audit` MCP tool even before the lead lists it in TOOL_MODULES."""
    from flowlink.gateway import mcp_server

    if "flowlink.mcp_tools.audit_tool" not in mcp_server.TOOL_MODULES:
        monkeypatch.setattr(mcp_server, "TOOL_MODULES", [*mcp_server.TOOL_MODULES, "flowlink.mcp_tools.audit_tool"])


@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
def test_audit_mcp_tool_lists_events_with_chain_status(witnessed_stack, audit_tool_served, live_gateway, mode):
    import anyio
    import httpx2
    from mcp.client import Client
    from mcp.client.streamable_http import streamable_http_client

    org = witnessed_stack.org("mcp-audit")
    _append(witnessed_stack, org["org_id"], 4)

    async def action():
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {org['api_key']}"}, timeout=30) as http,
            Client(streamable_http_client(live_gateway.mcp_url, http_client=http), mode=mode) as client,
        ):
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            page = await client.call_tool("audit", {"agent": "rly_a", "limit": 3})
            bad = await client.call_tool("audit", {"page_token": "bm90LWEtdG9rZW4"})
            return tools, page, bad

    tools, page, bad = anyio.run(action)
    assert tools["audit"].annotations.read_only_hint is True and tools["audit"].output_schema is not None
    result = page.structured_content
    assert [event["fields"]["n"] for event in result["events"]] == [3, 2, 1]
    assert result["chain"]["intact"] is True and result["chain"]["length"] == 7
    assert result["next_page_token"]
    assert bad.is_error is True and "page_token" in bad.content[0].text


def test_audit_export_from_the_gateway_verifies_offline(witnessed_stack, live_gateway, tmp_path):
    import argparse

    from flowlink.cli import audit_cmd

    def cli(argv: list[str]) -> int:
        parser = argparse.ArgumentParser(prog="flowlink")
        audit_cmd.register(parser.add_subparsers(dest="command"))
        args = parser.parse_args(argv)
        return args.func(args)

    org = witnessed_stack.org("export")
    store = _store(witnessed_stack)
    _append(witnessed_stack, org["org_id"], 4)
    witness.publish(store, org["org_id"])  # a published checkpoint at 7, then more events
    _append(witnessed_stack, org["org_id"], 2)
    # The key comes from the gateway (any key of the org may fetch it) and is the signing key's.
    public_key = tmp_path / "gateway.pub"
    assert cli(["audit", "public-key", "--out", str(public_key), "--api-url", live_gateway.base_url,
                "--api-key", org["api_key"]]) == 0
    signing = witness.signing_key(witnessed_stack.settings)
    assert public_key.read_text() == relay_protocol.public_key_to_pem(signing)
    served = httpx.get(f"{live_gateway.base_url}/api/v1/audit/public-key",
                       headers={"Authorization": f"Bearer {org['api_key']}"}).json()
    assert served["key_id"] == witness.key_id(signing)
    assert httpx.get(f"{live_gateway.base_url}/api/v1/audit/public-key").status_code == 401
    export_file = tmp_path / "audit.jsonl"
    assert cli(["audit", "export", "--out", str(export_file), "--api-url", live_gateway.base_url,
                "--api-key", org["admin_key"]]) == 0
    lines = [json.loads(line) for line in export_file.read_text().splitlines()]
    assert sum(1 for line in lines if line["type"] == "record") == 9
    assert sorted(line["tree_size"] for line in lines if line["type"] == "checkpoint") == [7, 9]
    assert cli(["audit", "verify", str(export_file), "--public-key", str(public_key)]) == 0
    hmac_file = tmp_path / "hmac.key"
    hmac_file.write_text(HMAC_KEY)
    assert cli(["audit", "verify", str(export_file), "--public-key", str(public_key),
                "--hmac-key-file", str(hmac_file)]) == 0
    cef_file = tmp_path / "audit.cef"
    assert cli(["audit", "export", "--format", "cef", "--out", str(cef_file), "--api-url", live_gateway.base_url,
                "--api-key", org["admin_key"]]) == 0
    assert len(cef_file.read_text().splitlines()) == 9
