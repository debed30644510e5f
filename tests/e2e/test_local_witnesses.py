"""On the local stack the template's scheduled witness publisher runs as it would on AWS
(here every second instead of every 5 minutes), so after a few execs the integrity API
checks the chain against witnesses, and deleting the newest events is caught through them
(issue 5's "done when", with no manual publishing)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anyio
import boto3
import httpx
import pytest
from flowlink.local.harness import e2e_stack_config, mcp_client
from flowlink.local.stack import LocalStack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, dict]]:
    stack = LocalStack(e2e_stack_config(tmp_path_factory.mktemp("witness-stack"), relay_name="witness-relay",
                                        schedule_interval=1.0))
    info = stack.up()
    try:
        yield stack, info
    finally:
        stack.down()


def _integrity(info: dict) -> dict:
    response = httpx.get(f"{info['api_url']}/api/v1/audit/integrity",
                         headers={"Authorization": f"Bearer {info['admin_key']}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)


def test_scheduled_witnesses_anchor_the_chain_and_catch_a_deleted_tail(running):
    stack, info = running
    assert [run.logical_id for run in stack.schedules.runs] == ["WitnessPublisherFunction"]

    async def execs():
        async with mcp_client(info["mcp_url"], info["api_key"], "auto") as client:
            for word in ("one", "two"):
                result = await client.call_tool("exec", {"agent": info["relay_id"], "command": f"echo {word}"})
                assert not result.is_error and result.structured_content["stdout"] == f"{word}\n"

    anyio.run(execs)
    length = _integrity(info)["length"]
    env = stack.gateway_env()
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint, region_name=stack.config.region)
    bucket, org = env["FLOWLINK_WITNESS_BUCKET"], info["org_id"]

    def witnessed_seqs() -> set[int]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"witness/{org}/").get("Contents", [])
        return {int(item["Key"].rsplit("/", 1)[1].split(".")[0]) for item in listing}

    # A scheduled run witnesses the head the execs left (no one published by hand).
    _wait(lambda: max(witnessed_seqs(), default=0) >= length, 60, "a witness of the current head")
    report = _integrity(info)
    assert report["intact"] and report["anchors_checked"] >= 1

    # Someone with table access deletes the newest events: the witness still says they existed.
    table = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint, region_name=stack.config.region)
    newest = _integrity(info)["length"]
    for seq in (newest, newest - 1):
        table.delete_item(TableName=f"{stack.config.stack_name}-audit",
                          Key={"org_id": {"S": org}, "seq": {"N": str(seq)}})
    report = _integrity(info)
    assert not report["intact"] and report["reason"].startswith("truncated"), report
    assert report["broken_at"] <= newest - 1
