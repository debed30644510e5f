"""Audit export (JSON lines with checkpoints, or CEF for SIEMs) and fully offline verification.

Export format (one JSON object per line, UTF-8):

1. ``{"type": "flowlink.audit.export", "v": 1, "org", "exported_at", "length", "public_key"}``
   (``public_key`` is informational; a verifier must use the key it obtained independently).
2. One ``{"type": "record", "seq", "event", "prev_hash", "chain_hash"}`` per event in seq
   order, where ``event`` is the exact canonical JSON text that was hashed.
3. ``{"type": "checkpoint", …}`` lines: every checkpoint published to the witness bucket and
   one signed at export time over the whole export (see ``flowlink.audit.witness``).
4. ``{"type": "witness", …}`` lines: the HMAC snapshots (checkable only with the HMAC key).

``verify_export`` needs nothing but the file and the Ed25519 public key: it recomputes every
chain hash, rebuilds the Merkle tree and checks each checkpoint's signature and root.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from flowlink import __version__, relay_protocol
from flowlink.audit.chain import utc_now_iso
from flowlink.audit.errors import AuditMisconfigured, CheckpointError, WitnessError
from flowlink.audit.store import AuditStore
from flowlink.audit.verify import Anchor, AuditRecord, IntegrityReport, verify_records
from flowlink.audit.witness import (
    WitnessStore,
    sign_checkpoint,
    signing_key,
    verify_checkpoint,
    verify_snapshot,
)

logger = logging.getLogger(__name__)

EXPORT_TYPE = "flowlink.audit.export"

# Exit codes of `flowlink audit verify` (docs/audit.md).
EXIT_VERIFIED = 0
EXIT_TAMPERED = 1
EXIT_USAGE = 2
EXIT_MALFORMED = 3
EXIT_UNANCHORED = 4


class ExportFormatError(ValueError):
    """The file is not a FlowLink audit export (names the line)."""


def export_jsonl(store: AuditStore, org_id: str, out: IO[str], *, witnesses: WitnessStore | None = None) -> int:
    """Write ``org_id``'s log as JSON lines with checkpoints; returns the number of records.

    Raises AuditMisconfigured when no signing key is configured (an export without a
    checkpoint could not be verified).
    """
    key = signing_key(store.settings)
    head = store.latest_head(org_id)
    out.write(_line({"type": EXPORT_TYPE, "v": 1, "org": org_id, "exported_at": utc_now_iso(),
                     "length": head.size, "public_key": relay_protocol.public_key_to_pem(key)}))
    count = 0
    for item in store.iter_items(org_id, end_seq=head.size):
        record = AuditRecord.from_item(item)
        out.write(_line({"type": "record", "seq": record.seq if isinstance(record.seq, int) else str(record.seq),
                         "event": record.event, "prev_hash": record.prev_hash, "chain_hash": record.chain_hash}))
        count += 1
    documents: list[tuple[str, Any]] = []
    if store.settings.witness_bucket:
        witnesses = witnesses or WitnessStore(store.settings)
        documents = witnesses.list_documents(f"checkpoint/{org_id}/") + witnesses.list_documents(f"witness/{org_id}/")
    for _, document in documents:
        if isinstance(document, dict) and document.get("type") in ("flowlink.audit.checkpoint", "flowlink.audit.witness"):
            kind = "checkpoint" if document["type"].endswith("checkpoint") else "witness"
            out.write(_line({**document, "type": kind, "document_type": document["type"]}))
    final = sign_checkpoint(key, org_id, head.size, head.merkle_root)
    out.write(_line({**final, "type": "checkpoint", "document_type": final["type"]}))
    return count


def _line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True) + "\n"


@dataclass
class ExportVerification:
    report: IntegrityReport
    org: str
    checkpoints_valid: int = 0
    checkpoints_rejected: list[str] = field(default_factory=list)
    witnesses_valid: int = 0
    witnesses_rejected: list[str] = field(default_factory=list)
    anchored_to: int = 0

    @property
    def exit_code(self) -> int:
        if not self.report.intact:
            return EXIT_TAMPERED
        if self.checkpoints_rejected or self.witnesses_rejected or self.anchored_to != self.report.length:
            return EXIT_UNANCHORED
        return EXIT_VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.exit_code == EXIT_VERIFIED,
            "exit_code": self.exit_code,
            "org": self.org,
            "integrity": self.report.to_dict(),
            "checkpoints_valid": self.checkpoints_valid,
            "checkpoints_rejected": self.checkpoints_rejected,
            "witnesses_valid": self.witnesses_valid,
            "witnesses_rejected": self.witnesses_rejected,
            "anchored_to": self.anchored_to,
        }


def _parse(lines: Iterable[str]) -> tuple[dict[str, Any], list[AuditRecord], list[dict], list[dict]]:
    header: dict[str, Any] | None = None
    records: list[AuditRecord] = []
    checkpoints: list[dict] = []
    snapshots: list[dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise ExportFormatError(f"line {number} is not JSON") from exc
        if not isinstance(value, dict):
            raise ExportFormatError(f"line {number} is not a JSON object")
        kind = value.get("type")
        if header is None:
            if kind != EXPORT_TYPE or value.get("v") != 1 or not isinstance(value.get("org"), str):
                raise ExportFormatError("line 1 is not a FlowLink audit export header")
            header = value
        elif kind == "record":
            try:
                seq = value["seq"]
                records.append(AuditRecord(seq=seq, event=str(value["event"]), prev_hash=str(value["prev_hash"]),
                                           chain_hash=str(value["chain_hash"])))
            except KeyError as exc:
                raise ExportFormatError(f"line {number}: record lacks {exc}") from exc
        elif kind in ("checkpoint", "witness"):
            document = {k: v for k, v in value.items() if k != "document_type"}
            document["type"] = value.get("document_type")
            (checkpoints if kind == "checkpoint" else snapshots).append(document)
        else:
            raise ExportFormatError(f"line {number} has unknown type {kind!r}")
    if header is None:
        raise ExportFormatError("the file is empty")
    return header, records, checkpoints, snapshots


def verify_export(
    lines: Iterable[str], public_key: Ed25519PublicKey, *, hmac_key: bytes | None = None
) -> ExportVerification:
    """Verify an export offline. Raises ExportFormatError for a file that is not an export."""
    header, records, checkpoint_docs, snapshot_docs = _parse(lines)
    org = header["org"]
    anchors: list[Anchor] = []
    result_rejected: list[str] = []
    valid = 0
    anchored = 0
    for document in checkpoint_docs:
        try:
            checkpoint = verify_checkpoint(public_key, document, org_id=org)
        except CheckpointError as exc:
            result_rejected.append(f"checkpoint of tree_size {document.get('tree_size')}: {exc.detail}")
            continue
        valid += 1
        anchored = max(anchored, checkpoint["tree_size"])
        anchors.append(Anchor(checkpoint["tree_size"], f"the checkpoint of {checkpoint['time']}",
                              merkle_root=checkpoint["root"]))
    witnesses_valid = 0
    witnesses_rejected: list[str] = []
    if hmac_key is not None:
        for document in snapshot_docs:
            try:
                snapshot = verify_snapshot(hmac_key, document, org_id=org)
            except WitnessError as exc:
                witnesses_rejected.append(f"witness of seq {document.get('seq')}: {exc.detail}")
                continue
            witnesses_valid += 1
            anchors.append(Anchor(snapshot["seq"], f"the witness of {snapshot['time']}",
                                  chain_hash=snapshot["chain_hash"]))
    report = verify_records(records, org_id=org, anchors=anchors, rejected_anchors=result_rejected,
                            check_merkle_storage=False)
    return ExportVerification(
        report=report,
        org=org,
        checkpoints_valid=valid,
        checkpoints_rejected=result_rejected,
        witnesses_valid=witnesses_valid,
        witnesses_rejected=witnesses_rejected,
        anchored_to=anchored,
    )


# --- CEF --------------------------------------------------------------------------------

_SEVERITY = {"deny": 8, "denied": 8, "hard_ask": 6, "soft_ask": 4, "auto": 2}
_KIND_SEVERITY = {"relay.identity_mismatch": 9, "exec.refused_by_relay": 7, "exec.denied": 8, "exec.failed": 5,
                  "key.revoked": 5, "key.created": 4}


def _cef_header(value: str) -> str:
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def cef_line(record: AuditRecord) -> str:
    """One CEF:0 line for an event (ArcSight CEF rev. 25 escaping)."""
    event = json.loads(record.event)
    fields = event.get("fields") or {}
    actor = event.get("actor") or {}
    verdict = fields.get("verdict") or fields.get("gateway_verdict") or {}
    decision = fields.get("decision") or (verdict.get("decision") if isinstance(verdict, dict) else None)
    kind = str(event.get("kind"))
    severity = max(_KIND_SEVERITY.get(kind, 3), _SEVERITY.get(str(decision), 0))
    extension = {
        "rt": str(event.get("ts")),
        "cs1Label": "org",
        "cs1": str(event.get("org_id")),
        "cn1Label": "seq",
        "cn1": str(event.get("seq")),
        "cs2Label": "chainHash",
        "cs2": record.chain_hash,
        "cs3Label": "prevHash",
        "cs3": record.prev_hash,
        "suser": str(actor.get("key_id") or actor.get("name") or ""),
        "dhost": str(fields.get("agent") or fields.get("relay_id") or fields.get("agent_name") or ""),
        "act": str(decision or ""),
        "msg": json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
    }
    ext = " ".join(f"{name}={_cef_value(value)}" for name, value in extension.items() if value != "")
    header = "|".join(_cef_header(part) for part in ("CEF:0", "FlowLink", "FlowLink Gateway", __version__, kind, kind))
    return f"{header}|{severity}|{ext}\n"


def export_cef(store: AuditStore, org_id: str, out: IO[str]) -> int:
    count = 0
    for item in store.iter_items(org_id):
        out.write(cef_line(AuditRecord.from_item(item)))
        count += 1
    return count


def iter_lines(handle: IO[str]) -> Iterator[str]:
    yield from handle


__all__ = [
    "EXIT_MALFORMED",
    "EXIT_TAMPERED",
    "EXIT_UNANCHORED",
    "EXIT_USAGE",
    "EXIT_VERIFIED",
    "AuditMisconfigured",
    "ExportFormatError",
    "ExportVerification",
    "cef_line",
    "export_cef",
    "export_jsonl",
    "verify_export",
]
