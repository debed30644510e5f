"""Unit tests of chain verification: every kind of tampering names the first bad record."""

from __future__ import annotations

import dataclasses
import json

import pytest
from flowlink.audit.chain import GENESIS_HASH, chain_hash
from flowlink.audit.store import Head, head_after, make_item
from flowlink.audit.verify import Anchor, AuditRecord, verify_records

pytestmark = pytest.mark.unit

ORG = "org_test"


def build_chain(count: int, org: str = ORG) -> list[AuditRecord]:
    head = Head(0, GENESIS_HASH, [])
    records = []
    for number in range(count):
        item, _, _ = make_item(
            org, head, "exec.requested", {"n": number, "relay_id": "rly_1", "decision": "auto"},
            {"key_id": "key_1"}, f"2026-11-25T09:00:{number % 60:02d}.000000Z",
        )
        head = head_after(item)
        records.append(AuditRecord.from_item(item))
    return records


def rehash(record: AuditRecord, prev_hash: str, **event_changes) -> AuditRecord:
    """What an attacker with table access can do: rewrite content and recompute its hash."""
    event = json.loads(record.event)
    event.update(event_changes)
    text = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return dataclasses.replace(record, event=text, prev_hash=prev_hash, chain_hash=chain_hash(prev_hash, text.encode()),
                               indexes={}, mt="", frontier="")


def verify(records, **kwargs):
    return verify_records(records, org_id=ORG, **kwargs)


def test_verify_empty_log_is_intact_with_length_zero():
    report = verify([])
    assert (report.intact, report.length, report.broken_at, report.head_hash) == (True, 0, None, GENESIS_HASH)


def test_verify_untouched_chain_is_intact():
    records = build_chain(20)
    report = verify(records, head_size=20)
    assert report.intact and report.length == 20 and report.head_hash == records[-1].chain_hash


def test_verify_modified_event_names_that_record():
    records = build_chain(10)
    records[4] = dataclasses.replace(records[4], event=records[4].event.replace('"n":4', '"n":44'))
    report = verify(records)
    assert not report.intact and report.broken_at == 5 and report.reason.startswith("modified")


def test_verify_modified_filter_copy_is_reported():
    records = build_chain(5)
    records[2] = dataclasses.replace(records[2], indexes={**records[2].indexes, "decision": "deny"})
    report = verify(records)
    assert report.broken_at == 3 and "'decision'" in report.reason


def test_verify_rewritten_record_with_recomputed_hash_is_named():
    records = build_chain(6)
    records[2] = rehash(records[2], records[1].chain_hash, kind="exec.completed")
    report = verify(records, check_merkle_storage=False)
    assert report.broken_at == 3 and report.reason.startswith("modified") and "rewritten" in report.reason


def test_verify_deleted_middle_record_is_a_gap():
    records = build_chain(8)
    del records[3]
    report = verify(records)
    assert report.broken_at == 4 and report.reason.startswith("deleted") and report.length == 7


def test_verify_deleted_record_with_renumbering_is_deleted():
    records = build_chain(8)
    del records[3]
    for position in range(3, len(records)):
        records[position] = dataclasses.replace(records[position], seq=position + 1)
    report = verify(records)
    assert report.broken_at == 4 and report.reason.startswith("deleted")


def test_verify_inserted_fractional_key_is_inserted():
    records = build_chain(6)
    from decimal import Decimal

    records.insert(3, dataclasses.replace(records[2], seq=Decimal("3.5")))
    report = verify(records)
    assert report.reason.startswith("inserted") and report.broken_at == 3.5


def test_verify_inserted_record_with_shift_names_the_inserted_one():
    records = build_chain(6)
    forged = rehash(records[2], records[1].chain_hash, fields={"n": 999})  # seq 3, valid hash, links to 2
    shifted = [dataclasses.replace(r, seq=r.seq + 1) for r in records[2:]]
    tampered = records[:2] + [forged] + shifted
    report = verify(tampered, check_merkle_storage=False)
    assert report.broken_at == 3 and report.reason.startswith("inserted")


def test_verify_reordered_records_are_reordered():
    records = build_chain(8)
    records[3], records[4] = (dataclasses.replace(records[4], seq=4), dataclasses.replace(records[3], seq=5))
    report = verify(records)
    assert report.broken_at == 4 and report.reason.startswith("reordered")


def test_verify_truncated_tail_is_caught_by_the_head():
    records = build_chain(10)
    report = verify(records[:7], head_size=10)
    assert not report.intact and report.broken_at == 8 and report.reason.startswith("truncated")


def test_verify_truncated_tail_is_caught_by_a_witness_even_without_head():
    records = build_chain(10)
    anchor = Anchor(10, "the witness of test", chain_hash=records[9].chain_hash)
    report = verify(records[:6], anchors=[anchor])
    assert report.broken_at == 7 and report.reason.startswith("truncated")


def test_verify_rewritten_tail_is_caught_by_a_witness():
    records = build_chain(6)
    # The attacker rewrites record 4 and recomputes every later hash: the chain is consistent.
    records[3] = rehash(records[3], records[2].chain_hash, fields={"n": 1234})
    for position in range(4, 6):
        records[position] = rehash(records[position], records[position - 1].chain_hash)
    assert verify(records, check_merkle_storage=False).intact
    anchor = Anchor(5, "the witness of test", chain_hash=build_chain(6)[4].chain_hash)
    report = verify(records, anchors=[anchor], check_merkle_storage=False)
    assert report.broken_at == 5 and report.reason.startswith("rewritten")


def test_verify_checkpoint_root_mismatch_is_rewritten():
    records = build_chain(4)
    report = verify(records, anchors=[Anchor(3, "the checkpoint of test", merkle_root="ab" * 32)])
    assert report.broken_at == 3 and report.reason.startswith("rewritten")


def test_verify_event_of_another_org_is_modified():
    records = build_chain(3, org="org_other")
    report = verify(records)
    assert report.broken_at == 1 and "another org" in report.reason
