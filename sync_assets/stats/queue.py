"""The app's job queue (`background_job_status`) drives stats_refresh_job.

- `stats_job_queue_sensor` claims queued rows (highest priority, then oldest) with one atomic
  `UPDATE ... FOR UPDATE SKIP LOCKED`: they become `processing` and carry a claim key in
  `results.claim`. The claim key is the run key of the one run that serves them, so a tick
  whose run was never created (daemon stopped mid-tick) is re-requested under the same key and
  Dagster never starts it twice. While a queue run is in flight no new rows are claimed; rows
  queued meanwhile are served together by the next run.
- What the app's admin page reads is written back to the rows: the run id and start time,
  then `completed` or `failed` with `completed_at`, per-asset results and the error. The queue
  sensor writes back any finished run whose rows still say `processing`; each of its ticks
  watches the queue and its run for a few seconds (`WATCH_SECONDS`), so a run's end is written
  back, and a row queued is claimed, within a quarter second rather than at the daemon's next
  pass. Its tick ends when it requests a run, so `stats_queue_write_back_sensor`, whose ticks
  only watch the runs and write them back, covers the run's end until the next tick starts.
  Run-status sensors write back too (the start, and an end neither has seen yet); a write-back
  missed while the daemon was down is made later.
- Only rows whose status is still `processing` under the same claim are written: a row the app
  re-queued meanwhile (status back to `queued`, retry_count + 1) is left for a new run.
- A queue run whose worker process is gone (killed with `sync-assets dev`, OOM) is failed by the
  sensor (`core.orphans`), so it never holds the queue: `run_retries` runs it again for the same
  rows (their status stays `processing`), and after the last retry the rows are `failed`.
"""

import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import dagster as dg
import psycopg
from dagster import DagsterEventType, DagsterRunStatus
from psycopg import sql
from psycopg.types.json import Jsonb

from sync_assets.core.orphans import fail_orphan, live_runs
from sync_assets.core.redaction import redact, register_secret
from sync_assets.core.settings import optional_setting
from sync_assets.stats.jobs import stats_refresh_job
from sync_assets.stats.resources import StatsDatabase

QUEUE_TABLE = "background_job_status"
CLAIM_TAG = "stats/queue_claim"
TRIGGER_TAG = "stats/trigger"
ROWS_TAG = "stats/queue_rows"
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
DEFAULT_JOB_TYPES = "stats_update"
DEFAULT_MAX_ROWS = 50


def job_types() -> list[str]:
    """Job types this queue serves (`STATS_QUEUE_JOB_TYPES`, comma-separated)."""
    raw = optional_setting("STATS_QUEUE_JOB_TYPES", DEFAULT_JOB_TYPES) or DEFAULT_JOB_TYPES
    return [t.strip() for t in raw.split(",") if t.strip()]


