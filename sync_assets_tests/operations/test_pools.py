"""Provider pools: on the repository's instance (dagster.yaml's `concurrency.pools`), a second
materialization of API-Football's assets waits for the step that holds the provider's pool,
whichever way it was started; nothing reaches the provider until the pool is free."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
from dagster import DagsterEventType

from sync_assets.football import DOMAIN as FOOTBALL
from sync_assets.football.client import API_FOOTBALL_POOL
from sync_assets.sandbox import football as football_sandbox
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests.football.conftest import football, football_server, sync  # noqa: F401
from sync_assets_tests.operations.test_instance import instance_env  # noqa: F401
from sync_assets_tests.processes import wait_for

release = threading.Event()


@dg.asset(pool=API_FOOTBALL_POOL)
def holds_the_football_pool() -> None:
    """Holds the API-Football pool until the test releases it."""
    if not release.wait(timeout=240):
        raise TimeoutError("the test never released the pool")


def _step_times(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    records = instance.get_records_for_run(run_id, limit=1000).records
    times = {r.event_log_entry.dagster_event_type: r.timestamp for r in records}
    return times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]


def test_two_materializations_of_one_provider_wait_for_its_pool(
    instance_env,  # noqa: F811
    football: SandboxServer,  # noqa: F811
):
    assert FOOTBALL.pools == {API_FOOTBALL_POOL: 1}
    release.clear()
    with dg.DagsterInstance.get() as instance, ThreadPoolExecutor(2) as pool:
        holder = pool.submit(dg.materialize, [holds_the_football_pool], instance=instance)

        def info():
            return instance.event_log_storage.get_concurrency_info(API_FOOTBALL_POOL)

        wait_for(lambda: info().active_slot_count == 1, 120, "the holder to claim the pool")
        [holder_run] = info().active_run_ids
        syncing = pool.submit(sync, instance=instance)
        wait_for(
            lambda: info().pending_step_count == 1, 120, "the football sync to queue on the pool"
        )
        [waiting_run] = info().pending_run_ids
        assert waiting_run != holder_run and info().slot_count == 1
        assert football.recorded(football_sandbox.PREFIX) == []  # the provider saw nothing yet
        release.set()
        assert holder.result(timeout=240).success
        result = syncing.result(timeout=240)
    assert result.success and result.run_id == waiting_run
    assert football.recorded(football_sandbox.PREFIX)  # then it did sync
    _, holder_done = _step_times(instance, holder_run)
    sync_started, _ = _step_times(instance, waiting_run)
    assert sync_started >= holder_done
