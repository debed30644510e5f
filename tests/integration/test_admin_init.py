"""`flowlink admin init` against a stack that looks deployed: its first org and keys, then real use.

The stack's tables are provisioned from template.yaml on the session's moto server, and a
CloudFormation stack of the same name carries the outputs the command reads (pointing at
the live gateway). The CLI runs as a real process with AWS_ENDPOINT_URL at moto and no
FLOWLINK_* settings, so it finds everything by --stack-name or --table-prefix as a user's
would; its keys are then used against the real gateway app, and its printed
`flowlink-relay enroll` command is run as printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
import pytest
from flowlink.bootstrap import OUTPUT_HTTP_API_URL, OUTPUT_MCP_URL, OUTPUT_TABLE_PREFIX
from flowlink.local.cfn_template import load_template
from flowlink.local.provision import find_template, provision

pytestmark = pytest.mark.integration

EXIT_ORG_EXISTS = 3


@pytest.fixture
def create_gateway_tables():
    """The gateway's tables are the whole template, as `sam deploy` creates them."""

    def create(settings) -> None:
        provision(stack_name=settings.table_prefix, region=settings.region)

    return create


@dataclass
class Deployed:
    stack_name: str
    api_url: str
    mcp_url: str
    region: str

    def client(self, service: str):
        return boto3.client(service, region_name=self.region)

    def items(self, table: str) -> list[dict]:
        return self.client("dynamodb").scan(TableName=f"{self.stack_name}-{table}")["Items"]


@pytest.fixture
def deployed(live_gateway) -> Deployed:
    """The live gateway's tables plus a CloudFormation stack named like them, whose outputs are
    the ones template.yaml declares (values pointing at the live gateway)."""
    settings = live_gateway.stack.settings
    declared = load_template(find_template())["Outputs"]
    values = {
        OUTPUT_TABLE_PREFIX: settings.table_prefix,
        OUTPUT_HTTP_API_URL: live_gateway.base_url,
        OUTPUT_MCP_URL: live_gateway.mcp_url,
    }
    assert set(values) <= set(declared), "admin init reads outputs template.yaml does not declare"
    template = {
        "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {name: {"Value": value} for name, value in values.items()},
    }
    deployed = Deployed(settings.table_prefix, live_gateway.base_url, live_gateway.mcp_url, settings.region)
    deployed.client("cloudformation").create_stack(StackName=settings.table_prefix, TemplateBody=json.dumps(template))
    return deployed


