"""Org settings an admin manages: approvers and approval rules (issue 4) and the Shield policy.

A policy is validated with ``shield.policy.load_policy`` before it is stored, so a broken
policy is refused with its line and reason and the org keeps its previous one. Compiled
policies are cached by their text, so the exec path pays for compilation once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

from flowlink import audit
from flowlink.errors import InvalidInput, NotFound
from flowlink.relay_protocol import PolicyRef, policy_fits_one_message, policy_ref
from flowlink.storage import Store
from shield.policy import Policy, PolicyError, default_policy, load_policy

CHANNELS = ("telegram", "dashboard")
MAX_APPROVERS = 50
# Telegram user ids have at most 52 significant bits; bounding them here also keeps them
# exact in the audit chain's canonical JSON (integers beyond 2**53 have no exact form).
MAX_TELEGRAM_ID = 2**53 - 1
MAX_POLICY_BYTES = 256 * 1024

_cache_lock = threading.Lock()
_compiled: OrderedDict[str, Policy] = OrderedDict()


def compiled_policy(text: str | None) -> Policy:
    """The org policy compiled (cached by content), or the built-in default when unset."""
    if not text:
        return default_policy()
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _cache_lock:
        policy = _compiled.get(digest)
        if policy is not None:
            _compiled.move_to_end(digest)
            return policy
    policy = load_policy(text, source="org-policy.yaml")
    with _cache_lock:
        _compiled[digest] = policy
        while len(_compiled) > 64:
            _compiled.popitem(last=False)
    return policy


def org_policy_text(store: Store, org_id: str) -> str | None:
    """The org's policy text, or None when it has none (the built-in default applies)."""
    org = store.get_org(org_id)
    return (getattr(org, "policy_text", None) if org is not None else None) or None


def org_policy(store: Store, org_id: str) -> Policy:
    return compiled_policy(org_policy_text(store, org_id))


def policy_reference(text: str | None) -> PolicyRef:
    """How envelopes name the policy with this text (contracts §8); None: the default."""
    return policy_ref(compiled_policy(text).version, text)


def settings_view(org: Any) -> dict[str, Any]:
    policy = compiled_policy(org.policy_text)
    return {
        "org_id": org.org_id,
        "name": org.name,
        "approvers": list(org.approvers or []),
        "approvals_required": int(org.approvals_required or 1),
        "approval_timeout_seconds": int(org.approval_timeout_seconds or 600),
        "notification_channels": notification_channels(org),
        "refuse_drifted_relays": bool(org.refuse_drifted_relays),
        "policy": {"version": policy.version, "custom": bool(org.policy_text), "text": org.policy_text},
    }


def notification_channels(org: Any) -> list[str]:
    """The org's notification channels: both when never set, none when set to ``[]``
    (approvals are then decided from the CLI, REST or dashboard, nobody is messaged)."""
    channels = getattr(org, "notification_channels", None)
    return list(CHANNELS) if channels is None else [str(channel) for channel in channels]


def _validate_approvers(approvers: Any) -> list[dict[str, Any]]:
    if not isinstance(approvers, list) or len(approvers) > MAX_APPROVERS:
        raise InvalidInput(f"approvers must be a list of at most {MAX_APPROVERS} entries")
    cleaned = []
    for index, entry in enumerate(approvers):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise InvalidInput(f"approvers[{index}] needs a name")
        item: dict[str, Any] = {"name": entry["name"].strip()[:100]}
        telegram_id = entry.get("telegram_user_id")
        if telegram_id is not None:
            if isinstance(telegram_id, bool) or not isinstance(telegram_id, int) or not 0 < telegram_id <= MAX_TELEGRAM_ID:
                raise InvalidInput(
                    f"approvers[{index}].telegram_user_id must be a Telegram user id (a positive integer "
                    f"of at most {MAX_TELEGRAM_ID})"
                )
            item["telegram_user_id"] = telegram_id
        unknown = set(entry) - {"name", "telegram_user_id"}
        if unknown:
            raise InvalidInput(f"approvers[{index}]: unknown field(s) {', '.join(sorted(unknown))}")
        cleaned.append(item)
    return cleaned


def update_settings(store: Store, org_id: str, changes: dict[str, Any], *, actor: dict[str, Any]) -> dict[str, Any]:
    """Apply a partial update after validating every field; nothing is stored on any error."""
    org = store.get_org(org_id)
    if org is None:
        raise NotFound("org not found")
    allowed = {"approvers", "approvals_required", "approval_timeout_seconds", "notification_channels",
               "refuse_drifted_relays", "policy"}
    unknown = set(changes) - allowed
    if unknown:
        raise InvalidInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
    updates: dict[str, Any] = {}
    if "approvers" in changes:
        updates["approvers"] = _validate_approvers(changes["approvers"])
    if "approvals_required" in changes:
        value = changes["approvals_required"]
        # bool is an int in Python (True == 1) and 1.0 == 1: only the integers themselves.
        if type(value) is not int or value not in (1, 2):
            raise InvalidInput("approvals_required must be the integer 1 or 2 (2: two-person rule)")
        updates["approvals_required"] = changes["approvals_required"]
    if "approval_timeout_seconds" in changes:
        value = changes["approval_timeout_seconds"]
        if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 86400:
            raise InvalidInput("approval_timeout_seconds must be an integer from 10 to 86400")
        updates["approval_timeout_seconds"] = value
    if "notification_channels" in changes:
        channels = changes["notification_channels"]
        if not isinstance(channels, list) or not all(isinstance(c, str) and c in CHANNELS for c in channels):
            raise InvalidInput(
                f"notification_channels must be a list drawn from {', '.join(CHANNELS)} "
                "([] turns notifications off; approvals are still decided from the CLI, REST or dashboard)"
            )
        updates["notification_channels"] = sorted(set(channels))
    if "refuse_drifted_relays" in changes:
        if not isinstance(changes["refuse_drifted_relays"], bool):
            raise InvalidInput("refuse_drifted_relays must be true or false")
        updates["refuse_drifted_relays"] = changes["refuse_drifted_relays"]
    if "policy" in changes:
        text = changes["policy"]
        if text is not None:
            if not isinstance(text, str) or len(text.encode("utf-8")) > MAX_POLICY_BYTES:
                raise InvalidInput(f"policy must be YAML text of at most {MAX_POLICY_BYTES} bytes, or null")
            if not policy_fits_one_message(text):
                # Relays receive the policy signed, in one WebSocket message (contracts §8).
                raise InvalidInput(
                    "policy too large to send to relays in one message: keep it under about 90,000 "
                    "characters (a non-ASCII character counts 6 or 12)"
                )
            try:
                compiled_policy(text)
            except PolicyError as exc:
                raise InvalidInput(f"policy refused: {exc}", extra={"line": exc.line, "rule": exc.rule}) from None
        updates["policy_text"] = text or None
    for name, value in updates.items():
        setattr(org, name, value)
    org.save()
    fields = {name: value for name, value in updates.items() if name != "policy_text"}
    if "policy_text" in updates:
        fields["policy_version"] = compiled_policy(updates["policy_text"]).version
    audit.append_event(org_id, "org.settings_updated", fields, actor=actor)
    return settings_view(org)
