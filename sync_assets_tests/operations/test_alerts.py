"""Alerts go to a real HTTP webhook on loopback, built from a real Postgres-backed instance."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import dagster as dg
import pytest
from dagster import DagsterEvent, DagsterEventType, EventRecordsFilter

from sync_assets.core.dagster_internals import FreshnessState, FreshnessStateChange
from sync_assets.operations import alerts as alerts_module
from sync_assets.operations.alerts import (
    FIRST_TICK_LOOKBACK_SECONDS,
    AlertDeliveryError,
    AlertWebhookResource,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from sync_assets.sandbox import webhook
from sync_assets_tests.dagster_internals import RunStatusSensorCursor
from sync_assets_tests.operations.conftest import posted_texts

LEAKED_KEY = "int-key-5f1c9a7e0b3d"


@dg.op
def call_provider() -> None:
    raise RuntimeError(f"provider refused the request (key {LEAKED_KEY})")


@dg.job(name="provider_job")
def provider_job() -> None:
    call_provider()


def fail_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    result = provider_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return instance.get_run_by_id(result.run_id)


def run_alert_context(
    instance: dg.DagsterInstance, cursor: str | None, max_retries: int = 3
) -> dg.SensorEvaluationContext:
    webhook_resource = AlertWebhookResource(max_retries=max_retries)
    return dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": webhook_resource}
    )


def run_sensor_tick(
    instance: dg.DagsterInstance, cursor: str | None
) -> tuple[str | None, dg.SkipReason | None]:
    context = run_alert_context(instance, cursor)
    result = run_failure_alert_sensor(context)
    return context.cursor, result


def test_failed_run_posts_job_run_error_and_link(alerts, pg_instance, monkeypatch):
    monkeypatch.setenv("INTERNAL_API_KEY", LEAKED_KEY)
    run = fail_run(pg_instance)

    cursor, result = run_sensor_tick(pg_instance, None)

    assert result is None
    (call,) = alerts.recorded(webhook.PREFIX)
    assert call["method"] == "POST" and call["status"] == 200
    assert call["headers"].get("content-type") == "application/json"
    (text,) = posted_texts(alerts)
    assert "provider_job failed" in text
    assert run.run_id in text
    assert "call_provider: RuntimeError: provider refused the request" in text
    assert f"http://dagster.example:3000/runs/{run.run_id}" in text
    assert LEAKED_KEY not in text and "[REDACTED]" in text
    assert webhook.ALERTS_PATH not in text

    cursor_after, result = run_sensor_tick(pg_instance, cursor)
    assert cursor_after == cursor and isinstance(result, dg.SkipReason)
    assert len(alerts.recorded(webhook.PREFIX)) == 1


def test_without_a_webhook_nothing_is_sent(alerts, pg_instance, monkeypatch):
    monkeypatch.delenv("ALERT_WEBHOOK_URL")
    fail_run(pg_instance)

    run_sensor_tick(pg_instance, None)

    assert alerts.recorded() == []


def test_a_run_failure_is_alerted_once_the_webhook_is_back(alerts, pg_instance):
    alerts.faults.add(path=webhook.PREFIX, kind="status", status=500, count=-1)
    run = fail_run(pg_instance)

    # One retry: two refused attempts, then the send gives up and the tick fails.
    context = run_alert_context(pg_instance, None, max_retries=1)
    with pytest.raises(AlertDeliveryError, match="answered HTTP 500"):
        run_failure_alert_sensor(context)
    assert [c["status"] for c in alerts.recorded(webhook.PREFIX)] == [500, 500]

    # The daemon keeps the cursor the failed tick started from (no cursor here).
    alerts.faults.clear()
    assert context.cursor is None
    cursor, result = run_sensor_tick(pg_instance, context.cursor)

    assert result is None
    delivered = [c for c in alerts.recorded(webhook.PREFIX) if c["status"] == 200]
    (call,) = delivered
    assert run.run_id in json.loads(call["body"])["text"]

    cursor_after, result = run_sensor_tick(pg_instance, cursor)
    assert isinstance(result, dg.SkipReason) and cursor_after == cursor
    assert len(alerts.recorded(webhook.PREFIX)) == 3


def report_run_failure(
    instance: dg.DagsterInstance, message: str, age_seconds: float, tags: dict | None = None
) -> dg.DagsterRun:
    """A run of provider_job marked failed (as a dead worker's run is) `age_seconds` ago."""
    run = instance.create_run_for_job(provider_job, tags=tags)
    event = DagsterEvent(
        event_type_value=DagsterEventType.RUN_FAILURE.value,
        job_name=run.job_name,
        message=message,
    )
    instance.report_dagster_event(event, run_id=run.run_id, timestamp=time.time() - age_seconds)
    return run


def test_a_first_tick_announces_only_failed_runs_of_the_lookback(alerts, pg_instance):
    old = report_run_failure(pg_instance, "worker lost long ago", FIRST_TICK_LOOKBACK_SECONDS + 600)

    cursor, result = run_sensor_tick(pg_instance, None)
    assert isinstance(result, dg.SkipReason) and alerts.recorded() == []
    assert pg_instance.get_run_by_id(old.run_id).status == dg.DagsterRunStatus.FAILURE

    recent = report_run_failure(pg_instance, "the run worker exited", 60)
    run_sensor_tick(pg_instance, cursor)

    (text,) = posted_texts(alerts)
    assert f"provider_job failed (run {recent.run_id})\nthe run worker exited\n" in text
    assert old.run_id not in text


def test_a_failure_that_run_retries_will_retry_is_left_to_the_last_attempt(alerts, pg_instance):
    report_run_failure(pg_instance, "worker lost, retrying", 60, {"dagster/will_retry": "true"})
    last = report_run_failure(pg_instance, "worker lost again", 30)
    run_sensor_tick(pg_instance, None)
    (text,) = posted_texts(alerts)
    assert last.run_id in text and "worker lost again" in text


def test_the_cursor_of_the_former_run_failure_sensor_is_carried_over(alerts, pg_instance):
    announced = fail_run(pg_instance)
    (record,) = pg_instance.event_log_storage.get_event_records(
        EventRecordsFilter(event_type=DagsterEventType.RUN_FAILURE), limit=1
    )
    assert record.event_log_entry.run_id == announced.run_id
    former = RunStatusSensorCursor(record_id=record.storage_id, record_timestamp="x").to_json()
    unannounced = fail_run(pg_instance)

    cursor, _ = run_sensor_tick(pg_instance, former)

    (text,) = posted_texts(alerts)
    assert unannounced.run_id in text
    assert "record_id" not in json.loads(cursor)


def test_a_refusing_webhook_is_an_error_that_does_not_show_its_url(alerts):
    alerts.faults.add(path=webhook.PREFIX, kind="status", status=404, count=1)
    with pytest.raises(AlertDeliveryError) as raised:
        AlertWebhookResource().send("hello")
    assert str(raised.value) == (
        f"the alert webhook at {alerts.url.split('//')[1]} (ALERT_WEBHOOK_URL) answered HTTP 404"
    )
    assert webhook.ALERTS_PATH not in str(raised.value)


def test_a_webhook_outage_is_retried(alerts):
    alerts.faults.add(path=webhook.PREFIX, kind="status", status=503, count=2)
    assert AlertWebhookResource(max_retries=3).send("after an outage") is True
    statuses = [r["status"] for r in alerts.recorded(webhook.PREFIX)]
    assert statuses == [503, 503, 200]


@dg.asset
def club_table() -> int:
    return 1


@dg.asset_check(asset=club_table, blocking=True)
def club_table_has_rows() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, description="club_table is empty")


