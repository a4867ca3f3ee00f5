"""The streams write-back's database connection killed while it writes: the data_models update
(after the Parquet is published) and the stream_sync_jobs status update. The run fails with the
database's error or its retry recovers; a re-run converges to what an undisturbed sync writes."""

from __future__ import annotations

from sync_assets.streams.assets import RETRY_POLICY
from sync_assets_tests.pg_faults import backend_killed_mid_write, says_connection_lost
from sync_assets_tests.streams.conftest import CSV

ATTEMPTS = RETRY_POLICY.max_retries + 1
MORE = CSV + "4,Dee,2,true,2024-03-01,2024-03-01\n"
MODEL_ROW = "SELECT parquet_uri, row_count, synced_at FROM streams.data_models WHERE id = %s"
REQUEST_ROW = "SELECT status, attempts, error, run_id FROM streams.stream_sync_jobs WHERE id = %s"


def request_tags(request_id: int) -> dict[str, str]:
    return {"sync_assets/stream_sync_job_id": str(request_id)}


def undisturbed(streams, instance) -> list[dict]:
    """The rows an undisturbed sync of the same source publishes (a twin model reading it)."""
    streams.model("twin", "csv", source_uri="sources/people.csv")
    streams.materialize("twin", instance)
    return sorted(streams.rows("twin"), key=lambda row: row["id"])


def test_the_data_models_write_back_killed_on_every_attempt_fails_the_run_and_request(
    streams, instance
) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.materialize("people", instance)
    [before] = streams.query(MODEL_ROW, ("people",))

    streams.write("sources/people.csv", MORE)
    request = streams.request("people")
    with backend_killed_mid_write(streams.url, "streams.data_models", kills=ATTEMPTS) as killed:
        failed = streams.materialize(
            "people", instance, tags=request_tags(request), raise_on_error=False
        )
    assert "UPDATE data_models" in killed.query and killed.count == ATTEMPTS
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert says_connection_lost(failure.step_failure_data.user_failure_data.description)
    # The app's row still describes the last recorded sync; the request says why it failed.
    assert streams.query(MODEL_ROW, ("people",)) == [before]
    # The file was published before the record (object storage and PostgreSQL share no
    # transaction): it is whole and new, and no materialization vouches for it, so the next run
    # does not skip it as unchanged but rewrites it and records it.
    assert len(streams.rows("people")) == 4
    [(status, attempts, error, _)] = streams.query(REQUEST_ROW, (request,))
    assert (status, attempts) == ("failed", ATTEMPTS) and says_connection_lost(error)

    again = streams.request("people")
    assert streams.materialize("people", instance, tags=request_tags(again)).success
    [(uri, count, synced)] = streams.query(MODEL_ROW, ("people",))
    assert (uri, count) == (before[0], 4) and synced > before[2]
    assert streams.query(REQUEST_ROW, (again,))[0][:3] == ("done", 1, None)
    assert sorted(streams.rows("people"), key=lambda row: row["id"]) == undisturbed(
        streams, instance
    )


def test_the_request_status_write_killed_once_is_retried_to_done(streams, instance) -> None:
    streams.write("sources/people.csv", MORE)
    streams.model("people", "csv")
    request = streams.request("people")
    with backend_killed_mid_write(streams.url, "streams.stream_sync_jobs") as killed:
        result = streams.materialize("people", instance, tags=request_tags(request))
    assert "UPDATE stream_sync_jobs" in killed.query
    assert result.success
    retried = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retried) == 1
    # The killed attempt's `running` was rolled back with it: one attempt counted, not two.
    [(status, attempts, error, run_id)] = streams.query(REQUEST_ROW, (request,))
    assert (status, attempts, error, run_id) == ("done", 1, None, result.run_id)
    assert streams.query(MODEL_ROW, ("people",))[0][1] == 4
    assert sorted(streams.rows("people"), key=lambda row: row["id"]) == undisturbed(
        streams, instance
    )
