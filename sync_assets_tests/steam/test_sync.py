"""The steam sync end to end: sandbox stores over loopback, embedded Postgres, real Dagster runs."""

from __future__ import annotations

from sync_assets.sandbox import steam as sandbox
from sync_assets_tests.steam.conftest import QUICK_STORE, configure, details_metadata, query, sync


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
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["synced_without_details"].value == 0


TABLE_DUMPS = {
    "apps": "SELECT appid, name, first_seen_at, removed_from_catalog_at FROM apps ORDER BY 1",
    "app_details": "SELECT * FROM app_details ORDER BY appid",
    "app_sync_status": "SELECT appid, consecutive_errors, last_error, next_attempt_after"
    " FROM app_sync_status ORDER BY appid",
}


def _dump(url: str) -> dict[str, list[tuple]]:
    return {table: query(url, sql) for table, sql in TABLE_DUMPS.items()}


def test_rerunning_converges(steam, database_url) -> None:
    config = {"batch_size": 100, "concurrency": 4}
    first = details_metadata(sync(config))
    before = _dump(database_url)
    second = details_metadata(sync(config))
    assert first["inserted"] == 55 and first["processed"] == second["processed"] == 60
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, 55)
    assert _dump(database_url) == before  # updated_at included: nothing was rewritten


def test_dry_run_writes_nothing_and_says_what_would_change(steam, database_url) -> None:
    dry_catalog = sync(details_asset=False, catalog_config={"dry_run": True})
    catalog = dry_catalog.asset_materializations_for_node("steam_app_catalog")[0].metadata
    assert catalog["new"].value == 60 and catalog["dry_run"].value is True
    assert query(database_url, "SELECT count(*) FROM apps") == [(0,)]

    sync(details_asset=False)
    meta = details_metadata(sync({"batch_size": 30, "dry_run": True}, catalog=False))
    assert meta["dry_run"] is True and meta["processed"] == 30
    assert meta["would_inserted"] == 30 - 2  # apps 70 and 200 are not available
    assert query(database_url, "SELECT count(*) FROM app_details") == [(0,)]
    assert query(database_url, "SELECT count(*) FROM app_sync_status") == [(0,)]
    # A dry run over existing data reports updates without making them.
    sync({"batch_size": 100})
    before = _dump(database_url)
    configure(steam, store=True, behaviours={"10": "unavailable", "20": "failing"})
    dry = details_metadata(
        sync({"batch_size": 100, "dry_run": True}, catalog=False, store=QUICK_STORE)
    )
    assert dry["skipped"] >= 6 and dry["failed"] == 1
    assert _dump(database_url) == before


def test_apps_leaving_the_catalog_are_kept_and_marked(steam, database_url) -> None:
    sync({"batch_size": 1})
    configure(steam, removed=[20, 30])
    result = sync({"batch_size": 100})
    catalog = {
        k: v.value
        for k, v in result.asset_materializations_for_node("steam_app_catalog")[0].metadata.items()
    }
    assert (catalog["removed_from_catalog"], catalog["apps_in_catalog"]) == (2, 58)
    assert query(
        database_url, "SELECT appid FROM apps WHERE removed_from_catalog_at IS NOT NULL"
    ) == [(20,), (30,)]
    assert details_metadata(result)["processed"] == 58  # removed apps are not fetched
    configure(steam, removed=[30])
    again = sync({"batch_size": 1}).asset_materializations_for_node("steam_app_catalog")
    assert again[0].metadata["returned_to_catalog"].value == 1
    assert query(database_url, "SELECT count(*) FROM apps") == [(60,)]


def test_a_broken_or_shrunken_app_list_changes_nothing(steam, database_url) -> None:
    sync(details_asset=False)
    before = _dump(database_url)
    steam.faults.add(path=sandbox.API_PREFIX, kind="malformed", count=1)
    broken = sync(details_asset=False, raise_on_error=False)
    assert not broken.success
    configure(steam, catalog_size=20)  # 40 of 60 known apps missing: an outage, not delistings
    shrunken = sync(details_asset=False, raise_on_error=False)
    assert not shrunken.success
    [failure] = [e for e in shrunken.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "nothing was written" in str(failure.event_specific_data.error)
    assert _dump(database_url) == before
