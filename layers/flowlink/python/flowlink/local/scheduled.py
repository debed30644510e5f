"""The template's scheduled Lambda functions, run on the local stack as EventBridge would.

On AWS a ``Schedule`` event (``rate(5 minutes)``) invokes a function periodically; the
witness publisher is one, and without it a local audit chain would have no witnesses, so a
truncated tail would go unnoticed. moto has no scheduler, so the ``flowlink local up``
process runs one: :class:`ScheduleRunner` starts each scheduled function, every period, in
a short-lived child process with the gateway's environment (the same settings the
function gets on AWS: tables, witness bucket, keys), as

    python -m flowlink.local.scheduled LOGICAL_ID --template template.yaml --stack-name NAME

which imports the handler named by the template and calls it once with a scheduled event.
A child per run keeps a failing or slow function away from the orchestrator, and its
output goes to the stack's log directory. Only ``rate(...)`` schedules are understood; a
``cron(...)`` one is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCHEDULE_EVENT_TYPES = ("Schedule", "ScheduleV2")
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
# A run that takes longer than this is killed (Lambda's own limit is 15 minutes).
RUN_TIMEOUT_SECONDS = 900.0


class ScheduleError(ValueError):
    """A schedule expression this runner does not understand."""


def rate_seconds(expression: str) -> float:
    """Seconds between runs of an EventBridge ``rate(N unit)`` expression."""
    match = _RATE.match(expression.strip())
    if not match:
        raise ScheduleError(f"only rate(N minutes|hours|days) schedules run locally, not {expression!r}")
    count, unit = int(match.group(1)), match.group(2).rstrip("s")
    if count < 1:
        raise ScheduleError(f"a rate must be at least 1 {unit}: {expression!r}")
    return float(count * _UNIT_SECONDS[unit])


def scheduled_functions(stack: Any) -> dict[str, float]:
    """``{logical id: period in seconds}`` of the template's functions with a rate schedule.

    ``stack`` is a ``flowlink.local.cfn_template.Stack``. A function with several schedules
    runs at the shortest; unsupported expressions are logged and skipped.
    """
    from flowlink.local.provision import FUNCTION_TYPES

    periods: dict[str, float] = {}
    for logical_id, resource in stack.resources_of_type(*FUNCTION_TYPES).items():
        events = (resource.get("Properties") or {}).get("Events") or {}
        for name, event in events.items():
            if not isinstance(event, Mapping) or event.get("Type") not in SCHEDULE_EVENT_TYPES:
                continue
            props = event.get("Properties") or {}
            if props.get("Enabled") is False or props.get("State") == "DISABLED":
                continue
            expression = props.get("Schedule") or props.get("ScheduleExpression")
            try:
                period = rate_seconds(str(expression))
            except ScheduleError as exc:
                logger.warning("%s event %s: %s; not run locally", logical_id, name, exc)
                continue
            periods[logical_id] = min(period, periods.get(logical_id, period))
    return periods


def scheduled_event(logical_id: str, region: str) -> dict[str, Any]:
    """The event EventBridge hands a scheduled function."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:000000000000:rule/{logical_id}"],
        "detail": {},
    }


@dataclass(frozen=True)
class ScheduledRun:
    logical_id: str
    period: float


class ScheduleRunner:
    """A thread that runs each scheduled function every period in a child process.

    The first run of a function is one period after ``start()``, as EventBridge's first
    trigger is. ``stop()`` ends the thread and kills a run in progress.
    """

    def __init__(
        self,
        runs: list[ScheduledRun],
        *,
        template: Path,
        stack_name: str,
        env: Mapping[str, str],
        log_path: Path,
    ):
        self.runs = list(runs)
        self._template = template
        self._stack_name = stack_name
        self._env = dict(env)
        self._log_path = log_path
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._current: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.completed: dict[str, int] = {}

    def start(self) -> None:
        if not self.runs or self._thread is not None:
            return
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="flowlink-schedules", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._current is not None and self._current.poll() is None:
                self._current.kill()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        due = {run.logical_id: time.monotonic() + run.period for run in self.runs}
        periods = {run.logical_id: run.period for run in self.runs}
        while not self._stop.is_set():
            logical_id = min(due, key=due.__getitem__)
            if self._stop.wait(max(0.0, due[logical_id] - time.monotonic())):
                return
            self._run_once(logical_id)
            due[logical_id] = time.monotonic() + periods[logical_id]

    def _run_once(self, logical_id: str) -> None:
        argv = [sys.executable, "-m", "flowlink.local.scheduled", logical_id,
                "--template", str(self._template), "--stack-name", self._stack_name]
        with self._log_path.open("ab") as log:
            log.write(f"{datetime.now(UTC).isoformat()} run {logical_id}\n".encode())
            log.flush()
            with self._lock:
                if self._stop.is_set():
                    return
                self._current = subprocess.Popen(argv, env=self._env, stdout=log, stderr=log,
                                                 stdin=subprocess.DEVNULL)
            try:
                code = self._current.wait(timeout=RUN_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._current.kill()
                code = self._current.wait()
            with self._lock:
                self._current = None
        if code == 0:
            self.completed[logical_id] = self.completed.get(logical_id, 0) + 1
        elif not self._stop.is_set():
            logger.warning("scheduled function %s failed (exit %s); see %s", logical_id, code, self._log_path)


def run_function(logical_id: str, template: Path, stack_name: str) -> Any:
    """Import the handler the template gives ``logical_id`` and call it with a scheduled event."""
    from flowlink.local.cfn_template import Stack, load_template
    from flowlink.local.lambda_bridge import LambdaContext, resolve_handler, routes_from_stack
    from flowlink.local.provision import FUNCTION_TYPES
    from flowlink.settings import Settings

    stack = Stack(load_template(template), stack_name=stack_name)
    if logical_id not in stack.resources_of_type(*FUNCTION_TYPES):
        raise ScheduleError(f"the template has no function {logical_id!r}")
    name = stack.physical_name(logical_id)
    handler = resolve_handler(routes_from_stack(stack)[name])
    context = LambdaContext(function_name=name, invoked_function_arn=name, aws_request_id=str(uuid.uuid4()))
    return handler(scheduled_event(logical_id, Settings.from_env().region), context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlink.local.scheduled",
                                     description="Run one scheduled function of the template once.")
    parser.add_argument("logical_id")
    parser.add_argument("--template", type=Path, required=True)
    parser.add_argument("--stack-name", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s",
                        stream=sys.stderr)
    try:
        result = run_function(args.logical_id, args.template, args.stack_name)
    except Exception:
        logger.exception("scheduled function %s failed", args.logical_id)
        return 1
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
