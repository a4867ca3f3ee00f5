"""The concurrent refresh: every table of one refresh comes from one snapshot of the club."""

from __future__ import annotations

import psycopg
import psycopg2.errors
import pytest

from sync_assets.stats import computations
from sync_assets.stats.refresh import refresh_tables
from sync_assets_tests.stats.conftest import query, stats_db

NAMES = [t.name for t in computations.TABLES]
NEW_MATCH = (
    "INSERT INTO matches VALUES (10, '2024-02-28', 2, 0, 2);"
    "INSERT INTO player_matches VALUES (10, 5, 'A', 0), (10, 7, 'B', 2);"
)


@pytest.mark.parametrize("connections", [1, 2])
def test_a_match_added_during_a_refresh_is_in_no_table_until_the_next(
    club, database_url: str, connections: int
) -> None:
    db = stats_db()
    computations.apply_schema(db)
    outcomes = refresh_tables(db, NAMES, connections=connections)
    first = next(outcomes)  # every connection has its snapshot by now
    with psycopg.connect(database_url) as conn:
        conn.execute(NEW_MATCH)
    done = [first, *outcomes]
    assert sorted(o.name for o in done) == sorted(NAMES)
    assert all(o.error is None and o.counts and o.counts.written for o in done)
    assert {(o.rows_used, o.rows_left_out) for o in done} == {(24, 7)}
    assert query(database_url, "SELECT count(*) FROM match_report") == [(6,)]
    assert query(database_url, "SELECT games FROM all_time_stats WHERE player_id = 7") == []
    assert query(database_url, "SELECT matches_rated FROM power_ratings WHERE player_id = 7") == []

    again = {o.name: o for o in refresh_tables(db, NAMES, connections=connections)}
    assert again["match_report"].counts.added == 1  # type: ignore[union-attr]
    assert again["match_report"].rows_used == 26
    assert query(database_url, "SELECT games FROM all_time_stats WHERE player_id = 7") == [(1,)]


def test_a_failed_table_is_reported_and_the_others_are_replaced(club, database_url: str) -> None:
    db = stats_db()
    computations.apply_schema(db)
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE stats.hall_of_fame ADD CONSTRAINT nobody CHECK (rank > 99)")
    outcomes = {o.name: o for o in refresh_tables(db, NAMES)}
    assert isinstance(outcomes["hall_of_fame"].error, psycopg2.errors.CheckViolation)
    assert query(database_url, "SELECT count(*) FROM hall_of_fame") == [(0,)]
    assert all(o.error is None for name, o in outcomes.items() if name != "hall_of_fame")
    assert query(database_url, "SELECT count(*) FROM match_report") == [(6,)]
