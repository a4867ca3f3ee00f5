"""Run `steam_sync_job` in this process the way Dagster's run worker does (SIGTERM interrupts).

Used by the cancellation tests: `python -m sync_assets_tests.steam.run_worker '<run config>'`,
with DAGSTER_HOME naming the instance.
"""

from __future__ import annotations

import json
import sys

import dagster as dg
from dagster._utils.interrupts import setup_interrupt_handlers


def steam_sync_job() -> dg.JobDefinition:
    from sync_assets.steam import defs

    return defs.resolve_job_def("steam_sync_job")


def main() -> None:
    setup_interrupt_handlers()  # as `dagster api execute_run` does: SIGTERM acts as SIGINT
    run_config = json.loads(sys.argv[1])
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(steam_sync_job),
            instance=instance,
            run_config=run_config,
            tags={"sync_assets/domain": "steam"},
            raise_on_error=False,
        )
        print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)


if __name__ == "__main__":
    main()
