"""Zero-trust secrets at the control plane: ciphertext in, ciphertext out, never a value.

Secrets are sealed on the user's machine to a relay's X25519 public key
(``flowlink.secret_box``). The vault checks that each uploaded document is well formed and
addressed to the key that relay registered at enrollment, stores it per (org, name, relay)
with a version, lists names and metadata, deletes (keeping a tombstone, so a command that
still references a deleted secret fails clearly), and hands ciphertexts to the exec path
for the one relay that can open them. There is deliberately no operation that returns a
value: the control plane cannot decrypt, and no key of any scope can read one back.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from flowlink import audit
from flowlink.errors import FlowLinkError, InvalidInput, NotFound
from flowlink.secret_box import SecretBoxError, decode_key, key_fingerprint, parse_document
from flowlink.settings import Settings
from flowlink.storage import Store, find_relay, utc_now_iso

SECRET_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,127}$")
# `$NAME` or `${NAME}` in a command line names a secret to inject.
SECRET_REFERENCE = re.compile(r"\$(?:\{([A-Z_][A-Z0-9_]*)\}|([A-Z_][A-Z0-9_]*))")
MAX_SECRETS_PER_EXEC = 32


class SecretNotFound(NotFound):
    code = "secret_not_found"


class CiphertextRejected(FlowLinkError):
    """An upload that is not a well-formed ciphertext for a registered relay key."""

    code = "ciphertext_rejected"
    http_status = 400


def validate_secret_name(name: Any) -> str:
    if not isinstance(name, str) or not SECRET_NAME.match(name):
        raise InvalidInput("secret name must be UPPER_SNAKE_CASE: letters, digits and _, starting with a letter or _")
    return name


def referenced_secret_names(command: str) -> set[str]:
    return {a or b for a, b in SECRET_REFERENCE.findall(command)}


def secret_model(settings: Settings) -> Any:
    return _secret_model(settings.table_prefix, settings.region, settings.aws_endpoint)


@lru_cache(maxsize=8)
def _secret_model(table_prefix: str, region: str, endpoint: str | None = None) -> Any:
    # ``endpoint`` only keys the cache: pynamodb binds a model's connection to the endpoint
    # botocore resolves on first use, so another endpoint needs other model classes.
    class Secret(Model):
        class Meta:
            table_name = Settings(table_prefix=table_prefix).table("secrets")

        org_id = UnicodeAttribute(hash_key=True)
        secret_key = UnicodeAttribute(range_key=True)  # "{name}#{relay_id}"
        name = UnicodeAttribute()
        relay_id = UnicodeAttribute()
        kid = UnicodeAttribute()
        ciphertext = JSONAttribute(null=True)  # None only in a tombstone
        version = NumberAttribute(default=1)
        created_at = UnicodeAttribute()
        created_by = UnicodeAttribute(null=True)
        updated_at = UnicodeAttribute()
        updated_by = UnicodeAttribute(null=True)
        # A deleted secret leaves a tombstone under the same key: no ciphertext, when and by
        # whom. It makes a later `$NAME` reference fail clearly (a name that never was a secret
        # stays a plain shell variable); putting the secret again replaces it.
        deleted_at = UnicodeAttribute(null=True)
        deleted_by = UnicodeAttribute(null=True)

    Secret.Meta.region = region
    return Secret


@dataclass(frozen=True)
class SecretSummary:
    name: str
    relay_id: str
    version: int
    kid: str
    created_at: str
    created_by: str | None
    updated_at: str
    updated_by: str | None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


class Vault:
    """Ciphertext storage per org. Every method is scoped by org_id."""

    def __init__(self, settings: Settings, store: Store | None = None):
        self.settings = settings
        self._store = store
        self.model = secret_model(settings)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store(self.settings)
        return self._store

    def _relay(self, org_id: str, relay_ref: str) -> Any:
        """The relay ``relay_ref`` names (id or name): NotFound, or AgentNameAmbiguous for a
        name several relays share, resolved exactly as commands resolve their agent."""
        relay = find_relay(self.store, org_id, relay_ref) if isinstance(relay_ref, str) else None
        if relay is None:
            raise NotFound(f"no relay {relay_ref!r} in this org")
        return relay

    def recipient_key(self, org_id: str, relay_ref: str) -> dict[str, str]:
        """The public key (and fingerprint) a client must encrypt to for this relay."""
        relay = self._relay(org_id, relay_ref)
        if not relay.box_public_key:
            raise CiphertextRejected(f"relay {relay.relay_id} registered no encryption key; re-enroll it")
        public = decode_key(relay.box_public_key, what="relay key")
        return {"relay_id": relay.relay_id, "name": relay.name, "box_public_key": relay.box_public_key,
                "fingerprint": key_fingerprint(public)}

    def put(self, org_id: str, name: str, documents: dict[str, Any], *, actor: Any) -> list[SecretSummary]:
        """Store one secret's ciphertexts, one per relay (``{relay ref: document}``).

        All documents are checked before anything is written, so a bad one stores nothing.
        Raises InvalidInput, NotFound (relay) or CiphertextRejected.
        """
        validate_secret_name(name)
        if not isinstance(documents, dict) or not documents:
            raise InvalidInput("ciphertexts must map at least one relay to its ciphertext document")
        checked = []
        for relay_ref, document in documents.items():
            relay = self._relay(org_id, relay_ref)
            expected = self.recipient_key(org_id, relay.relay_id)["fingerprint"]
            try:
                kid, _ = parse_document(document)
            except SecretBoxError as exc:
                raise CiphertextRejected(f"ciphertext for {relay.relay_id}: {exc}") from exc
            if kid != expected:
                raise CiphertextRejected(
                    f"ciphertext for {relay.relay_id} was encrypted for key {kid}, but the relay's key is {expected}"
                )
            checked.append((relay, json.loads(document) if isinstance(document, str) else document))
        now = utc_now_iso()
        summaries = []
        for relay, document in checked:
            key = f"{name}#{relay.relay_id}"
            try:
                existing = self.model.get(org_id, key, consistent_read=True)
            except DoesNotExist:
                existing = None
            version = int(existing.version) + 1 if existing is not None else 1
            if existing is not None and not existing.deleted_at:
                created_at, created_by = existing.created_at, existing.created_by
            else:  # new, or put again after a delete (the version goes on from the tombstone's)
                created_at, created_by = now, actor.key_id
            item = self.model(
                org_id=org_id, secret_key=key, name=name, relay_id=relay.relay_id, kid=document["kid"],
                ciphertext=document, version=version, created_at=created_at, created_by=created_by,
                updated_at=now, updated_by=actor.key_id,
            )
            item.save()
            summaries.append(_summary(item))
            audit.append_event(
                org_id, "secret.put", {"name": name, "relay_id": relay.relay_id, "version": version, "kid": item.kid},
                actor=actor.actor(),
            )
        return summaries

    def list(self, org_id: str) -> list[SecretSummary]:
        return [_summary(item) for item in self.model.query(org_id) if not item.deleted_at]

    def delete(self, org_id: str, name: str, *, actor: Any, relay_ref: str | None = None) -> int:
        """Delete a secret (for one relay, or all); later execs that need it fail clearly.

        The ciphertext is dropped and a tombstone kept in its place (see the model).
        """
        validate_secret_name(name)
        relay_id = self._relay(org_id, relay_ref).relay_id if relay_ref else None
        deleted = 0
        now = utc_now_iso()
        for item in self.model.query(org_id, self.model.secret_key.startswith(f"{name}#")):
            if (relay_id and item.relay_id != relay_id) or item.deleted_at:
                continue
            self.model(
                org_id=org_id, secret_key=item.secret_key, name=item.name, relay_id=item.relay_id, kid=item.kid,
                ciphertext=None, version=item.version, created_at=item.created_at, created_by=item.created_by,
                updated_at=now, updated_by=actor.key_id, deleted_at=now, deleted_by=actor.key_id,
            ).save()
            deleted += 1
        if not deleted:
            raise SecretNotFound(f"no secret {name!r}" + (f" for relay {relay_id}" if relay_id else ""))
        audit.append_event(org_id, "secret.deleted", {"name": name, "relay_id": relay_id, "count": deleted},
                           actor=actor.actor())
        return deleted

    def names_for(self, org_id: str, relay_id: str) -> set[str]:
        """Names of the secrets that exist for one relay."""
        return self._inventory(org_id, relay_id)[0]

    def _inventory(self, org_id: str, relay_id: str) -> tuple[set[str], dict[str, str]]:
        """(names that exist for the relay, {deleted name: deleted_at}) from one query."""
        existing: set[str] = set()
        deleted: dict[str, str] = {}
        for item in self.model.query(org_id):
            if item.relay_id != relay_id:
                continue
            if item.deleted_at:
                deleted[item.name] = item.deleted_at
            else:
                existing.add(item.name)
        return existing, deleted

    def exec_secret_names(self, org_id: str, relay_id: str, named: list[str], referenced: set[str]) -> list[str]:
        """The secrets an exec injects: those ``named``, plus the ``$NAME`` references that
        exist for the relay. Raises SecretNotFound, before anything runs, for a named secret
        that does not exist and for a reference to a secret of this relay that was deleted; a
        reference that never was a secret is left to the shell."""
        available, deleted = self._inventory(org_id, relay_id)
        gone = sorted((set(named) | referenced) & deleted.keys())
        if gone:
            raise SecretNotFound("; ".join(_deleted_message(name, deleted[name]) for name in gone)
                                 + ": nothing was run")
        missing = sorted(set(named) - available)
        if missing:
            raise SecretNotFound(
                f"secret(s) {', '.join(missing)} do not exist for this agent (deleted, or never encrypted "
                "for it): nothing was run"
            )
        return sorted(set(named) | (referenced & available))

    def ciphertexts_for(self, org_id: str, relay_id: str, names: set[str] | list[str]) -> dict[str, dict[str, Any]]:
        """The documents the relay will open at run time; SecretNotFound names what is missing."""
        wanted = sorted(set(names))
        if len(wanted) > MAX_SECRETS_PER_EXEC:
            raise InvalidInput(f"at most {MAX_SECRETS_PER_EXEC} secrets per command")
        found: dict[str, dict[str, Any]] = {}
        for name in wanted:
            validate_secret_name(name)
            try:
                item = self.model.get(org_id, f"{name}#{relay_id}", consistent_read=True)
            except DoesNotExist:
                raise SecretNotFound(
                    f"secret {name!r} does not exist for this relay (deleted, or never encrypted for it): "
                    "nothing was run"
                ) from None
            if item.deleted_at:
                raise SecretNotFound(_deleted_message(name, item.deleted_at) + ": nothing was run")
            found[name] = item.ciphertext
        return found


def _deleted_message(name: str, deleted_at: str) -> str:
    return f"secret {name} was deleted on {deleted_at}; put it again or remove the reference"


def _summary(item: Any) -> SecretSummary:
    return SecretSummary(
        name=item.name, relay_id=item.relay_id, version=int(item.version), kid=item.kid,
        created_at=item.created_at, created_by=item.created_by, updated_at=item.updated_at, updated_by=item.updated_by,
    )
