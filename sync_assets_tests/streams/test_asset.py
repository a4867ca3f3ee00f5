"""`stream_parquet` as Dagster runs it: publish, write-back, skip, failures, kills and secrets."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest

from sync_assets_tests.streams.conftest import CSV, Streams, mappings, metadata_of

REPO = Path(__file__).resolve().parents[2]


def test_a_run_publishes_the_parquet_and_writes_back_to_data_models(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    result = streams.materialize("people", instance)
    meta = metadata_of(result)
    assert (meta["rows_read"], meta["rows_written"], meta["rows_rejected"]) == (3, 3, 0)
    assert meta["skipped"] is False and meta["bytes"] == streams.parquet("people").stat().st_size
    assert meta["source_bytes"] == len(CSV) and len(meta["source_xxh3_128"]) == 32
    assert meta["parquet_uri"] == f"{streams.root}/streams/people.parquet"
    assert meta["rejected_samples"] == [] and meta["seconds"] > 0
    assert sorted(r["id"] for r in streams.rows("people")) == [1, 2, 3]
    [(uri, count, synced)] = streams.query(
        "SELECT parquet_uri, row_count, synced_at FROM streams.data_models WHERE id = 'people'"
    )
    assert (uri, count) == (meta["parquet_uri"], 3) and synced is not None
    # Nothing is left behind in the bucket but the published file.
    assert sorted(p.name for p in (streams.root / "streams").iterdir()) == [
        ".staging",
        "people.parquet",
    ]
    assert not any((streams.root / "streams" / ".staging").iterdir())


def test_an_unchanged_source_is_not_rewritten(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    first = metadata_of(streams.materialize("people", instance))
    published = streams.parquet("people").stat()
    time.sleep(0.05)
    streams.write("sources/people.csv", CSV)  # touched, same bytes
    second = metadata_of(streams.materialize("people", instance))
    assert second["skipped"] is True and "unchanged" in second["skip_reason"]
    assert second["rows_written"] == first["rows_written"] == 3
    assert streams.parquet("people").stat().st_mtime_ns == published.st_mtime_ns
    # A new mapping, a new source or `force` rewrites it.
    streams.model("people", "csv", mappings([("id", "integer"), ("name", "text")]))
    third = metadata_of(streams.materialize("people", instance))
    assert third["skipped"] is False and list(streams.rows("people")[0]) == ["id", "name", "$_ref"]
    forced = metadata_of(streams.materialize("people", instance, config={"force": True}))
    assert forced["skipped"] is False
    # Another Parquet format rewrites it too (v1 for readers without the v2 encodings).
    v1 = metadata_of(streams.materialize("people", instance, config={"parquet_version": "v1"}))
    assert v1["skipped"] is False and v1["parquet_version"] == "v1"
    assert pq.ParquetFile(streams.parquet("people")).metadata.format_version == "1.0"
    streams.write("sources/people.csv", CSV + "4,Dee,2,true,2024-03-01,2024-03-01\n")
    fourth = metadata_of(streams.materialize("people", instance))
    assert fourth["skipped"] is False and fourth["rows_written"] == 4
    assert len({first["source_xxh3_128"], fourth["source_xxh3_128"]}) == 2


def test_a_failed_run_leaves_the_previous_file_and_says_why(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.materialize("people", instance)
    before = streams.parquet("people").read_bytes()
    # A mapping naming a column the source lacks: the run fails naming the model and column.
    streams.model("people", "csv", mappings([("id", "integer"), ("email", "text")]))
    result = streams.materialize("people", instance, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.message
    assert "data model 'people'" in message and "'email'" in message
    assert streams.parquet("people").read_bytes() == before
    # Too many values that do not cast: nothing is published either.
    streams.model("people", "csv")
    bad = "id,name,amount,active,day,at\n" + "x,a,1,true,2024-01-01,2024-01-01\n" * 5 + CSV[29:]
    streams.write("sources/people.csv", bad)
    result = streams.materialize("people", instance, raise_on_error=False)
    assert not result.success and streams.parquet("people").read_bytes() == before
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "5 of 8 rows" in failure.step_failure_data.error.message
    # One failed attempt each: definite faults are not retried.
    assert len(result.filter_events(lambda e: e.event_type_value == "STEP_UP_FOR_RETRY")) == 0
    [(count,)] = streams.query("SELECT row_count FROM streams.data_models WHERE id = 'people'")
    assert count == 3


def test_disabled_or_unknown_models_are_not_synced(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv", enabled=False)
    for model_id, reason in (("people", "is disabled"), ("ghost", "does not exist")):
        result = streams.materialize(model_id, instance, raise_on_error=False)
        assert not result.success
        [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        assert reason in failure.step_failure_data.error.message
    assert not streams.parquet("people").exists()


def test_a_run_that_waited_for_the_lock_uses_the_mapping_of_its_turn(streams, instance) -> None:
    """The model is read under the model's lock: a run queued behind another, while the app
    changed the mapping, publishes the new mapping and never an older one."""
    import threading

    from sync_assets.streams.assets import StreamSyncConfig, sync_model

    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv", mappings([("id", "integer"), ("name", "text")]))
    outcome: dict = {}
    with streams.db.advisory_lock("stream_parquet:people"):  # another run holds the model
        waiting = threading.Thread(
            target=lambda: outcome.update(
                sync_model(
                    "people",
                    StreamSyncConfig(lock_wait_seconds=30),
                    streams.db,
                    streams.storage,
                    dict,
                    print,
                )
            )
        )
        waiting.start()
        time.sleep(1.0)  # the run is now waiting for the lock
        streams.model("people", "csv", mappings([("id", "integer"), ("amount", "number")]))
    waiting.join(60)
    assert outcome["rows_written"] == 3
    assert set(streams.rows("people")[0]) == {"id", "amount", "$_ref"}


WORKER = """
import os, sys
from pathlib import Path
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams.assets import StreamSyncConfig, sync_model
db = PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL")
sync_model("big", StreamSyncConfig(threads=1, force=True), db, ObjectStorageResource(), dict, print)
print("finished", flush=True)
"""


def test_a_run_killed_mid_write_leaves_the_old_file_readable(streams, instance) -> None:
    fields = mappings([("i", "integer"), ("s", "text"), ("d", "number")])
    streams.model("big", "csv", fields)
    small = streams.write("sources/big.csv", "i,s,d\n1,old,0.5\n2,old,1.5\n")
    streams.materialize("big", instance)
    old = pq.read_table(streams.parquet("big")).to_pylist()
    # A source big enough for the write to take a while on one thread.
    duckdb.execute(
        "COPY (SELECT i, md5(CAST(i AS VARCHAR)) || repeat('x', 40) AS s, i / 7 AS d"
        " FROM range(250000) t(i)) TO $path (HEADER)",
        {"path": str(small)},
    )
    env = {**os.environ, "OBJECT_STORAGE_URL": str(streams.root)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER], env=env, cwd=REPO)
    staging = streams.root / "streams" / ".staging"
    # A busy machine may take minutes to start the worker: the wait is for the staging file.
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and worker.poll() is None:
            if any(p.is_file() for p in staging.rglob("*.parquet")):
                break
            time.sleep(0.02)
        assert worker.poll() is None, "the worker finished before it could be killed"
        worker.send_signal(signal.SIGKILL)  # while it writes the staging file
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert any(staging.iterdir())  # the dead run's partial output is there...
    assert pq.read_table(streams.parquet("big")).to_pylist() == old  # ...but not published
    # The next run removes the leftover and publishes in full.
    streams.write("sources/big.csv", "i,s,d\n1,new,0.5\n")
    meta = metadata_of(streams.materialize("big", instance))
    assert meta["rows_written"] == 1 and streams.rows("big")[0]["s"] == "new"
    assert not any(staging.iterdir())


def test_secrets_stay_out_of_logs_and_event_storage(
    streams: Streams, pg_instance, monkeypatch, capfd
) -> None:
    secret = "s3cr3t-Pa55word-stream"
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    # The database refuses the connection: a transient fault, so the run retries, then fails.
    monkeypatch.setenv(
        "STREAMS_DATABASE_URL", f"postgresql://sync:{secret}@127.0.0.1:9/app?connect_timeout=2"
    )
    result = streams.materialize("people", pg_instance, raise_on_error=False)
    assert not result.success
    retries = result.filter_events(lambda e: e.event_type_value == "STEP_UP_FOR_RETRY")
    assert len(retries) == 2
    captured = capfd.readouterr()
    assert secret not in captured.out + captured.err
    failures = pg_instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.STEP_FAILURE
    ).records
    assert failures
    logs = pg_instance.all_logs(result.run_id)
    assert any("127.0.0.1" in repr(entry) for entry in logs)  # the error is there, redacted
    assert all(secret not in repr(entry) for entry in logs)


@pytest.mark.parametrize("fmt", ["ndjson", "parquet"])
def test_other_formats_through_the_asset(streams, instance, fmt) -> None:
    from sync_assets_tests.streams.test_transform import sources

    content = sources()[fmt]
    streams.write(f"sources/people.{fmt}", content)
    streams.model("people", fmt)
    meta = metadata_of(streams.materialize("people", instance))
    assert meta["rows_written"] == 3 and meta["source_format"] == fmt


def test_a_remote_object_store_through_fsspec(streams, instance, monkeypatch) -> None:
    """Any fsspec URL works: here fsspec's in-memory store stands in for s3://."""
    import fsspec

    root = f"memory://streams-test-{os.getpid()}-{time.monotonic_ns()}"
    monkeypatch.setenv("OBJECT_STORAGE_URL", root)
    memory = fsspec.filesystem("memory")
    with memory.open(f"{root}/sources/people.csv", "wb") as handle:
        handle.write(CSV.encode())
    streams.model("people", "csv")
    first = metadata_of(streams.materialize("people", instance))
    assert first["rows_written"] == 3 and first["parquet_uri"] == f"{root}/streams/people.parquet"
    with memory.open(f"{root}/streams/people.parquet", "rb") as handle:
        assert pq.read_table(handle).num_rows == 3
    assert metadata_of(streams.materialize("people", instance))["skipped"] is True
    assert memory.ls(f"{root}/streams/.staging", detail=False) == []
    # A missing source object fails naming it.
    memory.rm(f"{root}/sources/people.csv")
    result = streams.materialize("people", instance, raise_on_error=False)
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "'sources/people.csv' does not exist" in failure.step_failure_data.error.message


