"""The daemon end to end, in its own process on a Postgres-backed instance, with the sandbox on
loopback: a schedule tick becomes a run; a queue row in background_job_status becomes a
completed run written back to the row; a stream_sync_jobs request becomes a published Parquet
file; and the user sync skips a tick while its previous run is still going."""

from __future__ import annotations

import json
import time
from pathlib import Path

import dagster as dg
import psycopg
import pyarrow.parquet as pq
import pytest

from sync_assets.sandbox import torn as torn_sandbox
from sync_assets.sandbox.registry import build_sandbox, sandbox_environment, seed_app_tables
from sync_assets_tests.conftest import create_database
from sync_assets_tests.dagster_internals import TickStatus
from sync_assets_tests.processes import REPO, instance_environment, running, wait_for

ARTIFACTS = REPO / "test-artifacts"
USER_SYNC_SCHEDULES = ("user_sync_every_minute", "user_sync_schedule")
SLOW_TORN_SECONDS = 8.0  # per request (under the 10 s read timeout): 200 users, 20 at a time: ~80 s


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def schedule_ticks(instance: dg.DagsterInstance, name: str) -> list:
    for state in instance.all_instigator_state():
        if state.instigator_name == name:
            return list(reversed(instance.get_ticks(state.instigator_origin_id, state.selector_id)))
    return []


@pytest.mark.timeout(600)
def test_daemon_runs_schedules_and_sensors_end_to_end(
    server_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = build_sandbox(scale=0.2).start()
    env = instance_environment(tmp_path / "home", create_database(server_url, "dagster"))
    env |= sandbox_environment(sandbox.url)
    env |= {"DATABASE_URL": database_url, "OBJECT_STORAGE_URL": str(tmp_path / "buckets")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    seed_app_tables(0.2)
    torn_sandbox.seed_app_tables(5.0)  # 200 users, so one slow sync outlasts a minute
    sandbox.faults.add(path=torn_sandbox.PREFIX, kind="slow", delay=SLOW_TORN_SECONDS, count=-1)
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: sync_assets_tests.operations.daemon_location\n"
        "      location_name: sync_assets\n"
        f"      working_directory: {REPO}\n"
    )

    try:
        with running(tmp_path, env) as processes, dg.DagsterInstance.get() as instance:
            processes.start("daemon", "dagster-daemon", "run", "-w", str(workspace))
            wait_for(
                lambda: "Checking for new runs for sensor" in processes.output("daemon"),
                180,
                "the daemon's first sensor tick",
                every=1,
            )

            def skipped_tick():
                # The hourly user_sync_schedule is in the location too: a test that crosses the
                # top of an hour sees a skip naming the run it launched.
                launched = [
                    tick
                    for name in USER_SYNC_SCHEDULES
                    for tick in schedule_ticks(instance, name)
                    if tick.status == TickStatus.SUCCESS
                ]
                ticks = schedule_ticks(instance, "user_sync_every_minute")
                skipped = [t for t in ticks if t.status == TickStatus.SKIPPED]
                return (launched, skipped) if launched and skipped else None

            launched, skipped = wait_for(skipped_tick, 200, "a skipped user sync tick", every=2)
            # Ticks come newest first, and on a slow machine more than one of each may be there
            # by the first look: the skip is matched with the launch whose run it names.
            skip = skipped[0]
            [launch] = [t for t in launched if t.run_ids[0] in (skip.skip_reason or "")]
            first_run = instance.get_run_by_id(launch.run_ids[0])
            assert first_run.job_name == "user_sync_job"
            assert first_run.tags.get("dagster/schedule_name") in USER_SYNC_SCHEDULES
            assert skip.timestamp > launch.timestamp
            assert "never overlap" in skip.skip_reason
            # The start-up burst (seeded queue row and request, new source files, the first user
            # sync) has been served by now: the latency below is the steady-state one.
            (row_id,) = query(
                database_url,
                "INSERT INTO background_job_status (job_payload, priority) "
                'VALUES (\'{"triggeredBy": "daemon-test"}\', 5) RETURNING id',
            )[0]
            queued_at = time.monotonic()
            (request_id,) = query(
                database_url,
                "INSERT INTO streams.stream_sync_jobs (data_model_id) VALUES ('products') "
                "RETURNING id",
            )[0]

            def queue_row_finished():
                (status, results, error) = query(
                    database_url,
                    "SELECT status, results, error_message FROM background_job_status "
                    "WHERE id = %s",
                    (row_id,),
                )[0]
                return (status, results, error) if status in ("completed", "failed") else None

            status, results, error = wait_for(queue_row_finished, 240, "the queue row", every=0.5)
            latency = time.monotonic() - queued_at
            assert status == "completed", error
            run_id = (results or {}).get("dagster_run_id")
            run = instance.get_run_by_id(run_id) if run_id else None
            assert run is not None and run.job_name == "stats_refresh_job", results
            assert run.status == dg.DagsterRunStatus.SUCCESS
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / "daemon_queue_latency.json").write_text(
                json.dumps({"queue_row_insert_to_completed_seconds": round(latency, 1)})
            )
            print(f"queue row insert -> completed: {latency:.1f} s")

            def request_done():
                (status, error) = query(
                    database_url,
                    "SELECT status, error FROM streams.stream_sync_jobs WHERE id = %s",
                    (request_id,),
                )[0]
                return (status, error) if status in ("done", "failed") else None

            status, error = wait_for(request_done, 240, "the stream request", every=1)
            assert status == "done", error
            published = pq.read_table(tmp_path / "buckets" / "streams" / "products.parquet")
            assert published.num_rows > 0

            processes.assert_alive()
    finally:
        sandbox.stop()
