"""Relay lifecycle on the control plane: enrollment, WebSocket authorization, session messages.

Implements docs/contracts.md §5–6 for the gateway side: one-time enrollment tokens, relay
credentials (stored as SHA-256 hashes), the ``$connect`` authorizer decision, and the
``$default`` messages hello / heartbeat / sync / ack / result, answered through the API
Gateway management API (``RelayChannel``). Results are stored once: the first one wins,
repeats are acknowledged and ignored. Never logs credentials, tokens or command output.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from flowlink import attestation as attestation_module
from flowlink import audit, relay_protocol
from flowlink.auth import AuthContext, hash_secret
from flowlink.errors import (
    EnrollmentTokenInvalid,
    InvalidInput,
    NotFound,
    RelayAuthenticationFailed,
    ServiceMisconfigured,
)
from flowlink.org_settings import compiled_policy, org_policy_text, policy_reference
from flowlink.settings import Settings
from flowlink.storage import RELAY_BOUND_STATUSES, RELAY_ID_PREFIX, Store, find_relay, utc_now_iso

logger = logging.getLogger(__name__)

ENROLLMENT_TOKEN_PREFIX = "flk_enr_"
RELAY_CREDENTIAL_PREFIX = "flk_rly_"
ENROLLMENT_TTL_SECONDS = 3600
# API Gateway closes a WebSocket after 2 hours at most; a connection record older than
# this is stale even if its $disconnect never arrived.
CONNECTION_TTL_SECONDS = 3 * 3600
RELAY_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
MAX_FACTS_BYTES = 16 * 1024
# Output kept per stream in the commands table (items are limited to 400 KB).
MAX_STORED_OUTPUT_CHARS = 96 * 1024
# A dispatched command older than the envelope lifetime is no longer re-sent after a
# reconnect: it fails instead of running long after the caller gave up.
RESYNC_MAX_AGE_SECONDS = relay_protocol.ENVELOPE_TTL_SECONDS


class _ConnectionCache:
    """Which relay a connection belongs to, remembered per process.

    A connection id is never reused for another relay, so an entry cannot go stale in a
    harmful way; it saves a table read on every relay message (heartbeats, acks, results).
    """

    def __init__(self, capacity: int = 4096):
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, connection_id: str) -> Any | None:
        with self._lock:
            entry = self._entries.get(connection_id)
            if entry is not None:
                self._entries.move_to_end(connection_id)
            return entry

    def put(self, connection_id: str, entry: Any) -> None:
        with self._lock:
            self._entries[connection_id] = entry
            self._entries.move_to_end(connection_id)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)

    def drop(self, connection_id: str) -> None:
        with self._lock:
            self._entries.pop(connection_id, None)


_connections = _ConnectionCache()


class CommandSignals:
    """In-process wake-ups for waiters on a command record.

    When the relay's ack/result is stored by this same process (the local stack, where
    ``ws_message`` runs inside the gateway), the exec waiter wakes at once instead of at
    its next poll. Across processes (Lambda) nothing is shared and waiters simply poll.
    """

    def __init__(self, capacity: int = 4096):
        self._condition = threading.Condition()
        self._versions: OrderedDict[str, int] = OrderedDict()
        # The record as stored by the conditional update that caused each notification: the
        # waiter uses it instead of reading the row back.
        self._records: dict[str, Any] = {}
        self._capacity = capacity

    def version(self, command_id: str) -> int:
        with self._condition:
            return self._versions.get(command_id, 0)

    def notify(self, command_id: str, record: Any = None) -> None:
        """Wake the waiters of ``command_id``; ``record`` is the record as just stored."""
        with self._condition:
            self._versions[command_id] = self._versions.get(command_id, 0) + 1
            self._versions.move_to_end(command_id)
            self._records[command_id] = record
            while len(self._versions) > self._capacity:
                evicted, _ = self._versions.popitem(last=False)
                self._records.pop(evicted, None)
            self._condition.notify_all()

    def latest(self, command_id: str) -> Any:
        """The record the last notification carried (None when it carried none)."""
        with self._condition:
            return self._records.get(command_id)

    def wait_for_change(self, command_id: str, since: int, timeout: float) -> bool:
        """True when ``command_id`` was updated after version ``since`` (within ``timeout``)."""
        with self._condition:
            return self._condition.wait_for(lambda: self._versions.get(command_id, 0) != since, timeout)


command_signals = CommandSignals()


def _lookup_connection(store: Store, connection_id: str) -> Any | None:
    cached = _connections.get(connection_id)
    if cached is not None and cached.table_prefix == store.settings.table_prefix:
        return cached
    record = store.get_connection(connection_id)
    if record is None:
        return None
    entry = SimpleNamespace(
        connection_id=record.connection_id,
        relay_id=record.relay_id,
        org_id=record.org_id,
        table_prefix=store.settings.table_prefix,
    )
    _connections.put(connection_id, entry)
    return entry


class ConnectionGone(Exception):
    """The relay's WebSocket is closed (API Gateway GoneException)."""


