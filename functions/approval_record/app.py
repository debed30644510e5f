"""Lambda task of the approval state machine: after denial, timeout or failure: record the outcome; the command never runs."""

from aws_lambda_powertools import Logger
from flowlink.approvals import runtime
from flowlink.approvals.events import parse_task_event

logger = Logger(service="flowlink-approvals")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return runtime.approval_service().record_outcome(**parse_task_event(event, "record_outcome"))
