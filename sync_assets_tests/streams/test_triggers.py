"""The request-table sensor, the source sensor, the schedule, the failure sensor and the demo."""

from __future__ import annotations

import datetime as dt
import json
import os

import dagster as dg
import psycopg

from sync_assets.definitions import defs as all_defs
from sync_assets.sandbox import streams as sandbox
from sync_assets.streams import DEMO_EXTRA_JOBS, defs
from sync_assets.streams.assets import REQUEST_TAG
from sync_assets.streams.jobs import (
    stream_source_sensor,
    stream_sync_canceled_sensor,
    stream_sync_failure_sensor,
    stream_sync_jobs_sensor,
    stream_sync_schedule,
)
from sync_assets_tests.processes import wait_for
from sync_assets_tests.streams.conftest import CSV, Streams, mappings


def evaluate(sensor, streams: Streams, instance, cursor: str | None = None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=streams.resources()
    )
    return sensor(context)


def execute(request: dg.RunRequest, instance) -> dg.ExecuteInJobResult:
    job = all_defs.resolve_job_def("stream_sync_job")
    return job.execute_in_process(
        partition_key=request.partition_key,
        tags=request.tags,
        instance=instance,
        raise_on_error=False,
    )


def statuses(streams: Streams) -> dict[int, tuple]:
    rows = streams.query(
        "SELECT id, status, run_id, attempts, error FROM streams.stream_sync_jobs ORDER BY id"
    )
    return {row[0]: row[1:] for row in rows}


