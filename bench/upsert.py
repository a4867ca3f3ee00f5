"""Bulk upsert throughput against raw COPY of the same rows, measured in the same run.

Target: the project's upsert at >= 0.40 of raw COPY into the same kind of table. Also prints the
old worker's row-at-a-time upsert with a commit per row (on a sample, as rows/s).
"""

from __future__ import annotations

import time
from datetime import date

from _common import bench_home, report

ROWS = 200_000
OLD_WAY_SAMPLE = 2_000
TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id integer PRIMARY KEY,
    league_id integer NOT NULL,
    year integer NOT NULL,
    start_date date,
    end_date date,
    is_current boolean NOT NULL,
    slug text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
COLUMNS = ["id", "league_id", "year", "start_date", "end_date", "is_current", "slug"]


def rows(n: int, salt: str = ""):
    for i in range(n):
        yield (
            i,
            i // 10,
            2000 + i % 25,
            date(2020, 1, 1),
            date(2020, 6, 1),
            i % 7 == 0,
            f"s-{i}{salt}",
        )


def main() -> None:
    bench_home()
    from sync_assets.core.postgres import PostgresResource
    from sync_assets.core.upsert import upsert_rows

    db = PostgresResource(schema_name="bench")
    for name in ("raw_copy", "upserted", "old_way"):
        db.apply_ddl(f"DROP TABLE IF EXISTS {name}; " + TABLE.format(name=name))

    with db.transaction() as conn:
        started = time.perf_counter()
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY raw_copy ({', '.join(COLUMNS)}) FROM STDIN") as copy,
        ):
            for row in rows(ROWS):
                copy.write_row(row)
    raw_rate = ROWS / (time.perf_counter() - started)

    with db.transaction() as conn:
        started = time.perf_counter()
        counts = upsert_rows(conn, "upserted", COLUMNS, rows(ROWS), ["id"])
    insert_rate = ROWS / (time.perf_counter() - started)
    assert counts.inserted == ROWS

    with db.transaction() as conn:
        started = time.perf_counter()
        counts = upsert_rows(conn, "upserted", COLUMNS, rows(ROWS, salt="x"), ["id"])
    update_rate = ROWS / (time.perf_counter() - started)
    assert counts.updated == ROWS

    with db.transaction() as conn:
        started = time.perf_counter()
        counts = upsert_rows(conn, "upserted", COLUMNS, rows(ROWS, salt="x"), ["id"])
    noop_rate = ROWS / (time.perf_counter() - started)
    assert counts.unchanged == ROWS

    with db.connect() as conn:
        started = time.perf_counter()
        for row in rows(OLD_WAY_SAMPLE):
            conn.execute(
                "INSERT INTO old_way (id, league_id, year, start_date, end_date, is_current, slug)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                " slug = EXCLUDED.slug, updated_at = now()",
                row,
            )
            conn.commit()
    old_rate = OLD_WAY_SAMPLE / (time.perf_counter() - started)

    report("raw_copy_200k", raw_rate, "rows/s")
    report("upsert_200k_insert", insert_rate, "rows/s", insert_rate / raw_rate / 0.40)
    report("upsert_200k_update", update_rate, "rows/s", update_rate / raw_rate / 0.40)
    report("upsert_200k_unchanged", noop_rate, "rows/s", noop_rate / raw_rate / 0.40)
    report("old_row_at_a_time_commit_each", old_rate, "rows/s")
    print("# ratio = (upsert rows/s / raw COPY rows/s) / 0.40 target; >= 1.00 meets it")


if __name__ == "__main__":
    main()
