"""Provisioning a moto server from the real ``template.yaml``: the tables, indexes, bucket and
queue that exist afterwards are exactly what the template declares, so the local stack and a
`sam deploy` cannot drift. The template is read here with cfn-lint's own decoder, not with
the provisioner's loader, so a loader bug cannot hide itself."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode
from flowlink.local.provision import ProvisionError, find_template, provision
from flowlink.settings import TABLE_NAMES

pytestmark = pytest.mark.integration

REGION = "us-east-1"
_stack_numbers = itertools.count()


def _plain(node):
    return json.loads(json.dumps(node))


@pytest.fixture(scope="module")
def declared_tables() -> dict[str, dict]:
    template, matches = decode(str(find_template()))
    assert not matches, matches
    return {
        logical_id: _plain(resource["Properties"])
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::DynamoDB::Table"
    }


@pytest.fixture
def stack_name() -> str:
    return f"provtest{next(_stack_numbers)}"


def _client(service: str, endpoint: str):
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint)


def _table_suffix(props: dict) -> str:
    template_text = props["TableName"]["Fn::Sub"]
    assert template_text.startswith("${AWS::StackName}-")
    return template_text.removeprefix("${AWS::StackName}-")


def _keys(schema):
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def test_provision_creates_every_template_table_with_its_keys_and_indexes(moto_endpoint, stack_name, declared_tables):
    report = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    ddb = _client("dynamodb", moto_endpoint)

    assert set(report.tables) == set(declared_tables)
    for logical_id, props in declared_tables.items():
        name = f"{stack_name}-{_table_suffix(props)}"
        assert report.tables[logical_id] == name
        table = ddb.describe_table(TableName=name)["Table"]
        assert _keys(table["KeySchema"]) == _keys(props["KeySchema"]), name
        assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
            (a["AttributeName"], a["AttributeType"]) for a in props["AttributeDefinitions"]
        }, name
        assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"] == "PAY_PER_REQUEST"
        live_indexes = {i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
                        for i in table.get("GlobalSecondaryIndexes", [])}
        declared_indexes = {i["IndexName"]: (_keys(i["KeySchema"]), i["Projection"]["ProjectionType"])
                            for i in props.get("GlobalSecondaryIndexes", [])}
        assert live_indexes == declared_indexes, name
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if props.get("TimeToLiveSpecification", {}).get("Enabled"):
            assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": props["TimeToLiveSpecification"]["AttributeName"]}
        else:
            assert ttl["TimeToLiveStatus"] == "DISABLED"


def test_provision_names_tables_the_way_settings_expects(moto_endpoint, stack_name):
    from flowlink.settings import Settings

    report = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    settings = Settings(table_prefix=stack_name, region=REGION)
    assert sorted(report.tables.values()) == sorted(settings.table(name) for name in TABLE_NAMES)


def test_provision_audit_table_is_deletion_protected(moto_endpoint, stack_name):
    provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    table = _client("dynamodb", moto_endpoint).describe_table(TableName=f"{stack_name}-audit")["Table"]
    assert table["DeletionProtectionEnabled"] is True


def test_provision_witness_bucket_has_compliance_object_lock(moto_endpoint, stack_name):
    report = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    bucket = report.buckets["WitnessBucket"]
    assert bucket.startswith(f"{stack_name}-witness-")
    s3 = _client("s3", moto_endpoint)
    lock = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    assert lock["ObjectLockEnabled"] == "Enabled"
    assert lock["Rule"]["DefaultRetention"]["Mode"] == "COMPLIANCE"
    s3.put_object(Bucket=bucket, Key="snap.json", Body=b"{}")
    version = s3.head_object(Bucket=bucket, Key="snap.json")["VersionId"]
    with pytest.raises(s3.exceptions.ClientError):
        s3.delete_object(Bucket=bucket, Key="snap.json", VersionId=version)


def test_provision_creates_the_dead_letter_queue(moto_endpoint, stack_name):
    report = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    url = report.queues["JobsDeadLetterQueue"]
    attributes = _client("sqs", moto_endpoint).get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["MessageRetentionPeriod"] == "1209600"


def test_provision_twice_creates_nothing_new(moto_endpoint, stack_name):
    first = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    second = provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    assert first.created and not first.existing
    assert second.created == []
    assert sorted(second.existing) == sorted(first.created)


def test_provision_refuses_an_existing_table_with_a_different_key(moto_endpoint, stack_name):
    _client("dynamodb", moto_endpoint).create_table(
        TableName=f"{stack_name}-agents",
        KeySchema=[{"AttributeName": "name", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "name", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ProvisionError, match=f"{stack_name}-agents"):
        provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)


def test_provision_adds_an_index_the_template_gained(moto_endpoint, stack_name):
    ddb = _client("dynamodb", moto_endpoint)
    ddb.create_table(
        TableName=f"{stack_name}-commands",
        KeySchema=[{"AttributeName": "command_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "command_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    provision(stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)
    indexes = ddb.describe_table(TableName=f"{stack_name}-commands")["Table"]["GlobalSecondaryIndexes"]
    assert sorted(i["IndexName"] for i in indexes) == ["by_agent", "by_org"]


STATE_MACHINE_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Timeout: {Type: Number, Default: 60}
Resources:
  NotifyFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/notify/, Handler: app.handler, Runtime: python3.11}
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      Name: !Sub "${AWS::StackName}-flow"
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions:
        NotifyArn: !GetAtt NotifyFunction.Arn
        TimeoutSeconds: !Ref Timeout
"""

