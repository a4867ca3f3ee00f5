"""replace_rows against the embedded PostgreSQL: the bulk fill of an empty table (indexes set
aside and rebuilt, or kept when they cannot go), arrays and json, and writing only what differs."""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import psycopg2
import psycopg2.errors
import pytest

from sync_assets.core import pg_bulk
from sync_assets.core.analytics import duckdb_connection, literal
from sync_assets.core.pg_bulk import bulk_connection
from sync_assets.core.table_sync import RowChanges, replace_rows, row_digest_sql

DDL = """
CREATE SCHEMA sync_test;
CREATE TABLE sync_test.scores (
    id integer PRIMARY KEY,
    code text NOT NULL UNIQUE,
    team text[],
    detail jsonb NOT NULL,
    points integer NOT NULL
);
CREATE INDEX scores_points ON sync_test.scores (points DESC) WHERE points > 0;
"""
COLUMNS = ("id", "code", "team", "detail", "points")
# Names that the array literal must quote: quotes, a backslash, a newline, braces, commas.
AWKWARD = ['Ann "the boot"', "C:\\club", "two\nlines", "{x}", "a,b", "García"]


@pytest.fixture
def pg_url(database_url: str) -> str:
    with psycopg.connect(database_url) as conn:
        conn.execute(DDL)
    return database_url


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    with closing(duckdb_connection("256MB", threads=1)) as con:
        yield con


def new_rows(duck: duckdb.DuckDBPyConnection, count: int, bump: int = 0) -> str:
    """A DuckDB table of `count` rows; `bump` changes the points of every tenth row."""
    duck.execute(
        f"""CREATE OR REPLACE TABLE new_scores AS SELECT
              i::INTEGER AS id, 'code-' || i AS code,
              CASE WHEN i % 7 = 0 THEN NULL
                   WHEN i % 7 = 1 THEN [{", ".join(literal(n) for n in AWKWARD)}, NULL]
                   ELSE ['p' || i, 'q' || i] END AS team,
              {{'goals': i % 5, 'by': 'p' || i}} AS detail,
              (i % 11 + CASE WHEN i % 10 = 0 THEN {bump} ELSE 0 END)::INTEGER AS points
            FROM range({count}) r(i)"""  # noqa: S608
    )
    return "new_scores"


def replace(url: str, duck: duckdb.DuckDBPyConnection, new: str, **options: Any) -> RowChanges:
    with closing(bulk_connection(url, "sync_test")) as pg, tempfile.TemporaryDirectory() as tmp:
        try:
            with pg.cursor() as cur:
                changes = replace_rows(
                    cur, duck, "scores", new, COLUMNS, ("id",), Path(tmp), **options
                )
            pg.commit()
        except BaseException:
            pg.rollback()
            raise
    return changes


def indexes(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'sync_test'"
            " ORDER BY indexname"
        ).fetchall()


def index_ids(url: str) -> set[int]:
    """The indexes' object ids: new ones after a rebuild, the same when they were kept."""
    with psycopg.connect(url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "SELECT indexrelid::oid::int FROM pg_index"
                " WHERE indrelid = 'sync_test.scores'::regclass"
            )
        }


def table(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, code, team, detail, points FROM sync_test.scores ORDER BY id"
        ).fetchall()


def expected(count: int, bump: int = 0) -> list[tuple]:
    rows = []
    for i in range(count):
        team = None if i % 7 == 0 else [*AWKWARD, None] if i % 7 == 1 else [f"p{i}", f"q{i}"]
        points = i % 11 + (bump if i % 10 == 0 else 0)
        rows.append((i, f"code-{i}", team, {"goals": i % 5, "by": f"p{i}"}, points))
    return rows


def test_a_bulk_fill_rebuilds_every_index_and_keeps_awkward_arrays(pg_url, duck) -> None:
    before, ids = indexes(pg_url), index_ids(pg_url)
    changes = replace(pg_url, duck, new_rows(duck, 3000), bulk_fill_rows=1000)
    assert changes == RowChanges(rows=3000, added=3000, removed=0)
    assert table(pg_url) == expected(3000)
    assert indexes(pg_url) == before  # same names, same definitions (partial, descending)
    assert not index_ids(pg_url) & ids  # all three were dropped and built again
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("INSERT INTO sync_test.scores VALUES (1, 'x', NULL, '{}', 0)")


