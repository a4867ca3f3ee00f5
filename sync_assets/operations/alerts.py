"""Alerts: a failed run, or a failed freshness or blocking check, posts one short message to a
Slack-compatible webhook (`ALERT_WEBHOOK_URL`). Without the setting nothing is sent.

The messages are built from what the run wrote to Dagster's event storage (already redacted by
the run), and redacted once more here with every secret setting this process can see.
"""

import json
import time
from collections.abc import Callable, Sequence
from urllib.parse import SplitResult, parse_qsl, quote, urlsplit

import dagster as dg
import requests
from dagster import DagsterEventType, EventLogRecord, EventRecordsFilter

from sync_assets.core.dagster_internals import (
    WILL_RETRY_TAG,
    FreshnessState,
    FreshnessStateChange,
    SerializableErrorInfo,
)
from sync_assets.core.http import ApiClient
from sync_assets.core.redaction import redact, register_secret, register_secret_settings
from sync_assets.core.settings import optional_setting

# Settings whose values must never reach an alert, whichever domain put them in an error
# (sync_assets_tests/operations/test_alert_secrets.py fails when one the code reads is missing).
SECRET_SETTINGS = (
    "ALERT_WEBHOOK_URL",
    "SPORTS_PROVIDER_API_KEY",
    "INTERNAL_API_KEY",
    "STEAM_API_KEY",
    "ENCRYPTION_KEY",
    "DATABASE_URL",
    "FOOTBALL_DATABASE_URL",
    "STATS_DATABASE_URL",
    "STEAM_DATABASE_URL",
    "STREAMS_DATABASE_URL",
    "TORN_DATABASE_URL",
    "DAGSTER_PG_URL",
    "OBJECT_STORAGE_URL",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
SUMMARY_LIMIT = 400
# Failures older than this are not announced by an alert sensor that starts without a cursor.
FIRST_TICK_LOOKBACK_SECONDS = 3600
RECORDS_PER_TICK = 200
# Cursor key holding where the lookback started (the other keys are event types' storage ids).
SINCE = "since"
# A path segment this long is taken for a token (Slack's and Discord's are 24 and 68 characters).
TOKEN_SEGMENT_LENGTH = 16
WATCHED_EVENTS = (
    DagsterEventType.ASSET_CHECK_EVALUATION,
    DagsterEventType.FRESHNESS_STATE_CHANGE,
)
ALERTING_FRESHNESS = (FreshnessState.WARN, FreshnessState.FAIL)


class AlertDeliveryError(RuntimeError):
    """The webhook refused or could not take the alert."""


class AlertWebhookResource(dg.ConfigurableResource):
    """Posts `{"text": ...}` to the webhook named by `ALERT_WEBHOOK_URL` (Slack-compatible)."""

    url_setting: str = "ALERT_WEBHOOK_URL"
    ui_url_setting: str = "DAGSTER_UI_URL"
    default_ui_url: str = "http://127.0.0.1:3000"
    timeout_seconds: float = 10.0
    max_retries: int = 3

    def configured(self) -> bool:
        return optional_setting(self.url_setting) is not None

    def ui_link(self, path: str) -> str:
        base = optional_setting(self.ui_url_setting, self.default_ui_url) or ""
        return f"{base.rstrip('/')}/{path.lstrip('/')}"

    def send(self, text: str) -> bool:
        """Post one message; False when no webhook is configured, AlertDeliveryError if refused."""
        url = optional_setting(self.url_setting)
        if url is None:
            return False
        register_secret_settings(self.url_setting, *SECRET_SETTINGS)
        parts = urlsplit(url)
        register_secret(*webhook_secrets(parts))
        webhook = f"the alert webhook at {parts.netloc.rpartition('@')[2]} ({self.url_setting})"
        client = ApiClient(
            f"{parts.scheme}://{parts.netloc}",
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            max_retries=self.max_retries,
            backoff_factor=0.5,
        )
        failure: str | None = None
        try:
            response = client.session.post(url, json={"text": redact(text)}, timeout=client.timeout)
        except requests.RequestException as exc:
            # Only the class: requests' message repeats the URL. Raised outside the except
            # block so no chained exception carries it either.
            failure = f"{webhook} could not be reached ({type(exc).__name__})"
        finally:
            client.close()
        if failure is not None:
            raise AlertDeliveryError(failure)
        if response.status_code >= 300:
            raise AlertDeliveryError(f"{webhook} answered HTTP {response.status_code}")
        return True


def webhook_secrets(parts: SplitResult) -> list[str]:
    """The parts of a webhook URL that are its credential: Slack's and Discord's path is the token."""
    path = parts.path.rstrip("/")
    segments = [s for s in path.split("/") if s]
    secrets = [path, parts.query, f"{path}?{parts.query}" if parts.query else ""]
    if len(segments) > 1:
        secrets.append("/" + "/".join(segments[1:]))
    secrets += [s for s in segments if len(s) >= TOKEN_SEGMENT_LENGTH]
    secrets += [value for _, value in parse_qsl(parts.query)]
    return [s for s in secrets if s]


def error_summary(error: SerializableErrorInfo | None) -> str:
    """`ErrorClass: first line` of the innermost cause (the user's error, not Dagster's wrapper)."""
    if error is None:
        return ""
    while error.cause is not None:
        error = error.cause
    first_line = (error.message or "").strip().splitlines()[0] if error.message else ""
    if first_line.startswith(f"{error.cls_name}:"):
        return first_line
    return f"{error.cls_name}: {first_line}" if error.cls_name else first_line


def run_failure_text(
    instance: dg.DagsterInstance, run: dg.DagsterRun, fallback: str, link: str
) -> str:
    """Job, run id, what failed and a link to the run."""
    failures = []
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE):
        event = entry.dagster_event
        if event is None:
            continue
        failures.append(f"{event.step_key}: {error_summary(event.step_failure_data.error)}")
    summary = "\n".join(failures) or fallback
    if len(summary) > SUMMARY_LIMIT:
        summary = summary[: SUMMARY_LIMIT - 1] + "…"
    return f":red_circle: {run.job_name} failed (run {run.run_id})\n{summary}\n{link}"


