"""The football sync's database connection killed while it writes: the run fails with the
database's error, the previous sync's rows are untouched, and a re-run converges."""

from __future__ import annotations

import pytest

from sync_assets_tests.conftest import create_database
from sync_assets_tests.football.conftest import LEAGUES, configure, dump, query, sync
from sync_assets_tests.pg_faults import backend_killed_mid_write, says_connection_lost

# Rows by their natural keys: identity ids (countries, seasons) skip the values a rolled-back
# transaction drew from their sequences, so they are not compared across databases.
NATURAL = {
    "countries": "SELECT name, slug, code, flag FROM countries ORDER BY name",
    "leagues": "SELECT l.id, l.name, l.type, l.logo, c.name, l.slug FROM leagues l"
    " JOIN countries c ON c.id = l.country_id ORDER BY l.id",
    "seasons": "SELECT league_id, year, start_date, end_date, current FROM seasons"
    " ORDER BY league_id, year",
    "season_coverage": "SELECT s.league_id, s.year, to_jsonb(c) - 'season_id' - 'created_at'"
    " - 'updated_at' FROM season_coverage c JOIN seasons s ON s.id = c.season_id"
    " ORDER BY s.league_id, s.year",
}


def natural_rows(url: str) -> dict[str, list[tuple]]:
    return {table: query(url, text) for table, text in NATURAL.items()}


def test_a_connection_killed_mid_write_keeps_the_last_sync_and_a_rerun_converges(
    football, database_url, server_url, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(football, leagues=LEAGUES - 20)
    assert sync().success
    before = dump(database_url)

    configure(football, leagues=LEAGUES)  # the second sync has 20 new leagues to write
    # season_coverage is written last: countries, leagues and seasons are already written in
    # the sync's transaction when its backend dies.
    with backend_killed_mid_write(database_url, "football.season_coverage") as killed:
        failed = sync(raise_on_error=False)
    assert "season_coverage" in killed.query
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert says_connection_lost(failure.event_specific_data.error.to_string())
    assert dump(database_url) == before  # timestamps included: nothing of the second sync

    assert sync().success
    converged = natural_rows(database_url)
    assert len(converged["leagues"]) == LEAGUES

    undisturbed = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", undisturbed)
    assert sync().success
    assert natural_rows(undisturbed) == converged
