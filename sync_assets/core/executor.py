"""The project's default executor: Dagster's own multi-or-in-process executor, in process unless
run config asks for `multiprocess`.

The syncs are I/O bound (HTTP, SQL). In the run's own process a step starts in milliseconds; a
process per step (Dagster's default) costs seconds of imports each, which turned an eleven-table
stats refresh clicked in the UI from seconds into minutes.
"""

import dagster as dg

from sync_assets.core.dagster_internals import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _get_default_executor_requirements,
)


@dg.executor(
    name="in_process_by_default",
    config_schema=dg.Field(
        dg.Selector({"multiprocess": MULTI_PROC_CONFIG, "in_process": IN_PROC_CONFIG}),
        default_value={"in_process": {}},
    ),
    requirements=_get_default_executor_requirements,
)
def in_process_by_default_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    return dg.multi_or_in_process_executor.executor_creation_fn(init_context)
