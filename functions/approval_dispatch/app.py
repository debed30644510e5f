"""Lambda task of the approval state machine: after approval: send the command to its relay with an approval grant, at most once."""

from aws_lambda_powertools import Logger
from flowlink.approvals import runtime
from flowlink.approvals.events import parse_task_event

logger = Logger(service="flowlink-approvals")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return runtime.approval_service().dispatch(**parse_task_event(event, "dispatch"))
