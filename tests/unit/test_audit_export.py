"""Unit tests of the audit export and the offline `flowlink audit verify` / `verify-proof`."""

from __future__ import annotations

import io
import json

import pytest
from flowlink import relay_protocol
from flowlink.audit import merkle
from flowlink.audit.chain import GENESIS_HASH
from flowlink.audit.export import cef_line, export_jsonl
from flowlink.audit.store import Head, head_after, make_item
from flowlink.audit.verify import AuditRecord
from flowlink.audit.witness import sign_checkpoint
from flowlink.cli import audit_cmd
from flowlink.settings import Settings

pytestmark = pytest.mark.unit

ORG = "org_export"


class FakeStore:
    """Just enough of AuditStore for export: settings, head and items, all in memory."""

    def __init__(self, count: int, key):
        self.settings = Settings(signing_key_pem=relay_protocol.private_key_to_pem(key))
        self.items = []
        head = Head(0, GENESIS_HASH, [])
        for n in range(count):
            item, _, _ = make_item(ORG, head, "exec.completed", {"n": n, "exit_code": 0, "relay_id": "rly_x",
                                                                  "stdout_sha256": "cd" * 32},
                                   {"key_id": "key_e"}, f"2026-11-25T09:00:00.{n:06d}Z")
            head = head_after(item)
            self.items.append(item)
        self.head = head

    def latest_head(self, org_id):
        return self.head

    def iter_items(self, org_id, end_seq=None, **_):
        return iter(self.items[:end_seq])


def main(argv: list[str]) -> int:
    """`flowlink audit …` through the subcommand's own parser (independent of SUBCOMMANDS)."""
    import argparse

    parser = argparse.ArgumentParser(prog="flowlink")
    audit_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def gateway_key():
    return relay_protocol.generate_signing_key()


@pytest.fixture
def exported(tmp_path, gateway_key):
    store = FakeStore(12, gateway_key)
    buffer = io.StringIO()
    assert export_jsonl(store, ORG, buffer) == 12
    path = tmp_path / "audit.jsonl"
    path.write_text(buffer.getvalue())
    public = tmp_path / "gateway.pub"
    public.write_text(relay_protocol.public_key_to_pem(gateway_key))
    return path, public


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_audit_verify_cli_accepts_an_untouched_export(exported, capsys):
    path, public = exported
    assert main(["audit", "verify", str(path), "--public-key", str(public)]) == 0
    assert "VERIFIED" in capsys.readouterr().out


def test_audit_verify_cli_names_a_modified_record(exported, capsys):
    path, public = exported
    lines = _lines(path)
    lines[5]["event"] = lines[5]["event"].replace('"exit_code":0', '"exit_code":1')
    _write(path, lines)
    assert main(["audit", "verify", str(path), "--public-key", str(public), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["integrity"]["broken_at"] == 5 and result["integrity"]["reason"].startswith("modified")


def test_audit_verify_cli_catches_a_truncated_export_through_the_checkpoint(exported, capsys):
    # The last record removed: the remaining chain is consistent, only the signed checkpoint can tell.
    path, public = exported
    lines = _lines(path)
    records = [line for line in lines if line["type"] == "record"][:11]
    kept = [lines[0]] + records + [line for line in lines if line["type"] == "checkpoint"]
    _write(path, kept)
    assert main(["audit", "verify", str(path), "--public-key", str(public)]) == 1
    assert "truncated" in capsys.readouterr().out


def test_audit_verify_cli_rejects_a_forged_checkpoint(exported, capsys):
    path, public = exported
    lines = _lines(path)
    other = relay_protocol.generate_signing_key()
    forged = sign_checkpoint(other, ORG, 12, bytes.fromhex(lines[-1]["root"]))
    lines[-1] = {**forged, "type": "checkpoint", "document_type": forged["type"]}
    _write(path, lines)
    assert main(["audit", "verify", str(path), "--public-key", str(public)]) == 4
    assert "signature" in capsys.readouterr().out


def test_audit_verify_cli_wrong_public_key_is_unanchored(exported, tmp_path):
    path, _ = exported
    other = tmp_path / "other.pub"
    other.write_text(relay_protocol.public_key_to_pem(relay_protocol.generate_signing_key()))
    assert main(["audit", "verify", str(path), "--public-key", str(other)]) == 4


def test_audit_verify_cli_malformed_file_and_missing_key(exported, tmp_path):
    path, public = exported
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    assert main(["audit", "verify", str(junk), "--public-key", str(public)]) == 3
    assert main(["audit", "verify", str(path), "--public-key", str(tmp_path / "missing.pem")]) == 2


def test_audit_verify_proof_cli_checks_against_the_signed_checkpoint(tmp_path, gateway_key, exported):
    _, public = exported
    store = FakeStore(9, gateway_key)
    events = [item["event"]["S"].encode() for item in store.items]
    tree = merkle.MemoryTree.from_leaves(events)
    proof = {"org_id": ORG, "seq": 4, "leaf_index": 3, "tree_size": 9, "event": events[3].decode(),
             "path": [h.hex() for h in tree.inclusion_proof(3)], "root": tree.root().hex(),
             "checkpoint": sign_checkpoint(gateway_key, ORG, 9, tree.root())}
    good = tmp_path / "proof.json"
    good.write_text(json.dumps(proof))
    assert main(["audit", "verify-proof", str(good), "--public-key", str(public)]) == 0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**proof, "event": events[4].decode()}))
    assert main(["audit", "verify-proof", str(bad), "--public-key", str(public)]) == 1


@pytest.mark.parametrize("wrong", ["export", "array", "not-json"])
def test_audit_verify_proof_cli_says_a_file_that_is_no_proof_document_is_not_one(exported, tmp_path, capsys, wrong):
    path, public = exported
    given = {
        "export": path,  # JSON lines: the walkthrough's "Extra data: line 2 column 1"
        "array": tmp_path / "array.json",
        "not-json": tmp_path / "junk.json",
    }[wrong]
    if wrong == "array":
        given.write_text("[1, 2]")
    elif wrong == "not-json":
        given.write_text("hello")
    assert main(["audit", "verify-proof", str(given), "--public-key", str(public)]) == 3
    err = capsys.readouterr().err
    assert f"{given} is not an inclusion proof: expected one JSON object" in err
    assert "GET /api/v1/audit/proof/N" in err and "Extra data" not in err


def test_audit_cef_line_escapes_and_carries_the_chain_hash(gateway_key):
    store = FakeStore(1, gateway_key)
    record = AuditRecord.from_item(store.items[0])
    line = cef_line(record)
    assert line.startswith("CEF:0|FlowLink|FlowLink Gateway|")
    assert f"cs2={record.chain_hash}" in line and "cn1=1" in line and "dhost=rly_x" in line
    assert line.count("\n") == 1
