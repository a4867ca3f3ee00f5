"""Streams sync speed and memory, each against a limit measured or set in the same run.

1. Throughput: a 5,000,000-row, ten-column CSV (about 700 MB) to mapped, typed, hashed zstd
   Parquet by `sync_model` (checksum, DuckDB transform, atomic publish, write-back), in a fresh
   process, against a plain DuckDB CSV-to-Parquet COPY of the same file in the same run
   (target ratio >= 0.60). Rounds alternate plain and mapped; the best of each counts.
2. Memory: the peak RSS of that process against 1 GB, next to the same sync of a file a fifth
   as large (the ratio of the two shows whether memory grows with the input).
3. Where the sync's time goes: the same sync with `$_ref` left out, and with only its canonical
   text built (no MD5), in CPU seconds next to the plain COPY's, so the cost of each part of
   `md5-v2` is measured in every run.
4. The old way for comparison: pandas reading the CSV in chunks and mapping, casting and
   hashing row by row, timed on a sample and given as a ratio of the plain COPY.

Run: `.venv/bin/python bench/streams.py [rows]` (a few minutes; the CSV is generated once and
kept under `.sync_assets/bench/`).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import bench_home, report

ROWS = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
ROUNDS = 5  # the neighbours on a shared machine swing single rounds by 2x
MEMORY_LIMIT_MB = 1024.0
PANDAS_SAMPLE = 100_000
FIELDS = [
    ("id", "integer"),
    ("name", "text"),
    ("amount", "number"),
    ("quantity", "integer"),
    ("active", "boolean"),
    ("day", "date"),
    ("created_at", "timestamp"),
    ("category", "text"),
    ("score", "number"),
    ("note", "text"),
]
GENERATE = """
COPY (SELECT i AS id, 'customer_' || (i * 7919 % 100000) AS name,
  round((i * 37 % 100000) / 100.0, 2) AS amount, i * 13 % 500 AS quantity, i % 3 = 0 AS active,
  DATE '2020-01-01' + CAST(i % 2000 AS INTEGER) AS day,
  TIMESTAMP '2020-01-01 00:00:00' + to_seconds(i * 17 % 100000000) AS created_at,
  'category_' || (i % 40) AS category, round((i * 7 % 10000) / 3.0, 4) AS score,
  'note for row ' || i || ': lorem ipsum dolor sit amet' AS note
  FROM range({rows}) t(i)) TO $path (HEADER)
"""

WORKER = """
import json, resource, sys, time
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams import transform
from sync_assets.streams.assets import StreamSyncConfig, sync_model
full_ref = transform.ref_sql
if sys.argv[2] == "no_ref":
    transform.ref_sql = lambda *args: "CAST(NULL AS VARCHAR)"
elif sys.argv[2] == "text_only":  # the canonical text is built, its length kept, no MD5
    transform.ref_sql = lambda *args: (
        "CAST(length(" + full_ref(*args).removeprefix("md5(") + " AS VARCHAR)"
    )
db = PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL")
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu_started = usage.ru_utime + usage.ru_stime
started = time.monotonic()
meta = sync_model(sys.argv[1], StreamSyncConfig(force=True), db, ObjectStorageResource(), dict,
                  lambda m: None)
seconds = time.monotonic() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
cpu = usage.ru_utime + usage.ru_stime - cpu_started
# VmHWM: this process's own peak (ru_maxrss would include the parent's peak before exec).
with open("/proc/self/status") as status:
    peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": peak, "rows": meta["rows_written"],
                  "transform_seconds": meta["seconds"]}))
