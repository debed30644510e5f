"""The local AWS emulator process: a moto server on a loopback port.

Run as ``python -m flowlink.local.moto_server --port 4566``. It exists (instead of the
``moto_server`` command) so that

- ``MOTO_PORT`` is set before moto starts, because moto's Step Functions interpreter calls
  back to ``http://localhost:$MOTO_PORT`` (DESIGN §4);
- the process can load *plugins* before serving (``--plugin module``): a plugin module is
  imported and its ``install()`` called, which is how in-process Lambda routing (moto's
  ``LambdaFunction._invoke_lambda``, issue 4) is switched on without touching this file;
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
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s moto %(levelname)s %(message)s", stream=sys.stderr)
    # werkzeug logs one line per request; a busy local stack would drown its own log.
    logging.getLogger("werkzeug").setLevel(logging.INFO if args.verbose else logging.WARNING)
    os.environ["MOTO_PORT"] = str(args.port)

    for module_name in args.plugin:
        importlib.import_module(module_name).install()
        logger.info("plugin %s installed", module_name)

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    stop = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        logger.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.start()
    except OSError as exc:
        logger.error("cannot listen on %s:%d: %s", args.host, args.port, exc)
        return 2
    logger.info("moto listening on http://%s:%d", args.host, args.port)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
