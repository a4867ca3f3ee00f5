"""`dagster job execute -m sync_assets -j football_sync_job` in a subprocess, against the sandbox,
recorded in a temporary Dagster instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from sync_assets.sandbox import football as sandbox
from sync_assets_tests.football.conftest import LEAGUES, counts


def test_dagster_job_execute_runs_the_football_sync(
    football, database_url, tmp_path: Path, monkeypatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        **sandbox.environment(football.url),
        "DATABASE_URL": database_url,
        "DAGSTER_HOME": str(home),
    }
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "job", "execute", "-m", "sync_assets"]
        + ["-j", "football_sync_job"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert counts(database_url)["leagues"] == LEAGUES
    assert sandbox.DEMO_KEY not in completed.stdout + completed.stderr
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
        assert run.job_name == "football_sync_job" and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags["sync_assets/domain"] == "football"
        checks = [
            r
            for r in instance.get_records_for_run(run.run_id).records
            if r.event_log_entry.dagster_event
            and r.event_log_entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        ]
        assert len(checks) == 9
