"""The project's default executor: Dagster's own multi-or-in-process executor, in process unless
run config asks for `multiprocess`.

The syncs are I/O bound (HTTP, SQL). In the run's own process a step starts in milliseconds; a
process per step (Dagster's default) costs seconds of imports each, which turned an eleven-table
stats refresh clicked in the UI from seconds into minutes.

The executor also records the run's worker process on the run (`core.orphans`), so a run whose
worker is killed can be told from one still running.
"""

from collections.abc import Iterator

import dagster as dg

from sync_assets.core.dagster_internals import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _get_default_executor_requirements,
)
from sync_assets.core.orphans import record_worker


class WorkerRecordingExecutor(dg.Executor):
    """Dagster's executor, after tagging the run with the process orchestrating it."""

    def __init__(self, inner: dg.Executor) -> None:
        self.inner = inner

    @property
    def retries(self):  # noqa: ANN201 - Dagster's RetryMode
        return self.inner.retries

    @property
    def step_dependency_config(self):  # noqa: ANN201 - Dagster's StepDependencyConfig
        return self.inner.step_dependency_config

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:  # noqa: ANN001
        record_worker(plan_context.instance, plan_context.run_id)
        yield from self.inner.execute(plan_context, execution_plan)


@dg.executor(
    name="in_process_by_default",
    config_schema=dg.Field(
        dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=_get_default_executor_requirements,
)
def in_process_by_default_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    return WorkerRecordingExecutor(
        dg.multi_or_in_process_executor.executor_creation_fn(init_context)
    )
