"""The audit table in DynamoDB: serialized appends to each org's chain and ordered reads.

Layout (table ``audit``, key ``org_id`` S / ``seq`` N, docs/contracts.md §3):

* ``seq`` 1, 2, 3 … are the events: ``event`` (the canonical JSON text that is hashed),
  ``prev_hash``, ``chain_hash``, ``mt`` (hex hashes of the perfect Merkle subtrees that end
  at this leaf, level 0 first), ``frontier`` (the Merkle compact range of the tree that ends
  with this leaf) and copies of ``kind``, ``ts``, ``agent``, ``key_id``, ``decision`` for
  filtering (verification checks that they match the hashed event).
* ``seq`` 0 is the org's **head hint**: ``head_seq``, ``head_hash``, ``frontier``,
  ``updated_at``, moved forward (never back) after each append.

How appends are serialized: event ``n+1`` is written with one conditional ``PutItem``
(``attribute_not_exists(seq)``), which DynamoDB applies atomically per item. Two writers
that both saw head ``n`` cannot both write ``n+1`` (no fork); a writer only ever writes the
seq right after an event whose hash it holds (no gap); the loser reads the events from the
seq it lost on forward (one strongly consistent ``BatchGetItem`` of the next
``TIP_BATCH`` seqs) and retries on top of the newest, with jittered backoff once it keeps
losing (no lost event). So an append costs one request, and a lost race two.

The head hint (``seq`` 0) only saves reads for writers and readers that start cold: it is
moved forward (never back) by the append whose seq is a multiple of ``HEAD_HINT_STRIDE``,
so it lags the newest event by less than that (more after a crash between a put and its
hint update); whoever reads it walks forward from it in batches. Updating it on every
append would double the requests of every append for a hint. A transaction (event + head)
would be equivalent on AWS but costs twice the write units, and moto's
TransactWriteItems deep-copies the whole table per call and rolls back by swapping
tables, which loses concurrent writes; single conditional puts behave the same on both.

Never writes plaintext secrets: callers pass digests (contracts §4). Endpoints come from
the environment (``AWS_ENDPOINT_URL``); the client is passed in or built lazily.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ClientError

from flowlink.audit import merkle
from flowlink.audit.chain import (
    GENESIS_HASH,
    build_event,
    chain_hash,
    event_text,
    is_hash,
    utc_now_iso,
    validate_org_id,
)
from flowlink.audit.errors import AuditWriteError
from flowlink.settings import Settings, get_settings

logger = logging.getLogger(__name__)

HEAD_SEQ = 0
# A witness snapshot is published every this many events (issue 5, item 3).
WITNESS_INTERVAL = 1000
# The head hint is advanced by every append whose seq is a multiple of this.
HEAD_HINT_STRIDE = 32
# How many seqs one read asks for when walking from a known event to the newest one.
TIP_BATCH = 32
MAX_APPEND_ATTEMPTS = 1000
BACKOFF_BASE_SECONDS = 0.004
BACKOFF_CAP_SECONDS = 2.0
QUERY_PAGE_SIZE = 1000
_RETRYABLE = frozenset(
    {"ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded", "InternalServerError"}
)


@dataclass(frozen=True)
class Head:
    """The head item of one org's chain (``size`` 0 and the genesis hash when empty)."""

    size: int
    chain_hash: str
    frontier: list[bytes]
    updated_at: str | None = None

    @property
    def merkle_root(self) -> bytes:
        return merkle.frontier_root(self.frontier)


def join_hashes(hashes: list[bytes]) -> str:
    return "".join(h.hex() for h in hashes)


def split_hashes(text: str | None) -> list[bytes]:
    if not text:
        return []
    if len(text) % 64:
        raise ValueError("hash list length is not a multiple of 64 hex digits")
    return [bytes.fromhex(text[i : i + 64]) for i in range(0, len(text), 64)]


