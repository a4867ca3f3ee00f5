"""stats_refresh_job: the eleven tables and the checks on the club's tables; its Celery variant."""

import dagster as dg

from sync_assets.core.celery_steps import celery_step_executor
from sync_assets.stats.assets import RETRY_POLICY, STATS_ASSETS, refresh_results
from sync_assets.stats.club_checks import CLUB_KEYS
from sync_assets.stats.computations import TABLES
from sync_assets.stats.refresh import work_order
from sync_assets.stats.resources import ClubAppResource, StatsDatabase

stats_refresh_job = dg.define_asset_job(
    "stats_refresh_job",
    selection=dg.AssetSelection.assets(*STATS_ASSETS)
    | dg.AssetSelection.checks_for_assets(*CLUB_KEYS),
    description="Recompute all eleven club stats tables (and check the club's tables).",
    # A 200x club refreshes in about 10 s: a run still going after 30 minutes is hung, and run
    # monitoring ends it so the queue moves on (a dead worker is failed sooner: core.orphans).
    tags={"sync_assets/domain": "stats", "dagster/max_runtime": "1800"},
)


def _table_op(tables: tuple[str, ...]) -> dg.OpDefinition:
    """An op refreshing `tables` (from its own snapshot of the club), reporting each as a
    materialization of its asset."""

    @dg.op(
        name=f"refresh_{tables[0]}",
        out={},
        retry_policy=RETRY_POLICY,
        description=f"Recompute stats.{', stats.'.join(tables)}.",
    )
    def refresh(
        context: dg.OpExecutionContext, stats_db: StatsDatabase, stats_app: ClubAppResource
    ):  # noqa: ANN202
        for result in refresh_results(context, stats_db, stats_app, set(tables)):
            yield dg.AssetMaterialization(asset_key=result.asset_key, metadata=result.metadata)

    return refresh


# The eleven tables spread over Celery workers, one step per table (the Elo pair together).
# A variant beside stats_refresh_job rather than an executor option of it: the multi-asset is
# one step whatever the executor (one snapshot of the club for all eleven tables, computed side
# by side in one process), so distribution needs steps of their own. Each step copies the club
# itself, so the tables of one run may come from snapshots seconds apart. Opt-in: nothing
# starts it; launch it where workers serve the `steps` queue (README "Running at scale").
@dg.job(
    executor_def=celery_step_executor,
    tags={"sync_assets/domain": "stats", "dagster/max_runtime": "1800"},
    description="The eleven stats tables, one Celery task per table (celery_steps executor).",
)
def stats_refresh_celery_job() -> None:
    for tables in work_order([spec.name for spec in TABLES]):
        _table_op(tables)()
