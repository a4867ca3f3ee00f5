"""The Postgres resource: connections, per-domain schemas, idempotent DDL and advisory locks.

`DATABASE_URL` (or a per-domain override such as `FOOTBALL_DATABASE_URL`) picks the server; when
neither is set, the embedded server under `.sync_assets/` is started or attached to.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from sync_assets.core.embedded import embedded_database_url
from sync_assets.core.redaction import register_secret


class LockBusyError(RuntimeError):
    """Another process holds the named advisory lock."""


class DatabaseUrlError(ValueError):
    """A database URL setting cannot be read; the message names the setting, never its value."""


def database_url_for(override_setting: str | None = None) -> str:
    """The configured database URL: a domain override, then `DATABASE_URL`, then embedded.

    A configured URL is checked and its password registered as a secret before any connection
    is tried: libpq quotes the piece of a URL it cannot parse (an unencoded `%` in the password,
    say), and that error would otherwise travel into run failures and Dagster's event storage.
    """
    for name in (override_setting, "DATABASE_URL"):
        if name and os.environ.get(name, "").strip():
            url = os.environ[name].strip()
            try:
                params = conninfo_to_dict(url)
            except psycopg.Error:
                raise DatabaseUrlError(
                    f"{name} is not a PostgreSQL connection URL libpq can read (its value is not"
                    " shown): percent-encode characters such as % @ : / # ? and spaces in the"
                    " user name and password"
                ) from None
            register_secret(params.get("password"), _password_of(url))
            return url
    return embedded_database_url()


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lock name."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _password_of(url: str) -> str | None:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password
    except ValueError:
        return None


class PostgresResource(dg.ConfigurableResource):
    """A PostgreSQL database with one schema for one domain.

    The fields name settings, not values: the URL itself is read from the environment at run
    time, so no credential shows in the UI, run config or event storage.
    """

    schema_name: str
    url_setting: str | None = None

    def url(self) -> str:
        return database_url_for(self.url_setting)  # its password registered as a secret

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A connection whose search_path starts with this domain's schema."""
        with psycopg.connect(self.url(), autocommit=autocommit, connect_timeout=15) as conn:
            conn.execute(
                sql.SQL("SET search_path TO {}, public").format(sql.Identifier(self.schema_name))
            )
            # Staging tables for bulk upserts live in temp buffers; the 8 MB default spills.
            conn.execute("SET temp_buffers = '128MB'")
            if not autocommit:
                conn.commit()
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self.connect() as conn:
            with conn.transaction():
                yield conn

    def apply_ddl(self, ddl: str) -> None:
        """Create the schema and apply idempotent DDL, serialised across processes."""
        with self.connect() as conn:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s)", (lock_key("ddl:" + self.schema_name),)
                )
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        sql.Identifier(self.schema_name)
                    )
                )
                conn.execute(
                    sql.SQL("SET LOCAL search_path TO {}, public").format(
                        sql.Identifier(self.schema_name)
                    )
                )
                conn.execute(ddl)  # type: ignore[arg-type]

    @contextmanager
    def advisory_lock(self, name: str, *, wait_seconds: float = 0.0) -> Iterator[None]:
        """Hold a session advisory lock named `name` for the block.

        Waits up to `wait_seconds` for a holder to finish, then raises LockBusyError naming the
        lock and the holder's backend pid, so deployments sharing one database never overlap.
        """
        key = lock_key(f"{self.schema_name}:{name}")
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=15) as conn:
            deadline = time.monotonic() + wait_seconds
            while True:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
                if row and row[0]:
                    break
                if time.monotonic() >= deadline:
                    holder = conn.execute(
                        "SELECT l.pid, a.backend_start FROM pg_locks l "
                        "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.granted "
                        "AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1",
                        (key,),
                    ).fetchone()
                    who = f" (held by backend pid {holder[0]})" if holder else ""
                    raise LockBusyError(
                        f"advisory lock '{self.schema_name}:{name}' is held by another sync"
                        f"{who}; waited {wait_seconds:.0f}s"
                    )
                time.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


_schemas_ensured: set[tuple[str, str, str]] = set()
_schemas_lock = threading.Lock()


def ensure_schema[R: PostgresResource](db: R, apply: Callable[[R], None]) -> None:
    """Apply a domain's idempotent DDL (`apply(db)`) once per process for each database and
    schema, so sensors ticking every few seconds and every asset of a run do not repeat it.

    A failed `apply` is not remembered: the next call tries again.
    """
    key = (db.url(), db.schema_name, f"{apply.__module__}.{apply.__qualname__}")
    if key in _schemas_ensured:
        return
    with _schemas_lock:
        if key not in _schemas_ensured:
            apply(db)
            _schemas_ensured.add(key)
