"""The assets in Dagster runs: cache tags after commit, retries, failures kept apart, secrets."""

from __future__ import annotations

import json

import dagster as dg
import psycopg
import pytest

from sync_assets.sandbox import club as club_sandbox
from sync_assets.stats.assets import STATS_ASSETS
from sync_assets.stats.club_checks import CLUB_CHECKS, CLUB_KEYS, CLUB_SPECS
from sync_assets.stats.computations import TABLES
from sync_assets_tests.stats.conftest import metadata_of, query, refresh_all, resources

ALL_TAGS = sorted(t.cache_tag for t in TABLES)
TABLE_NAMES = {t.name for t in TABLES}


def materialize(*names: str, **kwargs) -> dg.ExecuteInJobResult:
    """Materialize the named stats tables (all eleven when none are named)."""
    selection = list(names) or None
    return dg.materialize(STATS_ASSETS, selection=selection, resources=resources(), **kwargs)


def provider(server):
    return server.providers[club_sandbox.PREFIX]


def check_results(result: dg.ExecuteInJobResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}


def test_all_eleven_then_each_cache_tag_exactly_once(club, database_url: str) -> None:
    result = materialize()
    assert result.success
    assert sorted(provider(club).revalidated) == ALL_TAGS
    [request, *_] = club.recorded(club_sandbox.PREFIX)
    assert request["headers"]["authorization"] == f"Bearer {club_sandbox.SANDBOX_INTERNAL_KEY}"
    assert request["path"] == club_sandbox.PREFIX + club_sandbox.REVALIDATE_PATH
    meta = metadata_of(result, "power_ratings")
    assert meta["revalidation"] == "sent" and meta["revalidation_attempts"] == 1
    assert meta["rows"] == 6 and meta["rewritten"] is True
    assert meta["player_match_rows_used"] == 24 and meta["player_match_rows_left_out"] == 7
    checks = check_results(result)
    assert len(checks) == 11 and all(e.passed for e in checks.values())
    assert query(database_url, "SELECT count(*) FROM match_report") == [(6,)]

    # A second refresh of the same club finds every table already right and writes nothing.
    assert not any(c.written for c in refresh_all().values())
    again = materialize()
    assert not any(metadata_of(again, name)["rewritten"] for name in TABLE_NAMES)  # converged
    assert sorted(provider(club).revalidated) == sorted(ALL_TAGS * 2)


