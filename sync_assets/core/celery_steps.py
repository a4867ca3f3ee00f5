"""`celery_steps`: an executor that hands each step of a run to the Celery workers.

dagster-celery's `CeleryExecutor` on the project's broker (SYNC_ASSETS_BROKER_URL, read when a
run starts, so the URL and any password in it never enter run config), publishing to the
`steps` queue on the exchange the workers of `core.celery_app` bind (`core.celery_runs`).
The process orchestrating the run (the test, `dagster job execute`, a run worker) only
submits steps and waits for their results in Redis; workers started with `-Q steps` execute them.

It is opt-in per job (`stats_refresh_celery_job`), not a choice in the default executor: every
other job keeps `in_process_by_default`, and dagster_celery is imported only by runs using it.
"""

from __future__ import annotations

import dagster as dg

from sync_assets.core.broker import BROKER_SETTING
from sync_assets.core.dagster_internals import RetryMode
from sync_assets.core.orphans import record_worker
from sync_assets.core.settings import require_setting

STEP_EXCHANGE = "sync_assets_runs"


@dg.executor(
    name="celery_steps",
    config_schema={
        "queue": dg.Field(
            str, default_value="steps", description="Celery queue the steps are published to."
        )
    },
    requirements=dg.multiple_process_executor_requirements(),
)
def celery_step_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    from dagster_celery.executor import CeleryExecutor

    class WorkerRecordingCeleryExecutor(CeleryExecutor):
        # Not core.executor's wrapper: dagster-celery's loop asks the run's executor itself
        # for its Celery settings (app_args).
        def execute(self, plan_context, execution_plan):  # noqa: ANN001, ANN202
            record_worker(plan_context.instance, plan_context.run_id)
            return super().execute(plan_context, execution_plan)

    broker = require_setting(
        BROKER_SETTING, "the Celery broker's URL, e.g. redis://127.0.0.1:6379/0"
    )
    return WorkerRecordingCeleryExecutor(
        retries=RetryMode(RetryMode.ENABLED),
        broker=broker,
        backend=broker,
        config_source={
            "task_default_queue": init_context.executor_config["queue"],
            # The workers' queues are bound to this topic exchange (core.celery_runs).
            "task_default_exchange": STEP_EXCHANGE,
            "task_default_exchange_type": "topic",
            "result_expires": 24 * 3600,
        },
    )
