"""Football fixtures: the API-Football stand-in on loopback, reset for every test, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest
from psycopg import sql

from sync_assets.football import defs as football_defs
from sync_assets.football.assets import football_sync, football_table_checks
from sync_assets.football.client import FootballApiResource
from sync_assets.football.tables import TABLES
from sync_assets.sandbox import football as football_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests.conftest import point_at, serve_providers

LEAGUES = 120
# Retries that do not make a test wait: the behaviour is the same, the clock is not.
QUICK = {
    "max_retries": 3,
    "backoff_factor": 0.01,
    "retry_after_cap": 5.0,
    "rate_limit_wait_seconds": 0.3,
    "broken_body_attempts": 3,
    "requests_per_minute": 1000,
}
QUICK_API = FootballApiResource(**QUICK)


def quick_api(**overrides: Any) -> FootballApiResource:
    """The quick client with some settings changed."""
    return FootballApiResource(**{**QUICK, **overrides})


@pytest.fixture(scope="module")
def football_server() -> Iterator[SandboxServer]:
    yield from serve_providers(football_sandbox)


@pytest.fixture
def football(
    football_server: SandboxServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The stand-in with LEAGUES leagues, settings pointing at it, and a fresh database."""
    point_at(football_server, football_sandbox, monkeypatch)
    configure(football_server, reset=True, leagues=LEAGUES)
    yield football_server
    football_server.faults.clear()


def configure(server: SandboxServer, **settings: Any) -> None:
    server.providers[football_sandbox.PREFIX].configure(settings)


def sync(
    config: dict[str, Any] | None = None,
    *,
    api: FootballApiResource | None = QUICK_API,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    checks: bool = True,
) -> dg.ExecuteInJobResult:
    """Materialize the four football assets (and their table checks) with this run config."""
    resources = dict(football_defs.resources or {})
    if api is not None:
        resources["football_api"] = api
    assets: list[Any] = [football_sync] + ([football_table_checks] if checks else [])
    return dg.materialize(
        assets,
        resources=resources,
        run_config={"ops": {"football_sync": {"config": config or {}}}},
        instance=instance,
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInJobResult, table: str) -> dict[str, Any]:
    [event] = [
        m
        for m in result.asset_materializations_for_node("football_sync")
        if m.asset_key.path == [table]
    ]
    return {k: v.value for k, v in event.metadata.items()}


def failure_message(result: dg.ExecuteInJobResult) -> str:
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failure.event_specific_data.error.message.strip()


def query(url: str, text: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO football")
        return conn.execute(text, params).fetchall()


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('football.leagues') IS NOT NULL").fetchone()[0]
    if not exists:
        return {}
    with psycopg.connect(url) as conn:
        return {
            t: conn.execute(
                sql.SQL("SELECT count(*) FROM football.{}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in TABLES
        }


DUMPS = {
    "countries": "SELECT * FROM countries ORDER BY id",
    "leagues": "SELECT * FROM leagues ORDER BY id",
    "seasons": "SELECT * FROM seasons ORDER BY id",
    "season_coverage": "SELECT * FROM season_coverage ORDER BY season_id",
}


def dump(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, timestamps included."""
    return {table: query(url, sql) for table, sql in DUMPS.items()}
