"""Unit tests of the Merkle log and canonical JSON: agreement with a direct transcription of
RFC 6962 §2.1, proofs that verify and proofs that must not."""

from __future__ import annotations

import hashlib

import pytest
from flowlink.audit import merkle
from flowlink.audit.canonical import CanonicalizationError, canonical_json, format_number
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 6962 §2.1 defines it."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_root(leaves[:k]) + reference_root(leaves[k:])).digest()


def reference_path(m: int, leaves: list[bytes]) -> list[bytes]:
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return reference_path(m, leaves[:k]) + [reference_root(leaves[k:])]
    return reference_path(m - k, leaves[k:]) + [reference_root(leaves[:k])]


def reference_consistency(m: int, leaves: list[bytes], complete: bool = True) -> list[bytes]:
    n = len(leaves)
    if m == n:
        return [] if complete else [reference_root(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return reference_consistency(m, leaves[:k], complete) + [reference_root(leaves[k:])]
    return reference_consistency(m - k, leaves[k:], False) + [reference_root(leaves[:k])]


def leaves_of(count: int) -> list[bytes]:
    return [f"event-{i}".encode() for i in range(count)]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 31, 33, 100])
def test_merkle_roots_match_rfc6962(count):
    leaves = leaves_of(count)
    tree = merkle.MemoryTree.from_leaves(leaves)
    assert tree.root() == reference_root(leaves)
    assert merkle.root_of_leaves(leaves) == (reference_root(leaves), count)
    frontier: list[bytes] = []
    for size, leaf in enumerate(leaves):
        frontier, levels = merkle.frontier_append(frontier, size, merkle.leaf_hash(leaf))
        assert merkle.frontier_root(frontier) == reference_root(leaves[: size + 1])
        for level, digest in enumerate(levels):  # the perfect subtrees that end at this leaf
            assert digest == tree.perfect((level, (size + 1 - (1 << level)) >> level))


@given(st.integers(min_value=1, max_value=70), st.data())
@settings(max_examples=60, deadline=None)
def test_merkle_inclusion_proofs_match_rfc6962_and_verify(size, data):
    leaves = leaves_of(size)
    tree = merkle.MemoryTree.from_leaves(leaves)
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    proof = tree.inclusion_proof(index, size)
    assert proof == reference_path(index, leaves)
    root = reference_root(leaves)
    assert merkle.verify_inclusion(merkle.leaf_hash(leaves[index]), index, size, proof, root)
    other = (index + 1) % size
    if other != index:
        assert not merkle.verify_inclusion(merkle.leaf_hash(leaves[other]), index, size, proof, root)


@given(st.integers(min_value=1, max_value=70), st.data())
@settings(max_examples=60, deadline=None)
def test_merkle_consistency_proofs_match_rfc6962_and_verify(size, data):
    leaves = leaves_of(size)
    tree = merkle.MemoryTree.from_leaves(leaves)
    old = data.draw(st.integers(min_value=1, max_value=size))
    proof = tree.consistency_proof(old, size)
    assert proof == (reference_consistency(old, leaves) if old < size else [])
    old_root, new_root = reference_root(leaves[:old]), reference_root(leaves)
    assert merkle.verify_consistency(old, size, old_root, new_root, proof)
    if old < size:
        forged_old = reference_root([b"forged"] + leaves[1:old])
        assert not merkle.verify_consistency(old, size, forged_old, new_root, proof)


def test_merkle_rejects_impossible_ranges():
    tree = merkle.MemoryTree.from_leaves(leaves_of(5))
    with pytest.raises(merkle.MerkleError):
        tree.inclusion_proof(5, 5)
    with pytest.raises(merkle.MerkleError):
        merkle.consistency_ranges(6, 5)
    with pytest.raises(merkle.MerkleError):
        merkle.frontier_append([b"x" * 32], 3, b"y" * 32)  # size 3 needs two subtree hashes


def test_canonical_json_sorts_keys_and_writes_numbers_like_rfc8785():
    value = {"b": [1, 2.0, None, True], "a": "é\n\u0001", "\U0001F600": 1, "\uffff": 2, "n": 1e21, "m": 1e-7}
    assert canonical_json(value) == (
        '{"a":"é\\n\\u0001","b":[1,2,null,true],"m":1e-7,"n":1e+21,"\U0001F600":1,"\uffff":2}'.encode()
    )
    assert [format_number(x) for x in (0.1, -0.0, 123.456, 1e-6, 5e-324)] == ["0.1", "0", "123.456",
                                                                              "0.000001", "5e-324"]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), b"bytes", {1: "x"}, {"s": {1, 2}}, 2**60, "\ud800"])
def test_canonical_json_refuses_values_with_no_exact_form(bad):
    with pytest.raises(CanonicalizationError):
        canonical_json(bad)
