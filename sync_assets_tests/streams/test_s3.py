"""`stream_parquet` on a real S3 API: moto's S3 server on loopback, reached by s3fs and botocore
over HTTP exactly as production reaches AWS, Supabase Storage or MinIO (`AWS_ENDPOINT_URL`)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import dagster as dg
import pyarrow.parquet as pq
import pytest
from moto.server import ThreadedMotoServer

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams.assets import ensure_partitions, stream_parquet
from sync_assets.streams.jobs import stream_source_sensor
from sync_assets.streams.models import apply_schema
from sync_assets.streams.storage import Buckets
from sync_assets_tests.streams.conftest import CSV, Streams, metadata_of

SECRET = "s3-secret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class S3Streams(Streams):
    bucket: str = ""
    client: Any = None

    def put(self, key: str, content: str | bytes) -> None:
        """Write an object the way the app does: another client, not the sync's filesystem."""
        data = content.encode() if isinstance(content, str) else content
        self.client.put_object(Bucket=self.bucket, Key=f"root/{key}", Body=data)

    def keys(self, prefix: str) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=f"root/{prefix}")
        return sorted(o["Key"].removeprefix("root/") for o in listed.get("Contents", []))

    def head(self, key: str) -> dict[str, Any]:
        return self.client.head_object(Bucket=self.bucket, Key=f"root/{key}")

    def s3_rows(self, model_id: str) -> list[dict]:
        body = self.client.get_object(Bucket=self.bucket, Key=f"root/streams/{model_id}.parquet")
        return pq.read_table(io.BytesIO(body["Body"].read())).to_pylist()


@pytest.fixture
def s3(database_url: str, s3_endpoint: str, tmp_path, monkeypatch) -> S3Streams:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "sync-assets-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3")
    client.create_bucket(Bucket=bucket)
    monkeypatch.setenv("OBJECT_STORAGE_URL", f"s3://{bucket}/root")
    db = PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL")
    apply_schema(db)
    return S3Streams(
        url=database_url,
        root=tmp_path,
        db=db,
        storage=ObjectStorageResource(),
        bucket=bucket,
        client=client,
    )


def materialize(s3: S3Streams, instance: dg.DagsterInstance, **kwargs: Any):
    ensure_partitions(instance, ["people"])
    return dg.materialize(
        [stream_parquet],
        partition_key="people",
        resources=s3.resources(),
        instance=instance,
        run_config={"ops": {"stream_parquet": {"config": {}}}},
        **kwargs,
    )


def test_a_sync_on_s3_publishes_whole_and_leaves_no_staging(s3: S3Streams, instance) -> None:
    s3.put("sources/people.csv", CSV)
    s3.model("people", "csv")
    meta = metadata_of(materialize(s3, instance))
    assert (meta["rows_read"], meta["rows_written"], meta["skipped"]) == (3, 3, False)
    assert meta["parquet_uri"] == f"s3://{s3.bucket}/root/streams/people.parquet"
    assert sorted(r["id"] for r in s3.s3_rows("people")) == [1, 2, 3]
    assert s3.keys("streams/") == ["streams/people.parquet"]  # the staging object is gone
    assert meta["bytes"] == s3.head("streams/people.parquet")["ContentLength"]
    [(uri, count)] = s3.query("SELECT parquet_uri, row_count FROM streams.data_models")
    assert (uri, count) == (meta["parquet_uri"], 3)
    # The S3 secret key is in no log line or event Dagster stored.
    records = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.STEP_SUCCESS))
    assert records
    for log in instance.all_logs(records[0].event_log_entry.run_id):
        assert SECRET not in str(log)
    # A run that died elsewhere left a staging object after this process listed the folder:
    # the next run of the model removes it (and only it).
    s3.put("streams/.staging/keep.me", b"not a run's")
    Buckets.of(s3.storage).fs.ls(f"{s3.bucket}/root/streams/.staging")
    s3.put(f"streams/.staging/people.{uuid.uuid4().hex}.parquet", b"partial")
    assert metadata_of(materialize(s3, instance))["skipped"] is True
    assert s3.keys("streams/") == ["streams/.staging/keep.me", "streams/people.parquet"]


def test_a_source_changed_by_another_client_is_seen_and_resynced(s3: S3Streams, instance) -> None:
    """The sync's filesystem lives as long as the process; what it listed must not go stale."""
    s3.put("sources/people.csv", CSV)
    s3.model("people", "csv")
    context = dg.build_sensor_context(instance=instance, resources=s3.resources())
    first = stream_source_sensor(context)
    assert [r.partition_key for r in first.run_requests] == ["people"]
    materialize(s3, instance)
    again = metadata_of(materialize(s3, instance))
    assert again["skipped"] is True
    # The run listed `sources/` (DuckDB globs the path); the app now replaces the object.
    Buckets.of(s3.storage).fs.ls(f"{s3.bucket}/root/sources")
    s3.put("sources/people.csv", CSV + "4,Dee,2,true,2024-03-01,2024-03-01\n")
    context = dg.build_sensor_context(
        instance=instance, cursor=first.cursor, resources=s3.resources()
    )
    [request] = stream_source_sensor(context).run_requests
    assert request.partition_key == "people"
    changed = metadata_of(materialize(s3, instance))
    assert (changed["skipped"], changed["rows_written"]) == (False, 4)
    assert sorted(r["id"] for r in s3.s3_rows("people")) == [1, 2, 3, 4]


def test_a_failed_run_on_s3_leaves_the_published_object(s3: S3Streams, instance) -> None:
    s3.put("sources/people.csv", CSV)
    s3.model("people", "csv")
    materialize(s3, instance)
    before = s3.head("streams/people.parquet")
    s3.put("sources/people.csv", "id,name,amount,active,day,at\n" + "x,a,b,c,d,e\n" * 5)
    result = materialize(s3, instance, raise_on_error=False)
    assert not result.success
    after = s3.head("streams/people.parquet")
    assert (after["ETag"], after["ContentLength"]) == (before["ETag"], before["ContentLength"])
    assert sorted(r["id"] for r in s3.s3_rows("people")) == [1, 2, 3]
    assert s3.keys("streams/") == ["streams/people.parquet"]
