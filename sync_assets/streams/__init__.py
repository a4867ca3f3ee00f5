"""The streams domain: source files -> mapped, hashed Parquet in the `streams` bucket.

Replaces the stream runner: each row of the app's `data_models` is a partition of
`stream_parquet`; `stream_sync_jobs_sensor` turns the app's `stream_sync_jobs` requests into runs
and writes their status back, `stream_source_sensor` syncs a model when its source object
changes, and `stream_sync_schedule` re-syncs every enabled model hourly. `stream_sync_all_job`
syncs every enabled model in one run (the demo runs it).
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.core.postgres import PostgresResource
from sync_assets.streams.assets import stream_parquet
from sync_assets.streams.jobs import (
    stream_source_sensor,
    stream_sync_all_job,
    stream_sync_canceled_sensor,
    stream_sync_failure_sensor,
    stream_sync_job,
    stream_sync_jobs_sensor,
    stream_sync_schedule,
)

DEMO_EXTRA_JOBS = ("stream_sync_all_job",)

defs = dg.Definitions(
    assets=[stream_parquet],
    jobs=[stream_sync_job, stream_sync_all_job],
    sensors=[
        stream_sync_jobs_sensor,
        stream_source_sensor,
        stream_sync_failure_sensor,
        stream_sync_canceled_sensor,
    ],
    schedules=[stream_sync_schedule],
    resources={
        "streams_db": PostgresResource(schema_name="streams", url_setting="STREAMS_DATABASE_URL"),
    },
)

DOMAIN = Domain(
    name="streams",
    defs=defs,
    settings=("STREAMS_DATABASE_URL", "OBJECT_STORAGE_URL"),
    secret_settings=("STREAMS_DATABASE_URL", "OBJECT_STORAGE_URL"),
    run_limit=2,
    demo_extra_jobs=DEMO_EXTRA_JOBS,
    sandbox="sync_assets.sandbox.streams",
)
