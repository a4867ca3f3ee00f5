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

from sync_assets.sandbox import torn as sandbox
from sync_assets_tests.processes import run_outputs, secret_search_home
from sync_assets_tests.torn.conftest import configure, query, seed

REPO = Path(__file__).resolve().parents[2]
USERS = 12


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
    home, logs = secret_search_home(tmp_path, pg_instance.sync_assets_pg_url)
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
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    outcome = json.loads(process.stdout.strip().splitlines()[-1])
    assert outcome["success"] is False

    searched = run_outputs(process, logs, pg_instance.sync_assets_pg_url)
    storage, compute_logs = searched["event storage"], searched["compute logs"]
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
