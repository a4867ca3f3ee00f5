"""Helpers for tests that run Dagster the way it is deployed: separate OS processes on loopback
(code server, webserver, daemon), sharing one Postgres-backed instance."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import psycopg
import requests
import yaml
from psycopg import sql

from sync_assets.core import embedded

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def postgres_dagster_home(tmp_path: Path, pg_url: str) -> Path:
    """A DAGSTER_HOME whose dagster.yaml keeps runs and events in the Postgres at `pg_url`."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = {"storage": {"postgres": {"postgres_url": pg_url}}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home


def start_run_worker(job: str, run_config: dict, dagster_home: Path) -> subprocess.Popen[str]:
    """`job` run by `sync_assets_tests.run_job` in its own OS process, as a run worker does."""
    return subprocess.Popen(
        [sys.executable, "-m", "sync_assets_tests.run_job", job, json.dumps(run_config)],
        cwd=REPO,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_while_running(
    worker: subprocess.Popen[str], predicate: Callable[[], bool], what: str
) -> None:
    """Wait for `predicate()` while `worker` runs; fail with its output if it ends first.

    The worker imports Dagster and the project first: on a loaded machine that alone can take a
    minute, so the bound is generous; a worker that ends early stops the wait."""
    wait_for(lambda: worker.poll() is not None or predicate(), timeout=300, what=what, every=0.1)
    assert worker.poll() is None, (
        f"the run ended before {what} was seen:\n" + "".join(worker.communicate())[-6000:]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for[T](predicate: Callable[[], T], timeout: float, what: str, every: float = 0.25) -> T:
    """Poll until `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def instance_environment(
    home: Path, dagster_database_url: str, config: Path = REPO / "dagster.yaml"
) -> dict[str, str]:
    """DAGSTER_HOME holding the repository's dagster.yaml (or `config`), on the given Postgres
    database."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(config, home / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": embedded.sqlalchemy_url(dagster_database_url),
        "SYNC_ASSETS_COMPUTE_LOGS": str(home / "compute_logs"),
    }


class Processes:
    """Started processes with their output in files, stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, log_dir: Path, env: dict[str, str], inherit: bool = True) -> None:
        self.log_dir = log_dir
        self.env = {**os.environ, **env} if inherit else dict(env)
        self.started: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, executable: str, *args: str) -> subprocess.Popen:
        """Start `executable` (from this virtual environment) with `args`, logging to name.log."""
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            [str(BIN / executable), *args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append((name, process))
        return process

    def output(self, name: str) -> str:
        return (self.log_dir / f"{name}.log").read_text(errors="replace")

    def assert_alive(self) -> None:
        for name, process in self.started:
            if process.poll() is not None:
                raise AssertionError(
                    f"{name} exited with {process.returncode}:\n{self.output(name)[-3000:]}"
                )

    def stop(self) -> None:
        # Code servers and run workers the daemon starts may sit in sessions of their own:
        # note every descendant first, so none outlives the test.
        descendants: list[psutil.Process] = []
        for _, process in self.started:
            try:
                descendants += psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
        for _, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in reversed(self.started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for child in descendants:
            try:
                child.terminate()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(descendants, timeout=10)
        for child in alive:
            child.kill()


@contextmanager
def running(log_dir: Path, env: dict[str, str], inherit: bool = True) -> Iterator[Processes]:
    """Processes with this test's environment (`env` over the current one, or `env` alone)."""
    processes = Processes(log_dir, env, inherit)
    try:
        yield processes
    finally:
        processes.stop()


def webserver_up(url: str) -> bool:
    try:
        return requests.get(f"{url}/server_info", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def secret_search_home(tmp_path: Path, pg_url: str) -> tuple[Path, Path]:
    """A DAGSTER_HOME on the Postgres storage at `pg_url`, with its compute-log folder, whose
    event log also takes urllib3's own lines (request URLs at DEBUG, retry warnings)."""
    home, logs = tmp_path / "dagster_home", tmp_path / "compute_logs"
    home.mkdir()
    config = {
        "storage": {"postgres": {"postgres_url": pg_url}},
        "compute_logs": {
            "module": "dagster.core.storage.local_compute_log_manager",
            "class": "LocalComputeLogManager",
            "config": {"base_dir": str(logs)},
        },
        "python_logs": {"managed_python_loggers": ["urllib3"], "python_log_level": "DEBUG"},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return home, logs


def event_storage_text(pg_url: str) -> str:
    """Every row of every table of a Dagster database, as text."""
    url = "postgresql://" + pg_url.removeprefix("postgresql+psycopg2://")
    parts = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        ).fetchall()
        for (table,) in tables:
            rows = conn.execute(
                sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table))
            ).fetchall()
            parts.extend(row[0] for row in rows)
    return "\n".join(parts)


def run_outputs(
    process: subprocess.CompletedProcess[str], logs: Path, pg_url: str
) -> dict[str, str]:
    """Everything a run in `process` left to search for secrets: its stdout and stderr, the
    compute logs under `logs` and the Dagster event storage at `pg_url`."""
    return {
        "stdout": process.stdout,
        "stderr": process.stderr,
        "compute logs": "\n".join(
            p.read_text(errors="replace") for p in logs.rglob("*") if p.is_file()
        ),
        "event storage": event_storage_text(pg_url),
    }
