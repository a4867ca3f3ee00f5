"""STEAM_API_KEY travels in the app list's query string, and is nowhere else: not in output,
compute logs, Dagster's event storage or the stored error.

The job runs as a run worker runs it (its own process, Postgres event storage, compute logs
captured, urllib3 logging captured at DEBUG, so every URL it logs is stored) through the paths
that print a URL: a dropped connection and an HTTP 500 retried by urllib3, then a refused key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sync_assets.sandbox import steam as sandbox
from sync_assets_tests.processes import run_outputs, secret_search_home
from sync_assets_tests.steam.conftest import query

REPO = Path(__file__).resolve().parents[2]
STORE_LIST = sandbox.API_PREFIX + "/IStoreService/GetAppList/v1"


def test_no_key_leaks_from_a_retried_then_refused_app_list(
    steam, database_url, pg_instance, tmp_path
) -> None:
    # Page 1 answers; page 2 is dropped, then a 500, then answers; page 3 refuses the key.
    steam.faults.add(path=STORE_LIST, kind="drop", skip=1, count=1)
    steam.faults.add(path=STORE_LIST, kind="status", status=500, count=1)
    steam.faults.add(path=STORE_LIST, kind="status", status=403, skip=1, count=1)
    home, logs = secret_search_home(tmp_path, pg_instance.sync_assets_pg_url)
    run_config = {
        "execution": {"config": {"in_process": {}}},
        "resources": {"steam_api": {"config": {"page_size": 20, "backoff_factor": 0.01}}},
        "ops": {"steam_app_details": {"config": {"batch_size": 5}}},
    }
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "sync_assets_tests.run_job",
            "steam_sync_job",
            json.dumps(run_config),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        cwd=REPO,
        timeout=600,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    assert json.loads(process.stdout.strip().splitlines()[-1])["success"] is False
    assert [r["status"] for r in steam.recorded(STORE_LIST)] == [200, 0, 500, 200, 403]

    searched = run_outputs(process, logs, pg_instance.sync_assets_pg_url)
    storage = searched["event storage"]
    key = sandbox.DEMO_API_KEY
    leaks = [
        where for where, text in searched.items() for form in (key, key.lower()) if form in text
    ]
    assert leaks == []
    # The paths that would have leaked were taken: retries and URLs were logged, redacted.
    assert "Retrying" in storage and "key=[REDACTED]" in storage
    assert "Steam refused the key in STEAM_API_KEY" in storage
    assert query(database_url, "SELECT count(*) FROM apps") == [(0,)]
