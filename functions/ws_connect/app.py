"""Lambda: $connect of the relay WebSocket API: store the connection and mark the relay online."""

from aws_lambda_powertools import Logger
from flowlink import relays
from flowlink.errors import FlowLinkError
from flowlink.gateway.runtime import runtime_for
from flowlink.gateway.ws_events import authorizer_context, connection_id
from flowlink.settings import Settings

logger = Logger(service="flowlink-ws")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    identity = authorizer_context(event)
    runtime = runtime_for(Settings.from_env())
    try:
        relays.connect_relay(
            runtime.store, connection_id(event), identity.get("relay_id"), identity.get("org_id")
        )
    except FlowLinkError as exc:
        logger.info("relay connect refused", extra={"reason": exc.detail})
        return {"statusCode": 403}
    return {"statusCode": 200}