def test_revalidation_is_retried_then_a_final_failure_is_only_a_warning(club, database_url):
    club.faults.add(path=club_sandbox.PREFIX, kind="status", status=503, count=2)
    result = materialize("hall_of_fame")
    meta = metadata_of(result, "hall_of_fame")
    assert (meta["revalidation"], meta["revalidation_attempts"]) == ("sent", 3)
    assert provider(club).revalidated == ["hall_of_fame"]

    provider(club).configure({"refuse": 10})  # HTTP 200 with success: false, as the app does
    result = materialize("season_stats")
    assert result.success  # the data is committed whatever the app says
    meta = metadata_of(result, "season_stats")
    assert (meta["revalidation"], meta["revalidation_attempts"]) == ("failed", 4)
    assert "success=false" in meta["revalidation_error"]
    check = check_results(result)["season_stats"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert query(database_url, "SELECT count(*) FROM season_stats") == [(10,)]
    assert provider(club).revalidated == ["hall_of_fame"]


def test_without_an_app_url_the_tags_are_not_sent(club, monkeypatch) -> None:
    monkeypatch.delenv("NEXT_PUBLIC_APP_URL")
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(*(spec.name for spec in TABLES), instance=instance)
    for spec in TABLES:
        assert metadata_of(result, spec.name)["revalidation"] == "skipped"
    assert club.recorded(club_sandbox.PREFIX) == []
    assert check_results(result) == {}  # nothing sent, nothing for the check to judge
    lines = [e.user_message for e in instance.all_logs(result.run_id)]
    assert len([m for m in lines if "NEXT_PUBLIC_APP_URL is not set" in m]) == 1


def test_an_app_url_without_the_key_fails_at_the_start_naming_it(club, monkeypatch) -> None:
    monkeypatch.delenv("INTERNAL_API_KEY")
    result = materialize("all_time_stats", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "INTERNAL_API_KEY is not set" in message
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == []  # a missing setting is not retried
    assert club.recorded(club_sandbox.PREFIX) == []  # failed before any work


FAIL_ALWAYS = """
CREATE FUNCTION stats.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'disk full (injected)'; END $$;
CREATE TRIGGER refuse BEFORE INSERT OR DELETE ON stats.power_ratings
    FOR EACH STATEMENT EXECUTE FUNCTION stats.refuse();
CREATE SEQUENCE stats.flaky_calls;
CREATE FUNCTION stats.flaky() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('stats.flaky_calls') = 1 THEN RAISE EXCEPTION 'deadlock (injected)'; END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER flaky BEFORE INSERT OR DELETE ON stats.match_report
    FOR EACH STATEMENT EXECUTE FUNCTION stats.flaky();
"""


def test_a_failing_table_is_retried_keeps_its_old_rows_and_stops_no_other(
    club, database_url, pg_instance, capfd
) -> None:
    refresh_all()  # yesterday's tables, written without Dagster (quicker)
    old_ratings = query(database_url, "SELECT * FROM power_ratings ORDER BY player_id")
    with psycopg.connect(database_url) as conn:
        conn.execute(FAIL_ALWAYS)
        conn.execute("INSERT INTO matches VALUES (10, '2024-02-28', 2, 0, 2)")
        conn.execute("INSERT INTO player_matches VALUES (10, 5, 'A', 0), (10, 7, 'B', 2)")
    club.faults.add(path=club_sandbox.PREFIX, kind="status", status=500, count=1)

    result = materialize(instance=pg_instance, raise_on_error=False)
    assert not result.success
    done = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert done == TABLE_NAMES - {"power_ratings"}
    retried = [e.step_key for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    # Attempt 1 loses match_report (flaky) and power_ratings; the retries redo only those.
    assert retried == ["stats_tables", "stats_tables"]
    per_table = [e.asset_key.path[-1] for e in result.get_asset_materialization_events()]
    assert sorted(per_table) == sorted(TABLE_NAMES - {"power_ratings"})  # each exactly once
    [failure] = [e for e in result.all_events if e.is_step_failure]
    failed = failure.step_failure_data.user_failure_data.metadata["failed_tables"].value
    assert list(failed) == ["power_ratings"] and "disk full (injected)" in failed["power_ratings"]
    assert query(database_url, "SELECT * FROM power_ratings ORDER BY player_id") == old_ratings
    assert query(database_url, "SELECT games FROM all_time_stats WHERE player_id = 7") == [(1,)]
    assert query(database_url, "SELECT count(*) FROM match_report") == [(7,)]
    assert sorted(provider(club).revalidated) == sorted(set(ALL_TAGS) - {"player_power_rating"})

    # The internal key went to the app, and nowhere else: not the logs, not the event log.
    secret = club_sandbox.SANDBOX_INTERNAL_KEY
    assert any(secret in r["headers"].get("authorization", "") for r in club.recorded())
    out, err = capfd.readouterr()
    assert secret not in out and secret not in err
    records = pg_instance.get_records_for_run(result.run_id, limit=10_000).records
    assert records and not any(secret in json.dumps(r.event_log_entry.to_json()) for r in records)


CHECKS_JOB = dg.define_asset_job(
    "club_checks_job", selection=dg.AssetSelection.checks_for_assets(*CLUB_KEYS)
)


def run_club_checks() -> dict[str, dg.AssetCheckEvaluation]:
    definitions = dg.Definitions(
        assets=CLUB_SPECS, asset_checks=CLUB_CHECKS, jobs=[CHECKS_JOB], resources=resources()
    )
    result = definitions.resolve_job_def("club_checks_job").execute_in_process()
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.mark.parametrize("both_teams", [False, True])
def test_contradicting_rows_are_reported_with_a_sample(club, database_url, both_teams) -> None:
    if both_teams:  # an app table without the (match_id, player_id) key lets this happen
        with psycopg.connect(database_url) as conn:
            conn.execute("ALTER TABLE player_matches DROP CONSTRAINT player_matches_pkey")
            conn.execute("INSERT INTO player_matches VALUES (6, 2, 'A', 0)")
    checks = run_club_checks()
    counts = {name: c.metadata["offending_rows"].value for name, c in checks.items()}
    assert counts == {
        "player_on_both_teams": 1 if both_teams else 0,
        "goals_and_team_valid": 1,  # match 7: Ann's -1
        "rows_reference_known_matches_and_players": 2,  # match 99, player 42
        "matches_have_players_on_both_sides": 2,  # match 8 (nobody), match 9 (no team B)
        "scores_valid": 0,
    }
    assert all(c.severity == dg.AssetCheckSeverity.WARN for c in checks.values())
    sample = checks["goals_and_team_valid"].metadata["sample"].value
    assert sample == [{"match_id": 7, "player_id": 1, "team": "A", "goals": -1}]
    if both_teams:
        assert checks["player_on_both_teams"].metadata["sample"].value == [
            {"match_id": 6, "player_id": 2, "teams": "A,B"}
        ]
        result = materialize("all_time_stats")
        assert result.success  # match 6 is left out, nothing crashes
        assert query(database_url, "SELECT games FROM all_time_stats WHERE player_id = 2") == [(5,)]