def test_a_rerun_writes_only_the_rows_that_changed(pg_url, duck) -> None:
    replace(pg_url, duck, new_rows(duck, 3000), bulk_fill_rows=1000)
    assert replace(pg_url, duck, new_rows(duck, 3000)) == RowChanges(3000, 0, 0)
    changes = replace(pg_url, duck, new_rows(duck, 2990, bump=100))
    # every tenth row changed (299), and the last ten went
    assert changes == RowChanges(rows=2990, added=299, removed=309)
    assert table(pg_url) == expected(2990, bump=100)


def test_a_fill_that_fails_leaves_the_table_empty_and_indexed(pg_url, duck) -> None:
    before = indexes(pg_url)
    new_rows(duck, 3000)
    duck.execute("UPDATE new_scores SET code = 'same' WHERE id < 5")
    with pytest.raises(psycopg2.errors.UniqueViolation):
        replace(pg_url, duck, "new_scores", bulk_fill_rows=1000)
    assert table(pg_url) == []
    assert indexes(pg_url) == before


def test_a_reader_in_the_way_keeps_the_indexes_in_place(pg_url, duck, monkeypatch) -> None:
    monkeypatch.setattr(pg_bulk, "INDEX_LOCK_WAIT", "200ms")
    before, ids = indexes(pg_url), index_ids(pg_url)
    with psycopg.connect(pg_url) as reader:
        reader.execute("SELECT count(*) FROM sync_test.scores")  # holds ACCESS SHARE
        changes = replace(pg_url, duck, new_rows(duck, 3000), bulk_fill_rows=1000)
        assert reader.execute("SELECT count(*) FROM sync_test.scores").fetchone() == (3000,)
    assert changes.added == 3000
    assert table(pg_url) == expected(3000)
    assert (indexes(pg_url), index_ids(pg_url)) == (before, ids)


def test_a_key_that_another_table_references_is_kept(pg_url, duck) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE sync_test.notes (score_id integer REFERENCES sync_test.scores (id))"
        )
    before, ids = indexes(pg_url), index_ids(pg_url)
    replace(pg_url, duck, new_rows(duck, 3000), bulk_fill_rows=1000)
    assert table(pg_url) == expected(3000)
    assert (indexes(pg_url), index_ids(pg_url)) == (before, ids)
    with psycopg.connect(pg_url) as conn, pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute("INSERT INTO sync_test.notes VALUES (99999)")


def test_readers_see_the_old_rows_or_the_new_during_a_bulk_fill(pg_url, duck) -> None:
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            while not stop.is_set():
                seen.add(conn.execute("SELECT count(*) FROM sync_test.scores").fetchone()[0])

    reader = threading.Thread(target=read)
    reader.start()
    try:
        replace(pg_url, duck, new_rows(duck, 20000), bulk_fill_rows=1000)
    finally:
        stop.set()
        reader.join()
    assert seen <= {0, 20000}


def test_rows_with_a_digest_are_compared_by_it_and_converge(pg_url, duck) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute("ALTER TABLE sync_test.scores ADD COLUMN row_digest uuid")
    first = replace(pg_url, duck, new_rows(duck, 3000), digest="row_digest", bulk_fill_rows=1000)
    assert first == RowChanges(3000, 3000, 0)
    assert table(pg_url) == expected(3000)
    digests = dict(
        duck.execute(
            f"SELECT id, {row_digest_sql(COLUMNS)} FROM new_scores"  # noqa: S608
        ).fetchall()
    )
    with psycopg.connect(pg_url) as conn:
        stored = dict(conn.execute("SELECT id, row_digest FROM sync_test.scores").fetchall())
    assert stored == digests and len(set(stored.values())) == 3000
    assert replace(pg_url, duck, new_rows(duck, 3000), digest="row_digest") == RowChanges(
        3000, 0, 0
    )
    # A row without a digest yet (a column just added) is rewritten once, then left alone.
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE sync_test.scores SET row_digest = NULL WHERE id < 3")
    changes = replace(pg_url, duck, new_rows(duck, 2990, bump=100), digest="row_digest")
    assert changes == RowChanges(rows=2990, added=299 + 2, removed=309 + 2)
    assert table(pg_url) == expected(2990, bump=100)
    assert replace(pg_url, duck, new_rows(duck, 2990, bump=100), digest="row_digest") == (
        RowChanges(2990, 0, 0)
    )


