"""`stream_parquet` on a real S3 API: moto's S3 server on loopback, reached by s3fs and botocore
over HTTP exactly as production reaches AWS, Supabase Storage or MinIO (`AWS_ENDPOINT_URL`)."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import dagster as dg
import moto.settings
import pyarrow.parquet as pq
import pytest
import s3fs
from moto.server import ThreadedMotoServer

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams import transform as transform_module
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
    return streams_on(bucket, client, database_url, tmp_path, monkeypatch)


def streams_on(bucket: str, client: Any, database_url: str, tmp_path, monkeypatch) -> S3Streams:
    """The app's tables, and the sync's buckets under `root/` in `bucket`."""
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


def materialize(
    s3: S3Streams, instance: dg.DagsterInstance, partition: str = "people", **kwargs: Any
):
    ensure_partitions(instance, [partition])
    return dg.materialize(
        [stream_parquet],
        partition_key=partition,
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
    [run] = instance.get_runs(limit=1)
    logs = instance.all_logs(run.run_id)
    assert any(log.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS for log in logs)
    for log in logs:
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


def failures_of(result: dg.ExecutionResult) -> list[str]:
    """Each failed attempt's error, with the errors it was raised from."""
    messages = []
    for event in result.all_events:
        if event.event_type in (
            dg.DagsterEventType.STEP_FAILURE,
            dg.DagsterEventType.STEP_UP_FOR_RETRY,
        ):
            error, text = event.event_specific_data.error, ""
            while error is not None:
                text, error = text + error.message, error.cause
            messages.append(text)
    return messages


def test_a_folder_source_fails_at_once_and_keeps_the_published_object(s3, instance) -> None:
    """s3fs calls a key prefix an empty directory; read as a file it gave an empty Parquet."""
    s3.put("sources/people.csv", CSV)
    s3.model("people", "csv")
    materialize(s3, instance)
    before = s3.head("streams/people.parquet")["ETag"]
    s3.put("sources/people/part-0.csv", CSV)  # the export became a folder of parts
    s3.model("people", "csv", source_uri="sources/people")
    result = materialize(s3, instance, raise_on_error=False)
    [message] = failures_of(result)  # one attempt: a retry cannot help
    assert "data model 'people': source 'sources/people' is a folder, not an object" in message
    assert s3.head("streams/people.parquet")["ETag"] == before
    assert s3.query("SELECT row_count FROM streams.data_models") == [(3,)]


def test_a_source_replaced_while_it_is_read_is_read_again(s3, instance, monkeypatch) -> None:
    """The new export has another column: the first read fails on it, which is the change."""
    s3.put("sources/people.csv", CSV)
    s3.model("people", "csv")
    read = transform_module._copy
    replaced: list[bool] = []

    def replace_then_read(*args: Any, **kwargs: Any):
        if not replaced:
            replaced.append(True)
            widened = "".join(line + ",x\n" for line in CSV.splitlines())
            s3.put("sources/people.csv", widened + "4,Dee,2,true,2024-03-01,2024-03-01,x\n")
        return read(*args, **kwargs)

    monkeypatch.setattr(transform_module, "_copy", replace_then_read)
    result = materialize(s3, instance)
    [message] = failures_of(result)
    assert "changed while it was read; nothing was published" in message
    assert metadata_of(result)["rows_written"] == 4
    assert sorted(r["id"] for r in s3.s3_rows("people")) == [1, 2, 3, 4]


def test_retried_failures_are_stored_redacted(s3, instance, monkeypatch) -> None:
    """Credentials in the URL are no s3fs form: botocore quotes them in a retried error."""
    password = "url-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("OBJECT_STORAGE_URL", f"s3://AKIAUSER:{password}@{s3.bucket}/root")
    s3.model("people", "csv")
    result = materialize(s3, instance, raise_on_error=False)
    assert not result.success and len(failures_of(result)) == 3  # two retries
    stored = [str(log) for log in instance.all_logs(result.run_id)]
    assert stored and not any(password in entry for entry in stored)


@pytest.fixture
def s3_with_access_rules(database_url: str, tmp_path, monkeypatch) -> Iterator[S3Streams]:
    """A moto server that checks IAM: the sync's user may not read `sources/locked.csv`."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ACCESS_KEY_ID": "admin",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    admin = boto3.client("s3")
    admin.create_bucket(Bucket=bucket)
    for name in ("locked", "people"):  # `locked` uploaded from another account, say
        admin.put_object(Bucket=bucket, Key=f"root/sources/{name}.csv", Body=CSV.encode())
    iam = boto3.client("iam")
    iam.create_user(UserName="sync")
    objects = f"arn:aws:s3:::{bucket}"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*", "Resource": [objects, f"{objects}/*"]},
            {
                "Effect": "Deny",
                # AWS authorizes HeadObject (the sensor's look) with s3:GetObject; moto 5.2
                # checks it as s3:HeadObject, so without that name only the read is denied.
                "Action": ["s3:GetObject", "s3:HeadObject"],
                "Resource": f"{objects}/root/sources/locked.csv",
            },
        ],
    }
    iam.put_user_policy(UserName="sync", PolicyName="sync", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="sync")["AccessKey"]
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    s3fs.S3FileSystem.clear_instance_cache()  # one per process and arguments, not per endpoint
    yield streams_on(bucket, admin, database_url, tmp_path, monkeypatch)
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def test_a_denied_source_fails_at_once_and_the_sensor_sees_the_others(
    s3_with_access_rules: S3Streams, instance
) -> None:
    s3 = s3_with_access_rules
    s3.model("locked", "csv", source_uri="sources/locked.csv")
    s3.model("people", "csv")
    context = dg.build_sensor_context(instance=instance, resources=s3.resources())
    assert [r.partition_key for r in stream_source_sensor(context).run_requests] == ["people"]
    result = materialize(s3, instance, "locked", raise_on_error=False)
    [message] = failures_of(result)
    assert "data model 'locked': access to source object 'sources/locked.csv' is denied" in message


def test_a_bucket_that_does_not_exist_is_named_as_the_fault(s3, instance, monkeypatch) -> None:
    monkeypatch.setenv("OBJECT_STORAGE_URL", f"s3://{s3.bucket}-gone/root")
    s3.model("people", "csv")
    result = materialize(s3, instance, raise_on_error=False)
    [message] = failures_of(result)
    assert f"the bucket of 's3://{s3.bucket}-gone/root' (OBJECT_STORAGE_URL) does not exist" in (
        message
    )
