"""Merges every registered domain's Definitions into the code location and adds the
cross-domain job."""

from collections.abc import Sequence

import dagster as dg

from sync_assets import operations
from sync_assets.core.domain import Domain, build_definitions
from sync_assets.core.executor import in_process_by_default_executor
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.domains import DOMAINS

__all__ = ["DOMAINS", "all_syncs_job", "code_location", "defs"]

all_syncs_job = dg.define_asset_job(
    "all_syncs_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("streams"),
    description="Every synced asset of every domain (the partitioned stream_parquet aside).",
)


def code_location(domains: Sequence[Domain]) -> dg.Definitions:
    """The code location of these domains: theirs, operations' and the cross-domain job."""
    return build_definitions(
        domains,
        operations.defs,
        dg.Definitions(
            jobs=[all_syncs_job],
            resources={"object_storage": ObjectStorageResource()},
            executor=in_process_by_default_executor,
        ),
    )


defs = code_location(DOMAINS)
