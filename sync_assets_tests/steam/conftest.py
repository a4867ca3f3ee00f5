"""Steam fixtures: the two store stand-ins on loopback, reset for every test, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest

from sync_assets.sandbox import steam as steam_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets.steam import defs as steam_defs
from sync_assets.steam.assets import (
    steam_app_catalog,
    steam_app_details,
    steam_synced_apps_have_details,
)
from sync_assets.steam.client import SteamApiResource, SteamStoreResource
from sync_assets_tests.conftest import point_at, serve_providers

# Retries that do not make a test wait: the behaviour is the same, the clock is not.
QUICK_STORE = SteamStoreResource(max_retries=2, backoff_factor=0.01, retry_after_cap=0.2)


@pytest.fixture(scope="module")
def steam_server() -> Iterator[SandboxServer]:
    yield from serve_providers(steam_sandbox)


@pytest.fixture
def steam(
    steam_server: SandboxServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The steam stand-ins at a small scale, settings pointing at them (the demo Web API key
    included), and a fresh DB."""
    point_at(steam_server, steam_sandbox, monkeypatch)
    monkeypatch.setenv("STEAM_STORE_RATE_LIMIT", "1000/1")
    configure(
        steam_server,
        catalog_size=60,
        removed=[],
        extra_apps=[],
        api_key=steam_sandbox.DEMO_API_KEY,
        v2_removed=False,
    )
    configure(steam_server, store=True, reset=True)
    yield steam_server
    steam_server.faults.clear()


def configure(server: SandboxServer, *, store: bool = False, **settings: Any) -> None:
    prefix = steam_sandbox.STORE_PREFIX if store else steam_sandbox.API_PREFIX
    server.providers[prefix].configure(settings)


def resources() -> dict[str, Any]:
    return dict(steam_defs.resources or {})


def sync(
    details: dict[str, Any] | None = None,
    *,
    catalog: bool = True,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    store: SteamStoreResource | None = None,
    api: SteamApiResource | None = None,
    catalog_config: dict[str, Any] | None = None,
    details_asset: bool = True,
) -> dg.ExecuteInJobResult:
    """Materialize the catalog (optionally) and a batch of details with this run config."""
    assets = ([steam_app_catalog] if catalog else []) + (
        [steam_app_details, steam_synced_apps_have_details] if details_asset else []
    )
    ops: dict[str, Any] = {}
    if details_asset:
        ops["steam_app_details"] = {"config": details or {}}
    if catalog:
        ops["steam_app_catalog"] = {"config": catalog_config or {}}
    bound = resources()
    if store is not None:
        bound["steam_store"] = store
    if api is not None:
        bound["steam_api"] = api
    return dg.materialize(
        assets,
        resources=bound,
        run_config={"ops": ops},
        instance=instance,
        raise_on_error=raise_on_error,
        selection=assets,
    )


def details_metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("steam_app_details")
    return {k: v.value for k, v in materialization.metadata.items()}


def query(url: str, text: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO steam")
        return conn.execute(text, params).fetchall()


def catalog_metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("steam_app_catalog")
    return {k: v.value for k, v in materialization.metadata.items()}


def failure_message(result: dg.ExecuteInJobResult, step: str = "steam_app_catalog") -> str:
    """The stored error of the step's failure, causes included."""
    [failure] = [
        e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == step
    ]
    parts, error = [], failure.event_specific_data.error
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)
