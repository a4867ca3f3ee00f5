"""No user's key and no ENCRYPTION_KEY anywhere: output, compute logs, or event storage.

The job runs the way a run worker runs it (a separate process, Postgres event storage, compute
logs captured, urllib3 logging captured at DEBUG) through every path
that could print a URL with a key in it: urllib3 retries of HTTP 500s and read timeouts, Torn
error codes retried with backoff, rejected keys, a tampered ciphertext, and a run that fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg
import yaml
from psycopg import sql

from sync_assets.sandbox import torn as sandbox
from sync_assets_tests.torn.conftest import configure, query, seed

REPO = Path(__file__).resolve().parents[2]
USERS = 12


def _dagster_home(tmp_path: Path, pg_url: str) -> tuple[Path, Path]:
    home, logs = tmp_path / "dagster_home", tmp_path / "compute_logs"
    home.mkdir()
    config = {
        "storage": {"postgres": {"postgres_url": pg_url}},
        "compute_logs": {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(logs)},
        },
        # urllib3's own lines (request URLs at DEBUG, retry warnings) go to the event log too.
        "python_logs": {"managed_python_loggers": ["urllib3"], "python_log_level": "DEBUG"},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home, logs


def _event_storage_text(pg_url: str) -> str:
    """Every row of every table of the Dagster database, as text."""
    url = "postgresql://" + pg_url.removeprefix("postgresql+psycopg2://")
    parts = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
            ).fetchall()
            parts.extend(row[0] for row in rows)
    return "\n".join(parts)


def test_no_key_leaks_from_a_retrying_failing_run(torn, database_url, pg_instance, tmp_path):
    seed(database_url, range(USERS), tampered=[6])
    configure(
        torn,
        slow_seconds=1.0,
        behaviours={
            "1": "error:2",  # incorrect key
            "2": "error:5:1",  # too many requests, then fine
            "3": "error:17",  # backend error every time
            "4": "http:500",  # urllib3 retries, with the URL in its warning
            "5": "slow",  # read timeouts, retried by urllib3
            "7": "malformed",
            "8": "error:18",  # paused
        },
    )
    home, logs = _dagster_home(tmp_path, pg_instance.sync_assets_pg_url)
    api = {"read_timeout": 0.4, "http_retries": 1, "error_retries": 1, "backoff_seconds": 0.01}
    run_config = {
        # In the run's own process (compute logs are captured for it all the same); one
        # process start instead of two keeps the test short.
        "execution": {"config": {"in_process": {}}},
        "resources": {"torn_api": {"config": api}},
        # 7 of 12 users fail: above this threshold the run fails, after writing the rest.
        "ops": {"user_data": {"config": {"fail_run_failed_share": 0.5, "concurrency": 4}}},
    }
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "sync_assets_tests.run_job",
            "user_sync_job",
            json.dumps(run_config),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    outcome = json.loads(process.stdout.strip().splitlines()[-1])
    assert outcome["success"] is False

    storage = _event_storage_text(pg_instance.sync_assets_pg_url)
    compute_logs = "\n".join(p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file())
    searched = {
        "stdout": process.stdout,
        "stderr": process.stderr,
        "compute logs": compute_logs,
        "event storage": storage,
    }
    secrets = [sandbox.api_key_at(i) for i in range(USERS)]
    secrets += [sandbox.DEMO_ENCRYPTION_KEY, sandbox.DEMO_ENCRYPTION_KEY.upper()]
    leaks = [(where, s[:4]) for where, text in searched.items() for s in secrets if s in text]
    assert leaks == []

    # The paths that would have leaked were taken: retries and URLs were logged, redacted.
    assert "every user failed" not in storage and "58% of users failed" in storage
    assert "Retrying" in storage and "key=[REDACTED]" in storage
    assert "[REDACTED]" in compute_logs or "[REDACTED]" in process.stderr
    for reason in ("key_incorrect", "backend_error", "http_error", "timeout", "decrypt_failed"):
        assert reason in storage
    assert sandbox.user_id_at(6) in storage  # user ids are reported, keys never
    assert query(database_url, "SELECT count(*) FROM user_data") == [(5,)]
    # The run failed, but the users it wrote were recorded as materialized.
    latest = pg_instance.get_latest_materialization_event(dg.AssetKey("user_data"))
    assert latest is not None and latest.run_id == outcome["run_id"]
    assert latest.asset_materialization.metadata["users_succeeded"].value == 5
