"""The steam sync end to end: sandbox stores over loopback, embedded Postgres, real Dagster runs."""

from __future__ import annotations

from sync_assets.sandbox import steam as sandbox
from sync_assets_tests.steam.conftest import details_metadata, query, sync


def test_catalog_and_a_batch_of_details(steam, database_url) -> None:
    result = sync({"batch_size": 40, "concurrency": 4})
    assert result.success
    apps = query(database_url, "SELECT count(*), count(*) FILTER (WHERE name = '') FROM apps")
    assert apps == [(60, 1)]  # one nameless app, as the real list has
    meta = details_metadata(result)
    unavailable = sum(1 for i in range(40) if i % sandbox.UNAVAILABLE_EVERY == 6)
    assert meta["processed"] == 40 and meta["skipped"] == unavailable
    assert meta["succeeded"] == 40 - unavailable and meta["failed"] == 0
    assert meta["inserted"] == 40 - unavailable
    free, priced = query(
        database_url,
        "SELECT appid, is_free, price_initial_cents, price_final_cents, currency, genres,"
        " required_age FROM app_details WHERE appid IN (50, 230) ORDER BY appid",
    )
    assert free == (50, True, 0, 0, None, ["Action", "Strategy", "RPG"], 0)
    # required_age arrives as the string "18"; genre ids as strings
    assert priced == (230, False, 5999, 5999, "CAD", ["Action", "Strategy", "RPG"], 18)
    status = query(
        database_url,
        "SELECT count(*) FILTER (WHERE last_synced_at IS NOT NULL),"
        " count(*) FILTER (WHERE last_error LIKE 'skipped: not available%') FROM app_sync_status",
    )
    assert status == [(40, unavailable)]
