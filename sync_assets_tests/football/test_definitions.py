"""The football Definitions: names other people depend on, and a schedule tick that validates."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from sync_assets.football import defs
from sync_assets.football.tables import TABLES


def test_assets_job_schedule_and_resources_are_named_and_tagged() -> None:
    repo = defs.get_repository_def()
    keys = {dg.AssetKey(t) for t in TABLES}
    assert keys <= set(repo.assets_defs_by_key)
    [sync] = {repo.assets_defs_by_key[k] for k in keys}  # one step writes all four
    for spec in sync.specs:
        assert spec.group_name == "football" and spec.kinds == {"python", "postgres"}
        assert spec.description and "\n" not in spec.description
        policy = spec.freshness_policy
        assert policy is not None
        warn = policy.warn_window
        assert dt.timedelta(days=warn.days, seconds=warn.seconds) == dt.timedelta(hours=26)
    deps = {spec.key.path[0]: {d.asset_key.path[0] for d in spec.deps} for spec in sync.specs}
    assert deps == {
        "countries": set(),
        "leagues": {"countries"},
        "seasons": {"leagues"},
        "season_coverage": {"seasons"},
    }
    job = defs.resolve_job_def("football_sync_job")
    assert job.tags["sync_assets/domain"] == "football"
    schedule = defs.resolve_schedule_def("football_sync_schedule")
    assert schedule.job_name == "football_sync_job"
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 2 * * *", "UTC")
    assert set(defs.resources) == {"football_db", "football_api"}
    assert defs.resources["football_db"].schema_name == "football"
    assert defs.resources["football_db"].url_setting == "FOOTBALL_DATABASE_URL"
    checks = {key.name for key in defs.get_repository_def().asset_checks_defs_by_key}
    assert {"leagues_country_exists", "leagues_slugs_unique", "seasons_not_empty"} <= checks


def test_the_schedule_requests_a_valid_run() -> None:
    schedule = defs.resolve_schedule_def("football_sync_schedule")
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 1, 2, 2, 30, tzinfo=dt.UTC)
    )
    [request] = schedule.evaluate_tick(context).run_requests
    job = defs.resolve_job_def("football_sync_job")
    assert dg.validate_run_config(job, request.run_config)


def test_the_code_location_has_the_football_job() -> None:
    from sync_assets.definitions import defs as all_defs

    assert all_defs.resolve_job_def("football_sync_job").tags["sync_assets/domain"] == "football"
    all_syncs = all_defs.resolve_job_def("all_syncs_job")
    assert {dg.AssetKey(t) for t in TABLES} <= set(all_syncs.asset_layer.executable_asset_keys)
