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
from typing import TYPE_CHECKING

import psycopg2
import psycopg2.extensions

from sync_assets.core.analytics import duckdb_connection, ident
from sync_assets.core.pg_bulk import bulk_connection
from sync_assets.core.settings import state_dir
from sync_assets.core.table_sync import replace_rows
from sync_assets.stats import computations
from sync_assets.stats.computations import TABLES_BY_NAME, RefreshCounts, TableSpec
from sync_assets.stats.resources import StatsDatabase

if TYPE_CHECKING:
    import duckdb

# Rough relative cost of each table at scale, only to start the costliest first; the two Elo
# tables go together so the ratings are computed once, on one connection.
COSTS = {
    "match_report": 3.0,
    "season_race_data": 2.0,
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
# Below this many player-match rows each query is small enough that handing it to a second
# DuckDB thread costs more than it saves (the workers already run side by side): 1x refreshes
# take 0.25 s instead of 0.29 s on one thread; 200x ones need both.
ONE_THREAD_BELOW_ROWS = 100_000


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
    scratch = tempfile.TemporaryDirectory(prefix="stats_refresh_")
    folder = Path(scratch.name)
    duck = duckdb_connection(db.duckdb_memory_limit, temp_dir=state_dir() / "duckdb-spill")
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        with closing(bulk_connection(url, db.schema_name)) as pg:
            total = computations.load_club(pg, duck, db.app_schema_name(), folder)
        if total < ONE_THREAD_BELOW_ROWS:
            duck.execute("SET threads = 1")
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
        scratch.cleanup()


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
                except Exception as exc:  # noqa: BLE001 - reported as this table's outcome
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
    """Compute `spec` and make its PostgreSQL table hold exactly those rows, in one
    transaction (`replace_rows`: only rows that went, came or changed are written)."""
    started = time.monotonic()
    new = computations.compute_table(duck, spec)
    try:
        with pg.cursor() as cur:
            changes = replace_rows(
                cur, duck, spec.name, new, spec.columns, spec.key, folder, digest=spec.digest
            )
        pg.commit()
    finally:
        duck.execute(f"DROP TABLE IF EXISTS {ident(new)}")
    return RefreshCounts(
        spec.name, changes.rows, changes.added, changes.removed, time.monotonic() - started
    )
