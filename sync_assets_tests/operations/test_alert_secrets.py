"""No secret reaches an alert, a log record or a sensor tick's error: the webhook's own path
included, and every secret setting the code reads or documents is in SECRET_SETTINGS."""

from __future__ import annotations

import ast
import logging
import re
import socket
import uuid

import dagster as dg
import pytest

from sync_assets.operations.alerts import (
    SECRET_SETTINGS,
    AlertDeliveryError,
    AlertWebhookResource,
    check_failure_alert_sensor,
)
from sync_assets.sandbox import webhook
from sync_assets_tests.dagster_internals import (
    SensorExecutionError,
    serializable_error_info_from_exc_info,
    user_code_error_boundary,
)
from sync_assets_tests.operations.conftest import posted_texts
from sync_assets_tests.processes import REPO

SETTING_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
SECRET_NAME = re.compile(r"(?:^|_)(?:DATABASE_URL|PG_URL|KEY|TOKEN|PASSWORD)$|SECRET")


def slack_path() -> tuple[str, str]:
    """A Slack-style webhook path and its token, fresh per test (redaction is process-wide)."""
    token = f"SuperSecretToken{uuid.uuid4().hex[:12]}"
    return f"/services/T0AAA/B0BBB/{token}", token


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "\n".join(record.getMessage() for record in caplog.records)


def test_an_unreachable_webhook_keeps_its_token_out_of_logs_and_errors(monkeypatch, caplog):
    path, token = slack_path()
    port = closed_port()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"http://127.0.0.1:{port}{path}")
    caplog.set_level(logging.DEBUG)

    with pytest.raises(AlertDeliveryError) as raised:
        AlertWebhookResource(max_retries=1, timeout_seconds=2).send("hello")

    assert str(raised.value) == (
        f"the alert webhook at 127.0.0.1:{port} (ALERT_WEBHOOK_URL) could not be reached "
        "(ConnectionError)"
    )
    assert raised.value.__cause__ is None and raised.value.__context__ is None
    assert any("Retrying" in record.getMessage() for record in caplog.records)
    assert token not in logged_text(caplog) and "B0BBB" not in logged_text(caplog)


def test_a_failing_check_sensor_tick_error_does_not_show_the_webhook_path(
    alerts, pg_instance, monkeypatch, caplog
):
    path, token = slack_path()
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{alerts.url}{webhook.PREFIX}{path}")
    alerts.faults.add(path=webhook.PREFIX, kind="drop", count=-1)
    pg_instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey("club_table"), check_name="has_rows", passed=False, blocking=True
        )
    )
    caplog.set_level(logging.DEBUG)
    context = dg.build_sensor_context(
        instance=pg_instance, resources={"alert_webhook": AlertWebhookResource(max_retries=1)}
    )

    # What the daemon stores as the tick's error and logs: the serialized exception chain.
    with pytest.raises(SensorExecutionError) as raised:
        with user_code_error_boundary(SensorExecutionError, lambda: "Error in sensor"):
            check_failure_alert_sensor(context)
    exc_info = (raised.type, raised.value, raised.tb)
    tick_error = serializable_error_info_from_exc_info(exc_info).to_string()

    assert "could not be reached" in tick_error and "127.0.0.1" in tick_error
    assert token not in tick_error and "B0BBB" not in tick_error
    assert token not in logged_text(caplog) and "B0BBB" not in logged_text(caplog)


def test_a_webhook_token_in_a_query_is_redacted_too(alerts, monkeypatch, caplog):
    token = f"query-token-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"{alerts.url}{webhook.PREFIX}/notify?token={token}")
    alerts.faults.add(path=webhook.PREFIX, kind="status", status=503, count=1)
    caplog.set_level(logging.DEBUG)

    assert AlertWebhookResource(max_retries=1).send(f"echo {token}") is True

    calls = alerts.recorded(webhook.PREFIX)
    assert [c["status"] for c in calls] == [503, 200]
    assert calls[-1]["query"] == {"token": token}  # the webhook got its token
    assert posted_texts(alerts) == ["echo [REDACTED]"] * 2
    assert token not in logged_text(caplog)


def settings_read_by_code() -> set[str]:
    """Every string constant in sync_assets/ shaped like a setting name."""
    names: set[str] = set()
    for path in (REPO / "sync_assets").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if SETTING_NAME.fullmatch(node.value):
                    names.add(node.value)
    return names


def settings_documented() -> set[str]:
    """Settings named in the README, docs/ and dagster.yaml (AWS_* are read by s3fs, not us)."""
    texts = [REPO / "README.md", *(REPO / "docs").glob("*.md")]
    names = {
        m for p in texts if p.exists() for m in re.findall(r"`([A-Z][A-Z0-9_]+)`", p.read_text())
    }
    names |= set(re.findall(r"env: ([A-Z][A-Z0-9_]+)", (REPO / "dagster.yaml").read_text()))
    return {name for name in names if SETTING_NAME.fullmatch(name)}


def test_every_secret_setting_is_redacted_from_alerts():
    secret_like = {
        n for n in settings_read_by_code() | settings_documented() if SECRET_NAME.search(n)
    }

    assert {"SPORTS_PROVIDER_API_KEY", "STEAM_API_KEY", "TORN_DATABASE_URL"} <= secret_like
    assert sorted(secret_like - set(SECRET_SETTINGS)) == []
    # URLs that can carry credentials without a secret-looking name.
    assert {"ALERT_WEBHOOK_URL", "OBJECT_STORAGE_URL", "DAGSTER_PG_URL"} <= set(SECRET_SETTINGS)
    assert len(set(SECRET_SETTINGS)) == len(SECRET_SETTINGS)


def test_secret_setting_values_are_masked_in_what_is_posted(alerts, monkeypatch):
    values = {}
    for name in SECRET_SETTINGS:
        if name != "ALERT_WEBHOOK_URL":
            values[name] = f"postgresql://sync:pw-{uuid.uuid4().hex[:10]}@db.internal:5432/{name}"
            monkeypatch.setenv(name, values[name])
    password = values["STATS_DATABASE_URL"].split(":")[2].split("@")[0]

    AlertWebhookResource().send("\n".join([*values.values(), f"password {password}"]))

    (text,) = posted_texts(alerts)
    assert text.count("[REDACTED]") == len(values) + 1
    assert not any(value in text for value in values.values()) and password not in text
