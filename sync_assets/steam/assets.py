"""The steam assets: the app catalog, then per-app store details fetched under the rate limit."""

import datetime as dt
import time

import dagster as dg
import psycopg
from pydantic import Field

from sync_assets.core.domain import asset_tags, check_metadata
from sync_assets.core.http import ApiError
from sync_assets.core.per_item import ItemResult, PerItemReport, StopBatch
from sync_assets.core.per_item_asset import (
    ChunkCommitter,
    ChunkWritten,
    end_canceled,
    run_items,
    was_canceled,
)
from sync_assets.core.postgres import PostgresResource, ensure_schema
from sync_assets.steam import tables
from sync_assets.steam.app_list import KEY_SETTING, LEGACY_SOURCE, AppListError, AppListReader
from sync_assets.steam.client import (
    STEAM_STORE_POOL,
    STEAM_WEB_API_POOL,
    SteamApiResource,
    SteamStoreResource,
    StoreBlockedError,
    StoreSession,
)
from sync_assets.steam.parse import MalformedDetails, parse_app_details, redirect_of

# steam_app_details depends on the catalog (the designed lineage), so a failed catalog skips it
# in steam_sync_job; the failure says how to keep details flowing meanwhile.
DETAILS_WITHOUT_CATALOG = (
    "steam_app_details does not run after a failed catalog; it works from the apps already in"
    " the catalog, so until this is fixed materialize it alone (UI: select steam_app_details, Materialize"
    " selected; CLI: dagster asset materialize -m sync_assets --select steam_app_details)"
)


class SteamCatalogConfig(dg.Config):
    dry_run: bool = Field(default=False, description="Download and count; write nothing.")


class SteamDetailsConfig(dg.Config):
    batch_size: int = Field(default=200, ge=1, description="Apps fetched in this run.")
    dry_run: bool = Field(
        default=False, description="Fetch and validate; write nothing; report what would change."
    )
    max_consecutive_errors: int = Field(
        default=5, ge=1, description="Errors in a row after which an app waits out a backoff."
    )
    rate_limit_requests: int | None = Field(
        default=None,
        ge=1,
        description="Store requests per period (default: STEAM_STORE_RATE_LIMIT, else 200).",
    )
    rate_limit_period_seconds: float | None = Field(
        default=None, gt=0, description="The period of the rate limit (default 300 s)."
    )
    concurrency: int = Field(default=8, ge=1, le=64, description="Apps in flight at once.")
    chunk_size: int = Field(default=100, ge=1, description="Apps committed per transaction.")
    progress_every: int = Field(default=100, ge=1, description="A run-log line every N apps.")


@dg.asset(
    group_name="steam",
    kinds={"python", "postgres"},
    tags=asset_tags(table="steam.apps", provider=STEAM_WEB_API_POOL),
    pool=STEAM_WEB_API_POOL,
)
def steam_app_catalog(
    context: dg.AssetExecutionContext,
    config: SteamCatalogConfig,
    steam_api: SteamApiResource,
    steam_db: PostgresResource,
) -> dg.MaterializeResult:
    """Every app the Steam Web API lists; apps that leave the list are kept and marked."""
    started = time.monotonic()
    ensure_schema(steam_db, tables.apply_schema)
    seen_at = dt.datetime.now(dt.UTC)
    reader = steam_api.app_list()
    if reader.report.source == LEGACY_SOURCE:
        context.log.warning(
            f"{KEY_SETTING} is not set: reading {LEGACY_SOURCE}, which Valve removed from"
            f" api.steampowered.com in November 2025 (only mirrors still serve it)"
        )
    try:
        with steam_db.connect() as conn:
            with conn.transaction(force_rollback=config.dry_run):
                counts = tables.store_catalog(conn, reader, seen_at)
    except (ApiError, tables.ShrunkenCatalogError) as exc:
        raise dg.Failure(
            f"{exc}. {DETAILS_WITHOUT_CATALOG}",
            metadata=_source_metadata(reader),
            allow_retries=not isinstance(exc, AppListError),
        ) from None
    finally:
        reader.close()
    total = _count(steam_db, "SELECT count(*) FROM apps WHERE removed_from_catalog_at IS NULL")
    context.log.info(
        f"app list ({reader.report.source}, {reader.report.pages} pages): {counts.listed} listed,"
        f" {counts.new} new, {counts.removed} removed, {counts.invalid} invalid"
        f"{' (dry run: nothing written)' if config.dry_run else ''}"
    )
    return dg.MaterializeResult(
        metadata={
            "dry_run": config.dry_run,
            "listed": counts.listed,
            "invalid": counts.invalid,
            "new": counts.new,
            "removed_from_catalog": counts.removed,
            "returned_to_catalog": counts.returned,
            "apps_in_catalog": total,
            "invalid_samples": dg.MetadataValue.json(counts.samples or []),
            **_source_metadata(reader),
            "seconds": round(time.monotonic() - started, 3),
        }
    )


