"""Repository functions over the control-plane tables: every read and write the domain needs.

Every query that returns tenant data takes an ``org_id`` and filters by it, so one org
can never see another's keys, agents or commands (a record of another org is treated as
absent). Writes that must not race use DynamoDB conditions. Nothing here knows about
HTTP, MCP or WebSockets, and nothing here logs secrets or command output.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError

from flowlink.errors import AgentNameAmbiguous, InvalidInput, RelayNameTaken
from flowlink.settings import Settings
from flowlink.storage.models import Models, build_models

# Terminal command states: once reached, a record's result never changes again.
# "cancelled": the requester withdrew a hard_ask command before it was approved.
TERMINAL_STATUSES = frozenset({"completed", "refused", "timeout", "failed", "denied", "cancelled"})
# States in which a command still waits for its relay (sent, or about to be, or running there).
RELAY_BOUND_STATUSES = ("queued", "dispatched", "running")

RELAY_ID_PREFIX = "rly_"
# Key prefix of the relay-name claims in the agents table (models.RelayNameClaim); never a relay id.
RELAY_NAME_CLAIM_PREFIX = "relay_name#"


def relay_name_claim_key(org_id: str, name: str) -> str:
    return f"{RELAY_NAME_CLAIM_PREFIX}{org_id}#{name}"


def utc_now_iso() -> str:
    """ISO-8601 UTC timestamp with microseconds, as every table stores it."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _condition_failed(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None)
    return cause == "ConditionalCheckFailedException"


