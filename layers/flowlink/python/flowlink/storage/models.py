"""PynamoDB models of the control-plane tables in docs/contracts.md §3.

Table names come from ``Settings.table(name)`` and are bound when a model set is built
(``build_models(settings)``), so one process can talk to differently prefixed stacks (the
tests use their own prefix). No endpoint is ever set here: pynamodb passes
``endpoint_url=None`` to botocore, which then honours ``AWS_ENDPOINT_URL`` (moto,
LocalStack or AWS). This module only declares shapes; queries live in ``repository``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.exceptions import TableError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from flowlink.settings import Settings


@dataclass(frozen=True)
class Models:
    """The model classes of one stack (one table prefix and region)."""

    orgs: Any
    api_keys: Any
    agents: Any
    relay_names: Any
    connections: Any
    commands: Any
    enrollments: Any


def build_models(settings: Settings) -> Models:
    """Model classes bound to the table names of ``settings`` (cached per prefix and region)."""
    return _build_models(settings.table_prefix, settings.region, settings.aws_endpoint)


_shared_connections: dict[tuple[str, str | None], Any] = {}
_shared_lock = threading.Lock()


def _share_connection(model: Any, region: str, endpoint: str | None) -> None:
    """Make every model of a region use one pynamodb Connection (one botocore client).

    pynamodb gives each model class its own Connection, each building its own botocore
    session and client: ~6 client builds per stack, noticeable on a Lambda cold start. A
    Connection is not table-specific (the table name travels with each operation), so the
    models share one and register their table schema on it. Relies on pynamodb 6's
    ``TableConnection.connection``; tests/integration/test_gateway_storage.py fails loudly
    if an upgrade changes that.
    """
    table_connection = model._get_connection()
    with _shared_lock:
        # Keyed by endpoint too: a connection is bound to the endpoint it was built for
        # (moto, LocalStack or AWS), and one process may talk to several (tests do).
        shared = _shared_connections.setdefault((region, endpoint), table_connection.connection)
    if table_connection.connection is not shared:
        name = model.Meta.table_name
        try:
            # Already there when a second model shares a table (relay-name claims in agents):
            # keep the first one's schema, which knows the table's indexes.
            shared.get_meta_table(name)
        except TableError:
            shared.add_meta_table(table_connection.connection.get_meta_table(name))
        table_connection.connection = shared


@lru_cache(maxsize=8)
def _build_models(table_prefix: str, region: str, endpoint: str | None = None) -> Models:
    def table(name: str) -> str:
        return Settings(table_prefix=table_prefix).table(name)

    class Org(Model):
        class Meta:
            table_name = table("orgs")

        org_id = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute()
        plan = UnicodeAttribute(default="free")
        approvers = ListAttribute(null=True)
        # Org approval settings (issue 4): approvers are maps such as
        # {"name": "alice", "telegram_user_id": 42}; 2 approvals make a two-person rule.
        approval_timeout_seconds = NumberAttribute(default=600)
        approvals_required = NumberAttribute(default=1)
        notification_channels = ListAttribute(null=True)
        # The org's Shield policy (YAML, docs/policy.md), validated before it is stored.
        policy_text = UnicodeAttribute(null=True)
        refuse_drifted_relays = BooleanAttribute(default=False)
        created_at = UnicodeAttribute()

    class ApiKeysByOrg(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_org"
            projection = AllProjection()

        org_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class ApiKey(Model):
        class Meta:
            table_name = table("api_keys")

        key_hash = UnicodeAttribute(hash_key=True)
        key_id = UnicodeAttribute()
        org_id = UnicodeAttribute()
        scope = UnicodeAttribute()
        name = UnicodeAttribute()
        prefix = UnicodeAttribute()
        created_at = UnicodeAttribute()
        created_by = UnicodeAttribute(null=True)
        revoked_at = UnicodeAttribute(null=True)
        by_org = ApiKeysByOrg()

    class AgentsByOrg(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_org"
            projection = AllProjection()

        org_id = UnicodeAttribute(hash_key=True)
        name = UnicodeAttribute(range_key=True)

    class Agent(Model):
        class Meta:
            table_name = table("agents")

        relay_id = UnicodeAttribute(hash_key=True)
        org_id = UnicodeAttribute()
        name = UnicodeAttribute()
        hostname = UnicodeAttribute(null=True)
        facts = JSONAttribute(null=True)
        credential_hash = UnicodeAttribute()
        signing_public_key = UnicodeAttribute(null=True)
        box_public_key = UnicodeAttribute(null=True)
        status = UnicodeAttribute(default="offline")
        connection_id = UnicodeAttribute(null=True)
        last_seen = UnicodeAttribute(null=True)
        enrolled_at = UnicodeAttribute()
        version = UnicodeAttribute(null=True)
        attestation = JSONAttribute(null=True)
        # Why the relay is refused until an admin re-enrolls it: "identity_mismatch" (it
        # presented another signing key) or "attestation_drift" (its code changed and the
        # org refuses drifted relays). A drift the org tolerates is only recorded in audit.
        flagged = UnicodeAttribute(null=True)
        # When its last hello reported code that differs from the org's relay baseline
        # (ISO time), while the org tolerated drift: if the org later refuses drifted
        # relays, the gateway flags it before sending it anything (and when the setting is
        # turned on). Absent when the last measurement matched or no baseline exists.
        drifted_at = UnicodeAttribute(null=True)
        by_org = AgentsByOrg()

    class RelayNameClaim(Model):
        """One item per relay name of an org, in the agents table, so a name is held by one relay.

        DynamoDB cannot make a GSI key unique, so enrollment first writes this item with a
        condition (the name is free, or its holder is gone or flagged) and only then the
        relay. Its key (``relay_name#{org_id}#{name}``) can never be a relay id, and it has no
        ``org_id``/``name`` attributes, so it stays out of ``by_org`` and out of agent listings.
        """

        class Meta:
            table_name = table("agents")

        relay_id = UnicodeAttribute(hash_key=True)
        claimed_by = UnicodeAttribute()
        claimed_at = UnicodeAttribute()

    class Connection(Model):
        class Meta:
            table_name = table("connections")

        connection_id = UnicodeAttribute(hash_key=True)
        relay_id = UnicodeAttribute()
        org_id = UnicodeAttribute()
        connected_at = UnicodeAttribute()
        # Epoch seconds: the table's TTL attribute, so a connection whose $disconnect was
        # lost is eventually cleaned up (API Gateway closes every socket within 2 hours).
        expires_at = NumberAttribute(null=True)

    class CommandsByAgent(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_agent"
            projection = AllProjection()

        agent_key = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class CommandsByOrg(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_org"
            projection = AllProjection()

        org_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class Command(Model):
        class Meta:
            table_name = table("commands")

        command_id = UnicodeAttribute(hash_key=True)
        org_id = UnicodeAttribute()
        relay_id = UnicodeAttribute()
        agent_key = UnicodeAttribute()
        agent_name = UnicodeAttribute(null=True)
        op = UnicodeAttribute(default="exec")
        command = UnicodeAttribute(null=True)
        path = UnicodeAttribute(null=True)
        cwd = UnicodeAttribute(null=True)
        timeout = NumberAttribute(default=60)
        # Only the variable names: values may be secrets and never reach storage.
        env_keys = ListAttribute(null=True)
        # The env values, kept only until the relay acknowledges the command so a re-sync
        # after reconnect can re-sign the same command; removed on ack or result.
        pending_env = JSONAttribute(null=True)
        # Approval grant (issue 4) a hard_ask command carries once approved; signed into
        # the envelope, also when a sync re-sends it.
        grant = UnicodeAttribute(null=True)
        # hard_ask: the approval this command waits for (issue 4).
        approval_id = UnicodeAttribute(null=True)
        # Names of the secrets injected at run time (issue 6); never values. The relay gets
        # their ciphertexts, sealed to its own key, in the envelope.
        secret_names = ListAttribute(null=True)
        idempotency_key = UnicodeAttribute(null=True)
        requested_by = UnicodeAttribute(null=True)
        requested_by_name = UnicodeAttribute(null=True)
        gateway_verdict = JSONAttribute(null=True)
        relay_verdict = JSONAttribute(null=True)
        decision = UnicodeAttribute(null=True)
        status = UnicodeAttribute()
        error = UnicodeAttribute(null=True)
        exit_code = NumberAttribute(null=True)
        stdout = UnicodeAttribute(null=True)
        stderr = UnicodeAttribute(null=True)
        truncated = BooleanAttribute(null=True)
        duration_ms = NumberAttribute(null=True)
        created_at = UnicodeAttribute()
        updated_at = UnicodeAttribute(null=True)
        dispatched_at = UnicodeAttribute(null=True)
        acked_at = UnicodeAttribute(null=True)
        completed_at = UnicodeAttribute(null=True)
        by_agent = CommandsByAgent()
        by_org = CommandsByOrg()

    class Enrollment(Model):
        class Meta:
            table_name = table("enrollments")

        token_hash = UnicodeAttribute(hash_key=True)
        org_id = UnicodeAttribute()
        name = UnicodeAttribute()
        created_at = UnicodeAttribute()
        # Epoch seconds, because it is also the table's TTL attribute; expiry is still
        # checked explicitly since TTL deletion is lazy (and moto never deletes).
        expires_at = NumberAttribute()
        created_by = UnicodeAttribute(null=True)
        used_at = UnicodeAttribute(null=True)
        relay_id = UnicodeAttribute(null=True)

    for model in (Org, ApiKey, Agent, RelayNameClaim, Connection, Command, Enrollment):
        model.Meta.region = region
        _share_connection(model, region, endpoint)
    return Models(
        orgs=Org,
        api_keys=ApiKey,
        agents=Agent,
        relay_names=RelayNameClaim,
        connections=Connection,
        commands=Command,
        enrollments=Enrollment,
    )
