"""The football sync end to end: the API-Football stand-in over loopback, embedded Postgres."""

from __future__ import annotations

import dagster as dg

from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import (
    LEAGUES,
    configure,
    dump,
    metadata,
    query,
    sync,
)


def _expected_seasons(leagues: int) -> tuple[int, int]:
    """(distinct seasons, seasons listed) of the first `leagues` leagues."""
    distinct = listed = 0
    for index in range(leagues):
        item = sandbox.league_item(index, sandbox.countries())
        distinct += len({s["year"] for s in item["seasons"]})
        listed += len(item["seasons"])
    return distinct, listed


def test_a_full_sync_fills_every_table_with_the_quirks(football, database_url) -> None:
    result = sync()
    assert result.success
    seasons, listed = _expected_seasons(LEAGUES)
    assert query(
        database_url,
        "SELECT (SELECT count(*) FROM countries), (SELECT count(*) FROM leagues),"
        " (SELECT count(*) FROM seasons), (SELECT count(*) FROM season_coverage)",
    ) == [(170, LEAGUES, seasons, seasons)]
    # "World" has neither code nor flag; the UK nations share "GB".
    assert query(database_url, "SELECT code, flag, slug FROM countries WHERE name = 'World'") == [
        (None, None, "world")
    ]
    assert query(database_url, "SELECT count(*) FROM countries WHERE code = 'GB'") == [(4,)]
    assert query(
        database_url, "SELECT slug FROM countries WHERE name = %s", ("Côte d'Ivoire",)
    ) == [("cote-d-ivoire",)]
    # Cups and leagues; league 3 lists two current seasons; league 5 lists 2025 twice.
    assert {r[0] for r in query(database_url, "SELECT DISTINCT type FROM leagues")} == {
        "League",
        "Cup",
    }
    assert query(database_url, "SELECT count(*) FROM seasons WHERE league_id = 3 AND current") == [
        (2,)
    ]
    assert query(
        database_url,
        "SELECT start_date::text, current FROM seasons WHERE league_id = 5 AND year = 2025",
    ) == [("2025-08-06", True)]
    meta = metadata(result, "seasons")
    assert listed > seasons and meta["duplicates_dropped"] == listed - seasons
    assert meta["fetched"] == listed and meta["inserted"] == seasons
    assert meta["requests"] == 2 and meta["retries"] == 0 and meta["seconds"] > 0
    # The per-day and per-minute headers of every answer; the day's remainder is reported.
    assert meta["provider_requests_remaining_today"] == 75_000 - 2
    last = football.recorded(sandbox.PREFIX)[-1]
    assert last["path"] == sandbox.PREFIX + "/leagues"
    leagues = metadata(result, "leagues")
    assert (leagues["fetched"], leagues["valid"], leagues["invalid"]) == (LEAGUES, LEAGUES, 0)
    assert (leagues["inserted"], leagues["updated"]) == (LEAGUES, 0)
    assert query(database_url, "SELECT slug FROM leagues WHERE id = 9") == [
        ("brazil-primera-division",)
    ]
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 9 and all(c.passed for c in checks)


def test_rerunning_converges_and_rewrites_nothing(football, database_url) -> None:
    sync()
    before = dump(database_url)
    again = sync()
    for table in ("countries", "leagues", "seasons", "season_coverage"):
        meta = metadata(again, table)
        assert (meta["inserted"], meta["updated"]) == (0, 0), table
        assert meta["unchanged"] == meta["valid"] - meta["duplicates_dropped"]
    assert dump(database_url) == before  # updated_at included: nothing was rewritten


FOREIGN_KEYS = """SELECT conrelid::regclass::text, pg_get_constraintdef(oid) FROM pg_constraint
    WHERE contype = 'f' AND connamespace = 'football'::regnamespace ORDER BY 1"""


