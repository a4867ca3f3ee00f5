"""Which apps a run takes, and how per-app errors are counted, backed off and reset."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from sync_assets.core.per_item import ItemResult
from sync_assets.core.postgres import PostgresResource
from sync_assets.steam import tables
from sync_assets_tests.steam.conftest import QUICK_STORE, configure, details_metadata, query, sync


@pytest.fixture
def steam_conn(database_url):
    db = PostgresResource(schema_name="steam", url_setting="STEAM_DATABASE_URL")
    tables.apply_schema(db)
    with db.connect(autocommit=True) as conn:
        yield conn


def _status(conn, appid, synced_days_ago=None, errors=0, next_in_days=None):
    now = dt.datetime.now(dt.UTC)
    conn.execute(
        "INSERT INTO app_sync_status (appid, last_synced_at, consecutive_errors,"
        " last_error_at, next_attempt_after) VALUES (%s, %s, %s, %s, %s)",
        (
            appid,
            None if synced_days_ago is None else now - dt.timedelta(days=synced_days_ago),
            errors,
            now if errors else None,
            None if next_in_days is None else now + dt.timedelta(days=next_in_days),
        ),
    )


def test_never_synced_first_then_oldest_and_backed_off_apps_wait(steam_conn) -> None:
    conn = steam_conn
    conn.execute("INSERT INTO apps (appid, name) SELECT g, 'x' FROM generate_series(1, 9) g")
    conn.execute("UPDATE apps SET removed_from_catalog_at = now() WHERE appid = 9")
    _status(conn, 1, synced_days_ago=1)
    _status(conn, 2, synced_days_ago=30)
    _status(conn, 3, synced_days_ago=5)
    _status(conn, 4, errors=2)  # never synced, failing but under the limit
    _status(conn, 5, errors=5, next_in_days=3)  # backing off
    _status(conn, 6, synced_days_ago=2, errors=6, next_in_days=-1)  # backoff over
    # 7 and 8 have no status at all: never synced
    assert tables.select_batch(conn, 100, max_errors=5) == [7, 8, 4, 2, 3, 6, 1]
    assert tables.select_batch(conn, 3, max_errors=5) == [7, 8, 4]
    # Raising the limit lets the backed-off app through again.
    assert 5 in tables.select_batch(conn, 100, max_errors=10)


def test_backoff_doubles_per_error_past_the_limit(steam_conn) -> None:
    conn = steam_conn
    assert tables.backoff_after(4, 5) is None
    assert [tables.backoff_after(n, 5).days for n in (5, 6, 7, 20)] == [1, 2, 4, 64]
    waits = []
    for _ in range(7):
        with conn.transaction():
            tables.record_chunk(conn, [ItemResult.failed(42, "HTTP 500 after retries")], 5)
        errors, next_at = conn.execute(
            "SELECT consecutive_errors, next_attempt_after - last_error_at"
            " FROM app_sync_status WHERE appid = 42"
        ).fetchone()
        waits.append((errors, next_at and round(next_at.total_seconds() / 86400)))
    assert waits == [(1, None), (2, None), (3, None), (4, None), (5, 1), (6, 2), (7, 4)]
    with conn.transaction():
        tables.record_chunk(conn, [ItemResult.skipped(42, "not available (success: false)")], 5)
    assert conn.execute(
        "SELECT consecutive_errors, next_attempt_after, last_error, last_synced_at IS NOT NULL"
        " FROM app_sync_status WHERE appid = 42"
    ).fetchone() == (0, None, "skipped: not available (success: false)", True)


def test_errors_are_counted_backed_off_and_reset_by_a_success(steam, database_url) -> None:
    configure(steam, catalog_size=5)
    configure(steam, store=True, behaviours={"30": "failing", "40": "malformed"})
    cfg = {"batch_size": 10, "max_consecutive_errors": 2, "concurrency": 2}

    first = details_metadata(sync(cfg, store=QUICK_STORE))
    assert (first["failed"], first["processed"]) == (2, 5)
    second = details_metadata(sync(cfg, store=QUICK_STORE))
    assert second["failed"] == 2
    rows = dict(
        (r[0], r[1:])
        for r in query(
            database_url,
            "SELECT appid, consecutive_errors, last_error, next_attempt_after > now()"
            " FROM app_sync_status WHERE consecutive_errors > 0",
        )
    )
    assert rows[30][0] == 2 and "HTTP 500" in rows[30][1] and rows[30][2] is True
    assert rows[40][0] == 2 and "not JSON" in rows[40][1]
    for _, error, _ in rows.values():  # no URL, host or query string in stored errors
        assert "://" not in error and "127.0.0.1" not in error and "appids" not in error

    third = details_metadata(sync(cfg, store=QUICK_STORE))
    assert third["processed"] == 3 and third["failed"] == 0  # 30 and 40 wait out a backoff

    configure(steam, store=True, behaviours={"30": "ok", "40": "ok"})
    with psycopg.connect(database_url) as conn:  # a day and more goes by
        conn.execute("UPDATE steam.app_sync_status SET next_attempt_after = now() - '1s'::interval")
    fourth = details_metadata(sync(cfg, store=QUICK_STORE))
    assert fourth["failed"] == 0
    assert query(
        database_url,
        "SELECT appid, consecutive_errors, last_error, next_attempt_after FROM app_sync_status"
        " WHERE appid IN (30, 40) ORDER BY appid",
    ) == [(30, 0, None, None), (40, 0, None, None)]
    assert query(database_url, "SELECT count(*) FROM app_details WHERE appid IN (30, 40)") == [(2,)]


def test_a_timeout_is_retried_then_counted_as_failed(steam, database_url) -> None:
    from sync_assets.steam.client import SteamStoreResource

    configure(steam, catalog_size=4)
    configure(steam, store=True, behaviours={"20": "slow"}, slow_seconds=1.5)
    store = SteamStoreResource(max_retries=1, backoff_factor=0.01, read_timeout=0.3)
    meta = details_metadata(sync({"batch_size": 10}, store=store))
    assert meta["failed"] == 1 and meta["succeeded"] == 3 and meta["retries"] >= 1
    [(error,)] = query(database_url, "SELECT last_error FROM app_sync_status WHERE appid = 20")
    assert "Timeout" in error and "127.0.0.1" not in error and "://" not in error
