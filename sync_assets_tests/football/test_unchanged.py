"""A chunk of /leagues unchanged since the last sync is counted, not validated or written again;
one whose items changed at the provider, or whose rows changed in the tables since, is written."""

from __future__ import annotations

import json

import psycopg

from sync_assets.football.tables import TABLES
from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import (
    LEAGUES,
    configure,
    dump,
    metadata,
    query,
    sync,
)

CHUNKS = {"chunk_size": 20}  # the 120 leagues in six chunks
COVERAGE = (
    "SELECT s.league_id, s.year, c.fixtures_events, c.standings, c.odds FROM season_coverage c"
    " JOIN seasons s ON s.id = c.season_id ORDER BY 1, 2"
)


def change(url: str, statement: str, params: tuple = ()) -> None:
    """Change the tables by hand, as someone with a SQL console would."""
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO football")
        conn.execute(statement, params)


def whole_chunks(result) -> list[int]:
    """The chunks the sync recorded as skippable next time (nothing in them invalid)."""
    chunks = metadata(result, "leagues")["chunk_digests"]["chunks"]
    return [index for index, digests in enumerate(chunks) if digests]


def test_a_rerun_with_nothing_new_skips_every_chunk(football, database_url, pg_instance) -> None:
    first = sync(CHUNKS, instance=pg_instance)
    assert metadata(first, "leagues")["chunks_unchanged_skipped"] == 0
    whole = whole_chunks(first)
    # Duplicates (a league listing a season year twice) do not stop a chunk being skipped:
    # which one is kept does not change, and their count is reported again.
    assert whole == list(range(6))
    assert metadata(first, "seasons")["duplicates_dropped"] > 0
    before = dump(database_url)
    again = sync(CHUNKS, instance=pg_instance)
    assert metadata(again, "leagues")["chunks_unchanged_skipped"] == len(whole)
    # The answer is byte for byte the last one: not even parsed.
    assert metadata(again, "leagues")["answer_unchanged_not_parsed"] is True
    assert whole_chunks(again) == whole
    for table in TABLES:
        meta, earlier = metadata(again, table), metadata(first, table)
        counted = ("fetched", "invalid", "duplicates_dropped", "valid")
        assert [meta[k] for k in counted] == [earlier[k] for k in counted], table
        assert (meta["inserted"], meta["updated"]) == (0, 0), table
        assert meta["unchanged"] == meta["valid"] - meta["duplicates_dropped"], table
    assert dump(database_url) == before  # updated_at included


def test_rows_changed_by_hand_since_are_put_back(football, database_url, pg_instance) -> None:
    first = sync(CHUNKS, instance=pg_instance)
    whole = whole_chunks(first)
    expected = query(database_url, COVERAGE)
    # One coverage flag flipped in the first whole chunk, a coverage row deleted in another.
    edited = sandbox.league_id_at(whole[0] * 20)
    deleted = sandbox.league_id_at(whole[1] * 20 + 3)
    change(
        database_url,
        "UPDATE season_coverage SET odds = NOT odds WHERE season_id ="
        " (SELECT min(id) FROM seasons WHERE league_id = %s)",
        (edited,),
    )
    change(
        database_url,
        "DELETE FROM season_coverage WHERE season_id ="
        " (SELECT min(id) FROM seasons WHERE league_id = %s)",
        (deleted,),
    )
    again = sync(CHUNKS, instance=pg_instance)
    # The same answer, but two chunks' rows differ: it is parsed, and those two are written.
    assert metadata(again, "leagues")["answer_unchanged_not_parsed"] is False
    assert metadata(again, "leagues")["chunks_unchanged_skipped"] == len(whole) - 2
    coverage = metadata(again, "season_coverage")
    assert (coverage["inserted"], coverage["updated"]) == (1, 1)
    assert query(database_url, COVERAGE) == expected


def test_an_item_changed_at_the_provider_rewrites_its_chunk_only(
    football, database_url, pg_instance
) -> None:
    first = sync(CHUNKS, instance=pg_instance)
    whole = whole_chunks(first)
    countries = sandbox.countries()
    items = [sandbox.league_item(i, countries) for i in range(LEAGUES)]
    changed = items[whole[-1] * 20 + 7]
    changed["league"]["name"] += " (renamed)"
    changed["seasons"][0]["coverage"]["odds"] = not changed["seasons"][0]["coverage"]["odds"]
    configure(football, answers={"/leagues": json.dumps(sandbox.envelope("leagues", {}, items))})
    again = sync(CHUNKS, instance=pg_instance)
    assert metadata(again, "leagues")["chunks_unchanged_skipped"] == len(whole) - 1
    assert (
        metadata(again, "leagues")["updated"],
        metadata(again, "season_coverage")["updated"],
    ) == (
        1,
        1,
    )
    league = changed["league"]["id"]
    assert query(database_url, "SELECT name FROM leagues WHERE id = %s", (league,)) == [
        (changed["league"]["name"],)
    ]
    # The next sync reads the same answer again: now every whole chunk is skipped.
    third = sync(CHUNKS, instance=pg_instance)
    assert metadata(third, "leagues")["chunks_unchanged_skipped"] == len(whole)


def test_chunks_holding_invalid_items_are_validated_and_sampled_every_time(
    football, database_url, pg_instance
) -> None:
    configure(football, invalid_every=40)  # one broken item in every other chunk of 20
    first = sync(CHUNKS, instance=pg_instance)
    again = sync(CHUNKS, instance=pg_instance)
    for table in TABLES:
        meta, earlier = metadata(again, table), metadata(first, table)
        assert (meta["invalid"], meta["invalid_samples"]) == (
            earlier["invalid"],
            earlier["invalid_samples"],
        )
    assert sum(metadata(again, table)["invalid"] for table in TABLES) == 3
    broken = {i // 20 for i in range(39, LEAGUES, 40)}
    assert not broken & set(whole_chunks(again))


def test_another_chunk_size_or_emptied_tables_skip_nothing(
    football, database_url, pg_instance
) -> None:
    sync(CHUNKS, instance=pg_instance)
    other_size = sync({"chunk_size": 30}, instance=pg_instance)
    assert metadata(other_size, "leagues")["chunks_unchanged_skipped"] == 0
    assert metadata(sync(CHUNKS, instance=pg_instance), "leagues")["chunks_unchanged_skipped"] == 0
    # Emptied tables (another database, a restored backup): the recorded digests no longer
    # match what the tables hold, and every league is written again.
    change(database_url, "TRUNCATE season_coverage, seasons, leagues, countries")
    result = sync(CHUNKS, instance=pg_instance)
    leagues = metadata(result, "leagues")
    assert leagues["chunks_unchanged_skipped"] == 0
    assert leagues["inserted"] == leagues["valid"] - leagues["duplicates_dropped"] > 0
