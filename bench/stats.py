"""Stats refresh speed, against the issue's targets, and the queue's latency under a daemon.

1. Compute: all eleven tables materialized through Dagster in this process (`dg.materialize`
   of the stats multi-asset, as a UI click or a queue run does it, with its default two
   connections) on the sandbox club at 1x (5,000 player-match rows) and 200x (about
   1,000,000): first refresh into empty tables, a re-run with nothing new (nothing is
   written), and a refresh after one new match (every table changes). Ratio = seconds / target
   (1 s at 1x, 10 s at 200x; the old workers took 30 to 60 s). Also the same without Dagster
   over one and over two connections, and, as floors measured in the same run, one plain
   aggregate pass over player_matches and Dagster alone (a step of the same shape doing no
   work).
2. Queue latency: `dagster-daemon` on the repository's workspace and dagster.yaml (embedded
   Postgres), the club stand-in on loopback; seconds from inserting a `background_job_status`
   row to the row reading `completed` (sensor tick, queued run, 11 steps, write-back sensor).

Run: `.venv/bin/python bench/stats.py` (about 3 minutes; `--skip-daemon` for the first part).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import bench_home, drop_database, fresh_database, peak_rss_mb, report

TARGETS = {1.0: 1.0, 200.0: 10.0}


def seeded(scale: float) -> str:
    import psycopg

    from sync_assets.sandbox.club import seed_club

    url = fresh_database(f"bench_stats_{int(scale)}x")
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        with conn.transaction():
            counts = seed_club(conn, scale)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    report(
        f"stats seed {scale:g}x ({counts['player_matches']} rows)", time.monotonic() - started, "s"
    )
    return url


def materialize_tables(url: str) -> float:
    """All eleven through Dagster in this process, as a UI click or a queue run does them."""
    import dagster as dg

    from sync_assets.stats.assets import STATS_ASSETS
    from sync_assets.stats.resources import ClubAppResource, StatsDatabase

    os.environ["DATABASE_URL"] = url
    os.environ.pop("NEXT_PUBLIC_APP_URL", None)  # no app to revalidate: pure compute
    resources = {"stats_db": StatsDatabase(schema_name="stats"), "stats_app": ClubAppResource()}
    instance = dg.DagsterInstance.ephemeral()  # the daemon's instance exists before a run
    started = time.monotonic()
    result = dg.materialize(STATS_ASSETS, resources=resources, instance=instance)
    elapsed = time.monotonic() - started
    if not result.success or len(result.get_asset_materialization_events()) != 11:
        raise RuntimeError("the stats tables did not all materialize")
    return elapsed


def dagster_floor() -> float:
    """Dagster's own share: a step of the same shape (eleven outputs and their checks, a log
    line each; with no app to revalidate, the checks are not evaluated, as in the real step)
    that does no work, materialized the same way (best of five)."""
    import dagster as dg

    from sync_assets.stats.assets import stats_tables

    specs = list(stats_tables.specs)

    @dg.multi_asset(
        name="stats_tables_doing_nothing",
        specs=specs,
        check_specs=list(stats_tables.check_specs),
        can_subset=True,
    )
    def nothing(context):  # noqa: ANN001, ANN202 (Dagster reads the hints; dg is imported here)
        for spec in specs:
            context.log.info(f"{spec.key.path[-1]}: 0 rows")
            yield dg.MaterializeResult(
                asset_key=spec.key,
                metadata={"rows": 0, "rows_added": 0, "rows_removed": 0, "seconds": 0.0},
            )

    times = []
    for _ in range(5):
        instance = dg.DagsterInstance.ephemeral()
        started = time.monotonic()
        dg.materialize([nothing], instance=instance)
        times.append(time.monotonic() - started)
    return min(times)


def refresh_direct(url: str, connections: int) -> float:
    """The same eleven without Dagster, over `connections` connections."""
    from sync_assets.stats import computations
    from sync_assets.stats.refresh import refresh_tables
    from sync_assets.stats.resources import StatsDatabase

    os.environ["DATABASE_URL"] = url
    names = [t.name for t in computations.TABLES]
    started = time.monotonic()
    outcomes = list(
        refresh_tables(StatsDatabase(schema_name="stats"), names, connections=connections)
    )
    if any(o.error for o in outcomes):
        raise RuntimeError(f"a table failed: {[o.error for o in outcomes if o.error]}")
    return time.monotonic() - started


def add_match(url: str) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        match_id = conn.execute("SELECT max(match_id) + 1 FROM matches").fetchone()[0]
        day, season = conn.execute(
            "SELECT max(match_date) + 1, max(season_id) FROM matches"
        ).fetchone()
        players = [r[0] for r in conn.execute("SELECT player_id FROM players LIMIT 10")]
        conn.execute("INSERT INTO matches VALUES (%s, %s, %s, 3, 2)", (match_id, day, season))
        for n, pid in enumerate(players):
            conn.execute(
                "INSERT INTO player_matches VALUES (%s, %s, %s, %s)",
                (match_id, pid, "A" if n < 5 else "B", 1 if n in (0, 1, 2, 5, 6) else 0),
            )


def floor_pass(url: str) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("SET work_mem = '256MB'")
        started = time.monotonic()
        conn.execute(
            "SELECT player_id, count(*), sum(goals) FROM player_matches GROUP BY player_id"
        ).fetchall()
        return time.monotonic() - started


def compute(scale: float) -> None:
    from sync_assets.stats import computations

    url = seeded(scale)
    os.environ["DATABASE_URL"] = url
    computations.apply_schema(computations_db())
    target = TARGETS.get(scale, max(1.0, scale / 20))
    label = f"stats {scale:g}x"
    report(f"{label} floor: one aggregate pass", floor_pass(url), "s")
    report(f"{label} floor: Dagster alone (the same step doing nothing)", dagster_floor(), "s")
    first = materialize_tables(url)
    report(f"{label} eleven tables, first refresh", first, "s", first / target)
    same = materialize_tables(url)
    report(f"{label} eleven tables, nothing new", same, "s", same / target)
    add_match(url)
    changed = materialize_tables(url)
    report(f"{label} eleven tables, after a new match", changed, "s", changed / target)
    for connections in (1, 2):
        add_match(url)
        direct = refresh_direct(url, connections)
        report(
            f"{label} without Dagster, {connections} connection(s)", direct, "s", direct / target
        )
    drop_database(url)


def computations_db():
    from sync_assets.stats.resources import StatsDatabase

    return StatsDatabase(schema_name="stats")


def daemon_latency(rows: int = 5) -> None:
    import psycopg

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sync_assets.sandbox import club
    from sync_assets.sandbox.server import SandboxServer
    from sync_assets_tests.processes import instance_environment, running, wait_for

    url = seeded(1.0)
    dagster_db = fresh_database("bench_stats_dagster")
    app = SandboxServer(club.providers(1.0)).start()
    home = Path(tempfile.mkdtemp(prefix="stats_daemon_"))
    env = {
        **instance_environment(home / "dagster_home", dagster_db),
        **club.environment(app.url),
        "DATABASE_URL": url,
    }

    def status(row_id: object) -> str:
        with psycopg.connect(url) as conn:
            found = conn.execute(
                "SELECT status FROM background_job_status WHERE id = %s", (row_id,)
            ).fetchone()
        return found[0] if found else "missing"

    def enqueue() -> uuid.UUID:
        row_id = uuid.uuid4()
        with psycopg.connect(url) as conn:
            conn.execute(
                "INSERT INTO background_job_status (id, job_payload, priority)"
                ' VALUES (%s, \'{"triggeredBy": "bench"}\', 2)',
                (row_id,),
            )
        return row_id

    seeded_row = club.queue_rows()[2][0]  # the sandbox queues one row: the warm-up
    latencies: list[float] = []
    try:
        with running(home, env) as processes:
            processes.start("daemon", "dagster-daemon", "run", "-w", "workspace.yaml")
            wait_for(
                lambda: processes.assert_alive() or status(seeded_row) in ("completed", "failed"),
                600,
                "the warm-up queue row",
                every=0.5,
            )
            if status(seeded_row) != "completed":
                raise RuntimeError(f"warm-up row ended {status(seeded_row)}")
            for _ in range(rows):
                # The app queues rows at any moment, not just as the daemon's 5 s sensor pass
                # ends (when the previous row completes): wait a random part of a pass first.
                time.sleep(random.uniform(0, 5))
                row_id = enqueue()
                started = time.monotonic()
                wait_for(
                    lambda row_id=row_id: (
                        processes.assert_alive() or status(row_id) in ("completed", "failed")
                    ),
                    600,
                    "a queue row",
                    every=0.2,
                )
                latencies.append(time.monotonic() - started)
                if status(row_id) != "completed":
                    raise RuntimeError(f"queue row ended {status(row_id)}")
    finally:
        app.stop()
        drop_database(url)
        drop_database(dagster_db)
    report("stats queue row -> completed (daemon, median)", statistics.median(latencies), "s")
    report("stats queue row -> completed (daemon, worst)", max(latencies), "s")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--scales", default="1,200")
    args = parser.parse_args()
    bench_home()
    for scale in (float(s) for s in args.scales.split(",")):
        compute(scale)
    report("stats peak RSS of the bench process", peak_rss_mb(), "MB")
    if not args.skip_daemon:
        daemon_latency()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
