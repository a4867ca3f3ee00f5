"""Alerts go to a real HTTP webhook on loopback, built from a real Postgres-backed instance."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.events import DagsterEvent, DagsterEventType

from sync_assets.operations import alerts as alerts_module
from sync_assets.operations.alerts import (
    FIRST_TICK_LOOKBACK_SECONDS,
    AlertDeliveryError,
    AlertWebhookResource,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from sync_assets.sandbox import webhook
from sync_assets_tests.operations.conftest import posted_texts

LEAKED_KEY = "int-key-5f1c9a7e0b3d"


@dg.op
def call_provider() -> None:
    raise RuntimeError(f"provider refused the request (key {LEAKED_KEY})")


@dg.job(name="provider_job")
def provider_job() -> None:
    call_provider()


def fail_run(instance: dg.DagsterInstance) -> tuple[dg.DagsterRun, dg.DagsterEvent]:
    result = provider_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return run, failure


def alert_for_run(instance: dg.DagsterInstance, run: dg.DagsterRun, event: dg.DagsterEvent) -> None:
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert_sensor",
        dagster_event=event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alert_webhook": AlertWebhookResource()},
    ).for_run_failure()
    run_failure_alert_sensor(context)


def test_failed_run_posts_job_run_error_and_link(alerts, pg_instance, monkeypatch):
    monkeypatch.setenv("INTERNAL_API_KEY", LEAKED_KEY)
    run, failure = fail_run(pg_instance)

    alert_for_run(pg_instance, run, failure)

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


def test_without_a_webhook_nothing_is_sent(alerts, pg_instance, monkeypatch):
    monkeypatch.delenv("ALERT_WEBHOOK_URL")
    run, failure = fail_run(pg_instance)

    alert_for_run(pg_instance, run, failure)

    assert alerts.recorded() == []


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
    from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

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
