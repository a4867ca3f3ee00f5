"""The app's queue drives the runs: one run per claimed row set, priority order, write-back of
processing / completed / failed, re-queue, no duplicate run when the daemon restarts, and a tick
that keeps watching the queue and its run."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import psycopg
import pytest
from dagster import DagsterEventType

from sync_assets.stats import defs as stats_defs
from sync_assets.stats.queue import (
    CLAIM_TAG,
    ROWS_TAG,
    job_queue_sensor,
    queue_write_back_sensor,
    stats_queue_failure_sensor,
    stats_queue_started_sensor,
    stats_queue_success_sensor,
)
from sync_assets_tests.processes import wait_for
from sync_assets_tests.stats.conftest import stats_db

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
# The queue sensor's logic, one look per tick (the daemon's ticks watch for seconds: below).
ONE_LOOK = job_queue_sensor(watch_seconds=0)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A throwaway local instance (the first test uses the Postgres-backed one)."""
    with dg.instance_for_test() as local:
        yield local


def enqueue(url: str, priority: int, minutes: int, job_type: str = "stats_update") -> str:
    row_id = str(uuid.uuid4())
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO background_job_status (id, job_type, job_payload, priority, created_at)"
            ' VALUES (%s, %s, \'{"triggeredBy": "admin"}\', %s, %s)',
            (row_id, job_type, priority, T0 + dt.timedelta(minutes=minutes)),
        )
    return row_id


def row(url: str, row_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            "SELECT status, retry_count, started_at, completed_at, error_message, results"
            " FROM background_job_status WHERE id = %s",
            (row_id,),
        )
        names = [c.name for c in cursor.description or []]
        return dict(zip(names, cursor.fetchone() or (), strict=True))


def tick(instance: dg.DagsterInstance, cursor: str | None = None, sensor=ONE_LOOK):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"stats_db": stats_db()}
    )
    return sensor(context)


def run_for(instance: dg.DagsterInstance, request: dg.RunRequest) -> dg.ExecuteInJobResult:
    """What the daemon does with a run request (one small asset keeps the test quick)."""
    job = stats_defs.resolve_job_def("stats_refresh_job")
    return job.execute_in_process(
        instance=instance,
        tags=request.tags,
        asset_selection=[dg.AssetKey("power_ratings")],
        raise_on_error=False,
    )


def write_back(instance: dg.DagsterInstance, run_id: str, sensor, event_type) -> None:
    run = instance.get_run_by_id(run_id)
    [record] = instance.get_records_for_run(run_id, of_type=event_type).records
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=record.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"stats_db": stats_db()},
    )
    sensor(context)


def test_each_row_gets_one_run_highest_priority_then_oldest(
    club, database_url, pg_instance, monkeypatch
) -> None:
    monkeypatch.setenv("STATS_QUEUE_MAX_ROWS_PER_RUN", "1")
    low = enqueue(database_url, priority=1, minutes=0)
    high = enqueue(database_url, priority=2, minutes=5)
    high_later = enqueue(database_url, priority=2, minutes=9)
    other = enqueue(database_url, priority=9, minutes=0, job_type="send_newsletter")

    served: list[str] = []
    for _ in range(3):
        [request] = tick(pg_instance).run_requests
        [claimed] = request.tags[ROWS_TAG].split(",")
        assert row(database_url, claimed)["status"] == "processing"
        assert row(database_url, claimed)["results"]["claim"] == request.run_key
        result = run_for(pg_instance, request)
        assert result.success
        write_back(
            pg_instance, result.run_id, stats_queue_success_sensor, DagsterEventType.RUN_SUCCESS
        )
        done = row(database_url, claimed)
        assert done["status"] == "completed" and done["error_message"] is None
        assert done["started_at"] <= done["completed_at"]
        assert done["results"]["dagster_run_id"] == result.run_id
        assert done["results"]["assets"]["power_ratings"]["status"] == "completed"
        assert done["results"]["assets"]["power_ratings"]["revalidation"] == "sent"
        served.append(claimed)

    assert served == [high, high_later, low]
    assert isinstance(tick(pg_instance), dg.SkipReason)  # nothing left
    assert row(database_url, other)["status"] == "queued"  # not a stats job
    runs = pg_instance.get_runs()
    assert len(runs) == 3 and len({r.tags[CLAIM_TAG] for r in runs}) == 3


