"""The repository's dagster.yaml loads as a Postgres-backed instance (keeping its connections)
with the queue, monitoring, retries and freshness the README promises, and the code location
validates against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from sync_assets.core import embedded
from sync_assets.domains import DOMAINS
from sync_assets_tests.conftest import create_database

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def instance_env(server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": embedded.sqlalchemy_url(create_database(server_url, "dagster")),
        "SYNC_ASSETS_COMPUTE_LOGS": str(tmp_path / "compute_logs"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_repository_instance_config(instance_env):
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.dequeue_interval_seconds == 1  # type: ignore[attr-defined]
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 6
        limits = {limit["value"]: limit["limit"] for limit in queue.tag_concurrency_limits}
        # One entry per registered domain, at the limit it declares, plus operations' own.
        assert limits == {domain.name: domain.run_limit for domain in DOMAINS} | {"operations": 1}
        assert limits["streams"] == 2
        pools = instance.get_concurrency_config().pool_config
        assert pools.default_pool_limit == 1
        declared = {pool: limit for domain in DOMAINS for pool, limit in domain.pools.items()}
        assert set(declared) == {"api_football", "steam_web_api", "steam_store", "torn_api"}
        assert set(declared.values()) == {pools.default_pool_limit}
        assert instance.run_monitoring_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.get_settings("freshness") == {"enabled": True}


def test_code_location_validates_against_the_instance(instance_env):
    done = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "sync_assets"],
        cwd=REPO,
        env={**os.environ, **instance_env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout


@dg.asset
def chatty(context) -> dg.MaterializeResult:  # noqa: ANN001 (a string hint Dagster cannot read)
    """Forty log events, then a materialization: a run's worth of storage writes."""
    for n in range(40):
        context.log.info(f"line {n}")
    return dg.MaterializeResult(metadata={"lines": 40})


def _engines(instance: dg.DagsterInstance) -> list[sqlalchemy.engine.Engine]:
    storages = (instance.run_storage, instance.event_log_storage, instance.schedule_storage)
    return [storage._engine for storage in storages]  # type: ignore[attr-defined]


def test_a_run_reuses_its_storage_connections(instance_env):
    connects: list[str] = []
    with dg.DagsterInstance.get() as instance:
        engines = _engines(instance)
        assert all(isinstance(e.pool, sqlalchemy.pool.QueuePool) for e in engines)
        for engine in engines:
            sqlalchemy.event.listen(engine, "connect", lambda *_: connects.append("new"))
        result = dg.materialize([chatty], instance=instance)
        assert result.success
        events = instance.get_records_for_run(result.run_id, limit=1000).records
        assert len(events) > 50
        # One connection per storage, plus the few a nested call opens and closes; without
        # the pool every one of the events above would have connected anew.
        assert len(connects) <= 6, connects


def test_a_forked_child_does_not_share_its_parents_connection(instance_env):
    with dg.DagsterInstance.get() as instance:
        engine = instance.run_storage._engine  # type: ignore[attr-defined]
        with engine.connect() as conn:
            parent = conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # the child: report the backend it talks to, then leave at once
            try:
                with engine.connect() as conn:
                    pid = conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar()
                os.write(write, str(pid).encode())
            finally:
                os._exit(0)
        os.close(write)
        reported = os.read(read, 64).decode()
        os.waitpid(child, 0)
        assert reported and int(reported) != parent
        with engine.connect() as conn:  # the parent's connection still works
            assert conn.execute(sqlalchemy.text("SELECT pg_backend_pid()")).scalar() == parent
