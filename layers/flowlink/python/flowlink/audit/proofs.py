"""Merkle inclusion and consistency proofs served from the audit table.

Proof nodes are folded from the perfect-subtree hashes stored with each event (``mt``), so
a proof reads O(log² n) stored hashes at worst (BatchGetItem, 100 a call) and never the
whole log. The result carries the root it proves against; clients check that root against
a signed checkpoint (from the witness bucket, an export, or ``checkpoint`` below).
"""

from __future__ import annotations

from typing import Any

from flowlink.audit import merkle
from flowlink.audit.errors import AuditMisconfigured, AuditQueryError, ProofError
from flowlink.audit.store import AuditStore, Head, split_hashes
from flowlink.audit.witness import sign_checkpoint, signing_key


def _nodes(store: AuditStore, org_id: str, needed: set[merkle.PerfectNode]) -> dict[merkle.PerfectNode, bytes]:
    """Stored hashes of perfect subtrees: node (level, index) lives on event (index+1)·2**level."""
    by_seq = {((index + 1) << level): (level, index) for level, index in needed}
    items = store.get_items(org_id, list(by_seq))
    found: dict[merkle.PerfectNode, bytes] = {}
    for level, index in needed:
        seq = (index + 1) << level
        item = items.get(seq)
        try:
            levels = split_hashes(item["mt"]["S"]) if item else []
        except (KeyError, ValueError):
            levels = []
        if len(levels) <= level:
            raise ProofError(f"stored Merkle data of record {seq} is missing or damaged; run an integrity check")
        found[(level, index)] = levels[level]
    return found


def _sized_head(
    store: AuditStore, org_id: str, tree_size: int | None, parameter: str = "tree_size"
) -> tuple[Head, int]:
    """The head and the tree size asked for; ``parameter`` is the query parameter that carried it."""
    head = store.latest_head(org_id)
    size = head.size if tree_size is None else tree_size
    if not 0 <= size <= head.size:
        raise AuditQueryError(f"{parameter} must be between 0 and the log size {head.size}, not {size}")
    return head, size


def _root(store: AuditStore, org_id: str, head: Head, size: int, nodes: dict) -> bytes:
    if size == head.size:
        return head.merkle_root
    return merkle.EMPTY_ROOT if size == 0 else merkle.range_hash(0, size, nodes.__getitem__)


def _checkpoint(store: AuditStore, org_id: str, size: int, root: bytes) -> dict[str, Any] | None:
    try:
        key = signing_key(store.settings)
    except AuditMisconfigured:
        return None
    return sign_checkpoint(key, org_id, size, root)


def inclusion_proof(store: AuditStore, org_id: str, seq: int, tree_size: int | None = None) -> dict[str, Any]:
    """Proof that event ``seq`` is leaf ``seq-1`` of the tree of ``tree_size`` (default: all)."""
    head, size = _sized_head(store, org_id, tree_size)
    if not 1 <= seq <= size:
        raise AuditQueryError(f"seq must be between 1 and the tree size {size}, not {seq}")
    ranges = merkle.inclusion_ranges(seq - 1, size)
    needed = merkle.nodes_for(ranges) | {(0, seq - 1)}
    if size != head.size:
        needed |= set(merkle.decompose(0, size))
    nodes = _nodes(store, org_id, needed)
    path = merkle.hashes_for(ranges, nodes)
    root = _root(store, org_id, head, size, nodes)
    leaf = store.get_items(org_id, [seq]).get(seq)
    event = leaf["event"]["S"] if leaf else None
    if event is None or merkle.leaf_hash(event.encode()) != nodes[(0, seq - 1)]:
        raise ProofError(f"record {seq} does not match its stored leaf hash; run an integrity check")
    return {
        "org_id": org_id,
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": size,
        "event": event,
        "leaf_hash": nodes[(0, seq - 1)].hex(),
        "path": [node.hex() for node in path],
        "root": root.hex(),
        "checkpoint": _checkpoint(store, org_id, size, root),
    }


def consistency_proof(store: AuditStore, org_id: str, first: int, second: int | None = None) -> dict[str, Any]:
    """Proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
    head, size = _sized_head(store, org_id, second, "'to'")
    if not 0 <= first <= size:
        bound = f"the log size {size}" if second is None else f"'to' ({size})"
        raise AuditQueryError(f"'from' must be between 0 and {bound}, not {first}")
    ranges = merkle.consistency_ranges(first, size)
    needed = merkle.nodes_for(ranges) | set(merkle.decompose(0, first))
    if size != head.size:
        needed |= set(merkle.decompose(0, size))
    nodes = _nodes(store, org_id, needed)
    first_root = merkle.EMPTY_ROOT if first == 0 else merkle.range_hash(0, first, nodes.__getitem__)
    second_root = _root(store, org_id, head, size, nodes)
    return {
        "org_id": org_id,
        "from": first,
        "to": size,
        "from_root": first_root.hex(),
        "to_root": second_root.hex(),
        "proof": [node.hex() for node in merkle.hashes_for(ranges, nodes)],
        "from_checkpoint": _checkpoint(store, org_id, first, first_root),
        "to_checkpoint": _checkpoint(store, org_id, size, second_root),
    }


def current_checkpoint(store: AuditStore, org_id: str) -> dict[str, Any]:
    """A checkpoint of the current head, signed now (AuditMisconfigured without a signing key)."""
    head = store.latest_head(org_id)
    return sign_checkpoint(signing_key(store.settings), org_id, head.size, head.merkle_root)
