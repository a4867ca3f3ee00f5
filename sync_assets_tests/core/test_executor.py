"""The project's default executor runs steps in the run's process unless config asks otherwise."""

import gc

import dagster as dg
from dagster import DagsterEventType

from sync_assets.core.executor import (
    YOUNG_GENERATION_THRESHOLD,
    in_process_by_default_executor,
    objects_loaded_so_far_frozen,
)
from sync_assets.definitions import defs


@dg.op
def first() -> int:
    return 1


@dg.op
def second(value: int) -> int:
    return value + 1


@dg.job(executor_def=in_process_by_default_executor)
def two_steps() -> None:
    second(first())


def step_workers(instance: dg.DagsterInstance, run_config: dict) -> int:
    with dg.execute_job(
        dg.reconstructable(two_steps), instance=instance, run_config=run_config
    ) as result:
        assert result.success
        events = instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_WORKER_STARTING)
        return len(events)


def test_steps_run_in_process_by_default_and_multiprocess_on_request(pg_instance):
    assert step_workers(pg_instance, {}) == 0
    multiprocess = {"execution": {"config": {"multiprocess": {"max_concurrent": 2}}}}
    assert step_workers(pg_instance, multiprocess) == 2


def test_every_job_of_the_code_location_uses_it():
    # The one exception is opt-in: the stats tables as steps spread over Celery workers.
    opted_in = {"stats_refresh_celery_job": "celery_steps"}
    repository = defs.get_repository_def()
    for job in repository.get_all_jobs():
        expected = opted_in.get(job.name, "in_process_by_default")
        assert job.executor_def.name == expected, job.name


@dg.op
def collector_state(context: dg.OpExecutionContext) -> None:
    context.add_output_metadata(
        {"frozen": gc.get_freeze_count(), "young_threshold": gc.get_threshold()[0]}
    )


@dg.job(executor_def=in_process_by_default_executor)
def reports_collector_state() -> None:
    collector_state()


def test_objects_loaded_before_the_run_are_frozen_for_its_steps_only(pg_instance):
    before = gc.get_threshold()
    with dg.execute_job(dg.reconstructable(reports_collector_state), instance=pg_instance) as run:
        assert run.success
        [output] = [e for e in run.all_events if e.event_type_value == "STEP_OUTPUT"]
    seen = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    # Dagster and the definitions are out of the collector's sight while the step runs...
    assert seen["frozen"] > 10_000
    assert seen["young_threshold"] == YOUNG_GENERATION_THRESHOLD
    # ...and back in it afterwards, so a long-lived worker still collects them between runs.
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


def test_overlapping_runs_share_one_freeze_and_the_last_out_restores_the_collector():
    before = gc.get_threshold()
    first, second = objects_loaded_so_far_frozen(), objects_loaded_so_far_frozen()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    # The second run is still going: the objects stay frozen for it.
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold()[0] == YOUNG_GENERATION_THRESHOLD
    second.__exit__(None, None, None)
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
