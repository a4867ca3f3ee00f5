"""The eleven stats tables as one multi-asset: the club is copied once per step into DuckDB,
which computes the selected tables; each is then replaced in its own transaction, several at
once. A table that fails keeps its old rows and stops no other; the step then
fails naming it, and its retry (the retry policy) replaces only the tables still missing."""

import time
from collections.abc import Iterator

import dagster as dg
from dagster import DagsterEventType

from sync_assets.core.domain import asset_tags, check_metadata
from sync_assets.core.postgres import ensure_schema
from sync_assets.core.redaction import redact
from sync_assets.core.settings import MissingSettingError
from sync_assets.stats import computations
from sync_assets.stats.club_checks import CLUB_KEYS
from sync_assets.stats.computations import TABLES, ClubTablesMissingError
from sync_assets.stats.refresh import TableOutcome, refresh_tables
from sync_assets.stats.resources import ClubAppResource, Revalidation, StatsDatabase

RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
CACHE_CHECK = "cache_revalidated"


def table_spec(spec: computations.TableSpec) -> dg.AssetSpec:
    return dg.AssetSpec(
        spec.name,
        group_name="stats",
        kinds={"postgres", "sql"},
        description=spec.description,
        deps=CLUB_KEYS,
        metadata={"seed_function": spec.seed_function, "cache_tag": spec.cache_tag},
        tags=asset_tags(table=f"stats.{spec.name}"),
        skippable=True,
        # Refreshed when a club table's observed version moves (club_tables_sensor), as well as
        # by the app's queue.
        automation_condition=dg.AutomationCondition.eager(),
    )


def already_materialized(context: dg.AssetExecutionContext) -> set[str]:
    """Tables an earlier attempt of this step materialized in this run (nothing on the first)."""
    if not context.retry_number:
        return set()
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION, limit=1000
    ).records
    return {
        r.event_log_entry.dagster_event.asset_key.path[-1]  # type: ignore[union-attr]
        for r in records
        if r.event_log_entry.dagster_event and r.event_log_entry.dagster_event.asset_key
    }


def revalidation_checks(
    spec: computations.TableSpec, revalidation: Revalidation
) -> list[dg.AssetCheckResult]:
    """The `cache_revalidated` check of one table: a warning when the app refused the tag.
    Without an app nothing was sent, so the check is left unevaluated rather than passed."""
    if revalidation.status == "skipped":
        return []
    failed = revalidation.status == "failed"
    return [
        dg.AssetCheckResult(
            asset_key=spec.name,
            check_name=CACHE_CHECK,
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            metadata=revalidation.as_metadata(),
            description=(
                f"not revalidated after {revalidation.attempts} attempts: {revalidation.error}"
                if failed
                else None
            ),
        )
    ]


def table_result(
    context: dg.AssetExecutionContext,
    outcome: TableOutcome,
    stats_app: ClubAppResource,
    started: float,
) -> dg.MaterializeResult:
    """Report one committed table, after asking the app to revalidate its cache tag."""
    spec = computations.TABLES_BY_NAME[outcome.name]
    counts = outcome.counts
    assert counts is not None
    context.log.info(
        f"{spec.name}: {counts.rows} rows"
        f"{'' if counts.written else ' (unchanged, nothing written)'}"
        f" from {outcome.rows_used} player-match rows ({outcome.rows_left_out} left out)"
    )
    revalidation = stats_app.revalidate(
        [spec.cache_tag], f"{context.run.run_id}:{spec.name}", context.log
    )
    return dg.MaterializeResult(
        asset_key=spec.name,
        metadata={
            **counts.as_metadata(),
            "player_match_rows_used": outcome.rows_used,
            "player_match_rows_left_out": outcome.rows_left_out,
            **revalidation.as_metadata(),
            "seconds": round(time.monotonic() - started, 3),
        },
        check_results=revalidation_checks(spec, revalidation),
    )


@dg.multi_asset(
    name="stats_tables",
    specs=[table_spec(spec) for spec in TABLES],
    check_specs=[
        dg.AssetCheckSpec(
            CACHE_CHECK,
            asset=spec.name,
            description=f"The app accepted the cache tag `{spec.cache_tag}`.",
            metadata=check_metadata(domain="stats", table=f"stats.{spec.name}"),
        )
        for spec in TABLES
    ],
    can_subset=True,
    retry_policy=RETRY_POLICY,
)
def stats_tables(
    context: dg.AssetExecutionContext, stats_db: StatsDatabase, stats_app: ClubAppResource
) -> Iterator[dg.MaterializeResult]:
    """Each selected stats table, recomputed from one snapshot of the club's tables."""
    selected = {key.path[-1] for key in context.selected_asset_keys}
    yield from refresh_results(context, stats_db, stats_app, selected)


def refresh_results(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    stats_db: StatsDatabase,
    stats_app: ClubAppResource,
    selected: set[str],
) -> Iterator[dg.MaterializeResult]:
    """Refresh the selected tables not yet materialized by an earlier attempt of this step;
    a result per committed table, then a Failure naming the tables that were not replaced."""
    started = time.monotonic()
    names = [s.name for s in TABLES if s.name in selected - already_materialized(context)]
    try:
        stats_app.check_settings(context.log)
        ensure_schema(stats_db, computations.apply_schema)
        outcomes = refresh_tables(stats_db, names, connections=stats_db.refresh_connections)
        failed: dict[str, str] = {}
        for outcome in outcomes:
            if outcome.error is not None:
                failed[outcome.name] = redact(str(outcome.error).strip().splitlines()[0])[:300]
                context.log.error(f"{outcome.name}: not replaced: {failed[outcome.name]}")
                continue
            yield table_result(context, outcome, stats_app, started)
    except (MissingSettingError, ClubTablesMissingError) as exc:
        # Set-up mistakes: retrying cannot help, so the run says so at once.
        raise dg.Failure(
            description=f"{', '.join(names)}: {exc}",
            metadata={"failed_tables": dg.MetadataValue.json(dict.fromkeys(names, str(exc)))},
            allow_retries=False,
        ) from None
    if failed:
        raise dg.Failure(
            description="; ".join(f"{name}: {error}" for name, error in failed.items()),
            metadata={"failed_tables": dg.MetadataValue.json(failed)},
        )


STATS_ASSETS = [stats_tables]
