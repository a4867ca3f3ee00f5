"""The steam domain: the Steam app catalog and per-app store details, rate limited.

Replaces the ingestion workers: `steam_sync_job` (daily via `steam_sync_schedule`) refreshes
`apps` from the Web API's app list, then fetches store details for the next batch of apps into
`app_details`, keeping per-app state in `app_sync_status`.
"""

import dagster as dg

from sync_assets.core.postgres import PostgresResource
from sync_assets.steam.assets import (
    steam_app_catalog,
    steam_app_details,
    steam_synced_apps_have_details,
)
from sync_assets.steam.client import SteamApiResource, SteamStoreResource
from sync_assets.steam.jobs import steam_sync_job, steam_sync_schedule

defs = dg.Definitions(
    assets=[steam_app_catalog, steam_app_details],
    asset_checks=[steam_synced_apps_have_details],
    jobs=[steam_sync_job],
    schedules=[steam_sync_schedule],
    resources={
        "steam_db": PostgresResource(schema_name="steam", url_setting="STEAM_DATABASE_URL"),
        "steam_api": SteamApiResource(),
        "steam_store": SteamStoreResource(),
    },
)

# `make demo` syncs every app of the sandbox catalog in one run, so a second demo changes nothing.
DEMO_RUN_CONFIG = {"ops": {"steam_app_details": {"config": {"batch_size": 1000}}}}
