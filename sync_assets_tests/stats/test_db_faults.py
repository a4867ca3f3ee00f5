"""The stats refresh's database connection killed while it writes one table: that table keeps
its old rows (every table is replaced in its own transaction), the step fails naming it with
the database's error, and a re-run (or the step's own retry) converges to an undisturbed
refresh."""

from __future__ import annotations

import dagster as dg
import psycopg
import pytest

from sync_assets.stats.assets import RETRY_POLICY, STATS_ASSETS
from sync_assets.stats.computations import TABLES
from sync_assets_tests.conftest import create_database
from sync_assets_tests.pg_faults import (
    backend_killed_mid_write,
    rows_as_text,
    rows_without_times,
    says_connection_lost,
)
from sync_assets_tests.stats.conftest import build_club, resources

STATS_TABLES = [f"stats.{t.name}" for t in TABLES]
KILLED_TABLE = "stats.all_time_stats"
ATTEMPTS = RETRY_POLICY.max_retries + 1


def refresh(**kwargs) -> dg.ExecuteInJobResult:
    return dg.materialize(STATS_ASSETS, resources=resources(), raise_on_error=False, **kwargs)


def add_a_match(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO matches VALUES (10, '2024-02-28', 2, 0, 2)")
        conn.execute("INSERT INTO player_matches VALUES (10, 5, 'A', 0), (10, 7, 'B', 2)")


def undisturbed_rows(server_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    """The stats tables of the same club refreshed once, without faults, in a fresh database."""
    url = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", url)
    build_club(url)
    add_a_match(url)
    assert refresh().success
    return {t: rows_without_times(url, t) for t in STATS_TABLES}


def test_connections_killed_mid_write_keep_that_tables_rows_and_a_rerun_converges(
    club, database_url, server_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert refresh().success
    before = rows_as_text(database_url, *STATS_TABLES)

    add_a_match(database_url)  # player 7's first game: all_time_stats changes
    # Every attempt of the step (its retry policy) loses its connection while writing it.
    with backend_killed_mid_write(database_url, KILLED_TABLE, kills=ATTEMPTS) as killed:
        failed = refresh()
    assert "all_time_stats" in killed.query and killed.count == ATTEMPTS
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.is_step_failure]
    errors = failure.step_failure_data.user_failure_data.metadata["failed_tables"].value
    assert list(errors) == ["all_time_stats"]
    assert says_connection_lost(errors["all_time_stats"]), errors
    after = rows_as_text(database_url, *STATS_TABLES)
    assert after[KILLED_TABLE] == before[KILLED_TABLE]
    assert after["stats.season_stats"] != before["stats.season_stats"]  # the others went on

    assert refresh().success
    converged = {t: rows_without_times(database_url, t) for t in STATS_TABLES}
    assert undisturbed_rows(server_url, monkeypatch) == converged


def test_the_steps_retry_replaces_a_table_whose_connection_was_killed(
    club, database_url, server_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert refresh().success
    add_a_match(database_url)
    with backend_killed_mid_write(database_url, KILLED_TABLE):
        result = refresh()
    assert result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == 1
    converged = {t: rows_without_times(database_url, t) for t in STATS_TABLES}
    assert undisturbed_rows(server_url, monkeypatch) == converged
