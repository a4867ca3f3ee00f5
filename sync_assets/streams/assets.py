"""The `stream_parquet` asset: one partition per data model, one Parquet file per partition."""

import datetime as dt
import math
import re
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Self

import dagster as dg
from pydantic import Field

from sync_assets.core.dagster_internals import DATA_VERSION_TAG
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.redaction import redact
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams import models
from sync_assets.streams.models import DataModel, ModelDefinitionError
from sync_assets.streams.storage import (
    Buckets,
    SourceChangedError,
    SourceMissingError,
    SourceUnusableError,
    fsync_file,
    temp_dir,
)
from sync_assets.streams.transform import (
    EngineMemoryError,
    EngineSettings,
    SourceError,
    TooManyRejectedError,
    transform,
)

stream_models = dg.DynamicPartitionsDefinition(name="stream_models")
DOMAIN_TAGS = {"sync_assets/domain": "streams"}
REQUEST_TAG = "sync_assets/stream_sync_job_id"
REQUESTED_AT_TAG = "sync_assets/stream_sync_job_requested_at"
# Faults of the model or its source: a retry cannot help, so the run fails at once.
DEFINITE_FAULTS = (
    EngineMemoryError,
    ModelDefinitionError,
    SourceError,
    SourceMissingError,
    SourceUnusableError,
    TooManyRejectedError,
)


# A storage or database hiccup: the step is tried again, twice, after 1 s and 2 s.
RETRY_POLICY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL)


class ModelUnavailableError(RuntimeError):
    """The data model does not exist or is disabled."""


class StreamSyncConfig(dg.Config):
    force: bool = Field(
        default=False, description="Rewrite the Parquet even when the source is unchanged."
    )
    max_rejected_fraction: float = Field(
        default=0.01,
        description="Share of rows (0 to 1) whose values do not cast above which nothing is"
        " published.",
    )
    memory_limit: str = Field(
        default="400MB", description="DuckDB memory limit; beyond it DuckDB spills to disk."
    )
    threads: int | None = Field(default=None, description="DuckDB threads (default: all).")
    parquet_version: Literal["v1", "v2"] = Field(
        default="v2",
        description="Parquet format of the output: v2 (delta encodings, smaller and faster to"
        " write) or v1 (PLAIN and dictionary pages only, for readers that predate v2).",
    )
    lock_wait_seconds: float = Field(
        default=600, description="How long to wait for another run of the same model."
    )

    def problems(self) -> list[str]:
        """What is wrong with these settings, one line each. Checked in the step, not by
        pydantic: Dagster launches a run whatever pydantic's bounds say, and a step that fails
        to build its config is retried with the same config."""
        found = []
        if not 0 <= self.max_rejected_fraction <= 1:
            found.append(f"max_rejected_fraction {self.max_rejected_fraction} is not in 0..1")
        if self.threads is not None and self.threads < 1:
            found.append(f"threads {self.threads} is below 1")
        if not (math.isfinite(self.lock_wait_seconds) and self.lock_wait_seconds >= 0):
            found.append(f"lock_wait_seconds {self.lock_wait_seconds} is not a duration")
        size = MEMORY_LIMIT.fullmatch(self.memory_limit)
        if size is None or not float(size.group(1)):
            found.append(f"memory_limit {self.memory_limit!r} is not a size such as '400MB'")
        return found


MEMORY_LIMIT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(?:[KMGT]i?B|B|bytes)\s*", re.IGNORECASE)


def ensure_partitions(instance: dg.DagsterInstance, model_ids: list[str]) -> list[str]:
    """Add data model ids that are not partitions yet; return the new ones."""
    known = set(instance.get_dynamic_partitions(stream_models.name))
    new = [model_id for model_id in dict.fromkeys(model_ids) if model_id not in known]
    if new:
        instance.add_dynamic_partitions(stream_models.name, new)
    return new


