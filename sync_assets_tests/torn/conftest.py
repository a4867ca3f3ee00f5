"""Torn fixtures: the Torn API stand-in on loopback, reset for every test, and helpers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import dagster as dg
import psycopg
import pytest

from sync_assets.sandbox import torn as torn_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets.torn import defs as torn_defs
from sync_assets.torn.assets import FAILED_SHARE_CHECK, user_data
from sync_assets.torn.client import TornApiResource
from sync_assets_tests.conftest import point_at, serve_providers

# Retries that do not make a test wait: the behaviour is the same, the clock is not.
QUICK = {
    "read_timeout": 1.0,
    "http_retries": 1,
    "error_retries": 2,
    "backoff_seconds": 0.01,
    "backoff_max_seconds": 0.05,
}
QUICK_API = TornApiResource(**QUICK)


def quick_api(**overrides: Any) -> TornApiResource:
    return TornApiResource(**{**QUICK, **overrides})


@pytest.fixture(scope="module")
def torn_server() -> Iterator[SandboxServer]:
    yield from serve_providers(torn_sandbox)


@pytest.fixture
def torn(
    torn_server: SandboxServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxServer]:
    """The Torn stand-in with every user succeeding, settings pointing at it, a fresh DB."""
    point_at(torn_server, torn_sandbox, monkeypatch)
    configure(torn_server, reset=True, default_failures=False)
    yield torn_server
    torn_server.faults.clear()


def configure(server: SandboxServer, **settings: Any) -> None:
    server.providers[torn_sandbox.PREFIX].configure(settings)


def seed(database_url: str, users: Iterable[int], **kwargs: Any) -> None:
    torn_sandbox.insert_user_keys(database_url, users, **kwargs)


def sync(
    config: dict[str, Any] | None = None,
    *,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = True,
    api: TornApiResource = QUICK_API,
) -> dg.ExecuteInJobResult:
    bound = dict(torn_defs.resources or {})
    bound["torn_api"] = api
    return dg.materialize(
        [user_data],
        resources=bound,
        run_config={"ops": {"user_data": {"config": config or {}}}},
        instance=instance,
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    [event] = result.asset_materializations_for_node("user_data")
    return {k: v.value for k, v in event.metadata.items()}


def check(result: dg.ExecuteInJobResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [
        e for e in result.get_asset_check_evaluations() if e.check_name == FAILED_SHARE_CHECK
    ]
    return evaluation


def query(url: str, text: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(url) as conn:
        conn.execute("SET search_path TO torn")
        return conn.execute(text, params).fetchall()


def failure_text(result: dg.ExecuteInJobResult) -> str:
    """The step failure's message with its causes (Dagster wraps a raised exception)."""
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    error, parts = failure.event_specific_data.error, []
    while error is not None:
        parts.append(error.message)
        error = error.cause
    return "\n".join(parts)


def failure_metadata(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    """The metadata of the step's `dg.Failure`."""
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    data = failure.event_specific_data.user_failure_data
    return {k: v.value for k, v in data.metadata.items()}
