"""The app's data models and sync requests: reading them, validating them, writing results back.

`data_models` defines each stream (source object, format, field mappings, ref fields);
`stream_sync_jobs` is the app's request queue. Both belong to the app; this module only reads
them and writes back the columns the app expects (`parquet_uri`, `row_count`, `synced_at`; a
request's `status`, `run_id`, `attempts`, `error`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact

FORMATS = ("csv", "ndjson", "json", "parquet")
TYPES = ("integer", "number", "text", "boolean", "date", "timestamp")
REF_COLUMN = "$_ref"
# Model ids become file names (`streams/<id>.parquet`) and Dagster partition keys.
MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Sources are objects in the storage's buckets: `<bucket>/<key>`, no `..`, no scheme.
GLOB_CHARACTERS = "*?["
SOURCE_URI = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[^/]+)+$")

# Request statuses written back to stream_sync_jobs.
PENDING, QUEUED, RUNNING, DONE, FAILED = "pending", "queued", "running", "done", "failed"


class ModelDefinitionError(ValueError):
    """A data model's definition cannot be synced (bad id, mapping, format or source)."""


@dataclass(frozen=True)
class FieldMapping:
    source: str
    target: str
    type: str


@dataclass(frozen=True)
class DataModel:
    id: str
    name: str
    source_uri: str
    source_format: str
    mappings: tuple[FieldMapping, ...]
    ref_fields: tuple[str, ...]
    enabled: bool

    def fingerprint(self) -> str:
        """A hash of everything that shapes the output; a change forces a rewrite."""
        spec = {
            "format": self.source_format,
            "mappings": [[m.source, m.target, m.type] for m in self.mappings],
            "ref_fields": list(self.ref_fields),
            "algorithm": "md5-v2",
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def apply_schema(db: PostgresResource) -> None:
    """Create the app's tables where they are missing (a fresh database works at once).

    Tables the app made are only read and written: a role that may not create or index them
    (least privilege, as on Supabase) runs the sync as long as the tables are there.
    """
    with db.connect() as conn:
        found = conn.execute(
            "SELECT to_regclass(format('%%I.%%I', %(schema)s::text, 'data_models')) IS NOT NULL"
            " AND to_regclass(format('%%I.%%I', %(schema)s::text, 'stream_sync_jobs')) IS NOT NULL,"
            " to_regclass(format('%%I.%%I', %(schema)s::text, 'stream_sync_jobs_open')) IS NOT NULL",
            {"schema": db.schema_name},
        ).fetchone()
    tables, index = found if found else (False, False)
    if tables and index:
        return
    try:
        db.apply_ddl(resources.files("sync_assets.streams").joinpath("schema.sql").read_text())
    except psycopg.errors.InsufficientPrivilege:
        if not tables:
            raise
        # The index on open requests only speeds up the sensor's query; it is the owner's call.


def _clean_name(value: Any, what: str, model_id: str) -> str:
    if not isinstance(value, str) or not value:
        raise ModelDefinitionError(f"data model {model_id!r}: {what} must be a non-empty string")
    if any(ord(ch) < 32 for ch in value) or len(value) > 255:
        raise ModelDefinitionError(
            f"data model {model_id!r}: {what} {value!r} has control characters or is too long"
        )
    return value


def parse_model(row: dict[str, Any]) -> DataModel:
    """Validate one data_models row; raise ModelDefinitionError naming the model and the fault."""
    model_id = str(row["id"])
    if not MODEL_ID.match(model_id):
        raise ModelDefinitionError(
            f"data model id {model_id!r} is not usable as a file name "
            "(letters, digits, '.', '_', '-'; up to 128 characters)"
        )
    fmt = row.get("source_format")
    if fmt not in FORMATS:
        raise ModelDefinitionError(
            f"data model {model_id!r}: source_format {fmt!r} is not one of {', '.join(FORMATS)}"
        )
    source_uri = str(row.get("source_uri") or "")
    if not SOURCE_URI.match(source_uri) or any(p in (".", "..") for p in source_uri.split("/")):
        raise ModelDefinitionError(
            f"data model {model_id!r}: source_uri {source_uri!r} must be '<bucket>/<key>' "
            "inside object storage"
        )
    if wildcards := sorted(set(source_uri) & set(GLOB_CHARACTERS)):
        # DuckDB's readers take them as a pattern: `star*.csv` would read `star-old.csv` too.
        raise ModelDefinitionError(
            f"data model {model_id!r}: source_uri {source_uri!r} holds {' '.join(wildcards)},"
            " which DuckDB reads as a file pattern; rename the object without them"
        )
    raw = row.get("field_mappings")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise ModelDefinitionError(
                f"data model {model_id!r}: field_mappings is not JSON"
            ) from None
    if not isinstance(raw, list) or not raw:
        raise ModelDefinitionError(f"data model {model_id!r}: field_mappings is empty")
    mappings: list[FieldMapping] = []
    targets: set[str] = set()
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ModelDefinitionError(
                f"data model {model_id!r}: field_mappings[{position}] is not an object"
            )
        source = _clean_name(item.get("source"), f"field_mappings[{position}].source", model_id)
        target = _clean_name(
            item.get("target") or source, f"field_mappings[{position}].target", model_id
        )
        kind = item.get("type", "text")
        if kind not in TYPES:
            raise ModelDefinitionError(
                f"data model {model_id!r}: field {target!r} has type {kind!r}, "
                f"not one of {', '.join(TYPES)}"
            )
        # DuckDB and most Parquet readers compare column names case-insensitively.
        if target.lower() in targets or target == REF_COLUMN:
            raise ModelDefinitionError(
                f"data model {model_id!r}: target field {target!r} is used twice or reserved"
            )
        targets.add(target.lower())
        mappings.append(FieldMapping(source=source, target=target, type=kind))
    by_target = {m.target: m for m in mappings}
    refs = tuple(row.get("ref_fields") or ()) or tuple(m.target for m in mappings)
    for ref in refs:
        if ref not in by_target:
            raise ModelDefinitionError(
                f"data model {model_id!r}: ref field {ref!r} is not a mapped target field"
            )
    if len(set(refs)) != len(refs):
        raise ModelDefinitionError(f"data model {model_id!r}: ref_fields repeats a field")
    return DataModel(
        id=model_id,
        name=str(row.get("name") or model_id),
        source_uri=source_uri,
        source_format=fmt,
        mappings=tuple(mappings),
        ref_fields=refs,
        enabled=bool(row.get("enabled", True)),
    )


_SELECT_MODELS = (
    "SELECT id, name, source_uri, source_format, field_mappings, ref_fields, enabled"
    " FROM data_models"
)


def _as_dict(cursor: psycopg.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {column.name: value for column, value in zip(cursor.description or (), row, strict=True)}


def load_model_row(conn: psycopg.Connection, model_id: str) -> dict[str, Any] | None:
    cursor = conn.execute(_SELECT_MODELS + " WHERE id = %s", (model_id,))
    row = cursor.fetchone()
    return _as_dict(cursor, row) if row else None


def enabled_model_rows(conn: psycopg.Connection) -> list[dict[str, Any]]:
    cursor = conn.execute(_SELECT_MODELS + " WHERE enabled ORDER BY id")
    return [_as_dict(cursor, row) for row in cursor.fetchall()]


def record_sync(
    conn: psycopg.Connection, model_id: str, parquet_uri: str, row_count: int, at: dt.datetime
) -> None:
    conn.execute(
        "UPDATE data_models SET parquet_uri = %s, row_count = %s, synced_at = %s WHERE id = %s",
        (parquet_uri, row_count, at, model_id),
    )


@dataclass(frozen=True)
class SyncRequest:
    id: str  # the app's id (integer or UUID) as text: psycopg sends text untyped, so the
    # database compares it with the column as the column's type
    data_model_id: str
    status: str
    # With the id, what tells this request from an earlier one that had the same id (the app
    # truncated the table with RESTART IDENTITY, or restored a backup).
    requested_at: dt.datetime | None  # NULL where the app's column allows it


def open_requests(conn: psycopg.Connection, limit: int) -> list[SyncRequest]:
    """Requests not yet picked up by a run (pending, or queued by an earlier tick)."""
    rows = conn.execute(
        # As timestamptz: a `timestamp` column is read in the database's zone, the zone its
        # comparisons in `set_request_status` use too.
        "SELECT id, data_model_id, status, requested_at::timestamptz FROM stream_sync_jobs"
        " WHERE status IN ('pending', 'queued') ORDER BY id LIMIT %s",
        (limit,),
    ).fetchall()
    return [SyncRequest(str(row[0]), *row[1:]) for row in rows]


def note_request_error(conn: psycopg.Connection, request_id: str, error: str) -> None:
    """Record a running request's latest error without ending it (a retry follows)."""
    conn.execute(
        "UPDATE stream_sync_jobs SET error = %s WHERE id = %s AND status = 'running'",
        (_stored_error(conn, error), request_id),
    )


def _stored_error(conn: psycopg.Connection, error: str) -> str:
    """An error as the app may see it: secrets redacted, at most 2,000 characters, or what the
    app's `error` column holds (`varchar(255)` would reject a longer one, status and all)."""
    row = conn.execute(
        "SELECT character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'stream_sync_jobs'"
        " AND column_name = 'error'"
    ).fetchone()
    limit = min(2000, row[0]) if row and row[0] else 2000
    return redact(error)[:limit]


def set_request_status(
    conn: psycopg.Connection,
    request_id: str,
    status: str,
    *,
    run_id: str | None = None,
    error: str | None = None,
    only_from: Sequence[str] | None = None,
    requested_at: dt.datetime | None = None,
) -> bool:
    """Write a request's status back; `running` counts an attempt. Returns whether it changed.

    With `requested_at`, only the request of that id made at that moment is written.
    """
    clean_error = _stored_error(conn, error) if error else None
    # Each parameter has one use, so its type comes from its column whatever the app chose
    # (`varchar` status, `smallint` attempts, a nullable count).
    query = (
        "UPDATE stream_sync_jobs SET status = %(status)s,"
        " run_id = coalesce(%(run_id)s, run_id),"
        " attempts = coalesce(attempts, 0) + %(attempt)s,"
        " error = %(error)s"
        " WHERE id = %(id)s"
    )
    params: dict[str, Any] = {
        "status": status,
        "run_id": run_id,
        "attempt": 1 if status == RUNNING else 0,
        "error": clean_error,
        "id": request_id,
    }
    if only_from:
        query += " AND status = ANY(%(from)s)"
        params["from"] = list(only_from)
    if requested_at is not None:
        query += " AND requested_at = %(requested_at)s"
        params["requested_at"] = requested_at
    return conn.execute(query, params).rowcount > 0  # type: ignore[arg-type]
