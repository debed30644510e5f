"""Audit queries: filtered, paginated reads of an org's events, newest first, with chain status.

Filters (all optional, combined with AND): ``agent`` (relay id or name), ``key_id``,
``decision``, ``since``/``until`` (ISO-8601, inclusive, on the event time) and ``text``
(case-insensitive substring of the event JSON). Page tokens are opaque, bound to the org
and the filters; a malformed, foreign or stale token is a 400 (AuditQueryError), never a
silent restart from the beginning.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from flowlink.audit.errors import AuditQueryError
from flowlink.audit.store import AuditStore
from flowlink.audit.verify import AuditRecord, _self_consistent

MAX_LIMIT = 500
MAX_TEXT_LENGTH = 200
# A page stops after examining this many events even if fewer matched, so one request
# stays bounded; the token lets the caller continue.
SCAN_BUDGET = 5000


def _parse_time(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing "Z" too
    except (TypeError, ValueError) as exc:
        raise AuditQueryError(f"'{name}' must be an ISO-8601 time such as 2026-11-25T09:00:00Z") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fingerprint(org_id: str, filters: dict[str, Any]) -> str:
    material = json.dumps({"org": org_id, **filters}, sort_keys=True).encode()
    return hashlib.sha256(material).hexdigest()[:16]


def encode_page_token(org_id: str, filters: dict[str, Any], before_seq: int) -> str:
    raw = json.dumps({"v": 1, "before": before_seq, "f": _fingerprint(org_id, filters)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_page_token(org_id: str, filters: dict[str, Any], token: str) -> int:
    """The seq a page continues below; raises AuditQueryError for any token that is not ours."""
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        before = data["before"]
        fingerprint = data["f"]
    except (ValueError, KeyError, TypeError, UnicodeError) as exc:
        raise AuditQueryError("page_token is malformed") from exc
    if data.get("v") != 1 or not isinstance(before, int) or before < 1:
        raise AuditQueryError("page_token is malformed")
    if fingerprint != _fingerprint(org_id, filters):
        raise AuditQueryError("page_token belongs to another query (org or filters differ)")
    return before


def _record_view(item: dict[str, Any]) -> dict[str, Any]:
    record = AuditRecord.from_item(item)
    event = json.loads(record.event)
    return {
        "seq": record.seq,
        "ts": event.get("ts"),
        "kind": event.get("kind"),
        "actor": event.get("actor"),
        "fields": event.get("fields"),
        "prev_hash": record.prev_hash,
        "chain_hash": record.chain_hash,
        "hash_ok": _self_consistent(record),
    }


def query_events(
    org_id: str,
    *,
    agent: str | None = None,
    key_id: str | None = None,
    decision: str | None = None,
    since: str | None = None,
    until: str | None = None,
    text: str | None = None,
    page_token: str | None = None,
    limit: int = 50,
    include_integrity: bool = False,
    store: AuditStore | None = None,
) -> dict[str, Any]:
    """One page of matching events, newest first: ``{events, next_page_token, chain}``.

    ``chain`` always has the log length and head hash; with ``include_integrity`` it is the
    full integrity report (reads the whole log). Each event carries ``hash_ok`` (its content
    matches its chain hash). Raises AuditQueryError for bad limits, times, ranges or tokens.
    """
    if store is None:
        from flowlink.audit import default_store

        store = default_store()
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise AuditQueryError(f"limit must be between 1 and {MAX_LIMIT}")
    if text is not None and (not text or len(text) > MAX_TEXT_LENGTH):
        raise AuditQueryError(f"text must be 1..{MAX_TEXT_LENGTH} characters")
    since_iso, until_iso = _parse_time("since", since), _parse_time("until", until)
    if since_iso and until_iso and since_iso > until_iso:
        raise AuditQueryError("'since' is after 'until'")
    filters = {"agent": agent, "key_id": key_id, "decision": decision, "since": since_iso, "until": until_iso,
               "text": text}
    head = store.latest_head(org_id)
    start_below = head.size + 1
    if page_token is not None:
        start_below = decode_page_token(org_id, filters, page_token)
        if start_below > head.size + 1:
            raise AuditQueryError("page_token points beyond the end of the log")
    needle = text.casefold() if text else None
    events: list[dict[str, Any]] = []
    next_token = None
    examined = 0
    last_seq = start_below
    if start_below > 1:
        for item in store.iter_items(org_id, start_seq=1, end_seq=start_below - 1, descending=True, page_size=200):
            seq_text = item["seq"]["N"]
            if not seq_text.isdigit():
                continue  # not a chain position; integrity reports it
            last_seq = int(seq_text)
            examined += 1
            if _matches(item, agent, key_id, decision, since_iso, until_iso, needle):
                events.append(_record_view(item))
                if len(events) == limit:
                    break
            if examined >= SCAN_BUDGET:
                break
        if (len(events) == limit or examined >= SCAN_BUDGET) and last_seq > 1:
            next_token = encode_page_token(org_id, filters, last_seq)
    chain: dict[str, Any] = {"length": head.size, "head_hash": head.chain_hash, "merkle_root": head.merkle_root.hex()}
    if include_integrity:
        from flowlink.audit.integrity import verify_chain

        chain = verify_chain(org_id, store=store).to_dict()
    return {"events": events, "next_page_token": next_token, "chain": chain}


def _matches(
    item: dict[str, Any],
    agent: str | None,
    key_id: str | None,
    decision: str | None,
    since: str | None,
    until: str | None,
    needle: str | None,
) -> bool:
    def attribute(name: str) -> str | None:
        value = item.get(name)
        return value.get("S") if value else None

    if agent is not None and attribute("agent") != agent:
        return False
    if key_id is not None and attribute("key_id") != key_id:
        return False
    if decision is not None and attribute("decision") != decision:
        return False
    ts = attribute("ts") or ""
    if since is not None and ts < since:
        return False
    if until is not None and ts > until:
        return False
    return needle is None or needle in (attribute("event") or "").casefold()
