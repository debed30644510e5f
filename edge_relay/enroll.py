"""One-time relay enrollment against the gateway (docs/contracts.md §5).

Generates the relay's Ed25519 signing key and X25519 box key, sends the public halves
with the one-time token to ``POST {api_url}/api/v1/relays/enroll``, and stores what comes
back (relay id, credential, ws_url, the gateway key to pin) in the state dir. Keys are
written only after the gateway accepted the token, identity.json last, so a failed
enrollment leaves no half identity behind.

Never logs the token, the credential or key material.
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime

import httpx

from edge_relay.errors import (
    AlreadyEnrolledError,
    EnrollmentRejectedError,
    GatewayResponseError,
    GatewayUnreachableError,
    IdentityError,
    RelayNameTakenError,
    RelaySettingsError,
)
from edge_relay.facts import collect_facts
from edge_relay.identity import RelayIdentity, RelayKeys, ensure_state_dir
from edge_relay.settings import RelaySettings

logger = logging.getLogger(__name__)

ENROLL_PATH = "/api/v1/relays/enroll"


def enroll_url(api_url: str) -> str:
    """Raises RelaySettingsError unless ``api_url`` is an http(s) URL."""
    base = (api_url or "").strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise RelaySettingsError(f"--api-url must start with http:// or https://, not {api_url!r}")
    return base + ENROLL_PATH


def enroll(
    settings: RelaySettings,
    *,
    api_url: str,
    token: str,
    name: str | None = None,
    force: bool = False,
    client: httpx.Client | None = None,
    timeout: float = 15.0,
) -> RelayIdentity:
    """Enroll this host and persist its identity; returns it.

    Raises AlreadyEnrolledError (identity exists and not ``force``), EnrollmentRejectedError
    (HTTP 401: token used, expired or unknown), RelayNameTakenError (HTTP 409: the org has a
    relay of that name; the token stays usable), GatewayUnreachableError (network),
    GatewayResponseError (any other unexpected answer), RelaySettingsError (bad URL/token).
    """
    url = enroll_url(api_url)
    token = (token or "").strip()
    if not token:
        raise RelaySettingsError("--token must not be empty")
    if settings.identity_path.exists() and not force:
        raise AlreadyEnrolledError(
            f"this relay is already enrolled ({settings.identity_path}); pass --force to replace its identity"
        )
    if name is not None and not name.strip():
        raise RelaySettingsError("--name must not be empty (leave it out to enroll under the hostname)")
    facts = collect_facts()
    relay_name = name or settings.name or socket.gethostname()
    keys = RelayKeys.generate()
    body = {
        "token": token,
        "name": relay_name,
        "hostname": facts["hostname"],
        "facts": facts,
        "signing_public_key": keys.signing_public_key_b64,
        "box_public_key": keys.box_public_key_b64,
    }
    own_client = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        response = http.post(url, json=body)
    except httpx.TransportError as exc:
        raise GatewayUnreachableError(
            f"cannot reach the gateway at {url}: {type(exc).__name__}: {exc}"
        ) from exc
    finally:
        if own_client:
            http.close()

    if response.status_code == 401:
        raise EnrollmentRejectedError(
            "the gateway rejected the enrollment token (already used, expired or unknown); "
            "create a new one with an admin key"
        )
    error, detail = _error_of(response)
    if response.status_code == 409 and error == "relay_name_taken":
        raise RelayNameTakenError(
            f"enrollment refused: {detail or 'the org already has a relay named ' + repr(relay_name)} "
            "(the token was not used: retry with another --name, or after the old relay is removed)"
        )
    if response.status_code == 400 and error == "invalid_input":
        # A bad argument (e.g. --name): the gateway says which and why.
        raise RelaySettingsError(f"enrollment refused: {detail or 'invalid input'} (the token was not used)")
    if response.status_code >= 300:
        hint = ""
        if response.status_code == 404:
            hint = f"; is --api-url the gateway base URL, without /api/v1? ({url} does not exist)"
        raise GatewayResponseError(
            f"enrollment failed: gateway answered HTTP {response.status_code}"
            + (f" ({error}: {detail})" if error and detail else f" ({error})" if error else "")
            + hint
        )
    try:
        payload = response.json()
    except ValueError as exc:
        raise GatewayResponseError("enrollment failed: gateway answer is not JSON") from exc
    if not isinstance(payload, dict):
        raise GatewayResponseError("enrollment failed: gateway answer is not a JSON object")
    try:
        identity = RelayIdentity.from_json(
            {
                **payload,
                "name": relay_name,
                "enrolled_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
        )
    except IdentityError as exc:
        raise GatewayResponseError(f"enrollment failed: unexpected gateway answer: {exc}") from exc

    ensure_state_dir(settings.state_dir)
    keys.save(settings.signing_key_path, settings.box_key_path)
    identity.save(settings.identity_path)
    logger.info(
        "enrolled relay_id=%s org_id=%s state_dir=%s", identity.relay_id, identity.org_id, settings.state_dir
    )
    return identity


def _error_of(response: httpx.Response) -> tuple[str, str]:
    """The ``error`` code and ``detail`` of a gateway error answer ("" when absent)."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    return str(body.get("error") or ""), str(body.get("detail") or "")
