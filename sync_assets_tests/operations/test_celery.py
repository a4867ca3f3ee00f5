"""Runs in long-lived Celery workers (deploy/dagster-celery.yaml), on loopback: Redis started by
the project, two `celery -A sync_assets.core.celery_app worker` processes, the daemon on the
repository's workspace. Runs spread over both workers; a worker SIGKILLed mid-run has its run
failed by run monitoring and retried by run_retries on the other worker, with every row there
once; a broker restart while the workers idle is survived; a broker that is down at launch
fails the run with a message naming SYNC_ASSETS_BROKER_URL."""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psutil
import psycopg
import pytest
from dagster import DagsterEventType

from sync_assets import definitions
from sync_assets.core.broker import BROKER_SETTING, LocalRedis
from sync_assets.sandbox import torn as torn_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests.celery_loopback import celery_loopback, start_worker
from sync_assets_tests.conftest import create_database
from sync_assets_tests.dagster_internals import (
    LoadableTargetOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
    ReconstructableRepository,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from sync_assets_tests.processes import REPO, Processes, instance_environment, wait_for

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (make redis)"
)
QUEUES = "dagster,rate_limited,stats,streams"
WORKERS = ("w1", "w2")
PID_EVENT = re.compile(r"Started process for run \(pid: (\d+)\)")


@dataclass
class Deployment:
    processes: Processes
    instance: dg.DagsterInstance
    redis: LocalRedis
    sandbox: SandboxServer
    env: dict[str, str]
    database_url: str

    def worker_of_pid(self, pid: int) -> str | None:
        """The worker whose process tree holds `pid` (a run executes in its pool process)."""
        for name, process in self.processes.started:
            if name not in WORKERS:
                continue
            try:
                tree = psutil.Process(process.pid)
                pids = {process.pid, *(c.pid for c in tree.children(recursive=True))}
            except psutil.NoSuchProcess:
                continue
            if pid in pids:
                return name
        return None

    def launch(self, job_name: str) -> str:
        """Submit a run of `job_name` to the instance's run queue, as the UI does; the daemon
        dequeues it and the Celery launcher hands it to a worker."""
        job = definitions.defs.resolve_job_def(job_name)
        recon = ReconstructableRepository.for_module(
            "sync_assets", "defs", working_directory=str(REPO)
        ).get_reconstructable_job(job_name)
        location = ManagedGrpcPythonEnvCodeLocationOrigin(
            LoadableTargetOrigin(
                executable_path=sys.executable,
                module_name="sync_assets",
                working_directory=str(REPO),
            ),
            location_name="sync_assets",
        )
        run = self.instance.create_run_for_job(
            job,
            tags=job.tags,
            remote_job_origin=RemoteJobOrigin(
                RemoteRepositoryOrigin(location, "__repository__"), job_name
            ),
            job_code_origin=recon.get_python_origin(),
        )
        self.instance.submit_run(run.run_id, workspace=None)  # type: ignore[arg-type]
        return run.run_id

    def finished(self, run_id: str, timeout: float = 240) -> dg.DagsterRun:
        def done():
            run = self.instance.get_run_by_id(run_id)
            return run if run is not None and run.is_finished else None

        return wait_for(done, timeout, f"run {run_id} to finish", every=0.5)

    def run_pid(self, run_id: str) -> int | None:
        for record in self.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
            match = PID_EVENT.search(record.message or "")
            if match:
                return int(match.group(1))
        return None

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(statement, params).fetchall()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, server_url: str) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("celery")
    instance_env = {
        **instance_environment(
            tmp / "home",
            create_database(server_url, "dagster"),
            config=REPO / "deploy" / "dagster-celery.yaml",
        ),
        "OBJECT_STORAGE_URL": str(tmp / "buckets"),
    }
    with celery_loopback(server_url, instance_env) as loopback:
        processes = Processes(tmp, loopback.env)
        try:
            for name in WORKERS:
                start_worker(processes, name, QUEUES)
            processes.start("daemon", "dagster-daemon", "run", "-w", str(REPO / "workspace.yaml"))
            with dg.DagsterInstance.get() as instance:
                yield Deployment(
                    processes,
                    instance,
                    loopback.redis,
                    loopback.sandbox,
                    loopback.env,
                    loopback.database_url,
                )
        finally:
            processes.stop()


def queue_row_status(deployment: Deployment, row_id: str) -> tuple | None:
    (status, results, error) = deployment.query(
        "SELECT status, results, error_message FROM background_job_status WHERE id = %s",
        (row_id,),
    )[0]
    return (status, results, error) if status in ("completed", "failed") else None


