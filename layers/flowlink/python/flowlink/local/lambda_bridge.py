"""Run the template's Lambda handlers in-process when moto invokes them (local stack only).

moto executes Step Functions state machines, but it runs Lambda tasks only through
Docker, which this machine does not have. Every Lambda invocation moto performs
(Step Functions ``lambda:invoke`` and ``.waitForTaskToken`` tasks, event-source
mappings) goes through one private method,
``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (payload, errored, logs)``.
``install`` replaces it, inside the moto server's own process, with a call to our handler
for that function (``functions/<name>/app.py``), found from ``template.yaml``'s
``CodeUri`` and ``Handler``. The method is private: moto is pinned in pyproject.toml and
``tests/integration/test_lambda_bridge.py`` fails loudly if an upgrade moves it.

Also registers the template's functions with moto (a placeholder package: the code that
runs is ours, in-process), because Step Functions asks moto's Lambda service for them.
Nothing here runs in AWS.
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import traceback
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

logger = logging.getLogger(__name__)

BRIDGE_ROLE_NAME = "flowlink-local-lambda-bridge"
_PLACEHOLDER_SOURCE = (
    "def handler(event, context):\n"
    "    raise RuntimeError('runs in-process through flowlink.local.lambda_bridge')\n"
)


class BridgeError(RuntimeError):
    """moto changed the method the bridge replaces, or a handler cannot be found."""


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object our handlers and Powertools read."""

    function_name: str
    invoked_function_arn: str
    aws_request_id: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 300_000


def handler_import_path(code_uri: str | None, handler: str | None) -> str:
    """``functions/approval_notify/`` + ``app.handler`` → ``functions.approval_notify.app:handler``."""
    if not code_uri or not handler or "." not in handler:
        raise BridgeError(f"function has no CodeUri/Handler to run locally ({code_uri!r}, {handler!r})")
    package = code_uri.strip("/").replace("/", ".")
    module, _, attribute = handler.rpartition(".")
    return f"{package}.{module}:{attribute}"


def resolve_handler(import_path: str) -> Callable[[Any, Any], Any]:
    module_name, _, attribute = import_path.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BridgeError(f"cannot load handler {import_path}: {exc}") from exc


def install(routes: Mapping[str, str]) -> None:
    """Route moto's Lambda invocations by function name to in-process handlers.

    ``routes`` maps a physical function name to ``module:attribute``. Call it in the process
    that runs the moto server, before the server handles requests. Raises BridgeError when
    moto no longer has the method this replaces.
    """
    from moto.awslambda import models as lambda_models

    original = getattr(lambda_models.LambdaFunction, "_invoke_lambda", None)
    if original is None:
        raise BridgeError(
            "moto.awslambda.models.LambdaFunction._invoke_lambda is gone: the pinned moto version "
            "changed; update flowlink.local.lambda_bridge"
        )
    handlers = {name: resolve_handler(path) for name, path in routes.items()}

    def invoke_in_process(self: Any, event: Any = None) -> tuple[str, bool, str]:
        handler = handlers.get(self.function_name)
        if handler is None:
            message = f"no local handler for Lambda function {self.function_name}"
            return json.dumps({"errorMessage": message, "errorType": "BridgeError"}), True, message
        payload = json.loads(event) if isinstance(event, (str, bytes)) and event else (event or {})
        context = LambdaContext(
            function_name=self.function_name,
            invoked_function_arn=getattr(self, "function_arn", self.function_name),
            aws_request_id=str(uuid.uuid4()),
        )
        try:
            result = handler(payload, context)
        except Exception as exc:  # noqa: BLE001 - any handler failure is a Lambda error, reported as Lambda does
            logger.warning("local Lambda %s failed: %s", self.function_name, exc)
            body = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exception(exc)[-3:]}
            return json.dumps(body), True, str(exc)
        return json.dumps(result), False, ""

    lambda_models.LambdaFunction._invoke_lambda = invoke_in_process
    logger.info("lambda bridge installed for %s", ", ".join(sorted(handlers)))


def routes_from_stack(stack: Any) -> dict[str, str]:
    """``{physical function name: module:attribute}`` for every function of a template stack.

    ``stack`` is a ``flowlink.local.cfn_template.Stack``; ``CodeUri`` and ``Handler`` may
    come from the function or from ``Globals.Function``, as SAM allows.
    """
    from flowlink.local.provision import FUNCTION_TYPES

    defaults = (stack.template.get("Globals") or {}).get("Function") or {}
    routes = {}
    for logical_id, resource in stack.resources_of_type(*FUNCTION_TYPES).items():
        props = resource.get("Properties") or {}
        code_uri = props.get("CodeUri", defaults.get("CodeUri"))
        handler = props.get("Handler", defaults.get("Handler"))
        if not isinstance(code_uri, str):
            raise BridgeError(f"{logical_id}: CodeUri must be a local folder to run in-process")
        routes[stack.physical_name(logical_id)] = handler_import_path(code_uri, handler)
    return routes


def _placeholder_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", _PLACEHOLDER_SOURCE)
    return buffer.getvalue()


def register_functions(lambda_client: Any, iam_client: Any, functions: Mapping[str, Any]) -> dict[str, str]:
    """Create each function (``FunctionInfo`` from provisioning) in the emulator if absent.

    Returns ``{physical name: module:attribute}`` for ``install``. Idempotent.
    """
    try:
        role_arn = iam_client.get_role(RoleName=BRIDGE_ROLE_NAME)["Role"]["Arn"]
    except ClientError:
        role_arn = iam_client.create_role(
            RoleName=BRIDGE_ROLE_NAME,
            AssumeRolePolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
            ),
        )["Role"]["Arn"]
    routes: dict[str, str] = {}
    package = _placeholder_package()
    for info in functions.values():
        routes[info.name] = handler_import_path(info.code_uri, info.handler)
        try:
            lambda_client.get_function(FunctionName=info.name)
        except ClientError:
            lambda_client.create_function(
                FunctionName=info.name,
                Runtime="python3.11",
                Role=role_arn,
                Handler=info.handler,
                Code={"ZipFile": package},
            )
    return routes
