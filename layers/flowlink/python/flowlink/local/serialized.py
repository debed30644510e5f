"""Make moto's DynamoDB requests atomic under concurrency (local stack and tests only).

DynamoDB applies every request atomically: a conditional put either sees the condition
hold and writes, or fails. moto's threaded server interleaves the check and the write of
concurrent requests, so two writers can both "win" (seen here with 8 threads). FlowLink's
guarantees (one audit chain with no fork, one decision per approval, at-most-once
dispatch) rest on those conditions, so the local emulator runs DynamoDB requests one at a
time. Only DynamoDB is serialized: Lambda invocations made by Step Functions run our
handlers in-process and call back into moto, which would deadlock behind one lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

DYNAMODB_TARGET_PREFIX = "DynamoDB_"


class SerializedDynamoDB:
    """WSGI middleware: one DynamoDB request at a time, everything else untouched."""

    def __init__(self, app: Callable[..., Iterable[bytes]]):
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith(DYNAMODB_TARGET_PREFIX):
            return self._app(environ, start_response)
        with self._lock:
            # Consume the whole response inside the lock: moto computes it lazily.
            return [b"".join(self._app(environ, start_response))]


def serialized_moto_server(host: str, port: int) -> Any:
    """A werkzeug server running moto behind SerializedDynamoDB (call serve_forever/shutdown)."""
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from flowlink.local import moto_speedups

    moto_speedups.install()
    app = SerializedDynamoDB(DomainDispatcherApplication(create_backend_app))
    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
