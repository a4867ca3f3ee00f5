"""Run one of the project's jobs in this process the way Dagster's run worker does (steps in
subprocesses where the job says so; SIGTERM interrupts the run as it does a real worker's).

Used by tests that need a run in its own OS process (cancellation, secrets in the output):
`python -m sync_assets_tests.run_job <job name> '<run config as JSON>' ['<tags as JSON>']`, with
DAGSTER_HOME naming the instance. Prints `{"run_id": ..., "success": ...}`.
"""

from __future__ import annotations

import json
import sys

import dagster as dg

from sync_assets_tests.dagster_internals import setup_interrupt_handlers


def job_named(name: str) -> dg.JobDefinition:
    """The job from the project's Definitions (a reconstructor: run in every step process)."""
    from sync_assets.definitions import defs

    return defs.resolve_job_def(name)


def main() -> None:
    setup_interrupt_handlers()  # as `dagster api execute_run` does: SIGTERM acts as SIGINT
    name, run_config = sys.argv[1], json.loads(sys.argv[2])
    tags = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    job = dg.build_reconstructable_job(
        "sync_assets_tests.run_job", "job_named", reconstructable_args=(name,)
    )
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            job, instance=instance, run_config=run_config, tags=tags, raise_on_error=False
        )
        print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)


if __name__ == "__main__":
    main()
