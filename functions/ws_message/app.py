"""Lambda: $default route of the relay WebSocket API: hello / heartbeat / sync / ack / result."""

from aws_lambda_powertools import Logger
from flowlink import relays
from flowlink.gateway.runtime import runtime_for
from flowlink.gateway.ws_events import connection_id, management_url, message_body
from flowlink.settings import Settings

logger = Logger(service="flowlink-ws")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    settings = Settings.from_env()
    runtime = runtime_for(settings, management_url=management_url(event, settings))
    answer = relays.handle_relay_message(
        runtime.store, runtime.settings, runtime.channel, connection_id(event), message_body(event)
    )
    logger.debug("relay message handled", extra={"answer_type": (answer or {}).get("type")})
    return {"statusCode": 200}
