"""The football job and its daily schedule."""

from __future__ import annotations

import dagster as dg

from sync_assets.football.assets import football_table_checks
from sync_assets.football.tables import TABLES

football_sync_job = dg.define_asset_job(
    "football_sync_job",
    selection=dg.AssetSelection.assets(*TABLES).without_checks()
    | dg.AssetSelection.checks(football_table_checks),
    description="Countries, leagues, seasons and season coverage from API-Football.",
    tags={"sync_assets/domain": "football"},
)

football_sync_schedule = dg.ScheduleDefinition(
    name="football_sync_schedule",
    job=football_sync_job,
    cron_schedule="30 2 * * *",
    execution_timezone="UTC",
    description="Daily at 02:30 UTC: the whole football sync (two API-Football requests).",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
