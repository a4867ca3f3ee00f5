"""The store's throttle: 429s are survived within our own limit; a 403 ends the batch cleanly."""

from __future__ import annotations

from sync_assets.sandbox import steam as sandbox
from sync_assets.steam.client import SteamStoreResource
from sync_assets_tests.steam.conftest import QUICK_STORE, configure, details_metadata, query, sync


def _peak_per_window(times: list[float], window: float) -> int:
    times = sorted(times)
    peak, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= window:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def test_a_429_storm_is_survived_within_the_limit(steam, database_url) -> None:
    configure(steam, catalog_size=40)
    configure(steam, store=True, rate_limit={"requests": 10, "seconds": 1.0, "block_after": 10_000})
    store = SteamStoreResource(max_retries=8, backoff_factor=0.05, retry_after_cap=1.0)
    config = {"batch_size": 40, "concurrency": 8, "rate_limit_requests": 15}
    config["rate_limit_period_seconds"] = 1.0
    meta = details_metadata(sync(config, store=store))

    answers = steam.recorded(sandbox.STORE_PREFIX)
    throttled = [r for r in answers if r["status"] == 429]
    assert throttled, "the store never throttled: the test would prove nothing"
    assert not [r for r in answers if r["status"] == 403]
    assert (meta["processed"], meta["failed"], meta["stopped_early"]) == (40, 0, False)
    assert meta["retries"] == len(throttled) and meta["requests"] == len(answers)
    # Every attempt, retries included, waited for our token bucket (15/s, a burst of 2).
    assert _peak_per_window([r["at"] for r in answers], 1.0) <= 15 + 2
    assert meta["requests_per_second"] <= 15.5
    assert query(
        database_url, "SELECT count(*) FROM app_sync_status WHERE last_synced_at IS NOT NULL"
    ) == [(40,)]


def test_a_403_block_ends_the_batch_cleanly_and_keeps_progress(steam, database_url) -> None:
    configure(steam, catalog_size=60)
    configure(
        steam,
        store=True,
        rate_limit={"requests": 15, "seconds": 60, "block_after": 3, "block_seconds": 60},
    )
    config = {"batch_size": 60, "concurrency": 4, "chunk_size": 5}
    result = sync(config, store=QUICK_STORE)
    assert result.success
    meta = details_metadata(result)
    assert meta["stopped_early"] is True and "403" in meta["stop_reason"]
    assert 10 <= meta["processed"] < 60 and meta["failed"] == 0
    assert meta["committed"] == meta["processed"]
    assert [r["status"] for r in steam.recorded(sandbox.STORE_PREFIX)].count(403) >= 1
    first = dict(query(database_url, "SELECT appid, last_synced_at FROM app_sync_status"))
    assert len(first) == meta["processed"]
    assert all(first.values())
    assert query(database_url, "SELECT count(*) FROM app_details") == [(meta["succeeded"],)]

    # The block lifts; the next run takes exactly the apps the stopped run did not reach.
    configure(steam, store=True, rate_limit=None)
    remaining = 60 - len(first)
    second = details_metadata(sync({**config, "batch_size": remaining}, store=QUICK_STORE))
    assert second["processed"] == remaining and not second["stopped_early"]
    after = dict(query(database_url, "SELECT appid, last_synced_at FROM app_sync_status"))
    assert len(after) == 60
    assert all(after[appid] == synced for appid, synced in first.items())
