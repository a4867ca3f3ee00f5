"""Run `user_sync_job` in this process as `dagster job execute` would (steps in subprocesses).

Used by the secrets test: `python -m sync_assets_tests.torn.run_job '<run config>'`, with
DAGSTER_HOME naming the instance.
"""

from __future__ import annotations

import json
import sys

import dagster as dg


def user_sync_job() -> dg.JobDefinition:
    from sync_assets.torn import defs

    return defs.resolve_job_def("user_sync_job")


def main() -> None:
    run_config = json.loads(sys.argv[1])
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(
            dg.reconstructable(user_sync_job),
            instance=instance,
            run_config=run_config,
            raise_on_error=False,
        )
        print(json.dumps({"run_id": result.run_id, "success": result.success}), flush=True)


if __name__ == "__main__":
    main()
