"""The CloudFormation reader behind local provisioning: short tags, ``!Sub`` escapes and
variables, conditions, ``AWS::NoValue`` and the errors for what cannot be resolved locally.
Pure file reading (no sockets)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flowlink.local.cfn_template import Stack, TemplateError, load_template

pytestmark = pytest.mark.unit

TEMPLATE = """
Parameters:
  Env: {Type: String, Default: dev}
  Required: {Type: String}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  NotProd: !Not [!Condition IsProd]
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-items"
      Tags:
        - Key: literal
          Value: !Sub "${!NotAVariable}-${Env}"
        - Key: mapped
          Value: !Sub ["${Name}@${AWS::Region}", {Name: !Ref Env}]
        - !If [IsProd, {Key: prod, Value: "yes"}, !Ref AWS::NoValue]
      StreamArnEcho: !GetAtt Table.Arn
      Joined: !Join [":", [a, !Select [1, !Split [",", "x,y,z"]]]]
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
  Secretive:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "{{resolve:secretsmanager:x:SecretString:y}}"
"""


def _stack(tmp_path: Path, **parameters: str) -> Stack:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE)
    return Stack(load_template(path), stack_name="demo", region="eu-west-1", account_id="000000000000",
                 parameters={"Required": "r", **parameters})


def test_template_loader_resolves_sub_ref_getatt_join(tmp_path: Path):
    props = _stack(tmp_path).properties("Table")
    assert props["TableName"] == "demo-items"
    assert props["Tags"] == [{"Key": "literal", "Value": "${NotAVariable}-dev"},
                             {"Key": "mapped", "Value": "dev@eu-west-1"}]
    assert props["StreamArnEcho"] == "arn:aws:dynamodb:eu-west-1:000000000000:table/demo-items"
    assert props["Joined"] == "a:y"


def test_template_loader_conditions_select_values_and_resources(tmp_path: Path):
    prod = _stack(tmp_path, Env="prod")
    assert {"Key": "prod", "Value": "yes"} in prod.properties("Table")["Tags"]
    assert "ProdOnly" in prod.resources_of_type("AWS::SQS::Queue")
    dev = _stack(tmp_path)
    assert "ProdOnly" not in dev.resources_of_type("AWS::SQS::Queue")
    assert dev.condition("NotProd") is True


def test_template_loader_refuses_what_it_cannot_resolve(tmp_path: Path):
    stack = _stack(tmp_path)
    with pytest.raises(TemplateError, match="dynamic reference"):
        stack.properties("Secretive")
    with pytest.raises(TemplateError, match="unknown template parameters"):
        _stack(tmp_path, Bogus="1")
    path = tmp_path / "template.yaml"
    with pytest.raises(TemplateError, match="no Default"):
        Stack(load_template(path), stack_name="demo").ref("Required")


def test_template_loader_rejects_non_templates(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: [a, list")
    with pytest.raises(TemplateError, match="not valid YAML"):
        load_template(bad)
    bad.write_text("Description: no resources\n")
    with pytest.raises(TemplateError, match="no Resources"):
        load_template(bad)
    with pytest.raises(TemplateError, match="cannot read"):
        load_template(tmp_path / "missing.yaml")
