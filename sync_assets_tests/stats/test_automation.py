"""Stats without the queue: the club's tables are observed (their data version follows their
content), and the stats assets' eager condition asks for a refresh when one changes; the app's
`background_job_status` is never touched."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import psycopg

from sync_assets.sandbox.server import SandboxServer
from sync_assets.stats.assets import STATS_ASSETS
from sync_assets.stats.club_tables import club_tables, club_tables_sensor
from sync_assets.stats.computations import TABLES
from sync_assets_tests.stats.conftest import add_matches, query, resources, stats_db

STATS_KEYS = {dg.AssetKey(t.name) for t in TABLES}
NEW_PLAYER = 7  # Gus has played no match of the hand-worked club


def observe(instance: dg.DagsterInstance, cursor: str | None) -> tuple[list[str], str | None]:
    """One tick of club_tables_sensor, its observations stored as the daemon stores them."""
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"stats_db": stats_db()}
    ) as context:
        result = club_tables_sensor(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return [e.asset_key.path[-1] for e in result.asset_events], result.cursor


def automation_tick(instance: dg.DagsterInstance, cursor):  # noqa: ANN001
    """One evaluation of the stats' automation conditions (what stats_automation_sensor runs)."""
    result = dg.evaluate_automation_conditions(
        defs=dg.Definitions(assets=[club_tables, *STATS_ASSETS], resources=resources()),
        instance=instance,
        cursor=cursor,
    )
    requested = {key for key in STATS_KEYS if result.get_num_requested(key)}
    return requested, result.cursor


def refresh(instance: dg.DagsterInstance, keys: set[dg.AssetKey]) -> None:
    result = dg.materialize(
        [*STATS_ASSETS, club_tables], selection=list(keys), instance=instance, resources=resources()
    )
    assert result.success


def queue_rows(url: str) -> int:
    return query(url, "SELECT count(*) FROM public.background_job_status")[0][0]


def test_a_new_match_refreshes_the_stats_without_a_queue_row(
    club: SandboxServer, database_url: str, pg_instance: dg.DagsterInstance
):
    instance = pg_instance
    refresh(instance, STATS_KEYS)  # the stats as the app's queue or the demo left them
    assert query(
        database_url, "SELECT count(*) FROM all_time_stats WHERE player_id = %s", (NEW_PLAYER,)
    ) == [(0,)]
    changed, sensor_cursor = observe(instance, None)
    assert sorted(changed) == ["matches", "player_matches", "players", "seasons"]
    requested, cursor = automation_tick(instance, None)
    assert requested == set()  # the first evaluation only takes stock

    # Nothing changed: no observation, nothing requested.
    changed, sensor_cursor = observe(instance, sensor_cursor)
    assert changed == []
    requested, cursor = automation_tick(instance, cursor)
    assert requested == set()

    # A new match: its two tables get new versions, and every stats table is asked for.
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        add_matches(cur, {10: (dt.date(2024, 2, 28), 2, 1, 0, [(NEW_PLAYER, "A", 1), (2, "B", 0)])})
    changed, sensor_cursor = observe(instance, sensor_cursor)
    assert sorted(changed) == ["matches", "player_matches"]
    versions = {
        key.path[-1]: instance.fetch_observations(key, limit=1)
        .records[0]
        .asset_observation.data_version  # type: ignore[union-attr]
        for key in club_tables.keys
    }
    assert len(set(versions.values())) == 4
    requested, cursor = automation_tick(instance, cursor)
    assert requested == STATS_KEYS
    refresh(instance, requested)
    assert query(
        database_url,
        "SELECT games, wins, goals FROM all_time_stats WHERE player_id = %s",
        (NEW_PLAYER,),
    ) == [(1, 1, 1)]
    assert queue_rows(database_url) == 0
    assert instance.get_runs(filters=dg.RunsFilter(job_name="stats_refresh_job")) == []

    requested, cursor = automation_tick(instance, cursor)
    assert requested == set()  # refreshed: quiet until the club changes again
