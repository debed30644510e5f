"""Control-plane storage: pynamodb models (``models``) and the repository the domain uses (``Store``)."""

from flowlink.storage.models import Models, build_models
from flowlink.storage.repository import (
    RELAY_BOUND_STATUSES,
    RELAY_ID_PREFIX,
    TERMINAL_STATUSES,
    Store,
    find_relay,
    parse_iso,
    utc_now_iso,
)

__all__ = [
    "RELAY_BOUND_STATUSES",
    "RELAY_ID_PREFIX",
    "TERMINAL_STATUSES",
    "Models",
    "Store",
    "build_models",
    "find_relay",
    "parse_iso",
    "utc_now_iso",
]
