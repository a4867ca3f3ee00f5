"""Every recorded API-Football answer in shared/reference/api-football/ is stored, or rejected the
way the service means it (a non-empty `errors` is a failed request, whatever the HTTP status)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sync_assets_tests.football.conftest import (
    configure,
    counts,
    failure_message,
    metadata,
    query,
    sync,
)

# Copied from shared/reference/ (real provider answers) so the tests run in any checkout.
REFERENCE = Path(__file__).resolve().parents[1] / "reference" / "api-football"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason="shared/reference/api-football is not beside the repo"
)


def _text(name: str) -> str:
    return (REFERENCE / name).read_text(encoding="utf-8")  # byte-order marks kept


@needs_reference
def test_the_recorded_euro_championship_and_countries_are_stored(football, database_url) -> None:
    configure(
        football,
        answers={
            "/countries": _text("countries_author-trimmed__BorisGerretzen-CSharpApiFootball.json"),
            "/leagues": _text(
                "leagues_euro-championship_author-trimmed__BorisGerretzen-CSharpApiFootball.json"
            ),
        },
    )
    assert _text("countries_author-trimmed__BorisGerretzen-CSharpApiFootball.json")[0] == "\ufeff"
    result = sync()
    assert result.success
    assert query(database_url, "SELECT name, code, flag, slug FROM countries ORDER BY name") == [
        ("Albania", "AL", "https://media-6.api-sports.io/flags/al.svg", "albania"),
        ("Algeria", "DZ", "https://media-4.api-sports.io/flags/dz.svg", "algeria"),
        ("World", None, None, "world"),  # only the league names it
    ]
    assert query(
        database_url,
        "SELECT l.id, l.name, l.type, l.slug, c.name FROM leagues l JOIN countries c"
        " ON c.id = l.country_id",
    ) == [(4, "Euro Championship", "Cup", "world-euro-championship", "World")]
    seasons = query(
        database_url,
        "SELECT s.year, s.start_date::text, s.end_date::text, s.current,"
        " v.statistics_fixtures_ok, v.standings, v.predictions FROM seasons s"
        " JOIN (SELECT season_id, fixtures_statistics_fixtures AS statistics_fixtures_ok,"
        " standings, predictions FROM season_coverage) v ON v.season_id = s.id ORDER BY s.year",
    )
    assert seasons == [
        (2008, "2008-06-07", "2008-06-29", False, False, False, True),
        (2012, "2012-06-08", "2012-07-01", False, False, False, True),
        (2016, "2016-06-10", "2016-07-10", False, True, True, True),
        (2020, "2019-03-21", "2021-07-11", True, True, True, True),  # starts the year before
    ]
    assert metadata(result, "countries")["fetched"] == 3


@needs_reference
def test_the_recorded_brazil_search_is_stored_whole(football, database_url) -> None:
    body = json.loads(_text("leagues_search-Brazil__marcosavieira-tradetechnology.json"))
    configure(
        football,
        answers={
            "/countries": _text("countries_code-US__syurchen93-api-football-client.json"),
            "/leagues": _text("leagues_search-Brazil__marcosavieira-tradetechnology.json"),
        },
    )
    result = sync()
    assert result.success
    listed = sum(len(item["seasons"]) for item in body["response"])
    distinct = sum(len({s["year"] for s in item["seasons"]}) for item in body["response"])
    assert counts(database_url) == {
        "countries": 1 + len({i["country"]["name"] for i in body["response"]}),
        "leagues": len(body["response"]),
        "seasons": distinct,
        "season_coverage": distinct,
    }
    # The recording was trimmed: `results` says 51, the answer holds 29 leagues; all are kept.
    assert (body["results"], len(body["response"])) == (51, 29)
    assert metadata(result, "leagues")["fetched"] == 29
    meta = metadata(result, "seasons")
    assert (meta["fetched"], meta["invalid"]) == (listed, 0)
    assert query(database_url, "SELECT code FROM countries WHERE name = 'USA'") == [("US",)]
    assert query(database_url, "SELECT name, type FROM leagues WHERE id = 71") == [
        ("Serie A", "League")
    ]


ERROR_ANSWERS = {
    "error_countries_search-too-short__BorisGerretzen-CSharpApiFootball.json": (
        "search: The Search field must be at least 3 characters in length."
    ),
    "error_injuries_no-params__syurchen93-api-football-client.json": (
        "required: At least one parameter is required."
    ),
    "error_teams_league-with-search__syurchen93-api-football-client.json": (
        "league: The League field cannot be used with the Search field."
    ),
    "error_venues_country-with-search__syurchen93-api-football-client.json": (
        "country: The Country field cannot be used with the Search field."
    ),
}


@needs_reference
@pytest.mark.parametrize("name", sorted(ERROR_ANSWERS))
def test_recorded_error_answers_fail_the_run_and_write_nothing(
    football, database_url, name: str
) -> None:
    assert set(ERROR_ANSWERS) == {p.name for p in REFERENCE.glob("error_*.json")}
    configure(football, answers={"/countries": _text(name)})
    result = sync(raise_on_error=False)
    assert not result.success
    message = failure_message(result)
    assert f"/countries: API-Football answered errors: {ERROR_ANSWERS[name]}" in message
    assert len(football.recorded()) == 1  # a request error is not retried
    assert counts(database_url) == dict.fromkeys(counts(database_url), 0)
