"""Integration test of the scheduled witness publisher Lambda against moto (DynamoDB + S3)."""

from __future__ import annotations

import json
import secrets

import boto3
import pytest
from flowlink import audit
from flowlink.audit import witness
from flowlink.audit.integrity import verify_chain

pytestmark = pytest.mark.integration

# The shape EventBridge Scheduler/CloudWatch Events delivers for a rate() schedule.
SCHEDULED_EVENT = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2026-11-25T09:00:00Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/witness"],
    "detail": {},
}


def test_witness_lambda_publishes_each_org_head_once(gateway_stack, lambda_context):
    bucket = "witness-" + secrets.token_hex(4)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings = gateway_stack.configure(FLOWLINK_WITNESS_BUCKET=bucket, FLOWLINK_WITNESS_HMAC_KEY="lambda-test-key")
    audit.set_default_store(audit.store_for(settings))
    first = gateway_stack.org("alpha")  # bootstrap writes key.created events
    second = gateway_stack.org("beta")
    from functions.witness_publisher.app import handler

    summary = handler(SCHEDULED_EVENT, lambda_context)
    assert {entry["org"] for entry in summary["published"]} == {first["org_id"], second["org_id"]}
    again = handler(SCHEDULED_EVENT, lambda_context)  # nothing new: write-once keys stay
    assert again["published"] == [] and set(again["unchanged"]) == {first["org_id"], second["org_id"]}

    key = witness.witness_key(first["org_id"], summary["published"][0]["seq"] if summary["published"][0]["org"]
                              == first["org_id"] else summary["published"][1]["seq"])
    stored = s3.get_object(Bucket=bucket, Key=key)
    assert stored["ObjectLockMode"] == "COMPLIANCE"
    document = json.loads(stored["Body"].read())
    assert witness.verify_snapshot(b"lambda-test-key", document, org_id=first["org_id"])
    report = verify_chain(first["org_id"], store=audit.store_for(settings))
    assert report.intact and report.anchors_checked == 2  # one snapshot, one checkpoint
