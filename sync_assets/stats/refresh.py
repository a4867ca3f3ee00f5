"""Refreshing stats tables over several connections, all computed from one snapshot.

A coordinating transaction exports a snapshot of the club's tables (`pg_export_snapshot`);
each connection imports it, gathers the valid results into its own `club_results`, then takes
tables from a shared list, costliest first, replacing each in its own transaction. So every
table of a refresh is computed from the same club data, the tables are written in parallel, and
one failing does not stop or roll back the others. Outcomes are yielded as tables finish.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import sql

from sync_assets.stats import computations
from sync_assets.stats.computations import TABLES_BY_NAME, RefreshCounts
from sync_assets.stats.resources import StatsDatabase

# Rough relative cost of each table at scale, only to start the costliest first; the two Elo
# tables go together so the ratings are computed once, on one connection.
COSTS = {
    "season_race_data": 3.5,
    "match_report": 3.5,
    "power_ratings": 1.6,
    "player_profile_stats": 0.8,
    "personal_bests": 1.0,
    "season_honours_and_records": 1.0,
    "recent_performance": 0.5,
    "half_season_stats": 0.4,
    "season_stats": 0.4,
    "hall_of_fame": 0.3,
    "all_time_stats": 0.2,
}
TOGETHER = ("power_ratings", "player_profile_stats")


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


def refresh_concurrently(
    db: StatsDatabase, names: list[str], *, connections: int = 2
) -> Iterator[TableOutcome]:
    """Replace the named tables, `connections` at a time; yield each outcome as it is known.

    Raises ClubTablesMissingError before any table is touched when the club's tables are not
    there. A table whose transaction fails is yielded with its error; the others go on.
    """
    if not names:
        return
    app = db.app_schema_name()
    tasks: queue.Queue[tuple[str, ...]] = queue.Queue()
    for task in work_order(names):
        tasks.put(task)
    outcomes: queue.Queue[TableOutcome | BaseException] = queue.Queue()
    workers = max(1, min(connections, tasks.qsize()))
    imported = threading.Semaphore(0)

    with db.connect() as coordinator:
        coordinator.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with coordinator.transaction():
            computations.check_club_tables(coordinator, app)
            total = coordinator.execute(
                sql.SQL("SELECT count(*) FROM {}.player_matches").format(sql.Identifier(app))
            ).fetchone()[0]  # type: ignore[index]
            snapshot = coordinator.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]

            def work() -> None:
                try:
                    _work(db, app, snapshot, total, imported, tasks, outcomes)
                except BaseException as exc:  # reported to the caller below
                    outcomes.put(exc)

            threads = [threading.Thread(target=work, daemon=True) for _ in range(workers)]
            for thread in threads:
                thread.start()
            # The exporting transaction must stay open until every connection has imported.
            for _ in threads:
                imported.acquire()

    pending = set(names)
    failure: BaseException | None = None
    while pending and (any(t.is_alive() for t in threads) or not outcomes.empty()):
        try:
            item = outcomes.get(timeout=0.5)
        except queue.Empty:
            continue
        if isinstance(item, BaseException):
            failure = item
            continue
        pending.discard(item.name)
        yield item
    for thread in threads:
        thread.join()
    # Tables no connection could take (every connection failed before reaching them).
    for name in sorted(pending):
        error = failure or RuntimeError("no connection was left to refresh this table")
        yield TableOutcome(name, None, error, 0, 0)


def _work(
    db: StatsDatabase,
    app: str,
    snapshot: str,
    total: int,
    imported: threading.Semaphore,
    tasks: queue.Queue[tuple[str, ...]],
    outcomes: queue.Queue[TableOutcome | BaseException],
) -> None:
    """One connection: import the snapshot, gather the valid results, replace tables."""
    signalled = False

    def signal() -> None:
        nonlocal signalled
        if not signalled:
            signalled = True
            imported.release()

    try:
        with db.connect() as conn:
            computations.tune_session(conn)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
                signal()
                used = computations.prepare_club_results(conn, app)
            conn.isolation_level = None
            while True:
                try:
                    task = tasks.get_nowait()
                except queue.Empty:
                    return
                for name in task:
                    try:
                        with conn.transaction():
                            counts = computations.replace_table(conn, TABLES_BY_NAME[name], app)
                        outcomes.put(TableOutcome(name, counts, None, used, total - used))
                    except psycopg.Error as exc:
                        outcomes.put(TableOutcome(name, None, exc, used, total - used))
                        if conn.closed:
                            raise
    finally:
        signal()
