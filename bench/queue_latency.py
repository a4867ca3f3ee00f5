"""Queue latency: a stats queue row (`background_job_status`) from insert to `completed`, under
the default run launcher (a fresh run worker process per run) and under warm Celery run
workers (deploy/dagster-celery.yaml, Redis started here), in the same run and on the same
machine, with where the wait goes.

Each mode: the daemon on the repository's workspace (embedded Postgres, the club stand-in on
loopback), its start-up backlog left to finish, then ROWS rows inserted one at a time, each
waited for. Parts of each row's wait, from Dagster's event log:
  sensor    insert -> run created by the queue sensor (a watching tick claims within 0.25 s;
            between ticks, the daemon's next sensor pass)
  queue     run created -> taken from the run queue and handed to the launcher (RUN_STARTING;
            dequeue_interval_seconds)
  launch    -> the run's process has started (RUN_START: a process spawned and its imports, or
            a Celery worker taking the task)
  run       started -> run success (the eleven stats steps)
  writeback run success -> the row reads `completed` (the queue sensor's watching tick, or a
            run-status sensor at the next pass)
Ratio: median seconds / LIMIT (the issue's goal: 4 s with warm workers).

`--pause N` waits a random 0..N s (seeded) before each insert. Back to back (0, the default),
each row is queued just after the previous one completed, so in step with the daemon's 5 s
sensor pass: a claiming tick ends, and the next starts at the next pass, after the next row is
already waiting. `--pause 5` queues rows at arbitrary moments of that pass, as the app does.

Run: `.venv/bin/python bench/queue_latency.py [--rows 10] [--pause 5]` (about 5 minutes).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, bench_home, fresh_database, report

from sync_assets_tests.processes import wait_for

LIMIT = 4.0
PARTS = ("sensor", "queue", "launch", "run", "writeback")
BIN = Path(sys.executable).parent


def query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(statement, params).fetchall()


def start(log: Path, command: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=open(log, "wb"),  # noqa: SIM115 - lives as long as the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def parts_of(instance, run_id: str, inserted: float, completed: float) -> dict[str, float]:
    """Seconds of each part of one row's wait, from the run's event log."""
    import dagster as dg
    from dagster import DagsterEventType

    run_record = instance.get_run_record_by_id(run_id)
    stamps: dict[DagsterEventType, float] = {}
    for record in instance.all_logs(run_id):
        event_type = record.dagster_event.event_type if record.dagster_event else None
        if event_type is not None and event_type not in stamps:
            stamps[event_type] = record.timestamp
    created = run_record.create_timestamp.timestamp()
    dequeued = stamps.get(DagsterEventType.RUN_STARTING, created)
    started = stamps[DagsterEventType.RUN_START]
    success = stamps[DagsterEventType.RUN_SUCCESS]
    assert run_record.dagster_run.status == dg.DagsterRunStatus.SUCCESS
    return {
        "sensor": created - inserted,
        "queue": dequeued - created,
        "launch": started - dequeued,
        "run": success - started,
        "writeback": completed - success,
    }


def measure(
    mode: str, rows: int, workdir: Path, pause: float = 0.0
) -> list[tuple[float, dict[str, float]]]:
    """Start the daemon (and workers for celery), let the backlog finish, time `rows` rows."""
    import dagster as dg

    from sync_assets.core import embedded
    from sync_assets.core.broker import BROKER_SETTING, LocalRedis
    from sync_assets.sandbox.registry import build_sandbox, sandbox_environment, seed_app_tables

    home = workdir / mode
    home.mkdir(parents=True)
    instance_file = "deploy/dagster-celery.yaml" if mode == "celery" else "dagster.yaml"
    shutil.copy(REPO / instance_file, home / "dagster.yaml")
    database_url = fresh_database("bench_queue")
    sandbox = build_sandbox(scale=0.2).start()
    redis = LocalRedis().start() if mode == "celery" else None
    env = {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": embedded.sqlalchemy_url(fresh_database("bench_queue_dagster")),
        "SYNC_ASSETS_COMPUTE_LOGS": str(home / "compute_logs"),
        "DATABASE_URL": database_url,
        "OBJECT_STORAGE_URL": str(home / "buckets"),
        **sandbox_environment(sandbox.url),
        **({BROKER_SETTING: redis.url} if redis else {}),
    }
    saved = dict(os.environ)
    os.environ.update(env)
    seed_app_tables(0.2)
    processes: list[subprocess.Popen] = []
    try:
        full_env = {**saved, **env}
        if redis is not None:
            for name in ("w1", "w2"):
                processes.append(
                    start(
                        home / f"{name}.log",
                        [
                            str(BIN / "celery"),
                            "-A",
                            "sync_assets.core.celery_app",
                            "worker",
                            "-Q",
                            "dagster,rate_limited,stats,streams",
                            "-c",
                            "1",
                            "-n",
                            f"{name}@%h",
                            "--without-gossip",
                            "--without-mingle",
                        ],  # fmt: skip
                        full_env,
                    )
                )
        processes.append(
            start(
                home / "daemon.log",
                [str(BIN / "dagster-daemon"), "run", "-w", str(REPO / "workspace.yaml")],
                full_env,
            )
        )
        backlog = (
            "SELECT count(*) FROM background_job_status WHERE status IN ('queued', 'processing')"
        )
        wait_for(lambda: query(database_url, backlog)[0][0] == 0, 600, "the seeded backlog", 1)
        results = []
        pauses = random.Random(21)
        with dg.DagsterInstance.get() as instance:
            for _ in range(rows):
                time.sleep(pauses.uniform(0, pause))
                inserted = time.time()
                (row_id,) = query(
                    database_url,
                    "INSERT INTO background_job_status (job_payload, priority) "
                    'VALUES (\'{"triggeredBy": "bench"}\', 5) RETURNING id',
                )[0]

                def finished(row_id=row_id):
                    (status, results_json, error) = query(
                        database_url,
                        "SELECT status, results, error_message FROM background_job_status "
                        "WHERE id = %s",
                        (row_id,),
                    )[0]
                    return (
                        (status, results_json, error) if status in ("completed", "failed") else None
                    )

                status, results_json, error = wait_for(finished, 300, "a queue row", every=0.05)
                completed = time.time()
                if status != "completed":
                    raise RuntimeError(f"queue row failed: {error}")
                print(f"{mode}: row {len(results) + 1}: {completed - inserted:.2f} s", flush=True)
                parts = parts_of(instance, results_json["dagster_run_id"], inserted, completed)
                results.append((completed - inserted, parts))
        return results
    finally:
        stop(processes)
        os.environ.clear()
        os.environ.update(saved)
        sandbox.stop()
        if redis is not None:
            redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10)
    parser.add_argument("--modes", default="default,celery")
    parser.add_argument("--keep", type=Path, help="keep the daemons' logs in this folder")
    parser.add_argument(
        "--pause", type=float, default=0.0, help="random 0..N s before each insert (0: none)"
    )
    args = parser.parse_args()
    bench_home()
    table = {}
    with tempfile.TemporaryDirectory(prefix="bench_queue_") as workdir:
        for mode in args.modes.split(","):
            table[mode] = measure(mode, args.rows, args.keep or Path(workdir), args.pause)
    for mode, results in table.items():
        label = f"{mode}, pause 0-{args.pause:g} s" if args.pause else mode
        totals = [total for total, _ in results]
        median = statistics.median(totals)
        report(f"queue row -> completed, {label}: median", median, "s", median / LIMIT)
        report(f"queue row -> completed, {label}: worst", max(totals), "s", max(totals) / LIMIT)
        for part in PARTS:
            values = [parts[part] for _, parts in results]
            report(
                f"  {label} {part}: median (worst {max(values):.2f})",
                statistics.median(values),
                "s",
            )


if __name__ == "__main__":
    main()
