"""Create the stateful resources of ``template.yaml`` on any AWS-compatible endpoint.

The local stack (moto, LocalStack) has no CloudFormation that could deploy the SAM
template, so this module reads the template and creates what the code needs to exist:
every ``AWS::DynamoDB::Table`` (keys, attribute definitions, GSIs/LSIs, billing, streams,
TTL, point-in-time recovery), ``AWS::S3::Bucket`` (versioning, Object Lock, encryption,
public access block), ``AWS::SQS::Queue`` and Step Functions state machine (with its
``DefinitionSubstitutions`` applied). Local and cloud therefore cannot drift: change the
template and both follow.

Provisioning is idempotent: a resource that already exists with the same shape is left
alone (a missing GSI is added); one whose key schema contradicts the template raises
:class:`ProvisionError` rather than being silently reused. Lambda functions, API Gateway
and IAM are not created: the local stack runs the handlers in-process (see
``flowlink.gateway.local``); :attr:`ProvisionReport.functions` lists them with the names and
ARNs the template gives them, for whoever routes invocations.

Clients are built from the boto3 session passed in (or the default one), so the endpoint
comes from ``AWS_ENDPOINT_URL`` or the caller, never from this module.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flowlink.local.cfn_template import DEFAULT_ACCOUNT_ID, Stack, TemplateError, load_template

logger = logging.getLogger(__name__)

TEMPLATE_FILE_NAME = "template.yaml"
TABLE_TYPE = "AWS::DynamoDB::Table"
BUCKET_TYPE = "AWS::S3::Bucket"
QUEUE_TYPE = "AWS::SQS::Queue"
STATE_MACHINE_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_.:-]+)\}")


class ProvisionError(RuntimeError):
    """A resource could not be created, or an existing one contradicts the template."""


@dataclass(frozen=True)
class FunctionInfo:
    logical_id: str
    name: str
    arn: str
    code_uri: str | None
    handler: str | None


@dataclass
class ProvisionReport:
    """What exists after provisioning, by logical id, and what this run created."""

    stack_name: str
    region: str
    account_id: str
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    # Logical ids of the functions state machines call (their DefinitionSubstitutions name
    # them): the ones an emulator must be able to invoke.
    state_machine_functions: set[str] = field(default_factory=set)
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)


def find_template(start: str | Path | None = None) -> Path:
    """Locate ``template.yaml``: walk up from ``start`` (default the working directory), then
    from this package's folder (the editable install lives inside the repository).

    Raises ProvisionError when none is found.
    """
    candidates = [Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent]
    for origin in candidates:
        for folder in (origin, *origin.parents):
            path = folder / TEMPLATE_FILE_NAME
            if path.is_file():
                return path
    raise ProvisionError(f"no {TEMPLATE_FILE_NAME} found above {candidates[0]} or the flowlink package")


def enable_stepfunctions_execution(endpoint: str, *, timeout: float = 10.0) -> None:
    """Switch moto's Step Functions from metadata-only to executing state machines.

    Must run *before* provisioning: moto swaps backends on the switch, so state machines
    created earlier vanish (DESIGN §4). Only moto has this endpoint; raises ProvisionError
    when the server refuses.
    """
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        endpoint.rstrip("/") + "/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ProvisionError(f"could not configure moto at {endpoint}: {exc}") from exc


class Provisioner:
    """Creates the template's stateful resources through one boto3 session."""

    def __init__(self, stack: Stack, session: boto3.session.Session, *, endpoint_url: str | None = None):
        self.stack = stack
        self.session = session
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            kwargs: dict[str, Any] = {"region_name": self.stack.region}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]

    def run(self) -> ProvisionReport:
        report = ProvisionReport(self.stack.stack_name, self.stack.region, self.stack.account_id)
        try:
            for logical_id in self.stack.resources_of_type(TABLE_TYPE):
                report.tables[logical_id] = self._table(logical_id, report)
            for logical_id in self.stack.resources_of_type(BUCKET_TYPE):
                report.buckets[logical_id] = self._bucket(logical_id, report)
            for logical_id in self.stack.resources_of_type(QUEUE_TYPE):
                report.queues[logical_id] = self._queue(logical_id, report)
            for logical_id, resource in self.stack.resources_of_type(*FUNCTION_TYPES).items():
                props = resource.get("Properties") or {}
                report.functions[logical_id] = FunctionInfo(
                    logical_id=logical_id,
                    name=self.stack.physical_name(logical_id),
                    arn=self.stack.get_att(logical_id, "Arn"),
                    code_uri=props.get("CodeUri") if isinstance(props.get("CodeUri"), str) else None,
                    handler=props.get("Handler"),
                )
            report.state_machine_functions = functions_called_by_state_machines(self.stack)
            for logical_id in self.stack.resources_of_type(*STATE_MACHINE_TYPES):
                report.state_machines[logical_id] = self._state_machine(logical_id, report)
        except TemplateError as exc:
            raise ProvisionError(str(exc)) from exc
        except (ClientError, BotoCoreError) as exc:
            raise ProvisionError(f"provisioning failed: {exc}") from exc
        return report

    # ------------------------------------------------------------------ DynamoDB
    def _table(self, logical_id: str, report: ProvisionReport) -> str:
        props = self.stack.properties(logical_id)
        name = props.get("TableName") or self.stack.physical_name(logical_id)
        ddb = self.client("dynamodb")
        billing = props.get("BillingMode", "PROVISIONED")
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            request["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        gsis = [self._index(index, billing) for index in props.get("GlobalSecondaryIndexes") or []]
        if gsis:
            request["GlobalSecondaryIndexes"] = gsis
        lsis = [
            {"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
            for i in props.get("LocalSecondaryIndexes") or []
        ]
        if lsis:
            request["LocalSecondaryIndexes"] = lsis
        stream = props.get("StreamSpecification")
        if stream and stream.get("StreamViewType"):
            request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        if props.get("DeletionProtectionEnabled") is not None:
            request["DeletionProtectionEnabled"] = bool(props["DeletionProtectionEnabled"])

        try:
            ddb.create_table(**request)
            report.created.append(f"table {name}")
            ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            self._reconcile_table(name, request)
            report.existing.append(f"table {name}")

        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            current = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
            if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
                ddb.update_time_to_live(
                    TableName=name,
                    TimeToLiveSpecification={"AttributeName": ttl["AttributeName"], "Enabled": True},
                )
        pitr = props.get("PointInTimeRecoverySpecification")
        if pitr and pitr.get("PointInTimeRecoveryEnabled"):
            try:
                ddb.update_continuous_backups(
                    TableName=name,
                    PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
                )
            except ClientError as exc:
                # Some emulators lack continuous backups; recovery is a cloud concern, not a local one.
                logger.info("point-in-time recovery not enabled on %s: %s", name, exc)
        return name

    @staticmethod
    def _index(index: Mapping[str, Any], billing: str) -> dict[str, Any]:
        shaped = {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
        if billing == "PROVISIONED":
            shaped["ProvisionedThroughput"] = index.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        return shaped

    def _reconcile_table(self, name: str, request: Mapping[str, Any]) -> None:
        """Accept an existing table only if its keys match; add GSIs the template gained since."""
        ddb = self.client("dynamodb")
        table = ddb.describe_table(TableName=name)["Table"]
        if _keys(table["KeySchema"]) != _keys(request["KeySchema"]):
            raise ProvisionError(
                f"table {name} exists with key {_keys(table['KeySchema'])}, template says "
                f"{_keys(request['KeySchema'])}; delete it or use another stack name"
            )
        existing = {gsi["IndexName"]: _keys(gsi["KeySchema"]) for gsi in table.get("GlobalSecondaryIndexes", [])}
        for gsi in request.get("GlobalSecondaryIndexes", []):
            wanted = _keys(gsi["KeySchema"])
            if gsi["IndexName"] not in existing:
                ddb.update_table(
                    TableName=name,
                    AttributeDefinitions=request["AttributeDefinitions"],
                    GlobalSecondaryIndexUpdates=[{"Create": gsi}],
                )
                logger.info("added index %s to existing table %s", gsi["IndexName"], name)
            elif existing[gsi["IndexName"]] != wanted:
                raise ProvisionError(
                    f"index {gsi['IndexName']} of table {name} has key {existing[gsi['IndexName']]}, "
                    f"template says {wanted}"
                )

    # ------------------------------------------------------------------ S3
    def _bucket(self, logical_id: str, report: ProvisionReport) -> str:
        props = self.stack.properties(logical_id)
        name = props.get("BucketName") or self.stack.physical_name(logical_id)
        s3 = self.client("s3")
        object_lock = bool(props.get("ObjectLockEnabled"))
        request: dict[str, Any] = {"Bucket": name}
        if self.stack.region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": self.stack.region}
        if object_lock:
            request["ObjectLockEnabledForBucket"] = True
        if self._bucket_exists(name):
            report.existing.append(f"bucket {name}")
            if object_lock and not self._has_object_lock(name):
                raise ProvisionError(
                    f"bucket {name} exists without Object Lock, which the template requires; "
                    "Object Lock can only be enabled when a bucket is created"
                )
        else:
            s3.create_bucket(**request)
            report.created.append(f"bucket {name}")

        versioning = (props.get("VersioningConfiguration") or {}).get("Status")
        if versioning or object_lock:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": versioning or "Enabled"})
        lock = props.get("ObjectLockConfiguration")
        if object_lock and lock and lock.get("Rule"):
            retention = {k: (int(v) if k in ("Days", "Years") else v) for k, v in lock["Rule"]["DefaultRetention"].items()}
            s3.put_object_lock_configuration(
                Bucket=name,
                ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": retention}},
            )
        encryption = props.get("BucketEncryption")
        if encryption:
            # CloudFormation and the S3 API spell the same rule differently.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if key == "ServerSideEncryptionByDefault" else key): value
                    for key, value in rule.items()
                }
                for rule in encryption["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        public_access = props.get("PublicAccessBlockConfiguration")
        if public_access:
            s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=public_access)
        return name

    def _bucket_exists(self, name: str) -> bool:
        try:
            self.client("s3").head_bucket(Bucket=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    def _has_object_lock(self, name: str) -> bool:
        try:
            config = self.client("s3").get_object_lock_configuration(Bucket=name)
        except ClientError:
            return False
        return config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

    # ------------------------------------------------------------------ SQS
    _QUEUE_ATTRIBUTES = (
        "DelaySeconds",
        "MaximumMessageSize",
        "MessageRetentionPeriod",
        "ReceiveMessageWaitTimeSeconds",
        "VisibilityTimeout",
        "FifoQueue",
        "ContentBasedDeduplication",
        "SqsManagedSseEnabled",
        "KmsMasterKeyId",
        "KmsDataKeyReusePeriodSeconds",
        "DeduplicationScope",
        "FifoThroughputLimit",
    )

    def _queue(self, logical_id: str, report: ProvisionReport) -> str:
        props = self.stack.properties(logical_id)
        name = props.get("QueueName") or self.stack.physical_name(logical_id)
        attributes = {key: _attribute_text(props[key]) for key in self._QUEUE_ATTRIBUTES if key in props}
        if "RedrivePolicy" in props:
            attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
        sqs = self.client("sqs")
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as exc:
            if "NonExistentQueue" not in exc.response["Error"]["Code"]:
                raise
            url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
            report.created.append(f"queue {name}")
        else:
            if attributes:
                sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
            report.existing.append(f"queue {name}")
        self.stack.known_refs[logical_id] = url
        return url

    # ------------------------------------------------------------------ Step Functions
    def _state_machine(self, logical_id: str, report: ProvisionReport) -> str:
        resource = self.stack.resources[logical_id]
        props = self.stack.properties(logical_id)
        serverless = resource["Type"] == "AWS::Serverless::StateMachine"
        name = props.get("Name" if serverless else "StateMachineName") or self.stack.physical_name(logical_id)
        definition = self._definition(logical_id, props, serverless)
        role = props.get("Role" if serverless else "RoleArn") or (
            f"arn:aws:iam::{self.stack.account_id}:role/{self.stack.stack_name}-{logical_id}-role"
        )
        machine_type = props.get("Type" if serverless else "StateMachineType") or "STANDARD"
        sfn = self.client("stepfunctions")
        arn = self.stack.get_att(logical_id, "Arn")
        try:
            sfn.describe_state_machine(stateMachineArn=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "StateMachineDoesNotExist":
                raise
            arn = sfn.create_state_machine(name=name, definition=definition, roleArn=role, type=machine_type)[
                "stateMachineArn"
            ]
            report.created.append(f"state machine {name}")
        else:
            sfn.update_state_machine(stateMachineArn=arn, definition=definition, roleArn=role)
            report.existing.append(f"state machine {name}")
        return arn

    def _definition(self, logical_id: str, props: Mapping[str, Any], serverless: bool) -> str:
        if serverless and isinstance(props.get("DefinitionUri"), str):
            path = (self.stack.base_dir / props["DefinitionUri"]).resolve()
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ProvisionError(f"{logical_id}: cannot read DefinitionUri {path}: {exc}") from exc
            definition: Any = json.loads(text) if path.suffix == ".json" else _yaml_definition(text)
        elif "Definition" in props:
            definition = props["Definition"]
        elif isinstance(props.get("DefinitionString"), str):
            definition = json.loads(props["DefinitionString"])
        else:
            raise ProvisionError(f"{logical_id}: no local definition (S3 locations are not supported locally)")
        substitutions = {str(k): str(v) for k, v in (props.get("DefinitionSubstitutions") or {}).items()}
        substituted = _substitute(definition, substitutions)
        leftover = sorted(set(_PLACEHOLDER.findall(json.dumps(substituted))) - set(substitutions))
        if leftover:
            raise ProvisionError(f"{logical_id}: definition placeholders without substitution: {', '.join(leftover)}")
        return json.dumps(substituted)


def provision(
    template_path: str | Path | None = None,
    *,
    stack_name: str = "flowlink-local",
    region: str = "us-east-1",
    parameters: Mapping[str, str] | None = None,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    account_id: str | None = None,
) -> ProvisionReport:
    """Create every table, bucket, queue and state machine of the template; idempotent.

    The endpoint is ``endpoint_url`` if given, else whatever boto3 resolves (``AWS_ENDPOINT_URL``).
    The account id, which bucket names may contain, is asked from STS unless given.
    Raises ProvisionError (with the resource named) on any failure or drift.
    """
    path = Path(template_path) if template_path else find_template()
    session = session or boto3.session.Session()
    if account_id is None:
        account_id = _account_id(session, region, endpoint_url)
    try:
        stack = Stack(
            template=load_template(path),
            stack_name=stack_name,
            region=region,
            account_id=account_id,
            parameters=dict(parameters or {}),
            base_dir=path.parent,
        )
    except TemplateError as exc:
        raise ProvisionError(str(exc)) from exc
    report = Provisioner(stack, session, endpoint_url=endpoint_url).run()
    logger.info("provisioned %s: created %d, existing %d", stack_name, len(report.created), len(report.existing))
    return report


def functions_called_by_state_machines(stack: Stack) -> set[str]:
    """Logical ids of the functions any state machine's ``DefinitionSubstitutions`` reference
    (``!GetAtt Fn.Arn``, ``!Ref Fn`` or ``${Fn.Arn}`` inside ``!Sub``)."""
    functions = set(stack.resources_of_type(*FUNCTION_TYPES))
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "Fn::GetAtt":
                    target = item.split(".", 1)[0] if isinstance(item, str) else item[0]
                    if target in functions:
                        found.add(target)
                elif key == "Ref" and item in functions:
                    found.add(item)
                elif key == "Fn::Sub":
                    text = item[0] if isinstance(item, list) else item
                    for name in re.findall(r"\$\{([A-Za-z0-9]+)(?:\.Arn)?\}", str(text)):
                        if name in functions:
                            found.add(name)
                    if isinstance(item, list):
                        walk(item[1:])
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for resource in stack.resources_of_type(*STATE_MACHINE_TYPES).values():
        walk((resource.get("Properties") or {}).get("DefinitionSubstitutions") or {})
    return found


def _account_id(session: boto3.session.Session, region: str, endpoint_url: str | None) -> str:
    kwargs: dict[str, Any] = {"region_name": region}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    try:
        return session.client("sts", **kwargs).get_caller_identity()["Account"]
    except (ClientError, BotoCoreError) as exc:
        logger.info("STS unavailable (%s); assuming account %s", exc, DEFAULT_ACCOUNT_ID)
        return DEFAULT_ACCOUNT_ID


def _keys(key_schema: list[Mapping[str, str]]) -> list[tuple[str, str]]:
    return [(element["AttributeName"], element["KeyType"]) for element in key_schema]


def _attribute_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _substitute(value: Any, substitutions: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: substitutions.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [_substitute(item, substitutions) for item in value]
    if isinstance(value, dict):
        return {key: _substitute(item, substitutions) for key, item in value.items()}
    return value


def _yaml_definition(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)