def index_fields(kind: str, fields: Mapping[str, Any], actor: Mapping[str, Any] | None) -> dict[str, str]:
    """The filterable copies of an event's agent, key and decision (strings only)."""
    actor = actor or {}
    verdict = fields.get("verdict") or fields.get("gateway_verdict") or {}
    candidates = {
        "agent": fields.get("agent") or fields.get("relay_id") or fields.get("agent_name") or actor.get("relay_id"),
        "key_id": actor.get("key_id") or fields.get("key_id"),
        "decision": fields.get("decision") or (verdict.get("decision") if isinstance(verdict, Mapping) else None),
    }
    return {name: value for name, value in candidates.items() if isinstance(value, str) and value}


def item_to_record(item: Mapping[str, Any]) -> dict[str, Any]:
    """A low-level DynamoDB item of an event as a plain dict (values as stored)."""
    record: dict[str, Any] = {}
    for name, typed in item.items():
        (dtype, value), = typed.items()
        if dtype == "N":
            record[name] = int(value) if value.lstrip("-").isdigit() else value
        elif dtype == "S":
            record[name] = value
        elif dtype == "L":
            record[name] = [next(iter(v.values())) for v in value]
        else:
            record[name] = value
    return record


def make_item(
    org_id: str,
    head: Head,
    kind: str,
    fields: Mapping[str, Any],
    actor: Mapping[str, Any] | None,
    ts: str,
    indexes: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[bytes]]:
    """The DynamoDB item of the event that follows ``head``: (item, event, new frontier). Pure."""
    seq = head.size + 1
    event = build_event(org_id, seq, ts, kind, fields, actor)
    text = event_text(event)
    body = text.encode("utf-8")
    digest = chain_hash(head.chain_hash, body)
    frontier, levels = merkle.frontier_append(head.frontier, head.size, merkle.leaf_hash(body))
    item = {
        "org_id": {"S": org_id},
        "seq": {"N": str(seq)},
        "event": {"S": text},
        "prev_hash": {"S": head.chain_hash},
        "chain_hash": {"S": digest},
        "mt": {"S": join_hashes(levels)},
        "frontier": {"S": join_hashes(frontier)},
        "kind": {"S": kind},
        "ts": {"S": ts},
    }
    for name, value in (indexes if indexes is not None else index_fields(kind, fields, actor)).items():
        item[name] = {"S": value}
    return item, event, frontier


def head_after(item: Mapping[str, Any]) -> Head:
    """The head right after the event ``item`` (as built by ``make_item``)."""
    return Head(int(item["seq"]["N"]), item["chain_hash"]["S"], split_hashes(item["frontier"]["S"]), item["ts"]["S"])


