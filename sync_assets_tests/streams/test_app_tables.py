"""The request sensor on the app's own tables as ORMs and hosted databases make them."""

from __future__ import annotations

import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from sync_assets.streams.jobs import stream_source_sensor, stream_sync_jobs_sensor
from sync_assets_tests.streams.conftest import CSV, Streams
from sync_assets_tests.streams.test_triggers import evaluate, execute, statuses

# Django, Rails, Laravel or TypeORM: varchar columns, a smallint count, a naive timestamp, a
# short error column, requested_at allowed to be NULL.
ORM_TABLE = """
CREATE TABLE streams.stream_sync_jobs (
    id serial PRIMARY KEY,
    data_model_id varchar(64) NOT NULL,
    requested_at timestamp(3) DEFAULT now(),
    status varchar(16) NOT NULL DEFAULT 'pending',
    run_id varchar(64),
    attempts smallint,
    error varchar(255)
)
"""


def replace_requests_table(streams: Streams, ddl: str) -> None:
    with psycopg.connect(streams.url) as conn:
        conn.execute("DROP TABLE streams.stream_sync_jobs")
        conn.execute(ddl)


def test_an_orm_made_request_table_is_read_and_written_back(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    header = ",".join(f"a_rather_long_column_name_{i:02}" for i in range(20))
    streams.write("sources/wide.csv", header + "\n")
    streams.model("wide", "csv", [{"source": "x", "type": "text"}], source_uri="sources/wide.csv")
    replace_requests_table(streams, ORM_TABLE)
    with psycopg.connect(streams.url) as conn:
        # The database's zone is not the sync's: a naive requested_at is read in the former.
        conn.execute("SELECT set_config('TimeZone', 'America/New_York', false)")
        conn.execute(f"ALTER DATABASE {conn.info.dbname} SET TimeZone = 'America/New_York'")
        conn.execute(
            "INSERT INTO streams.stream_sync_jobs (data_model_id) VALUES ('people'), ('wide')"
        )
        conn.execute(
            "INSERT INTO streams.stream_sync_jobs (data_model_id, requested_at)"
            " VALUES ('people', NULL)"
        )
    try:
        requests = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
        assert sorted(r.partition_key for r in requests) == ["people", "people", "wide"]
        for request in requests:
            execute(request, instance)
        state = statuses(streams)
        assert [state[i][0] for i in (1, 3)] == ["done", "done"] and state[1][2] == 1
        # A definite failure whose message is longer than the column still ends `failed`.
        assert state[2][0] == "failed" and len(state[2][3]) == 255 and state[2][2] == 1
        assert not evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    finally:
        with psycopg.connect(streams.url, autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {conn.info.dbname} RESET TimeZone")


def test_a_request_reopened_after_its_run_succeeded_is_closed_not_left_open(
    streams, instance
) -> None:
    """The 50 oldest open requests are a tick's whole view: none may stay open for good."""
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    first = streams.request("people")
    [request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    run = execute(request, instance)
    streams.query(
        "UPDATE streams.stream_sync_jobs SET status = 'pending' WHERE id = %s RETURNING id",
        (first,),
    )
    later = streams.request("people")
    [again] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert again.tags["sync_assets/stream_sync_job_id"] == str(later)
    assert statuses(streams)[first][:2] == ("done", run.run_id)


def test_a_model_whose_mappings_are_not_json_fails_alone(streams, instance) -> None:
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    streams.model("garbled", "csv", source_uri="sources/people.csv")
    streams.query(
        "UPDATE streams.data_models SET field_mappings = to_jsonb('id:integer'::text)"
        " WHERE id = 'garbled' RETURNING id"
    )
    good, bad = streams.request("people"), streams.request("garbled")
    [request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert request.partition_key == "people"
    state = statuses(streams)
    assert state[bad][0] == "failed" and "field_mappings is not JSON" in state[bad][3]
    assert state[good][0] == "queued"
    sources = evaluate(stream_source_sensor, streams, instance).run_requests
    assert [r.partition_key for r in sources] == ["people"]


def test_a_role_that_does_not_own_the_app_tables_runs_the_sync(streams, instance, monkeypatch):
    """Least privilege: USAGE on the schema, SELECT and UPDATE on the tables, nothing else."""
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    request = streams.request("people")
    role = f"sync_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(streams.url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'sync-role-password'")
        conn.execute(f"GRANT USAGE ON SCHEMA streams TO {role}")
        conn.execute(f"GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA streams TO {role}")
    params = conninfo_to_dict(streams.url) | {"user": role, "password": "sync-role-password"}
    monkeypatch.setenv("STREAMS_DATABASE_URL", make_conninfo(**params))
    [run_request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert statuses(streams)[request][0] == "queued"
    assert execute(run_request, instance).success
    assert statuses(streams)[request][0] == "done"


def test_uuid_request_ids_are_written_back(streams, instance) -> None:
    """Supabase tables often key rows with `gen_random_uuid()`."""
    streams.write("sources/people.csv", CSV)
    streams.model("people", "csv")
    replace_requests_table(
        streams,
        "CREATE TABLE streams.stream_sync_jobs (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " data_model_id text NOT NULL, requested_at timestamptz NOT NULL DEFAULT now(),"
        " status text NOT NULL DEFAULT 'pending', run_id text,"
        " attempts integer NOT NULL DEFAULT 0, error text)",
    )
    [(request_id,)] = streams.query(
        "INSERT INTO streams.stream_sync_jobs (data_model_id) VALUES ('people') RETURNING id"
    )
    [request] = evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
    assert request.tags["sync_assets/stream_sync_job_id"] == str(request_id)
    run = execute(request, instance)
    assert statuses(streams)[request_id] == ("done", run.run_id, 1, None)
    assert not evaluate(stream_sync_jobs_sensor, streams, instance).run_requests
