"""Run retention: delete finished runs (and their event logs) older than the retention window,
as the old workers' manual "clear old job records" did, but keeping every run that holds an
asset's (or a partition's) latest materialization, so the UI's asset state and freshness survive.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

FINISHED_STATUSES = [
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
]

RUNS_PER_PAGE = 200


class RunRetentionConfig(dg.Config):
    keep_days: float = 30.0
    dry_run: bool = False


def runs_holding_latest_materializations(instance: dg.DagsterInstance) -> set[str]:
    """Ids of runs that produced the latest materialization of some asset or partition."""
    keep: set[str] = set()
    keys = list(instance.get_asset_keys())
    for entry in instance.get_latest_materialization_events(keys).values():
        if entry is not None:
            keep.add(entry.run_id)
    for key in keys:
        for partition in instance.get_materialized_partitions(key):
            result = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
            )
            keep.update(record.run_id for record in result.records)
    return keep


def prunable_run_ids(instance: dg.DagsterInstance, older_than: datetime) -> list[str]:
    """Finished runs last updated before `older_than`, minus the ones that must stay."""
    keep = runs_holding_latest_materializations(instance)
    found: list[str] = []
    cursor = None
    while True:
        page = instance.get_runs(
            filters=dg.RunsFilter(statuses=FINISHED_STATUSES, updated_before=older_than),
            cursor=cursor,
            limit=RUNS_PER_PAGE,
        )
        found.extend(run.run_id for run in page if run.run_id not in keep)
        if len(page) < RUNS_PER_PAGE:
            return found
        cursor = page[-1].run_id


def delete_run_and_logs(instance: dg.DagsterInstance, run_id: str) -> None:
    """Delete a run, its event log and its captured stdout/stderr (kept under the run's id)."""
    instance.delete_run(run_id)
    try:
        instance.compute_log_manager.delete_logs(prefix=[run_id])
    except NotImplementedError:
        pass  # a compute log manager that cannot delete keeps its files (its own retention)


@dg.op(description="Deletes finished runs, their event logs and compute logs older than keep_days.")
def prune_old_runs(context: dg.OpExecutionContext, config: RunRetentionConfig) -> dg.Output:
    cutoff = datetime.now(UTC) - timedelta(days=config.keep_days)
    run_ids = [r for r in prunable_run_ids(context.instance, cutoff) if r != context.run_id]
    if not config.dry_run:
        for run_id in run_ids:
            delete_run_and_logs(context.instance, run_id)
    context.log.info(
        f"{'would delete' if config.dry_run else 'deleted'} {len(run_ids)} runs "
        f"finished before {cutoff:%Y-%m-%d %H:%M} UTC"
    )
    return dg.Output(
        len(run_ids),
        metadata={"runs_deleted": 0 if config.dry_run else len(run_ids), "cutoff": str(cutoff)},
    )


@dg.job(
    name="run_retention_job",
    description="Deletes old finished runs, their event logs and compute logs (keeps latest"
    " materializations).",
    tags={"sync_assets/domain": "operations"},
)
def run_retention_job() -> None:
    prune_old_runs()


run_retention_schedule = dg.ScheduleDefinition(
    name="run_retention_schedule",
    job=run_retention_job,
    cron_schedule="30 4 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily at 04:30 UTC: delete runs older than 30 days.",
)
