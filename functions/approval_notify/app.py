"""Lambda task of the approval state machine: the callback task: store the task token server-side and notify approvers."""

from aws_lambda_powertools import Logger
from flowlink.approvals import runtime
from flowlink.approvals.events import parse_task_event

logger = Logger(service="flowlink-approvals")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return runtime.approval_service().on_notify(**parse_task_event(event, "on_notify"))
