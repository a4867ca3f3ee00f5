"""Orphaned runs: runs Dagster still records as in progress whose run worker process is gone.

A run worker killed with its process group (a `sync-assets dev` or code server killed with
SIGKILL, an OOM kill) can never write its own end, so its run stays STARTED, holds its domain's
slot in the run queue and makes every "is a sync in flight?" guard wait forever. Dagster's
DefaultRunLauncher cannot tell whether a worker lives (it does not support run worker health
checks), so:

- every run of the code location records its worker on itself as the `sync_assets/run_worker`
  tag (the project's executor writes it when the run starts): machine, pid and the process's
  start time (so a pid reused by another process is not taken for the worker);
- `worker_alive` answers from that tag, on the same machine only (None when it cannot tell:
  no tag, or another machine/container/pid namespace);
- `fail_orphan` marks a STARTED run whose worker is gone as failed through the instance
  (`report_run_failed`, reason UNEXPECTED_TERMINATION, so `run_retries` retries it as a worker
  that died); the queue sensors and the user sync schedule call it on the runs they wait for;
- `LivenessCheckingRunLauncher` (dagster.yaml `run_launcher`) gives run monitoring the same
  check for every run, every `run_monitoring.poll_interval_seconds`.

Runs whose worker cannot be seen from here are bounded by `dagster/max_runtime` (run monitoring).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg
import psutil
from dagster import DefaultRunLauncher

from sync_assets.core.dagster_internals import (
    CheckRunHealthResult,
    JobFailureData,
    RunFailureReason,
    WorkerStatus,
)

WORKER_TAG = "sync_assets/run_worker"
# A pid reused by a later process shows another start time than the worker's recorded one;
# the slack covers rounding of the start time.
START_SLACK_SECONDS = 2.0


@cache
def this_machine() -> str:
    """Host name, boot and pid namespace: two processes with equal values see the same pids."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(Path(path).read_text().strip() if "boot" in path else os.readlink(path))
        except OSError:
            parts.append("-")
    return "|".join(parts)


@dataclass(frozen=True)
class Worker:
    """The process executing a run, as recorded on the run."""

    run_id: str
    machine: str
    pid: int
    started: float

    def tag_value(self) -> str:
        return json.dumps(
            {
                "run_id": self.run_id,
                "machine": self.machine,
                "pid": self.pid,
                "started": self.started,
            }
        )

    @classmethod
    def of(cls, run: dg.DagsterRun) -> Worker | None:
        """The run's own worker (a retry copies its parent's tags: those name another run)."""
        raw = run.tags.get(WORKER_TAG)
        if not raw:
            return None
        try:
            data = json.loads(raw)
            worker = cls(
                str(data["run_id"]), str(data["machine"]), int(data["pid"]), float(data["started"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return worker if worker.run_id == run.run_id else None


def record_worker(instance: dg.DagsterInstance, run_id: str) -> None:
    """Tag the run with this process as its worker."""
    pid = os.getpid()
    worker = Worker(run_id, this_machine(), pid, psutil.Process(pid).create_time())
    instance.add_run_tags(run_id, {WORKER_TAG: worker.tag_value()})


def worker_alive(run: dg.DagsterRun) -> bool | None:
    """Whether the run's worker process still exists; None when it cannot be told from here."""
    worker = Worker.of(run)
    if worker is None or worker.machine != this_machine():
        return None
    try:
        process = psutil.Process(worker.pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return None
    return abs(started - worker.started) <= START_SLACK_SECONDS


def fail_orphan(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun | None:
    """Fail `run` if it is STARTED and its worker is gone; returns the run as now stored, or None
    when it was left alone."""
    if run.status != dg.DagsterRunStatus.STARTED or worker_alive(run) is not False:
        return None
    # A dead worker writes nothing more: if the run still says STARTED now, it always will.
    current = instance.get_run_by_id(run.run_id)
    if current is None or current.status != dg.DagsterRunStatus.STARTED:
        return current
    worker = Worker.of(current)
    instance.report_run_failed(
        current,
        f"Run worker (pid {worker.pid if worker else '?'}) is gone: it was killed or crashed "
        "without recording the run's end. Marked failed by sync_assets' orphan check.",
        JobFailureData(error=None, failure_reason=RunFailureReason.UNEXPECTED_TERMINATION),
    )
    return instance.get_run_by_id(run.run_id)


def live_runs(instance: dg.DagsterInstance, runs: Iterable[dg.DagsterRun]) -> list[dg.DagsterRun]:
    """`runs` without the orphans among them, which are failed on the way."""
    return [run for run in runs if fail_orphan(instance, run) is None]


def fail_orphans(instance: dg.DagsterInstance, tags: dict[str, str]) -> list[dg.DagsterRun]:
    """Fail every STARTED run carrying `tags` whose worker is gone; returns those failed."""
    started = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED], tags=tags)
    )
    return [failed for run in started if (failed := fail_orphan(instance, run)) is not None]


class LivenessCheckingRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, plus the run worker health check run monitoring asks for.

    A worker seen dead is FAILED (run monitoring then fails the run); a worker this process
    cannot see (no tag, another machine) counts as RUNNING, so only `dagster/max_runtime` ends it.
    """

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if worker_alive(run) is False:
            worker = Worker.of(run)
            return CheckRunHealthResult(
                WorkerStatus.FAILED, f"run worker pid {worker.pid if worker else '?'} is gone"
            )
        return CheckRunHealthResult(WorkerStatus.RUNNING)
