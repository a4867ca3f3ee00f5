"""Operations: alerts to a webhook on failed runs and checks, and retention of old runs."""

import dagster as dg

from sync_assets.operations.alerts import (
    AlertWebhookResource,
    check_failure_alert_sensor,
    run_failure_alert_sensor,
)
from sync_assets.operations.retention import run_retention_job, run_retention_schedule

defs = dg.Definitions(
    jobs=[run_retention_job],
    schedules=[run_retention_schedule],
    sensors=[run_failure_alert_sensor, check_failure_alert_sensor],
    resources={"alert_webhook": AlertWebhookResource()},
)
