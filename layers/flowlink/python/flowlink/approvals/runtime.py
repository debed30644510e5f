"""The approval service of a Lambda container or local process, built once from settings.

Kept apart from the service so handlers stay three lines and tests build their own
services with injected clients.
"""

from __future__ import annotations

from functools import lru_cache

from flowlink.approvals.service import ApprovalService
from flowlink.settings import get_settings


@lru_cache(maxsize=1)
def approval_service() -> ApprovalService:
    from flowlink.approvals.dispatch import dispatch_approved_command

    return ApprovalService(get_settings(), dispatcher=dispatch_approved_command)
