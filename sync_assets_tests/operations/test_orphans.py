"""Orphaned runs recover on their own: run workers are killed for real (SIGKILL of their whole
process tree), never by editing storage, and the queue that waited on them moves on.

- stats: the daemon (and its code server and run worker) killed mid queue run, then started
  again: the orphan is failed, run_retries serves its rows again, a row queued meanwhile is
  served; the seconds from restart to each step go to test-artifacts/orphan_recovery.json.
- stats without run monitoring: a queue run killed, and the queue sensor fails it itself.
- streams: a stream run killed while it waits on its model's lock: the request sensor fails it
  and a new request gets its run.
- torn: a user sync killed mid-run: the hourly schedule, which skipped while it lived, starts
  the next sync.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import psutil
import psycopg
import pytest

from sync_assets.core import orphans
from sync_assets.core.dagster_internals import WILL_RETRY_TAG
from sync_assets.core.orphans import WORKER_TAG, Worker, worker_alive
from sync_assets.core.postgres import lock_key
from sync_assets.sandbox import club
from sync_assets.sandbox.registry import build_sandbox, sandbox_environment
from sync_assets.stats import defs as stats_defs
from sync_assets.stats.queue import CLAIM_TAG, stats_job_queue_sensor
from sync_assets.streams.jobs import stream_sync_failure_sensor, stream_sync_jobs_sensor
from sync_assets.torn import defs as torn_defs
from sync_assets_tests.conftest import create_database
from sync_assets_tests.dagster_internals import AUTO_RETRY_RUN_ID_TAG
from sync_assets_tests.processes import REPO, instance_environment, running, wait_for
from sync_assets_tests.streams import conftest as streams_fixtures
from sync_assets_tests.streams.conftest import CSV
from sync_assets_tests.torn import conftest as torn_fixtures
from sync_assets_tests.torn.conftest import configure, seed

ARTIFACTS = REPO / "test-artifacts"
# The streams and torn domains' own fixtures, for the tests of their queues below.
streams_fixture = streams_fixtures.streams
torn_fixture, torn_server = torn_fixtures.torn, torn_fixtures.torn_server


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def kill_tree(pid: int) -> list[int]:
    """SIGKILL `pid`'s process group and every descendant (as killing `sync-assets dev`'s group
    and the sessions it started does); returns the pids killed, once all are gone."""
    root = psutil.Process(pid)
    tree = [root, *root.children(recursive=True)]
    groups = set()
    for process in tree:
        try:
            groups.add(os.getpgid(process.pid))
        except ProcessLookupError:
            pass
    for group in groups:
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for process in tree:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=30)
    assert not alive, f"still alive after SIGKILL: {alive}"
    return [p.pid for p in tree]


def run_of(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return run


# --- the liveness check itself ------------------------------------------------------------


def _run_with_worker(run_id: str, **worker: object) -> dg.DagsterRun:
    me = psutil.Process()
    fields = {
        "run_id": run_id,
        "machine": orphans.this_machine(),
        "pid": me.pid,
        "started": me.create_time(),
    }
    fields.update(worker)
    tag = Worker(**fields).tag_value()  # type: ignore[arg-type]
    return dg.DagsterRun(job_name="x", run_id="run-1", tags={WORKER_TAG: tag})


def test_the_worker_check_tells_live_dead_reused_and_unknown_workers() -> None:
    assert worker_alive(_run_with_worker("run-1")) is True
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert worker_alive(_run_with_worker("run-1", pid=gone.pid)) is False
    # the pid now belongs to a process started after the run's worker: not the worker
    assert worker_alive(_run_with_worker("run-1", started=time.time() - 3600)) is False
    assert worker_alive(_run_with_worker("run-1", machine="elsewhere|boot|pid:[1]")) is None
    # a retry copies its parent's tags: the parent's worker says nothing about the retry
    assert worker_alive(_run_with_worker("parent-run")) is None
    assert worker_alive(dg.DagsterRun(job_name="x", run_id="run-1")) is None


# --- stats: the operator's crash, with the real daemon --------------------------------------


@pytest.fixture
def daemon_env(
    server_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dict[str, str], object, Path]]:
    sandbox = build_sandbox(scale=0.2).start()
    env = instance_environment(tmp_path / "home", create_database(server_url, "dagster"))
    env |= sandbox_environment(sandbox.url)
    env |= {"DATABASE_URL": database_url, "OBJECT_STORAGE_URL": str(tmp_path / "buckets")}
    # On this shared 2-core machine the code server may need over Dagster's 60 s default to
    # start a run worker (it imports the code location); such a launch fails, and is retried.
    env["DAGSTER_GRPC_TIMEOUT_SECONDS"] = "240"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    club.seed_app_tables(0.2)  # the club and its queue only: no other domain's runs compete
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: sync_assets\n"
        f"      location_name: sync_assets\n      working_directory: {REPO}\n"
    )
    try:
        yield env, sandbox, workspace
    finally:
        sandbox.stop()


@pytest.mark.timeout(2400)
def test_a_killed_dev_leaves_no_jammed_stats_queue(
    daemon_env, database_url: str, tmp_path: Path
) -> None:
    env, sandbox, workspace = daemon_env
    # Each cache revalidation outlasts the client's 10 s timeout (and is retried): the queue run
    # is certainly mid-way when it is killed.
    sandbox.faults.add(path=club.PREFIX, kind="slow", delay=30.0, count=-1)
    (seeded_row,) = query(
        database_url, "SELECT id FROM background_job_status WHERE status = 'queued'"
    )[0]

    with running(tmp_path, env) as processes, dg.DagsterInstance.get() as instance:
        daemon = processes.start("daemon", "dagster-daemon", "run", "-w", str(workspace))

        def queue_run_mid_way() -> dg.DagsterRun | None:
            (results,) = query(
                database_url,
                "SELECT results FROM background_job_status WHERE id = %s",
                (seeded_row,),
            )[0]
            run_id = (results or {}).get("dagster_run_id")
            if not run_id or not sandbox.recorded(club.PREFIX):
                return None
            run = run_of(instance, run_id)
            return run if Worker.of(run) else None

        orphan = wait_for(queue_run_mid_way, 600, "the queue run mid-way", every=0.5)
        worker = Worker.of(orphan)
        assert worker is not None
        killed = kill_tree(daemon.pid)
        assert worker.pid in killed, "the run worker was not in the killed tree"
        assert run_of(instance, orphan.run_id).status == dg.DagsterRunStatus.STARTED
        assert query(
            database_url, "SELECT status FROM background_job_status WHERE id = %s", (seeded_row,)
        ) == [("processing",)]
        sandbox.faults.clear()
        (new_row,) = query(
            database_url,
            "INSERT INTO background_job_status (job_payload, priority) "
            'VALUES (\'{"triggeredBy": "after-crash"}\', 1) RETURNING id',
        )[0]

        daemon = processes.start("daemon-restarted", "dagster-daemon", "run", "-w", str(workspace))
        restarted = time.monotonic()
        seconds: dict[str, float] = {}

        def orphan_failed() -> dg.DagsterRun | None:
            run = run_of(instance, orphan.run_id)
            return run if run.status == dg.DagsterRunStatus.FAILURE else None

        wait_for(orphan_failed, 300, "the orphan to be failed", every=0.5)
        seconds["restart_to_orphan_failed"] = time.monotonic() - restarted

        def row_status(row_id: str) -> tuple[str, dict, str | None]:
            return query(
                database_url,
                "SELECT status, results, error_message FROM background_job_status WHERE id = %s",
                (row_id,),
            )[0]

        def finished(row_id: str):
            def check():
                status, results, error = row_status(row_id)
                return (status, results, error) if status in ("completed", "failed") else None

            return check

        wait_for(lambda: row_status(new_row)[0] != "queued", 300, "the new row claimed", every=0.5)
        seconds["restart_to_new_row_claimed"] = time.monotonic() - restarted
        status, results, error = wait_for(finished(new_row), 300, "the new row served", every=0.5)
        seconds["restart_to_new_row_served"] = time.monotonic() - restarted
        assert status == "completed", error
        served_by = run_of(instance, results["dagster_run_id"])
        assert served_by.status == dg.DagsterRunStatus.SUCCESS
        ARTIFACTS.mkdir(exist_ok=True)
        figures = {k: round(v, 1) for k, v in seconds.items()}
        (ARTIFACTS / "orphan_recovery.json").write_text(json.dumps(figures))
        print(f"after restart: {figures}")

        # The orphan was failed as a worker that died (not by the queue sensor editing its
        # rows), so run_retries runs it again for its rows: the row ends as the last attempt did.
        failure = instance.get_records_for_run(
            orphan.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
        ).records
        message = failure[-1].event_log_entry.dagster_event.message
        assert f"pid {worker.pid}" in message and "is gone" in message, message
        assert run_of(instance, orphan.run_id).tags.get(WILL_RETRY_TAG) == "true"
        status, results, error = wait_for(finished(seeded_row), 600, "the orphan's row", every=1)
        attempts = [run_of(instance, orphan.run_id)]
        while retry_id := attempts[-1].tags.get(AUTO_RETRY_RUN_ID_TAG):
            attempts.append(run_of(instance, retry_id))
        last = attempts[-1]
        assert 2 <= len(attempts) <= 3, [a.status for a in attempts]  # run_retries.max_retries: 2
        assert results["dagster_run_id"] == last.run_id
        expected = "completed" if last.status == dg.DagsterRunStatus.SUCCESS else "failed"
        assert status == expected, (status, last.status, error)
        assert daemon.poll() is None, processes.output("daemon-restarted")[-3000:]


# --- streams and torn: a run worker killed, then the sensor or schedule evaluated -----------


@pytest.fixture
def home_instance(
    server_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dg.DagsterInstance]:
    """The repository's dagster.yaml on a fresh Postgres database, as DAGSTER_HOME (so a run
    worker started as a process uses the same instance)."""
    env = instance_environment(tmp_path / "home", create_database(server_url, "dagster"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.get() as instance:
        yield instance


def start_run_worker(processes, job: str, run_config: dict, tags: dict[str, str]):
    """`job` run in a process of its own, as a run worker executes it."""
    return processes.start(
        "worker",
        "python",
        "-m",
        "sync_assets_tests.run_job",
        job,
        json.dumps(run_config),
        json.dumps(tags),
    )


def started_with_worker(instance: dg.DagsterInstance, job: str) -> dg.DagsterRun:
    def find() -> dg.DagsterRun | None:
        runs = instance.get_runs(
            filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.STARTED])
        )
        return next((r for r in runs if Worker.of(r)), None)

    return wait_for(find, 180, f"a {job} run with its worker recorded", every=0.25)


@pytest.mark.timeout(600)
def test_a_killed_stream_run_does_not_hold_the_request_table(
    streams_fixture, home_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    streams = streams_fixture

    instance = home_instance
    for model in ("people", "orders"):
        streams.write(f"sources/{model}.csv", CSV)
        streams.model(model, "csv")
    first = streams.request("people")

    def evaluate() -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, resources=streams.resources())
        return stream_sync_jobs_sensor(context)

    [request] = evaluate().run_requests
    # No retries for this run (dagster/max_retries), so its request ends `failed` at once.
    tags = {**request.tags, "dagster/partition": "people", "dagster/max_retries": "0"}
    with psycopg.connect(streams.url, autocommit=True) as holder:
        # The model's lock is held: the run waits in the middle of its step until it is killed.
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key("streams:stream_parquet:people"),))
        with running(tmp_path, {}) as processes:
            worker = start_run_worker(processes, "stream_sync_job", {}, tags)
            orphan = started_with_worker(instance, "stream_sync_job")
            wait_for(
                lambda: (
                    streams.query(
                        "SELECT status FROM streams.stream_sync_jobs WHERE id = %s", (first,)
                    )
                    == [("running",)]
                ),
                120,
                "the request marked running",
            )
            kill_tree(worker.pid)
    assert run_of(instance, orphan.run_id).status == dg.DagsterRunStatus.STARTED
    second = streams.request("orders")

    result = evaluate()
    failed = run_of(instance, orphan.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert not failed.is_complete_and_waiting_to_retry
    assert [r.tags["sync_assets/stream_sync_job_id"] for r in result.run_requests] == [str(second)]
    # The failure sensor (run by the daemon on the orphan's failure) closes the request.
    [failure] = instance.get_records_for_run(
        orphan.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records
    context = dg.build_run_status_sensor_context(
        sensor_name="stream_sync_failure_sensor",
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=failed,
        resources=streams.resources(),
    ).for_run_failure()
    stream_sync_failure_sensor(context)
    status, error = streams.query(
        "SELECT status, error FROM streams.stream_sync_jobs WHERE id = %s", (first,)
    )[0]
    assert status == "failed" and "is gone" in error, error


@pytest.mark.timeout(600)
def test_a_killed_user_sync_does_not_skip_the_next_hour(
    torn_fixture, database_url: str, home_instance: dg.DagsterInstance, tmp_path: Path
) -> None:

    instance = home_instance
    seed(database_url, range(40))
    configure(torn_fixture, latency=2.0)  # 40 users one at a time: the sync lasts over a minute

    def tick() -> dg.RunRequest | dg.SkipReason:
        schedule = torn_defs.resolve_schedule_def("user_sync_schedule")
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=dt.datetime(2026, 1, 2, 5, tzinfo=dt.UTC)
        )
        result = schedule.evaluate_tick(context)
        return dg.SkipReason(result.skip_message) if result.skip_message else result.run_requests[0]

    run_config = {"ops": {"user_data": {"config": {"concurrency": 1}}}}
    with running(tmp_path, {}) as processes:
        worker = start_run_worker(processes, "user_sync_job", run_config, {})
        orphan = started_with_worker(instance, "user_sync_job")
        alive = tick()
        assert isinstance(alive, dg.SkipReason) and orphan.run_id in alive.skip_message
        kill_tree(worker.pid)
    assert run_of(instance, orphan.run_id).status == dg.DagsterRunStatus.STARTED

    after = tick()
    assert isinstance(after, dg.RunRequest), after
    failed = run_of(instance, orphan.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    # A worker that died is retried by run_retries (dagster.yaml), never a sync whose asset raised.
    assert failed.tags.get(WILL_RETRY_TAG) == "true"


@pytest.mark.timeout(600)
def test_the_stats_queue_sensor_fails_a_killed_queue_run_itself(
    sandbox_env, database_url: str, home_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """Without run monitoring (the daemon on another machine than the run workers, as in
    deploy/docker-compose.yaml), the queue sensor, which runs beside the workers, does it."""
    instance = home_instance
    club.seed_app_tables(0.2)
    sandbox_env.faults.add(path=club.PREFIX, kind="slow", delay=30.0, count=-1)

    def tick() -> dg.SensorResult | dg.SkipReason:
        context = dg.build_sensor_context(instance=instance, resources=stats_defs.resources)
        return stats_job_queue_sensor(context)

    def statuses() -> dict[str, tuple[str, str | None]]:
        rows = query(database_url, "SELECT id, status, error_message FROM background_job_status")
        return {str(r[0]): (r[1], r[2]) for r in rows}

    [request] = tick().run_requests
    claimed = [i for i, (status, _) in statuses().items() if status == "processing"]
    assert claimed
    # No retries for this run, so its rows are failed as soon as it is.
    tags = {**request.tags, "dagster/max_retries": "0"}
    with running(tmp_path, {}) as processes:
        worker = start_run_worker(processes, "stats_refresh_job", {}, tags)
        orphan = started_with_worker(instance, "stats_refresh_job")
        wait_for(lambda: sandbox_env.recorded(club.PREFIX), 180, "the run's first revalidation")
        assert isinstance(tick(), dg.SkipReason)  # a live run is in flight
        kill_tree(worker.pid)
    sandbox_env.faults.clear()
    assert run_of(instance, orphan.run_id).status == dg.DagsterRunStatus.STARTED
    (new_row,) = query(
        database_url,
        "INSERT INTO background_job_status (job_payload) VALUES ('{}') RETURNING id",
    )[0]

    result = tick()
    assert run_of(instance, orphan.run_id).status == dg.DagsterRunStatus.FAILURE
    after = statuses()
    for row in claimed:
        status, error = after[row]
        assert status == "failed" and "is gone" in (error or ""), (status, error)
    assert after[str(new_row)][0] == "processing"
    [served] = result.run_requests
    assert served.tags[CLAIM_TAG] != request.tags[CLAIM_TAG]
