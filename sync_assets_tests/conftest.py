"""Shared fixtures: an embedded PostgreSQL per test session, the sandbox on loopback, fresh
databases per test, and a Postgres-backed Dagster instance whose event storage can be searched."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psycopg
import pytest
from psycopg import sql

from sync_assets.core import embedded
from sync_assets.sandbox.registry import build_sandbox, sandbox_environment
from sync_assets.sandbox.server import SandboxServer


@pytest.fixture(scope="session", autouse=True)
def sync_assets_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Each test session (each xdist worker) gets its own embedded server and buckets."""
    home = tmp_path_factory.mktemp("home")
    os.environ["SYNC_ASSETS_HOME"] = str(home)
    os.environ.pop("DATABASE_URL", None)
    os.environ["SYNC_ASSETS_COMPUTE_LOGS"] = str(home / "compute_logs")
    embedded.embedded_database_url()
    yield home
    embedded.stop_embedded_server()


@pytest.fixture(autouse=True)
def forget_dagster_defs_state_storage() -> Iterator[None]:
    """Dagster keeps the defs-state storage of the last instance a context entered in a context
    variable. A schedule or sensor context built in a test and never closed leaves it pointing at
    an instance that is gone, and every later definitions load in that worker fails with
    "undefined DagsterInstance weakref". Each test starts without it."""
    from sync_assets_tests.dagster_internals import _current_storage

    _current_storage.set(None)
    yield
    _current_storage.set(None)


@pytest.fixture(scope="session")
def server_url(sync_assets_home: Path) -> str:
    """libpq URL of the embedded server's maintenance database."""
    return embedded.embedded_database_url("postgres")


def create_database(server_url: str, prefix: str = "t") -> str:
    """Create an empty database on the embedded server; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server_url.replace("@/postgres?", f"@/{name}?", 1)


@pytest.fixture
def database_url(server_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database that DATABASE_URL points at for this test."""
    url = create_database(server_url)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """Every provider stand-in at scale 1, on loopback, for the whole session."""
    server = build_sandbox(scale=1.0).start()
    yield server
    server.stop()


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    """Settings pointing at the sandbox, with its faults and request log cleared."""
    for key, value in sandbox_environment(sandbox.url).items():
        monkeypatch.setenv(key, value)
    sandbox.reset()
    yield sandbox
    sandbox.faults.clear()


def serve_providers(module: ModuleType) -> Iterator[SandboxServer]:
    """One sandbox module's stand-ins on loopback (for a module-scoped fixture to yield from)."""
    server = SandboxServer(module.providers(1.0)).start()
    yield server
    server.stop()


def point_at(server: SandboxServer, module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings pointing at `module`'s stand-ins on `server`, with no faults or requests left."""
    for key, value in module.environment(server.url).items():
        monkeypatch.setenv(key, value)
    server.reset()


@pytest.fixture
def pg_instance(server_url: str, tmp_path: Path):
    """A Dagster instance with Postgres run/event storage in a fresh database."""
    import dagster as dg

    url = embedded.sqlalchemy_url(create_database(server_url, "dagster"))
    overrides = {
        "storage": {"postgres": {"postgres_url": url}},
        "compute_logs": {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(tmp_path / "compute_logs")},
        },
    }
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        instance.sync_assets_pg_url = url  # type: ignore[attr-defined]
        yield instance