def previous_metadata(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, model_id: str
) -> dict[str, Any]:
    """The metadata of the partition's latest materialization (empty when there is none)."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[model_id]), limit=1
    )
    if not result.records:
        return {}
    materialization = result.records[0].asset_materialization
    if materialization is None:
        return {}
    return {key: value.value for key, value in materialization.metadata.items()}


def load_model(db: PostgresResource, model_id: str) -> DataModel:
    with db.connect() as conn:
        row = models.load_model_row(conn, model_id)
    if row is None:
        raise ModelUnavailableError(f"data model {model_id!r} does not exist in data_models")
    model = models.parse_model(row)
    if not model.enabled:
        raise ModelUnavailableError(f"data model {model_id!r} is disabled; it is not synced")
    return model


def sync_model(
    model_id: str,
    config: StreamSyncConfig,
    db: PostgresResource,
    storage: ObjectStorageResource,
    read_previous: Callable[[], dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Sync one data model; return the materialization metadata. Raises on any fault.

    The model and the last materialization's metadata are read under the model's lock, so a
    run that waited for another never publishes a mapping older than the one published.
    """
    started = time.monotonic()
    buckets = Buckets.of(storage)
    with db.advisory_lock(f"stream_parquet:{model_id}", wait_seconds=config.lock_wait_seconds):
        model = load_model(db, model_id)
        previous = read_previous()
        fingerprint = model.fingerprint()
        key = buckets.parquet_key(model.id)
        if cleared := buckets.clear_leftovers(model.id):
            log(f"removed {cleared} staging leftover(s) of an earlier run that did not finish")
        # The size, the checksum, the header and DuckDB's scan each open the source: an object
        # replaced meanwhile (new columns, new rows) would give a file no version of it matches.
        try:
            source_size, version = buckets.version(model.source_uri)
        except (SourceMissingError, SourceUnusableError) as exc:
            raise type(exc)(f"data model {model.id!r}: {exc}") from None
        # The checksum decides a skip only when one is possible (same mapping, same size, the
        # file still there); otherwise it is computed alongside the transform, not before it.
        may_skip = (
            not config.force
            and previous.get("mapping_fingerprint") == fingerprint
            and previous.get("source_bytes") == source_size
            and previous.get("parquet_version") == config.parquet_version
            # The published file is still the one the last sync wrote (not removed, replaced
            # or truncated by hand): otherwise the skip would vouch for another file.
            and buckets.size(key) == previous.get("bytes")
        )
        pending: Future[tuple[str, int]] | None = None
        if may_skip:
            checksum, source_bytes = buckets.checksum(model.source_uri)
            if previous.get("source_xxh3_128") == checksum:
                log(
                    f"source {model.source_uri} unchanged (xxh3-128 {checksum[:12]}); not rewritten"
                )
                with db.transaction() as conn:
                    rows = int(previous.get("rows_written") or 0)
                    models.record_sync(conn, model.id, buckets.url(key), rows, _now())
                carried = {
                    k: previous[k]
                    for k in ("rows_read", "rows_written", "rows_rejected", "bytes")
                    if k in previous
                }
                return {
                    **_base(model, buckets, checksum, source_bytes, fingerprint),
                    **carried,
                    "parquet_version": config.parquet_version,
                    "skipped": True,
                    "skip_reason": "source checksum and mapping unchanged since the last sync",
                    "seconds": round(time.monotonic() - started, 3),
                }
        path, filesystem = buckets.duckdb_path(model.source_uri)
        settings = EngineSettings(
            memory_limit=config.memory_limit,
            threads=config.threads,
            temp_dir=temp_dir(),
            parquet_version=config.parquet_version,
        )
        with ThreadPoolExecutor(1, thread_name_prefix="checksum") as pool:
            if not may_skip:
                pending = pool.submit(buckets.checksum, model.source_uri)
            with buckets.staging(model.id) as staging:
                try:
                    result = transform(
                        model,
                        path,
                        buckets.opener(model.source_uri),
                        staging,
                        settings=settings,
                        max_rejected_fraction=config.max_rejected_fraction,
                        filesystem=filesystem,
                    )
                except SourceError:
                    # A source replaced or removed mid-read fails the read (the new columns,
                    # the missing file); that is the change, not a fault of the file.
                    _fail_if_changed(buckets, model, version)
                    raise
                if pending is not None:
                    checksum, source_bytes = pending.result()
                _fail_if_changed(buckets, model, version)
                fsync_file(result.output)
                size = result.output.stat().st_size
                uri = buckets.publish(model.id, result.output)
        with db.transaction() as conn:
            models.record_sync(conn, model.id, uri, result.rows_written, _now())
    log(
        f"{model.id}: {result.rows_read} rows read, {result.rows_written} written, "
        f"{result.rows_rejected} rejected -> {uri}"
    )
    return {
        **_base(model, buckets, checksum, source_bytes, fingerprint),
        "skipped": False,
        "parquet_version": config.parquet_version,
        "rows_read": result.rows_read,
        "rows_written": result.rows_written,
        "rows_rejected": result.rows_rejected,
        "rejected_fraction": round(result.rejected_fraction, 6),
        "rejected_samples": dg.MetadataValue.json(result.rejected_samples),
        "bytes": size,
        "seconds": round(time.monotonic() - started, 3),
    }


