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
    # A 200x club refreshes in about 10 s: a run still going after 30 minutes is hung, and run
    # monitoring ends it so the queue moves on (a dead worker is failed sooner: core.orphans).
    tags={"sync_assets/domain": "stats", "dagster/max_runtime": "1800"},
)