def test_a_source_replaced_while_it_is_read_is_not_published(
    streams, instance, monkeypatch
) -> None:
    """Another client replaces the object between the header read and the end of the scan."""
    from sync_assets.streams import assets

    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.materialize("people", instance)
    before = streams.parquet("people").read_bytes()
    # The same rows with a column put in front of `name`: positions read from the old header
    # would map the surnames as names.
    wider = "".join(
        line.replace(",", ",surname," if i == 0 else ",x,", 1) + "\n"
        for i, line in enumerate(CSV.splitlines())
    )
    real_transform = assets.transform
    replaced = []

    def transform_then_replace(*args, **kwargs):
        result = real_transform(*args, **kwargs)
        if not replaced:  # the first attempt only: the retry reads the new version whole
            time.sleep(0.01)  # a later mtime on file systems with coarse timestamps
            streams.write("sources/people.csv", wider)
            replaced.append(True)
        return result

    monkeypatch.setattr(assets, "transform", transform_then_replace)
    result = streams.materialize("people", instance, raise_on_error=False, config={"force": True})
    retries = result.filter_events(lambda e: e.event_type_value == "STEP_UP_FOR_RETRY")
    assert len(retries) == 1 and "changed while it was read" in str(retries[0].event_specific_data)
    assert result.success and metadata_of(result)["source_bytes"] == len(wider)
    # Read by the new header: the names are still the names (the old positions would give "x").
    names = sorted((r["name"] or "") for r in streams.rows("people"))
    assert names == sorted(r["name"] or "" for r in pq.read_table(io.BytesIO(before)).to_pylist())
    assert "x" not in names


