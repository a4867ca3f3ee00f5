"""Loading the code location must not import the heavy data libraries: every run worker, sensor
evaluation and `dagster job execute` pays for what `import sync_assets` imports, and pandas,
pandera, numpy, duckdb and pyarrow are imported only inside the steps that use them."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "pandera", "numpy", "duckdb", "pyarrow")

# Loads the definitions the way a run worker does, reports what was imported, then imports a
# module that needs pandera, so the report shows the check sees such an import when one happens.
PROBE = f"""
import json, sys
import sync_assets
repository = sync_assets.defs.get_repository_def()
heavy = {HEAVY!r}
loaded = [name for name in heavy if name in sys.modules]
jobs = sorted(job.name for job in repository.get_all_jobs())
import sync_assets.football.tables, sync_assets.football.schemas
after_football = [name for name in heavy if name in sys.modules]
import sync_assets.steam.schemas
after_schemas = [name for name in heavy if name in sys.modules]
print(json.dumps({{
    "loaded": loaded, "jobs": jobs, "after_football": after_football, "after_schemas": after_schemas
}}))
"""


def test_loading_definitions_imports_no_data_library() -> None:
    """A fresh interpreter that loads `sync_assets.defs` holds none of the heavy libraries."""
    finished = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=False
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert "football_sync_job" in report["jobs"]
    assert "stats_refresh_job" in report["jobs"]
    assert report["loaded"] == [], f"loading the definitions imported {report['loaded']}"
    # The football sync validates with pydantic: its step never loads pandas (0.8 s of a sync).
    assert report["after_football"] == []
    assert {"pandas", "pandera", "numpy"} <= set(report["after_schemas"])
