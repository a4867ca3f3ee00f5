"""In-process DuckDB for the domains that compute in bulk (streams, stats)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb


def ident(name: str) -> str:
    """A DuckDB identifier: always quoted, embedded quotes doubled (never executed)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal (standard SQL quoting, no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"


def count_rows(con: duckdb.DuckDBPyConnection, table: str) -> int:
    """How many rows the DuckDB table `table` holds."""
    row = con.execute(f"SELECT count(*) FROM {ident(table)}").fetchone()  # noqa: S608
    return int(row[0]) if row else 0


def duckdb_connection(
    memory_limit: str, *, threads: int | None = None, temp_dir: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB capped at `memory_limit` that spills to `temp_dir` beyond it.

    Timestamps without an offset are UTC whatever the machine's zone, and results without an
    ORDER BY need not keep insertion order (so writers run in parallel and hold nothing back).
    """
    import duckdb

    config: dict[str, Any] = {"memory_limit": memory_limit}
    if threads:
        config["threads"] = threads
    if temp_dir:
        temp_dir.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_dir)
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    return con
