"""Whole runs inside long-lived Celery workers (dagster-celery's run launcher, adapted).

`deploy/dagster-celery.yaml` names `SyncAssetsCeleryRunLauncher`: dagster-celery's
`CeleryRunLauncher` with three changes.

- The queue comes from the run's `sync_assets/domain` tag through `domain_queues` (the
  rate-limited syncs share one queue) unless the run has a `dagster-celery/queue` tag.
- A broker that cannot be reached at launch fails the run with a message naming
  SYNC_ASSETS_BROKER_URL (host and port only: the URL may hold a password).
- Run monitoring asks the worker that started a run whether it is still there (a Celery
  ping): a worker killed mid-run leaves its task STARTED in the result backend forever, so the
  stock check would report it running until the end of time. A worker that does not answer
  is reported failed; the run is failed and `run_retries` launches it again on another worker.

Workers: `celery -A sync_assets.core.celery_app worker -Q <queues> -c 1 -n <name>@%h`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from celery import Celery
from dagster import Field, StringSource
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task, create_task
from kombu import Exchange, Queue

from sync_assets.core.broker import BROKER_SETTING
from sync_assets.core.dagster_internals import CheckRunHealthResult, WorkerStatus

DOMAIN_TAG = "sync_assets/domain"
DEFAULT_QUEUE = "dagster"
# The rate-limited syncs share one queue, so the workers serving it can be counted and placed.
DOMAIN_QUEUES: dict[str, str] = {
    "football": "rate_limited",
    "steam": "rate_limited",
    "torn": "rate_limited",
    "stats": "stats",
    "streams": "streams",
}
RUN_QUEUES = (DEFAULT_QUEUE, "rate_limited", "stats", "streams")
# Steps of a job on the celery_steps executor (core.celery_steps). A queue of their own: a run
# worker (-c 1) orchestrating such a run waits on its steps, so the steps need other workers.
STEP_QUEUE = "steps"
WORKER_QUEUES = (*RUN_QUEUES, STEP_QUEUE)
PING_TIMEOUT_SECONDS = 2.0


class BrokerUnavailableError(RuntimeError):
    """The Celery broker could not take the run."""


def broker_location(url: str) -> str:
    """host:port of a broker URL, without user or password."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def make_run_app(broker_url: str, queues: Sequence[str] = WORKER_QUEUES) -> Celery:
    """A Celery app with dagster-celery's run and step tasks and one topic-routed queue per name.

    dagster-celery routes a run to `<queue>.execute_job` and a step to `<queue>.execute_plan`;
    a topic exchange binding `<queue>.#` delivers them on Redis as on RabbitMQ.
    """
    app = Celery("sync_assets", broker=broker_url, backend=broker_url)
    exchange = Exchange("sync_assets_runs", type="topic")
    app.conf.update(
        task_queues=[Queue(name, exchange, routing_key=f"{name}.#") for name in queues],
        task_default_queue=DEFAULT_QUEUE,
        task_default_exchange="sync_assets_runs",
        task_default_exchange_type="topic",
        # A worker takes one run at a time and reserves none (Celery would otherwise hold one
        # more message while the run executes): a busy worker leaves the next run to an idle one.
        worker_prefetch_multiplier=1,
        worker_disable_prefetch=True,
        task_track_started=True,
        broker_connection_retry_on_startup=True,
        # Publishing gives up after about a second, so a launch against a dead broker fails
        # promptly instead of holding the run queue.
        broker_transport_options={"max_retries": 3, "interval_start": 0, "interval_step": 0.2},
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0, "interval_step": 0.2},
        broker_connection_timeout=3,
        redis_socket_timeout=5,
        redis_socket_connect_timeout=3,
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
    )
    create_execute_job_task(app)
    create_resume_job_task(app)
    create_task(app)  # execute_plan: one step of a run on the celery_steps executor
    return app


class SyncAssetsCeleryRunLauncher(CeleryRunLauncher):
    """dagster-celery's CeleryRunLauncher with queues per domain, a broker error that names
    its setting, and a health check that notices a dead worker."""

    def __init__(
        self,
        broker: str,
        default_queue: str = DEFAULT_QUEUE,
        domain_queues: Mapping[str, str] | None = None,
        inst_data: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            default_queue=default_queue, broker=broker, backend=broker, inst_data=inst_data
        )
        self.domain_queues = dict(DOMAIN_QUEUES if domain_queues is None else domain_queues)
        queues = {default_queue, *self.domain_queues.values(), *RUN_QUEUES}
        self.celery = make_run_app(broker, sorted(queues))

    @classmethod
    def config_type(cls) -> dict:
        return {
            "broker": Field(StringSource, description="Redis URL of the Celery broker."),
            "default_queue": Field(StringSource, is_required=False, default_value=DEFAULT_QUEUE),
            "domain_queues": Field(
                dict, is_required=False, description="sync_assets/domain tag value -> queue"
            ),
        }

    def _launch_celery_task_run(self, run, task_signature, routing_key) -> None:  # type: ignore[override]
        if DAGSTER_CELERY_QUEUE_TAG not in run.tags:
            queue = self.domain_queues.get(run.tags.get(DOMAIN_TAG, ""), self.default_queue)
            self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_QUEUE_TAG: queue})
            run = self._instance.get_run_by_id(run.run_id) or run
        try:
            super()._launch_celery_task_run(run, task_signature, routing_key)
        except Exception as exc:
            # kombu's own text names only "Connection refused"; this names the setting.
            message = (
                f"the Celery broker at {broker_location(self.broker or '')} ({BROKER_SETTING}) "
                f"did not take the run: {type(exc).__name__}: {exc}"
            )
        else:
            return
        from sync_assets.core.redaction import redact

        raise BrokerUnavailableError(redact(message.replace(self.broker or "\0", "<broker>")))

    def check_run_worker_health(self, run) -> CheckRunHealthResult:  # type: ignore[override]
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has no Celery task yet")
        try:
            result = self.celery.AsyncResult(task_id)
            state, info = result.state, result.info
        except Exception as exc:
            # Broker or backend away for a moment: not a verdict on the worker.
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"backend unreachable: {exc}")
        if state == "SUCCESS":
            return CheckRunHealthResult(WorkerStatus.SUCCESS)
        if state == "FAILURE":
            return CheckRunHealthResult(WorkerStatus.FAILED, "Celery task failed.")
        if state == "STARTED":
            hostname = info.get("hostname") if isinstance(info, dict) else None
            if hostname and not self._answers(hostname):
                return CheckRunHealthResult(
                    WorkerStatus.FAILED,
                    f"Celery worker {hostname} started this run and no longer answers",
                )
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        if state == "PENDING":
            # Queued in the broker, not yet taken by a worker: run monitoring's start timeout
            # covers a run no worker ever takes.
            return CheckRunHealthResult(WorkerStatus.RUNNING, "waiting for a worker")
        return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"Celery task state {state}")

    def _answers(self, hostname: str) -> bool:
        try:
            replies = self.celery.control.ping(destination=[hostname], timeout=PING_TIMEOUT_SECONDS)
        except Exception:
            return True  # the broker is unreachable: no verdict on the worker
        return any(hostname in reply for reply in replies)
