"""The stats Definitions: the names other people and tools depend on."""

from __future__ import annotations

import dagster as dg

from sync_assets.stats import defs
from sync_assets.stats.computations import TABLES

ASSET_KEYS = {
    "season_stats",
    "half_season_stats",
    "all_time_stats",
    "hall_of_fame",
    "recent_performance",
    "season_honours_and_records",
    "match_report",
    "personal_bests",
    "player_profile_stats",
    "season_race_data",
    "power_ratings",
}
CACHE_TAGS = {
    "season_stats": "season_stats",
    "half_season_stats": "half_season_stats",
    "all_time_stats": "all_time_stats",
    "hall_of_fame": "hall_of_fame",
    "recent_performance": "recent_performance",
    "season_honours_and_records": "honour_roll",
    "match_report": "match_report",
    "personal_bests": "personal_bests",
    "player_profile_stats": "player_profile_stats",
    "season_race_data": "season_race_data",
    "power_ratings": "player_power_rating",
}


def test_eleven_assets_named_grouped_described_and_retried() -> None:
    repo = defs.get_repository_def()
    materializable = {
        key.path[-1]: asset
        for key, asset in repo.assets_defs_by_key.items()
        if asset.is_executable and key.path[0] != "club"
    }
    assert set(materializable) == ASSET_KEYS
    for name, asset in materializable.items():
        spec = asset.specs_by_key[dg.AssetKey(name)]
        assert spec.group_name == "stats" and spec.kinds and spec.description
        assert spec.metadata["cache_tag"] == CACHE_TAGS[name]
        assert {d.asset_key.path[0] for d in spec.deps} == {"club"}
        assert asset.op.retry_policy is not None
    assert {t.name: t.cache_tag for t in TABLES} == CACHE_TAGS


def test_job_sensors_and_resources() -> None:
    job = defs.resolve_job_def("stats_refresh_job")
    assert job.tags["sync_assets/domain"] == "stats"
    assert {k.path[-1] for k in job.asset_layer.executable_asset_keys} >= ASSET_KEYS
    sensors = {s.name: s for s in defs.sensors or []}
    assert set(sensors) == {
        "stats_job_queue_sensor",
        "stats_queue_write_back_sensor",
        "stats_queue_started_sensor",
        "stats_queue_success_sensor",
        "stats_queue_failure_sensor",
        "stats_queue_canceled_sensor",
        "club_tables_sensor",
        "stats_automation_sensor",
    }
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    assert set(defs.resources or {}) == {"stats_db", "stats_app"}
    db = defs.resources["stats_db"]
    assert (db.schema_name, db.url_setting) == ("stats", "STATS_DATABASE_URL")


def test_the_refresh_starts_costliest_first_and_keeps_the_elo_tables_together() -> None:
    from sync_assets.stats.refresh import work_order

    names = [t.name for t in TABLES]
    order = work_order(names)
    assert sorted(n for task in order for n in task) == sorted(names)
    assert ("power_ratings", "player_profile_stats") in order
    assert order[0] in {("season_race_data",), ("match_report",)}
    assert work_order(["all_time_stats", "player_profile_stats"]) == [
        ("player_profile_stats",),
        ("all_time_stats",),
    ]