def max_rows_per_run() -> int:
    """Rows one run may serve (`STATS_QUEUE_MAX_ROWS_PER_RUN`, default 50)."""
    raw = optional_setting("STATS_QUEUE_MAX_ROWS_PER_RUN", str(DEFAULT_MAX_ROWS))
    try:
        return max(1, int(raw or DEFAULT_MAX_ROWS))
    except ValueError:
        raise ValueError(f"STATS_QUEUE_MAX_ROWS_PER_RUN must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class Claimed:
    id: str
    priority: int
    retry_count: int
    created_at: dt.datetime


class Queue:
    """SQL on the app's queue table."""

    def __init__(self, conn: psycopg.Connection, app_schema: str) -> None:
        self.conn = conn
        self.table = sql.Identifier(app_schema, QUEUE_TABLE)
        self.app_schema = app_schema

    def exists(self) -> bool:
        row = self.conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (sql.Identifier(self.app_schema, QUEUE_TABLE).as_string(self.conn),),
        ).fetchone()
        return bool(row and row[0])

    def claim(self, claim: str, limit: int) -> list[Claimed]:
        """Atomically turn up to `limit` queued rows into `processing` under `claim`."""
        with self.conn.transaction():
            rows = self.conn.execute(
                sql.SQL(
                    """
                    WITH picked AS (
                        SELECT id FROM {t}
                         WHERE status = 'queued' AND job_type = ANY(%(types)s)
                         ORDER BY priority DESC, created_at, id
                         LIMIT %(limit)s
                           FOR UPDATE SKIP LOCKED
                    )
                    UPDATE {t} b
                       SET status = 'processing', started_at = now(), completed_at = NULL,
                           error_message = NULL,
                           results = jsonb_build_object('claim', %(claim)s::text,
                                                        'claimed_at', now())
                      FROM picked WHERE b.id = picked.id
                    RETURNING b.id, b.priority, b.retry_count, b.created_at
                    """
                ).format(t=self.table),
                {"types": job_types(), "limit": limit, "claim": claim},
            ).fetchall()
        claimed = [Claimed(str(r[0]), r[1], r[2], r[3]) for r in rows]
        return sorted(claimed, key=lambda c: (-c.priority, c.created_at, c.id))

    def has_queued(self) -> bool:
        """Whether any row of the served job types is queued."""
        row = self.conn.execute(
            sql.SQL(
                "SELECT EXISTS (SELECT 1 FROM {} WHERE status = 'queued' AND job_type = ANY(%s))"
            ).format(self.table),
            (job_types(),),
        ).fetchone()
        return bool(row and row[0])

    def open_claims(self) -> dict[str, list[str]]:
        """Claims whose rows still say `processing`: claim -> row ids."""
        rows = self.conn.execute(
            sql.SQL(
                "SELECT results->>'claim', id FROM {} WHERE status = 'processing'"
                " AND results ? 'claim' AND job_type = ANY(%s)"
                " ORDER BY priority DESC, created_at, id"
            ).format(self.table),
            (job_types(),),
        ).fetchall()
        claims: dict[str, list[str]] = {}
        for claim, row_id in rows:
            claims.setdefault(claim, []).append(str(row_id))
        return claims

    def mark_started(self, claim: str, run_id: str, started_at: dt.datetime) -> int:
        with self.conn.transaction():
            return self.conn.execute(
                sql.SQL(
                    "UPDATE {} SET started_at = %s,"
                    " results = coalesce(results, '{{}}') || jsonb_build_object("
                    "'dagster_run_id', %s::text, 'run_status', 'STARTED')"
                    " WHERE status = 'processing' AND results->>'claim' = %s"
                ).format(self.table),
                (started_at, run_id, claim),
            ).rowcount

    def mark_finished(
        self,
        claim: str,
        status: str,
        results: dict[str, Any],
        error: str | None,
        started_at: dt.datetime | None,
        completed_at: dt.datetime,
    ) -> int:
        with self.conn.transaction():
            return self.conn.execute(
                sql.SQL(
                    "UPDATE {} SET status = %s, completed_at = %s, error_message = %s,"
                    " started_at = coalesce(%s, started_at),"
                    " results = coalesce(results, '{{}}') || %s"
                    " WHERE status IN ('processing', 'failed') AND results->>'claim' = %s"
                ).format(self.table),
                (status, completed_at, error, started_at, Jsonb(results), claim),
            ).rowcount


# The sensor daemon looks at its sensors every 5 s and ticks those whose interval has passed
# since their last tick. An interval of exactly 5 s is missed by a hair on every other pass
# (10 s between ticks, measured: a queue row waited 10 s for its run); asking for less makes
# the queue's sensors tick on every pass.
EVERY_DAEMON_PASS = 4
# One tick of the queue sensor keeps watching the queue and its run for this long, looking every
# POLL_SECONDS: a row queued, or a queue run ending, while it watches is served within a poll
# instead of at the daemon's next pass (on average 2.5 s later, each). 9 s ends the tick before
# the second pass after the one that started it when the tick took under a second to start and
# end (measured: 0.5-1 s at load 1), so the next tick starts at that pass; a tick that ends
# later leaves a gap until the pass after. It needs the sensor daemon's threads (dagster.yaml
# `sensors: use_threads`): without them one watching tick would hold up every other sensor.
WATCH_SECONDS = 9.0
POLL_SECONDS = 0.25


