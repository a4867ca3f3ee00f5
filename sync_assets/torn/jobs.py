"""`user_sync_job` and its hourly schedule, which never starts a sync while one is in flight."""

import dagster as dg

from sync_assets.core.orphans import live_runs
from sync_assets.core.settings import optional_setting
from sync_assets.torn.assets import user_data

JOB_NAME = "user_sync_job"
DEFAULT_MAX_RUNTIME_SECONDS = 600
MAX_RUNTIME_SETTING = "USER_SYNC_MAX_RUNTIME_SECONDS"
# Runs that write user_data: ours, and the whole-graph job of the code location.
WRITERS = (JOB_NAME, "all_syncs_job")
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def max_runtime_seconds() -> int:
    """`USER_SYNC_MAX_RUNTIME_SECONDS` (default 600): a sync running longer is ended."""
    text = optional_setting(MAX_RUNTIME_SETTING, str(DEFAULT_MAX_RUNTIME_SECONDS)) or ""
    try:
        seconds = int(text)
    except ValueError:
        raise ValueError(f"{MAX_RUNTIME_SETTING} must be whole seconds, got {text!r}") from None
    if seconds < 1:
        raise ValueError(f"{MAX_RUNTIME_SETTING} must be at least 1 second, got {seconds}")
    return seconds


def _max_runtime_or_default() -> int:
    """The setting, or the default while it is invalid (each schedule tick then says why)."""
    try:
        return max_runtime_seconds()
    except ValueError:
        return DEFAULT_MAX_RUNTIME_SECONDS


user_sync_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.assets(user_data),
    description="Fetch every user's Torn profile with the user's own key into torn.user_data.",
    tags={
        "sync_assets/domain": "torn",
        # Run monitoring ends a hung sync (it replaces the old worker's force-unlock). Read when
        # the code location loads, so a run launched from the UI is bounded as a scheduled one.
        "dagster/max_runtime": str(_max_runtime_or_default()),
    },
)


def syncs_in_flight(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Queued or running runs that write user_data; a run whose worker is gone is failed on the
    way (`core.orphans`) and does not count, so a killed sync never skips the next hour."""
    runs: list[dg.DagsterRun] = []
    for job_name in WRITERS:
        runs.extend(instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=IN_FLIGHT)))
    return live_runs(instance, runs)


@dg.schedule(
    name="user_sync_schedule",
    job=user_sync_job,
    cron_schedule="0 * * * *",
    execution_timezone="UTC",
    description="Hourly at minute 0; skipped while a user sync is queued or running.",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def user_sync_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    busy = syncs_in_flight(context.instance)
    if busy:
        run = busy[0]
        return dg.SkipReason(
            f"{run.job_name} run {run.run_id} is still {run.status.value}; "
            "skipping this tick so syncs never overlap"
        )
    tick = context.scheduled_execution_time
    return dg.RunRequest(
        run_key=tick.isoformat() if tick else None,
        tags={"dagster/max_runtime": str(max_runtime_seconds())},
    )