"""


def prepare(home: Path, rows: int, model_id: str, ref_fields: list[str] | None = None) -> Path:
    """The CSV of `rows` rows (generated once) and a data model `model_id` reading it."""
    import duckdb
    import psycopg

    from sync_assets.core.embedded import embedded_database_url
    from sync_assets.core.postgres import PostgresResource
    from sync_assets.streams.models import apply_schema

    storage = home / "storage"
    source = storage / "sources" / f"bench-{rows}.csv"
    if not source.exists():
        source.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        partial = source.with_suffix(".partial")
        duckdb.execute(GENERATE.format(rows=rows), {"path": str(partial)})
        partial.rename(source)
        print(f"# generated {source} in {time.monotonic() - started:.1f}s", flush=True)
    os.environ["OBJECT_STORAGE_URL"] = str(storage)
    url = embedded_database_url()
    os.environ["DATABASE_URL"] = url
    apply_schema(PostgresResource(schema_name="streams"))
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO streams.data_models"
            " (id, source_uri, source_format, field_mappings, ref_fields)"
            " VALUES (%s, %s, 'csv', %s::jsonb, %s) ON CONFLICT (id) DO UPDATE SET"
            " source_uri = EXCLUDED.source_uri, field_mappings = EXCLUDED.field_mappings,"
            " ref_fields = EXCLUDED.ref_fields",
            (
                model_id,
                f"sources/{source.name}",
                json.dumps([{"source": n, "target": n, "type": t} for n, t in FIELDS]),
                ref_fields,
            ),
        )
    return source


def plain_copy(source: Path, target: Path) -> tuple[float, float]:
    """Seconds and CPU seconds (all DuckDB threads) of a plain CSV-to-Parquet COPY."""
    import resource

    import duckdb

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT * FROM read_csv($src)) TO $dst (FORMAT parquet, COMPRESSION zstd)",
            {"src": str(source), "dst": str(target)},
        )
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.monotonic() - started, cpu


def mapped_sync(model_id: str = "bench", variant: str = "full") -> dict:
    """One `sync_model` in a fresh process; `variant` leaves out all (`no_ref`) or part
    (`text_only`) of the `$_ref` expression, to measure what each part costs."""
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-c", WORKER, model_id, variant],
        cwd=repo,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"the sync failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def pandas_rows_per_second(source: Path) -> float:
    """The old way: chunks of rows, each field cast in Python, md5 per row, pyarrow writer."""
    import datetime as dt

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    casts = {
        "integer": int,
        "number": float,
        "text": str,
        "boolean": lambda v: str(v).lower() in ("true", "t", "1", "yes"),
        "date": lambda v: dt.date.fromisoformat(v),
        "timestamp": lambda v: dt.datetime.fromisoformat(v).replace(tzinfo=dt.UTC),
    }
    target = source.with_name("pandas.parquet")
    started = time.monotonic()
    writer = None
    reader = pd.read_csv(source, dtype=str, keep_default_na=False, chunksize=20_000)
    done = 0
    for chunk in reader:
        rows = []
        for record in chunk.to_dict("records"):
            row = {n: (casts[t](record[n]) if record[n] != "" else None) for n, t in FIELDS}
            text = "\x1f".join("\x1e" if row[n] is None else str(row[n]) for n, _ in FIELDS)
            row["$_ref"] = hashlib.md5(text.encode()).hexdigest()  # noqa: S324
            rows.append(row)
        table = pa.Table.from_pylist(rows)
        writer = writer or pq.ParquetWriter(target, table.schema, compression="zstd")
        writer.write_table(table)
        done += len(rows)
        if done >= PANDAS_SAMPLE:
            break
    if writer:
        writer.close()
    return done / (time.monotonic() - started)


def cost_breakdown(plain_cpu: float) -> None:
    """CPU seconds of the sync without `$_ref`, with only its text, and whole, in alternating
    rounds (the best of each), so the three are measured at the same moments."""
    rounds = [
        {v: mapped_sync(variant=v)["cpu"] for v in ("no_ref", "text_only", "full")}
        for _ in range(2)
    ]
    no_ref, text_only, full = (min(r[v] for r in rounds) for v in ("no_ref", "text_only", "full"))
    report("  sync without $_ref (checksum, cast, write)", no_ref, "cpu-s", plain_cpu / no_ref)
    report("  + canonical text of the 10 fields", text_only - no_ref, "cpu-s")
    report("  + MD5 and writing it as hex", full - text_only, "cpu-s")


def main() -> None:
    home = bench_home()
    source = prepare(home, ROWS, "bench")
    size_mb = source.stat().st_size / 1e6
    print(f"# {ROWS:,} rows, {size_mb:.0f} MB CSV, {len(FIELDS)} columns, {os.cpu_count()} CPUs")
    plain_times, mapped = [], []
    for _ in range(ROUNDS):
        plain_times.append(plain_copy(source, home / "plain.parquet"))
        mapped.append(mapped_sync())
    plain = min(t for t, _ in plain_times)
    plain_cpu = min(c for _, c in plain_times)
    best = min(mapped, key=lambda m: m["seconds"])
    assert best["rows"] == ROWS, best
    plain_rate = ROWS / plain
    rate = ROWS / best["seconds"]
    report("plain DuckDB CSV->Parquet COPY (the limit)", plain_rate, "rows/s", 1.0)
    report("stream_parquet sync, $_ref over all 10 fields", rate, "rows/s", rate / plain_rate)
    prepare(home, ROWS, "bench-keyed", ref_fields=["id"])
    keyed = min((mapped_sync("bench-keyed") for _ in range(ROUNDS)), key=lambda m: m["seconds"])
    assert keyed["rows"] == ROWS, keyed
    keyed_rate = ROWS / keyed["seconds"]
    report(
        "stream_parquet sync, $_ref over the key (id)",
        keyed_rate,
        "rows/s",
        keyed_rate / plain_rate,
    )
    # On a shared machine wall time mostly measures the neighbours; CPU time is steadier.
    cpu_best = min(m["cpu"] for m in mapped)
    report("  the same in CPU time: plain / mapped", cpu_best, "cpu-s", plain_cpu / cpu_best)
    peak = max(m["peak_mb"] for m in mapped)
    report("stream_parquet peak RSS (limit 1024 MB)", peak, "MB", peak / MEMORY_LIMIT_MB)
    prepare(home, ROWS // 5, "bench-fifth")
    fifth = mapped_sync("bench-fifth")["peak_mb"]
    report(f"  peak RSS at {ROWS // 5:,} rows (flat?)", fifth, "MB", peak / fifth)
    cost_breakdown(plain_cpu)
    old = pandas_rows_per_second(source)
    report("pandas row by row (the old way)", old, "rows/s", old / plain_rate)
    print(
        f"# rounds: plain {', '.join(f'{t:.1f}s' for t, _ in plain_times)}; "
        f"mapped {', '.join(f'{m["seconds"]:.1f}s' for m in mapped)}"
    )


if __name__ == "__main__":
    main()
