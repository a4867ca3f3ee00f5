"""Bulk COPY between PostgreSQL and files, for moving whole tables in and out of DuckDB.

psycopg2 runs a COPY's row loop in C; psycopg 3 hands each row to Python, which is about three
times slower for a million small rows. So bulk COPY uses a psycopg2 connection of its own, and
everything else keeps psycopg 3.
"""

from __future__ import annotations

from pathlib import Path

import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from sync_assets.core.analytics import literal

CHUNK = 1 << 20
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