def step_failures(result: dg.ExecutionResult) -> list[str]:
    """Each failed attempt: the final failure's message, and `retried` for each retry."""
    events = result.all_events
    retried = [e for e in events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    final = [
        e.step_failure_data.error.message for e in events if e.event_type_value == "STEP_FAILURE"
    ]
    return ["retried"] * len(retried) + final


@pytest.mark.parametrize(
    "replacement", [b"", b"not parquet", None], ids=["emptied", "garbage", "removed"]
)
def test_a_published_file_changed_by_hand_is_rewritten_not_vouched_for(
    streams, instance, replacement
) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.materialize("people", instance)
    if replacement is None:
        streams.parquet("people").unlink()
    else:
        streams.parquet("people").write_bytes(replacement)
    again = metadata_of(streams.materialize("people", instance))
    assert again["skipped"] is False and again["bytes"] == streams.parquet("people").stat().st_size
    assert sorted(r["id"] for r in streams.rows("people")) == [1, 2, 3]


@pytest.mark.parametrize(
    ("config", "fault"),
    [
        ({"memory_limit": "abc"}, "memory_limit 'abc' is not a size such as '400MB'"),
        ({"threads": 0}, "threads 0 is below 1"),
        ({"max_rejected_fraction": 1.5}, "max_rejected_fraction 1.5 is not in 0..1"),
    ],
)
def test_bad_run_config_fails_once_naming_the_setting(streams, instance, config, fault) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    request = streams.request("people")
    tags = {"sync_assets/stream_sync_job_id": str(request)}
    result = streams.materialize("people", instance, config=config, raise_on_error=False, tags=tags)
    [message] = step_failures(result)
    assert f"run config ops.stream_parquet.config: {fault}" in message
    [(status, error)] = streams.query("SELECT status, error FROM streams.stream_sync_jobs")
    assert status == "failed" and fault in error


def test_running_out_of_memory_is_named_as_the_memory_limit(streams, instance) -> None:
    """Not as an unreadable source, which would send the user to fix a good file."""
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    result = streams.materialize(
        "people", instance, config={"memory_limit": "1KB"}, raise_on_error=False
    )
    [message] = step_failures(result)
    assert "DuckDB ran out of memory under memory_limit '1KB'" in message
    assert "cannot read the csv source" not in message
