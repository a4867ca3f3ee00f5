"""Bulk upsert against the embedded PostgreSQL: counts, no-op re-runs, duplicates, rollback."""

from __future__ import annotations

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.upsert import upsert_frame, upsert_rows

DDL = """
CREATE TABLE IF NOT EXISTS items (
    id integer PRIMARY KEY,
    name text NOT NULL,
    price numeric,
    tags text[],
    updated_at timestamptz NOT NULL DEFAULT now()
);
"""


@pytest.fixture
def db(database_url: str) -> PostgresResource:
    resource = PostgresResource(schema_name="core_test")
    resource.apply_ddl(DDL)
    return resource


def table_rows(db: PostgresResource) -> list[tuple]:
    with db.connect() as conn:
        return conn.execute(
            "SELECT id, name, price, tags, updated_at FROM items ORDER BY id"
        ).fetchall()


def test_insert_then_rerun_writes_nothing(db: PostgresResource) -> None:
    rows = [(1, "a", 1.5, ["x"]), (2, "b", None, []), (3, "c", 3, None)]
    with db.transaction() as conn:
        first = upsert_rows(conn, "items", ["id", "name", "price", "tags"], rows, ["id"])
    assert (first.inserted, first.updated, first.unchanged) == (3, 0, 0)
    before = table_rows(db)

    with db.transaction() as conn:
        again = upsert_rows(conn, "items", ["id", "name", "price", "tags"], rows, ["id"])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 3)
    assert table_rows(db) == before  # updated_at untouched, nulls compared as equal


def test_changed_rows_are_updated_and_touched(db: PostgresResource) -> None:
    columns = ["id", "name", "price", "tags"]
    with db.transaction() as conn:
        upsert_rows(conn, "items", columns, [(1, "a", 1, None), (2, "b", 2, None)], ["id"])
    before = {r[0]: r for r in table_rows(db)}
    with db.transaction() as conn:
        counts = upsert_rows(
            conn,
            "items",
            columns,
            [(1, "a", 1, None), (2, "B", 2, None), (4, "d", 4, ["t"])],
            ["id"],
        )
    assert (counts.inserted, counts.updated, counts.unchanged) == (1, 1, 1)
    after = {r[0]: r for r in table_rows(db)}
    assert after[1] == before[1]
    assert after[2][1] == "B" and after[2][4] > before[2][4]
    assert after[4][3] == ["t"]


def test_duplicate_keys_last_one_wins(db: PostgresResource) -> None:
    with db.transaction() as conn:
        counts = upsert_rows(
            conn, "items", ["id", "name"], [(1, "first"), (1, "second"), (2, "x")], ["id"]
        )
    assert counts.inserted == 2 and counts.duplicates == 1
    assert [r[1] for r in table_rows(db)] == ["second", "x"]


def test_frame_upsert_handles_nan_as_null(db: PostgresResource) -> None:
    frame = pd.DataFrame({"id": [1, 2], "name": ["a", "b"], "price": [1.25, float("nan")]})
    with db.transaction() as conn:
        counts = upsert_frame(conn, "items", frame, ["id"])
    assert counts.inserted == 2
    assert [r[2] for r in table_rows(db)] == [pytest.approx(1.25), None]


def test_failed_transaction_leaves_previous_data(db: PostgresResource) -> None:
    with db.transaction() as conn:
        upsert_rows(conn, "items", ["id", "name"], [(1, "kept")], ["id"])
    with pytest.raises(psycopg.errors.NotNullViolation):
        with db.transaction() as conn:
            upsert_rows(conn, "items", ["id", "name"], [(1, "changed"), (2, None)], ["id"])
    assert [(r[0], r[1]) for r in table_rows(db)] == [(1, "kept")]


def test_streams_many_rows_in_batches(db: PostgresResource) -> None:
    rows = ((i, f"n{i}") for i in range(120_000))  # a generator: never a list in memory
    with db.transaction() as conn:
        counts = upsert_rows(conn, "items", ["id", "name"], rows, ["id"])
    assert counts.inserted == 120_000
    with db.connect() as conn:
        assert conn.execute("SELECT count(*), max(id) FROM items").fetchone() == (120_000, 119_999)


def test_missing_key_column_is_a_clear_error(db: PostgresResource) -> None:
    with db.transaction() as conn:
        with pytest.raises(ValueError, match="key columns"):
            upsert_rows(conn, "items", ["name"], [("a",)], ["id"])


def test_values_needing_server_parsing_fall_back_to_text_copy(db: PostgresResource) -> None:
    db.apply_ddl("CREATE TABLE IF NOT EXISTS dated (id int PRIMARY KEY, day date, amount numeric)")
    with db.transaction() as conn:
        counts = upsert_rows(
            conn,
            "dated",
            ["id", "day", "amount"],
            [(1, "2024-02-29", "1.50"), (2, None, 3)],
            ["id"],
        )
    assert counts.inserted == 2
    with db.connect() as conn:
        rows = conn.execute("SELECT id, day::text, amount::text FROM dated ORDER BY id").fetchall()
    assert rows == [(1, "2024-02-29", "1.50"), (2, None, "3")]


@pytest.mark.parametrize(
    ("column_type", "value"),
    [("smallint", 70_000), ("integer", 3_000_000_000), ("bigint", 2**63), ("real", 1e39)],
)
def test_a_value_too_big_for_its_column_fails_instead_of_wrapping(
    db: PostgresResource, column_type: str, value: float
) -> None:
    """psycopg's binary form would store 3,000,000,000 in an integer as -1,294,967,296."""
    db.apply_ddl(
        f"CREATE TABLE IF NOT EXISTS sized_{column_type} (id int PRIMARY KEY, v {column_type})"
    )
    with db.transaction() as conn:
        upsert_rows(conn, f"sized_{column_type}", ["id", "v"], [(1, 5)], ["id"])
    with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="out of range"):
        with db.transaction() as conn:
            upsert_rows(conn, f"sized_{column_type}", ["id", "v"], [(2, 6), (1, value)], ["id"])
    with db.connect() as conn:
        query = sql.SQL("SELECT id, v FROM {}").format(sql.Identifier(f"sized_{column_type}"))
        assert conn.execute(query).fetchall() == [(1, 5)]
