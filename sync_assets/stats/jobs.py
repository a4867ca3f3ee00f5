"""stats_refresh_job: the eleven tables and the checks on the club's tables."""

from __future__ import annotations

import dagster as dg

from sync_assets.stats.assets import STATS_ASSETS
from sync_assets.stats.club_checks import CLUB_KEYS

stats_refresh_job = dg.define_asset_job(
    "stats_refresh_job",
    selection=dg.AssetSelection.assets(*STATS_ASSETS)
    | dg.AssetSelection.checks_for_assets(*CLUB_KEYS),
    description="Recompute all eleven club stats tables (and check the club's tables).",
    tags={"sync_assets/domain": "stats"},
)