def test_a_digest_needs_a_key(pg_url, duck) -> None:
    new_rows(duck, 10)
    with closing(bulk_connection(pg_url, "sync_test")) as pg, pg.cursor() as cur:
        with pytest.raises(ValueError, match="needs a key"):
            replace_rows(cur, duck, "scores", "new_scores", COLUMNS, (), Path("."), digest="d")


PLAIN_COLUMNS = ("kind", "season_id", "player_id", "value")
Row = tuple[str | None, int | None, int | None, int | None]


@pytest.fixture
def plain_url(pg_url: str) -> str:
    """The database with a table without a key (like the honour roll), equal rows allowed."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "CREATE TABLE sync_test.honours (kind text, season_id integer, player_id integer,"
            " value integer CHECK (value < 1000))"
        )
    return pg_url


def replace_plain(url: str, duck: duckdb.DuckDBPyConnection, rows: list[Row]) -> RowChanges:
    """Bring sync_test.honours to `rows` by whole rows (no key), in one transaction."""
    duck.execute(
        "CREATE OR REPLACE TABLE new_honours"
        " (kind VARCHAR, season_id INTEGER, player_id INTEGER, value INTEGER)"
    )
    if rows:
        duck.executemany("INSERT INTO new_honours VALUES (?, ?, ?, ?)", rows)
    with closing(bulk_connection(url, "sync_test")) as pg, tempfile.TemporaryDirectory() as tmp:
        try:
            with pg.cursor() as cur:
                changes = replace_rows(
                    cur, duck, "honours", "new_honours", PLAIN_COLUMNS, (), Path(tmp)
                )
            pg.commit()
        except BaseException:
            pg.rollback()
            raise
    return changes


def honours(url: str) -> Counter[Row]:
    """The table's rows as a multiset."""
    with psycopg.connect(url) as conn:
        return Counter(
            conn.execute("SELECT kind, season_id, player_id, value FROM sync_test.honours")
        )


def row_versions(url: str) -> Counter[tuple[str, str]]:
    """Each row version's place and writing transaction: unchanged when a row was not written."""
    with psycopg.connect(url) as conn:
        return Counter(conn.execute("SELECT ctid::text, xmin::text FROM sync_test.honours"))


def test_without_a_key_only_the_surplus_copy_of_equal_rows_goes(plain_url, duck) -> None:
    old: list[Row] = [("x", 1, None, 1), ("x", 1, None, 1), ("y", 2, 3, 2)]
    assert replace_plain(plain_url, duck, old) == RowChanges(3, 3, 0)
    before = row_versions(plain_url)
    changes = replace_plain(plain_url, duck, [("x", 1, None, 1), ("y", 2, 3, 2)])
    assert changes == RowChanges(rows=2, added=0, removed=1)
    assert honours(plain_url) == Counter([("x", 1, None, 1), ("y", 2, 3, 2)])
    after = row_versions(plain_url)
    assert after < before  # the two rows left are the rows as they were, not written again


