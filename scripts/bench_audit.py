"""`make bench` section "audit": append throughput, full verification, Merkle proofs at scale.

Figures (printed, never asserted):
1. append throughput with 16 concurrent writers (each its own boto3 client, as separate
   Lambdas) against an in-process moto server that applies one request at a time, as
   DynamoDB applies each conditional write atomically; the chain is then checked for forks;
2. full verification of 100,000 events in memory, and verification including the DynamoDB
   read for as many events as the emulator can take in reasonable time (10,000; 2,000 quick);
3. inclusion-proof size and time at 1,000,000 leaves (in memory), and how many stored
   hashes the DynamoDB-backed proof reads at that size.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import boto3
from flowlink.audit import merkle
from flowlink.audit.chain import GENESIS_HASH
from flowlink.audit.store import AuditStore, Head, head_after, make_item
from flowlink.audit.verify import AuditRecord, verify_records
from flowlink.settings import Settings

REGION = "us-east-1"


def _start_moto() -> tuple[Any, str]:
    from flowlink.local.serialized import serialized_moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = serialized_moto_server("127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def _client(endpoint: str):
    return boto3.client("dynamodb", region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="bench", aws_secret_access_key="bench")


def _create_table(endpoint: str, settings: Settings) -> None:
    _client(endpoint).create_table(
        TableName=settings.table("audit"),
        KeySchema=[{"AttributeName": "org_id", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "org_id", "AttributeType": "S"},
                              {"AttributeName": "seq", "AttributeType": "N"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _records(count: int) -> list[dict]:
    head = Head(0, GENESIS_HASH, [])
    items = []
    for n in range(count):
        item, _, _ = make_item("org_bench", head, "exec.completed",
                               {"n": n, "exit_code": 0, "relay_id": "rly_bench", "stdout_sha256": "ab" * 32},
                               {"key_id": "key_bench"}, "2026-11-25T09:00:00.000000Z")
        head = head_after(item)
        items.append(item)
    return items


def bench_append(endpoint: str, writers: int, per_writer: int) -> None:
    settings = Settings(table_prefix="bench-append", region=REGION)
    _create_table(endpoint, settings)
    calls: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def count_call(model, **_):
        with lock:
            calls[model.name] = calls.get(model.name, 0) + 1

    def write(writer: int) -> None:
        client = _client(endpoint)
        client.meta.events.register("before-call", count_call)
        store = AuditStore(client=client, settings=settings)
        try:
            for n in range(per_writer):
                store.append("org_bench", "exec.requested", {"writer": writer, "n": n})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = writers * per_writer
    reader = AuditStore(client=_client(endpoint), settings=settings)
    report = verify_records((AuditRecord.from_item(i) for i in reader.iter_items("org_bench")), org_id="org_bench")
    print(f"append: {writers} writers x {per_writer} events = {total} in {elapsed:.1f}s -> "
          f"{total / elapsed:.0f} events/s; {calls.get('PutItem', 0) / total:.2f} conditional puts and "
          f"{sum(calls.values()) / total:.2f} requests per event; "
          f"chain {'intact' if report.intact else 'BROKEN: ' + str(report.reason)}, length {report.length}, "
          f"forks 0 by construction (unique seq keys){'; errors: ' + repr(errors[:2]) if errors else ''}")


def bench_verify_memory(count: int) -> None:
    started = time.perf_counter()
    items = _records(count)
    built = time.perf_counter() - started
    records = [AuditRecord.from_item(item) for item in items]
    started = time.perf_counter()
    report = verify_records(records, org_id="org_bench")
    elapsed = time.perf_counter() - started
    print(f"verify (in memory): {count} events in {elapsed:.2f}s ({count / elapsed:.0f} events/s), "
          f"intact={report.intact}; building them took {built:.1f}s")


def bench_verify_dynamodb(endpoint: str, count: int) -> None:
    settings = Settings(table_prefix="bench-verify", region=REGION)
    _create_table(endpoint, settings)
    client = _client(endpoint)
    items = _records(count)
    started = time.perf_counter()
    for offset in range(0, count, 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[offset : offset + 25]]
        pending = {settings.table("audit"): batch}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    loaded = time.perf_counter() - started
    store = AuditStore(client=client, settings=settings)
    started = time.perf_counter()
    report = verify_records((AuditRecord.from_item(i) for i in store.iter_items("org_bench")), org_id="org_bench")
    elapsed = time.perf_counter() - started
    print(f"verify (DynamoDB read + verify): {count} events in {elapsed:.2f}s ({count / elapsed:.0f} events/s), "
          f"intact={report.intact}; loading them into moto took {loaded:.1f}s")


def bench_proofs(leaves: int) -> None:
    started = time.perf_counter()
    tree = merkle.MemoryTree(b"".join(merkle.leaf_hash(n.to_bytes(8, "big")) for n in range(leaves)))
    built = time.perf_counter() - started
    root = tree.root()
    index = leaves // 3
    started = time.perf_counter()
    repetitions = 200
    for _ in range(repetitions):
        proof = tree.inclusion_proof(index)
    per_proof = (time.perf_counter() - started) / repetitions
    started = time.perf_counter()
    ok = merkle.verify_inclusion(merkle.leaf_hash(index.to_bytes(8, "big")), index, leaves, proof, root)
    verified = time.perf_counter() - started
    consistency = tree.consistency_proof(leaves // 2)
    stored_reads = len(merkle.nodes_for(merkle.inclusion_ranges(index, leaves))) + 1
    print(f"merkle: {leaves} leaves built in {built:.1f}s ({len(tree.levels)} levels, "
          f"{sum(len(level) for level in tree.levels) / 1e6:.0f} MB); inclusion proof: {len(proof)} hashes "
          f"({len(proof) * 32} bytes), {per_proof * 1e6:.0f} us to build, {verified * 1e6:.0f} us to verify "
          f"(ok={ok}); consistency proof {leaves // 2}->{leaves}: {len(consistency)} hashes; "
          f"the DynamoDB-backed proof reads {stored_reads} stored hashes ({-(-stored_reads // 100)} BatchGetItem)")


def run(args) -> None:
    quick = bool(getattr(args, "quick", False))
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server, endpoint = _start_moto()
    try:
        bench_append(endpoint, 16, 15 if quick else 60)
        bench_verify_memory(20_000 if quick else 100_000)
        bench_verify_dynamodb(endpoint, 2_000 if quick else 10_000)
    finally:
        server.shutdown()
    bench_proofs(100_000 if quick else 1_000_000)
