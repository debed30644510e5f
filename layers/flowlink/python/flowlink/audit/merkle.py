"""RFC 6962 / RFC 9162 Merkle tree arithmetic over the audit log: hashes, proofs, checks.

Leaves are the canonical bytes of audit events (leaf index = ``seq - 1``):
``leaf_hash = SHA-256(0x00 ‖ leaf)``, ``node_hash = SHA-256(0x01 ‖ left ‖ right)``, the
root of the empty tree is ``SHA-256("")``. Pure code, no I/O.

Why "perfect subtrees": every node an RFC 6962 proof needs is either a perfect, aligned
subtree (2**level leaves starting at ``index * 2**level``) or the fold of a few of them.
The log stores, with each leaf, the hashes of the perfect subtrees that *end* at that leaf
(on average two per leaf), and the head keeps the compact range (one hash per set bit of
the tree size). So appends are O(log n), proofs read O(log² n) stored hashes at worst, and
no operation needs the whole tree in memory. ``MemoryTree`` holds all levels in flat
byte arrays (32 bytes a node) for offline verification and the benchmarks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index): the perfect subtree of 2**level leaves starting at leaf index * 2**level.
PerfectNode = tuple[int, int]
PerfectLookup = Callable[[PerfectNode], bytes]


class MerkleError(ValueError):
    """An impossible tree size, leaf index or proof range."""


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2): RFC 6962's split point k."""
    return 1 << ((n - 1).bit_length() - 1)


# --- the compact range kept in the log head -------------------------------------------


def frontier_append(frontier: Sequence[bytes], size: int, new_leaf_hash: bytes) -> tuple[list[bytes], list[bytes]]:
    """Add one leaf to a tree of ``size`` leaves described by its compact range ``frontier``.

    Returns ``(new_frontier, levels)``: ``levels[k]`` is the hash of the perfect subtree of
    2**k leaves that ends at the new leaf (``levels[0]`` is the leaf hash itself).
    """
    if len(frontier) != size.bit_count():
        raise MerkleError(f"compact range of {len(frontier)} hashes cannot describe a tree of {size} leaves")
    new_frontier = list(frontier)
    current = new_leaf_hash
    levels = [current]
    remaining = size
    while remaining & 1:
        current = node_hash(new_frontier.pop(), current)
        levels.append(current)
        remaining >>= 1
    new_frontier.append(current)
    return new_frontier, levels


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """Root of the tree whose compact range (largest subtree first) is ``frontier``."""
    if not frontier:
        return EMPTY_ROOT
    root = frontier[-1]
    for left in reversed(frontier[:-1]):
        root = node_hash(left, root)
    return root


def root_of_leaves(leaves: Iterable[bytes]) -> tuple[bytes, int]:
    """Root and size of the tree over ``leaves`` (raw leaf bytes), in O(log n) memory."""
    frontier: list[bytes] = []
    size = 0
    for leaf in leaves:
        frontier, _ = frontier_append(frontier, size, leaf_hash(leaf))
        size += 1
    return frontier_root(frontier), size


# --- proof planning: which subtree hashes a proof consists of --------------------------


def decompose(start: int, end: int) -> list[PerfectNode]:
    """The perfect aligned subtrees that tile leaves [start, end), largest first."""
    nodes: list[PerfectNode] = []
    position = start
    while position < end:
        level = 0
        while position % (1 << (level + 1)) == 0 and position + (1 << (level + 1)) <= end:
            level += 1
        nodes.append((level, position >> level))
        position += 1 << level
    return nodes


