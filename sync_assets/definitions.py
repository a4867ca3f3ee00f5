"""Merges every domain's Definitions into the code location and adds the cross-domain job."""

import dagster as dg

from sync_assets import football, operations, stats, steam, streams, torn
from sync_assets.core.executor import in_process_by_default_executor
from sync_assets.core.storage import ObjectStorageResource

DOMAINS = (football, stats, steam, streams, torn)

all_syncs_job = dg.define_asset_job(
    "all_syncs_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.groups("streams"),
    description="Every synced asset of every domain (the partitioned stream_parquet aside).",
)

defs = dg.Definitions.merge(
    *(domain.defs for domain in DOMAINS),
    operations.defs,
    dg.Definitions(
        jobs=[all_syncs_job],
        resources={"object_storage": ObjectStorageResource()},
        executor=in_process_by_default_executor,
    ),
)
