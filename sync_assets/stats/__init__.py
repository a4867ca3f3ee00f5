"""The stats domain: eleven aggregate tables of the 5-a-side club, driven by the app's queue.

Replaces the stats queue worker: `stats_refresh_job` recomputes `season_stats`,
`half_season_stats`, `all_time_stats`, `hall_of_fame`, `recent_performance`,
`season_honours_and_records`, `match_report`, `personal_bests`, `player_profile_stats`,
`season_race_data` and `power_ratings` (schema `stats`) from the club app's tables, then asks
the app to revalidate each table's cache tag. `stats_job_queue_sensor` starts it for rows the
app queues in `background_job_status`, and run-status sensors write the outcome back there.
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.stats.assets import STATS_ASSETS
from sync_assets.stats.club_checks import CLUB_CHECKS
from sync_assets.stats.club_tables import club_tables, club_tables_sensor, stats_automation_sensor
from sync_assets.stats.jobs import stats_refresh_celery_job, stats_refresh_job
from sync_assets.stats.queue import QUEUE_SENSORS
from sync_assets.stats.resources import ClubAppResource, StatsDatabase

defs = dg.Definitions(
    assets=[club_tables, *STATS_ASSETS],
    asset_checks=CLUB_CHECKS,
    jobs=[stats_refresh_job, stats_refresh_celery_job],
    sensors=[
        *QUEUE_SENSORS,
        club_tables_sensor,
        stats_automation_sensor([key for asset in STATS_ASSETS for key in asset.keys]),
    ],
    resources={
        "stats_db": StatsDatabase(schema_name="stats", url_setting="STATS_DATABASE_URL"),
        "stats_app": ClubAppResource(),
    },
)

DOMAIN = Domain(
    name="stats",
    defs=defs,
    settings=(
        "STATS_DATABASE_URL",
        "NEXT_PUBLIC_APP_URL",
        "INTERNAL_API_KEY",
        "STATS_APP_SCHEMA",
        "STATS_QUEUE_JOB_TYPES",
        "STATS_QUEUE_MAX_ROWS_PER_RUN",
    ),
    secret_settings=("STATS_DATABASE_URL", "INTERNAL_API_KEY"),
    sandbox="sync_assets.sandbox.club",
)