def _runs_for_claim(instance: dg.DagsterInstance, claim: str) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={CLAIM_TAG: claim})))


def _run_request(claim: str, rows: list[Claimed] | list[str], priority: int) -> dg.RunRequest:
    ids = [r.id if isinstance(r, Claimed) else r for r in rows]
    shown = ",".join(ids[:10]) + (f",+{len(ids) - 10} more" if len(ids) > 10 else "")
    return dg.RunRequest(
        run_key=claim,
        tags={
            CLAIM_TAG: claim,
            TRIGGER_TAG: "queue",
            ROWS_TAG: shown,
            "dagster/priority": str(priority),
        },
    )


def _serve_queue(
    context: dg.SensorEvaluationContext, queue: Queue
) -> dg.SensorResult | dg.SkipReason:
    """One look at the queue: write back finished runs, recover claims left without a run, and
    claim queued rows for a new run when no queue run is in flight."""
    instance = context.instance
    requests: list[dg.RunRequest] = []
    notes: list[str] = []
    in_flight = False
    for claim, ids in queue.open_claims().items():
        runs = _runs_for_claim(instance, claim)
        if not runs:
            # Claimed by a tick whose run was never created: request it again, same key.
            requests.append(_run_request(claim, ids, 0))
            notes.append(f"re-requested claim {claim} ({len(ids)} rows)")
            in_flight = True
            continue
        run = runs[0]
        if (failed := fail_orphan(instance, run)) is not None:
            notes.append(f"run {run.run_id} for claim {claim} lost its worker: failed it")
            run = failed
        if run.status not in FINISHED or run.is_complete_and_waiting_to_retry:
            in_flight = True  # still going, or run_retries starts it again for these rows
            continue
        write_back(queue.conn, queue.app_schema, instance, run)
        notes.append(f"wrote back run {run.run_id} for claim {claim}")
    if not in_flight and queue.has_queued():
        queue_runs = instance.get_runs(
            filters=dg.RunsFilter(
                job_name=stats_refresh_job.name,
                statuses=IN_FLIGHT,
                tags={TRIGGER_TAG: "queue"},
            )
        )
        in_flight = bool(live_runs(instance, queue_runs))
        if not in_flight:
            claim = f"stats-queue-{uuid.uuid4().hex[:16]}"
            claimed = queue.claim(claim, max_rows_per_run())
            if claimed:
                requests.append(_run_request(claim, claimed, max(c.priority for c in claimed)))
                notes.append(f"claimed {len(claimed)} rows as {claim}, lead {claimed[0].id}")
                context.update_cursor(
                    json.dumps({"last_claim": claim, "rows": [c.id for c in claimed]})
                )
    for note in notes:
        context.log.info(note)
    if not requests:
        return dg.SkipReason("a queue run is in flight" if in_flight else "no queued rows")
    return dg.SensorResult(run_requests=requests)


def _watch(
    stats_db: StatsDatabase,
    watch_seconds: float,
    look: Callable[[Queue], dg.SensorResult | dg.SkipReason],
) -> dg.SensorResult | dg.SkipReason:
    """`look` at the queue every POLL_SECONDS for `watch_seconds`, on one connection; return
    the first SensorResult, else the last look's SkipReason."""
    deadline = time.monotonic() + watch_seconds
    with stats_db.connect(autocommit=True) as conn:
        queue = Queue(conn, stats_db.app_schema_name())
        if not queue.exists():
            return dg.SkipReason(f"no {QUEUE_TABLE} table in schema {stats_db.app_schema_name()!r}")
        while True:
            result = look(queue)
            if isinstance(result, dg.SensorResult) or time.monotonic() >= deadline:
                return result
            time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def job_queue_sensor(
    name: str = "stats_job_queue_sensor", watch_seconds: float = WATCH_SECONDS
) -> dg.SensorDefinition:
    """The queue sensor; each tick watches the queue for `watch_seconds` (0: one look)."""

    @dg.sensor(
        name=name,
        job=stats_refresh_job,
        minimum_interval_seconds=EVERY_DAEMON_PASS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Turns queued rows of the app's background_job_status into stats_refresh_job "
        "runs (highest priority, then oldest, first) and writes their outcome back.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, stats_db: StatsDatabase
    ) -> dg.SensorResult | dg.SkipReason:
        """Claim queued rows and request one run for them; recover claims left without a run;
        write back finished runs. Returns as soon as a run is requested."""
        return _watch(stats_db, watch_seconds, lambda queue: _serve_queue(context, queue))

    return _sensor


