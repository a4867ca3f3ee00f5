"""Alerts go to a real HTTP webhook on loopback, built from a real Postgres-backed instance."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest

from sync_assets.operations.alerts import (
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
    assert "HTTP 404" in str(raised.value) and "ALERT_WEBHOOK_URL" in str(raised.value)
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
