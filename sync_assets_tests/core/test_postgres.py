"""The Postgres resource: URL resolution, per-domain schemas, idempotent DDL, advisory locks."""

from __future__ import annotations

import threading
import time

import dagster as dg
import pytest
from dagster import serialize_value

from sync_assets.core.postgres import LockBusyError, PostgresResource, database_url_for


def test_domain_override_beats_database_url(
    database_url: str, server_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("FOOTBALL_DATABASE_URL", server_url)
    assert database_url_for("FOOTBALL_DATABASE_URL") == server_url
    assert database_url_for("STATS_DATABASE_URL") == database_url


def test_schemas_keep_domains_apart(database_url: str) -> None:
    ddl = "CREATE TABLE IF NOT EXISTS seasons (id int PRIMARY KEY, label text);"
    football = PostgresResource(schema_name="football")
    stats = PostgresResource(schema_name="stats")
    for db in (football, stats, football):  # applying twice is a no-op
        db.apply_ddl(ddl)
    with football.transaction() as conn:
        conn.execute("INSERT INTO seasons VALUES (1, 'football')")
    with stats.connect() as conn:
        assert conn.execute("SELECT count(*) FROM seasons").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM football.seasons").fetchone() == (1,)


def test_advisory_lock_holds_off_a_second_holder(database_url: str) -> None:
    db = PostgresResource(schema_name="football")
    entered = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with db.advisory_lock("football_sync"):
            entered.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert entered.wait(10)
    started = time.monotonic()
    with pytest.raises(LockBusyError, match="football:football_sync.*held by another sync"):
        with db.advisory_lock("football_sync", wait_seconds=0.6):
            pass
    assert time.monotonic() - started >= 0.5
    release.set()
    holder.join()
    with db.advisory_lock("football_sync", wait_seconds=1):
        pass  # free again once the holder is done


def test_lock_waits_for_a_holder_that_finishes(database_url: str) -> None:
    db = PostgresResource(schema_name="stats")
    entered = threading.Event()

    def hold_briefly() -> None:
        with db.advisory_lock("refresh"):
            entered.set()
            time.sleep(0.5)

    holder = threading.Thread(target=hold_briefly)
    holder.start()
    assert entered.wait(10)
    with db.advisory_lock("refresh", wait_seconds=5):
        pass
    holder.join()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://sync:Pa%ssw0rdSecret@localhost/app",  # a raw % in the password
        "postgresql://sync:Pa ssw0rdSecret@localhost/app",  # a raw space
    ],
)
def test_an_unreadable_url_is_named_by_its_setting_and_never_shown(
    url: str, pg_instance, monkeypatch
) -> None:
    """libpq quotes the piece of a URL it cannot parse, which here is the password."""
    monkeypatch.setenv("STATS_DATABASE_URL", url)

    @dg.asset
    def touches_the_database(db: PostgresResource) -> None:
        db.apply_ddl("SELECT 1")

    db = PostgresResource(schema_name="stats", url_setting="STATS_DATABASE_URL")
    result = dg.materialize(
        [touches_the_database], resources={"db": db}, instance=pg_instance, raise_on_error=False
    )
    assert not result.success
    stored = [
        serialize_value(record.event_log_entry)
        for record in pg_instance.get_records_for_run(result.run_id).records
    ]
    assert any("STATS_DATABASE_URL is not a PostgreSQL connection URL" in s for s in stored)
    assert not any("ssw0rdSecret" in s for s in stored)