def write_back_finished(instance: dg.DagsterInstance, queue: Queue) -> list[str]:
    """Write back every finished queue run whose rows still say `processing`; their run ids."""
    written = []
    for claim in queue.open_claims():
        runs = _runs_for_claim(instance, claim)
        if runs and runs[0].status in FINISHED and not runs[0].is_complete_and_waiting_to_retry:
            write_back(queue.conn, queue.app_schema, instance, runs[0])
            written.append(runs[0].run_id)
    return written


def queue_write_back_sensor(
    name: str = "stats_queue_write_back_sensor", watch_seconds: float = WATCH_SECONDS
) -> dg.SensorDefinition:
    """A sensor whose ticks watch the queue's runs for `watch_seconds` and write back each that
    ends. The queue sensor's tick ends when it requests a run, and the next one starts at the
    daemon's next pass (up to 5 s later), so a run shorter than that would wait for it; this
    tick never ends early."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=EVERY_DAEMON_PASS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Marks the queue rows of a finished stats_refresh_job run in {QUEUE_TABLE} "
        "as soon as the run ends.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, stats_db: StatsDatabase
    ) -> dg.SensorResult | dg.SkipReason:
        """Write back queue runs as they end."""
        written: list[str] = []

        def look(queue: Queue) -> dg.SkipReason:
            for run_id in write_back_finished(context.instance, queue):
                context.log.info(f"wrote back run {run_id}")
                written.append(run_id)
            return dg.SkipReason(f"wrote back {len(written)} runs")

        return _watch(stats_db, watch_seconds, look)

    return _sensor


stats_job_queue_sensor = job_queue_sensor()
stats_queue_write_back_sensor = queue_write_back_sensor()


def asset_results(
    instance: dg.DagsterInstance, run_id: str
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per-asset outcome of a run (from its event log) and the failures' messages."""
    records = instance.get_records_for_run(
        run_id=run_id,
        of_type={DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.STEP_FAILURE},
        limit=1000,
    ).records
    results: dict[str, dict[str, Any]] = {}
    errors: list[str] = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.step_materialization_data.materialization
            meta = {k: v.value for k, v in materialization.metadata.items()}
            results[materialization.asset_key.path[-1]] = {
                "status": "completed",
                **{
                    k: meta[k]
                    for k in ("rows", "rewritten", "revalidation", "seconds")
                    if k in meta and isinstance(meta[k], int | float | str | bool)
                },
            }
        else:
            for name, message in failed_steps(event).items():
                results[name] = {"status": "failed", "error": message}
                errors.append(f"{name}: {message}")
    return results, errors


