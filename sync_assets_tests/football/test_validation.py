"""Items that break the schema: dropped, counted and sampled below the threshold; above it the
run fails and the transaction that already held some of the new rows is rolled back."""

from __future__ import annotations

from sync_assets_tests.football.conftest import (
    LEAGUES,
    configure,
    counts,
    dump,
    failure_message,
    metadata,
    query,
    sync,
)


def test_a_few_broken_items_are_dropped_counted_and_sampled(football, database_url) -> None:
    # Every 20th item is broken, each a different way: 6 of 120 items.
    configure(football, invalid_every=20)
    result = sync()
    assert result.success
    leagues, seasons, coverage = (
        metadata(result, t) for t in ("leagues", "seasons", "season_coverage")
    )
    # league id "n/a", name null, type "Tournament": three leagues (2.5%) and their seasons
    assert (leagues["fetched"], leagues["invalid"], leagues["valid"]) == (LEAGUES, 3, LEAGUES - 3)
    assert counts(database_url)["leagues"] == LEAGUES - 3
    samples = leagues["invalid_samples"]
    assert {(s["column"], s["value"]) for s in samples} >= {
        ("id", "n/a"),
        ("type", "Tournament"),
    }
    assert any(s["column"] == "name" for s in samples)
    # a season with a null year, one with the date "31/12/2020"; a null coverage object
    assert seasons["invalid"] == 2
    assert {s["column"] for s in seasons["invalid_samples"]} == {"year", "start"}
    assert "31/12/2020" in {s["value"] for s in seasons["invalid_samples"]}
    assert coverage["invalid"] == 1
    assert coverage["invalid_samples"][0]["value"] == "None"
    # The broken league items (ids 20, 40, 102: positions 19, 39, 99) were not written.
    assert query(database_url, "SELECT count(*) FROM leagues WHERE id IN (20, 40, 102)") == [(0,)]
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_too_many_broken_items_fail_the_run_and_write_nothing(football, database_url) -> None:
    sync()
    before = dump(database_url)
    # 30 more leagues and every 10th item broken: 10% of leagues is above the 5% threshold.
    configure(football, leagues=LEAGUES + 30, invalid_every=10)
    result = sync({"chunk_size": 25}, raise_on_error=False)  # 5 chunks in before it fails
    assert not result.success
    message = failure_message(result)
    # It stopped at the chunk that crossed the threshold, after writing five chunks.
    assert "leagues: 8 of 150 items invalid already" in message
    assert "nothing was written" in message
    assert dump(database_url) == before  # the chunks written before the failure rolled back


def test_the_threshold_is_run_config(football, database_url) -> None:
    configure(football, invalid_every=8)  # 8 of 120 leagues broken: 6.7%
    assert not sync(raise_on_error=False).success
    assert counts(database_url) == dict.fromkeys(counts(database_url), 0)
    result = sync({"invalid_threshold": 0.2})
    assert metadata(result, "leagues")["invalid"] == 8
    assert counts(database_url)["leagues"] == LEAGUES - 8
