"""The `sync-assets` command: demo, dev, sql and sandbox."""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def prepare_instance_home(instance_file: Path = REPO_ROOT / "dagster.yaml") -> Path:
    """Point DAGSTER_HOME at `.sync_assets/dagster_home` (holding `instance_file` as its
    dagster.yaml) and DAGSTER_PG_URL at the embedded server, unless they are already set."""
    from sync_assets.core.embedded import DAGSTER_DATABASE, embedded_database_url, sqlalchemy_url
    from sync_assets.core.settings import state_dir

    if not os.environ.get("DAGSTER_HOME"):
        home = state_dir() / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(instance_file, home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    os.environ.setdefault("SYNC_ASSETS_COMPUTE_LOGS", str(state_dir() / "compute_logs"))
    # Dagster gives the code server 60 s to start a run worker; on a busy 2-core machine that
    # start alone took 48-63 s and runs failed before they began.
    os.environ.setdefault("DAGSTER_GRPC_TIMEOUT_SECONDS", "180")
    if not os.environ.get("DAGSTER_PG_URL"):
        os.environ["DAGSTER_PG_URL"] = sqlalchemy_url(embedded_database_url(DAGSTER_DATABASE))
    return Path(os.environ["DAGSTER_HOME"])


def start_sandbox(scale: float, port: int = 0):
    """Start every provider stand-in in a background thread and point the settings at it."""
    from sync_assets.sandbox.registry import build_sandbox, sandbox_environment

    server = build_sandbox(scale=scale, port=port).start()
    os.environ.update(sandbox_environment(server.url))
    return server


def domain_schemas() -> list[str]:
    """The schema of every registered domain (sync_assets/domains.py)."""
    from sync_assets.domains import DOMAINS

    return [domain.schema_name for domain in DOMAINS]


def row_counts() -> list[tuple[str, int]]:
    """Rows per table in every domain schema of the configured database."""
    import psycopg
    from psycopg import sql

    from sync_assets.core.postgres import database_url_for

    counts = []
    with psycopg.connect(database_url_for(None), autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY(%s) AND table_type = 'BASE TABLE' ORDER BY 1, 2",
            (domain_schemas(),),
        ).fetchall()
        for schema, table in tables:
            query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                sql.Identifier(schema), sql.Identifier(table)
            )
            counts.append((f"{schema}.{table}", conn.execute(query).fetchone()[0]))
    return counts


def run_demo(scale: float) -> int:
    import dagster as dg

    from sync_assets.definitions import defs
    from sync_assets.sandbox.registry import seed_app_tables

    started = time.monotonic()
    prepare_instance_home()
    server = start_sandbox(scale)
    seed_app_tables(scale)
    instance = dg.DagsterInstance.get()
    ok = True
    for job_name in demo_jobs():
        result = defs.resolve_job_def(job_name).execute_in_process(
            run_config=demo_run_config(job_name), instance=instance, raise_on_error=False
        )
        print(f"{job_name}: {'success' if result.success else 'FAILED'} (run {result.run_id})")
        ok = ok and result.success
    server.stop()
    print(f"\n{'table':<40} {'rows':>10}")
    for table, count in row_counts():
        print(f"{table:<40} {count:>10}")
    print(f"\ndemo finished in {time.monotonic() - started:.1f}s")
    return 0 if ok else 1


def demo_run_config(job_name: str) -> dict:
    """INFO-level console logs; for all_syncs_job, the domains' demo_run_config ops merged."""
    from sync_assets.core.domain import demo_ops_config
    from sync_assets.domains import DOMAINS

    ops = demo_ops_config(DOMAINS) if job_name == "all_syncs_job" else {}
    config: dict = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
    return config | ({"ops": ops} if ops else {})


def demo_jobs() -> list[str]:
    """all_syncs_job, then any per-partition jobs the domains ask the demo to run."""
    from sync_assets.domains import DOMAINS

    jobs = ["all_syncs_job"]
    for domain in DOMAINS:
        jobs.extend(domain.demo_extra_jobs)
    return jobs


