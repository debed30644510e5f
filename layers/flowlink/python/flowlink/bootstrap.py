"""Development bootstrap: the local org, its keys and a relay enrollment token.

``bootstrap_local`` is what ``flowlink local up`` calls once the tables exist. It is
idempotent about the org (found by name, created once) but keys are stored only as
hashes and can never be shown again, so every run mints a fresh agent, approver and admin
key plus a fresh enrollment token; earlier keys stay valid until revoked.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flowlink import audit
from flowlink.auth import SCOPE_ADMIN, SCOPE_AGENT, SCOPE_APPROVER, AuthContext, issue_api_key
from flowlink.relays import create_enrollment_token
from flowlink.settings import Settings
from flowlink.storage import Store

logger = logging.getLogger(__name__)


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
    token = create_enrollment_token(store, system, relay_name)
    logger.info("local org bootstrapped", extra={"org_id": org.org_id})
    return {"org_id": org.org_id, **keys, "enrollment_token": token["token"]}