LOCAL_MANAGEMENT_TOKEN_HEADER = "X-Flowlink-Management-Token"


class RelayChannel:
    """Sends gateway messages to relay connections through the API Gateway management API.

    The boto3 client is built lazily with ``endpoint_url`` = the management API base
    (``FLOWLINK_WS_MANAGEMENT_URL``, or the URL of the WebSocket API the event came from),
    so the same code posts to AWS or to the local emulation.
    """

    def __init__(self, settings: Settings, *, endpoint_url: str | None = None, client: Any = None):
        self._endpoint_url = endpoint_url or settings.ws_management_url
        self._region = settings.region
        self._local_token = settings.local_management_token
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    if not self._endpoint_url:
                        raise ServiceMisconfigured(
                            "FLOWLINK_WS_MANAGEMENT_URL is not set: cannot reach relays"
                        )
                    client = boto3.client(
                        "apigatewaymanagementapi", endpoint_url=self._endpoint_url, region_name=self._region
                    )
                    if self._local_token:
                        # The local stack's management API emulation takes callers only with its
                        # secret (on AWS, IAM signs these calls and no such header exists).
                        token = self._local_token

                        def add_token(request: Any, **_: Any) -> None:
                            request.headers[LOCAL_MANAGEMENT_TOKEN_HEADER] = token

                        client.meta.events.register("before-sign.apigatewaymanagementapi", add_token)
                    self._client = client
        return self._client

    def send(self, connection_id: str, message: dict[str, Any]) -> None:
        """Post one JSON message; raises ConnectionGone when the socket is closed."""
        data = json.dumps(message, separators=(",", ":")).encode("utf-8")
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("GoneException", "410"):
                raise ConnectionGone(connection_id) from exc
            raise

    def close(self, connection_id: str) -> None:
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("GoneException", "410"):
                raise


# -- gateway signing key -------------------------------------------------------------------

_signing_key_lock = threading.Lock()
_signing_keys: dict[tuple[str | None, str | None], Any] = {}


def load_signing_key(settings: Settings) -> Any:
    """The gateway's Ed25519 private key (envelopes), from FLOWLINK_SIGNING_KEY or _FILE.

    In local mode a configured key file that does not exist yet is created (mode 0600), so a
    fresh `flowlink local up` works; without any setting a local process uses an ephemeral
    key (relays enrolled against it must re-enroll after a restart). Outside local mode
    Settings already refuses to start without a key. Raises ServiceMisconfigured for an
    unreadable or non-Ed25519 key.
    """
    cache_key = (settings.signing_key_pem, settings.signing_key_file)
    with _signing_key_lock:
        if cache_key in _signing_keys:
            return _signing_keys[cache_key]
        try:
            if settings.signing_key_pem:
                key = relay_protocol.private_key_from_pem(settings.signing_key_pem)
            elif settings.signing_key_file:
                key = _load_or_create_key_file(settings.signing_key_file, create=settings.is_local)
            elif settings.is_local:
                logger.warning("no FLOWLINK_SIGNING_KEY(_FILE): using an ephemeral envelope signing key")
                key = relay_protocol.generate_signing_key()
            else:
                raise ServiceMisconfigured("FLOWLINK_SIGNING_KEY is not set")
        except (ValueError, OSError) as exc:
            raise ServiceMisconfigured(f"gateway signing key unusable: {exc}") from exc
        _signing_keys[cache_key] = key
        return key


def _load_or_create_key_file(path: str, *, create: bool) -> Any:
    try:
        with open(path, "rb") as handle:
            return relay_protocol.private_key_from_pem(handle.read())
    except FileNotFoundError:
        if not create:
            raise
    key = relay_protocol.generate_signing_key()
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    # O_EXCL: if another process created it meanwhile, use theirs rather than overwrite.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as handle:
            return relay_protocol.private_key_from_pem(handle.read())
    with os.fdopen(fd, "w") as handle:
        handle.write(relay_protocol.private_key_to_pem(key))
    return key


def gateway_public_key_pem(settings: Settings) -> str:
    return relay_protocol.public_key_to_pem(load_signing_key(settings))


# -- enrollment ----------------------------------------------------------------------------


