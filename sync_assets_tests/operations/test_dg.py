"""`dg` (dagster-dg-cli) runs in this project: `dg check defs` loads the code location from
pyproject.toml's [tool.dg] against the repository's instance, and `dg list defs` shows every
domain's assets with their owners and tags, the checks and the jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sync_assets.domains import DOMAINS
from sync_assets_tests.operations.test_instance import instance_env  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
DG = str(Path(sys.executable).with_name("dg"))


def dg(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DG, *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_dg_check_defs(instance_env):  # noqa: F811
    done = dg("check", "defs", env=instance_env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "All definitions loaded successfully." in done.stdout + done.stderr


def test_dg_list_defs(instance_env):  # noqa: F811
    done = dg("list", "defs", "--json", env=instance_env)
    assert done.returncode == 0, done.stderr[-3000:]
    listed = json.loads(done.stdout)
    groups = {asset["group_name"] for asset in listed["assets"]}
    assert groups == {domain.name for domain in DOMAINS}
    countries = next(a for a in listed["assets"] if a["asset_key"] == "countries")
    assert countries["owners"] == [{"team": "sync-assets"}]
    assert {"key": "sync_assets/provider", "value": "api_football"} in countries["tags"]
    assert {"key": "sync_assets/table", "value": "football.countries"} in countries["tags"]
    jobs = {job["name"] for job in listed["jobs"]}
    assert {"all_syncs_job", "football_sync_job", "stats_refresh_job", "user_sync_job"} <= jobs
    assert len(listed["asset_checks"]) > 20
