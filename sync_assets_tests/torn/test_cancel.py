"""A user sync sent SIGTERM half-way ends CANCELED and keeps every chunk it committed.

The job runs in its own OS process against a Postgres-backed Dagster instance, the way a run
worker does (`sync_assets_tests.run_job`), and is stopped the way an orchestrator stops one.
"""

from __future__ import annotations

import signal
from pathlib import Path

import dagster as dg
import pytest

from sync_assets.sandbox import torn as torn_sandbox
from sync_assets_tests.processes import postgres_dagster_home, start_run_worker, wait_while_running
from sync_assets_tests.torn.conftest import configure, query, seed

REPO = Path(__file__).resolve().parents[2]


def _users_written(database_url: str) -> int:
    if not query(database_url, "SELECT to_regclass('torn.user_data')")[0][0]:
        return 0
    return query(database_url, "SELECT count(*) FROM user_data")[0][0]


# A run worker in its own process (and, multiprocess, one per step) imports Dagster and the
# project before its first commit: minutes on a loaded machine, beyond the default 300 s.
@pytest.mark.timeout(900)
def test_a_sync_sent_sigterm_half_way_ends_canceled_and_keeps_its_chunks(
    torn, database_url, pg_instance, tmp_path
) -> None:
    seed(database_url, range(300))
    configure(torn, latency=0.05)
    home = postgres_dagster_home(tmp_path, pg_instance.sync_assets_pg_url)
    run_config = {"ops": {"user_data": {"config": {"concurrency": 2, "chunk_size": 5}}}}
    worker = start_run_worker("user_sync_job", run_config, home)
    try:
        wait_while_running(
            worker, lambda: _users_written(database_url) >= 10, "a few committed chunks"
        )
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=300)
    finally:
        if worker.poll() is None:
            worker.kill()

    [run] = pg_instance.get_runs()
    assert run.status == dg.DagsterRunStatus.CANCELED, stderr[-3000:]
    event = pg_instance.get_latest_materialization_event(dg.AssetKey("user_data"))
    meta = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert meta["stopped_early"] is True
    # Every user it fetched before the signal is written, and only those; the rest wait.
    written = _users_written(database_url)
    assert 10 <= written == meta["committed"] == meta["users_succeeded"] < 300
    fetched = len(torn.recorded(torn_sandbox.PREFIX))
    assert fetched - meta["committed"] <= 2  # at most the two in flight were not recorded
