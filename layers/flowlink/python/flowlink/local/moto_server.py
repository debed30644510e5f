"""The local AWS emulator process: a moto server on a loopback port.

Run as ``python -m flowlink.local.moto_server --port 4566``. It exists (instead of the
``moto_server`` command) so that

- ``MOTO_PORT`` is set before moto starts, because moto's Step Functions interpreter calls
  back to ``http://localhost:$MOTO_PORT`` (DESIGN §4);
- with ``--lambda-bridge template.yaml`` the Lambda functions the template's state machines
  call run in-process (``flowlink.local.lambda_bridge``; moto would need Docker otherwise);
- the process can load *plugins* before serving (``--plugin module``): a plugin module is
  imported and its ``install()`` called, which is how in-process Lambda routing (moto's
  ``LambdaFunction._invoke_lambda``) can be switched on without touching this file;
- SIGTERM/SIGINT stop it cleanly, so the orchestrator can stop its process group.

It serves until signalled; it never provisions anything itself (see ``provision``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading

logger = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flowlink.local.moto_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--plugin", action="append", default=[], help="module whose install() runs before serving")
    parser.add_argument("--lambda-bridge", metavar="TEMPLATE", default=None,
                        help="run the Lambda handlers this template's state machines call in-process")
    parser.add_argument("--stack-name", default="flowlink-local", help="stack name the bridge resolves names with")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s moto %(levelname)s %(message)s", stream=sys.stderr)
    # werkzeug logs one line per request; a busy local stack would drown its own log.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    os.environ["MOTO_PORT"] = str(args.port)

    for module_name in args.plugin:
        importlib.import_module(module_name).install()
        logger.info("plugin %s installed", module_name)

    if args.lambda_bridge:
        _install_lambda_bridge(args.lambda_bridge, args.stack_name)

    from flowlink.local.serialized import serialized_moto_server

    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        # DynamoDB requests one at a time, so conditional writes are atomic as on AWS.
        server = serialized_moto_server(args.host, args.port)
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 2
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    logger.info("moto listening on http://%s:%d", args.host, args.port)
    stop.wait()
    server.shutdown()
    thread.join()
    return 0


def _install_lambda_bridge(template_path: str, stack_name: str) -> None:
    """Route moto's invocations of the functions state machines call to our handlers."""
    from flowlink.local import lambda_bridge
    from flowlink.local.cfn_template import Stack, load_template
    from flowlink.local.provision import functions_called_by_state_machines

    stack = Stack(load_template(template_path), stack_name=stack_name)
    wanted = {stack.physical_name(logical_id) for logical_id in functions_called_by_state_machines(stack)}
    routes = {name: path for name, path in lambda_bridge.routes_from_stack(stack).items() if name in wanted}
    if routes:
        lambda_bridge.install(routes)
        logger.info("lambda bridge: %s", ", ".join(f"{name} -> {path}" for name, path in sorted(routes.items())))


if __name__ == "__main__":
    sys.exit(main())