@dg.asset_check(asset=club_table)
def club_table_names_tidy() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN)


def check_sensor_tick(instance: dg.DagsterInstance, cursor: str | None):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": AlertWebhookResource()}
    )
    result = check_failure_alert_sensor(context)
    return context.cursor, result


def test_failed_blocking_check_alerts_once_and_warnings_do_not(alerts, pg_instance):
    dg.materialize(
        [club_table, club_table_has_rows, club_table_names_tidy],
        instance=pg_instance,
        raise_on_error=False,
    )

    cursor, _ = check_sensor_tick(pg_instance, None)
    (text,) = posted_texts(alerts)
    assert "blocking check club_table / club_table_has_rows failed" in text
    assert "club_table is empty" in text
    assert "http://dagster.example:3000/assets/club_table?view=checks" in text
    assert "club_table_names_tidy" not in text

    cursor_after, result = check_sensor_tick(pg_instance, cursor)
    assert cursor_after == cursor and isinstance(result, dg.SkipReason)
    assert len(posted_texts(alerts)) == 1


def test_failed_freshness_check_alerts(alerts, pg_instance):
    freshness_checks = dg.build_last_update_freshness_checks(
        assets=[club_table], lower_bound_delta=timedelta(minutes=5)
    )
    # Never materialized: the freshness check fails (as WARN, which still alerts).
    dg.materialize(
        [club_table, *freshness_checks],
        instance=pg_instance,
        selection=dg.AssetSelection.checks(*freshness_checks),
        raise_on_error=False,
    )

    check_sensor_tick(pg_instance, None)

    (text,) = posted_texts(alerts)
    assert "club_table / freshness_check failed (WARN" in text