def _fail_if_changed(buckets: Buckets, model: DataModel, version: str) -> None:
    if buckets.fingerprint(model.source_uri) != version:
        raise SourceChangedError(
            f"source {model.source_uri!r} of data model {model.id!r} changed while it was read;"
            " nothing was published (the retry reads the new version)"
        )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _base(
    model: DataModel, buckets: Buckets, checksum: str, source_bytes: int, fingerprint: str
) -> dict[str, Any]:
    return {
        "model": model.id,
        "source_uri": buckets.url(model.source_uri),
        "source_format": model.source_format,
        "source_xxh3_128": checksum,
        "source_bytes": source_bytes,
        "mapping_fingerprint": fingerprint,
        "ref_fields": list(model.ref_fields),
        "parquet_uri": buckets.url(buckets.parquet_key(model.id)),
    }


def data_version(metadata: dict[str, Any]) -> dg.DataVersion:
    return dg.DataVersion(f"{metadata['source_xxh3_128'][:16]}-{metadata['mapping_fingerprint']}")


def failure(exc: BaseException) -> dg.Failure:
    """A run failure that names the model and the fault, redacted; definite faults are not
    retried, and the others keep their (redacted) traceback for whoever debugs them."""
    definite = isinstance(exc, DEFINITE_FAULTS + (ModelUnavailableError,))
    metadata: dict[str, Any] = {
        k: dg.MetadataValue.json(v) if isinstance(v, list | dict) else v
        for k, v in (getattr(exc, "metadata", None) or {}).items()
    }
    if not definite:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        metadata["traceback"] = dg.MetadataValue.text(redact(trace)[-8000:])
    return dg.Failure(description=redact(str(exc)), metadata=metadata, allow_retries=not definite)


@dataclass(frozen=True)
class RequestRef:
    """The stream_sync_jobs row a run was started for, as its tags name it."""

    id: str  # as the app's id column spells it: an integer or a UUID
    requested_at: dt.datetime | None  # None on runs tagged before the request's time was

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> Self | None:
        value = tags.get(REQUEST_TAG)
        if not value:
            return None
        try:
            requested_at = dt.datetime.fromisoformat(tags.get(REQUESTED_AT_TAG, ""))
        except ValueError:
            requested_at = None
        return cls(value, requested_at)

    @staticmethod
    def tags(request: models.SyncRequest) -> dict[str, str]:
        at = request.requested_at
        requested_at = at.astimezone(dt.UTC).isoformat() if at is not None else ""
        return {REQUEST_TAG: str(request.id), REQUESTED_AT_TAG: requested_at}

    def mark(self, db: PostgresResource, status: str, **fields: Any) -> None:
        """Write this request's status, unless its id now belongs to a newer request."""
        with db.transaction() as conn:
            models.set_request_status(
                conn, self.id, status, requested_at=self.requested_at, **fields
            )