def range_hash(start: int, end: int, lookup: PerfectLookup) -> bytes:
    """MTH(D[start:end]) for a range that occurs in an RFC 6962 tree, from perfect subtrees."""
    return frontier_root([lookup(node) for node in decompose(start, end)])


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PATH(index, D[0:size]) (RFC 6962 §2.1.1), leaf first."""
    if not 0 <= index < size:
        raise MerkleError(f"leaf index {index} is outside a tree of {size} leaves")
    ranges: list[tuple[int, int]] = []
    low, high = 0, size
    while high - low > 1:
        split = low + _largest_power_of_two_below(high - low)
        if index < split:
            ranges.append((split, high))
            high = split
        else:
            ranges.append((low, split))
            low = split
    ranges.reverse()
    return ranges


def consistency_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form PROOF(old_size, D[0:new_size]) (RFC 6962 §2.1.2)."""
    if not 0 <= old_size <= new_size:
        raise MerkleError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    ranges: list[tuple[int, int]] = []
    low, high, m, whole = 0, new_size, old_size, True
    while True:
        if m == high - low:
            if not whole:
                ranges.append((low, high))
            break
        k = _largest_power_of_two_below(high - low)
        if m <= k:
            ranges.append((low + k, high))
            high = low + k
        else:
            ranges.append((low, low + k))
            low, m, whole = low + k, m - k, False
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[tuple[int, int]]) -> set[PerfectNode]:
    needed: set[PerfectNode] = set()
    for start, end in ranges:
        needed.update(decompose(start, end))
    return needed


def hashes_for(ranges: Sequence[tuple[int, int]], nodes: Mapping[PerfectNode, bytes]) -> list[bytes]:
    return [range_hash(start, end, nodes.__getitem__) for start, end in ranges]


# --- proof verification (RFC 9162 §2.1.3.2 and §2.1.4.2) -------------------------------


def verify_inclusion(leaf_digest: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """True when ``path`` proves the leaf with hash ``leaf_digest`` at ``index`` is in ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, result = index, size - 1, leaf_digest
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """True when ``proof`` shows the tree ``old_root`` (old_size) is a prefix of ``new_root``."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if old_size == 0:
        return not proof and old_root == EMPTY_ROOT
    if not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # an exact power of two: the old root is a node itself
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = path[0]
    for node in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first = node_hash(node, first)
            second = node_hash(node, second)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            second = node_hash(second, node)
        fn >>= 1
        sn >>= 1
    return sn == 0 and first == old_root and second == new_root


# --- an in-memory tree ------------------------------------------------------------------


class MemoryTree:
    """All levels of a tree in flat byte arrays: 64 bytes a leaf in total, O(n) build time."""

    def __init__(self, leaf_hashes: bytes | bytearray):
        if len(leaf_hashes) % HASH_SIZE:
            raise MerkleError("leaf hash array is not a multiple of 32 bytes")
        self.levels: list[bytes] = [bytes(leaf_hashes)]
        level = self.levels[0]
        while len(level) >= 2 * HASH_SIZE:
            pairs = len(level) // (2 * HASH_SIZE)
            joined = bytearray()
            for pair in range(pairs):
                offset = pair * 2 * HASH_SIZE
                joined += hashlib.sha256(b"\x01" + level[offset : offset + 2 * HASH_SIZE]).digest()
            level = bytes(joined)
            self.levels.append(level)

    @classmethod
    def from_leaves(cls, leaves: Iterable[bytes]) -> MemoryTree:
        return cls(b"".join(leaf_hash(leaf) for leaf in leaves))

    @property
    def size(self) -> int:
        return len(self.levels[0]) // HASH_SIZE

    def perfect(self, node: PerfectNode) -> bytes:
        level, index = node
        if level >= len(self.levels) or (index + 1) * HASH_SIZE > len(self.levels[level]):
            raise MerkleError(f"no perfect subtree at level {level}, index {index}")
        return self.levels[level][index * HASH_SIZE : (index + 1) * HASH_SIZE]

    def root(self, size: int | None = None) -> bytes:
        size = self.size if size is None else size
        if not 0 <= size <= self.size:
            raise MerkleError(f"tree has {self.size} leaves, not {size}")
        return EMPTY_ROOT if size == 0 else range_hash(0, size, self.perfect)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        size = self.size if size is None else size
        if size > self.size:
            raise MerkleError(f"tree has {self.size} leaves, not {size}")
        return [range_hash(a, b, self.perfect) for a, b in inclusion_ranges(index, size)]

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        new_size = self.size if new_size is None else new_size
        if new_size > self.size:
            raise MerkleError(f"tree has {self.size} leaves, not {new_size}")
        return [range_hash(a, b, self.perfect) for a, b in consistency_ranges(old_size, new_size)]