def run_failure_alert_text(
    instance: dg.DagsterInstance, record: EventLogRecord, webhook: AlertWebhookResource
) -> str | None:
    """The alert a run's failure event deserves, or None when the run was deleted or will be
    retried (run_retries starts it again: the last attempt's failure is the one announced)."""
    entry = record.event_log_entry
    run = instance.get_run_by_id(entry.run_id)
    if run is None or run.tags.get(WILL_RETRY_TAG) == "true":
        return None
    message = entry.dagster_event.message if entry.dagster_event else None
    return run_failure_text(
        instance,
        run,
        fallback=message or "the run failed",
        link=webhook.ui_link(f"runs/{run.run_id}"),
    )


def from_run_status_cursor(cursor: str | None) -> str | None:
    """This sensor's cursor, also from the one it had as a Dagster run-failure sensor."""
    state = json.loads(cursor) if cursor else None
    if not isinstance(state, dict) or "record_id" not in state:
        return cursor
    # That cursor is the storage id of the last failure it announced: carrying it over keeps a
    # deploy from announcing the lookback window's failures a second time.
    return json.dumps({DagsterEventType.RUN_FAILURE.value: state["record_id"]})


# A plain sensor rather than a run-failure sensor: that one moves its cursor past a run even
# when the alert for it raised, so an outage of the webhook would lose the alert.
@dg.sensor(
    name="run_failure_alert_sensor",
    description="Posts a failed run's job, id, error and link to ALERT_WEBHOOK_URL.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
def run_failure_alert_sensor(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource
) -> dg.SkipReason | None:
    cursor = from_run_status_cursor(context.cursor)
    if cursor != context.cursor:
        context.update_cursor(cursor)
    sent = send_unread_alerts(
        context,
        (DagsterEventType.RUN_FAILURE,),
        lambda record: run_failure_alert_text(context.instance, record, alert_webhook),
        alert_webhook,
    )
    return None if sent else dg.SkipReason("no failed runs")


def is_alerting_failure(evaluation: dg.AssetCheckEvaluation) -> bool:
    """A failed check alerts when it is blocking, an ERROR, or a freshness check."""
    if evaluation.passed:
        return False
    return (
        bool(evaluation.blocking)
        or evaluation.severity == dg.AssetCheckSeverity.ERROR
        or "freshness" in evaluation.check_name
    )


def check_failure_text(evaluation: dg.AssetCheckEvaluation, run_id: str, link: str) -> str:
    """Which check of which asset failed, how badly, why, and a link to the asset's checks."""
    kind = "blocking check" if evaluation.blocking else "check"
    severity = evaluation.severity.value if evaluation.severity else "ERROR"
    description = (evaluation.description or "").strip()
    if len(description) > SUMMARY_LIMIT:
        description = description[: SUMMARY_LIMIT - 1] + "…"
    lines = [
        f":warning: {kind} {evaluation.asset_key.to_user_string()} / {evaluation.check_name} "
        f"failed ({severity}, run {run_id})",
        description,
        link,
    ]
    return "\n".join(line for line in lines if line)


def freshness_change_text(change: FreshnessStateChange, link: str) -> str:
    return (
        f":warning: {change.key.to_user_string()} is {change.new_state.value} against its "
        f"freshness policy (was {change.previous_state.value})\n{link}"
    )


def alert_text_for(record: EventLogRecord, webhook: AlertWebhookResource) -> str | None:
    """The alert a check evaluation or freshness change deserves, or None."""
    entry = record.event_log_entry
    data = entry.dagster_event.event_specific_data if entry.dagster_event else None
    if isinstance(data, dg.AssetCheckEvaluation) and is_alerting_failure(data):
        return check_failure_text(data, entry.run_id, webhook.ui_link(asset_path(data.asset_key)))
    if isinstance(data, FreshnessStateChange) and data.new_state in ALERTING_FRESHNESS:
        return freshness_change_text(data, webhook.ui_link(asset_path(data.key)))
    return None


def asset_path(key: dg.AssetKey) -> str:
    return "assets/" + "/".join(quote(part, safe="") for part in key.path) + "?view=checks"


@dg.sensor(
    name="check_failure_alert_sensor",
    description="Posts failed freshness and blocking asset checks to ALERT_WEBHOOK_URL.",
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=60,
)
def check_failure_alert_sensor(
    context: dg.SensorEvaluationContext, alert_webhook: AlertWebhookResource
) -> dg.SkipReason | None:
    sent = send_unread_alerts(
        context, WATCHED_EVENTS, lambda record: alert_text_for(record, alert_webhook), alert_webhook
    )
    return None if sent else dg.SkipReason("no failed freshness or blocking checks")


def send_unread_alerts(
    context: dg.SensorEvaluationContext,
    event_types: Sequence[DagsterEventType],
    text_for: Callable[[EventLogRecord], str | None],
    webhook: AlertWebhookResource,
) -> int:
    """Post the alerts of the records after the sensor's cursor, then move it; how many went out."""
    cursors = json.loads(context.cursor) if context.cursor else {}
    # Kept in the cursor: an event type without a storage id yet is read from here on every
    # tick, never from the beginning of history.
    since = cursors.setdefault(SINCE, time.time() - FIRST_TICK_LOOKBACK_SECONDS)
    # Without a webhook the records are still read, so setting one later announces no backlog.
    configured = webhook.configured()
    sent = 0
    for event_type in event_types:
        records, start = unread_records(
            context.instance, event_type, cursors.get(event_type.value), since
        )
        for record in records:
            text = text_for(record) if configured else None
            if text is not None:
                webhook.send(text)
                sent += 1
        if records:
            start = records[-1].storage_id
        if start is not None:
            # Moved only after every alert of the batch went out: a send that raises fails the
            # tick, the daemon keeps the previous cursor, and the next tick sends them again.
            cursors[event_type.value] = start
        context.update_cursor(json.dumps(cursors, sort_keys=True))
    return sent


def unread_records(
    instance: dg.DagsterInstance, event_type: DagsterEventType, after: int | None, since: float
) -> tuple[list[EventLogRecord], int | None]:
    """The next page of `event_type` records, and where the cursor goes if the page is empty."""
    storage = instance.event_log_storage
    if after is not None:
        page = storage.get_event_records(
            EventRecordsFilter(event_type=event_type, after_cursor=after),
            limit=RECORDS_PER_TICK,
            ascending=True,
        )
        return list(page), after
    # Without a storage id yet, only records newer than `since` count; if there are none the
    # cursor starts at the newest one, looked up first so a record stored meanwhile is not skipped.
    newest = storage.get_event_records(EventRecordsFilter(event_type=event_type), limit=1)
    page = storage.get_event_records(
        EventRecordsFilter(event_type=event_type, after_timestamp=since),
        limit=RECORDS_PER_TICK,
        ascending=True,
    )
    return list(page), newest[0].storage_id if newest else None


__all__ = [
    "AlertDeliveryError",
    "AlertWebhookResource",
    "check_failure_alert_sensor",
    "run_failure_alert_sensor",
]
