"""Bulk COPY between PostgreSQL and files, for moving whole tables in and out of DuckDB.

psycopg2 runs a COPY's row loop in C; psycopg 3 hands each row to Python, which is about three
times slower for a million small rows. So bulk COPY uses a psycopg2 connection of its own, and
everything else keeps psycopg 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import psycopg2.errors
import psycopg2.extensions
from psycopg2 import sql

from sync_assets.core.analytics import literal

CHUNK = 1 << 20
# How long a bulk fill waits for readers to leave before it keeps the indexes instead.
INDEX_LOCK_WAIT = "2s"
# The text forms COPY writes must not depend on the server's or the role's settings.
SESSION = (
    "SET DateStyle = ISO, YMD",
    "SET IntervalStyle = postgres",
    "SET extra_float_digits = 1",  # the shortest text that reads back as the same double
    "SET client_encoding = 'UTF8'",
)


def bulk_connection(url: str, schema: str) -> psycopg2.extensions.connection:
    """A psycopg2 connection for COPY (search_path: `schema`, then public); the caller closes
    it (`contextlib.closing`)."""
    conn = psycopg2.connect(url, connect_timeout=15)
    try:
        with conn.cursor() as cur:
            for statement in SESSION:
                cur.execute(statement)
            cur.execute(sql.SQL("SET search_path TO {}, public").format(sql.Identifier(schema)))
        conn.commit()
    except BaseException:
        conn.close()
        raise
    return conn


def copy_out(cur: psycopg2.extensions.cursor, query: str, path: Path) -> None:
    """Write the rows of `query` to `path` as PostgreSQL CSV (no header; NULL is empty)."""
    with open(path, "wb") as handle:
        cur.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT csv)", handle, size=CHUNK)


def copy_in(cur: psycopg2.extensions.cursor, table: str, columns: str, path: Path) -> int:
    """Append the CSV rows of `path` to `table (columns)`; return how many were copied."""
    with open(path, "rb") as handle:
        cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)", handle, size=CHUNK)
    return cur.rowcount


def read_pg_csv(columns: dict[str, str]) -> str:
    """A DuckDB query reading the CSV `copy_out` writes (the path is its one parameter), with
    `columns` (name: DuckDB type) in order: quoted empty strings stay empty strings."""
    types = ", ".join(f"{literal(name)}: {literal(kind)}" for name, kind in columns.items())
    return (
        f"SELECT * FROM read_csv(?, columns = {{{types}}}, header = false, auto_detect = false,"  # noqa: S608 (names and types are quoted literals)
        " delim = ',', quote = '\"', escape = '\"', allow_quoted_nulls = false)"
    )


@contextmanager
def indexes_set_aside(cur: psycopg2.extensions.cursor, table: sql.Composable) -> Iterator[bool]:
    """Within the caller's transaction, drop the indexes of `table` (and the primary key,
    unique and exclusion constraints they back) for the block and build them again after it:
    filling a table and then indexing it takes about half the time of updating the indexes
    row by row (PostgreSQL's "Populating a Database" advice).

    Yields whether the indexes were set aside. They are not when something depends on them
    (another table's foreign key, a replica identity) or when readers keep the ACCESS
    EXCLUSIVE lock from being granted within INDEX_LOCK_WAIT: the block then runs with the
    indexes in place. If the block raises, nothing is rebuilt: the caller's rollback restores
    the indexes.
    """
    cur.execute("SAVEPOINT indexes_set_aside")
    try:
        rebuild = _drop_indexes(cur, table)
    except psycopg2.Error:
        cur.execute("ROLLBACK TO SAVEPOINT indexes_set_aside")
        yield False
        return
    cur.execute("RELEASE SAVEPOINT indexes_set_aside")
    yield True
    for statement in rebuild:
        cur.execute(statement)


def _drop_indexes(cur: psycopg2.extensions.cursor, table: sql.Composable) -> list[sql.Composable]:
    """Lock `table` exclusively, drop its indexes; return the statements that rebuild them."""
    cur.execute("SELECT current_setting('lock_timeout')")
    previous = cur.fetchone()[0]  # type: ignore[index]
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (INDEX_LOCK_WAIT,))
    cur.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
    cur.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
    cur.execute(
        """SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
            WHERE c.conrelid = %(t)s::regclass AND c.contype IN ('p', 'u', 'x')
            ORDER BY c.contype, c.conname""",
        {"t": table.as_string(cur)},
    )
    constraints = cur.fetchall()
    cur.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
            WHERE i.indrelid = %(t)s::regclass
              AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            ORDER BY 1""",
        {"t": table.as_string(cur)},
    )
    indexes = cur.fetchall()
    for name, _ in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table, sql.Identifier(name))
        )
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))
    return [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            table, sql.Identifier(name), sql.SQL(definition)
        )
        for name, definition in constraints
    ] + [sql.SQL(definition) for _, definition in indexes]
