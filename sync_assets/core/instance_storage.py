"""Dagster's PostgreSQL storages, keeping their connection between calls.

Outside the webserver, dagster-postgres gives every storage call a connection of its own
(SQLAlchemy's NullPool): a run connects about 270 times for a stats refresh, and on the
embedded server that connecting is most of a small run's time (a 1x stats refresh: 2.5-2.9 s,
and 1.2-1.6 s with these). `dagster.yaml` names these factories instead of the `postgres`
storage block: they build dagster-postgres's own storages, then give each a pool that keeps
one connection open per process (more are opened, and closed after use, while several threads
call at once), as the webserver does. Connections are checked before use and recycled
hourly, so a restarted database costs a ping, not a failed call; a forked child drops the
connections it inherited instead of sharing their sockets with its parent. Each Dagster
process (daemon, code server, run worker) then holds up to three idle connections.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from typing import Any, Protocol

import sqlalchemy
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import create_pg_engine

from sync_assets.core.dagster_internals import ConfigurableClassData

# One connection stays open; calls made at once (the daemon's threads) open more, without limit
# as before, and close them after use.
POOL = {"pool_size": 1, "max_overflow": -1, "pool_recycle": 3600, "pool_pre_ping": True}

_engines: weakref.WeakSet[sqlalchemy.engine.Engine] = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)  # the parent still uses them: do not close, just drop


os.register_at_fork(after_in_child=_forget_inherited_connections)


class _PostgresStorage(Protocol):
    postgres_url: str
    _engine: sqlalchemy.engine.Engine
    _token_provider: Any


def keep_connections(storage: _PostgresStorage) -> None:
    """Replace the storage's connection-per-call engine with a pooled one."""
    kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", **POOL}
    options = storage._engine.url.query.get("options")
    if options:
        kwargs["connect_args"] = {"options": options}
    previous = storage._engine
    storage._engine = create_pg_engine(storage.postgres_url, storage._token_provider, **kwargs)
    _engines.add(storage._engine)
    previous.dispose()


class _KeepsConnections:
    """Builds the dagster-postgres storage it is mixed into, then pools its engine."""

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Mapping[str, Any]
    ) -> Any:
        # dagster-postgres builds its own class here, whatever `cls` is: that stays the type.
        storage = super().from_config_value(inst_data, config_value)  # type: ignore[misc]
        keep_connections(storage)
        return storage


class PooledPostgresRunStorage(_KeepsConnections, PostgresRunStorage):
    """dagster-postgres's run storage, keeping its connection (see the module)."""


class PooledPostgresEventLogStorage(_KeepsConnections, PostgresEventLogStorage):
    """dagster-postgres's event-log storage, keeping its connection (see the module)."""


class PooledPostgresScheduleStorage(_KeepsConnections, PostgresScheduleStorage):
    """dagster-postgres's schedule storage, keeping its connection (see the module)."""
