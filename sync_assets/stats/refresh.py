"""Refreshing stats tables: one snapshot of the club, computed in DuckDB, written back per table.

The club's four tables are copied out of PostgreSQL in one REPEATABLE READ transaction, so every
table of a refresh comes from the same club data, into an in-process DuckDB that computes the
tables (`computations.py`). Each table is then brought to exactly its new rows in its own
PostgreSQL transaction (`write_table`): the table is locked against other writers (readers go
on and see the old rows until the commit), its current rows are compared with the new ones in
DuckDB, and only rows that went or changed are deleted and only rows that came or changed are
inserted, so a refresh with nothing new writes nothing. A table that fails keeps its old rows
and stops no other. `connections` tables are computed and written at once; outcomes are
yielded as tables finish.
"""

from __future__ import annotations

import queue
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from sync_assets.core.analytics import duckdb_connection
from sync_assets.core.pg_bulk import bulk_connection, copy_in, copy_out
from sync_assets.core.settings import state_dir
from sync_assets.stats import computations
from sync_assets.stats.computations import TABLES_BY_NAME, RefreshCounts, TableSpec
from sync_assets.stats.resources import StatsDatabase

# Rough relative cost of each table at scale, only to start the costliest first; the two Elo
# tables go together so the ratings are computed once, on one connection.
COSTS = {
    "season_race_data": 3.0,
    "match_report": 2.0,
    "power_ratings": 1.5,
    "player_profile_stats": 0.5,
    "personal_bests": 0.5,
    "season_honours_and_records": 0.3,
    "recent_performance": 0.3,
    "half_season_stats": 0.4,
    "season_stats": 0.3,
    "hall_of_fame": 0.1,
    "all_time_stats": 0.2,
}
TOGETHER = ("power_ratings", "player_profile_stats")

# A PostgreSQL array literal with every element quoted (backslash escapes " and \ inside).
PG_ARRAY_MACRO = r"""
CREATE MACRO IF NOT EXISTS pg_array(l) AS CASE WHEN l IS NULL THEN NULL ELSE
    '{' || array_to_string(list_transform(l, lambda x: CASE WHEN x IS NULL THEN 'NULL'
        ELSE '"' || replace(replace(x::VARCHAR, '\', '\\'), '"', '\"') || '"' END), ',') || '}'
END
"""


@dataclass(frozen=True)
class TableOutcome:
    """One table's refresh: its counts, or the error that rolled it back."""

    name: str
    counts: RefreshCounts | None
    error: BaseException | None
    rows_used: int
    rows_left_out: int


def work_order(names: list[str]) -> list[tuple[str, ...]]:
    """The tables grouped into tasks (the Elo pair together), costliest first."""
    tasks: list[tuple[str, ...]] = []
    pair = tuple(n for n in TOGETHER if n in names)
    if pair:
        tasks.append(pair)
    tasks += [(n,) for n in names if n not in pair]
    return sorted(tasks, key=lambda task: -sum(COSTS.get(n, 1.0) for n in task))


def refresh_tables(
    db: StatsDatabase, names: list[str], *, connections: int = 2
) -> Iterator[TableOutcome]:
    """Replace the named tables, `connections` at a time; yield each outcome as it is known.

    Raises ClubTablesMissingError before any table is touched when the club's tables are not
    there. A table whose computation or transaction fails is yielded with its error; the
    others go on.
    """
    if not names:
        return
    url = db.url()
    folder = Path(tempfile.mkdtemp(prefix="stats_refresh_"))
    duck = duckdb_connection(db.duckdb_memory_limit, temp_dir=state_dir() / "duckdb-spill")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        duck.execute(PG_ARRAY_MACRO)
        with closing(bulk_connection(url, db.schema_name)) as pg:
            total = computations.load_club(pg, duck, db.app_schema_name(), folder)
        used = computations.build_shared(duck)

        tasks: queue.Queue[tuple[str, ...]] = queue.Queue()
        for task in work_order(names):
            tasks.put(task)
        outcomes: queue.Queue[TableOutcome] = queue.Queue()

        def work() -> None:
            with closing(duck.cursor()) as cursor:
                _work(url, db.schema_name, cursor, folder, tasks, outcomes, used, total, stop)

        threads = [
            threading.Thread(target=work, daemon=True)
            for _ in range(max(1, min(connections, tasks.qsize())))
        ]
        for thread in threads:
            thread.start()
        pending = set(names)
        while pending:
            try:
                outcome = outcomes.get(timeout=0.5)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and outcomes.empty():
                    break
                continue
            pending.discard(outcome.name)
            yield outcome
        for name in sorted(pending):  # only if every worker died before reaching them
            error = RuntimeError("no connection was left to refresh this table")
            yield TableOutcome(name, None, error, used, total - used)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        duck.close()
        for leftover in folder.glob("*"):
            leftover.unlink()
        folder.rmdir()


