"""The club app's tables as an observable source asset, and what refreshes the stats without
the app's queue: a sensor that observes the tables' content (no run) and the automation sensor
that materializes the stats tables (`AutomationCondition.eager()`) when a table's version moves.
"""

import json
from collections.abc import Iterator

import dagster as dg
from psycopg import sql

from sync_assets.core.dagster_internals import DATA_VERSION_TAG
from sync_assets.stats.club_checks import CLUB_KEYS, CLUB_SPECS
from sync_assets.stats.computations import CLUB_TABLES, check_club_tables
from sync_assets.stats.resources import StatsDatabase

OBSERVE_EVERY_SECONDS = 30
# A table's version: its row count and the sum of a 64-bit hash of every row's text, so any
# inserted, deleted or changed row changes it, in one scan without sorting.
VERSION_SQL = "SELECT count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) FROM {}.{} t"


def club_table_versions(stats_db: StatsDatabase) -> dict[str, str]:
    """Each club table's content version (`<rows>:<digest>`)."""
    app = stats_db.app_schema_name()
    versions = {}
    with stats_db.connect() as conn:
        check_club_tables(conn.cursor(), app)
        for table in CLUB_TABLES:
            query = sql.SQL(VERSION_SQL).format(sql.Identifier(app), sql.Identifier(table))
            rows, digest = conn.execute(query).fetchone()  # type: ignore[misc]
            versions[table] = f"{rows}:{digest}"
    return versions


@dg.multi_observable_source_asset(
    name="club_tables", specs=CLUB_SPECS, required_resource_keys={"stats_db"}
)
def club_tables(context: dg.AssetExecutionContext) -> Iterator[dg.ObserveResult]:
    """The club's tables observed: each one's data version follows its content."""
    for table, version in club_table_versions(context.resources.stats_db).items():
        yield dg.ObserveResult(asset_key=["club", table], data_version=dg.DataVersion(version))


@dg.sensor(
    minimum_interval_seconds=OBSERVE_EVERY_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Observes the club's tables (no run); a changed one makes the stats stale.",
)
def club_tables_sensor(
    context: dg.SensorEvaluationContext, stats_db: StatsDatabase
) -> dg.SensorResult:
    """Record an observation with the new data version of each club table that changed."""
    seen = json.loads(context.cursor) if context.cursor else {}
    versions = club_table_versions(stats_db)
    changed = [table for table, version in versions.items() if seen.get(table) != version]
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(asset_key=["club", table], tags={DATA_VERSION_TAG: versions[table]})
            for table in changed
        ],
        cursor=json.dumps(versions, sort_keys=True),
        skip_reason=None if changed else "the club's tables have not changed",
    )


def stats_automation_sensor(
    stats_keys: list[dg.AssetKey],
) -> dg.AutomationConditionSensorDefinition:
    """Materializes the stats tables whose condition (eager: a club table changed) is true."""
    return dg.AutomationConditionSensorDefinition(
        "stats_automation_sensor",
        target=dg.AssetSelection.assets(*stats_keys) | dg.AssetSelection.assets(*CLUB_KEYS),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=OBSERVE_EVERY_SECONDS,
        run_tags={"sync_assets/domain": "stats"},
        description="Refreshes the stats tables when the club's tables change (no queue row).",
    )
