"""The football domain: countries, leagues, seasons and season coverage from API-Football.

Replaces the sports data worker's `sync:leagues`: `football_sync_job` (daily via
`football_sync_schedule`) downloads `/countries` and `/leagues` and writes the four tables of
the `football` schema in one transaction.
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.core.postgres import PostgresResource
from sync_assets.football.assets import football_sync, football_table_checks
from sync_assets.football.client import API_FOOTBALL_POOL, FootballApiResource
from sync_assets.football.jobs import football_sync_job, football_sync_schedule

defs = dg.Definitions(
    assets=[football_sync],
    asset_checks=[football_table_checks],
    jobs=[football_sync_job],
    schedules=[football_sync_schedule],
    resources={
        "football_db": PostgresResource(
            schema_name="football", url_setting="FOOTBALL_DATABASE_URL"
        ),
        "football_api": FootballApiResource(),
    },
)

DOMAIN = Domain(
    name="football",
    defs=defs,
    settings=("FOOTBALL_DATABASE_URL", "SPORTS_PROVIDER_API_KEY", "API_FOOTBALL_BASE_URL"),
    secret_settings=("FOOTBALL_DATABASE_URL", "SPORTS_PROVIDER_API_KEY"),
    pools={API_FOOTBALL_POOL: 1},
    sandbox="sync_assets.sandbox.football",
)
