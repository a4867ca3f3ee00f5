"""The eleven stats assets: each replaces one table in one transaction, then revalidates the
app's cache for it. They are independent: in a run they go in parallel, and one failing (then
retried by the retry policy) does not stop the others."""

import threading
import time

import dagster as dg
from psycopg import sql

from sync_assets.core.settings import MissingSettingError
from sync_assets.stats import computations
from sync_assets.stats.club_checks import CLUB_KEYS
from sync_assets.stats.computations import TABLES, ClubTablesMissingError, TableSpec
from sync_assets.stats.resources import ClubAppResource, StatsDatabase

RETRY_POLICY = dg.RetryPolicy(
    max_retries=2, delay=1.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)
CACHE_CHECK = "cache_revalidated"

_schema_applied: set[str] = set()
_schema_lock = threading.Lock()


def ensure_schema(db: StatsDatabase) -> None:
    """Apply the stats DDL once per database per process."""
    url = db.url()
    with _schema_lock:
        if url not in _schema_applied:
            computations.apply_schema(db)
            _schema_applied.add(url)


def refresh(db: StatsDatabase, spec: TableSpec) -> tuple[computations.RefreshCounts, int, int]:
    """Replace one table in one transaction; also the club rows used and left out."""
    ensure_schema(db)
    app = db.app_schema_name()
    with db.connect() as conn:
        with conn.transaction():
            used = computations.prepare_club_results(conn, app, sequence=spec.needs_sequence)
            total = conn.execute(
                sql.SQL("SELECT count(*) FROM {}.player_matches").format(sql.Identifier(app))
            ).fetchone()[0]  # type: ignore[index]
            counts = computations.replace_table(conn, spec, app)
    return counts, used, total - used


def build_stats_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """One asset per aggregate table."""

    @dg.asset(
        name=spec.name,
        group_name="stats",
        kinds={"postgres", "sql"},
        description=spec.description,
        deps=CLUB_KEYS,
        retry_policy=RETRY_POLICY,
        metadata={"seed_function": spec.seed_function, "cache_tag": spec.cache_tag},
        check_specs=[
            dg.AssetCheckSpec(
                CACHE_CHECK,
                asset=spec.name,
                description=f"The app accepted the cache tag `{spec.cache_tag}`.",
            )
        ],
    )
    def _asset(
        context: dg.AssetExecutionContext, stats_db: StatsDatabase, stats_app: ClubAppResource
    ) -> dg.MaterializeResult:
        started = time.monotonic()
        try:
            stats_app.check_settings()
            counts, used, left_out = refresh(stats_db, spec)
        except (MissingSettingError, ClubTablesMissingError) as exc:
            # Set-up mistakes: retrying cannot help, so the run says so at once.
            raise dg.Failure(description=str(exc), allow_retries=False) from None
        context.log.info(
            f"{spec.name}: {counts.rows} rows"
            f"{'' if counts.written else ' (unchanged, nothing written)'}"
            f" from {used} player-match rows ({left_out} left out)"
        )
        outcome = stats_app.revalidate(
            [spec.cache_tag], f"{context.run_id}:{spec.name}", context.log
        )
        metadata = {
            **counts.as_metadata(),
            "player_match_rows_used": used,
            "player_match_rows_left_out": left_out,
            **outcome.as_metadata(),
            "seconds": round(time.monotonic() - started, 3),
        }
        check = dg.AssetCheckResult(
            check_name=CACHE_CHECK,
            passed=outcome.status != "failed",
            severity=dg.AssetCheckSeverity.WARN,
            metadata=outcome.as_metadata(),
            description=(
                f"not revalidated after {outcome.attempts} attempts: {outcome.error}"
                if outcome.status == "failed"
                else None
            ),
        )
        return dg.MaterializeResult(metadata=metadata, check_results=[check])

    _asset.__doc__ = spec.description
    return _asset


STATS_ASSETS = [build_stats_asset(spec) for spec in TABLES]
