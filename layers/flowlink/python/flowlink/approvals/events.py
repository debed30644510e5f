"""Validation of the payloads the approval state machine sends to its Lambda tasks.

A malformed payload raises InvalidInput; the task fails, and the state machine's catch
routes it to RecordFailure, so the command never runs (fail closed).
"""

from __future__ import annotations

from typing import Any

from flowlink.errors import InvalidInput

_FIELDS = {
    "on_notify": ("approval_id", "org_id", "task_token"),
    "dispatch": ("approval_id", "org_id"),
    "record_outcome": ("approval_id", "org_id", "outcome"),
}


def parse_task_event(event: Any, task: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise InvalidInput(f"{task}: event must be a JSON object")
    args: dict[str, Any] = {}
    for name in _FIELDS[task]:
        value = event.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{task}: missing or empty field {name!r}")
        args[name] = value
    if task == "record_outcome" and "error" in event:
        args["error"] = event["error"]
    return args
