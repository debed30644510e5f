"""The approval service of a process, built once from its settings or gateway runtime.

Kept apart from the service so handlers stay three lines and tests build their own
services with injected clients.
"""

from __future__ import annotations

import threading
from functools import lru_cache, partial
from typing import Any

from flowlink.approvals.service import ApprovalService
from flowlink.settings import get_settings

_lock = threading.Lock()
_by_runtime: dict[int, tuple[Any, ApprovalService]] = {}


@lru_cache(maxsize=1)
def approval_service() -> ApprovalService:
    """For the state machine's Lambda tasks: everything from the environment."""
    from flowlink.approvals.dispatch import dispatch_approved_command

    return ApprovalService(get_settings(), dispatcher=dispatch_approved_command)


def approval_service_for(runtime: Any) -> ApprovalService:
    """For the gateway (REST, webhook, MCP tools): share the runtime's store and relay channel."""
    from flowlink.approvals.dispatch import dispatch_approved_command

    with _lock:
        # Keyed by identity; the runtime is kept alive with its service so ids are never reused.
        entry = _by_runtime.get(id(runtime))
        if entry is None:
            service = ApprovalService(
                runtime.settings,
                store=runtime.store,
                dispatcher=partial(
                    dispatch_approved_command, settings=runtime.settings, store=runtime.store, channel=runtime.channel
                ),
            )
            entry = _by_runtime[id(runtime)] = (runtime, service)
        return entry[1]