def test_each_request_becomes_one_run_and_its_status_is_written_back(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.write("sources/broken.csv", CSV)
    streams.model("people", "csv")
    streams.model("broken", "csv", mappings([("id", "integer"), ("missing", "text")]))
    streams.model("off", "csv", source_uri="sources/people.csv", enabled=False)
    ok, broken, off, ghost = (streams.request(m) for m in ("people", "broken", "off", "ghost"))

    result = evaluate(stream_sync_jobs_sensor, streams, instance)
    requests = {r.tags[REQUEST_TAG]: r for r in result.run_requests}
    assert set(requests) == {str(ok), str(broken)}
    assert requests[str(ok)].run_key.startswith(f"stream_sync_jobs:{ok}:20")
    assert requests[str(ok)].partition_key == "people"
    assert set(instance.get_dynamic_partitions("stream_models")) == {"people", "broken"}
    state = statuses(streams)
    assert state[ok][0] == state[broken][0] == "queued"
    assert state[off][0] == "failed" and "is disabled" in state[off][3]
    assert state[ghost][0] == "failed" and "does not exist" in state[ghost][3]

    # A restarted sensor (no cursor) asks again with the same run keys: the daemon dedups those.
    again = evaluate(stream_sync_jobs_sensor, streams, instance)
    assert {r.run_key for r in again.run_requests} == {r.run_key for r in result.run_requests}

    done = execute(requests[str(ok)], instance)
    failed = execute(requests[str(broken)], instance)
    assert done.success and not failed.success
    state = statuses(streams)
    assert state[ok] == ("done", done.run_id, 1, None)
    assert state[broken][:3] == ("failed", failed.run_id, 1)
    assert "'missing'" in state[broken][3] and "data model 'broken'" in state[broken][3]
    assert streams.rows("people")

    # After the runs exist, restarts request nothing more: one run per request.
    for _ in range(2):
        later = evaluate(stream_sync_jobs_sensor, streams, instance)
        assert not later.run_requests
    runs = instance.get_runs(dg.RunsFilter(tags={REQUEST_TAG: str(ok)}))
    assert len(runs) == 1


def test_a_request_id_used_again_by_the_app_is_a_new_request(streams, instance) -> None:
    """After TRUNCATE ... RESTART IDENTITY (or a restored backup) ids start again at 1."""
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    first = streams.request("people")
    [old] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert execute(old, instance).success
    with psycopg.connect(streams.url) as conn:
        conn.execute("TRUNCATE streams.stream_sync_jobs RESTART IDENTITY")
    again = streams.request("people")
    assert again == first

    [new] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert new.tags[REQUEST_TAG] == str(again) and new.run_key != old.run_key
    # The old run, retried or late, cannot write the new request's status.
    assert execute(old, instance).success
    assert statuses(streams)[again][0] == "queued"
    done = execute(new, instance)
    assert statuses(streams)[again] == ("done", done.run_id, 1, None)
    assert not evaluate(stream_sync_jobs_sensor, streams, instance).run_requests


def test_a_queued_request_whose_run_is_already_created_is_not_requested_again(
    streams, instance
) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    request_id = streams.request("people")
    [request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    # The daemon creates the run (queued, not started yet); the sensor then restarts.
    job = all_defs.resolve_job_def("stream_sync_job")
    instance.create_run_for_job(job, tags=request.tags, run_config={})
    assert not evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert statuses(streams)[request_id][0] == "queued"


def _report_failure(streams: Streams, instance, run: dg.DagsterRun) -> None:
    event = dg.DagsterEvent(
        event_type_value="PIPELINE_FAILURE",
        job_name="stream_sync_job",
        message="the run worker exited unexpectedly",
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="stream_sync_failure_sensor",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources=streams.resources(),
    ).for_run_failure()
    stream_sync_failure_sensor(context)


def test_the_failure_sensor_marks_requests_of_runs_that_died(streams, instance) -> None:
    streams.model("people", "csv")
    request_id = streams.request("people")
    job = all_defs.resolve_job_def("stream_sync_job")
    tags = {REQUEST_TAG: str(request_id)}
    # A worker that died with retries left (dagster.yaml run_retries): the retry decides.
    retried = instance.create_run_for_job(
        job, tags={**tags, "dagster/will_retry": "true"}, run_config={}
    )
    instance.report_run_failed(retried)
    _report_failure(streams, instance, instance.get_run_by_id(retried.run_id))
    assert statuses(streams)[request_id][0] == "pending"
    # Nor does the request sensor, which finds that run ended FAILURE: it neither fails the
    # request (to be `done` after the retry) nor runs it again.
    assert not evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert statuses(streams)[request_id][0] == "queued"

    run = instance.create_run_for_job(job, tags=tags, run_config={})
    _report_failure(streams, instance, run)
    assert statuses(streams)[request_id] == (
        "failed",
        run.run_id,
        0,
        "the run worker exited unexpectedly",
    )


def test_a_run_canceled_mid_sync_fails_its_running_request(streams, instance) -> None:
    """The asset marks the request running; a cancel after that must not leave it running."""
    streams.model("people", "csv")
    request_id = streams.request("people")
    job = all_defs.resolve_job_def("stream_sync_job")
    run = instance.create_run_for_job(job, tags={REQUEST_TAG: str(request_id)}, run_config={})
    streams.query(
        "UPDATE streams.stream_sync_jobs SET status = 'running', attempts = 1"
        " WHERE id = %s RETURNING id",
        (request_id,),
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="stream_sync_canceled_sensor",
        dagster_event=dg.DagsterEvent(
            event_type_value="PIPELINE_CANCELED", job_name="stream_sync_job"
        ),
        dagster_instance=instance,
        dagster_run=run,
        resources=streams.resources(),
    )
    stream_sync_canceled_sensor(context)
    assert statuses(streams)[request_id] == (
        "failed",
        run.run_id,
        1,
        f"run {run.run_id} was canceled",
    )
    # A request that already finished is left as it is.
    streams.query(
        "UPDATE streams.stream_sync_jobs SET status = 'done', error = NULL WHERE id = %s"
        " RETURNING id",
        (request_id,),
    )
    stream_sync_canceled_sensor(context)
    assert statuses(streams)[request_id][0] == "done"


def test_a_retried_attempt_is_not_reported_as_a_final_failure(streams, instance) -> None:
    """A busy lock fails the first attempt; the app must not see `failed` before the retry."""
    import threading

    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    request_id = streams.request("people")
    [request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    with psycopg.connect(streams.url) as conn:  # every status and error the app could see
        conn.execute("CREATE TABLE streams.request_history (status text, error text)")
        conn.execute(
            "CREATE FUNCTION streams.keep_history() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN INSERT INTO streams.request_history VALUES (NEW.status, NEW.error);"
            " RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER history AFTER UPDATE ON streams.stream_sync_jobs"
            " FOR EACH ROW EXECUTE FUNCTION streams.keep_history()"
        )
    holder = streams.db.advisory_lock("stream_parquet:people")
    holder.__enter__()  # another run holds the model when the first attempt starts

    def release_after_the_first_attempt_failed() -> None:
        try:
            wait_for(
                lambda: any(
                    (error or "").startswith("attempt 1 failed")
                    for _, error in streams.query("SELECT * FROM streams.request_history")
                ),
                timeout=120,
                what="the first attempt to fail on the lock",
            )
        finally:
            holder.__exit__(None, None, None)

    release = threading.Thread(target=release_after_the_first_attempt_failed)
    release.start()
    job = all_defs.resolve_job_def("stream_sync_job")
    result = job.execute_in_process(
        partition_key=request.partition_key,
        tags=request.tags,
        instance=instance,
        run_config={"ops": {"stream_parquet": {"config": {"lock_wait_seconds": 0}}}},
    )
    release.join()
    assert result.success
    history = streams.query("SELECT status, error FROM streams.request_history")
    assert [status for status, _ in history] == ["running", "running", "running", "done"]
    assert history[1][1].startswith("attempt 1 failed, retrying:")
    assert "stream_parquet:people" in history[1][1]
    assert statuses(streams)[request_id] == ("done", result.run_id, 2, None)


def test_new_or_changed_sources_start_runs(streams, instance) -> None:
    streams.write("sources/a.csv", CSV)
    streams.write("sources/b.csv", CSV)
    streams.model("a", "csv")
    streams.model("b", "csv")
    streams.model("nofile", "csv")
    streams.model("off", "csv", source_uri="sources/a.csv", enabled=False)
    first = evaluate(stream_source_sensor, streams, instance)
    assert sorted(r.partition_key for r in first.run_requests) == ["a", "b"]
    assert set(instance.get_dynamic_partitions("stream_models")) == {"a", "b"}
    second = evaluate(stream_source_sensor, streams, instance, first.cursor)
    assert not second.run_requests
    streams.write("sources/b.csv", CSV + "4,x,1,true,2024-01-01,2024-01-01\n")
    third = evaluate(stream_source_sensor, streams, instance, second.cursor)
    [request] = third.run_requests
    assert request.partition_key == "b" and request.run_key != first.run_requests[1].run_key
    streams.write("sources/nofile.csv", CSV)
    fourth = evaluate(stream_source_sensor, streams, instance, third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["nofile"]
    # Back to the first version, same size and mtime: still a change, with a key of its own.
    source = streams.root / "sources" / "b.csv"
    stamp = source.stat().st_mtime_ns
    source.write_text(CSV)
    os.utime(source, ns=(stamp, stamp))
    reverted = evaluate(stream_source_sensor, streams, instance, fourth.cursor)
    source.write_text(CSV + "4,x,1,true,2024-01-01,2024-01-01\n")
    os.utime(source, ns=(stamp, stamp))
    again = evaluate(stream_source_sensor, streams, instance, reverted.cursor)
    keys = [r.run_key for r in (*first.run_requests, *third.run_requests)]
    for result in (reverted, again):
        [request] = result.run_requests
        assert request.partition_key == "b" and request.run_key not in keys
        keys.append(request.run_key)
    # A cursor written before the change count still works.
    old_cursor = json.dumps({"a": "0:0", "b": "0:0"})
    upgraded = evaluate(stream_source_sensor, streams, instance, old_cursor)
    assert sorted(r.partition_key for r in upgraded.run_requests) == ["a", "b", "nofile"]


def test_the_schedule_resyncs_every_enabled_model(streams) -> None:
    streams.model("a", "csv")
    streams.model("b", "json")
    streams.model("off", "csv", enabled=False)
    with dg.instance_for_test() as instance:
        _evaluate_schedule(streams, instance)


def _evaluate_schedule(streams: Streams, instance: dg.DagsterInstance) -> None:
    context = dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=dt.datetime(2026, 1, 2, 3, 15, tzinfo=dt.UTC),
        resources=streams.resources(),
    )
    requests = stream_sync_schedule(context)
    assert [r.partition_key for r in requests] == ["a", "b"]
    assert requests[0].run_key == "stream_sync_schedule:2026-01-02T03:15:00+00:00:a"
    assert set(instance.get_dynamic_partitions("stream_models")) == {"a", "b"}


def test_names_groups_tags_and_resources() -> None:
    repo = all_defs.get_repository_def()
    asset = repo.assets_defs_by_key[dg.AssetKey("stream_parquet")]
    spec = next(iter(asset.specs))
    assert spec.group_name == "streams" and spec.kinds == {"duckdb", "parquet"}
    assert spec.description and isinstance(asset.partitions_def, dg.DynamicPartitionsDefinition)
    for name in ("stream_sync_job", "stream_sync_all_job"):
        assert all_defs.resolve_job_def(name).tags["sync_assets/domain"] == "streams"
    assert {s.name for s in repo.sensor_defs if s.name.startswith("stream")} == {
        "stream_sync_jobs_sensor",
        "stream_source_sensor",
        "stream_sync_failure_sensor",
        "stream_sync_canceled_sensor",
    }
    assert all_defs.resolve_schedule_def("stream_sync_schedule").cron_schedule == "15 * * * *"
    assert set(defs.resources) == {"streams_db"}
    assert defs.resources["streams_db"].url_setting == "STREAMS_DATABASE_URL"
    assert DEMO_EXTRA_JOBS == ("stream_sync_all_job",)
    all_syncs = all_defs.resolve_job_def("all_syncs_job")
    assert "stream_parquet" not in {n.name for n in all_syncs.nodes}


def test_the_demo_seed_and_the_all_models_job(streams, instance) -> None:
    sandbox.seed_app_tables(0.5)
    sandbox.seed_app_tables(0.5)  # idempotent: one request, same files
    assert streams.query("SELECT count(*) FROM streams.stream_sync_jobs") == [(1,)]
    assert sandbox.write_sources(streams.storage, 0.5) == 0
    result = all_defs.resolve_job_def("stream_sync_all_job").execute_in_process(instance=instance)
    assert result.success
    written = {
        m.partition: m.metadata["rows_written"].value
        for m in result.asset_materializations_for_node("sync_all_stream_models")
    }
    assert written == {"orders": 998, "events": 1000, "products": 1000, "readings": 1000}
    orders = [
        m
        for m in result.asset_materializations_for_node("sync_all_stream_models")
        if m.partition == "orders"
    ][0]
    assert orders.metadata["rows_rejected"].value == 2  # the seed's two 'n/a' amounts
    assert not streams.parquet("archived-orders").exists()
    counts = dict(streams.query("SELECT id, row_count FROM streams.data_models"))
    assert counts == {**written, "archived-orders": None}
    # The data version the asset records (checksum and mapping), whichever job synced it.
    for materialization in all_materializations(instance, result.run_id):
        meta = {k: v.value for k, v in materialization.metadata.items()}
        assert materialization.tags["dagster/data_version"] == (
            f"{meta['source_xxh3_128'][:16]}-{meta['mapping_fingerprint']}"
        )


def all_materializations(instance, run_id: str) -> list[dg.AssetMaterialization]:
    """What a run recorded, also when its step failed after some models."""
    return [
        entry.dagster_event.event_specific_data.materialization
        for entry in instance.all_logs(run_id)
        if entry.dagster_event and entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
    ]


def test_the_all_models_job_counts_a_model_whose_id_is_unusable(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.query(
        "INSERT INTO streams.data_models (id, source_uri, source_format, field_mappings)"
        " SELECT 'bad id', source_uri, source_format, field_mappings FROM streams.data_models"
        " RETURNING id"
    )
    job = all_defs.resolve_job_def("stream_sync_all_job")
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    assert [m.partition for m in all_materializations(instance, result.run_id)] == ["people"]
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "1 of 2 data models failed: bad id" in failure.step_failure_data.error.message
