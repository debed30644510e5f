"""The Shield engine version stamped on every verdict (bump when rules or scoring change)."""

ENGINE_VERSION = "shield-engine/1.0.0"
