"""The torn domain: each user's Torn profile, synced hourly with the user's encrypted API key.

Replaces the user sync worker: `user_sync_job` (hourly via `user_sync_schedule`, never
overlapping itself) reads the app's `user_keys`, decrypts each key with `ENCRYPTION_KEY`, calls
the Torn API for the user's basic profile and upserts `torn.user_data`.
"""

import dagster as dg

from sync_assets.core.domain import Domain
from sync_assets.core.postgres import PostgresResource
from sync_assets.torn.assets import user_data
from sync_assets.torn.client import TORN_API_POOL, TornApiResource
from sync_assets.torn.jobs import user_sync_job, user_sync_schedule
from sync_assets.torn.keys import UserKeyCipherResource

defs = dg.Definitions(
    assets=[user_data],
    jobs=[user_sync_job],
    schedules=[user_sync_schedule],
    resources={
        "torn_db": PostgresResource(schema_name="torn", url_setting="TORN_DATABASE_URL"),
        "torn_api": TornApiResource(),
        "torn_keys": UserKeyCipherResource(),
    },
)

DOMAIN = Domain(
    name="torn",
    defs=defs,
    settings=(
        "TORN_DATABASE_URL",
        "TORN_API_BASE_URL",
        "ENCRYPTION_KEY",
        "USER_SYNC_MAX_RUNTIME_SECONDS",
    ),
    secret_settings=("TORN_DATABASE_URL", "ENCRYPTION_KEY"),
    pools={TORN_API_POOL: 1},
    sandbox="sync_assets.sandbox.torn",
)
