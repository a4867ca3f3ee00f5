"""The torn Definitions, the hourly schedule, and that a sync never overlaps itself."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import dagster as dg
import pytest
from dagster import DagsterEvent, DagsterEventType

from sync_assets.core import embedded
from sync_assets.torn import defs
from sync_assets.torn.assets import FAILED_SHARE_CHECK
from sync_assets_tests.conftest import create_database
from sync_assets_tests.dagster_internals import (
    InProcessCodeLocationOrigin,
    LoadableTargetOrigin,
    RemoteJobOrigin,
    RemoteRepositoryOrigin,
    check_run_timeout,
)
from sync_assets_tests.processes import wait_for
from sync_assets_tests.torn.conftest import configure, failure_text, query, seed


def started_sync(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """The user sync runs once one has started (within 30 s)."""
    return wait_for(
        lambda: instance.get_runs(
            filters=dg.RunsFilter(job_name="user_sync_job", statuses=[dg.DagsterRunStatus.STARTED])
        ),
        30,
        "the sync to start",
        every=0.05,
    )


TICK = dt.datetime(2026, 1, 2, 5, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def shared_instance(
    server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dg.DagsterInstance]:
    """One Postgres-backed Dagster instance for the module (creating one costs seconds)."""
    url = embedded.sqlalchemy_url(create_database(server_url, "dagster"))
    with dg.instance_for_test(
        overrides={"storage": {"postgres": {"postgres_url": url}}},
        temp_dir=str(tmp_path_factory.mktemp("torn_schedule")),
    ) as shared:
        yield shared


@pytest.fixture
def instance(shared_instance: dg.DagsterInstance) -> dg.DagsterInstance:
    """The shared instance with no runs left from an earlier test."""
    for run in shared_instance.get_runs():
        shared_instance.delete_run(run.run_id)
    return shared_instance


def _tick(instance: dg.DagsterInstance | None = None) -> dg.RunRequest | dg.SkipReason:
    schedule = defs.resolve_schedule_def("user_sync_schedule")
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=TICK)
    result = schedule.evaluate_tick(context)
    if result.skip_message:
        return dg.SkipReason(result.skip_message)
    [request] = result.run_requests
    return request


def _origin(job_name: str) -> RemoteJobOrigin:
    """Where the daemon would load the job from (a queued run must name it)."""
    location = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="sync_assets"))
    return RemoteJobOrigin(RemoteRepositoryOrigin(location, "__repository__"), job_name)


def test_asset_job_schedule_and_resources_are_named_and_tagged() -> None:
    repo = defs.get_repository_def()
    asset = repo.assets_defs_by_key[dg.AssetKey("user_data")]
    spec = next(iter(asset.specs))
    assert spec.group_name == "torn" and spec.kinds == {"python", "postgres"}
    assert spec.description
    assert [c.name for c in asset.check_specs] == [FAILED_SHARE_CHECK]
    job = defs.resolve_job_def("user_sync_job")
    assert job.tags == {"sync_assets/domain": "torn", "dagster/max_runtime": "600"}
    schedule = defs.resolve_schedule_def("user_sync_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 * * * *", "UTC")
    assert schedule.job_name == "user_sync_job"
    assert set(defs.resources) == {"torn_db", "torn_api", "torn_keys"}
    assert defs.resources["torn_db"].schema_name == "torn"
    assert defs.resources["torn_db"].url_setting == "TORN_DATABASE_URL"
    assert defs.resources["torn_api"].read_timeout == 10.0


def test_a_tick_requests_a_run_with_the_configured_max_runtime(instance, monkeypatch) -> None:
    monkeypatch.delenv("USER_SYNC_MAX_RUNTIME_SECONDS", raising=False)
    request = _tick(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.tags["dagster/max_runtime"] == "600"
    monkeypatch.setenv("USER_SYNC_MAX_RUNTIME_SECONDS", "120")
    assert _tick(instance).tags["dagster/max_runtime"] == "120"


@pytest.mark.parametrize(("setting", "tag"), [("900", "900"), ("ten minutes", "600")])
def test_a_run_launched_from_the_ui_carries_the_configured_max_runtime(setting, tag) -> None:
    """The job's own tag is read when the code location loads (an invalid value: the default,
    and every schedule tick fails naming the setting)."""
    shown = subprocess.run(
        [
            sys.executable,
            "-c",
            "from sync_assets.torn.jobs import user_sync_job;"
            " print(user_sync_job.tags['dagster/max_runtime'])",
        ],
        env={**os.environ, "USER_SYNC_MAX_RUNTIME_SECONDS": setting},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == tag


def test_a_tick_while_a_sync_runs_is_skipped(torn, database_url, instance) -> None:
    seed(database_url, range(8))
    configure(torn, latency=0.25)
    job = defs.resolve_job_def("user_sync_job")
    outcome: dict[str, bool] = {}
    run_config = {"ops": {"user_data": {"config": {"concurrency": 2}}}}

    def run() -> None:
        result = job.execute_in_process(instance=instance, run_config=run_config)
        outcome["success"] = result.success

    thread = threading.Thread(target=run)
    thread.start()
    running = started_sync(instance)
    skipped = _tick(instance)
    thread.join(timeout=60)
    assert outcome == {"success": True}
    assert isinstance(skipped, dg.SkipReason)
    assert f"user_sync_job run {running[0].run_id} is still STARTED" in skipped.skip_message
    assert "syncs never overlap" in skipped.skip_message
    # The sync is over: the next tick runs.
    assert isinstance(_tick(instance), dg.RunRequest)


def test_a_queued_sync_also_skips_the_tick(instance) -> None:
    job = defs.resolve_job_def("user_sync_job")
    run = instance.create_run_for_job(job, remote_job_origin=_origin(job.name))
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_ENQUEUED.value, job_name=job.name), run.run_id
    )
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.QUEUED
    skipped = _tick(instance)
    assert isinstance(skipped, dg.SkipReason) and "is still QUEUED" in skipped.skip_message
    assert run.run_id in skipped.skip_message


def test_a_hung_sync_is_ended_by_its_max_runtime(instance, monkeypatch) -> None:
    """Run monitoring (enabled in dagster.yaml) ends a run past `dagster/max_runtime`."""
    monkeypatch.setenv("USER_SYNC_MAX_RUNTIME_SECONDS", "1")
    request = _tick(instance)
    job = defs.resolve_job_def("user_sync_job")
    run = instance.create_run_for_job(job, tags={**job.tags, **request.tags})
    # The run started 5 s ago and hangs.
    instance.report_dagster_event(
        DagsterEvent(DagsterEventType.RUN_START.value, job_name=job.name),
        run.run_id,
        timestamp=time.time() - 5,
    )
    assert isinstance(_tick(instance), dg.SkipReason)  # the hung run blocks the schedule
    record = instance.get_run_record_by_id(run.run_id)
    check_run_timeout(instance, record, logging.getLogger("test"), 600.0)
    ended = instance.get_run_by_id(run.run_id)
    assert ended.status == dg.DagsterRunStatus.FAILURE
    assert isinstance(_tick(instance), dg.RunRequest)  # and the next hour syncs again


def test_a_canceled_sync_stops_and_keeps_the_users_it_fetched(torn, database_url, instance) -> None:
    seed(database_url, range(40))
    configure(torn, latency=0.25)
    job = defs.resolve_job_def("user_sync_job")
    results: list[dg.ExecuteInJobResult] = []
    run_config = {"ops": {"user_data": {"config": {"concurrency": 2, "chunk_size": 4}}}}

    def run() -> None:
        results.append(
            job.execute_in_process(instance=instance, run_config=run_config, raise_on_error=False)
        )

    thread = threading.Thread(target=run)
    thread.start()
    running = started_sync(instance)
    time.sleep(0.5)
    instance.report_run_canceling(running[0], message="canceled from the test")
    thread.join(timeout=60)
    [result] = results
    assert not result.success
    text = failure_text(result)
    assert "user_data canceled after committing" in text
    committed = int(text.split("after committing ")[1].split()[0])
    assert 0 < committed < 40
    assert query(database_url, "SELECT count(*) FROM user_data") == [(committed,)]
