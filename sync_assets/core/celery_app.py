"""The Celery app run workers load: `celery -A sync_assets.core.celery_app worker ...`.

Only worker processes import this module, and they need the broker before anything else, so
it reads SYNC_ASSETS_BROKER_URL at import. Each worker imports the code location once, before
it forks its pool, so every run skips that import (the "warm" in warm workers).
"""

from __future__ import annotations

from celery.signals import worker_init

from sync_assets.core.broker import BROKER_SETTING
from sync_assets.core.celery_runs import make_run_app
from sync_assets.core.settings import require_setting

app = make_run_app(
    require_setting(BROKER_SETTING, "the Celery broker's URL, e.g. redis://127.0.0.1:6379/0")
)


@worker_init.connect
def import_code_location(**_: object) -> None:
    import sync_assets.definitions  # noqa: F401
