"""Typed domain errors of FlowLink, each carrying the one HTTP status and error code it maps to.

Domain code raises these; the edges (FastAPI exception handlers, MCP tools, Lambda
handlers) map them to a response in exactly one place each. Never choose a status by
matching words in a message: add a subclass here instead. The ``detail`` of an error is
shown to the caller, so it must never carry secrets (keys, credentials, output).
"""

from __future__ import annotations

from typing import Any


class FlowLinkError(Exception):
    """Base of every expected failure; ``code`` is stable, ``detail`` is human-readable."""

    code = "error"
    http_status = 400

    def __init__(self, detail: str, *, extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        body.update(self.extra)
        return body


class InvalidInput(FlowLinkError):
    code = "invalid_input"
    http_status = 400


class AuthenticationFailed(FlowLinkError):
    """No key, an unknown key or a revoked key (HTTP 401 with WWW-Authenticate)."""

    code = "unauthorized"
    http_status = 401


class PermissionDenied(FlowLinkError):
    """A valid key whose scope does not allow the operation."""

    code = "forbidden"
    http_status = 403


class NotFound(FlowLinkError):
    code = "not_found"
    http_status = 404


class Conflict(FlowLinkError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(FlowLinkError):
    code = "payload_too_large"
    http_status = 413


class UnsupportedMediaType(FlowLinkError):
    """A REST body sent with a Content-Type other than JSON."""

    code = "unsupported_media_type"
    http_status = 415


class EnrollmentTokenInvalid(FlowLinkError):
    """An enrollment token that is unknown, already used or expired (contracts §5)."""

    code = "enrollment_token_invalid"
    http_status = 401


class RelayAuthenticationFailed(FlowLinkError):
    code = "relay_unauthorized"
    http_status = 401


class IdentityMismatch(FlowLinkError):
    """A relay presented a signing key different from the one it enrolled with."""

    code = "identity_mismatch"
    http_status = 403


class AgentNotFound(NotFound):
    """No relay of the caller's org matches; ``extra["agents"]`` lists the org's relays."""

    code = "agent_not_found"


class AgentNameAmbiguous(Conflict):
    """Several relays of the org carry the name asked for (possible only for relays enrolled
    before names were unique); ``extra["relay_ids"]`` lists them. Never resolved by picking one."""

    code = "agent_name_ambiguous"


class RelayNameTaken(Conflict):
    """Enrollment under a name another relay of the org holds; ``extra["relay_ids"]`` names it.
    Nothing was written and the enrollment token stays usable (e.g. with another name)."""

    code = "relay_name_taken"


class AgentOffline(FlowLinkError):
    code = "agent_offline"
    http_status = 409


class AgentRefused(FlowLinkError):
    """The relay is flagged (another key, or drifted code the org refuses): nothing is sent to it."""

    code = "agent_flagged"
    http_status = 409


class CommandDenied(FlowLinkError):
    """Shield denied the command at the gateway; nothing was dispatched."""

    code = "command_denied"
    http_status = 403


class PathDenied(FlowLinkError):
    code = "path_denied"
    http_status = 403


class ServiceMisconfigured(FlowLinkError):
    """A setting the operation needs is missing (e.g. no signing key, no management URL)."""

    code = "misconfigured"
    http_status = 500


class OrgExists(Conflict):
    """An org of that name is already in the stack; ``extra["org_id"]`` names it."""

    code = "org_exists"


class StackNotProvisioned(ServiceMisconfigured):
    """The stack (or table prefix) named has no, or not all, FlowLink tables: nothing was written."""

    code = "stack_not_provisioned"


class AwsAccessFailed(ServiceMisconfigured):
    """AWS refused or could not be asked: no credentials, bad credentials, no permission, no endpoint."""

    code = "aws_access_failed"
