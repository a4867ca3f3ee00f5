"""Steps of one run spread over Celery workers (`stats_refresh_celery_job`, the `celery_steps`
executor), on loopback: Redis started by the project, two `celery -A sync_assets.core.celery_app
worker -Q steps` processes, the test process orchestrating the run as `dagster job execute`
would. Every step completes in a worker, both workers take some, and all eleven tables land."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import psutil
import psycopg
import pytest

from sync_assets.stats.computations import TABLES
from sync_assets_tests.celery_loopback import celery_loopback, start_worker
from sync_assets_tests.conftest import create_database
from sync_assets_tests.dagster_internals import ReconstructableRepository
from sync_assets_tests.processes import REPO, Processes, instance_environment

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None, reason="redis-server is not installed (make redis)"
)
WORKERS = ("w1", "w2")
JOB = "stats_refresh_celery_job"


@dataclass
class StepWorkers:
    processes: Processes
    database_url: str

    def worker_pids(self) -> dict[int, str]:
        """pid -> worker name, for each worker and its pool processes."""
        pids: dict[int, str] = {}
        for name, process in self.processes.started:
            tree = psutil.Process(process.pid)
            for pid in (process.pid, *(child.pid for child in tree.children(recursive=True))):
                pids[pid] = name
        return pids


@pytest.fixture(scope="module")
def step_workers(
    tmp_path_factory: pytest.TempPathFactory, server_url: str
) -> Iterator[StepWorkers]:
    tmp = tmp_path_factory.mktemp("celery_steps")
    instance_env = instance_environment(tmp / "home", create_database(server_url, "dagster"))
    with celery_loopback(server_url, instance_env) as loopback:
        processes = Processes(tmp, loopback.env)
        try:
            for name in WORKERS:
                start_worker(processes, name, "steps")
            yield StepWorkers(processes, loopback.database_url)
        finally:
            processes.stop()


def step_hostnames(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """step key -> the Celery worker (name@host) dagster-celery says executed it."""
    hostnames: dict[str, str] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        if event is not None and event.step_key and data and "Celery worker" in data.metadata:
            hostnames[event.step_key] = str(data.metadata["Celery worker"].value)
    return hostnames


@pytest.mark.timeout(300)
def test_stats_steps_spread_over_two_workers(step_workers: StepWorkers) -> None:
    recon = ReconstructableRepository.for_module(
        "sync_assets", "defs", working_directory=str(REPO)
    ).get_reconstructable_job(JOB)
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(recon, instance=instance)
        assert result.success, [
            e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
        ]
        run_id = result.run_id
        steps = set(
            instance.get_execution_plan_snapshot(
                instance.get_run_by_id(run_id).execution_plan_snapshot_id  # type: ignore[union-attr,arg-type]
            ).step_keys_to_execute
        )
        assert len(steps) == 10  # eleven tables, the Elo pair in one step

        # Where each step ran: dagster-celery's record of the worker, and the pid on its events.
        hostnames = step_hostnames(instance, run_id)
        assert set(hostnames) == steps, hostnames
        assert {host.split("@")[0] for host in hostnames.values()} == set(WORKERS), hostnames
        worker_pids = step_workers.worker_pids()
        succeeded = {
            r.dagster_event.step_key: r.dagster_event.pid
            for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)
            if r.dagster_event is not None
        }
        assert set(succeeded) == steps
        assert os.getpid() not in succeeded.values()
        ran_in = {step: worker_pids.get(pid or -1) for step, pid in succeeded.items()}
        assert ran_in == {step: host.split("@")[0] for step, host in hostnames.items()}

        materialized = {
            r.asset_materialization.asset_key.path[-1]: r.asset_materialization.metadata[
                "rows"
            ].value
            for r in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if r.asset_materialization is not None
        }
    assert set(materialized) == {spec.name for spec in TABLES}
    with psycopg.connect(step_workers.database_url, autocommit=True) as conn:
        for spec in TABLES:
            query = f"SELECT count(*) FROM stats.{spec.name}"  # noqa: S608 - our table names
            (rows,) = conn.execute(query).fetchone()  # type: ignore[misc]
            assert rows == materialized[spec.name], spec.name
            assert rows > 0, spec.name
    step_workers.processes.assert_alive()
