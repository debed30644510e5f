"""Control-plane storage: pynamodb models (``models``) and the repository the domain uses (``Store``)."""

from flowlink.storage.models import Models, build_models
from flowlink.storage.repository import TERMINAL_STATUSES, Store, parse_iso, utc_now_iso

__all__ = ["TERMINAL_STATUSES", "Models", "Store", "build_models", "parse_iso", "utc_now_iso"]