def _work(
    url: str,
    schema: str,
    duck: duckdb.DuckDBPyConnection,
    folder: Path,
    tasks: queue.Queue[tuple[str, ...]],
    outcomes: queue.Queue[TableOutcome],
    used: int,
    total: int,
    stop: threading.Event,
) -> None:
    """One worker: compute tables in DuckDB and write each back over its own connection (a
    broken connection is replaced for the next table)."""
    pg: psycopg2.extensions.connection | None = None
    try:
        while not stop.is_set():
            try:
                task = tasks.get_nowait()
            except queue.Empty:
                return
            for name in task:
                try:
                    if pg is None or pg.closed:
                        pg = bulk_connection(url, schema)
                    counts = write_table(pg, duck, TABLES_BY_NAME[name], folder)
                    outcomes.put(TableOutcome(name, counts, None, used, total - used))
                except (psycopg2.Error, duckdb.Error, OSError) as exc:
                    if pg is not None and not pg.closed:
                        with suppress(psycopg2.Error):
                            pg.rollback()
                    outcomes.put(TableOutcome(name, None, exc, used, total - used))
    finally:
        if pg is not None:
            pg.close()


def write_table(
    pg: psycopg2.extensions.connection,
    duck: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    folder: Path,
) -> RefreshCounts:
    """Compute `spec` and make its PostgreSQL table hold exactly those rows, in one transaction.

    Rows are compared whole (a table with a key deletes the old version of a changed row by
    key); rows that did not change are not touched.
    """
    started = time.monotonic()
    new = computations.compute_table(duck, spec)
    target = sql.Identifier(spec.name)
    with pg.cursor() as cur:
        # One writer per table at a time (a UI run and a queue run, or two deployments);
        # readers are not blocked by this lock mode.
        cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(target))
        kinds = _column_kinds(cur, spec)
        current = _read_current(cur, duck, spec, kinds, folder)
        gone, came = f"gone_{spec.name}", f"came_{spec.name}"
        duck.execute(f"CREATE OR REPLACE TABLE {gone} AS FROM {current} EXCEPT ALL FROM {new}")
        duck.execute(f"CREATE OR REPLACE TABLE {came} AS FROM {new} EXCEPT ALL FROM {current}")
        removed = _delete_rows(cur, duck, spec, kinds, gone, folder)
        added = _insert_rows(cur, duck, spec, kinds, came, folder)
    pg.commit()
    rows = _count(duck, new)
    for table in (new, current, gone, came):
        duck.execute(f"DROP TABLE {table}")
    return RefreshCounts(spec.name, rows, added, removed, time.monotonic() - started)


