"""The steam Definitions: names other people depend on, and a schedule tick that validates."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from sync_assets.steam import defs


def test_assets_job_and_schedule_are_named_and_tagged() -> None:
    repo = defs.get_repository_def()
    details = repo.assets_defs_by_key[dg.AssetKey("steam_app_details")]
    catalog = repo.assets_defs_by_key[dg.AssetKey("steam_app_catalog")]
    for asset in (catalog, details):
        spec = next(iter(asset.specs))
        assert spec.group_name == "steam" and spec.kinds and spec.description
    assert dg.AssetKey("steam_app_catalog") in details.asset_deps[dg.AssetKey("steam_app_details")]
    job = defs.resolve_job_def("steam_sync_job")
    assert job.tags["sync_assets/domain"] == "steam"
    schedule = defs.resolve_schedule_def("steam_sync_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 3 * * *", "UTC")
    assert set(defs.resources) == {"steam_db", "steam_api", "steam_store"}
    assert defs.resources["steam_db"].schema_name == "steam"
    assert defs.resources["steam_db"].url_setting == "STEAM_DATABASE_URL"


def test_the_schedule_requests_a_valid_run_with_its_batch_size() -> None:
    schedule = defs.resolve_schedule_def("steam_sync_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 2, 3, 0, tzinfo=dt.UTC)
    )
    [request] = schedule.evaluate_tick(context).run_requests
    config = request.run_config["ops"]["steam_app_details"]["config"]
    assert config == {"batch_size": 200}
    job = defs.resolve_job_def("steam_sync_job")
    assert dg.validate_run_config(job, request.run_config)