def test_a_first_load_checks_the_foreign_keys_once_at_its_end(football, database_url) -> None:
    instance = dg.DagsterInstance.ephemeral()
    keys = [
        ("leagues", "FOREIGN KEY (country_id) REFERENCES countries(id)"),
        ("season_coverage", "FOREIGN KEY (season_id) REFERENCES seasons(id)"),
        ("seasons", "FOREIGN KEY (league_id) REFERENCES leagues(id)"),
    ]

    def keys_set_aside(result: dg.ExecuteInJobResult) -> bool:
        return any(
            "foreign keys checked after the load" in entry.user_message
            for entry in instance.all_logs(result.run_id)
        )

    first = sync(instance=instance)
    assert keys_set_aside(first)
    assert query(database_url, FOREIGN_KEYS) == keys
    # Tables holding rows keep their keys: new rows are checked as they come.
    configure(football, leagues=LEAGUES + 10)
    more = sync(instance=instance)
    assert not keys_set_aside(more)
    assert metadata(more, "leagues")["inserted"] == 10
    assert query(database_url, FOREIGN_KEYS) == keys


def test_a_change_at_the_provider_updates_only_what_changed(football, database_url) -> None:
    sync()
    configure(football, leagues=LEAGUES + 10)
    result = sync()
    assert metadata(result, "leagues")["inserted"] == 10
    assert metadata(result, "leagues")["updated"] == 0
    assert metadata(result, "countries")["inserted"] == 0


def test_slugs_are_unique_and_kept_once_given(football, database_url) -> None:
    configure(football, leagues=180)  # Brazil: "Primera Division" and "Primera División"
    sync(checks=False)
    rows = dict(
        query(
            database_url,
            "SELECT id, slug FROM leagues WHERE country_id ="
            " (SELECT id FROM countries WHERE name = 'Brazil') AND name LIKE 'Primera%'",
        )
    )
    assert rows == {9: "brazil-primera-division", 183: "brazil-primera-division-183"}
    assert query(database_url, "SELECT count(DISTINCT slug) = count(*) FROM leagues") == [(True,)]
    before = query(database_url, "SELECT id, slug FROM leagues ORDER BY id")
    sync(checks=False)
    assert query(database_url, "SELECT id, slug FROM leagues ORDER BY id") == before


VERIFICATION = [
    "SELECT COUNT(*) FROM countries;",
    "SELECT COUNT(*) FROM leagues;",
    "SELECT COUNT(*) FROM seasons;",
    "SELECT COUNT(*) FROM season_coverage;",
    "SELECT * FROM provider_sync_state WHERE entity = 'leagues_seasons';",
    """SELECT l.name, c.name as country, COUNT(s.id) as seasons
FROM leagues l
JOIN countries c ON l.country_id = c.id
LEFT JOIN seasons s ON l.id = s.league_id
GROUP BY l.id, l.name, c.name
ORDER BY seasons DESC
LIMIT 10;""",
]


def test_the_seed_readme_verification_queries_run_unchanged(football, database_url) -> None:
    import psycopg

    sync(checks=False)
    with psycopg.connect(database_url) as conn:
        conn.execute("SET search_path TO football")
        answers = [conn.execute(q).fetchall() for q in VERIFICATION]
    assert answers[1] == [(LEAGUES,)]
    [state] = answers[4]
    assert state[:4] == ("api-football", "leagues_seasons", 170, LEAGUES)
    assert len(answers[5]) == 10 and answers[5][0][2] == 15


def test_a_paged_answer_is_followed_to_its_last_page(football, database_url) -> None:
    configure(football, page_size=50)  # 120 leagues: pages of 50, 50 and 20
    result = sync(checks=False)
    assert result.success
    pages = [r["query"].get("page") for r in football.recorded(sandbox.PREFIX + "/leagues")]
    assert pages == [None, "2", "3"]
    assert query(database_url, "SELECT count(*) FROM leagues") == [(LEAGUES,)]
    assert metadata(result, "leagues")["requests"] == 4


def test_slug_rules() -> None:
    from sync_assets.football.tables import _Slugs, slugify

    assert slugify("Côte d'Ivoire") == "cote-d-ivoire"
    assert slugify("  Primera División ") == "primera-division"
    assert slugify("日本") == ""
    slugs = _Slugs({71: "brazil-serie-a"}, "league")
    assert slugs.slug_for(71, "brazil-serie-a-renamed", "71") == "brazil-serie-a"  # kept
    assert slugs.slug_for(72, "brazil-serie-a", "72") == "brazil-serie-a-72"
    assert slugs.slug_for(98, "", "98") == "league-98"
    assert slugs.slug_for(99, "brazil-serie-a-72", "72") != "brazil-serie-a-72"
