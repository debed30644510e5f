"""Verification of an org's audit chain: names the first bad record and why. Pure, no I/O.

Input is the stored event records in ``seq`` order (DynamoDB items or exported lines, as
``AuditRecord``), plus optional trusted anchors: the head hint, HMAC-verified witness
snapshots and Ed25519-verified Merkle checkpoints. Anchors are what make a deleted tail
visible: a bare chain that simply ends earlier is still a valid chain.

Reasons start with one stable word — ``modified``, ``deleted``, ``inserted``,
``reordered``, ``truncated`` or ``rewritten`` — followed by the details.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from flowlink.audit import merkle
from flowlink.audit.chain import GENESIS_HASH, utc_now_iso
from flowlink.audit.store import index_fields

_decode = json.JSONDecoder().decode

MODIFIED = "modified"
DELETED = "deleted"
INSERTED = "inserted"
REORDERED = "reordered"
TRUNCATED = "truncated"
REWRITTEN = "rewritten"


@dataclass
class AuditRecord:
    """One stored event as verification sees it (all values as stored, unparsed)."""

    seq: Any  # int normally; whatever the store holds otherwise (e.g. Decimal("5.5"))
    event: str
    prev_hash: str
    chain_hash: str
    mt: str = ""
    frontier: str = ""
    indexes: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> AuditRecord:
        """From a low-level DynamoDB item (``{"seq": {"N": "1"}, ...}``)."""

        def text(name: str) -> str:
            value = item.get(name)
            return value.get("S", "") if isinstance(value, Mapping) else ""

        raw_seq = item.get("seq", {}).get("N", "")
        try:
            number = Decimal(raw_seq)
            seq: Any = int(number) if number == number.to_integral_value() else number
        except InvalidOperation:
            seq = raw_seq
        indexes = {name: text(name) for name in ("kind", "ts", "agent", "key_id", "decision") if name in item}
        return cls(
            seq=seq,
            event=text("event"),
            prev_hash=text("prev_hash"),
            chain_hash=text("chain_hash"),
            mt=text("mt"),
            frontier=text("frontier"),
            indexes=indexes,
        )


@dataclass(frozen=True)
class Anchor:
    """A trusted statement about the chain: at ``seq`` its chain hash (witness) or Merkle root
    (checkpoint) was this value. ``source`` names it in reasons."""

    seq: int
    source: str
    chain_hash: str | None = None
    merkle_root: str | None = None


@dataclass
class IntegrityReport:
    intact: bool
    length: int
    head_hash: str
    checked_at: str
    broken_at: int | float | None = None
    reason: str | None = None
    merkle_root: str = merkle.EMPTY_ROOT.hex()
    anchors_checked: int = 0
    rejected_anchors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _event_object(record: AuditRecord) -> dict[str, Any] | None:
    try:
        value = _decode(record.event)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _self_consistent(record: AuditRecord) -> bool:
    """Content matches the record's own chain_hash given its own prev_hash."""
    if len(record.prev_hash) != 64 or len(record.chain_hash) != 64:
        return False
    try:
        prev = bytes.fromhex(record.prev_hash)
        body = record.event.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    return hashlib.sha256(prev + body).hexdigest() == record.chain_hash


def _index_mismatch(record: AuditRecord, event: dict[str, Any]) -> str | None:
    """Filter copies (kind, ts, agent, key_id, decision) must agree with the hashed event."""
    if not record.indexes:
        return None
    fields = event.get("fields")
    actor = event.get("actor")
    expected = {
        "kind": event.get("kind"),
        "ts": event.get("ts"),
        **index_fields(str(event.get("kind")), fields if isinstance(fields, dict) else {},
                       actor if isinstance(actor, dict) else None),
    }
    for name, stored in record.indexes.items():
        if expected.get(name) != stored:
            return name
    return None


def verify_records(
    records: Iterable[AuditRecord],
    *,
    org_id: str,
    head_size: int | None = None,
    head_hash: str | None = None,
    anchors: Iterable[Anchor] = (),
    rejected_anchors: Iterable[str] = (),
    check_merkle_storage: bool = True,
    now: str | None = None,
) -> IntegrityReport:
    """Verify an org's records (in stored ``seq`` order) against each other and the anchors.

    ``head_size``/``head_hash`` come from the head hint (a lagging hint is not an error, a
    head beyond the last record is a truncation). ``anchors`` must already be verified
    (HMAC / signature); ``rejected_anchors`` are descriptions of forged ones, reported only.
    """
    anchor_list = sorted(anchors, key=lambda a: a.seq)
    by_seq: dict[int, list[Anchor]] = {}
    for anchor in anchor_list:
        by_seq.setdefault(anchor.seq, []).append(anchor)
    tally = _Tally(records)
    iterator = iter(tally)
    problems: list[tuple[float, str]] = []
    prev = GENESIS_HASH
    frontier: list[bytes] = []
    size = 0
    chain_ok = True
    for record in iterator:
        expected = size + 1
        problem, new_frontier = _check(record, expected, prev, frontier, org_id, check_merkle_storage)
        if problem is not None:
            problems.append(_diagnose(record, expected, problem, iterator))
            chain_ok = False
            for _ in iterator:  # count what is stored after the break
                pass
            break
        frontier = new_frontier
        size = expected
        prev = record.chain_hash
        for anchor in by_seq.get(size, ()):
            if anchor.chain_hash is not None and anchor.chain_hash != record.chain_hash:
                problems.append((size, (f"{REWRITTEN}: record {size} has chain_hash {record.chain_hash[:16]}… but "
                                       f"{anchor.source} recorded {anchor.chain_hash[:16]}…")))
            if anchor.merkle_root is not None and anchor.merkle_root != merkle.frontier_root(frontier).hex():
                problems.append((size, (f"{REWRITTEN}: the Merkle root of the first {size} records differs from "
                                       f"{anchor.source}")))
    if chain_ok:
        # Anchors beyond the last record prove records existed that are gone now.
        for anchor in anchor_list:
            if anchor.seq > size:
                problems.append((size + 1, (f"{TRUNCATED}: the chain ends at seq {size} but {anchor.source} "
                                           f"covers seq {anchor.seq}; records {size + 1}..{anchor.seq} were deleted")))
                break
        if head_size is not None and head_size > size:
            problems.append((size + 1, (f"{TRUNCATED}: the chain ends at seq {size} but its head records seq "
                                       f"{head_size}; records {size + 1}..{head_size} were deleted")))
        # A head hint behind the last record is normal after a crash between put and head update.
    report = IntegrityReport(
        intact=not problems,
        length=tally.count,
        head_hash=tally.last_hash,
        checked_at=now or utc_now_iso(),
        merkle_root=merkle.frontier_root(frontier).hex(),
        anchors_checked=len(anchor_list),
        rejected_anchors=list(rejected_anchors),
    )
    if problems:
        at, reason = min(problems, key=lambda p: p[0])
        report.broken_at = int(at) if float(at).is_integer() else float(at)
        report.reason = reason
    return report


