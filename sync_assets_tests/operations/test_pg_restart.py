"""PostgreSQL restarted under a running daemon: the daemon stays up, its sensors tick again on
their own, and every row of the app's stats queue (background_job_status) is served exactly once,
the rows queued before the outage and the rows queued after it."""

from __future__ import annotations

import time
from pathlib import Path

import dagster as dg
import psycopg
import pytest

from sync_assets.sandbox import club
from sync_assets.stats.queue import CLAIM_TAG, IN_FLIGHT
from sync_assets_tests.conftest import create_database
from sync_assets_tests.pg_faults import embedded_server_down
from sync_assets_tests.processes import REPO, instance_environment, running, wait_for

FINISHED = ("completed", "failed")


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def queue_rows(url: str) -> list[tuple]:
    """(id, status, claim, run id) of every queue row."""
    return query(
        url,
        "SELECT id::text, status, results->>'claim', results->>'dagster_run_id'"
        " FROM background_job_status ORDER BY created_at",
    )


def enqueue(url: str, who: str) -> str:
    return query(
        url,
        "INSERT INTO background_job_status (job_payload, priority) VALUES (%s, 5) RETURNING id::text",
        (psycopg.types.json.Jsonb({"triggeredBy": who}),),
    )[0][0]


def finished(url: str, row_id: str) -> tuple | None:
    [row] = [r for r in queue_rows(url) if r[0] == row_id]
    return row if row[1] in FINISHED else None


def stats_runs_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(job_name="stats_refresh_job", statuses=IN_FLIGHT), limit=10
        )
    )


def served_by(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether the run got as far as computing: a run failed at launch served no row."""
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
    ).records
    return bool(records)


@pytest.mark.timeout(900)
def test_a_postgres_restart_under_the_daemon_loses_and_repeats_no_queue_row(
    server_url: str, database_url: str, sandbox_env, tmp_path: Path, monkeypatch
) -> None:
    env = instance_environment(tmp_path / "home", create_database(server_url, "dagster"))
    env |= {"DATABASE_URL": database_url, "OBJECT_STORAGE_URL": str(tmp_path / "buckets")}
    # Starting a run worker (a fresh interpreter importing Dagster and the project) took about
    # 60 s on the loaded 2-core test machine, Dagster's default gRPC deadline for StartRun: past
    # it the run is failed at launch whatever the database does. The restart is what is tested.
    env["DAGSTER_GRPC_TIMEOUT_SECONDS"] = "240"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    club.seed_app_tables(0.2)  # the club, and a queue with one row waiting
    [waiting] = [r[0] for r in queue_rows(database_url) if r[1] == "queued"]
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: sync_assets\n"
        f"      location_name: sync_assets\n      working_directory: {REPO}\n"
    )
    with running(tmp_path, env) as processes, dg.DagsterInstance.get() as instance:
        processes.start("daemon", "dagster-daemon", "run", "-w", str(workspace))
        wait_for(lambda: finished(database_url, waiting), 300, "the row queued before", every=0.5)
        wait_for(lambda: not stats_runs_in_flight(instance), 300, "no stats run in flight", 0.5)
        log_seen = len(processes.output("daemon"))

        with embedded_server_down():
            # Down until the daemon has met the outage (a failed storage call or tick).
            wait_for(
                lambda: "OperationalError" in processes.output("daemon")[log_seen:],
                120,
                "the daemon to notice the database is gone",
                every=0.5,
            )
        back = time.monotonic()
        after = [enqueue(database_url, f"after-restart-{n}") for n in range(2)]
        for row_id in after:
            wait_for(lambda r=row_id: finished(database_url, r), 300, "a row queued after", 0.5)
        served = time.monotonic() - back
        print(f"postgres back -> the new queue rows finished: {served:.1f} s")
        # A run that failed at launch (a slow start on a loaded machine) is retried by
        # run_retries: wait for that retry too before judging the rows.
        wait_for(lambda: not stats_runs_in_flight(instance), 300, "no stats run in flight", 0.5)
        processes.assert_alive()

        rows = queue_rows(database_url)
        ours = [r for r in rows if r[0] in [waiting, *after]]
        assert [r[1] for r in ours] == ["completed"] * 3, rows
        assert not [r for r in rows if r[1] not in FINISHED], rows
        # Every claim was served by exactly one run that computed, the one its rows name.
        for claim in {r[2] for r in ours}:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={CLAIM_TAG: claim}))
            serving = [run for run in runs if served_by(instance, run)]
            assert len(serving) == 1, (claim, [(r.run_id, r.status) for r in runs])
            assert serving[0].status == dg.DagsterRunStatus.SUCCESS
            assert {r[3] for r in ours if r[2] == claim} == {serving[0].run_id}
