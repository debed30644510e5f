"""Bootstrap of an org: its first keys and a relay enrollment token, locally or on a deployed stack.

Two callers, one way of minting (``flowlink.auth.issue_api_key``, ``relays.create_enrollment_token``):

* ``bootstrap_local`` is what ``flowlink local up`` calls once the tables exist. It is
  idempotent about the org (found by name, created once) but keys are stored only as
  hashes and can never be shown again, so every run mints a fresh agent, approver and
  admin key plus a fresh enrollment token; earlier keys stay valid until revoked.
* ``init_org`` is what ``flowlink admin init`` calls against a stack deployed with
  ``sam deploy`` (or LocalStack), where no key exists yet and so the REST API cannot be
  used. It refuses an org name that exists unless asked to add keys to it: an operator
  re-running a setup script must never get a second org of the same name.
  ``describe_deployed_stack`` and ``require_stack_tables`` find and check that stack first,
  so a wrong stack name, prefix, region or missing credentials fail before anything is written.

Keys and tokens are returned to the caller to show once and are never logged.
"""

from __future__ import annotations

import logging
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flowlink import audit
from flowlink.auth import SCOPE_ADMIN, SCOPE_AGENT, SCOPE_APPROVER, AuthContext, issue_api_key
from flowlink.errors import AwsAccessFailed, InvalidInput, NotFound, OrgExists, StackNotProvisioned
from flowlink.relays import RelayChannel, create_enrollment_token, remove_relay, validate_relay_name
from flowlink.settings import TABLE_NAMES, Settings
from flowlink.storage import Store, find_relay

logger = logging.getLogger(__name__)

MAX_ORG_NAME_LENGTH = 100
# Outputs of template.yaml that `flowlink admin init --stack-name` reads.
OUTPUT_TABLE_PREFIX = "TablePrefix"
OUTPUT_HTTP_API_URL = "HttpApiUrl"
OUTPUT_MCP_URL = "McpUrl"
INIT_ACTOR = {"type": "system", "name": "admin-init"}


def new_org_id() -> str:
    return "org_" + secrets.token_hex(8)


def create_org(store: Store, name: str) -> Any:
    return store.create_org(new_org_id(), name)


def bootstrap_local(
    settings: Settings, *, org_name: str = "local", relay_name: str = "local", store: Store | None = None
) -> dict[str, Any]:
    """Ensure the dev org exists and mint its keys and an enrollment token.

    Returns {"org_id", "api_key", "approver_key", "admin_key", "enrollment_token"}. Keys are
    new on every call (see the module docstring). Reads no environment itself: ``settings``
    names the tables and ``AWS_ENDPOINT_URL`` (read by botocore) the emulator.
    """
    store = store or Store(settings)
    org = store.find_org_by_name(org_name) or create_org(store, org_name)
    keys: dict[str, str] = {}
    for field_name, scope in (
        ("api_key", SCOPE_AGENT),
        ("approver_key", SCOPE_APPROVER),
        ("admin_key", SCOPE_ADMIN),
    ):
        _, keys[field_name] = issue_api_key(
            store,
            audit.default_store(),
            org.org_id,
            scope=scope,
            name=f"{org_name}-{scope}",
            created_by="bootstrap",
            actor={"type": "system", "name": "bootstrap"},
        )
    system = AuthContext(org_id=org.org_id, key_id="bootstrap", scope=SCOPE_ADMIN, name="bootstrap")
    previous = find_relay(store, org.org_id, relay_name)
    if previous is not None:
        # `flowlink local up` enrolls its one relay afresh on every start; on an endpoint that
        # keeps data (LocalStack) the previous start's relay still holds the name, which is
        # unique in the org, so it is decommissioned (audited) before the new token is minted.
        remove_relay(store, RelayChannel(settings), system, previous.relay_id)
    token = create_enrollment_token(store, system, relay_name)
    logger.info("local org bootstrapped", extra={"org_id": org.org_id})
    return {"org_id": org.org_id, **keys, "enrollment_token": token["token"]}


@dataclass(frozen=True)
class DeployedStack:
    """What a deployed stack's outputs say about it (docs/contracts.md §2, template.yaml Outputs)."""

    table_prefix: str
    api_url: str | None = None
    mcp_url: str | None = None


def describe_deployed_stack(cloudformation: Any, stack_name: str) -> DeployedStack:
    """Read the table prefix and gateway URLs from a CloudFormation stack's outputs.

    ``cloudformation`` is a boto3 CloudFormation client (its region is the stack's). A stack
    without a ``TablePrefix`` output falls back to its name, which is what template.yaml
    uses as the prefix. Raises StackNotProvisioned when no such stack exists there, and
    AwsAccessFailed when AWS cannot be asked.
    """
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        error = exc.response.get("Error", {})
        # CloudFormation answers an unknown stack with a generic ValidationError.
        if error.get("Code") == "ValidationError" and "does not exist" in error.get("Message", ""):
            raise StackNotProvisioned(
                f"no CloudFormation stack named {stack_name!r} in {cloudformation.meta.region_name} "
                "(check --stack-name and --region)"
            ) from None
        raise _access_failed(exc, "describe the stack") from None
    except BotoCoreError as exc:
        raise _access_failed(exc, "describe the stack") from None
    outputs = {item["OutputKey"]: item.get("OutputValue") for item in stacks[0].get("Outputs") or []}
    return DeployedStack(
        table_prefix=outputs.get(OUTPUT_TABLE_PREFIX) or stack_name,
        api_url=outputs.get(OUTPUT_HTTP_API_URL),
        mcp_url=outputs.get(OUTPUT_MCP_URL),
    )


