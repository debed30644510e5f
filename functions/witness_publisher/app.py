"""Lambda (scheduled, every 5 minutes): publish a witness snapshot and a signed checkpoint of
every org's audit chain head to the witness bucket. An event ``{"org_id": "..."}`` limits the
run to one org (manual invocation). Never changes the audit table."""

from aws_lambda_powertools import Logger
from flowlink.audit import store_for, witness
from flowlink.settings import Settings

logger = Logger(service="flowlink-witness")


@logger.inject_lambda_context(log_event=False)
def handler(event, context):
    settings = Settings.from_env()
    store = store_for(settings)
    requested = event.get("org_id") if isinstance(event, dict) else None
    org_ids = [requested] if isinstance(requested, str) and requested else witness.list_org_ids(settings)
    summary = witness.publish_all(store, org_ids)
    logger.info("witness run", extra={"published": len(summary["published"]), "unchanged": len(summary["unchanged"]),
                                      "failed": len(summary["failed"])})
    if summary["failed"]:
        # Fail the invocation so the schedule's retry and the dead-letter queue see it.
        raise RuntimeError(f"witness publishing failed for {len(summary['failed'])} org(s)")
    return summary
