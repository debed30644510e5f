"""Lambda: $connect REQUEST authorizer of the relay WebSocket API.

Allow (with context org_id / relay_id) only for an enrolled relay presenting its
credential in headers or query parameters (contracts §6); anything else gets a Deny policy.
"""

from aws_lambda_powertools import Logger
from flowlink import relays
from flowlink.errors import RelayAuthenticationFailed
from flowlink.gateway.runtime import runtime_for
from flowlink.gateway.ws_events import iam_policy, relay_identity_from_event
from flowlink.settings import Settings

logger = Logger(service="flowlink-ws")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    resource = event.get("methodArn") or "*"
    relay_id, credential = relay_identity_from_event(event)
    runtime = runtime_for(Settings.from_env())
    try:
        identity = relays.authorize_relay(runtime.store, relay_id, credential)
    except RelayAuthenticationFailed as exc:
        logger.info("relay connection refused", extra={"reason": exc.detail})
        return iam_policy("unauthorized", "Deny", resource)
    return iam_policy(identity["relay_id"], "Allow", resource, context=identity)
