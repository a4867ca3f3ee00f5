"""The steam job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from sync_assets.steam.assets import steam_app_catalog, steam_app_details

DAILY_BATCH_SIZE = 200

steam_sync_job = dg.define_asset_job(
    "steam_sync_job",
    selection=dg.AssetSelection.assets(steam_app_catalog, steam_app_details),
    description="Refresh the app catalog, then fetch store details for the next batch of apps.",
    tags={"sync_assets/domain": "steam"},
)

steam_sync_schedule = dg.ScheduleDefinition(
    name="steam_sync_schedule",
    job=steam_sync_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    run_config={"ops": {"steam_app_details": {"config": {"batch_size": DAILY_BATCH_SIZE}}}},
    description=f"Daily at 03:00 UTC: the catalog and {DAILY_BATCH_SIZE} apps' details.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
