"""The approval service of a process, built once from its settings or gateway runtime.

Kept apart from the service so handlers stay three lines and tests build their own
services with injected clients.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from flowlink.approvals.service import ApprovalService
from flowlink.settings import get_settings


@lru_cache(maxsize=1)
def approval_service() -> ApprovalService:
    """For the state machine's Lambda tasks: everything from the environment."""
    from flowlink.approvals.dispatch import dispatch_approved_command

    return ApprovalService(get_settings(), dispatcher=dispatch_approved_command)


def approval_service_for(runtime: Any) -> ApprovalService:
    """For the gateway (REST, webhook, MCP tools): the same service its exec path uses, so
    one process has one approval workflow sharing the runtime's store and relay channel."""
    return runtime.commands.approvals