class Store:
    """Typed access to the tables of one stack (``settings.table_prefix``)."""

    def __init__(self, settings: Settings, models: Models | None = None):
        self.settings = settings
        self.models = models or build_models(settings)
        self._agent_attribute_names: list[str] | None = None

    # -- orgs -------------------------------------------------------------------------

    def create_org(self, org_id: str, name: str) -> Any:
        org = self.models.orgs(org_id=org_id, name=name, created_at=utc_now_iso())
        org.save(condition=self.models.orgs.org_id.does_not_exist())
        return org

    def get_org(self, org_id: str) -> Any | None:
        try:
            return self.models.orgs.get(org_id, consistent_read=True)
        except DoesNotExist:
            return None

    def find_org_by_name(self, name: str) -> Any | None:
        # Orgs are few and this is only used by bootstrap, so a filtered scan is fine.
        for org in self.models.orgs.scan(self.models.orgs.name == name, consistent_read=True):
            return org
        return None

    # -- api keys ---------------------------------------------------------------------

    def put_api_key(self, **fields: Any) -> Any:
        record = self.models.api_keys(**fields)
        record.save(condition=self.models.api_keys.key_hash.does_not_exist())
        return record

    def get_api_key_by_hash(self, key_hash: str) -> Any | None:
        try:
            return self.models.api_keys.get(key_hash, consistent_read=True)
        except DoesNotExist:
            return None

    def list_api_keys(self, org_id: str) -> list[Any]:
        return list(self.models.api_keys.by_org.query(org_id, scan_index_forward=False))

    def find_api_key(self, org_id: str, key_id: str) -> Any | None:
        for record in self.models.api_keys.by_org.query(
            org_id, filter_condition=self.models.api_keys.key_id == key_id
        ):
            return record
        return None

    def revoke_api_key(self, record: Any, when: str) -> bool:
        """Mark a key revoked; False if it already was (the first revocation time stays)."""
        try:
            record.update(
                actions=[self.models.api_keys.revoked_at.set(when)],
                condition=self.models.api_keys.revoked_at.does_not_exist(),
            )
            return True
        except UpdateError as exc:
            if _condition_failed(exc):
                return False
            raise

    # -- enrollments ------------------------------------------------------------------

    def put_enrollment(self, **fields: Any) -> Any:
        record = self.models.enrollments(**fields)
        record.save(condition=self.models.enrollments.token_hash.does_not_exist())
        return record

    def redeem_enrollment(
        self, token_hash: str, now_epoch: int, build_agent: Callable[[Any], dict[str, Any]]
    ) -> tuple[Any, Any, list[Any]] | None:
        """Use a one-time token and register the relay it enrolls, under a name no other relay
        of the org holds.

        ``build_agent(enrollment)`` returns the new agent's fields. The token is claimed with
        one conditional write (only if unused and unexpired), so a token never enrolls two
        relays; then the relay's name is claimed (``claim_relay_name``); if that or creating
        the agent fails, the claims are released again, so a failed enrollment never burns a
        token or a name. (Not one DynamoDB transaction on purpose: moto evaluates
        transactions non-atomically under concurrent requests and restores whole tables on
        failure, while single conditional writes are atomic there as in AWS.)
        Returns (enrollment, agent, displaced) or None when the token is unknown, used or
        expired; ``displaced`` are the flagged relays of that name the new one replaced (their
        records are deleted). Raises RelayNameTaken.
        """
        model = self.models.enrollments
        try:
            enrollment = model.get(token_hash, consistent_read=True)
        except DoesNotExist:
            return None
        if enrollment.used_at is not None or enrollment.expires_at <= now_epoch:
            return None
        agent = self.models.agents(**build_agent(enrollment))
        try:
            enrollment.update(
                actions=[model.used_at.set(utc_now_iso()), model.relay_id.set(agent.relay_id)],
                condition=model.used_at.does_not_exist() & (model.expires_at > now_epoch),
            )
        except UpdateError as exc:
            if _condition_failed(exc):
                return None  # a concurrent enrollment won the token
            raise
        claimed = False
        try:
            displaced = self.claim_relay_name(agent.org_id, agent.name, agent.relay_id)
            claimed = True
            agent.save(condition=self.models.agents.relay_id.does_not_exist())
        except Exception:
            if claimed:
                self.release_relay_name(agent.org_id, agent.name, agent.relay_id)
            enrollment.update(
                actions=[model.used_at.remove(), model.relay_id.remove()],
                condition=model.relay_id == agent.relay_id,
            )
            raise
        for record in displaced:
            self.delete_agent(record)
        return enrollment, agent, displaced

    # -- relay names ------------------------------------------------------------------

    def claim_relay_name(self, org_id: str, name: str, relay_id: str) -> list[Any]:
        """Make ``relay_id`` the one holder of ``name`` in the org; returns the relays it displaces.

        The claim item is written only if the name is free, or (compare-and-set on its holder)
        if the holder no longer exists or is flagged: a flagged relay is refused until an admin
        re-enrolls it, and enrolling a new relay under its name is that re-enrollment. Of two
        concurrent enrollments under one name exactly one wins. Relays enrolled before names
        were claimed hold no claim item, so the org's relays of that name are checked too.
        Raises RelayNameTaken (nothing stays claimed) when a relay that is not flagged holds it.
        """
        model = self.models.relay_names
        claim = model(relay_id=relay_name_claim_key(org_id, name), claimed_by=relay_id, claimed_at=utc_now_iso())
        displaced: dict[str, Any] = {}
        condition = model.relay_id.does_not_exist()
        for _ in range(3):
            try:
                claim.save(condition=condition)
                break
            except PutError as exc:
                if not _condition_failed(exc):
                    raise
            try:
                current = model.get(claim.relay_id, consistent_read=True)
            except DoesNotExist:
                condition = model.relay_id.does_not_exist()  # released meanwhile: claim it afresh
                continue
            holder = self.get_agent(org_id, current.claimed_by)
            if holder is not None and not holder.flagged:
                raise _name_taken(name, [holder])
            if holder is not None:
                displaced[holder.relay_id] = holder
            condition = model.claimed_by == current.claimed_by
        else:
            raise RelayNameTaken(
                f"relay name {name!r} is being enrolled by another relay right now; try again",
                extra={"relay_ids": []},
            )
        others = [r for r in self.find_agents_by_name(org_id, name) if r.relay_id != relay_id]
        live = [r for r in others if not r.flagged]
        if live:
            self.release_relay_name(org_id, name, relay_id)
            raise _name_taken(name, live)
        displaced.update((r.relay_id, r) for r in others)
        return list(displaced.values())

    def release_relay_name(self, org_id: str, name: str, relay_id: str) -> None:
        """Free ``name`` if ``relay_id`` holds it (a no-op once another relay took it over)."""
        model = self.models.relay_names
        try:
            model(relay_id=relay_name_claim_key(org_id, name)).delete(condition=model.claimed_by == relay_id)
        except DeleteError as exc:
            if not _condition_failed(exc):
                raise

    # -- agents -----------------------------------------------------------------------

    def put_agent(self, **fields: Any) -> Any:
        record = self.models.agents(**fields)
        record.save(condition=self.models.agents.relay_id.does_not_exist())
        return record

    def _agent_projection(self, with_attestation: bool) -> list[str] | None:
        """Attributes to read for an agent: all of them, or all but the attestation.

        A relay's attestation measurement (a SHA-256 per code file) is ~17 KB, far more than
        the rest of the record, and only the attestation API needs it; every exec reads the
        agent, so the hot reads leave it out. Such a record is for reading and for
        ``update`` actions only: saving it whole would drop the measurement.
        """
        if with_attestation:
            return None
        names = self._agent_attribute_names
        if names is None:
            names = self._agent_attribute_names = [
                attribute.attr_name
                for name, attribute in self.models.agents.get_attributes().items()
                if name != "attestation"
            ]
        return names

    def get_agent_any_org(self, relay_id: str, *, with_attestation: bool = False) -> Any | None:
        """The relay record whatever its org: only for relay authentication, never for tenants."""
        if relay_id.startswith(RELAY_NAME_CLAIM_PREFIX):
            return None  # a name claim shares the table but is no relay
        try:
            return self.models.agents.get(
                relay_id, consistent_read=True, attributes_to_get=self._agent_projection(with_attestation)
            )
        except DoesNotExist:
            return None

    def get_agent(self, org_id: str, relay_id: str, *, with_attestation: bool = False) -> Any | None:
        record = self.get_agent_any_org(relay_id, with_attestation=with_attestation)
        if record is None or record.org_id != org_id:
            return None
        return record

    def find_agents_by_name(self, org_id: str, name: str) -> list[Any]:
        return list(
            self.models.agents.by_org.query(
                org_id, self.models.agents.name == name, attributes_to_get=self._agent_projection(False)
            )
        )

    def list_agents(self, org_id: str, *, with_attestation: bool = False) -> list[Any]:
        return list(
            self.models.agents.by_org.query(org_id, attributes_to_get=self._agent_projection(with_attestation))
        )

    def delete_agent(self, record: Any) -> bool:
        """Delete a relay's record and free its name; False if it was already gone.

        Without the record the relay's credential no longer authenticates ($connect) and no
        command can name it. Its commands stay (history, audit).
        """
        try:
            self.models.agents(relay_id=record.relay_id).delete(condition=self.models.agents.relay_id.exists())
            deleted = True
        except DeleteError as exc:
            if not _condition_failed(exc):
                raise
            deleted = False
        self.release_relay_name(record.org_id, record.name, record.relay_id)
        return deleted

    def flag_agent(self, record: Any, reason: str) -> None:
        """Refuse this relay from now on, until an admin re-enrolls it (a new relay id)."""
        record.update(actions=[self.models.agents.flagged.set(reason)])

    def mark_agent_online(
        self, record: Any, connection_id: str, now: str, *, remove: tuple[str, ...] = (), **facts: Any
    ) -> None:
        """Online on ``connection_id``; sets the non-None ``facts`` and removes ``remove``."""
        model = self.models.agents
        actions = [
            model.status.set("online"),
            model.connection_id.set(connection_id),
            model.last_seen.set(now),
        ]
        for name, value in facts.items():
            if value is not None:
                actions.append(getattr(model, name).set(value))
        actions += [getattr(model, name).remove() for name in remove]
        record.update(actions=actions)

    def touch_agent(self, record: Any, now: str) -> None:
        record.update(actions=[self.models.agents.last_seen.set(now)])

    def mark_agent_offline(self, relay_id: str, connection_id: str | None, now: str) -> bool:
        """Offline only if ``connection_id`` is still the relay's current one (None: unconditionally).

        A relay that reconnected quickly has a newer connection; the late $disconnect of the
        old one must not mark it offline.
        """
        model = self.models.agents
        record = model(relay_id=relay_id)
        condition = model.relay_id.exists()
        if connection_id is not None:
            condition = condition & (model.connection_id == connection_id)
        try:
            record.update(
                actions=[model.status.set("offline"), model.connection_id.remove(), model.last_seen.set(now)],
                condition=condition,
            )
            return True
        except UpdateError as exc:
            if _condition_failed(exc):
                return False
            raise

    # -- connections ------------------------------------------------------------------

    def put_connection(
        self, connection_id: str, relay_id: str, org_id: str, now: str, expires_at: int | None = None
    ) -> Any:
        record = self.models.connections(
            connection_id=connection_id,
            relay_id=relay_id,
            org_id=org_id,
            connected_at=now,
            expires_at=expires_at,
        )
        record.save()
        return record

    def get_connection(self, connection_id: str) -> Any | None:
        try:
            return self.models.connections.get(connection_id, consistent_read=True)
        except DoesNotExist:
            return None

    def delete_connection(self, connection_id: str) -> None:
        self.models.connections(connection_id=connection_id).delete()

    # -- commands ---------------------------------------------------------------------

    def create_command(self, **fields: Any) -> Any | None:
        """Create a command record and return it; None if one with that id exists (idempotent retry)."""
        record = self.models.commands(**fields)
        try:
            record.save(condition=self.models.commands.command_id.does_not_exist())
            return record
        except PutError as exc:
            if _condition_failed(exc):
                return None
            raise

    def get_command_any_org(self, command_id: str) -> Any | None:
        try:
            return self.models.commands.get(command_id, consistent_read=True)
        except DoesNotExist:
            return None

    def get_command(self, org_id: str, command_id: str) -> Any | None:
        record = self.get_command_any_org(command_id)
        if record is None or record.org_id != org_id:
            return None
        return record

    def transition_command(
        self,
        command_id: str,
        from_statuses: Iterable[str],
        to_status: str,
        *,
        remove: Iterable[str] = (),
        **fields: Any,
    ) -> bool:
        """Move a command to ``to_status`` only from one of ``from_statuses`` (first writer wins).

        Returns False when the record is in another state, e.g. a repeated result.
        """
        model = self.models.commands
        now = utc_now_iso()
        actions = [model.status.set(to_status), model.updated_at.set(now)]
        for name, value in fields.items():
            if value is not None:
                actions.append(getattr(model, name).set(value))
        for name in remove:
            actions.append(getattr(model, name).remove())
        allowed = list(from_statuses)
        condition = model.command_id.exists() & model.status.is_in(*allowed)
        try:
            model(command_id=command_id).update(actions=actions, condition=condition)
            return True
        except UpdateError as exc:
            if _condition_failed(exc):
                return False
            raise

    def record_relay_update(
        self,
        org_id: str,
        relay_id: str,
        command_id: str,
        from_statuses: Iterable[str],
        to_status: str,
        *,
        remove: Iterable[str] = (),
        **fields: Any,
    ) -> Any | None:
        """Apply a relay's ack/result in one conditional write and return the updated record.

        The condition also checks that the command belongs to this org and relay, so a relay
        can only ever change its own commands. None when the condition fails: unknown id,
        another relay's command, or a state that already moved on (a repeated result).
        """
        model = self.models.commands
        actions = [model.status.set(to_status), model.updated_at.set(utc_now_iso())]
        for name, value in fields.items():
            if value is not None:
                actions.append(getattr(model, name).set(value))
        for name in remove:
            actions.append(getattr(model, name).remove())
        condition = (
            model.command_id.exists()
            & (model.org_id == org_id)
            & (model.relay_id == relay_id)
            & model.status.is_in(*list(from_statuses))
        )
        record = model(command_id=command_id)
        try:
            record.update(actions=actions, condition=condition)
        except UpdateError as exc:
            if _condition_failed(exc):
                return None
            raise
        return record

    def list_pending_commands(self, org_id: str, relay_id: str) -> list[Any]:
        """Commands of a relay sent but not yet acknowledged (status ``dispatched``), oldest first."""
        model = self.models.commands
        return list(
            model.by_agent.query(
                f"{org_id}#{relay_id}",
                filter_condition=model.status == "dispatched",
                scan_index_forward=True,
            )
        )

    def list_relay_bound_commands(self, org_id: str, relay_id: str) -> list[Any]:
        """Commands of a relay still waiting for it (``RELAY_BOUND_STATUSES``), oldest first."""
        return self.list_commands_in_status(org_id, relay_id, *RELAY_BOUND_STATUSES)

    def list_commands_in_status(self, org_id: str, relay_id: str, *statuses: str) -> list[Any]:
        """A relay's commands in any of ``statuses``, oldest first."""
        model = self.models.commands
        return list(
            model.by_agent.query(
                f"{org_id}#{relay_id}", filter_condition=model.status.is_in(*statuses), scan_index_forward=True
            )
        )

    def command_history(
        self, org_id: str, relay_id: str, *, limit: int, page_token: str | None
    ) -> tuple[list[Any], str | None]:
        """One page of a relay's commands, newest first, and the opaque token of the next page."""
        model = self.models.commands
        agent_key = f"{org_id}#{relay_id}"
        start_key = decode_page_token(page_token, agent_key) if page_token else None
        result = model.by_agent.query(
            agent_key, scan_index_forward=False, limit=limit, last_evaluated_key=start_key
        )
        items = list(result)
        next_key = result.last_evaluated_key
        return items, encode_page_token(next_key) if next_key else None

    def org_commands(
        self, org_id: str, op: str, *, limit: int, page_token: str | None
    ) -> tuple[list[Any], str | None]:
        """One page of an org's commands of one ``op``, newest first, and the next page's token.

        The op filter runs after DynamoDB's ``Limit``, so a page may hold fewer than
        ``limit`` items (even none) and still have a next page.
        """
        model = self.models.commands
        start_key = decode_page_token(page_token, org_id, partition="org_id") if page_token else None
        result = model.by_org.query(
            org_id,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start_key,
            filter_condition=model.op == op,
        )
        items = list(result)
        next_key = result.last_evaluated_key
        return items, encode_page_token(next_key) if next_key else None


