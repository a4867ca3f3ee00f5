"""What the Celery tests share: Redis and the sandbox started on loopback, the settings pointing
at them in this process's environment (restored afterwards), the app tables seeded, and Celery
workers started from this virtual environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sync_assets.core.broker import BROKER_SETTING, LocalRedis
from sync_assets.sandbox.registry import build_sandbox, sandbox_environment, seed_app_tables
from sync_assets.sandbox.server import SandboxServer
from sync_assets_tests.conftest import create_database
from sync_assets_tests.processes import Processes, wait_for

SCALE = 0.2


@dataclass
class CeleryLoopback:
    redis: LocalRedis
    sandbox: SandboxServer
    env: dict[str, str]
    database_url: str


@contextmanager
def celery_loopback(server_url: str, instance_env: dict[str, str]) -> Iterator[CeleryLoopback]:
    """Redis, the sandbox and a fresh app database; `instance_env` plus their settings set in
    `os.environ` for the block (the test process orchestrates runs too)."""
    database_url = create_database(server_url)
    redis = LocalRedis().start()
    sandbox = build_sandbox(scale=SCALE).start()
    env = {
        **instance_env,
        "DATABASE_URL": database_url,
        BROKER_SETTING: redis.url,
        **sandbox_environment(sandbox.url),
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        seed_app_tables(SCALE)
        yield CeleryLoopback(redis, sandbox, env, database_url)
    finally:
        sandbox.stop()
        redis.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_worker(processes: Processes, name: str, queues: str) -> None:
    """A `celery -A sync_assets.core.celery_app worker` on `queues`, waited for until ready."""
    processes.start(
        name, "celery", "-A", "sync_assets.core.celery_app", "worker", "-Q", queues,
        "-c", "1", "-n", f"{name}@%h", "-l", "INFO", "--without-gossip", "--without-mingle",
    )  # fmt: skip
    wait_for(lambda: " ready." in processes.output(name), 120, f"worker {name} ready", every=0.5)