def _mark(db: PostgresResource, request: RequestRef | None, status: str, **fields: Any) -> None:
    if request is not None:
        request.mark(db, status, **fields)


@dg.asset(
    partitions_def=stream_models,
    group_name="streams",
    kinds={"duckdb", "parquet"},
    retry_policy=RETRY_POLICY,
)
def stream_parquet(
    context: dg.AssetExecutionContext,
    config: StreamSyncConfig,
    streams_db: PostgresResource,
    object_storage: ObjectStorageResource,
) -> dg.MaterializeResult:
    """A data model's source file mapped, typed and hashed into `streams/<model id>.parquet`."""
    model_id = context.partition_key
    models.apply_schema(streams_db)
    request = RequestRef.of(context.run.tags)
    if problems := config.problems():
        error = f"run config ops.stream_parquet.config: {'; '.join(problems)}"
        _mark(streams_db, request, models.FAILED, run_id=context.run.run_id, error=error)
        raise dg.Failure(description=error, allow_retries=False)
    _mark(streams_db, request, models.RUNNING, run_id=context.run.run_id)
    try:
        metadata = sync_model(
            model_id,
            config,
            streams_db,
            object_storage,
            partial(previous_metadata, context.instance, context.asset_key, model_id),
            context.log.info,
        )
    except Exception as exc:
        definite = isinstance(exc, DEFINITE_FAULTS + (ModelUnavailableError,))
        if definite or context.retry_number >= RETRY_POLICY.max_retries:
            _mark(streams_db, request, models.FAILED, run_id=context.run.run_id, error=str(exc))
        elif request is not None:
            # Not final: the app sees the attempt's error while the request stays running.
            with streams_db.transaction() as conn:
                models.note_request_error(
                    conn, request.id, f"attempt {context.retry_number + 1} failed, retrying: {exc}"
                )
        # Retried or not, the failure stored in Dagster's events is redacted (a storage error
        # may quote a URL, and events are no log the redaction filter sees).
        raise failure(exc) from None
    _mark(streams_db, request, models.DONE, run_id=context.run.run_id)
    return dg.MaterializeResult(metadata=metadata, data_version=data_version(metadata))


@dg.op(
    tags=DOMAIN_TAGS,
    description="Sync every enabled data model, one after another (the demo's and CLI's job).",
)
def sync_all_stream_models(
    context: dg.OpExecutionContext,
    streams_db: PostgresResource,
    object_storage: ObjectStorageResource,
) -> None:
    models.apply_schema(streams_db)
    with streams_db.connect() as conn:
        rows = models.enabled_model_rows(conn)
    ids = [str(row["id"]) for row in rows if models.MODEL_ID.match(str(row["id"]))]
    failed = [str(row["id"]) for row in rows if not models.MODEL_ID.match(str(row["id"]))]
    for model_id in failed:
        context.log.error(f"data model {model_id!r} failed: its id is not usable as a file name")
    ensure_partitions(context.instance, ids)
    asset_key = dg.AssetKey("stream_parquet")
    for model_id in ids:
        try:
            metadata = sync_model(
                model_id,
                StreamSyncConfig(),
                streams_db,
                object_storage,
                partial(previous_metadata, context.instance, asset_key, model_id),
                context.log.info,
            )
        except Exception as exc:
            context.log.error(f"data model {model_id!r} failed: {redact(str(exc))}")
            failed.append(model_id)
            continue
        context.log_event(
            dg.AssetMaterialization(
                asset_key=asset_key,
                partition=model_id,
                metadata=metadata,
                # The version the asset itself would record, so staleness does not depend on
                # which job synced the model last.
                tags={DATA_VERSION_TAG: data_version(metadata).value},
            )
        )
    if failed:
        raise dg.Failure(
            description=f"{len(failed)} of {len(rows)} data models failed: {', '.join(failed)}",
            allow_retries=False,
        )
