"""Typed errors of the edge relay, each carrying the process exit code the CLI maps it to.

The CLI maps these once (``edge_relay.__main__``); library code raises them and never
exits the process itself.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2  # bad arguments/settings, health port in use
EXIT_ENROLLMENT_REJECTED = 3  # token used, expired or unknown
EXIT_GATEWAY_UNREACHABLE = 4
EXIT_NOT_ENROLLED = 5
EXIT_NOT_RUNNING = 6
EXIT_NAME_TAKEN = 7  # enroll: another relay of the org already has this name


class RelayError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with when this reaches it."""

    exit_code = EXIT_FAILURE


class RelaySettingsError(RelayError):
    """A setting or CLI argument is malformed."""

    exit_code = EXIT_USAGE


class HealthPortInUseError(RelayError):
    """The local health/metrics port is taken by another process."""

    exit_code = EXIT_USAGE


class IdentityError(RelayError):
    """The state dir holds no usable identity (not enrolled, or files damaged)."""

    exit_code = EXIT_NOT_ENROLLED


class AlreadyEnrolledError(RelayError):
    """Enrolling again would overwrite an existing identity."""

    exit_code = EXIT_USAGE


class EnrollmentRejectedError(RelayError):
    """The gateway refused the enrollment token (used, expired or unknown)."""

    exit_code = EXIT_ENROLLMENT_REJECTED


class RelayNameTakenError(RelayError):
    """The org already has a relay of the requested name; the token was not used up."""

    exit_code = EXIT_NAME_TAKEN


class GatewayUnreachableError(RelayError):
    """The gateway could not be reached (DNS, refused, timeout, TLS)."""

    exit_code = EXIT_GATEWAY_UNREACHABLE


class GatewayResponseError(RelayError):
    """The gateway answered, but not with what the contract promises."""

    exit_code = EXIT_FAILURE


class StateDirLockedError(RelayError):
    """Another relay process already uses this state dir (two would break at-most-once)."""

    exit_code = EXIT_USAGE
