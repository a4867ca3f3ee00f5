"""The project's default executor: Dagster's own multi-or-in-process executor, in process unless
run config asks for `multiprocess`.

The syncs are I/O bound (HTTP, SQL). In the run's own process a step starts in milliseconds; a
process per step (Dagster's default) costs seconds of imports each, which turned an eleven-table
stats refresh clicked in the UI from seconds into minutes.

The executor also records the run's worker process on the run (`core.orphans`), so a run whose
worker is killed can be told from one still running, and keeps the garbage collector off the
objects loaded before the run (`objects_loaded_so_far_frozen`).
"""

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from sync_assets.core.dagster_internals import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _get_default_executor_requirements,
)
from sync_assets.core.orphans import record_worker

YOUNG_GENERATION_THRESHOLD = 10_000


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
        with objects_loaded_so_far_frozen():
            yield from self.inner.execute(plan_context, execution_plan)


@contextmanager
def objects_loaded_so_far_frozen() -> Iterator[None]:
    """Exempt every object alive now (Dagster, the definitions: ~200,000) from garbage collection
    until the block ends.

    A step that builds many objects (a parsed 12,000-league body) triggers full collections, and
    each one walked all of those import-time objects again: 1.6 s of a 6.6 s football write.
    Collecting first leaves no garbage frozen: garbage holding a socket or a file, or whose
    finalizer resets some state, would otherwise keep it until after the run (skipping the
    collection saved 0.1 to 0.4 s a run, and was reverted for this). Unfreezing at the end keeps
    a long-lived worker (a Celery run worker) collecting everything between runs. Runs
    overlapping in one process (threads) share one freeze: the first in starts it, the last out
    ends it.
    """
    global _frozen_runs, _thresholds_before
    with _freeze_lock:
        if _frozen_runs == 0:
            gc.collect()
            gc.freeze()
            _thresholds_before = gc.get_threshold()
            # Young collections every 10,000 allocations instead of 700: a step's parsed items
            # live a short while in bulk, and a third of its collections re-checked them.
            gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *_thresholds_before[1:])
        _frozen_runs += 1
    try:
        yield
    finally:
        with _freeze_lock:
            _frozen_runs -= 1
            if _frozen_runs == 0:
                gc.set_threshold(*_thresholds_before)
                gc.unfreeze()


_freeze_lock = threading.Lock()
_frozen_runs = 0
_thresholds_before: tuple[int, ...] = gc.get_threshold()


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
