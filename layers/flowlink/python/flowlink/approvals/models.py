"""PynamoDB model of the ``approvals`` table (docs/contracts.md §3): one item per hard_ask.

The Step Functions task token lives only here, server-side; nothing that leaves the
control plane (Telegram buttons, API answers) ever carries it. Table names are bound
from Settings like every other model (see flowlink.storage.models).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pynamodb.attributes import JSONAttribute, ListAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from flowlink.settings import Settings

# Approval states. ``pending`` is the only one a decision may change; the rest are final.
# ``cancelled``: the requester withdrew the command (an MCP ``tasks/cancel``) before a decision.
PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
TIMED_OUT = "timed_out"
FAILED = "failed"
CANCELLED = "cancelled"
FINAL_STATES = frozenset({APPROVED, DENIED, TIMED_OUT, FAILED, CANCELLED})


def approval_model(settings: Settings) -> Any:
    return _approval_model(settings.table_prefix, settings.region, settings.aws_endpoint)


@lru_cache(maxsize=8)
def _approval_model(table_prefix: str, region: str, endpoint: str | None = None) -> Any:
    # ``endpoint`` only keys the cache: pynamodb binds a model's connection to the endpoint
    # botocore resolves on first use, so another endpoint needs other model classes.
    class ApprovalsByOrg(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_org"
            projection = AllProjection()

        org_id = UnicodeAttribute(hash_key=True)
        created_at = UnicodeAttribute(range_key=True)

    class Approval(Model):
        class Meta:
            table_name = Settings(table_prefix=table_prefix).table("approvals")

        approval_id = UnicodeAttribute(hash_key=True)
        org_id = UnicodeAttribute()
        created_at = UnicodeAttribute()
        command_id = UnicodeAttribute()
        relay_id = UnicodeAttribute()
        agent_name = UnicodeAttribute(null=True)
        hostname = UnicodeAttribute(null=True)
        command = UnicodeAttribute()
        command_sha256 = UnicodeAttribute()
        score = NumberAttribute(default=0)
        reasons = ListAttribute(null=True)
        requested_by = UnicodeAttribute(null=True)
        status = UnicodeAttribute(default=PENDING)
        needed = NumberAttribute(default=1)
        # [{"approver", "channel", "decision", "at", "comment"}]
        decisions = ListAttribute(null=True)
        # Approver identities that already decided, for the "one vote each" condition.
        decided_by = ListAttribute(null=True)
        # Telegram update ids already handled, so a replayed update changes nothing.
        seen_updates = ListAttribute(null=True)
        timeout_seconds = NumberAttribute(default=600)
        expires_at = UnicodeAttribute()
        task_token = UnicodeAttribute(null=True)
        execution_arn = UnicodeAttribute(null=True)
        # [{"chat_id", "message_id"}] of the Telegram messages to edit when decided.
        messages = ListAttribute(null=True)
        notify_errors = ListAttribute(null=True)
        decided_at = UnicodeAttribute(null=True)
        dispatched_at = UnicodeAttribute(null=True)
        outcome_detail = JSONAttribute(null=True)
        by_org = ApprovalsByOrg()

    Approval.Meta.region = region
    return Approval
