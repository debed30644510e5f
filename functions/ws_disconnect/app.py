"""Lambda: $disconnect of the relay WebSocket API: forget the connection, relay offline."""

from aws_lambda_powertools import Logger
from flowlink import relays
from flowlink.gateway.runtime import runtime_for
from flowlink.gateway.ws_events import connection_id
from flowlink.settings import Settings

logger = Logger(service="flowlink-ws")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    runtime = runtime_for(Settings.from_env())
    relays.disconnect_relay(runtime.store, connection_id(event))
    return {"statusCode": 200}
