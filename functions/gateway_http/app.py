"""Lambda: the gateway HTTP API (MCP at /mcp, REST at /api/v1) through Mangum.

The app is built once per container from the environment. ``lifespan="auto"`` makes
Mangum run the ASGI lifespan around each invocation; the app rebuilds its MCP session
manager for every lifespan cycle, so repeated invocations in one container work.
"""

from aws_lambda_powertools import Logger
from flowlink.gateway import create_app
from mangum import Mangum

logger = Logger(service="flowlink-gateway")

app = create_app()
adapter = Mangum(app, lifespan="auto")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    return adapter(event, context)
