"""Foreign keys set aside while empty tables are filled, and checked once afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg
from psycopg import sql

# How long setting the keys aside waits for readers of the tables to leave.
KEY_LOCK_WAIT = "2s"


def all_empty(conn: psycopg.Connection, tables: Sequence[str]) -> bool:
    """Whether none of `tables` (in the search path) holds a row."""
    return not any(
        conn.execute(
            sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(table))
        ).fetchone()[0]  # type: ignore[index]
        for table in tables
    )


@contextmanager
def foreign_keys_set_aside(conn: psycopg.Connection, tables: Sequence[str]) -> Iterator[bool]:
    """Within the caller's transaction, drop the foreign keys of `tables` for the block and add
    them back after it.

    Adding a key back checks every row in one join, where a kept key checks each inserted row
    with a lookup that also locks the row it points at: that is about half of what inserting
    96,000 seasons and their coverage costs (PostgreSQL's "Populating a Database" advice). Meant
    for filling empty tables: the tables, and the tables their keys point at, stay locked
    (ACCESS EXCLUSIVE) until the transaction ends, so a reader waits for the first load instead
    of reading a half-filled table.

    Yields whether the keys were set aside. They are not when readers keep the lock from being
    granted within KEY_LOCK_WAIT, or when the role may write the tables but does not own them:
    the block then runs with the keys in place. A row the block
    wrote that breaks a key fails when the key is added back, naming it. If the block raises,
    nothing is added back: the caller's rollback restores the keys.
    """
    add_back = _drop_foreign_keys(conn, tables)
    yield add_back is not None
    for statement in add_back or []:
        conn.execute(statement)


def _drop_foreign_keys(
    conn: psycopg.Connection, tables: Sequence[str]
) -> list[sql.Composable] | None:
    """Drop the keys; the statements adding them back, or None when they could not be dropped."""
    keys = conn.execute(
        """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
            FROM pg_constraint c
            WHERE c.contype = 'f' AND c.conrelid = ANY(%s::regclass[])
            ORDER BY 1, 2""",
        (list(tables),),
    ).fetchall()
    previous = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]  # type: ignore[index]
    try:
        with conn.transaction():  # a savepoint: a lock not granted leaves no trace
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (KEY_LOCK_WAIT,))
            for table, name, _ in keys:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.SQL(table), sql.Identifier(name)
                    )
                )
            conn.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))
    except (psycopg.errors.LockNotAvailable, psycopg.errors.InsufficientPrivilege):
        return None
    return [
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.SQL(table), sql.Identifier(name), sql.SQL(definition)
        )
        for table, name, definition in keys
    ]
