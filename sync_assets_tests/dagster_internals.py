"""The private Dagster names (`dagster._...`) the tests need beyond the product's own
(`sync_assets.core.dagster_internals`), in one place, each with why no public API serves.
An upgrade that moves one breaks this import and nothing else.

- RunStatusSensorCursor: the cursor format of run-status sensors, to test that a cursor an older
  release wrote is still read.
- SensorExecutionError, user_code_error_boundary, serializable_error_info_from_exc_info: the
  wrapping the daemon gives a sensor's error, to check the stored tick error is redacted.
- InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin, LoadableTargetOrigin: a
  job's origin as the daemon builds it; the torn overlap-guard test creates runs as the scheduler
  does so that run monitoring can judge them.
- AUTO_RETRY_RUN_ID_TAG: the tag run_retries puts on a failed run naming its retry; the orphan
  test follows a killed run's retries by it (only the string is private).
- ManagedGrpcPythonEnvCodeLocationOrigin, ReconstructableRepository: how the Celery test submits
  runs to the run queue in-process with the origin a code server would give them, so the Celery
  workers can rebuild the job.
- TickStatus: the status of a schedule or sensor tick in the daemon's records (not exported).
- _current_storage: the defs-state storage of the last instance a context entered, kept in a
  context variable with no public way to forget it (conftest.forget_dagster_defs_state_storage).
- check_run_timeout: one pass of run monitoring's max-runtime check, without a daemon.
- setup_interrupt_handlers: what `dagster api execute_run` installs so SIGTERM interrupts a run
  like SIGINT; the test run worker does the same.
"""

from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.definitions.run_status_sensor_definition import RunStatusSensorCursor
from dagster._core.errors import SensorExecutionError, user_code_error_boundary
from dagster._core.remote_origin import (
    InProcessCodeLocationOrigin,
    ManagedGrpcPythonEnvCodeLocationOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
)
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.storage.defs_state.base import _current_storage
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.monitoring.run_monitoring import check_run_timeout
from dagster._utils.error import serializable_error_info_from_exc_info
from dagster._utils.interrupts import setup_interrupt_handlers

__all__ = [
    "ManagedGrpcPythonEnvCodeLocationOrigin",
    "ReconstructableRepository",
    "AUTO_RETRY_RUN_ID_TAG",
    "InProcessCodeLocationOrigin",
    "LoadableTargetOrigin",
    "RemoteJobOrigin",
    "RemoteRepositoryOrigin",
    "RunStatusSensorCursor",
    "SensorExecutionError",
    "TickStatus",
    "_current_storage",
    "check_run_timeout",
    "serializable_error_info_from_exc_info",
    "setup_interrupt_handlers",
    "user_code_error_boundary",
]