def _check(
    record: AuditRecord,
    expected: int,
    prev: str,
    frontier: list[bytes],
    org_id: str,
    check_merkle_storage: bool,
) -> tuple[str | None, list[bytes]]:
    """(None, frontier after the record) if it is the correct next record, else (a short code
    of what failed, the old frontier)."""
    if type(record.seq) is not int:
        return "key", frontier
    if record.seq != expected:
        return ("gap" if record.seq > expected else "key"), frontier
    if not _self_consistent(record):
        return "content", frontier
    event = _event_object(record)
    if event is None:
        return "content", frontier
    if event.get("seq") != record.seq:
        return "moved", frontier
    if record.prev_hash != prev:
        return "link", frontier
    if event.get("org_id") != org_id:
        return "org", frontier
    if _index_mismatch(record, event):
        return "index", frontier
    new_frontier, levels = merkle.frontier_append(frontier, expected - 1, merkle.leaf_hash(record.event.encode()))
    if check_merkle_storage:
        try:
            stored_levels, stored_frontier = bytes.fromhex(record.mt), bytes.fromhex(record.frontier)
        except ValueError:
            return "merkle", frontier
        if stored_levels != b"".join(levels) or stored_frontier != b"".join(new_frontier):
            return "merkle", frontier
    return None, new_frontier


def _diagnose(record: AuditRecord, expected: int, problem: str, rest: Iterator[AuditRecord]) -> tuple[float, str]:
    """Name what happened at the first failing record; may read ahead in ``rest``."""
    if problem == "key":
        return (float(record.seq) if _is_number(record.seq) else expected,
                f"{INSERTED}: record with key seq {record.seq} is not a chain position (expected seq {expected})")
    if problem == "gap":
        return (expected, f"{DELETED}: record {expected} is missing (the next stored record is seq {record.seq})")
    if problem == "content":
        return (expected, f"{MODIFIED}: the content of record {expected} does not match its chain_hash")
    if problem == "org":
        return (expected, f"{MODIFIED}: record {expected} names another org")
    if problem == "index":
        event = _event_object(record) or {}
        return (expected, (f"{MODIFIED}: the '{_index_mismatch(record, event)}' attribute of record {expected} "
                          f"differs from its hashed event"))
    if problem == "merkle":
        return (expected, f"{MODIFIED}: the stored Merkle hashes of record {expected} do not match its content")
    if problem == "link":
        if expected == 1:
            return (1, f"{MODIFIED}: record 1 does not start from the genesis hash")
        return (expected - 1, (f"{MODIFIED}: record {expected - 1} was rewritten (its chain_hash is not the "
                              f"prev_hash that record {expected} holds)"))
    # problem == "moved": the record is intact but was written for another position.
    original = (_event_object(record) or {}).get("seq")
    if isinstance(original, int) and original < expected:
        return (original, (f"{INSERTED}: records {original}..{expected - 1} are not part of the original chain "
                          f"(the original record {original} now sits at seq {expected})"))
    for later in rest:
        later_event = _event_object(later)
        if later_event is not None and later_event.get("seq") == expected and _self_consistent(later):
            return (expected, (f"{REORDERED}: seq {expected} holds the original record {original}; the original "
                              f"record {expected} sits at seq {later.seq}"))
    return (expected, (f"{DELETED}: the original records {expected}..{original - 1 if isinstance(original, int) else '?'}"
                      f" are missing; later records were renumbered (seq {expected} holds original record {original})"))


class _Tally:
    """Passes records through while counting them and remembering the last chain hash."""

    def __init__(self, records: Iterable[AuditRecord]):
        self._records = records
        self.count = 0
        self.last_hash = GENESIS_HASH

    def __iter__(self) -> Iterator[AuditRecord]:
        for record in self._records:
            self.count += 1
            self.last_hash = record.chain_hash
            yield record


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