def _column_kinds(cur: psycopg2.extensions.cursor, spec: TableSpec) -> dict[str, str]:
    """Each column's kind in the PostgreSQL table: array, json or scalar."""
    cur.execute(
        """SELECT a.attname, CASE WHEN t.typcategory = 'A' THEN 'array'
                                  WHEN t.typname IN ('json', 'jsonb') THEN 'json'
                                  ELSE 'scalar' END
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
        (sql.Identifier(spec.name).as_string(cur),),
    )
    kinds = dict(cur.fetchall())
    return {column: kinds.get(column, "scalar") for column in spec.columns}


def _duck_types(duck: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    return {row[0]: row[1] for row in duck.execute(f"DESCRIBE {table}").fetchall()}


def _read_current(
    cur: psycopg2.extensions.cursor,
    duck: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    kinds: dict[str, str],
    folder: Path,
) -> str:
    """Copy the table's current rows into DuckDB, typed like the new rows; return its name."""
    types = _duck_types(duck, f"new_{spec.name}")
    out = sql.SQL(", ").join(
        sql.SQL(
            "to_json({})::text"
            if kinds[c] == "array"
            else "{}::text"
            if kinds[c] == "json"
            else "{}"
        ).format(sql.Identifier(c))
        for c in spec.columns
    )
    path = folder / f"current_{spec.name}.csv"
    copy_out(
        cur,
        sql.SQL("SELECT {} FROM {}").format(out, sql.Identifier(spec.name)).as_string(cur),
        path,
    )
    raw = {c: "VARCHAR" if kinds[c] != "scalar" else types[c] for c in spec.columns}
    typed = ", ".join(
        f'CAST(CAST("{c}" AS JSON) AS {types[c]}) AS "{c}"' if kinds[c] != "scalar" else f'"{c}"'
        for c in spec.columns
    )
    name = f"current_{spec.name}"
    duck.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT {typed} FROM ({computations.read_csv(raw)})",
        [str(path)],
    )
    path.unlink()
    return name


def _export(
    duck: duckdb.DuckDBPyConnection,
    table: str,
    columns: tuple[str, ...],
    kinds: dict[str, str],
    path: Path,
) -> None:
    """Write DuckDB rows as CSV that PostgreSQL's COPY reads into the table's column types."""
    exprs = ", ".join(
        f'pg_array("{c}")'
        if kinds[c] == "array"
        else f'to_json("{c}")'
        if kinds[c] == "json"
        else f'"{c}"'
        for c in columns
    )
    duck.execute(
        f"COPY (SELECT {exprs} FROM {table}) TO '{str(path).replace("'", "''")}' (FORMAT csv, HEADER false)"
    )


def _delete_rows(
    cur: psycopg2.extensions.cursor,
    duck: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    kinds: dict[str, str],
    gone: str,
    folder: Path,
) -> int:
    """Delete the rows in `gone` (by key, else by every column); return how many went."""
    count = _count(duck, gone)
    if not count:
        return 0
    match = spec.key or spec.columns
    path = folder / f"gone_{spec.name}.csv"
    _export(duck, gone, match, kinds, path)
    staging = sql.Identifier(f"_gone_{spec.name}")
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in match)
    cur.execute(
        sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            staging, columns, sql.Identifier(spec.name)
        )
    )
    copy_in(cur, staging.as_string(cur), columns.as_string(cur), path)
    path.unlink()
    # Keys are never null, and `=` lets the delete use the key's index.
    equal = "t.{c} = g.{c}" if spec.key else "t.{c} IS NOT DISTINCT FROM g.{c}"
    same = sql.SQL(" AND ").join(sql.SQL(equal).format(c=sql.Identifier(c)) for c in match)
    cur.execute(
        sql.SQL("DELETE FROM {} t USING {} g WHERE {}").format(
            sql.Identifier(spec.name), staging, same
        )
    )
    return count


def _insert_rows(
    cur: psycopg2.extensions.cursor,
    duck: duckdb.DuckDBPyConnection,
    spec: TableSpec,
    kinds: dict[str, str],
    came: str,
    folder: Path,
) -> int:
    """Insert the rows in `came`; return how many."""
    count = _count(duck, came)
    if not count:
        return 0
    path = folder / f"came_{spec.name}.csv"
    _export(duck, came, spec.columns, kinds, path)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in spec.columns)
    copy_in(cur, sql.Identifier(spec.name).as_string(cur), columns.as_string(cur), path)
    path.unlink()
    return count


def _count(duck: duckdb.DuckDBPyConnection, table: str) -> int:
    row = duck.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
