"""What starts stream syncs: the app's request table, new source files, and a periodic re-sync."""

import json
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import psycopg

from sync_assets.core.orphans import fail_orphans
from sync_assets.core.postgres import PostgresResource, ensure_schema
from sync_assets.core.redaction import redact
from sync_assets.core.storage import ObjectStorageResource
from sync_assets.streams import models
from sync_assets.streams.assets import (
    DOMAIN_TAGS,
    REQUEST_TAG,
    REQUESTED_AT_TAG,
    RequestRef,
    ensure_partitions,
    stream_parquet,
    sync_all_stream_models,
)
from sync_assets.streams.models import ModelDefinitionError
from sync_assets.streams.storage import Buckets, SourceMissingError, SourceUnusableError

REQUESTS_PER_TICK = 50
# Sources looked at in parallel: one HEAD each, ~50 ms on a remote store, so 1,000 models fit
# in a few seconds of the sensor's 60 s.
SOURCE_LOOKUPS = 16
MAX_RUNTIME_SECONDS = 7200

stream_sync_job = dg.define_asset_job(
    "stream_sync_job",
    selection=dg.AssetSelection.assets(stream_parquet),
    description="Sync one data model (a partition) into streams/<model id>.parquet.",
    # Backstop for a hung run (a dead worker is failed sooner: core.orphans); the model lock
    # alone may wait 10 minutes.
    tags={**DOMAIN_TAGS, "dagster/max_runtime": str(MAX_RUNTIME_SECONDS)},
)


@dg.job(
    tags={**DOMAIN_TAGS, "dagster/max_runtime": str(6 * MAX_RUNTIME_SECONDS)},
    description="Sync every enabled data model in one run.",
)
def stream_sync_all_job() -> None:
    sync_all_stream_models()


def _usable(row: dict) -> str | None:
    """Why a model row cannot be synced (None when it can)."""
    try:
        model = models.parse_model(row)
    except ModelDefinitionError as exc:
        return str(exc)
    if not model.enabled:
        return f"data model {model.id!r} is disabled; it is not synced"
    return None


def _existing_run(
    instance: dg.DagsterInstance, request: models.SyncRequest
) -> dg.DagsterRun | None:
    """The run started for this request: its id and the moment it was made, as tagged."""
    records = instance.get_run_records(
        filters=dg.RunsFilter(tags={REQUEST_TAG: str(request.id)}), limit=20
    )
    for record in records:
        ref = RequestRef.of(record.dagster_run.tags)
        # A run tagged with the id alone predates the time tag: it counts as this request's.
        if ref is not None and ref.requested_at in (None, request.requested_at):
            return record.dagster_run
    return None


@dg.sensor(
    job=stream_sync_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One run per row the app adds to stream_sync_jobs; the status is written back.",
)
def stream_sync_jobs_sensor(
    context: dg.SensorEvaluationContext, streams_db: PostgresResource
) -> dg.SensorResult:
    """Turn each open request into exactly one run of its model's partition.

    A request is one run: the run key is the request id, and a request that already has a
    run (found by its tag) is never requested again, so restarts and lost cursors are harmless.
    A stream run whose worker is gone is failed first (`core.orphans`): it would hold one of the
    domain's run slots and leave its request `running` for good.
    """
    for orphan in fail_orphans(context.instance, DOMAIN_TAGS):
        context.log.warning(f"run {orphan.run_id} lost its worker: marked failed")
    ensure_schema(streams_db, models.apply_schema)
    run_requests: list[dg.RunRequest] = []
    with streams_db.transaction() as conn:
        requests = models.open_requests(conn, REQUESTS_PER_TICK)
        rows = {}
        for model_id in {r.data_model_id for r in requests}:
            rows[model_id] = models.load_model_row(conn, model_id)
        for request in requests:
            row = rows.get(request.data_model_id)
            problem = (
                f"data model {request.data_model_id!r} does not exist in data_models"
                if row is None
                else _usable(row)
            )
            if problem:
                models.set_request_status(conn, request.id, models.FAILED, error=problem)
                context.log.warning(f"stream_sync_jobs {request.id}: {problem}")
                continue
            if request.status == models.PENDING:
                models.set_request_status(
                    conn, request.id, models.QUEUED, only_from=[models.PENDING]
                )
            run = _existing_run(context.instance, request)
            if run is not None:
                _close_request(conn, request, run)
                continue
            tags = RequestRef.tags(request)
            run_requests.append(
                dg.RunRequest(
                    run_key=f"stream_sync_jobs:{request.id}:{tags[REQUESTED_AT_TAG]}",
                    partition_key=request.data_model_id,
                    tags=tags,
                )
            )
        ensure_partitions(context.instance, [r.partition_key for r in run_requests])
    if not run_requests:
        return dg.SensorResult(skip_reason="no open requests in stream_sync_jobs")
    return dg.SensorResult(run_requests=run_requests)


