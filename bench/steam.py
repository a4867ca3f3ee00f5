"""Steam sync speed and memory, each against a limit measured or set in the same run.

1. Throughput: 2,000 apps from the sandbox store answering in 50 ms, with a rate limit of 100
   requests/s: the achieved request rate of `steam_app_details` as a ratio of the limit (target
   >= 0.90; the ideal is 20 s). The old worker's one-at-a-time loop (fetch, upsert, update the
   status, commit, next) is timed on a sample of apps and extrapolated to 2,000.
2. Memory: `steam_app_catalog` over a 200,000-app list, in a fresh process: peak RSS against
   300 MB, next to the same process over 20,000 apps (memory should not grow with the list).

The sandbox runs in its own process so its memory and CPU are not counted.
Run: `.venv/bin/python bench/steam.py` (about a minute).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from _common import (
    REPO,
    bench_home,
    configure_sandbox,
    fresh_database,
    peak_rss_mb,
    report,
    start_sandbox,
)

APPS = 2_000
LATENCY = 0.05
LIMIT_PER_SECOND = 100
CONCURRENCY = 16
OLD_LOOP_SAMPLE = 200
BIG_CATALOG = 200_000
SMALL_CATALOG = 20_000
MEMORY_LIMIT_MB = 300.0


def throughput(url: str) -> None:
    import dagster as dg

    from sync_assets.sandbox import steam as sandbox
    from sync_assets.steam import defs
    from sync_assets.steam.assets import steam_app_catalog, steam_app_details

    os.environ.update(sandbox.environment(url))
    os.environ["DATABASE_URL"] = fresh_database("bench_steam")
    configure_sandbox(url, sandbox.API_PREFIX, {"catalog_size": APPS})
    configure_sandbox(url, sandbox.STORE_PREFIX, {"latency": LATENCY, "rate_limit": None})
    config = {
        "batch_size": APPS,
        "concurrency": CONCURRENCY,
        "rate_limit_requests": LIMIT_PER_SECOND,
        "rate_limit_period_seconds": 1.0,
    }
    result = dg.materialize(
        [steam_app_catalog, steam_app_details],
        resources=dict(defs.resources or {}),
        run_config={"ops": {"steam_app_details": {"config": config}}},
    )
    [event] = result.asset_materializations_for_node("steam_app_details")
    meta = {k: v.value for k, v in event.metadata.items()}
    rate = meta["requests_per_second"]
    report("steam details: apps synced", meta["succeeded"] + meta["skipped"], "apps")
    report("steam details: seconds for 2,000 apps", meta["seconds"], "s", 20.0 / meta["seconds"])
    report("steam details: achieved request rate", rate, "req/s", rate / LIMIT_PER_SECOND)

    seconds = old_loop(url, os.environ["DATABASE_URL"])
    report(
        f"old loop: {OLD_LOOP_SAMPLE} apps, extrapolated to 2,000",
        seconds * APPS / OLD_LOOP_SAMPLE,
        "s",
        20.0 / (seconds * APPS / OLD_LOOP_SAMPLE),
    )
    report(
        "old loop: request rate",
        OLD_LOOP_SAMPLE / seconds,
        "req/s",
        OLD_LOOP_SAMPLE / seconds / LIMIT_PER_SECOND,
    )


def old_loop(url: str, database_url: str) -> float:
    """The seed worker's loop: one app at a time, a write and a commit per app."""
    import psycopg
    import requests

    from sync_assets.sandbox import steam as sandbox
    from sync_assets.steam.parse import parse_app_details

    session = requests.Session()
    base = url + sandbox.STORE_PREFIX
    with psycopg.connect(database_url) as conn:
        conn.execute("SET search_path TO steam")
        conn.execute("CREATE TEMP TABLE old_details (appid bigint PRIMARY KEY, name text)")
        started = time.perf_counter()
        for index in range(OLD_LOOP_SAMPLE):
            appid = sandbox.appid_at(index)
            body = session.get(f"{base}/api/appdetails", params={"appids": appid}).json()
            entry = body.get(str(appid), {})
            if entry.get("success"):
                row = parse_app_details(appid, entry["data"])
                conn.execute(
                    "INSERT INTO old_details VALUES (%s, %s)"
                    " ON CONFLICT (appid) DO UPDATE SET name = EXCLUDED.name",
                    (appid, row["name"]),
                )
            conn.execute(
                "UPDATE app_sync_status SET last_synced_at = now() WHERE appid = %s", (appid,)
            )
            conn.commit()
        return time.perf_counter() - started


def catalog_memory(url: str, size: int) -> None:
    """In this (fresh) process: sync a catalog of `size` apps and print the peak RSS."""
    import dagster as dg

    from sync_assets.sandbox import steam as sandbox
    from sync_assets.steam import defs
    from sync_assets.steam.assets import steam_app_catalog

    os.environ.update(sandbox.environment(url))
    os.environ["DATABASE_URL"] = fresh_database("bench_steam")
    configure_sandbox(url, sandbox.API_PREFIX, {"catalog_size": size})
    before = peak_rss_mb()
    started = time.perf_counter()
    result = dg.materialize([steam_app_catalog], resources=dict(defs.resources or {}))
    [event] = result.asset_materializations_for_node("steam_app_catalog")
    print(
        json.dumps(
            {
                "listed": event.metadata["listed"].value,
                "new": event.metadata["new"].value,
                "seconds": time.perf_counter() - started,
                "before_mb": before,
                "peak_mb": peak_rss_mb(),
            }
        ),
        flush=True,
    )


def memory(url: str) -> None:
    for size in (SMALL_CATALOG, BIG_CATALOG):
        out = (
            subprocess.run(
                [sys.executable, __file__, "--catalog", url, str(size)],
                capture_output=True,
                text=True,
                check=True,
                cwd=REPO,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        result = json.loads(out)
        assert result["new"] == size, result
        label = f"catalog {size:,} apps"
        report(f"{label}: seconds", result["seconds"], "s")
        report(f"{label}: RSS after imports", result["before_mb"], "MB")
        report(f"{label}: peak RSS", result["peak_mb"], "MB", result["peak_mb"] / MEMORY_LIMIT_MB)


def main() -> None:
    bench_home()
    if len(sys.argv) == 4 and sys.argv[1] == "--catalog":
        catalog_memory(sys.argv[2], int(sys.argv[3]))
        return
    proc, url = start_sandbox("steam")
    try:
        print("name  value  unit  ratio-to-limit (rate: achieved/limit; RSS: peak/300 MB)")
        throughput(url)
        memory(url)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