def require_stack_tables(settings: Settings, dynamodb: Any) -> None:
    """Check that every FlowLink table of ``settings.table_prefix`` exists, before any write.

    ``dynamodb`` is a boto3 DynamoDB client. Only reads (DescribeTable), so a wrong prefix
    or region leaves no trace. Raises StackNotProvisioned naming the missing tables, and
    AwsAccessFailed for missing or refused credentials or an unreachable endpoint.
    """
    missing = []
    for name in TABLE_NAMES:
        table = settings.table(name)
        try:
            dynamodb.describe_table(TableName=table)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise _access_failed(exc, f"describe table {table}") from None
            missing.append(table)
        except BotoCoreError as exc:
            raise _access_failed(exc, f"describe table {table}") from None
    if len(missing) == len(TABLE_NAMES):
        raise StackNotProvisioned(
            f"no FlowLink tables with prefix {settings.table_prefix!r} in {settings.region} "
            "(wrong --table-prefix, --stack-name or --region? has `sam deploy` finished?); nothing was written"
        )
    if missing:
        raise StackNotProvisioned(
            f"the stack with prefix {settings.table_prefix!r} lacks tables: {', '.join(missing)} "
            "(deploy the current template.yaml first); nothing was written"
        )


def _access_failed(exc: Exception, action: str) -> AwsAccessFailed:
    if isinstance(exc, NoCredentialsError):
        return AwsAccessFailed(
            "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            f"or run `aws sso login`); could not {action}"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return AwsAccessFailed(f"AWS refused to {action}: {error.get('Code')}: {error.get('Message')}")
    return AwsAccessFailed(f"could not {action}: {exc}")


def validate_org_name(name: Any) -> str:
    """The stripped org name; raises InvalidInput for an empty, over-long or unprintable one.

    A display name may hold spaces and punctuation; control and format characters (escape
    sequences, line breaks, bidirectional overrides) are refused, because the name is shown
    in terminals, Telegram messages and the dashboard, where they could disguise it."""
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > MAX_ORG_NAME_LENGTH:
        raise InvalidInput(f"org name must be a non-empty string of at most {MAX_ORG_NAME_LENGTH} characters")
    hidden = sorted({f"U+{ord(c):04X}" for c in name.strip() if unicodedata.category(c) in _UNPRINTABLE})
    if hidden:
        raise InvalidInput(f"org name must be printable text; it contains control characters {', '.join(hidden)}")
    return name.strip()


# Unicode categories an org name may not contain: controls, format characters (bidi
# overrides, zero-width joiners), line and paragraph separators.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def init_org(
    store: Store,
    audit_log: Any,
    org_name: str,
    *,
    agent_key: bool = True,
    relay_name: str | None = None,
    existing: bool = False,
) -> dict[str, Any]:
    """Create the org ``org_name`` with an admin key, and optionally an agent key and a relay token.

    ``audit_log`` is the stack's ``flowlink.audit.AuditStore``: the org's chain starts with
    ``org.created`` and records each ``key.created``. With ``existing`` the org must already
    exist and only new keys (and token) are added to it; the org record is never rewritten.
    Returns {"org_id", "org_name", "org_created", "admin_key", "agent_key", "enrollment"}:
    each key a public record plus ``key`` (the plaintext, shown once), ``agent_key`` and
    ``enrollment`` ({"token", "name", "expires_at"}) None when not asked for.

    Raises InvalidInput (bad org or relay name, checked before anything is written),
    OrgExists (the name is taken and ``existing`` is false: nothing is written) and
    NotFound (``existing`` but no such org). Org names are checked with a consistent
    scan, not a uniqueness constraint: two runs racing for the same new name could both
    create it, so run it once per org, as an operator step.
    """
    name = validate_org_name(org_name)
    if relay_name is not None:
        validate_relay_name(relay_name)
    org = store.find_org_by_name(name)
    if org is not None and not existing:
        raise OrgExists(
            f"an org named {name!r} already exists ({org.org_id}); nothing was written",
            extra={"org_id": org.org_id},
        )
    if org is None and existing:
        raise NotFound(f"no org named {name!r} to add keys to; nothing was written")
    org_created = org is None
    if org is None:
        org = create_org(store, name)
        audit_log.append(org.org_id, "org.created", {"name": name}, actor=INIT_ACTOR)
        logger.info("org created", extra={"org_id": org.org_id})
    keys: dict[str, Any] = {"admin_key": None, "agent_key": None}
    for field_name, scope in (("admin_key", SCOPE_ADMIN), ("agent_key", SCOPE_AGENT)):
        if scope == SCOPE_AGENT and not agent_key:
            continue
        record, plaintext = issue_api_key(
            store,
            audit_log,
            org.org_id,
            scope=scope,
            name=f"initial-{scope}",
            created_by=INIT_ACTOR["name"],
            actor=INIT_ACTOR,
        )
        keys[field_name] = {**record, "key": plaintext}
    enrollment = None
    if relay_name is not None:
        system = AuthContext(org_id=org.org_id, key_id=INIT_ACTOR["name"], scope=SCOPE_ADMIN, name=INIT_ACTOR["name"])
        enrollment = create_enrollment_token(store, system, relay_name)
    logger.info("org initialised", extra={"org_id": org.org_id, "org_created": org_created})
    return {"org_id": org.org_id, "org_name": name, "org_created": org_created, **keys, "enrollment": enrollment}