@dg.sensor(
    job=stream_sync_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A run for each enabled model whose source object is new or has changed.",
)
def stream_source_sensor(
    context: dg.SensorEvaluationContext,
    streams_db: PostgresResource,
    object_storage: ObjectStorageResource,
) -> dg.SensorResult:
    """Compare each enabled model's source object (size and mtime/ETag) with the last tick.

    The cursor keeps, per model, the last marker and how many changes were seen; the count is
    in the run key, so a source that goes back to an earlier version (same size and ETag or
    mtime) still starts a run (Dagster never reruns a key it has seen).
    """
    ensure_schema(streams_db, models.apply_schema)
    with streams_db.connect() as conn:
        rows = models.enabled_model_rows(conn)
    buckets = Buckets.of(object_storage)
    seen = _source_cursor(context.cursor)
    current = dict(seen)  # models without a usable source keep their entry
    run_requests = []
    usable = []
    for row in rows:
        if problem := _usable(row):
            context.log.warning(problem)
        else:
            usable.append(row)
    with ThreadPoolExecutor(SOURCE_LOOKUPS, thread_name_prefix="source-lookup") as pool:
        markers = list(pool.map(lambda row: _source_marker(buckets, row), usable))
    for row, (marker, problem) in zip(usable, markers, strict=True):
        if problem:
            context.log.warning(problem)
        if marker is None:
            continue
        model_id = str(row["id"])
        last_marker, changes = seen.get(model_id, (None, 0))
        if last_marker != marker:
            changes += 1
            run_requests.append(
                dg.RunRequest(
                    run_key=f"stream_source:{model_id}:{changes}:{marker}",
                    partition_key=model_id,
                    tags={"sync_assets/trigger": "source_changed"},
                )
            )
        current[model_id] = (marker, changes)
    ensure_partitions(context.instance, [r.partition_key for r in run_requests])
    return dg.SensorResult(
        run_requests=run_requests,
        cursor=json.dumps(current, sort_keys=True),
        skip_reason=None if run_requests else "no new or changed source objects",
    )


def _close_request(
    conn: psycopg.Connection, request: models.SyncRequest, run: dg.DagsterRun
) -> None:
    """An open request whose run has ended takes that run's outcome: it must neither stay open
    (the 50 oldest open requests are all a tick reads) nor be run again."""
    if run.is_complete_and_waiting_to_retry:
        return  # run_retries starts it again: that attempt's outcome is the request's
    if run.status == dg.DagsterRunStatus.SUCCESS:
        models.set_request_status(conn, request.id, models.DONE, run_id=run.run_id)
    elif run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE):
        models.set_request_status(
            conn,
            request.id,
            models.FAILED,
            run_id=run.run_id,
            error=f"run {run.run_id} ended {run.status.value.lower()}",
        )


def _source_marker(buckets: Buckets, row: dict) -> tuple[str | None, str | None]:
    """The source's version marker, or None and (for a fault, not an absence) why: one model's
    denied or broken source must not stop the others' changes from being seen."""
    try:
        return buckets.version(str(row["source_uri"]))[1], None
    except SourceMissingError:
        return None, None
    except (SourceUnusableError, OSError) as exc:
        return None, f"data model {row['id']!r}: {redact(str(exc))}; not looked at this tick"


def _source_cursor(cursor: str | None) -> dict[str, tuple[str, int]]:
    """model id -> (marker, changes seen); a cursor of the older form (marker only) counts 0."""
    entries = json.loads(cursor) if cursor else {}
    return {
        model_id: (entry, 0) if isinstance(entry, str) else (str(entry[0]), int(entry[1]))
        for model_id, entry in entries.items()
    }


@dg.schedule(
    job=stream_sync_job,
    cron_schedule="15 * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly at :15 UTC: re-sync every enabled model (unchanged sources are skipped).",
)
def stream_sync_schedule(
    context: dg.ScheduleEvaluationContext, streams_db: PostgresResource
) -> list[dg.RunRequest] | dg.SkipReason:
    ensure_schema(streams_db, models.apply_schema)
    with streams_db.connect() as conn:
        rows = models.enabled_model_rows(conn)
    ids = []
    for row in rows:
        if problem := _usable(row):
            context.log.warning(problem)
        else:
            ids.append(str(row["id"]))
    if not ids:
        return dg.SkipReason("no enabled data models")
    ensure_partitions(context.instance, ids)
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    return [
        dg.RunRequest(
            run_key=f"stream_sync_schedule:{tick}:{model_id}",
            partition_key=model_id,
            tags={"sync_assets/trigger": "schedule"},
        )
        for model_id in ids
    ]


@dg.run_failure_sensor(
    monitored_jobs=[stream_sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the request of a failed stream run as failed, with the error.",
)
def stream_sync_failure_sensor(
    context: dg.RunFailureSensorContext, streams_db: PostgresResource
) -> None:
    """Runs that die before the asset can write back (crash, resource error) still fail."""
    if context.dagster_run.is_complete_and_waiting_to_retry:
        # run_retries (dagster.yaml) starts it again with the same tags: that attempt's outcome
        # is the request's, and an app must not act on a `failed` that turns into `done`.
        return
    message = context.failure_event.message or "the run failed"
    _fail_request(streams_db, context.dagster_run, message)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.CANCELED,
    monitored_jobs=[stream_sync_job],
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks the request of a canceled stream run as failed.",
)
def stream_sync_canceled_sensor(
    context: dg.RunStatusSensorContext, streams_db: PostgresResource
) -> None:
    """A run canceled after its asset marked the request `running` would otherwise stay so."""
    run = context.dagster_run
    _fail_request(streams_db, run, f"run {run.run_id} was canceled")


def _fail_request(streams_db: PostgresResource, run: dg.DagsterRun, message: str) -> None:
    """Mark the request a run was started for (if any, and not finished) as failed."""
    request = RequestRef.of(run.tags)
    if request is not None:
        request.mark(
            streams_db,
            models.FAILED,
            run_id=run.run_id,
            error=redact(message),
            only_from=[models.PENDING, models.QUEUED, models.RUNNING],
        )