@pytest.mark.timeout(600)
def test_runs_spread_over_two_workers(deployment: Deployment) -> None:
    # A queue row (the stats sensor's), the seeded stream request (the stream sensor's) and a
    # football sync launched by hand: three runs at once, so both workers take some.
    (row_id,) = deployment.query(
        "INSERT INTO background_job_status (job_payload, priority) "
        'VALUES (\'{"triggeredBy": "celery-test"}\', 5) RETURNING id'
    )[0]
    football = deployment.launch("football_sync_job")
    status, results, error = wait_for(
        lambda: queue_row_status(deployment, row_id), 300, "the queue row", every=1
    )
    assert status == "completed", error
    stats = deployment.finished(results["dagster_run_id"])

    def stream_runs():
        runs = deployment.instance.get_runs(filters=dg.RunsFilter(job_name="stream_sync_job"))
        return runs if runs and all(r.is_finished for r in runs) else None

    runs = [deployment.finished(football), stats, *wait_for(stream_runs, 300, "stream runs")]
    for run in runs:
        assert run.status == dg.DagsterRunStatus.SUCCESS, run.run_id
    workers = {
        run.run_id: deployment.worker_of_pid(deployment.run_pid(run.run_id) or -1) for run in runs
    }
    assert None not in workers.values(), workers
    assert set(workers.values()) == set(WORKERS), workers
    queues = {
        run.job_name: deployment.instance.get_run_by_id(run.run_id).tags["dagster-celery/queue"]
        for run in runs
    }
    assert queues == {
        "football_sync_job": "rate_limited",
        "stats_refresh_job": "stats",
        "stream_sync_job": "streams",
    }
    assert deployment.query("SELECT count(*) FROM football.seasons")[0][0] > 0
    assert deployment.query("SELECT count(*) FROM stats.season_stats")[0][0] > 0
    deployment.processes.assert_alive()


@pytest.mark.timeout(600)
def test_killed_worker_run_is_retried_on_the_other_worker(deployment: Deployment) -> None:
    deployment.sandbox.reset()
    deployment.sandbox.faults.add(path=torn_sandbox.PREFIX, kind="slow", delay=4.0, count=-1)
    deployment.launch("user_sync_job")

    def mid_run():
        # The hourly user_sync_schedule may have started one first: whichever runs is killed.
        started = deployment.instance.get_runs(
            filters=dg.RunsFilter(job_name="user_sync_job", statuses=[dg.DagsterRunStatus.STARTED])
        )
        for run in deployment.instance.get_runs(filters=dg.RunsFilter(job_name="user_sync_job")):
            if run.is_finished:
                logs = [r.message for r in deployment.instance.all_logs(run.run_id)]
                raise AssertionError(f"user sync {run.status} before the kill: {logs[-8:]}")
        for run in started:
            pid = deployment.run_pid(run.run_id)
            # In its step, the sync waits 4 s for its first answers. (The sandbox records a
            # request when it answers: waiting to see one left the kill a fraction of a second
            # before the run's end, and a run seen finished failed the test.)
            in_step = deployment.instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_START)
            if pid and in_step:
                return run.run_id, pid
        return None

    killed, pid = wait_for(mid_run, 240, "the user sync to be fetching")
    victim = deployment.worker_of_pid(pid)
    [process] = [p for name, p in deployment.processes.started if name == victim]
    os.killpg(process.pid, signal.SIGKILL)  # the worker and its pool process, as a lost node
    process.wait()
    deployment.sandbox.faults.clear()

    assert deployment.finished(killed).status == dg.DagsterRunStatus.FAILURE
    failure = " ".join(r.message or "" for r in deployment.instance.all_logs(killed))
    assert f"Celery worker {victim}@" in failure and "no longer answers" in failure

    def retry():
        runs = deployment.instance.get_runs(
            filters=dg.RunsFilter(tags={"dagster/parent_run_id": killed})
        )
        return runs[0] if runs and runs[0].is_finished else None

    retried = wait_for(retry, 300, "the retry of the killed run", every=1)
    assert retried.status == dg.DagsterRunStatus.SUCCESS
    survivor = deployment.worker_of_pid(deployment.run_pid(retried.run_id) or -1)
    assert survivor is not None and survivor != victim
    [materialization] = [
        r.asset_materialization
        for r in deployment.instance.all_logs(
            retried.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
        )
    ]
    succeeded = materialization.metadata["users_succeeded"].value
    users = deployment.query("SELECT count(*) FROM torn.user_keys")[0][0]
    rows, distinct = deployment.query(
        "SELECT count(*), count(DISTINCT user_id) FROM torn.user_data"
    )[0]
    # Every user the retry fetched has one row (the sandbox's odd users fail by design).
    assert rows == distinct == succeeded >= users - 2


@pytest.mark.timeout(600)
def test_broker_restart_and_broker_down(deployment: Deployment) -> None:
    # Restart while the surviving worker idles: it reconnects and takes the next run.
    def reconnections() -> int:
        return sum(deployment.processes.output(name).count("Connected to") for name in WORKERS)

    before = reconnections()
    deployment.redis.stop(keep_folder=True)
    deployment.redis.start()
    # Kombu keeps its queue bindings in Redis: a run published before a worker has reconnected
    # (and declared its queues again) on this unsaved Redis would be routed nowhere.
    wait_for(lambda: reconnections() > before, 120, "a worker to reconnect", every=0.5)
    after_restart = deployment.finished(deployment.launch("football_sync_job"))
    assert after_restart.status == dg.DagsterRunStatus.SUCCESS
    seasons = deployment.query("SELECT count(*) FROM football.seasons")[0][0]

    # Down at launch: the run fails naming the setting, and nothing is written.
    deployment.redis.stop(keep_folder=True)
    try:
        deployment.sandbox.reset()
        down = deployment.finished(deployment.launch("football_sync_job"))
        assert down.status == dg.DagsterRunStatus.FAILURE
        text = " ".join(r.message or "" for r in deployment.instance.all_logs(down.run_id))
        errors = [
            str(r.dagster_event.event_specific_data)
            for r in deployment.instance.all_logs(down.run_id)
            if r.dagster_event is not None
        ]
        assert BROKER_SETTING in text + " ".join(errors)
        assert deployment.sandbox.recorded("/football") == []
        assert deployment.query("SELECT count(*) FROM football.seasons")[0][0] == seasons
    finally:
        deployment.redis.start()
