"""Every name the project takes from Dagster's private modules (`dagster._...`), in one place.

Dagster may move or rename these in any release; an upgrade that does breaks this import and
nothing else. Each name says why no public API serves. Prefer the public `dagster` namespace
for anything not listed here.
"""

# DATA_VERSION_TAG: the tag Dagster stores a materialization's data version under.
#   `MaterializeResult` takes a data version publicly, but a job op that logs an
#   `AssetMaterialization` itself (the all-models streams job) can only tag it.
from dagster._core.definitions.data_version import DATA_VERSION_TAG

# IN_PROC_CONFIG, MULTI_PROC_CONFIG, _get_default_executor_requirements: the project's
#   `in_process_by_default` executor is Dagster's multi-or-in-process executor with another
#   default; its config must stay identical to the public executor's so run config written for
#   one works for the other. Dagster exports the executor, not its schema pieces.
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _get_default_executor_requirements,
)

# FreshnessState, FreshnessStateChange: freshness changes are public event-log events, but the
#   classes of their payload (what the alert sensor reads to tell WARN/FAIL from PASS) are not
#   exported.
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

# JobFailureData, RunFailureReason: the payload of a run failure reported from outside the run;
#   `core.orphans` fails a run whose worker is gone with reason UNEXPECTED_TERMINATION, as run
#   monitoring does, so run_retries treats it as a worker that died (not an asset that raised).
from dagster._core.events import JobFailureData, RunFailureReason

# RetryMode: the Celery step executor is built from dagster-celery's `CeleryExecutor`, whose
#   constructor takes the retry mode the public `celery_executor` would parse from run config.
from dagster._core.execution.retries import RetryMode

# CheckRunHealthResult, WorkerStatus: what a run launcher's worker health check returns to run
#   monitoring; `LivenessCheckingRunLauncher` adds that check to DefaultRunLauncher, which has
#   none. Dagster exports DefaultRunLauncher but not the health-check types.
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

# WILL_RETRY_TAG: the run tag run_retries sets on a failed run it will start again; the failure
#   alert waits for the last attempt. Only the string is private; importing it keeps one spelling.
from dagster._core.storage.tags import WILL_RETRY_TAG

# ConfigurableClassData: the pooled instance storages subclass dagster-postgres's and take the
#   argument Dagster's `ConfigurableClass` loader passes to every storage.
from dagster._serdes import ConfigurableClassData

# SerializableErrorInfo: the error of a failed step as stored in the event log
#   (`StepFailureData.error`), which alert text is built from; its type is not exported.
from dagster._utils.error import SerializableErrorInfo

__all__ = [
    "RetryMode",
    "DATA_VERSION_TAG",
    "CheckRunHealthResult",
    "JobFailureData",
    "RunFailureReason",
    "WorkerStatus",
    "IN_PROC_CONFIG",
    "MULTI_PROC_CONFIG",
    "WILL_RETRY_TAG",
    "ConfigurableClassData",
    "FreshnessState",
    "FreshnessStateChange",
    "SerializableErrorInfo",
    "_get_default_executor_requirements",
]
