"""The code location the daemon test loads: the real one, plus a test-only schedule that runs
user_sync_schedule's own evaluation every minute instead of every hour."""

import dagster as dg

from sync_assets import definitions
from sync_assets.torn.jobs import user_sync_job, user_sync_schedule


@dg.schedule(
    name="user_sync_every_minute",
    job=user_sync_job,
    cron_schedule="* * * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def user_sync_every_minute(context: dg.ScheduleEvaluationContext):
    return user_sync_schedule(context)


defs = dg.Definitions.merge(definitions.defs, dg.Definitions(schedules=[user_sync_every_minute]))