class AuditStore:
    """Appends to and reads from the audit table of one stack."""

    def __init__(
        self,
        *,
        client: Any = None,
        settings: Settings | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], str] = utc_now_iso,
        on_append: Callable[[dict[str, Any], AuditStore], None] | None = None,
    ):
        self._settings = settings
        self._client = client
        self._client_lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._on_append = on_append
        self._backoff = BACKOFF_BASE_SECONDS
        self._latency = 0.0
        self._last_head: dict[str, Head] = {}
        self._org_locks: dict[str, threading.Lock] = {}
        self._org_locks_guard = threading.Lock()

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = get_settings()
        return self._settings

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = boto3.client("dynamodb", region_name=self.settings.region)
        return self._client

    @property
    def table(self) -> str:
        return self.settings.table("audit")

    # --- head -------------------------------------------------------------------------

    def read_head(self, org_id: str) -> Head:
        """The org's head hint, read strongly consistent; may lag the newest event by a little."""
        validate_org_id(org_id)
        response = self.client.get_item(
            TableName=self.table,
            Key={"org_id": {"S": org_id}, "seq": {"N": str(HEAD_SEQ)}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        if not item:
            return Head(0, GENESIS_HASH, [])
        return self._head_from(org_id, int(item["head_seq"]["N"]), item, "head_hash")

    def latest_head(self, org_id: str) -> Head:
        """The head including events written after the hint (walks forward until a seq is absent)."""
        return self._walk_to_tip(org_id, self.read_head(org_id))

    def _walk_to_tip(self, org_id: str, head: Head, *, must_exist: int | None = None) -> Head:
        """The newest event at or after ``head``: reads the following seqs ``TIP_BATCH`` at a time.

        Stops at the first absent seq, like a single reader following ``seq+1`` would (a
        record deleted in the middle is verification's business, not the writer's). With
        ``must_exist``, that seq must be among the events found: an append that lost the
        race for it reads the winner, and a winner that vanished means tampering.
        """
        while True:
            seqs = list(range(head.size + 1, head.size + 1 + TIP_BATCH))
            found = self.get_items(org_id, seqs)
            for seq in seqs:
                item = found.get(seq)
                if item is None:
                    break
                head = self._head_from(org_id, seq, item, "chain_hash")
            if must_exist is not None and head.size < must_exist:
                raise AuditWriteError(
                    f"audit record {must_exist} of org {org_id} vanished during an append; refusing to continue"
                )
            if head.size < seqs[-1]:
                return head
            # A whole batch was there: this writer is far behind; the hint may be closer.
            hint = self.read_head(org_id)
            if hint.size > head.size:
                head = hint

    def _get_event(self, org_id: str, seq: int) -> dict[str, Any] | None:
        response = self.client.get_item(
            TableName=self.table,
            Key={"org_id": {"S": org_id}, "seq": {"N": str(seq)}},
            ConsistentRead=True,
        )
        return response.get("Item")

    @staticmethod
    def _head_from(org_id: str, size: int, item: Mapping[str, Any], hash_attribute: str) -> Head:
        try:
            frontier = split_hashes(item.get("frontier", {}).get("S", ""))
            digest = item[hash_attribute]["S"]
        except (KeyError, ValueError) as exc:
            raise AuditWriteError(f"audit record {size} of org {org_id} is malformed; refusing to extend it") from exc
        if not is_hash(digest) or len(frontier) != size.bit_count():
            raise AuditWriteError(f"audit record {size} of org {org_id} is inconsistent; refusing to extend it")
        return Head(size, digest, frontier, item.get("updated_at", item.get("ts", {})).get("S"))

    # --- append -----------------------------------------------------------------------

    def _org_lock(self, org_id: str) -> threading.Lock:
        with self._org_locks_guard:
            lock = self._org_locks.get(org_id)
            if lock is None:
                lock = self._org_locks[org_id] = threading.Lock()
            return lock

    def append(
        self, org_id: str, kind: str, fields: Mapping[str, Any], *, actor: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Append one event; returns the stored record. See ``flowlink.audit.append_event``."""
        # Validate once before touching the table, so bad input never costs a write.
        event_text(build_event(org_id, 1, self._clock(), kind, fields, actor))
        indexes = index_fields(kind, fields, actor)
        # Threads of one process take turns: racing each other would only cost failed puts
        # and backoff pauses. Other processes are still kept apart by the conditional put.
        with self._org_lock(org_id):
            record = self._append_locked(org_id, kind, fields, actor, indexes)
        # Outside the lock: a hook may take a while (witness publication) or append itself.
        if self._on_append is not None:
            try:
                self._on_append(record, self)
            except Exception:  # the event is committed; a failed side effect must not undo that
                logger.exception("audit post-append hook failed for org %s seq %s", org_id, record["seq"])
        return record

    def _append_locked(
        self,
        org_id: str,
        kind: str,
        fields: Mapping[str, Any],
        actor: Mapping[str, Any] | None,
        indexes: Mapping[str, str],
    ) -> dict[str, Any]:
        # A writer that appended before starts from its own last head (saves reads); a
        # stale one just loses the first put. A cold one starts from the newest event.
        head = self._last_head.get(org_id) or self.latest_head(org_id)
        for attempt in range(MAX_APPEND_ATTEMPTS):
            seq = head.size + 1
            ts = self._clock()
            item, event, frontier = make_item(org_id, head, kind, fields, actor, ts, indexes)
            digest = item["chain_hash"]["S"]
            started = time.monotonic()
            try:
                self.client.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(seq)")
            except ClientError as exc:
                self._observe_latency(time.monotonic() - started)
                code = exc.response.get("Error", {}).get("Code")
                if code != "ConditionalCheckFailedException" and code not in _RETRYABLE:
                    raise
                # Contention window shared by this store's appends (grows on loss, shrinks on
                # success): losers spread out instead of all racing for the next seq again.
                self._backoff = min(BACKOFF_CAP_SECONDS, max(self._backoff, self._backoff_floor()) * 2)
                self._sleep(random.uniform(0, self._backoff))
                if code == "ConditionalCheckFailedException":
                    # Another writer took this seq: step onto the newest event from there.
                    head = self._walk_to_tip(org_id, head, must_exist=seq)
                continue
            self._observe_latency(time.monotonic() - started)
            self._backoff = max(self._backoff_floor(), self._backoff / 2)
            if seq % HEAD_HINT_STRIDE == 0:
                self._advance_head(org_id, seq, digest, frontier, ts)
            self._last_head[org_id] = Head(seq, digest, frontier, ts)
            record = {
                "org_id": org_id,
                "seq": seq,
                "ts": ts,
                "kind": kind,
                "actor": event["actor"],
                "fields": event["fields"],
                "prev_hash": head.chain_hash,
                "chain_hash": digest,
            }
            return record
        raise AuditWriteError(f"audit append for org {org_id} lost {MAX_APPEND_ATTEMPTS} races in a row; retry later")

    def _observe_latency(self, seconds: float) -> None:
        self._latency = 0.8 * self._latency + 0.2 * seconds

    def _backoff_floor(self) -> float:
        # A loser should wait about as long as a few winners need to commit: scale the
        # smallest window with the observed write latency (ms on DynamoDB, more on emulators).
        return max(BACKOFF_BASE_SECONDS, 2 * self._latency)

    def _advance_head(self, org_id: str, seq: int, digest: str, frontier: list[bytes], ts: str) -> None:
        """Move the head hint to ``seq`` unless another writer already moved it further."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key={"org_id": {"S": org_id}, "seq": {"N": str(HEAD_SEQ)}},
                UpdateExpression="SET head_seq = :seq, head_hash = :hash, frontier = :frontier, updated_at = :ts",
                ConditionExpression="attribute_not_exists(head_seq) OR head_seq < :seq",
                ExpressionAttributeValues={
                    ":seq": {"N": str(seq)},
                    ":hash": {"S": digest},
                    ":frontier": {"S": join_hashes(frontier)},
                    ":ts": {"S": ts},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                # The event is committed; a stale hint only costs the next writer a read.
                logger.warning("could not advance audit head of org %s to %s: %s", org_id, seq, exc)

    # --- reads ------------------------------------------------------------------------

    def iter_items(
        self,
        org_id: str,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        consistent: bool = True,
        descending: bool = False,
        page_size: int = QUERY_PAGE_SIZE,
    ) -> Iterator[dict[str, Any]]:
        """Raw event items of an org with ``start_seq <= seq [<= end_seq]``, in seq order."""
        validate_org_id(org_id)
        # From the first event on the lower bound is 0, not 1: a record slipped in at a
        # fractional key such as 0.5 must be seen by verification (the head, 0, is skipped).
        lower = 0 if start_seq <= 1 else start_seq
        values: dict[str, Any] = {":org": {"S": org_id}, ":low": {"N": str(lower)}}
        if end_seq is None:
            condition = "org_id = :org AND seq >= :low"
        else:
            condition = "org_id = :org AND seq BETWEEN :low AND :high"
            values[":high"] = {"N": str(end_seq)}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ConsistentRead": consistent,
            "ScanIndexForward": not descending,
            "Limit": page_size,
        }
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                if item["seq"]["N"] != str(HEAD_SEQ):
                    yield item
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def get_items(self, org_id: str, seqs: list[int]) -> dict[int, dict[str, Any]]:
        """Event items by seq (BatchGetItem, strongly consistent); missing seqs are absent."""
        found: dict[int, dict[str, Any]] = {}
        pending = sorted(set(seqs))
        for offset in range(0, len(pending), 100):
            keys = [{"org_id": {"S": org_id}, "seq": {"N": str(s)}} for s in pending[offset : offset + 100]]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            for attempt in range(20):
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    found[int(item["seq"]["N"])] = item
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                self._sleep(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))
        return found
