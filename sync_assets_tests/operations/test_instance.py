"""The repository's dagster.yaml loads as a Postgres-backed instance with the queue, monitoring,
retries and freshness the README promises, and the code location validates against it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from sync_assets.core import embedded
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
        assert limits == {
            "football": 1,
            "stats": 1,
            "steam": 1,
            "torn": 1,
            "streams": 2,
            "operations": 1,
        }
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
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation" in done.stderr + done.stdout
