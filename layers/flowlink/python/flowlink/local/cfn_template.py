"""Read ``template.yaml`` and resolve the CloudFormation intrinsics the local stack needs.

The local stack provisions its tables, buckets, queues and state machines from the SAM
template itself (DESIGN §4), so it needs a YAML loader that understands CloudFormation's
short tags (``!Sub``, ``!Ref``, ``!GetAtt``, ``!If`` ...) and a small evaluator for the
intrinsics that decide names and keys: ``Ref``/``Fn::Sub`` on pseudo parameters, template
parameters and resources, ``Fn::GetAtt`` for ARNs, ``Fn::If`` with ``Conditions``,
``Fn::Join``/``Fn::Select``/``Fn::Split``. Physical names of resources that have no
explicit name are derived deterministically (``{stack}-{LogicalId}``) because the local
stack has no CloudFormation to invent them.

This module never talks to AWS; it only reads files and computes values. Anything it
cannot evaluate locally (dynamic references, imports) is reported with
:class:`TemplateError` instead of being guessed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# moto and LocalStack both answer as this account unless told otherwise.
DEFAULT_ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"

_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Join": "Fn::Join",
    "Select": "Fn::Select",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "GetAZs": "Fn::GetAZs",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "Transform": "Fn::Transform",
    "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}

_SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


class TemplateError(ValueError):
    """The template is unreadable, or uses a construct the local evaluator cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation short-form tags (never constructs arbitrary objects)."""


def _make_constructor(long_name: str):
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            # `!GetAtt Resource.Attribute` is the short form of a two-element list.
            if long_name == "Fn::GetAtt" and isinstance(value, str):
                resource, _, attribute = value.partition(".")
                value = [resource, attribute]
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


for _short, _long in _SHORT_TAGS.items():
    _CfnLoader.add_constructor(f"!{_short}", _make_constructor(_long))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a CloudFormation/SAM YAML template into plain dicts with long-form intrinsics.

    Raises TemplateError when the file is missing, is not YAML, or has no Resources.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc}") from exc
    try:
        document = yaml.load(text, Loader=_CfnLoader)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


@dataclass
class Stack:
    """A template bound to a stack name, region, account and parameter values."""

    template: dict[str, Any]
    stack_name: str
    region: str = DEFAULT_REGION
    account_id: str = DEFAULT_ACCOUNT_ID
    parameters: Mapping[str, str] = field(default_factory=dict)
    base_dir: Path = field(default_factory=Path.cwd)

    def __post_init__(self) -> None:
        declared = self.template.get("Parameters") or {}
        unknown = set(self.parameters) - set(declared)
        if unknown:
            raise TemplateError(f"unknown template parameters: {', '.join(sorted(unknown))}")
        self._parameter_values: dict[str, Any] = {}
        for name, spec in declared.items():
            if name in self.parameters:
                self._parameter_values[name] = self.parameters[name]
            elif isinstance(spec, dict) and "Default" in spec:
                self._parameter_values[name] = spec["Default"]
        self._conditions_cache: dict[str, bool] = {}
        # Values only the live endpoint knows (a queue's URL), recorded by the provisioner so
        # later `!Ref`s (e.g. in DefinitionSubstitutions) use them.
        self.known_refs: dict[str, str] = {}

    # ------------------------------------------------------------------ resources
    @property
    def resources(self) -> dict[str, dict[str, Any]]:
        return self.template["Resources"]

    def resources_of_type(self, *types: str) -> dict[str, dict[str, Any]]:
        """Logical id → resource for the given types, skipping resources whose Condition is false."""
        found = {}
        for logical_id, resource in self.resources.items():
            if resource.get("Type") not in types:
                continue
            condition = resource.get("Condition")
            if condition and not self.condition(condition):
                continue
            found[logical_id] = resource
        return found

    def properties(self, logical_id: str) -> dict[str, Any]:
        """The resource's Properties with every intrinsic resolved (a fresh copy)."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"no resource {logical_id!r} in the template")
        return self.resolve(copy.deepcopy(resource.get("Properties") or {}))

    # ------------------------------------------------------------------ physical names and ARNs
    def physical_name(self, logical_id: str) -> str:
        """What ``!Ref`` yields for a resource (its name; for queues and state machines see below)."""
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!Ref to unknown resource {logical_id!r}")
        rtype = resource.get("Type", "")
        props = resource.get("Properties") or {}
        explicit_key = {
            "AWS::DynamoDB::Table": "TableName",
            "AWS::S3::Bucket": "BucketName",
            "AWS::SQS::Queue": "QueueName",
            "AWS::StepFunctions::StateMachine": "StateMachineName",
            "AWS::Serverless::StateMachine": "Name",
            "AWS::Serverless::Function": "FunctionName",
            "AWS::Lambda::Function": "FunctionName",
            "AWS::Serverless::LayerVersion": "LayerName",
        }.get(rtype)
        if explicit_key and props.get(explicit_key) is not None:
            return str(self.resolve(copy.deepcopy(props[explicit_key])))
        # CloudFormation invents `{stack}-{LogicalId}-{random}`; locally the name must be stable.
        name = f"{self.stack_name}-{logical_id}"
        if rtype == "AWS::S3::Bucket":
            name = name.lower()
        return name

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::StackName": self.stack_name,
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackId": (
                f"arn:aws:cloudformation:{self.region}:{self.account_id}:stack/{self.stack_name}/local"
            ),
        }
        if name in pseudo:
            return pseudo[name]
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.known_refs:
            return self.known_refs[name]
        if name in self._parameter_values:
            return self._parameter_values[name]
        if name in (self.template.get("Parameters") or {}):
            raise TemplateError(f"parameter {name!r} has no Default and no value was given")
        resource = self.resources.get(name)
        if resource is None:
            raise TemplateError(f"!Ref to unknown name {name!r}")
        rtype = resource.get("Type")
        physical = self.physical_name(name)
        if rtype == "AWS::SQS::Queue":
            raise TemplateError(f"the URL of queue {name!r} is known only once it is created")
        if rtype in ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine"):
            return self.get_att(name, "Arn")
        return physical

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise TemplateError(f"!GetAtt on unknown resource {logical_id!r}")
        rtype = resource.get("Type")
        name = self.physical_name(logical_id)
        arn_prefix = f"arn:aws:{{service}}:{self.region}:{self.account_id}"
        arns = {
            "AWS::DynamoDB::Table": f"{arn_prefix.format(service='dynamodb')}:table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::SQS::Queue": f"{arn_prefix.format(service='sqs')}:{name}",
            "AWS::StepFunctions::StateMachine": f"{arn_prefix.format(service='states')}:stateMachine:{name}",
            "AWS::Serverless::StateMachine": f"{arn_prefix.format(service='states')}:stateMachine:{name}",
            "AWS::Serverless::Function": f"{arn_prefix.format(service='lambda')}:function:{name}",
            "AWS::Lambda::Function": f"{arn_prefix.format(service='lambda')}:function:{name}",
        }
        if attribute == "Arn" and rtype in arns:
            return arns[rtype]
        if attribute == "QueueName" and rtype == "AWS::SQS::Queue":
            return name
        if attribute == "QueueUrl" and rtype == "AWS::SQS::Queue":
            return str(self.ref(logical_id))
        if attribute == "Name" and rtype in ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine"):
            return name
        raise TemplateError(f"cannot resolve !GetAtt {logical_id}.{attribute} locally")

    # ------------------------------------------------------------------ conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions_cache:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise TemplateError(f"unknown condition {name!r}")
            self._conditions_cache[name] = bool(self.resolve(copy.deepcopy(conditions[name])))
        return self._conditions_cache[name]

    # ------------------------------------------------------------------ intrinsic evaluation
    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic function in ``value``; ``AWS::NoValue`` removes the key."""
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, argument), = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, argument)
        resolved = {}
        for key, item in value.items():
            item = self.resolve(item)
            if item is not _NO_VALUE:
                resolved[key] = item
        return resolved

    def _sub(self, argument: Any) -> str:
        if isinstance(argument, list):
            if len(argument) != 2 or not isinstance(argument[1], dict):
                raise TemplateError("Fn::Sub with a list needs [template, {variables}]")
            text, variables = argument[0], {k: self.resolve(v) for k, v in argument[1].items()}
        else:
            text, variables = argument, {}
        if not isinstance(text, str):
            raise TemplateError("Fn::Sub needs a string template")
        if "{{resolve:" in text:
            raise TemplateError(f"dynamic reference cannot be resolved locally: {text}")

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"  # `${!Literal}` escapes a dollar-brace
            if expression in variables:
                return str(variables[expression])
            if "." in expression and not expression.startswith("AWS::"):
                logical_id, attribute = expression.split(".", 1)
                return str(self.get_att(logical_id, attribute))
            return str(self.ref(expression))

        return _SUB_VARIABLE.sub(substitute, text)

    def _get_att(self, argument: Any) -> str:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        if not isinstance(argument, list) or len(argument) != 2:
            raise TemplateError(f"malformed Fn::GetAtt {argument!r}")
        return self.get_att(str(self.resolve(argument[0])), str(self.resolve(argument[1])))

    def _if(self, argument: Any) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError("Fn::If needs [condition, value_if_true, value_if_false]")
        return self.resolve(argument[1] if self.condition(argument[0]) else argument[2])

    def _join(self, argument: Any) -> str:
        delimiter, items = argument
        items = self.resolve(items)
        return str(delimiter).join(str(item) for item in items)

    def _select(self, argument: Any) -> Any:
        index, items = argument
        return self.resolve(items)[int(self.resolve(index))]

    def _split(self, argument: Any) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text)).split(delimiter)



def _unsupported(name: str):
    def handler(_stack: Stack, argument: Any) -> Any:
        raise TemplateError(f"{name} cannot be resolved locally ({argument!r})")

    return handler


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()

_INTRINSICS = {
    "Ref": lambda stack, arg: stack.ref(arg),
    "Fn::Sub": Stack._sub,
    "Fn::GetAtt": Stack._get_att,
    "Fn::If": Stack._if,
    "Fn::Equals": lambda stack, arg: stack.resolve(arg[0]) == stack.resolve(arg[1]),
    "Fn::Not": lambda stack, arg: not stack.resolve(arg[0]),
    "Fn::And": lambda stack, arg: all(stack.resolve(item) for item in arg),
    "Fn::Or": lambda stack, arg: any(stack.resolve(item) for item in arg),
    "Condition": lambda stack, arg: stack.condition(arg),
    "Fn::Join": Stack._join,
    "Fn::Select": Stack._select,
    "Fn::Split": Stack._split,
}
for _name in ("Fn::ImportValue", "Fn::FindInMap", "Fn::GetAZs", "Fn::Base64", "Fn::Cidr", "Fn::Transform"):
    _INTRINSICS[_name] = _unsupported(_name)
