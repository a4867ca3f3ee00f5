"""Statements sent ahead, against the embedded PostgreSQL: they run before being waited for,
results come back in order, and a failure surfaces at settle and leaves nothing behind."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import pq

from sync_assets.core.ahead import StatementsAhead
from sync_assets.core.postgres import PostgresResource, lock_key
from sync_assets_tests.processes import wait_for

DDL = "CREATE TABLE IF NOT EXISTS ahead_items (id integer PRIMARY KEY, name text NOT NULL)"


@pytest.fixture
def db(database_url: str) -> PostgresResource:
    resource = PostgresResource(schema_name="ahead_test")
    resource.apply_ddl(DDL)
    with resource.connect() as conn:
        conn.execute("TRUNCATE ahead_items")
        conn.commit()
    return resource


def names(db: PostgresResource) -> list[str]:
    with db.connect() as conn:
        return [row[0] for row in conn.execute("SELECT name FROM ahead_items ORDER BY id")]


def test_a_statement_sent_runs_before_anyone_waits_for_it(db: PostgresResource) -> None:
    key = lock_key("ahead_test")
    with db.transaction() as conn, StatementsAhead(conn) as ahead:
        ahead.send("SELECT pg_advisory_xact_lock(%(key)s)", {"key": key})
        backend = conn.info.backend_pid
        with db.connect(autocommit=True) as watcher:

            def lock_taken() -> bool:
                return bool(
                    watcher.execute(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                        " AND pid = %s AND granted",
                        (backend,),
                    ).fetchone()[0]  # type: ignore[index]
                )

            # Not settled yet: the server ran it on its own.
            wait_for(lock_taken, timeout=30, what="the advisory lock sent ahead", every=0.05)
        assert conn.pgconn.pipeline_status == pq.PipelineStatus.ON
        ahead.settle()
        assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF


def test_results_reach_their_callbacks_in_the_order_sent(db: PostgresResource) -> None:
    seen: list[tuple[str, object]] = []
    with db.transaction() as conn, StatementsAhead(conn) as ahead:
        for number in range(1, 4):
            ahead.send(
                "INSERT INTO ahead_items VALUES (%(id)s, %(name)s) RETURNING id",
                {"id": number, "name": f"item {number}"},
                lambda cursor: seen.append(("insert", cursor.fetchone()[0])),
            )
        ahead.send(
            "SELECT count(*) FROM ahead_items",
            then=lambda cursor: seen.append(("count", cursor.fetchone()[0])),
        )
        assert seen == []  # nothing waited for yet
        ahead.settle()
        assert seen == [("insert", 1), ("insert", 2), ("insert", 3), ("count", 3)]
        # Statements sent after a settle start a new pipeline.
        ahead.send("INSERT INTO ahead_items VALUES (4, 'item 4')")
    assert names(db) == ["item 1", "item 2", "item 3", "item 4"]


def test_a_failed_statement_raises_at_settle_and_the_rest_do_not_run(
    db: PostgresResource,
) -> None:
    seen: list[int] = []
    with pytest.raises(psycopg.errors.UniqueViolation):
        with db.transaction() as conn, StatementsAhead(conn) as ahead:
            ahead.send("INSERT INTO ahead_items VALUES (1, 'first')")
            ahead.send("INSERT INTO ahead_items VALUES (1, 'the same id')")
            ahead.send(
                "INSERT INTO ahead_items VALUES (2, 'after') RETURNING id",
                then=lambda cursor: seen.append(cursor.fetchone()[0]),
            )
            ahead.settle()
    assert seen == []
    assert names(db) == []  # the transaction rolled back


def test_an_error_in_the_block_leaves_the_connection_usable(db: PostgresResource) -> None:
    with db.connect() as conn:
        with pytest.raises(ValueError, match="the caller's own"):
            with StatementsAhead(conn) as ahead:
                ahead.send("INSERT INTO ahead_items VALUES (1, 'sent')")
                raise ValueError("the caller's own error")
        assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        conn.rollback()
        conn.execute("INSERT INTO ahead_items VALUES (2, 'after the error')")
        conn.commit()
    assert names(db) == ["after the error"]
