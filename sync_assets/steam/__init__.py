"""The steam domain: the Steam app catalog and per-app store details, rate limited.

Replaces the ingestion workers: `steam_sync_job` (daily via `steam_sync_schedule`) refreshes
`apps` from the Web API's app list, then fetches store details for the next batch of apps into
`app_details`, keeping per-app state in `app_sync_status`.
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.core.postgres import PostgresResource
from sync_assets.steam.assets import (
    steam_app_catalog,
    steam_app_details,
    steam_synced_apps_have_details,
)
from sync_assets.steam.client import (
    STEAM_STORE_POOL,
    STEAM_WEB_API_POOL,
    SteamApiResource,
    SteamStoreResource,
)
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

DOMAIN = Domain(
    name="steam",
    defs=defs,
    settings=(
        "STEAM_DATABASE_URL",
        "STEAM_API_KEY",
        "STEAM_API_BASE_URL",
        "STEAM_STORE_BASE_URL",
        "STEAM_STORE_RATE_LIMIT",
    ),
    secret_settings=("STEAM_DATABASE_URL", "STEAM_API_KEY"),
    pools={STEAM_WEB_API_POOL: 1, STEAM_STORE_POOL: 1},
    # `make demo` syncs every app of the sandbox catalog in one run, so a second demo changes
    # nothing.
    demo_run_config={"ops": {"steam_app_details": {"config": {"batch_size": 1000}}}},
    sandbox="sync_assets.sandbox.steam",
)
