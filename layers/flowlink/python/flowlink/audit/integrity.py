"""Verification of a stored chain on demand: reads the table and the witness bucket, then
hands everything to ``flowlink.audit.verify``. This is what ``GET /api/v1/audit/integrity``
and the MCP ``audit`` tool report."""

from __future__ import annotations

import logging

from flowlink.audit.errors import AuditWriteError
from flowlink.audit.store import AuditStore
from flowlink.audit.verify import AuditRecord, IntegrityReport, verify_records
from flowlink.audit.witness import WitnessStore, load_anchors

logger = logging.getLogger(__name__)


def verify_chain(
    org_id: str,
    *,
    store: AuditStore | None = None,
    witnesses: WitnessStore | None = None,
    use_witnesses: bool = True,
) -> IntegrityReport:
    """Verify ``org_id``'s whole chain against itself, its head and its witnesses/checkpoints.

    An empty log is intact with length 0. Forged witnesses are listed in
    ``rejected_anchors`` and ignored. Raises AuditMisconfigured only when a witness bucket is
    set but cannot be read.
    """
    if store is None:
        from flowlink.audit import default_store

        store = default_store()
    try:
        head = store.read_head(org_id)
        head_size: int | None = head.size or None
    except AuditWriteError:
        logger.warning("audit head of org %s is malformed; verifying without it", org_id)
        head_size = None
    anchors, rejected = ([], [])
    if use_witnesses:
        anchors, rejected = load_anchors(store.settings, org_id, witnesses=witnesses)
    records = (AuditRecord.from_item(item) for item in store.iter_items(org_id))
    return verify_records(records, org_id=org_id, head_size=head_size, anchors=anchors, rejected_anchors=rejected)
