"""Storage wiring against moto over HTTP: table names from Settings, one shared pynamodb
connection per region (relies on pynamodb internals: this fails loudly if an upgrade moves them)."""

from __future__ import annotations

import pytest
from flowlink.settings import Settings
from flowlink.storage import Store, build_models

pytestmark = pytest.mark.integration


def test_gateway_storage_models_share_one_connection_and_use_the_prefix(gateway_stack):
    models = build_models(gateway_stack.settings)
    classes = [
        models.orgs,
        models.api_keys,
        models.agents,
        models.connections,
        models.commands,
        models.enrollments,
    ]
    connections = {id(model._get_connection().connection) for model in classes}
    assert len(connections) == 1
    prefix = gateway_stack.settings.table_prefix
    assert [m.Meta.table_name for m in classes] == [
        f"{prefix}-{name}"
        for name in ("orgs", "api_keys", "agents", "connections", "commands", "enrollments")
    ]
    store = Store(gateway_stack.settings)
    store.create_org("org_storage", "storage")
    store.put_connection("conn-1", "rly_1", "org_storage", "2026-11-25T09:00:00.000000Z", expires_at=1)
    assert store.get_org("org_storage").name == "storage"
    assert store.get_connection("conn-1").relay_id == "rly_1"


def test_gateway_storage_prefixes_are_isolated(gateway_stack):
    other = Settings(table_prefix=gateway_stack.settings.table_prefix + "-other")
    assert build_models(other).orgs.Meta.table_name.endswith("-other-orgs")
    assert build_models(other) is build_models(other)
    assert build_models(other).orgs is not build_models(gateway_stack.settings).orgs


def test_gateway_storage_hot_agent_reads_leave_the_attestation_out_and_keep_it_stored(gateway_stack):
    store = Store(gateway_stack.settings)
    store.create_org("org_attest", "attest")
    measurement = {"digest": "d" * 64, "files": {f"edge_relay/m{i}.py": "a" * 64 for i in range(200)}}
    agent = store.models.agents(
        relay_id="rly_attest", org_id="org_attest", name="web-01", credential_hash="h",
        enrolled_at="2026-11-25T09:00:00.000000Z", attestation=measurement,
    )
    agent.save()

    hot = store.get_agent("org_attest", "rly_attest")
    assert hot.name == "web-01" and hot.credential_hash == "h" and hot.attestation is None
    assert [a.attestation for a in store.list_agents("org_attest")] == [None]
    assert [a.name for a in store.find_agents_by_name("org_attest", "web-01")] == ["web-01"]

    # An update through a record read without it leaves the stored measurement alone.
    store.mark_agent_online(hot, "conn-9", "2026-11-25T09:01:00.000000Z")
    full = store.get_agent("org_attest", "rly_attest", with_attestation=True)
    assert full.status == "online" and full.attestation == measurement
    assert [a.attestation for a in store.list_agents("org_attest", with_attestation=True)] == [measurement]
