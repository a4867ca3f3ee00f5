"""Two football syncs on one database never overlap: the second waits (bounded), then skips
(or fails, if asked) with a message that says why."""

from __future__ import annotations

import threading
import time

import dagster as dg

from sync_assets.core.postgres import PostgresResource
from sync_assets.football.assets import LOCK_NAME
from sync_assets_tests.football.conftest import counts, failure_message, metadata, sync
from sync_assets_tests.processes import wait_for

DB = PostgresResource(schema_name="football", url_setting="FOOTBALL_DATABASE_URL")


def test_a_second_sync_skips_when_one_holds_the_lock(football, database_url) -> None:
    instance = dg.DagsterInstance.ephemeral()
    with DB.advisory_lock(LOCK_NAME):
        started = time.monotonic()
        result = sync({"lock_wait_seconds": 1}, instance=instance)
        waited = time.monotonic() - started
    assert result.success and waited >= 1
    assert result.asset_materializations_for_node("football_sync") == []
    assert counts(database_url) == dict.fromkeys(counts(database_url), 0)
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    skipped = [m for m in messages if m and "skipped, nothing written" in m]
    assert skipped and "another football sync is running" in skipped[0]
    assert "football:football_sync" in skipped[0] and "held by backend pid" in skipped[0]
    assert football.recorded() == []  # it did not even ask the provider


def test_or_fails_when_asked_to(football, database_url) -> None:
    with DB.advisory_lock(LOCK_NAME):
        result = sync({"lock_wait_seconds": 0, "if_locked": "fail"}, raise_on_error=False)
    assert not result.success
    assert "another football sync is running on this database" in failure_message(result)


def test_a_second_sync_waits_for_the_first_to_finish(football, database_url) -> None:
    holding = threading.Event()
    released: list[float] = []

    def hold() -> None:
        with DB.advisory_lock(LOCK_NAME):
            holding.set()
            time.sleep(2.0)
            released.append(time.time())

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    result = sync({"lock_wait_seconds": 60}, checks=False)
    holder.join()
    assert result.success
    assert metadata(result, "leagues")["lock_wait_seconds"] > 0
    # It asked the provider only once the first sync had let go of the lock.
    first_request = min(r["at"] for r in football.recorded())
    assert first_request >= released[0]
    assert counts(database_url)["leagues"] > 0


def test_two_syncs_started_together_never_overlap(football, database_url) -> None:
    # The first sync's /leagues answer takes 2 s, so the second starts while it holds the lock.
    football.faults.add(path="/football/leagues", kind="slow", delay=2.0, count=1)
    results: dict[str, object] = {}

    def run(name: str) -> None:
        results[name] = sync({"lock_wait_seconds": 0}, checks=False)

    first = threading.Thread(target=run, args=("first",))
    first.start()
    wait_for(lambda: football.recorded("/football/countries"), 30, "the first sync", every=0.05)
    run("second")
    first.join()
    materialized = {
        name: bool(result.asset_materializations_for_node("football_sync"))  # type: ignore[attr-defined]
        for name, result in results.items()
    }
    assert materialized == {"first": True, "second": False}
    assert len(football.recorded("/football")) == 2  # the second asked the provider nothing


def test_a_skipped_sync_does_not_wait_for_the_other_ones_transaction(
    football, database_url
) -> None:
    import psycopg

    sync(checks=False)
    # The other sync: holding the lock, in the middle of its write transaction.
    with DB.advisory_lock(LOCK_NAME), psycopg.connect(database_url) as writer:
        writer.execute("UPDATE football.leagues SET name = name WHERE id = 1")
        started = time.monotonic()
        result = sync({"lock_wait_seconds": 0.5}, checks=False)
        took = time.monotonic() - started
        writer.rollback()
    assert result.success and result.asset_materializations_for_node("football_sync") == []
    assert took < 20  # DDL beside the open transaction would have blocked until it ended