def queue_run_started(database_url: str, instance: dg.DagsterInstance) -> tuple[str, dg.DagsterRun]:
    """A queued row claimed by a tick, and its run created and started (as the daemon would)."""
    job_row = enqueue(database_url, priority=1, minutes=0)
    [request] = tick(instance).run_requests
    job = stats_defs.resolve_job_def("stats_refresh_job")
    run = instance.create_run_for_job(job_def=job, tags=request.tags)
    instance.report_dagster_event(
        dg.DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name), run_id=run.run_id
    )
    return job_row, run


def test_rows_queued_while_a_run_is_in_flight_are_served_together(
    club, database_url, instance
) -> None:
    first, run = queue_run_started(database_url, instance)
    write_back(instance, run.run_id, stats_queue_started_sensor, DagsterEventType.RUN_START)
    started = row(database_url, first)
    assert started["status"] == "processing"
    assert started["results"]["dagster_run_id"] == run.run_id

    later = enqueue(database_url, priority=1, minutes=1)
    urgent = enqueue(database_url, priority=2, minutes=2)
    assert isinstance(tick(instance), dg.SkipReason)  # a queue run is in flight
    assert row(database_url, later)["status"] == "queued"

    # The run dies and its failure sensor never ran: the queue sensor writes the row back,
    # then serves both waiting rows with one run, the urgent one first.
    instance.report_run_failed(instance.get_run_by_id(run.run_id))
    [together] = tick(instance).run_requests
    failed = row(database_url, first)
    assert failed["status"] == "failed"
    assert (
        failed["error_message"]
        == "This run has been marked as failed from outside the execution context."
    )
    assert together.tags[ROWS_TAG] == f"{urgent},{later}"
    assert together.tags["dagster/priority"] == "2"
    assert {row(database_url, r)["status"] for r in (later, urgent)} == {"processing"}


def test_a_failed_run_is_written_back_and_a_requeued_row_gets_a_new_run(
    club, database_url, instance, monkeypatch
) -> None:
    job_row = enqueue(database_url, priority=2, minutes=0)
    [request] = tick(instance).run_requests
    with monkeypatch.context() as patch:
        patch.setenv("STATS_APP_SCHEMA", "nowhere")
        result = run_for(instance, request)
    assert not result.success
    write_back(instance, result.run_id, stats_queue_failure_sensor, DagsterEventType.RUN_FAILURE)
    failed = row(database_url, job_row)
    assert failed["status"] == "failed" and failed["completed_at"] is not None
    assert failed["error_message"].startswith("power_ratings: ")
    assert "missing in schema 'nowhere'" in failed["error_message"]
    assert failed["results"]["assets"]["power_ratings"]["status"] == "failed"
    assert failed["results"]["failed"] == 1

    with psycopg.connect(database_url) as conn:  # the admin page's "retry" button
        conn.execute(
            "UPDATE background_job_status SET status = 'queued', retry_count = retry_count + 1"
            " WHERE id = %s",
            (job_row,),
        )
    [retry] = tick(instance).run_requests
    assert retry.run_key != request.run_key
    result = run_for(instance, retry)
    write_back(instance, result.run_id, stats_queue_success_sensor, DagsterEventType.RUN_SUCCESS)
    done = row(database_url, job_row)
    assert (done["status"], done["retry_count"], done["error_message"]) == ("completed", 1, None)
    assert done["results"]["dagster_run_id"] == result.run_id


def test_a_restarted_sensor_requests_no_second_run(club, database_url, instance) -> None:
    job_row = enqueue(database_url, priority=1, minutes=0)
    first = tick(instance)
    [request] = first.run_requests
    # The daemon stops before it creates the run; the restarted sensor has no cursor. It asks
    # again under the same run key (which Dagster never runs twice) and claims nothing new.
    [again] = tick(instance, cursor=None).run_requests
    assert (again.run_key, again.tags[ROWS_TAG]) == (request.run_key, job_row)
    result = run_for(instance, again)
    assert result.success
    # Restarted again after the run, before its success sensor: the row is written back and
    # no run is requested.
    assert isinstance(tick(instance, cursor=None), dg.SkipReason)
    assert row(database_url, job_row)["status"] == "completed"
    assert len(instance.get_runs()) == 1