def cli_env(**overrides: str) -> dict[str, str]:
    """This process's environment (fake credentials, AWS_ENDPOINT_URL at moto) without any
    FlowLink setting, so the command can only find the stack through its own options."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLOWLINK_")}
    env.update(overrides)
    return env


def flowlink(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flowlink.cli", *args],
        env=env or cli_env(), capture_output=True, text=True, timeout=120, check=False,
    )


def init_json(deployed: Deployed, *extra: str, org: str = "acme") -> dict:
    done = flowlink("admin", "init", "--org", org, "--stack-name", deployed.stack_name, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def get_settings(deployed: Deployed, key: str) -> httpx.Response:
    return httpx.get(deployed.api_url + "/api/v1/org/settings", headers={"Authorization": f"Bearer {key}"})


def test_admin_init_creates_an_org_whose_keys_the_gateway_accepts(deployed):
    result = init_json(deployed)

    assert result["org_created"] is True
    assert result["mcp_url"] == deployed.mcp_url and result["table_prefix"] == deployed.stack_name
    admin, agent = result["admin_key"]["key"], result["agent_key"]["key"]
    response = get_settings(deployed, admin)
    assert response.status_code == 200, response.text
    assert response.json()["org_id"] == result["org_id"] and response.json()["name"] == "acme"
    assert get_settings(deployed, agent).json()["org_id"] == result["org_id"]
    # Scopes are what they claim: the agent key cannot manage keys, the admin key can.
    new_key = {"scope": "agent", "name": "ci"}
    headers = {"Authorization": f"Bearer {agent}"}
    assert httpx.post(deployed.api_url + "/api/v1/keys", json=new_key, headers=headers).status_code == 403
    headers = {"Authorization": f"Bearer {admin}"}
    assert httpx.post(deployed.api_url + "/api/v1/keys", json=new_key, headers=headers).status_code == 201

    stored = deployed.items("api_keys")
    assert {item["key_hash"]["S"] for item in stored} >= {
        hashlib.sha256(key.encode()).hexdigest() for key in (admin, agent)
    }
    assert not any(key in json.dumps(stored) for key in (admin, agent)), "a plaintext key reached the table"
    audit = httpx.get(deployed.api_url + "/api/v1/audit/events", headers=headers, params={"limit": "10"}).json()
    kinds = sorted(event["kind"] for event in audit["events"])
    assert kinds == ["key.created", "key.created", "key.created", "org.created"]


def test_admin_init_prints_next_steps_that_enroll_a_real_relay(deployed, tmp_path: Path):
    done = flowlink("admin", "init", "--org", "acme", "--stack-name", deployed.stack_name, "--relay", "web-01")
    assert done.returncode == 0, done.stderr
    org_id = re.search(r"\((org_[0-9a-f]+)\) created", done.stdout).group(1)
    assert deployed.mcp_url in done.stdout
    (enroll_line,) = [line.strip() for line in done.stdout.splitlines() if "flowlink-relay enroll" in line]

    argv = shlex.split(enroll_line)
    assert argv[0] == "flowlink-relay"
    state_dir = tmp_path / "relay"
    enrolled = subprocess.run(
        [sys.executable, "-m", "edge_relay", *argv[1:], "--state-dir", str(state_dir)],
        env=cli_env(), capture_output=True, text=True, timeout=60, check=False,
    )
    assert enrolled.returncode == 0, enrolled.stderr
    identity = json.loads((state_dir / "identity.json").read_text())
    assert identity["org_id"] == org_id and identity["name"] == "web-01"


def test_admin_init_refuses_an_org_that_exists_unless_asked_to_add_keys(deployed):
    first = init_json(deployed)
    keys_before = deployed.items("api_keys")

    again = flowlink("admin", "init", "--org", "acme", "--stack-name", deployed.stack_name)
    assert again.returncode == EXIT_ORG_EXISTS
    assert "already exists" in again.stderr and first["org_id"] in again.stderr and "--existing-org" in again.stderr
    assert again.stdout == ""
    assert len(deployed.items("orgs")) == 1
    assert deployed.items("api_keys") == keys_before

    added = init_json(deployed, "--existing-org", "--no-agent-key")
    assert added["org_id"] == first["org_id"] and added["org_created"] is False and added["agent_key"] is None
    assert len(deployed.items("orgs")) == 1
    assert len(deployed.items("api_keys")) == len(keys_before) + 1
    for key in (first["admin_key"]["key"], added["admin_key"]["key"]):
        assert get_settings(deployed, key).json()["org_id"] == first["org_id"]

    unknown = flowlink("admin", "init", "--org", "nobody", "--stack-name", deployed.stack_name, "--existing-org")
    assert unknown.returncode == 1 and "no org named 'nobody'" in unknown.stderr
    assert len(deployed.items("orgs")) == 1


def test_admin_init_with_a_wrong_stack_or_prefix_fails_and_writes_nothing(deployed):
    dynamodb = deployed.client("dynamodb")

    no_stack = flowlink("admin", "init", "--org", "acme", "--stack-name", "no-such-stack")
    assert no_stack.returncode == 1
    assert "no CloudFormation stack named 'no-such-stack'" in no_stack.stderr

    no_tables = flowlink("admin", "init", "--org", "acme", "--table-prefix", "no-such-prefix")
    assert no_tables.returncode == 1
    assert "no FlowLink tables with prefix 'no-such-prefix'" in no_tables.stderr
    assert "nothing was written" in no_tables.stderr
    tables = [name for page in dynamodb.get_paginator("list_tables").paginate() for name in page["TableNames"]]
    assert not [name for name in tables if name.startswith("no-such-prefix")], "it created tables"

    # A prefix with only some of the tables (an older or half-deleted stack): refused before
    # the one table that exists is touched.
    partial = deployed.stack_name + "-half"
    dynamodb.create_table(
        TableName=f"{partial}-orgs",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "org_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "org_id", "KeyType": "HASH"}],
    )
    half = flowlink("admin", "init", "--org", "acme", "--table-prefix", partial)
    assert half.returncode == 1
    assert f"{partial}-api_keys" in half.stderr and f"{partial}-orgs," not in half.stderr
    assert dynamodb.scan(TableName=f"{partial}-orgs")["Items"] == []

    # A name the enrollment would refuse is refused before the org is created, not after.
    bad_relay = flowlink("admin", "init", "--org", "acme", "--stack-name", deployed.stack_name, "--relay", "no spaces")
    assert bad_relay.returncode == 2 and "name must be" in bad_relay.stderr
    assert deployed.items("orgs") == [] and deployed.items("api_keys") == []

    # An org name is display text: punctuation is fine, escape sequences and bidi overrides are not.
    for hidden in ("acme\x1b[31m", "ac\u202eme", "acme\nroot"):
        refused = flowlink("admin", "init", "--org", hidden, "--stack-name", deployed.stack_name)
        assert refused.returncode == 2 and "control characters" in refused.stderr, refused.stderr
    assert deployed.items("orgs") == []


def test_admin_init_without_aws_credentials_fails_and_writes_nothing(deployed):
    env = cli_env(AWS_EC2_METADATA_DISABLED="true")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        env.pop(name, None)

    for target in (["--stack-name", deployed.stack_name], ["--table-prefix", deployed.stack_name]):
        done = flowlink("admin", "init", "--org", "acme", *target, env=env)
        assert done.returncode == 1, done.stderr
        assert "no AWS credentials found" in done.stderr
    assert deployed.items("orgs") == [] and deployed.items("api_keys") == []