def test_without_a_key_copies_of_a_row_grow_and_shrink(plain_url, duck) -> None:
    other = ("champion", 1, 7, 30)
    replace_plain(plain_url, duck, [("x", 1, 2, 3), other])
    before = row_versions(plain_url)
    changes = replace_plain(plain_url, duck, [("x", 1, 2, 3)] * 3 + [other])
    assert changes == RowChanges(rows=4, added=2, removed=0)
    assert honours(plain_url) == Counter({("x", 1, 2, 3): 3, other: 1})
    grown = row_versions(plain_url)
    assert before < grown
    changes = replace_plain(plain_url, duck, [("x", 1, 2, 3), other])
    assert changes == RowChanges(rows=2, added=0, removed=2)
    assert honours(plain_url) == Counter({("x", 1, 2, 3): 1, other: 1})
    assert row_versions(plain_url) < grown


def test_without_a_key_rows_with_nulls_are_copies_of_each_other(plain_url, duck) -> None:
    blank: Row = (None, None, None, None)
    record: Row = ("longest_win_streak", None, 4, None)
    near: Row = ("longest_win_streak", None, 4, 0)  # differs from `record` only by a null
    replace_plain(plain_url, duck, [blank, record, record, near])
    changes = replace_plain(plain_url, duck, [blank, blank, blank, record, near])
    assert changes == RowChanges(rows=5, added=2, removed=1)
    assert honours(plain_url) == Counter({blank: 3, record: 1, near: 1})
    changes = replace_plain(plain_url, duck, [blank, record, record, record])
    assert changes == RowChanges(rows=4, added=2, removed=3)
    assert honours(plain_url) == Counter({blank: 1, record: 3})


def test_without_a_key_a_rerun_with_the_same_rows_writes_nothing(plain_url, duck) -> None:
    rows: list[Row] = [
        ("champion", 1, 7, 30),
        ("champion", 1, 7, 30),
        ("biggest_win", None, None, 5),
        ("biggest_win", None, None, 5),
        ("biggest_win", None, None, 5),
        (None, None, None, None),
    ]
    assert replace_plain(plain_url, duck, rows) == RowChanges(6, 6, 0)
    before = row_versions(plain_url)
    assert replace_plain(plain_url, duck, rows[::-1]) == RowChanges(6, 0, 0)
    assert row_versions(plain_url) == before
    assert honours(plain_url) == Counter(rows)


def test_without_a_key_copies_change_along_with_ordinary_rows(plain_url, duck) -> None:
    old: list[Row] = [
        ("champion", 1, 7, 30),  # stays
        ("champion", 2, 8, 25),  # changes value
        ("top_scorer", 1, 9, 12),  # goes
        ("top_scorer", 2, 9, 10),  # three copies, two stay
        ("top_scorer", 2, 9, 10),
        ("top_scorer", 2, 9, 10),
        ("biggest_win", None, None, 5),  # one copy, three then
    ]
    new: list[Row] = [
        ("champion", 1, 7, 30),
        ("champion", 2, 8, 26),
        ("top_scorer", 2, 9, 10),
        ("top_scorer", 2, 9, 10),
        ("biggest_win", None, None, 5),
        ("biggest_win", None, None, 5),
        ("biggest_win", None, None, 5),
        ("most_goals_in_match", None, 3, 4),  # comes
    ]
    replace_plain(plain_url, duck, old)
    changes = replace_plain(plain_url, duck, new)
    assert changes == RowChanges(rows=8, added=4, removed=3)
    assert honours(plain_url) == Counter(new)
    assert replace_plain(plain_url, duck, new) == RowChanges(8, 0, 0)
    assert replace_plain(plain_url, duck, []) == RowChanges(0, 0, 8)
    assert honours(plain_url) == Counter()


def test_without_a_key_a_failed_replace_keeps_the_previous_rows(plain_url, duck) -> None:
    old: list[Row] = [("x", 1, None, 1), ("x", 1, None, 1), ("y", 2, 3, 2)]
    replace_plain(plain_url, duck, old)
    before = row_versions(plain_url)
    # The copy is deleted first; the insert then breaks the CHECK and all is rolled back.
    with pytest.raises(psycopg2.errors.CheckViolation):
        replace_plain(plain_url, duck, [("x", 1, None, 1), ("y", 2, 3, 2), ("z", 0, 0, 1000)])
    assert honours(plain_url) == Counter(old)
    assert row_versions(plain_url) == before
