"""Torn user sync speed against the ideal of the same run's settings.

1,000 users, the sandbox Torn API answering every call in 100 ms, 20 users in flight: the ideal
is 1,000 x 0.1 s / 20 = 5 s. The ratio printed is ideal / measured (target >= 0.90). On a busy
machine the ideal is out of reach for any client, so the same run also times a bare client (20
threads, one `requests.Session`, no database) on the same 1,000 calls: that floor, measured
now, is the second limit. The old worker's one-at-a-time loop (decrypt, call, upsert, commit,
next) is timed on a sample and extrapolated to 1,000 users (about 100 s). The sandbox runs in
its own process.
Run: `.venv/bin/python bench/users.py` (about half a minute).
"""

from __future__ import annotations

import os
import time

from _common import (
    bench_home,
    configure_sandbox,
    fresh_database,
    peak_rss_mb,
    report,
    start_sandbox,
)

USERS = 1_000
LATENCY = 0.1
CONCURRENCY = 20
REQUESTS_PER_SECOND = 400  # the cap, above the 200/s that 20 x 10/s need
IDEAL_SECONDS = USERS * LATENCY / CONCURRENCY
OLD_LOOP_SAMPLE = 40


def throughput(url: str) -> None:
    import dagster as dg

    from sync_assets.sandbox import torn as sandbox
    from sync_assets.torn import defs
    from sync_assets.torn.assets import user_data

    os.environ.update(sandbox.environment(url))
    configure_sandbox(url, "torn", {"reset": True, "default_failures": False, "latency": LATENCY})
    config = {"concurrency": CONCURRENCY, "requests_per_second": REQUESTS_PER_SECOND}
    # Warm-up on 20 users in another database: imports and first-call costs are not the sync's.
    os.environ["DATABASE_URL"] = fresh_database("bench_torn")
    sandbox.insert_user_keys(os.environ["DATABASE_URL"], range(USERS, USERS + 20))
    dg.materialize(
        [user_data],
        resources=dict(defs.resources or {}),
        run_config={"ops": {"user_data": {"config": config}}},
    )
    os.environ["DATABASE_URL"] = fresh_database("bench_torn")
    sandbox.insert_user_keys(os.environ["DATABASE_URL"], range(USERS))
    started = time.perf_counter()
    result = dg.materialize(
        [user_data],
        resources=dict(defs.resources or {}),
        run_config={"ops": {"user_data": {"config": config}}},
    )
    wall = time.perf_counter() - started
    [event] = result.asset_materializations_for_node("user_data")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["users_succeeded"] == USERS, meta
    floor = bare_client(url)
    report("torn: users synced", meta["users_succeeded"], "users")
    report(
        f"torn: seconds for {USERS:,} users (ideal {IDEAL_SECONDS:g} s)",
        meta["seconds"],
        "s",
        IDEAL_SECONDS / meta["seconds"],
    )
    report("bare client: the same calls, no keys or database", floor, "s", IDEAL_SECONDS / floor)
    report("torn: seconds against the bare client's", meta["seconds"], "s", floor / meta["seconds"])
    report("torn: whole run incl. Dagster start-up", wall, "s", IDEAL_SECONDS / wall)
    report(
        "torn: request rate",
        meta["requests_per_second"],
        "req/s",
        meta["requests_per_second"] / (CONCURRENCY / LATENCY),
    )
    report("torn: peak RSS of the run", peak_rss_mb(), "MB")

    seconds = old_loop(url, os.environ["DATABASE_URL"])
    extrapolated = seconds * USERS / OLD_LOOP_SAMPLE
    report(
        f"old loop: {OLD_LOOP_SAMPLE} users, extrapolated to {USERS:,}",
        extrapolated,
        "s",
        IDEAL_SECONDS / extrapolated,
    )


def bare_client(url: str) -> float:
    """The same 1,000 calls from 20 threads sharing one session: what the machine allows now."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    from sync_assets.sandbox import torn as sandbox

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=CONCURRENCY)
    session.mount("http://", adapter)

    def call(index: int) -> None:
        params = {"selections": "basic", "key": sandbox.api_key_at(index)}
        session.get(f"{url}{sandbox.PREFIX}/user/", params=params, timeout=10).json()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(call, range(USERS)))
    return time.perf_counter() - started


def old_loop(url: str, database_url: str) -> float:
    """The seed worker's loop: one user at a time, a call, an upsert and a commit each."""
    import psycopg
    import requests

    from sync_assets.core.crypto import decrypt, parse_key
    from sync_assets.sandbox import torn as sandbox

    key = parse_key(sandbox.DEMO_ENCRYPTION_KEY)
    session = requests.Session()
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT user_id, api_key FROM torn.user_keys ORDER BY user_id LIMIT %s",
            (OLD_LOOP_SAMPLE,),
        ).fetchall()
        conn.execute("CREATE TEMP TABLE old_user_data (user_id text PRIMARY KEY, name text)")
        started = time.perf_counter()
        for user_id, stored in rows:
            body = session.get(
                f"{url}{sandbox.PREFIX}/user/",
                params={"selections": "basic", "key": decrypt(stored, key)},
                timeout=10,
            ).json()
            conn.execute(
                "INSERT INTO old_user_data VALUES (%s, %s)"
                " ON CONFLICT (user_id) DO UPDATE SET name = EXCLUDED.name",
                (user_id, body["name"]),
            )
            conn.commit()
        return time.perf_counter() - started


def main() -> None:
    bench_home()
    proc, url = start_sandbox("torn")
    try:
        print("name  value  unit  ratio-to-limit (time: ideal/measured; rate: achieved/ideal)")
        throughput(url)
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