def find_relay(store: Any, org_id: str, ref: str) -> Any | None:
    """The org's relay that ``ref`` names: its relay id, else its name; None when none does.

    Names are unique per org (``Store.claim_relay_name``), but relays enrolled before that
    may share one: such a name is AgentNameAmbiguous (listing the ids), never resolved by
    picking one, e.g. whichever is online, since a command must never reach a host its
    caller did not mean. ``store`` is anything with ``get_agent``/``find_agents_by_name``.
    """
    if ref.startswith(RELAY_ID_PREFIX):
        record = store.get_agent(org_id, ref)
        if record is not None:
            return record
    matches = store.find_agents_by_name(org_id, ref)
    if len(matches) > 1:
        ids = sorted(m.relay_id for m in matches)
        raise AgentNameAmbiguous(
            f"several relays are named {ref!r} ({', '.join(ids)}): use a relay id, and remove the "
            f"one no longer wanted with `flowlink relays remove <relay id>`",
            extra={"relay_ids": ids},
        )
    return matches[0] if matches else None


def _name_taken(name: str, holders: list[Any]) -> RelayNameTaken:
    ids = sorted(h.relay_id for h in holders)
    return RelayNameTaken(
        f"this org already has a relay named {name!r} ({', '.join(ids)}): enroll under another name, "
        f"or remove it first with `flowlink relays remove {ids[0]}` if this host replaces it",
        extra={"relay_ids": ids},
    )


def encode_page_token(last_key: dict[str, Any]) -> str:
    raw = json.dumps(last_key, sort_keys=True, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, owner: str, *, partition: str = "agent_key") -> dict[str, Any]:
    """Decode a page token of the commands index keyed by ``partition`` (``agent_key`` for a
    relay's history, ``org_id`` for an org's commands); raises InvalidInput for anything we
    did not issue for this ``owner``."""
    try:
        padded = token + "=" * (-len(token) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError) as exc:
        raise InvalidInput("page_token is not a valid page token") from exc
    if (
        not isinstance(key, dict)
        or set(key) != {"command_id", partition, "created_at"}
        or key.get(partition) != {"S": owner}
        or not all(isinstance(v, dict) and isinstance(v.get("S"), str) and len(v) == 1 for v in key.values())
    ):
        what = "this agent" if partition == "agent_key" else "this org"
        raise InvalidInput(f"page_token is not a valid page token for {what}")
    return key