FLOW_DEFINITION = {
    "StartAt": "Notify",
    "States": {
        "Notify": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
            "Parameters": {"FunctionName": "${NotifyArn}", "Payload": {"token.$": "$$.Task.Token"}},
            "TimeoutSeconds": 60,
            "Comment": "times out after ${TimeoutSeconds} s",
            "End": True,
        }
    },
}


def test_provision_state_machine_applies_definition_substitutions(moto_endpoint, stack_name, tmp_path: Path):
    (tmp_path / "template.yaml").write_text(STATE_MACHINE_TEMPLATE)
    (tmp_path / "flow.asl.json").write_text(json.dumps(FLOW_DEFINITION))
    report = provision(tmp_path / "template.yaml", stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)

    arn = report.state_machines["Flow"]
    definition = json.loads(_client("stepfunctions", moto_endpoint).describe_state_machine(stateMachineArn=arn)["definition"])
    task = definition["States"]["Notify"]
    function = report.functions["NotifyFunction"]
    assert task["Parameters"]["FunctionName"] == function.arn
    assert function.arn.endswith(f":function:{stack_name}-NotifyFunction")
    assert task["Comment"] == "times out after 60 s"


def test_provision_state_machine_with_unknown_placeholder_is_refused(moto_endpoint, stack_name, tmp_path: Path):
    (tmp_path / "template.yaml").write_text(STATE_MACHINE_TEMPLATE)
    broken = json.loads(json.dumps(FLOW_DEFINITION))
    broken["States"]["Notify"]["Parameters"]["FunctionName"] = "${MissingArn}"
    (tmp_path / "flow.asl.json").write_text(json.dumps(broken))
    with pytest.raises(ProvisionError, match="MissingArn"):
        provision(tmp_path / "template.yaml", stack_name=stack_name, region=REGION, endpoint_url=moto_endpoint)


BRIDGED_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  RecordFunction:
    Type: AWS::Serverless::Function
    Properties: {CodeUri: functions/approval_record/, Handler: app.handler, Runtime: python3.11}
  Flow:
    Type: AWS::Serverless::StateMachine
    Properties:
      DefinitionUri: flow.asl.json
      DefinitionSubstitutions:
        RecordArn: !GetAtt RecordFunction.Arn
"""

BRIDGED_DEFINITION = {
    "StartAt": "Call",
    "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "${RecordArn}", "Payload": {"probe": True}}, "End": True}},
}


def test_local_moto_runs_state_machine_lambda_tasks_in_process(tmp_path: Path):
    """The local stack's moto (started by LocalStack, provisioned from a template) runs the
    Lambda task of a state machine through our handler in-process, with no Docker: the
    execution's error comes from functions/approval_record/app.py itself."""
    import time

    from flowlink.local.processes import free_port
    from flowlink.local.stack import LocalStack, StackConfig

    (tmp_path / "template.yaml").write_text(BRIDGED_TEMPLATE)
    (tmp_path / "flow.asl.json").write_text(json.dumps(BRIDGED_DEFINITION))
    stack = LocalStack(StackConfig(state_dir=tmp_path / "state", aws_port=free_port(),
                                   template=tmp_path / "template.yaml", stack_name="bridged"))
    with stack:
        stack.start_aws()
        report = stack.provision()
        assert report.state_machine_functions == {"RecordFunction"}
        sfn = _client("stepfunctions", stack.aws_endpoint)
        execution = sfn.start_execution(stateMachineArn=report.state_machines["Flow"], name="probe", input="{}")
        deadline = time.monotonic() + 60
        while (described := sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution never finished"
            time.sleep(0.2)
    assert described["status"] == "FAILED"
    assert "functions/approval_record/app.py" in described["cause"]