def run_failure_message(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """Why a run failed when no step did (its worker died, it never started): first line."""
    records = instance.get_records_for_run(
        run_id=run_id, of_type=DagsterEventType.RUN_FAILURE, limit=1, ascending=False
    ).records
    event = records[0].event_log_entry.dagster_event if records else None
    message = (event.message or "").strip() if event else ""
    return redact(message.splitlines()[0])[:500] if message else None


def failed_steps(event: Any) -> dict[str, str]:
    """What a step failure names: each stats table that failed, else the step itself."""
    data = event.step_failure_data
    user = data.user_failure_data
    tables = user.metadata.get("failed_tables") if user else None
    if tables is not None and isinstance(tables.value, dict) and tables.value:
        return {name: redact(str(message))[:500] for name, message in tables.value.items()}
    error = data.error
    message = redact(error.message.strip().splitlines()[0] if error else "failed")[:500]
    return {event.step_key or "run": message}


def write_back(
    conn: psycopg.Connection, app_schema: str, instance: dg.DagsterInstance, run: dg.DagsterRun
) -> int:
    """Record a queue run's state on its rows; returns the rows updated."""
    claim = run.tags.get(CLAIM_TAG)
    if not claim:
        return 0
    register_secret(optional_setting("INTERNAL_API_KEY"))
    latest = _runs_for_claim(instance, claim)
    if latest and latest[0].run_id != run.run_id:
        return 0  # the instance retried this run (its worker died): the newest run decides
    queue = Queue(conn, app_schema)
    record = instance.get_run_record_by_id(run.run_id)
    current = record.dagster_run if record else run
    started = (
        dt.datetime.fromtimestamp(record.start_time, dt.UTC)
        if record and record.start_time
        else None
    )
    if current.is_complete_and_waiting_to_retry:
        return 0  # run_retries starts it again (its worker died): the retry's outcome is theirs
    if current.status not in FINISHED:
        return queue.mark_started(claim, run.run_id, started or dt.datetime.now(dt.UTC))
    per_asset, errors = asset_results(instance, run.run_id)
    completed = (
        dt.datetime.fromtimestamp(record.end_time, dt.UTC)
        if record and record.end_time
        else dt.datetime.now(dt.UTC)
    )
    succeeded = current.status == DagsterRunStatus.SUCCESS
    error = None
    if not succeeded:
        error = (
            "; ".join(errors)
            or run_failure_message(instance, run.run_id)
            or f"run {current.status.value.lower()}"
        )
    results = {
        "dagster_run_id": run.run_id,
        "run_status": current.status.value,
        "assets": per_asset,
        "succeeded": sum(1 for r in per_asset.values() if r["status"] == "completed"),
        "failed": sum(1 for r in per_asset.values() if r["status"] == "failed"),
    }
    return queue.mark_finished(
        claim,
        "completed" if succeeded else "failed",
        results,
        error[:2000] if error else None,
        started,
        completed,
    )


def _status_sensor(status: DagsterRunStatus, name: str, what: str) -> dg.SensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        monitored_jobs=[stats_refresh_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=EVERY_DAEMON_PASS,
        description=f"Marks the queue rows of a {what} stats_refresh_job run in {QUEUE_TABLE}.",
    )
    def _sensor(context: dg.RunStatusSensorContext, stats_db: StatsDatabase):
        run = context.dagster_run
        if CLAIM_TAG not in run.tags:
            return dg.SkipReason("not a queue run")
        with stats_db.connect(autocommit=True) as conn:
            updated = write_back(conn, stats_db.app_schema_name(), context.instance, run)
        context.log.info(f"run {run.run_id}: {updated} queue rows updated")
        return None

    return _sensor


stats_queue_started_sensor = _status_sensor(
    DagsterRunStatus.STARTED, "stats_queue_started_sensor", "started"
)
stats_queue_success_sensor = _status_sensor(
    DagsterRunStatus.SUCCESS, "stats_queue_success_sensor", "successful"
)
stats_queue_failure_sensor = _status_sensor(
    DagsterRunStatus.FAILURE, "stats_queue_failure_sensor", "failed"
)
stats_queue_canceled_sensor = _status_sensor(
    DagsterRunStatus.CANCELED, "stats_queue_canceled_sensor", "canceled"
)

QUEUE_SENSORS = [
    stats_job_queue_sensor,
    stats_queue_write_back_sensor,
    stats_queue_started_sensor,
    stats_queue_success_sensor,
    stats_queue_failure_sensor,
    stats_queue_canceled_sensor,
]