def test_check_alert_payload_is_slack_json(alerts, pg_instance):
    dg.materialize([club_table, club_table_has_rows], instance=pg_instance, raise_on_error=False)
    check_sensor_tick(pg_instance, None)
    (call,) = alerts.recorded(webhook.PREFIX)
    assert set(json.loads(call["body"])) == {"text"}


def test_freshness_policy_state_change_alerts(alerts, pg_instance):
    from sync_assets.core.dagster_internals import FreshnessState, FreshnessStateChange

    change = FreshnessStateChange(
        key=dg.AssetKey(["football", "leagues"]),
        new_state=FreshnessState.WARN,
        previous_state=FreshnessState.PASS,
        state_change_timestamp=0.0,
    )
    pg_instance._report_runless_asset_event(change)  # what Dagster's freshness daemon does

    cursor, _ = check_sensor_tick(pg_instance, None)

    (text,) = posted_texts(alerts)
    assert "football/leagues is WARN against its freshness policy (was PASS)" in text
    assert "/assets/football/leagues?view=checks" in text
    check_sensor_tick(pg_instance, cursor)
    assert len(posted_texts(alerts)) == 1


def report_event(
    instance: dg.DagsterInstance,
    data: dg.AssetCheckEvaluation | FreshnessStateChange,
    age_seconds: float,
) -> None:
    """Store a runless check evaluation or freshness change as if it happened `age_seconds` ago."""
    kind = (
        DagsterEventType.ASSET_CHECK_EVALUATION
        if isinstance(data, dg.AssetCheckEvaluation)
        else DagsterEventType.FRESHNESS_STATE_CHANGE
    )
    event = DagsterEvent(event_type_value=kind.value, job_name="", event_specific_data=data)
    instance.report_dagster_event(event, run_id="", timestamp=time.time() - age_seconds)


def failed_check(name: str) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(
        asset_key=dg.AssetKey("club_table"),
        check_name=name,
        passed=False,
        severity=dg.AssetCheckSeverity.ERROR,
    )


def went_stale(name: str) -> FreshnessStateChange:
    return FreshnessStateChange(
        key=dg.AssetKey(name),
        new_state=FreshnessState.FAIL,
        previous_state=FreshnessState.PASS,
        state_change_timestamp=0.0,
    )


def test_history_older_than_the_lookback_is_never_announced(alerts, pg_instance, monkeypatch):
    monkeypatch.setattr(alerts_module, "RECORDS_PER_TICK", 2)
    old = FIRST_TICK_LOOKBACK_SECONDS + 600
    for i in range(5):  # more than two pages of each kind
        report_event(pg_instance, failed_check(f"old_check_{i}"), old)
        report_event(pg_instance, went_stale(f"old_asset_{i}"), old)
    for i in range(3):
        report_event(pg_instance, failed_check(f"recent_check_{i}"), 60)

    cursor = None
    for _ in range(3):
        cursor, _ = check_sensor_tick(pg_instance, cursor)

    texts = posted_texts(alerts)
    assert not [t for t in texts if "old_" in t]
    assert sorted(t.split(" / ")[1].split()[0] for t in texts) == [
        "recent_check_0",
        "recent_check_1",
        "recent_check_2",
    ]

    report_event(pg_instance, failed_check("new_check"), 0)
    report_event(pg_instance, went_stale("new_asset"), 0)
    for _ in range(2):
        cursor, _ = check_sensor_tick(pg_instance, cursor)

    new = posted_texts(alerts)[len(texts) :]
    assert len(new) == 2
    assert "club_table / new_check failed" in new[0] and "new_asset is FAIL" in new[1]


def test_a_cursor_started_in_a_quiet_hour_skips_to_the_newest_record(alerts, pg_instance):
    report_event(pg_instance, failed_check("old_check"), FIRST_TICK_LOOKBACK_SECONDS + 600)

    cursor, result = check_sensor_tick(pg_instance, None)
    assert isinstance(result, dg.SkipReason) and posted_texts(alerts) == []

    # Even a lookback reaching further back no longer applies: the type has a storage id.
    state = json.loads(cursor)
    state["since"] -= 10 * FIRST_TICK_LOOKBACK_SECONDS
    report_event(pg_instance, failed_check("late_check"), 0)
    check_sensor_tick(pg_instance, json.dumps(state))
    (text,) = posted_texts(alerts)
    assert "late_check" in text
