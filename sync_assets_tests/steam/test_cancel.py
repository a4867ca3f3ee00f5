"""A run canceled half-way keeps every completed app and marks nothing synced it did not write.

The job runs in a real separate process against a Postgres-backed Dagster instance; the test
cancels it the two ways production does: the UI's cancel (the run is marked CANCELING) and a
SIGTERM to the run worker.
"""

from __future__ import annotations

import signal
from pathlib import Path

import dagster as dg
import pytest

from sync_assets.sandbox import steam as sandbox
from sync_assets_tests.processes import postgres_dagster_home, start_run_worker, wait_while_running
from sync_assets_tests.steam.conftest import configure, query

REPO = Path(__file__).resolve().parents[2]


def _synced_apps(database_url: str) -> int:
    if not query(database_url, "SELECT to_regclass('steam.app_sync_status')")[0][0]:
        return 0
    return query(database_url, "SELECT count(*) FROM app_sync_status")[0][0]


# A run worker in its own process (and, multiprocess, one per step) imports Dagster and the
# project before its first commit: minutes on a loaded machine, beyond the default 300 s.
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("how", "executor"),
    [("ui_cancel", "in_process"), ("sigterm", "in_process"), ("sigterm", "multiprocess")],
)
def test_a_run_canceled_half_way_keeps_completed_work(
    how, executor, steam, database_url, pg_instance, tmp_path
) -> None:
    configure(steam, catalog_size=400)
    configure(steam, store=True, latency=0.02)
    home = postgres_dagster_home(tmp_path, pg_instance.sync_assets_pg_url)
    run_config = {
        "execution": {"config": {executor: {}}},
        "ops": {
            "steam_app_details": {
                "config": {
                    "batch_size": 400,
                    "chunk_size": 10,
                    "concurrency": 4,
                    "rate_limit_requests": 40,
                    "rate_limit_period_seconds": 1.0,
                }
            }
        },
    }
    worker = start_run_worker("steam_sync_job", run_config, home)
    try:
        wait_while_running(
            worker, lambda: _synced_apps(database_url) >= 40, "a few committed chunks"
        )
        [run] = pg_instance.get_runs()
        if how == "ui_cancel":
            pg_instance.report_run_canceling(run)  # what the UI's "Terminate" records first
        else:
            worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()

    run = pg_instance.get_run_by_id(run.run_id)
    assert run.status == dg.DagsterRunStatus.CANCELED, stderr[-3000:]
    event = pg_instance.get_latest_materialization_event(dg.AssetKey("steam_app_details"))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert meta["stopped_early"] is True and meta["stopped_by"] in ("request", "interrupt")

    synced = query(
        database_url, "SELECT count(*) FROM app_sync_status WHERE last_synced_at IS NOT NULL"
    )[0][0]
    assert 40 <= synced == meta["committed"] < 400  # canceled half-way, nothing lost
    # Nothing is marked synced that was not written: every synced available app has its row.
    assert query(
        database_url,
        "SELECT count(*) FROM app_sync_status s LEFT JOIN app_details d USING (appid)"
        " WHERE s.last_synced_at IS NOT NULL AND s.last_error IS NULL AND d.appid IS NULL",
    ) == [(0,)]
    assert query(database_url, "SELECT count(*) FROM app_details") == [(meta["succeeded"],)]
    fetched = {int(r["query"]["appids"]) for r in steam.recorded(sandbox.STORE_PREFIX)}
    assert len(fetched) < 400 and len(fetched) - meta["committed"] <= 4  # at most the in-flight
