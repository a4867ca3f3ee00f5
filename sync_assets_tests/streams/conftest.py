"""Streams fixtures: a fresh database and a local bucket folder per test, and small helpers to
define data models, write source objects and run the asset, its sensors and its schedule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import psycopg
import pyarrow.parquet as pq
import pytest

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams import defs as streams_defs
from sync_assets.streams.assets import ensure_partitions, stream_parquet
from sync_assets.streams.models import apply_schema
from sync_assets.streams.storage import Buckets

COLUMNS = [
    ("id", "integer"),
    ("name", "text"),
    ("amount", "number"),
    ("active", "boolean"),
    ("day", "date"),
    ("at", "timestamp"),
]


def mappings(fields: Sequence[tuple[str, str]] = COLUMNS, **renamed: str) -> list[dict]:
    return [{"source": s, "target": renamed.get(s, s), "type": t} for s, t in fields]


@dataclass
class Streams:
    url: str
    root: Path
    db: PostgresResource
    storage: ObjectStorageResource

    def resources(self) -> dict[str, Any]:
        return {**streams_defs.resources, "object_storage": self.storage}

    def write(self, key: str, content: bytes | str) -> Path:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        path.write_bytes(data)
        return path

    def model(
        self,
        model_id: str,
        source_format: str,
        fields: list[dict] | None = None,
        *,
        source_uri: str | None = None,
        ref_fields: list[str] | None = None,
        enabled: bool = True,
    ) -> str:
        extension = {"ndjson": "ndjson", "json": "json", "csv": "csv"}.get(source_format, "parquet")
        with psycopg.connect(self.url) as conn:
            conn.execute(
                "INSERT INTO streams.data_models (id, name, source_uri, source_format,"
                " field_mappings, ref_fields, enabled) VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET source_uri = EXCLUDED.source_uri,"
                " source_format = EXCLUDED.source_format,"
                " field_mappings = EXCLUDED.field_mappings, ref_fields = EXCLUDED.ref_fields,"
                " enabled = EXCLUDED.enabled",
                (
                    model_id,
                    model_id.title(),
                    source_uri or f"sources/{model_id}.{extension}",
                    source_format,
                    json.dumps(fields if fields is not None else mappings()),
                    ref_fields,
                    enabled,
                ),
            )
        return model_id

    def request(self, model_id: str) -> int:
        with psycopg.connect(self.url) as conn:
            return conn.execute(
                "INSERT INTO streams.stream_sync_jobs (data_model_id) VALUES (%s) RETURNING id",
                (model_id,),
            ).fetchone()[0]

    def query(self, text: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(text, params).fetchall()

    def parquet(self, model_id: str) -> Path:
        return self.root / "streams" / f"{model_id}.parquet"

    def rows(self, model_id: str) -> list[dict]:
        return pq.read_table(self.parquet(model_id)).to_pylist()

    def materialize(
        self,
        model_id: str,
        instance: dg.DagsterInstance,
        *,
        config: dict | None = None,
        tags: dict[str, str] | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInJobResult:
        ensure_partitions(instance, [model_id])
        return dg.materialize(
            [stream_parquet],
            partition_key=model_id,
            resources=self.resources(),
            instance=instance,
            run_config={"ops": {"stream_parquet": {"config": config or {}}}},
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def buckets(self) -> Buckets:
        return Buckets.of(self.storage)


@pytest.fixture
def streams(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Streams:
    root = tmp_path / "storage"
    root.mkdir()
    monkeypatch.setenv("OBJECT_STORAGE_URL", str(root))
    db = PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL")
    apply_schema(db)
    return Streams(url=database_url, root=root, db=db, storage=ObjectStorageResource())


@pytest.fixture
def instance() -> dg.DagsterInstance:
    """An in-memory Dagster instance (runs, events and dynamic partitions)."""
    return dg.DagsterInstance.ephemeral()


def metadata_of(result: dg.ExecuteInJobResult) -> dict[str, Any]:
    [materialization] = result.asset_materializations_for_node("stream_parquet")
    return {key: value.value for key, value in materialization.metadata.items()}


CSV = (
    "id,name,amount,active,day,at\n"
    "1,Ann,1.50,true,2024-01-02,2024-01-02T03:04:05Z\n"
    '2,"Bo, ""the"" builder",-0.25,false,2024-02-29,2024-02-29 23:59:59.5+01:00\n'
    "3,,,,,\n"
)
# The same three rows as NDJSON and as a JSON array (numbers, booleans and nulls native).
RECORDS = [
    {"id": 1, "name": "Ann", "amount": 1.5, "active": True, "day": "2024-01-02",
     "at": "2024-01-02T03:04:05Z"},
    {"id": 2, "name": 'Bo, "the" builder', "amount": -0.25, "active": False,
     "day": "2024-02-29", "at": "2024-02-29T22:59:59.5Z"},
    {"id": 3, "name": None, "amount": None, "active": None, "day": None, "at": None},
]  # fmt: skip
