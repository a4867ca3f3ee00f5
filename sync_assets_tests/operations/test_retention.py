"""Run retention on a Postgres-backed instance: old runs and their events go, the runs that hold
an asset's or a partition's latest materialization stay."""

import dagster as dg

from sync_assets.operations.retention import run_retention_job

colours = dg.StaticPartitionsDefinition(["red", "blue"])


@dg.asset
def standings() -> int:
    return 1


@dg.asset(partitions_def=colours)
def kits(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.op
def noop() -> None:
    pass


@dg.job
def housekeeping_job() -> None:
    noop()


def prune(instance: dg.DagsterInstance, **config) -> dg.ExecuteInProcessResult:
    return run_retention_job.execute_in_process(
        instance=instance, run_config={"ops": {"prune_old_runs": {"config": config}}}
    )


def test_prunes_old_runs_but_keeps_latest_materializations(pg_instance, tmp_path):
    standings_runs = [dg.materialize([standings], instance=pg_instance).run_id for _ in range(3)]
    red_runs = [
        dg.materialize([kits], instance=pg_instance, partition_key="red").run_id for _ in range(2)
    ]
    blue = dg.materialize([kits], instance=pg_instance, partition_key="blue").run_id
    chores = [housekeeping_job.execute_in_process(instance=pg_instance).run_id for _ in range(2)]

    logs = tmp_path / "compute_logs"
    assert all((logs / run_id).is_dir() for run_id in chores)  # captured stdout/stderr

    result = prune(pg_instance, keep_days=0)

    remaining = {run.run_id for run in pg_instance.get_runs()}
    assert remaining == {standings_runs[-1], red_runs[-1], blue, result.run_id}
    assert result.output_for_node("prune_old_runs") == 5
    for gone in [*standings_runs[:-1], *red_runs[:-1], *chores]:
        assert pg_instance.all_logs(gone) == []
        assert not (logs / gone).exists()
    assert (logs / standings_runs[-1]).is_dir()
    latest = pg_instance.get_latest_materialization_event(dg.AssetKey("standings"))
    assert latest is not None and latest.run_id == standings_runs[-1]
    assert pg_instance.get_materialized_partitions(dg.AssetKey("kits")) == {"red", "blue"}


def test_recent_runs_and_dry_runs_delete_nothing(pg_instance):
    for _ in range(2):
        housekeeping_job.execute_in_process(instance=pg_instance)
    before = {run.run_id for run in pg_instance.get_runs()}

    recent = prune(pg_instance, keep_days=30)
    dry = prune(pg_instance, keep_days=0, dry_run=True)

    assert recent.output_for_node("prune_old_runs") == 0
    assert dry.output_for_node("prune_old_runs") == 3  # the two chores and the first prune
    assert {run.run_id for run in pg_instance.get_runs()} == before | {recent.run_id, dry.run_id}