def run_dev(scale: float, port: int, celery_workers: int = 0) -> int:
    from sync_assets.sandbox.registry import seed_app_tables

    if not celery_workers:
        prepare_instance_home()
        server = start_sandbox(scale)
        seed_app_tables(scale)
        return _serve_dev(server, port, [])
    from sync_assets.core.broker import BROKER_SETTING, RATE_LIMIT_SETTING, LocalRedis

    # deploy/dagster-celery.yaml: a Redis started here (the Celery broker and the shared rate
    # limit) and `celery_workers` run workers serving every queue.
    redis = LocalRedis().start()
    os.environ.setdefault(BROKER_SETTING, redis.url)
    os.environ.setdefault(RATE_LIMIT_SETTING, redis.url)
    try:
        prepare_instance_home(REPO_ROOT / "deploy" / "dagster-celery.yaml")
        server = start_sandbox(scale)
        seed_app_tables(scale)
        print(
            f"redis at {redis.url}; {celery_workers} Celery run workers, 1 step worker", flush=True
        )
        return _serve_dev(server, port, celery_worker_commands(celery_workers))
    finally:
        redis.stop()


def celery_worker_commands(count: int) -> list[list[str]]:
    """`count` Celery run workers, one run at a time each, serving every run queue, and a step
    worker (two pool processes) for jobs on the celery_steps executor."""
    from sync_assets.core.celery_runs import RUN_QUEUES, STEP_QUEUE

    def worker(name: str, queues: str, concurrency: int) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "sync_assets.core.celery_app", "worker",
            "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h", "-l", "INFO",
            "--without-gossip", "--without-mingle",
        ]  # fmt: skip

    runs = [worker(f"worker{number}", ",".join(RUN_QUEUES), 1) for number in range(1, count + 1)]
    return [*runs, worker("steps", STEP_QUEUE, 2)]


def _serve_dev(server, port: int, worker_commands: list[list[str]]) -> int:
    """dagster dev (and any workers) until Ctrl-C or SIGTERM; then everything is stopped."""
    print(f"sandbox at {server.url}; Dagster UI at http://127.0.0.1:{port}", flush=True)
    workers = [subprocess.Popen(command, cwd=REPO_ROOT) for command in worker_commands]
    command = [
        sys.executable,
        "-m",
        "dagster",
        "dev",
        "-w",
        str(REPO_ROOT / "workspace.yaml"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT)
    # A SIGTERM (service manager, test harness) stops dagster dev cleanly, like Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        return process.wait()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        server.stop()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_sql(statement: str, as_csv: bool) -> int:
    import psycopg

    from sync_assets.core.postgres import database_url_for
    from sync_assets.core.redaction import redact

    with psycopg.connect(database_url_for(None), autocommit=True) as conn:
        try:
            cursor = conn.execute(statement)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            print(f"error: {type(exc).__name__}: {redact(str(exc).strip())}", file=sys.stderr)
            return 1
        while cursor.nextset():  # several statements: the last one's result is the answer
            pass
        if cursor.description is None:
            print(cursor.statusmessage)
            return 0
        header = [c.name for c in cursor.description]
        rows = cursor.fetchall()
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(header)
        writer.writerows(rows)
    else:
        from tabulate import tabulate

        print(tabulate(rows, headers=header, tablefmt="psql"))
    return 0


def run_sandbox(scale: float, port: int) -> int:
    from sync_assets.sandbox.registry import build_sandbox, sandbox_environment, seed_app_tables

    server = build_sandbox(scale=scale, port=port)
    os.environ.update(sandbox_environment(server.url))
    seed_app_tables(scale)
    for key, value in sandbox_environment(server.url).items():
        print(f"export {key}={value}")
    print(f"# sandbox serving on {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sync-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="embedded Postgres + sandbox + every job, then row counts")
    demo.add_argument("--scale", type=float, default=1.0)
    dev = sub.add_parser(
        "dev", help="dagster dev (UI and daemon) on the embedded database and sandbox"
    )
    dev.add_argument("--scale", type=float, default=1.0)
    dev.add_argument("--port", type=int, default=3000)
    dev.add_argument(
        "--celery",
        type=int,
        nargs="?",
        const=2,
        default=0,
        metavar="WORKERS",
        help="runs in Celery workers (deploy/dagster-celery.yaml, a Redis started here; 2)",
    )
    query = sub.add_parser("sql", help="run SQL against the configured database")
    query.add_argument("statement")
    query.add_argument("--csv", action="store_true", help="machine-readable output")
    box = sub.add_parser("sandbox", help="serve the provider stand-ins alone")
    box.add_argument("--scale", type=float, default=1.0)
    box.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    if args.command == "demo":
        return run_demo(args.scale)
    if args.command == "dev":
        return run_dev(args.scale, args.port, args.celery)
    if args.command == "sql":
        return run_sql(args.statement, args.csv)
    return run_sandbox(args.scale, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
