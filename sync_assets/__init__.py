"""sync_assets: one Dagster code location replacing five hand-rolled sync workers."""

from sync_assets.definitions import defs

__all__ = ["defs"]
