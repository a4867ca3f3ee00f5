"""Football sync speed and memory at 1,200 leagues and at 10x that, against limits measured in
the same run.

For each size, a fresh process materializes the four football assets in-process from the
sandbox (running in its own process, its answer built and cached beforehand) into a fresh
database, then COPYs the same rows into empty tables of the same shape (primary keys, unique
indexes, foreign keys): the speed limit a sync that writes those rows cannot beat. Printed: seconds, rows/s (ratio to raw COPY rows/s),
peak memory (ratio: growth from 1x to 10x against the 10x growth of the data).

Run: `.venv/bin/python bench/football.py` (about a minute).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from _common import (
    REPO,
    bench_home,
    configure_sandbox,
    fresh_database,
    peak_rss_mb,
    report,
    start_sandbox,
)

SIZES = (1_200, 12_000)


def prepare(url: str, leagues: int) -> None:
    """Set the number of leagues and have the sandbox build (and cache) both answers."""
    from sync_assets.sandbox import football

    configure_sandbox(url, "football", {"reset": True, "leagues": leagues})
    for endpoint in ("countries", "leagues"):
        warm = urllib.request.Request(
            f"{url}/football/{endpoint}", headers={"x-apisports-key": football.DEMO_KEY}
        )
        urllib.request.urlopen(warm, timeout=120).read()


FOREIGN_KEYS = {
    "leagues": ("country_id", "countries"),
    "seasons": ("league_id", "leagues"),
    "season_coverage": ("season_id", "seasons"),
}


def raw_copy_seconds(database_url: str) -> float:
    """COPY every synced row into empty tables of the same shape (keys, unique indexes and
    foreign keys included): what writing these rows costs at the least. Seconds taken."""
    import psycopg
    from psycopg import sql

    from sync_assets.football.tables import TABLES

    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE SCHEMA raw")
        rows = {}
        for table in TABLES:
            rows[table] = conn.execute(
                sql.SQL("SELECT * FROM football.{} ORDER BY 1").format(sql.Identifier(table))
            ).fetchall()
            conn.execute(
                sql.SQL("CREATE TABLE raw.{t} (LIKE football.{t} INCLUDING ALL)").format(
                    t=sql.Identifier(table)
                )
            )
            if table in FOREIGN_KEYS:
                column, parent = FOREIGN_KEYS[table]
                conn.execute(
                    sql.SQL(
                        "ALTER TABLE raw.{} ADD FOREIGN KEY ({}) REFERENCES raw.{} (id)"
                    ).format(sql.Identifier(table), sql.Identifier(column), sql.Identifier(parent))
                )
        conn.commit()
        started = time.perf_counter()
        for table in TABLES:
            statement = sql.SQL("COPY raw.{} FROM STDIN").format(sql.Identifier(table))
            with conn.cursor().copy(statement) as copy:
                for row in rows[table]:
                    copy.write_row(row)
        conn.commit()
        return time.perf_counter() - started


def one(leagues: int, sandbox_url: str) -> None:
    """In a fresh process: materialize, then time raw COPY of the same rows; print JSON."""
    import os

    import dagster as dg

    from sync_assets.football import defs
    from sync_assets.football.assets import football_sync
    from sync_assets.football.client import FootballApiResource
    from sync_assets.sandbox import football

    bench_home()
    database_url = fresh_database("bench_football")
    os.environ.update(football.environment(sandbox_url))
    os.environ["DATABASE_URL"] = database_url
    resources = {**defs.resources, "football_api": FootballApiResource(requests_per_minute=100)}
    baseline = peak_rss_mb()
    started = time.perf_counter()
    result = dg.materialize([football_sync], resources=resources)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    rows = 0
    for event in result.asset_materializations_for_node("football_sync"):
        rows += event.metadata["inserted"].value
    print(
        json.dumps(
            {
                "leagues": leagues,
                "seconds": seconds,
                "rows": rows,
                "peak_mb": peak,
                "baseline_mb": baseline,
                "raw_copy_seconds": raw_copy_seconds(database_url),
            }
        ),
        flush=True,
    )


def main() -> None:
    bench_home()
    proc, url = start_sandbox("football")
    results = []
    try:
        for leagues in SIZES:
            prepare(url, leagues)
            out = subprocess.run(
                [sys.executable, __file__, "--one", str(leagues), url],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        proc.terminate()
        proc.wait()
    for r in results:
        label = f"football sync {r['leagues']:,} leagues"
        rate = r["rows"] / r["seconds"]
        raw_rate = r["rows"] / r["raw_copy_seconds"]
        report(f"{label}: seconds", r["seconds"], "s")
        report(f"{label}: rows/s (vs raw COPY)", rate, "rows/s", rate / raw_rate)
        report(f"{label}: peak memory", r["peak_mb"], "MB")
    small, big = results
    # Memory the sync itself took (peak minus the process after imports), 10x against 1x.
    growth = (big["peak_mb"] - big["baseline_mb"]) / max(
        1.0, small["peak_mb"] - small["baseline_mb"]
    )
    data_growth = big["rows"] / small["rows"]
    report("football peak memory growth 1x -> 10x", growth, "x", growth / data_growth)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        one(int(sys.argv[2]), sys.argv[3])
    else:
        main()
