"""Typed errors of the audit package, mapped to HTTP responses through ``flowlink.errors``.

Each carries the status and stable code an edge (REST, MCP, CLI) reports; none carries
event content beyond what the caller already sent.
"""

from __future__ import annotations

from flowlink.errors import FlowLinkError, InvalidInput, ServiceMisconfigured


class AuditInputError(InvalidInput):
    """An event that cannot be stored exactly (bad org id, kind, or a non-JSON value)."""

    code = "audit_invalid_event"


class AuditQueryError(InvalidInput):
    """A query, range or page token that cannot be served (HTTP 400 with a reason)."""

    code = "audit_bad_request"


class AuditWriteError(FlowLinkError):
    """An append that could not be committed (contention beyond the retry budget, or the
    head item disagrees with the stored records). Nothing partial was written."""

    code = "audit_write_failed"
    http_status = 503


class AuditMisconfigured(ServiceMisconfigured):
    """A setting the audit operation needs is missing (witness bucket, HMAC key, signing key)."""

    code = "audit_misconfigured"


class WitnessError(FlowLinkError):
    """A witness snapshot whose HMAC or shape is wrong: it is rejected, never trusted."""

    code = "witness_rejected"
    http_status = 422


class CheckpointError(FlowLinkError):
    """A Merkle checkpoint whose Ed25519 signature or shape is wrong: rejected."""

    code = "checkpoint_rejected"
    http_status = 422


class ProofError(FlowLinkError):
    """An inclusion or consistency proof that does not verify."""

    code = "proof_invalid"
    http_status = 422
