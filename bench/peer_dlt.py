"""The football sync against dlt's `rest_api` source, whole process each, on the same body.

The sandbox (its own process) serves a generated 12,000-league `/leagues` body (about 95,000
seasons) and `/countries`, built and cached before anything is timed. Each side runs as a whole
process against its own fresh database on the embedded PostgreSQL server:

- ours: `dagster job execute -m sync_assets -j football_sync_job` (the settings pointing at the sandbox and the fresh database; the project's `dagster.yaml`
  instance, its run and event storage in a database of its own on the same server);
- dlt: this file with `--dlt`, a `rest_api` source (`/countries` keyed by name, `/leagues` keyed
  by `league.id`, merge write disposition) loaded into PostgreSQL; seasons become the child
  table `leagues__seasons`, each season's coverage flattened into its row.

Each side does a first load into an empty database, then a re-run with nothing new (the same
database; for dlt the same pipelines folder too). The sides alternate, three rounds, and the best
of the three counts. Peak RSS is the largest sum of resident memory over the process tree,
sampled with psutil every 50 ms. Printed: seconds, CPU seconds (user + system of the process
tree; the PostgreSQL server's work is in the seconds only) and peak RSS of both, with ratios of
ours to the limit (0.7 of dlt's time on the first load, 0.5 on the re-run, dlt's memory).

Run: `.venv/bin/python bench/peer_dlt.py` (about five minutes; `--rounds 1` for a quick look).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from _common import REPO, bench_home, fresh_database, report, start_sandbox
from football import prepare

LEAGUES = 12_000
FIRST_LOAD_LIMIT = 0.7
RERUN_LIMIT = 0.5
SAMPLE_SECONDS = 0.05


@dataclass
class Measure:
    seconds: float
    peak_mb: float
    cpu_seconds: float


def run_measured(command: list[str], env: dict[str, str]) -> Measure:
    """Run `command` to its end; wall seconds and the peak RSS of its process tree."""
    import psutil

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not done.is_set():
            total = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            peak = max(peak, total)
            done.wait(SAMPLE_SECONDS)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        sys.stderr.write(output.decode(errors="replace")[-4000:])
        raise SystemExit(f"{command[:3]} failed with exit code {proc.returncode}")
    return Measure(seconds, peak / 2**20, cpu)


def instance_env(scratch: Path) -> dict[str, str]:
    """The project's instance (dagster.yaml: Postgres run and event storage) in a fresh
    database on the embedded server, as `sync-assets` sets it up."""
    from sync_assets.core.embedded import sqlalchemy_url

    home = scratch / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": sqlalchemy_url(fresh_database("bench_peer_dagster")),
        "SYNC_ASSETS_COMPUTE_LOGS": str(scratch / "compute_logs"),
    }


def ours(api_url: str, database_url: str, instance: dict[str, str]) -> Measure:
    from sync_assets.sandbox import football

    env = {**os.environ, **instance, **football.environment(api_url)}
    env["FOOTBALL_DATABASE_URL"] = database_url
    dagster = str(Path(sys.executable).with_name("dagster"))
    return run_measured(
        [dagster, "job", "execute", "-m", "sync_assets", "-j", "football_sync_job"], env
    )


def theirs(api_url: str, database_url: str, pipelines_dir: Path) -> Measure:
    from sync_assets.sandbox import football

    env = dict(os.environ)
    command = [sys.executable, __file__, "--dlt", api_url + football.PREFIX, database_url]
    return run_measured([*command, str(pipelines_dir), football.DEMO_KEY], env)


def dlt_pipeline(base_url: str, database_url: str, pipelines_dir: str, key: str) -> None:
    """dlt's own way: a declarative `rest_api` source merged into PostgreSQL."""
    import dlt
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials
    from dlt.sources.rest_api import rest_api_source
    from psycopg.conninfo import conninfo_to_dict

    # The embedded server listens on a unix socket (`?host=/folder`, no host in the URL), and
    # dlt requires a host: the socket folder goes to libpq as the `host` query parameter,
    # which overrides the placeholder.
    credentials = PostgresCredentials(database_url)
    if not credentials.host:
        credentials.host = "localhost"
        credentials.query = {**(credentials.query or {}), **conninfo_to_dict(database_url)}
        credentials.query.pop("dbname", None)
        credentials.query.pop("user", None)
        credentials.query.pop("password", None)

    source = rest_api_source(
        {
            "client": {
                "base_url": base_url,
                "auth": {
                    "type": "api_key",
                    "name": "x-apisports-key",
                    "api_key": key,
                    "location": "header",
                },
                "paginator": "single_page",
            },
            "resource_defaults": {
                "write_disposition": "merge",
                "endpoint": {"data_selector": "response"},
            },
            "resources": [
                {"name": "countries", "primary_key": "name", "endpoint": {"path": "countries"}},
                {"name": "leagues", "primary_key": "league__id", "endpoint": {"path": "leagues"}},
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="football_peer",
        destination=dlt.destinations.postgres(credentials=credentials),
        dataset_name="football",
        pipelines_dir=pipelines_dir,
    )
    info = pipeline.run(source)
    info.raise_on_failed_jobs()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leagues", type=int, default=LEAGUES)
    args = parser.parse_args()
    bench_home()
    proc, url = start_sandbox("football")
    results: dict[tuple[str, str], list[Measure]] = {}
    scratch = Path(tempfile.mkdtemp(prefix="peer-dlt-"))
    try:
        prepare(url, args.leagues)
        instance = instance_env(scratch)
        for round_number in range(args.rounds):
            sides = ["ours", "dlt"] if round_number % 2 == 0 else ["dlt", "ours"]
            for side in sides:
                database = fresh_database(f"bench_peer_{side}")
                pipelines = scratch / f"{side}-{round_number}"
                for phase in ("first", "rerun"):
                    if side == "ours":
                        measure = ours(url, database, instance)
                    else:
                        measure = theirs(url, database, pipelines)
                    results.setdefault((side, phase), []).append(measure)
                    print(
                        f"# round {round_number + 1} {side} {phase}: {measure.seconds:.2f} s,"
                        f" {measure.cpu_seconds:.2f} s CPU, {measure.peak_mb:.0f} MB",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)
    for phase, label, limit in (
        ("first", "first load", FIRST_LOAD_LIMIT),
        ("rerun", "re-run, nothing new", RERUN_LIMIT),
    ):
        ours_best = min(m.seconds for m in results[("ours", phase)])
        dlt_best = min(m.seconds for m in results[("dlt", phase)])
        ours_mb = min(m.peak_mb for m in results[("ours", phase)])
        dlt_mb = min(m.peak_mb for m in results[("dlt", phase)])
        name = f"football vs dlt {args.leagues:,}, {label}"
        report(f"{name}: dlt seconds", dlt_best, "s")
        report(f"{name}: our seconds", ours_best, "s", ours_best / dlt_best / limit)
        report(f"{name}: ratio ours/dlt", ours_best / dlt_best, "x", ours_best / dlt_best / limit)
        ours_cpu = min(m.cpu_seconds for m in results[("ours", phase)])
        dlt_cpu = min(m.cpu_seconds for m in results[("dlt", phase)])
        report(f"{name}: dlt CPU seconds", dlt_cpu, "s")
        report(f"{name}: our CPU seconds", ours_cpu, "s", ours_cpu / dlt_cpu / limit)
        report(f"{name}: dlt peak RSS", dlt_mb, "MB")
        report(f"{name}: our peak RSS", ours_mb, "MB", ours_mb / dlt_mb)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--dlt":
        dlt_pipeline(*sys.argv[2:6])
    else:
        main()
