"""Numbers beyond int64 or a double: valid JSON, parsed exactly, and the rows holding them dropped
as invalid (the tables' ids are bigint) instead of the body being called broken."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sync_assets.football.client import page_total
from sync_assets.football.schemas import BIGINT_MAX, is_id
from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import LEAGUES, configure, counts, metadata, query, sync

LEAGUES_PATH = sandbox.PREFIX + "/leagues"
HUGE = 10**19  # beyond int64, and beyond bigint


def _leagues_answer() -> str:
    """The stand-in's leagues with a league id of 10**19, one of -10**19 and a year of 1e400."""
    country_list = sandbox.countries()
    items = [sandbox.league_item(i, country_list) for i in range(LEAGUES)]
    items[5]["league"]["id"] = HUGE
    items[9]["league"]["id"] = -HUGE
    items[11]["seasons"][0]["year"] = "<1e400>"
    text = json.dumps(sandbox.envelope("leagues", {}, items))
    return text.replace('"<1e400>"', "1e400")  # json.dumps cannot write it


def test_numbers_beyond_int64_drop_their_rows_and_keep_the_rest(football, database_url) -> None:
    configure(football, answers={"/leagues": _leagues_answer()})
    result = sync()
    assert result.success
    assert len(football.recorded(LEAGUES_PATH)) == 1  # read once, not refetched as broken
    leagues, seasons = metadata(result, "leagues"), metadata(result, "seasons")
    assert (leagues["fetched"], leagues["invalid"]) == (LEAGUES, 2)
    assert {(s["column"], s["value"]) for s in leagues["invalid_samples"]} == {
        ("id", str(HUGE)),
        ("id", str(-HUGE)),
    }
    assert seasons["invalid"] == 1
    assert [(s["column"], s["value"]) for s in seasons["invalid_samples"]] == [("year", "1E+400")]
    assert leagues["retries"] == 0
    assert counts(database_url)["leagues"] == LEAGUES - 2
    league = sandbox.league_id_at(11)
    listed = len(sandbox.league_item(11, sandbox.countries())["seasons"])
    stored = query(database_url, "SELECT count(*) FROM seasons WHERE league_id = %s", (league,))
    assert stored == [(listed - 1,)]  # the league stays; only its 1e400 season is dropped


def test_bigint_bounds_of_an_id() -> None:
    assert is_id(1) and is_id(BIGINT_MAX)
    assert not any(is_id(v) for v in (0, -1, BIGINT_MAX + 1, HUGE, True, 1.0, Decimal(5), "5"))


@pytest.mark.parametrize(
    ("value", "pages"),
    [
        (3, 3),
        (2.0, 2),
        (Decimal("4"), 4),
        (10**400, 10**400),
        (float("inf"), None),
        (Decimal("1E+400"), None),
        (True, None),
        ("3", None),
        (None, None),
    ],
)
def test_page_total_reads_any_number(value, pages) -> None:
    assert page_total(value) == pages