def _source_metadata(reader: AppListReader) -> dict[str, object]:
    return {
        "app_list_source": reader.report.source,
        "app_list_pages": reader.report.pages,
        "requests": reader.client.stats.requests,
        "retries": reader.client.stats.retries,
    }


@dg.asset(
    group_name="steam",
    kinds={"python", "postgres"},
    deps=[steam_app_catalog],
    tags=asset_tags(table="steam.app_details", provider=STEAM_STORE_POOL),
    pool=STEAM_STORE_POOL,
)
def steam_app_details(
    context: dg.AssetExecutionContext,
    config: SteamDetailsConfig,
    steam_store: SteamStoreResource,
    steam_db: PostgresResource,
) -> dg.MaterializeResult:
    """Store details of the next batch of apps, fetched under the store's rate limit."""
    ensure_schema(steam_db, tables.apply_schema)
    requests, seconds = _rate_limit(config, steam_store)
    with steam_db.advisory_lock("steam_app_details"), steam_db.connect(autocommit=True) as conn:
        batch = tables.select_batch(conn, config.batch_size, config.max_consecutive_errors)
        context.log.info(
            f"{len(batch)} apps to fetch at {requests} requests per {seconds:g} s, "
            f"{config.concurrency} in flight{' (dry run)' if config.dry_run else ''}"
        )
        session = steam_store.session(requests, seconds, config.concurrency)
        committer = ChunkCommitter(
            conn,
            lambda conn, results: _record_chunk(conn, results, config.max_consecutive_errors),
            counts=("inserted", "updated", "unchanged", "removed"),
            dry_run=config.dry_run,
        )
        try:
            report = run_items(
                context,
                batch,
                lambda appid: _fetch(session, appid),
                committer,
                concurrency=config.concurrency,
                chunk_size=config.chunk_size,
                progress_every=config.progress_every,
                request_stats=session.stats,
                label="apps",
            )
        finally:
            session.close()
    metadata = _details_metadata(config, report, committer, len(batch), requests, seconds)
    if was_canceled(report):
        # The run was canceled (from the UI, or SIGTERM to the worker): record what was done,
        # then end the run canceled rather than successful.
        end_canceled(context, report, metadata, noun="apps", wrote=True)
    return dg.MaterializeResult(metadata=metadata)


def _record_chunk(
    conn: psycopg.Connection, results: list[ItemResult[int]], max_consecutive_errors: int
) -> ChunkWritten[int]:
    outcome = tables.record_chunk(conn, results, max_consecutive_errors)
    return ChunkWritten(
        {**outcome.details.as_metadata(), "removed": outcome.removed},
        outcome.demoted,
        outcome.invalid_samples,
    )


def _fetch(session: StoreSession, appid: int) -> ItemResult[int]:
    try:
        answer = session.app_details(appid)
    except StoreBlockedError as exc:
        raise StopBatch(str(exc)) from None
    if answer.not_available:
        return ItemResult.skipped(appid, answer.not_available)
    if redirect := redirect_of(appid, answer.data):
        return ItemResult.skipped(
            appid, f"not available (redirects to {redirect.target})", value=redirect
        )
    try:
        return ItemResult.succeeded(appid, parse_app_details(appid, answer.data))
    except MalformedDetails as exc:
        return ItemResult.failed(appid, str(exc))


def _rate_limit(config: SteamDetailsConfig, store: SteamStoreResource) -> tuple[int, float]:
    default_requests, default_seconds = store.default_rate_limit()
    return (
        config.rate_limit_requests or default_requests,
        config.rate_limit_period_seconds or default_seconds,
    )


def _details_metadata(
    config: SteamDetailsConfig,
    report: PerItemReport,
    committer: ChunkCommitter[int],
    batch: int,
    requests: int,
    seconds: float,
) -> dict[str, object]:
    prefix = "would_" if config.dry_run else ""
    return {
        "dry_run": config.dry_run,
        "batch": batch,
        **report.as_metadata(),
        "rate_limit": f"{requests} per {seconds:g} s",
        "limit_requests_per_second": round(requests / seconds, 3),
        **{f"{prefix}{key}": value for key, value in committer.written.items()},
        "invalid_samples": dg.MetadataValue.json(committer.samples),
    }


def _count(db: PostgresResource, query: str) -> int:
    with db.connect() as conn:
        return conn.execute(query).fetchone()[0]  # type: ignore[index]


@dg.asset_check(
    asset=steam_app_details,
    description="Every app marked synced has its row.",
    metadata=check_metadata(domain="steam", table="steam.app_details"),
)
def steam_synced_apps_have_details(steam_db: PostgresResource) -> dg.AssetCheckResult:
    """Apps recorded as synced (and not as unavailable) all have a row in app_details."""
    ensure_schema(steam_db, tables.apply_schema)
    missing = _count(
        steam_db,
        "SELECT count(*) FROM app_sync_status s LEFT JOIN app_details d USING (appid)"
        " WHERE s.last_synced_at IS NOT NULL AND s.last_error IS NULL AND d.appid IS NULL",
    )
    return dg.AssetCheckResult(passed=missing == 0, metadata={"synced_without_details": missing})