def test_without_the_queue_table_the_sensor_skips(database_url, instance) -> None:
    result = tick(instance)
    assert isinstance(result, dg.SkipReason)
    assert "no background_job_status table" in (result.skip_message or "")


def test_a_run_the_instance_retried_is_judged_by_the_retry(club, database_url, instance):
    """The worker of the first run died and the instance retried it (same tags): the first
    run's failure does not mark the row; the retry's success does."""
    job_row = enqueue(database_url, priority=1, minutes=0)
    [request] = tick(instance).run_requests
    job = stats_defs.resolve_job_def("stats_refresh_job")
    dead = instance.create_run_for_job(job_def=job, tags=request.tags)
    instance.report_run_failed(dead)
    retry = run_for(instance, request)  # same claim tags, as the instance's retry has
    write_back(instance, dead.run_id, stats_queue_failure_sensor, DagsterEventType.RUN_FAILURE)
    assert row(database_url, job_row)["status"] == "processing"
    write_back(instance, retry.run_id, stats_queue_success_sensor, DagsterEventType.RUN_SUCCESS)
    done = row(database_url, job_row)
    assert (done["status"], done["results"]["dagster_run_id"]) == ("completed", retry.run_id)


def looks_at_claims(url: str) -> list[dt.datetime]:
    """When other connections to the app's database last began the sensor's open-claims query."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT query_start FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND query LIKE %s",
            ("%results ? 'claim'%",),
        ).fetchall()
    return [r[0] for r in rows]


def wait_for_two_looks(database_url: str, seconds: float) -> None:
    """Until a watching tick has looked at the open claims twice (so it did not return at its
    first look)."""
    seen = wait_for(lambda: looks_at_claims(database_url), seconds, "the tick's first look")
    wait_for(
        lambda: [t for t in looks_at_claims(database_url) if t > max(seen)],
        seconds,
        "the tick's second look",
    )


def test_a_watching_tick_writes_back_its_run_and_serves_a_row_queued_meanwhile(
    club, database_url, instance
) -> None:
    """One tick sees the queue run in flight, keeps watching, writes the run's rows back when it
    ends, and claims a row queued after that, all before it returns (a one-look tick would have
    returned "in flight" at its first look)."""
    first, run = queue_run_started(database_url, instance)
    watching = job_queue_sensor(watch_seconds=600)  # returns as soon as it requests a run
    with ThreadPoolExecutor(1) as pool:
        ticking = pool.submit(tick, instance, None, watching)
        # Two looks at the open claims: the first look saw the run in flight and did not return.
        wait_for_two_looks(database_url, 120)
        assert not ticking.done()
        instance.report_run_failed(instance.get_run_by_id(run.run_id))
        wait_for(lambda: row(database_url, first)["status"] == "failed", 120, "the write-back")
        assert not ticking.done()  # written back by the watching tick, which watches on
        later = enqueue(database_url, priority=1, minutes=1)
        result = ticking.result(timeout=120)
    [served] = result.run_requests
    assert served.tags[ROWS_TAG] == later
    assert row(database_url, later)["status"] == "processing"
    assert row(database_url, first)["results"]["dagster_run_id"] == run.run_id


def test_the_write_back_sensor_writes_back_a_run_that_ends_while_it_watches(
    club, database_url, instance
) -> None:
    """The run was in flight at the tick's first look; when it ends, the same tick writes its
    rows back (the queue sensor's tick may have ended on requesting it)."""
    job_row, run = queue_run_started(database_url, instance)
    # This tick never ends early: its watch bounds the test's time, and must outlast a busy
    # machine's slow start of the tick and its two looks.
    watching = queue_write_back_sensor(watch_seconds=60)
    with ThreadPoolExecutor(1) as pool:
        ticking = pool.submit(tick, instance, None, watching)
        wait_for_two_looks(database_url, 60)
        assert row(database_url, job_row)["status"] == "processing"
        instance.report_run_failed(instance.get_run_by_id(run.run_id))
        wait_for(lambda: row(database_url, job_row)["status"] == "failed", 60, "the write-back")
        result = ticking.result(timeout=120)
    assert isinstance(result, dg.SkipReason)
    assert result.skip_message == "wrote back 1 runs"
    assert row(database_url, job_row)["results"]["dagster_run_id"] == run.run_id
