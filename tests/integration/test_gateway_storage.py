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