def _epoch_to_iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def validate_relay_name(name: Any) -> str:
    if not isinstance(name, str) or not RELAY_NAME_PATTERN.match(name):
        raise InvalidInput(
            "name must be 1-63 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return name


def create_enrollment_token(
    store: Store, auth: AuthContext, name: str, *, ttl_seconds: int = ENROLLMENT_TTL_SECONDS
) -> dict[str, Any]:
    """Mint a one-time enrollment token for a relay called ``name`` in the caller's org."""
    validate_relay_name(name)
    token = ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires = int(time.time()) + ttl_seconds
    store.put_enrollment(
        token_hash=hash_secret(token),
        org_id=auth.org_id,
        name=name,
        created_at=utc_now_iso(),
        expires_at=expires,
        created_by=auth.key_id,
    )
    return {"token": token, "name": name, "expires_at": _epoch_to_iso(expires)}


def _decode_public_key(value: Any, field: str, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a base64 string of a 32-byte public key")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"{field} is not valid base64") from exc
    if len(raw) != 32:
        raise InvalidInput(f"{field} must decode to 32 bytes")
    return value


def enroll_relay(store: Store, settings: Settings, request: dict[str, Any]) -> dict[str, Any]:
    """Redeem an enrollment token and register a relay (contracts §5 step 2).

    The relay's ``name`` defaults to the name the token was minted for, and must not be
    held by another relay of the org (``Store.claim_relay_name``) unless that one is flagged:
    then this enrollment is its re-enrollment and replaces it (audited as ``relay.removed``).
    Raises EnrollmentTokenInvalid (unknown, used or expired token), RelayNameTaken (the
    token stays usable) and InvalidInput.
    """
    if not isinstance(request, dict):
        raise InvalidInput("body must be a JSON object")
    token = request.get("token")
    if not isinstance(token, str) or not token.startswith(ENROLLMENT_TOKEN_PREFIX) or len(token) > 256:
        raise EnrollmentTokenInvalid("enrollment token invalid, used or expired")
    signing_public_key = _decode_public_key(
        request.get("signing_public_key"), "signing_public_key", required=True
    )
    box_public_key = _decode_public_key(request.get("box_public_key"), "box_public_key", required=False)
    hostname = request.get("hostname")
    if hostname is not None and (not isinstance(hostname, str) or len(hostname) > 255):
        raise InvalidInput("hostname must be a string of at most 255 characters")
    facts = request.get("facts") or {}
    if not isinstance(facts, dict) or len(json.dumps(facts)) > MAX_FACTS_BYTES:
        raise InvalidInput(f"facts must be a JSON object of at most {MAX_FACTS_BYTES} bytes")
    requested_name = request.get("name")
    if requested_name is not None:
        validate_relay_name(requested_name)
    if not settings.ws_url:
        raise ServiceMisconfigured("FLOWLINK_WS_URL is not set: relays would not know where to connect")
    gateway_key = gateway_public_key_pem(settings)

    relay_id = RELAY_ID_PREFIX + secrets.token_hex(12)
    credential = RELAY_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)

    def new_agent(enrollment: Any) -> dict[str, Any]:
        return {
            "relay_id": relay_id,
            "org_id": enrollment.org_id,
            "name": requested_name or enrollment.name,
            "hostname": hostname,
            "facts": facts,
            "credential_hash": hash_secret(credential),
            "signing_public_key": signing_public_key,
            "box_public_key": box_public_key,
            "status": "offline",
            "enrolled_at": utc_now_iso(),
        }

    redeemed = store.redeem_enrollment(hash_secret(token), int(time.time()), new_agent)
    if redeemed is None:
        raise EnrollmentTokenInvalid("enrollment token invalid, used or expired")
    enrollment, agent, displaced = redeemed
    name = agent.name
    for old in displaced:
        audit.append_event(
            enrollment.org_id,
            "relay.removed",
            {"relay_id": old.relay_id, "name": old.name, "reason": "replaced", "flagged": old.flagged,
             "replaced_by": relay_id},
            actor={"type": "relay", "relay_id": relay_id},
        )
    audit.append_event(
        enrollment.org_id,
        "relay.enrolled",
        {
            "relay_id": relay_id,
            "name": name,
            "hostname": hostname,
            "enrollment_created_by": enrollment.created_by,
        },
        actor={"type": "relay", "relay_id": relay_id},
    )
    return {
        "relay_id": relay_id,
        "org_id": enrollment.org_id,
        "name": name,
        "relay_credential": credential,
        "ws_url": settings.ws_url,
        "gateway_public_key": gateway_key,
    }


def remove_relay(store: Store, channel: RelayChannel, auth: AuthContext, ref: Any) -> dict[str, Any]:
    """Decommission a relay of the caller's org (an admin's call; the route checks the scope).

    Deletes its record and frees its name, so its credential is refused at ``$connect`` from
    now on and a new relay may enroll under the name; closes its live connection; fails its
    commands still waiting for it (``RELAY_BOUND_STATUSES``). Its history and audit stay.
    Raises InvalidInput, NotFound and AgentNameAmbiguous (pass the relay id).
    """
    if not isinstance(ref, str) or not ref.strip() or len(ref) > 128:
        raise InvalidInput("relay must be a relay id or name")
    record = find_relay(store, auth.org_id, ref.strip())
    if record is None:
        raise NotFound(f"no relay {ref.strip()!r} in this org")
    removed = store.delete_agent(record)
    now = utc_now_iso()
    failed = [
        command.command_id
        for command in store.list_relay_bound_commands(auth.org_id, record.relay_id)
        if store.transition_command(
            command.command_id, RELAY_BOUND_STATUSES, "failed", remove=["pending_env"],
            error="relay removed before it reported a result", completed_at=now,
        )
    ]
    awaiting, approvals_closed = _close_pending_approvals(store, auth.org_id, record.relay_id, now)
    failed += awaiting
    if record.connection_id:
        try:
            channel.close(record.connection_id)
        except (ClientError, BotoCoreError, ServiceMisconfigured):
            # Its record is gone, so whatever it sends is refused; the socket is only tidied up.
            logger.exception("closing a removed relay's connection failed", extra={"relay_id": record.relay_id})
    audit.append_event(
        auth.org_id,
        "relay.removed",
        {"relay_id": record.relay_id, "name": record.name, "reason": "removed", "flagged": record.flagged,
         "was_online": record.status == "online", "commands_failed": failed,
         "approvals_closed": approvals_closed},
        actor=auth.actor(),
    )
    return {"relay_id": record.relay_id, "name": record.name, "removed": removed, "removed_at": now,
            "commands_failed": failed, "approvals_closed": approvals_closed}


def _close_pending_approvals(store: Store, org_id: str, relay_id: str, now: str) -> tuple[list[str], list[str]]:
    """A removed relay's commands waiting for approval fail first (so no approval can dispatch
    them: dispatch moves only ``pending_approval``), then their approvals close as ``failed``
    ("relay removed") and their state machines end. Returns (command ids, approval ids)."""
    from flowlink.approvals.service import ApprovalNotFound, ApprovalService

    service = ApprovalService(store.settings, store=store)
    failed, closed = [], []
    for command in store.list_commands_in_status(org_id, relay_id, "pending_approval"):
        if not store.transition_command(
            command.command_id, ["pending_approval"], "failed", remove=["pending_env"],
            error="relay removed before approval; not run", completed_at=now,
        ):
            continue
        failed.append(command.command_id)
        if not command.approval_id:
            continue
        try:
            item = service.get(org_id, command.approval_id)
        except ApprovalNotFound:
            continue
        if service.close_for_removed_relay(item):
            closed.append(command.approval_id)
    return failed, closed


# -- WebSocket session ---------------------------------------------------------------------


def authorize_relay(store: Store, relay_id: str | None, credential: str | None) -> dict[str, str]:
    """The $connect authorizer decision: {org_id, relay_id} or RelayAuthenticationFailed."""
    if not relay_id or not credential or len(credential) > 256 or len(relay_id) > 64:
        raise RelayAuthenticationFailed("relay id and credential required")
    record = store.get_agent_any_org(relay_id)
    presented = hash_secret(credential)
    if record is None or not secrets.compare_digest(record.credential_hash, presented):
        raise RelayAuthenticationFailed("unknown relay or bad credential")
    return {"org_id": record.org_id, "relay_id": record.relay_id}


def connect_relay(store: Store, connection_id: str, relay_id: str, org_id: str) -> None:
    """$connect: remember the connection. The relay is marked online on it only by ``hello``,
    after its signing key and attestation are checked: until then no command is sent to it."""
    record = store.get_agent(org_id, relay_id)
    if record is None:
        raise RelayAuthenticationFailed("relay no longer enrolled")
    now = utc_now_iso()
    store.put_connection(
        connection_id, relay_id, org_id, now, expires_at=int(time.time()) + CONNECTION_TTL_SECONDS
    )
    audit.append_event(
        org_id,
        "relay.connected",
        {"relay_id": relay_id, "name": record.name, "connection_id": connection_id},
        actor={"type": "relay", "relay_id": relay_id},
    )


def disconnect_relay(store: Store, connection_id: str) -> None:
    """$disconnect: forget the connection; the relay goes offline unless it already reconnected."""
    _connections.drop(connection_id)
    connection = store.get_connection(connection_id)
    if connection is None:
        return
    went_offline = store.mark_agent_offline(connection.relay_id, connection_id, utc_now_iso())
    store.delete_connection(connection_id)
    audit.append_event(
        connection.org_id,
        "relay.disconnected",
        {"relay_id": connection.relay_id, "connection_id": connection_id, "went_offline": went_offline},
        actor={"type": "relay", "relay_id": connection.relay_id},
    )


def handle_relay_message(
    store: Store,
    settings: Settings,
    channel: RelayChannel,
    connection_id: str,
    body: str | bytes | None,
) -> dict[str, Any] | None:
    """$default: handle one relay message and answer through ``channel``.

    Returns the answer that was sent (or None), mainly for tests. A malformed message gets
    an ``error`` answer and changes nothing. Never raises for relay-supplied garbage.
    """
    connection = _lookup_connection(store, connection_id)
    if connection is None:
        return _answer(channel, connection_id, _error("unknown_connection", "connection is not registered"))
    try:
        message = json.loads(body or "")
    except (ValueError, UnicodeDecodeError):
        return _answer(channel, connection_id, _error("bad_message", "message is not valid JSON"))
    if not isinstance(message, dict):
        return _answer(channel, connection_id, _error("bad_message", "message must be a JSON object"))
    action = message.get("action")
    handler = _HANDLERS.get(action) if isinstance(action, str) else None
    if handler is None:
        return _answer(channel, connection_id, _error("unknown_action", f"unknown action {action!r}"))
    try:
        return handler(store, settings, channel, connection, message)
    except InvalidInput as exc:
        return _answer(channel, connection_id, _error("bad_message", exc.detail))


def _error(code: str, detail: str) -> dict[str, Any]:
    return {"type": relay_protocol.TYPE_ERROR, "code": code, "detail": detail}


def _answer(channel: RelayChannel, connection_id: str, message: dict[str, Any]) -> dict[str, Any]:
    try:
        channel.send(connection_id, message)
    except ConnectionGone:
        logger.info("relay connection gone before answer", extra={"connection_id": connection_id})
    return message


def _on_hello(
    store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict
) -> dict:
    record = store.get_agent(connection.org_id, connection.relay_id)
    if record is None:
        # Removed between its $connect and this hello.
        return _hang_up_removed(channel, connection)
    if record.flagged:
        return _refuse(
            store, channel, connection, record,
            "relay_flagged", f"relay is flagged ({record.flagged}); an admin must re-enroll it",
        )
    presented_key = message.get("signing_public_key")
    if record.signing_public_key and presented_key != record.signing_public_key:
        store.flag_agent(record, "identity_mismatch")
        audit.append_event(
            connection.org_id,
            "relay.identity_mismatch",
            {"relay_id": record.relay_id, "connection_id": connection.connection_id},
            actor={"type": "relay", "relay_id": record.relay_id},
        )
        return _refuse(
            store, channel, connection, record,
            "identity_mismatch", "signing key differs from the enrolled one; the relay is flagged until re-enrolled",
        )
    facts = message.get("facts")
    if facts is not None and (not isinstance(facts, dict) or len(json.dumps(facts)) > MAX_FACTS_BYTES):
        raise InvalidInput(f"facts must be a JSON object of at most {MAX_FACTS_BYTES} bytes")
    attestation = message.get("attestation")
    if attestation is not None and not isinstance(attestation, dict):
        raise InvalidInput("attestation must be an object or null")
    drift = attestation_module.relay_drift(settings, connection.org_id, attestation)
    if drift is not None and drift.get("status") == "TAMPERED":
        org = store.get_org(connection.org_id)
        refuse = bool(getattr(org, "refuse_drifted_relays", False))
        _record_drift(connection.org_id, record.relay_id, drift, refused=refuse)
        if refuse:
            store.flag_agent(record, "attestation_drift")
            return _refuse(store, channel, connection, record, "attestation_drift", DRIFT_REFUSED_DETAIL)
    version = message.get("version")
    hostname = (facts or {}).get("hostname") if isinstance((facts or {}).get("hostname"), str) else None
    now = utc_now_iso()
    # A tolerated drift is remembered, so the org turning refusal on later stops this relay
    # at once (``drift_refusal``) rather than at its next hello.
    drifted = drift is not None and drift.get("status") == "TAMPERED"
    store.mark_agent_online(
        record,
        connection.connection_id,
        now,
        facts=facts,
        attestation=attestation,
        version=str(version)[:64] if version is not None else None,
        hostname=hostname,
        drifted_at=now if drifted else None,
        remove=() if drifted else ("drifted_at",),
    )
    # The org's policy comes with the welcome, so every session starts able to judge with it.
    welcome = {
        "type": relay_protocol.TYPE_WELCOME,
        "server_time": utc_now_iso(),
        "policy": policy_document(settings, store, connection.org_id, record.relay_id),
    }
    return _answer(channel, connection.connection_id, welcome)


def policy_document(settings: Settings, store: Store, org_id: str, relay_id: str) -> str:
    """The org's current policy, signed for one relay (contracts §8)."""
    text = org_policy_text(store, org_id)
    return relay_protocol.sign_policy_document(
        load_signing_key(settings),
        relay_id=relay_id,
        org_id=org_id,
        version=compiled_policy(text).version,
        text=text,
    )


def push_policy(store: Store, settings: Settings, channel: RelayChannel, org_id: str) -> int:
    """Send the org's current policy to each of its online relays; returns how many got it.

    Best effort: a relay that misses it (socket gone, management API error) gets the
    policy in its next ``welcome``, or asks for it when an envelope names it.
    """
    delivered = 0
    for agent in store.list_agents(org_id):
        if agent.status != "online" or not agent.connection_id:
            continue
        message = {
            "type": relay_protocol.TYPE_POLICY,
            "document": policy_document(settings, store, org_id, agent.relay_id),
        }
        try:
            channel.send(agent.connection_id, message)
        except ConnectionGone:
            logger.info("relay gone before policy push", extra={"relay_id": agent.relay_id})
            continue
        except (ClientError, BotoCoreError, ServiceMisconfigured):
            # The policy is saved either way; relays fetch it when an envelope names it.
            logger.exception("policy push failed", extra={"relay_id": agent.relay_id})
            continue
        delivered += 1
    logger.info("policy pushed", extra={"org_id": org_id, "relays": delivered})
    return delivered


def _on_policy_request(
    store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict
) -> dict:
    """A relay lacks the policy an envelope names: send the org's current one."""
    document = policy_document(settings, store, connection.org_id, connection.relay_id)
    return _answer(channel, connection.connection_id, {"type": relay_protocol.TYPE_POLICY, "document": document})


DRIFT_REFUSED_DETAIL = "relay code differs from the org's attested baseline; refused"

FLAG_REASONS = {
    "identity_mismatch": "it presented another signing key than the enrolled one",
    "attestation_drift": "its code differs from the org's attested baseline and the org refuses drifted relays",
}


def flag_detail(reason: str | None) -> str | None:
    """Why a relay with this ``flagged`` reason is refused, for people (None: not flagged)."""
    if not reason:
        return None
    return (
        f"flagged ({reason}): {FLAG_REASONS.get(reason, 'refused by the gateway')}; it gets no commands "
        "until an admin re-enrolls it"
    )


def drift_refusal(store: Store, settings: Settings, channel: RelayChannel, agent: Any) -> str | None:
    """Why nothing may be sent to ``agent`` now, or None when it may be.

    Checked before every dispatch (fail closed): a flagged relay is refused; a relay whose
    last hello reported drift (``drifted_at``) is refused once its org refuses drifted
    relays: it is compared with the current baseline again (an admin may have re-captured
    it), and if it still differs it is flagged, audited and disconnected, as at a hello.
    """
    flagged = getattr(agent, "flagged", None)
    if flagged:
        return flag_detail(flagged)
    if not getattr(agent, "drifted_at", None):
        return None
    org = store.get_org(agent.org_id)
    if org is None or not org.refuse_drifted_relays:
        return None
    measured = store.get_agent(agent.org_id, agent.relay_id, with_attestation=True)
    if measured is None:
        return "relay was removed"
    try:
        drift = attestation_module.relay_drift(settings, agent.org_id, measured.attestation)
    except Exception:  # fail closed: an unreadable baseline refuses the drifted relay
        logger.exception("attestation check failed; refusing the drifted relay", extra={"relay_id": agent.relay_id})
        drift = {"status": "TAMPERED"}
    if drift is None or drift.get("status") != "TAMPERED":
        return None
    store.flag_agent(measured, "attestation_drift")
    agent.flagged = "attestation_drift"
    _record_drift(agent.org_id, agent.relay_id, drift, refused=True, when="org refuses drift")
    if agent.connection_id:
        _answer(channel, agent.connection_id, _error("attestation_drift", DRIFT_REFUSED_DETAIL))
        store.mark_agent_offline(agent.relay_id, agent.connection_id, utc_now_iso())
        try:
            channel.close(agent.connection_id)
        except (ClientError, BotoCoreError, ServiceMisconfigured):
            logger.exception("closing a drifted relay's connection failed", extra={"relay_id": agent.relay_id})
    return flag_detail("attestation_drift")


def enforce_drift_refusal(store: Store, settings: Settings, channel: RelayChannel, org_id: str) -> list[str]:
    """The org now refuses drifted relays: flag and disconnect those that reported drift.
    Returns their relay ids."""
    return [
        agent.relay_id
        for agent in store.list_agents(org_id)
        if getattr(agent, "drifted_at", None) and not getattr(agent, "flagged", None)
        and drift_refusal(store, settings, channel, agent) is not None
    ]


def _refuse(store: Store, channel: RelayChannel, connection: Any, record: Any, code: str, detail: str) -> dict:
    answer = _answer(channel, connection.connection_id, _error(code, detail))
    store.mark_agent_offline(record.relay_id, connection.connection_id, utc_now_iso())
    channel.close(connection.connection_id)
    return answer


def _hang_up_removed(channel: RelayChannel, connection: Any) -> dict:
    """A relay removed while connected: tell it so and hang up rather than keep it believing it is live."""
    answer = _answer(channel, connection.connection_id, _error("unknown_relay", "relay no longer enrolled"))
    channel.close(connection.connection_id)
    return answer


def _record_drift(org_id: str, relay_id: str, drift: dict[str, Any], *, refused: bool, **extra: Any) -> None:
    audit.append_event(
        org_id,
        "relay.attestation_drift",
        {"relay_id": relay_id, "refused": refused, "changed": drift.get("changed", []),
         "added": drift.get("added", []), "removed": drift.get("removed", []), **extra},
        actor={"type": "relay", "relay_id": relay_id},
    )


def _on_heartbeat(
    store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict
) -> dict:
    record = store.get_agent(connection.org_id, connection.relay_id)
    if record is None:
        return _hang_up_removed(channel, connection)
    store.touch_agent(record, utc_now_iso())
    return _answer(
        channel,
        connection.connection_id,
        {"type": relay_protocol.TYPE_HEARTBEAT_ACK, "ts": message.get("ts")},
    )


def _on_sync(store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict) -> dict:
    """Re-send every still-unacknowledged command of this relay, re-signed with a fresh expiry."""
    # Only to a relay whose hello on this very connection was accepted: a sync sent before
    # (or instead of) hello must not hand commands to a relay not yet checked or refused.
    record = store.get_agent(connection.org_id, connection.relay_id)
    if record is None or record.flagged or record.connection_id != connection.connection_id:
        return _answer(channel, connection.connection_id, _error("hello_first", "send hello and wait for welcome first"))
    resent: list[str] = []
    cutoff = time.time() - RESYNC_MAX_AGE_SECONDS
    for record in store.list_pending_commands(connection.org_id, connection.relay_id):
        # Age counts from dispatch: a hard_ask command may wait long for its approval first.
        sent_at = record.dispatched_at or record.created_at
        created = datetime.strptime(sent_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        if created.timestamp() < cutoff:
            store.transition_command(
                record.command_id,
                ["dispatched"],
                "failed",
                remove=["pending_env"],
                error="relay did not acknowledge the command in time",
                completed_at=utc_now_iso(),
            )
            continue
        envelope = sign_command_envelope(settings, record, env=record.pending_env or {}, store=store)
        channel.send(connection.connection_id, {"type": relay_protocol.TYPE_COMMAND, "envelope": envelope})
        resent.append(record.command_id)
    return {"type": "sync_done", "resent": resent}


# Marks "read the org's policy text from the store now" (None already means "no org policy").
POLICY_FROM_STORE: Any = object()


def sign_command_envelope(
    settings: Settings, record: Any, *, env: dict[str, str], store: Store, policy_text: Any = POLICY_FROM_STORE
) -> str:
    """The signed envelope (contracts §7) for a stored command record.

    It names the org's policy (contracts §8): the relay judges with that one. A caller that
    judged the command a moment ago passes the policy text it judged with, so gateway and
    relay apply the same version and the org is read once; otherwise it is read at signing
    time (a hard_ask dispatched after approval uses the policy in force then).
    """
    if policy_text is POLICY_FROM_STORE:
        policy_text = org_policy_text(store, record.org_id)
    verdict = record.gateway_verdict or {}
    return relay_protocol.sign_envelope(
        load_signing_key(settings),
        relay_id=record.relay_id,
        org_id=record.org_id,
        command_id=record.command_id,
        op=record.op,
        command=record.command or "",
        path=record.path,
        cwd=record.cwd,
        timeout=float(record.timeout),
        env=env,
        gateway_verdict={
            "decision": verdict.get("decision"),
            "score": verdict.get("score"),
            "reasons": verdict.get("reasons", []),
        },
        grant=getattr(record, "grant", None),
        secrets=_secret_ciphertexts(settings, record),
        policy=policy_reference(policy_text),
    )


def _secret_ciphertexts(settings: Settings, record: Any) -> dict[str, Any] | None:
    """The sealed documents of the secrets a command names, fetched at signing time so a
    secret deleted meanwhile makes the command fail (SecretNotFound) instead of running."""
    names = getattr(record, "secret_names", None)
    if not names:
        return None
    from flowlink.vault import Vault

    return Vault(settings).ciphertexts_for(record.org_id, record.relay_id, names)


def _command_id(message: dict) -> str:
    command_id = message.get("command_id")
    if not isinstance(command_id, str) or not command_id or len(command_id) > 128:
        raise InvalidInput("command_id is required")
    return command_id


def _on_ack(store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict) -> dict:
    command_id = _command_id(message)
    record = store.record_relay_update(
        connection.org_id,
        connection.relay_id,
        command_id,
        ["queued", "dispatched"],
        "running",
        remove=["pending_env"],
        acked_at=utc_now_iso(),
    )
    if record is None:
        existing = store.get_command(connection.org_id, command_id)
        # Another relay's (or org's) command is treated as unknown: a relay answers only for itself.
        if existing is None or existing.relay_id != connection.relay_id:
            raise InvalidInput(f"unknown command {command_id!r}")
    else:
        command_signals.notify(command_id, record)
    return {"type": "ack_recorded", "command_id": command_id, "changed": record is not None}


def _cap(text: Any) -> tuple[str, bool]:
    value = text if isinstance(text, str) else ("" if text is None else str(text))
    if len(value) > MAX_STORED_OUTPUT_CHARS:
        return value[:MAX_STORED_OUTPUT_CHARS], True
    return value, False


def output_digest(stdout: str, stderr: str) -> dict[str, Any]:
    """What audit records of output: SHA-256 and lengths, never the text."""
    return {
        "stdout_sha256": hashlib.sha256(stdout.encode("utf-8", "surrogatepass")).hexdigest(),
        "stdout_length": len(stdout),
        "stderr_sha256": hashlib.sha256(stderr.encode("utf-8", "surrogatepass")).hexdigest(),
        "stderr_length": len(stderr),
    }


_RESULT_AUDIT_KINDS = {
    relay_protocol.RESULT_COMPLETED: "exec.completed",
    relay_protocol.RESULT_REFUSED: "exec.refused_by_relay",
    relay_protocol.RESULT_TIMEOUT: "exec.failed",
    relay_protocol.RESULT_FAILED: "exec.failed",
}


def _on_result(
    store: Store, settings: Settings, channel: RelayChannel, connection: Any, message: dict
) -> dict:
    command_id = _command_id(message)
    status = message.get("status")
    if status not in relay_protocol.RESULT_STATUSES:
        raise InvalidInput(f"status must be one of {sorted(relay_protocol.RESULT_STATUSES)}")
    exit_code = message.get("exit_code")
    if exit_code is not None and (not isinstance(exit_code, int) or isinstance(exit_code, bool)):
        raise InvalidInput("exit_code must be an integer or null")
    duration = message.get("duration_ms")
    if duration is not None and (
        not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0
    ):
        raise InvalidInput("duration_ms must be a non-negative number")
    relay_verdict = message.get("relay_verdict")
    if relay_verdict is not None and not isinstance(relay_verdict, dict):
        raise InvalidInput("relay_verdict must be an object")
    raw_stdout = message.get("stdout") if isinstance(message.get("stdout"), str) else ""
    raw_stderr = message.get("stderr") if isinstance(message.get("stderr"), str) else ""
    stdout, cut_out = _cap(raw_stdout)
    stderr, cut_err = _cap(raw_stderr)
    truncated = bool(message.get("truncated")) or cut_out or cut_err
    error = message.get("error") if isinstance(message.get("error"), str) else None
    if error is None and status == relay_protocol.RESULT_REFUSED and relay_verdict:
        error = "; ".join(str(r) for r in relay_verdict.get("reasons", [])[:10]) or None
    record = store.record_relay_update(
        connection.org_id,
        connection.relay_id,
        command_id,
        ["queued", "dispatched", "running"],
        status,
        remove=["pending_env"],
        exit_code=exit_code,
        stdout=stdout,
        stderr=stderr,
        truncated=truncated,
        duration_ms=int(duration) if duration is not None else None,
        relay_verdict=relay_verdict,
        error=error[:2000] if error else None,
        completed_at=utc_now_iso(),
    )
    if record is None:
        existing = store.get_command(connection.org_id, command_id)
        if existing is None or existing.relay_id != connection.relay_id:
            raise InvalidInput(f"unknown command {command_id!r}")
        # Results are delivered at least once: the first one stored wins, repeats are ignored.
        return {"type": "result_recorded", "command_id": command_id, "changed": False}
    command_signals.notify(command_id, record)
    if record.op == relay_protocol.OP_EXEC:
        fields = {
            "command_id": record.command_id,
            "relay_id": record.relay_id,
            "agent": record.agent_name,
            "command": record.command,
            "status": status,
            "exit_code": exit_code,
            "duration_ms": duration,
            "truncated": truncated,
            "gateway_decision": (record.gateway_verdict or {}).get("decision"),
            "relay_decision": (relay_verdict or {}).get("decision"),
            "relay_reasons": list((relay_verdict or {}).get("reasons", []))[:20],
            # Which org policy judged on the host (contracts §8).
            "relay_policy_version": (relay_verdict or {}).get("policy_version"),
            "requested_by": record.requested_by,
            **output_digest(raw_stdout, raw_stderr),
        }
        audit.append_event(
            record.org_id,
            _RESULT_AUDIT_KINDS[status],
            fields,
            actor={"type": "api_key", "key_id": record.requested_by, "name": record.requested_by_name},
        )
    return {"type": "result_recorded", "command_id": command_id, "changed": True}


_HANDLERS: dict[str, Callable[..., dict]] = {
    relay_protocol.ACTION_HELLO: _on_hello,
    relay_protocol.ACTION_HEARTBEAT: _on_heartbeat,
    relay_protocol.ACTION_SYNC: _on_sync,
    relay_protocol.ACTION_ACK: _on_ack,
    relay_protocol.ACTION_RESULT: _on_result,
    relay_protocol.ACTION_POLICY_REQUEST: _on_policy_request,
}
