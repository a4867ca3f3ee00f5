"""The football assets: one step fetches `/countries` and `/leagues`, then writes all four tables
in one transaction, so a failure anywhere leaves the previous sync as it was."""

import datetime as dt
import time
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from sync_assets.core.domain import asset_tags, check_metadata
from sync_assets.core.http import ApiError
from sync_assets.core.postgres import LockBusyError, PostgresResource, ensure_schema
from sync_assets.core.redaction import redact
from sync_assets.core.settings import MissingSettingError
from sync_assets.core.validation import TooManyInvalidError
from sync_assets.football import tables, unchanged
from sync_assets.football.client import (
    API_FOOTBALL_POOL,
    BrokenBodyError,
    Download,
    FootballApiResource,
    ProviderAnswerError,
    ProviderKeyError,
    ProviderQuotaError,
    iter_items,
    iter_items_with_text,
    refuse_empty,
)

LOCK_NAME = "football_sync"
ENDPOINTS = ("countries", "leagues")
KINDS = {"python", "postgres"}
DESCRIPTIONS = {
    "countries": "Countries from API-Football's /countries (and any a league names).",
    "leagues": "Leagues and cups from API-Football's /leagues, each with its country.",
    "seasons": "Seasons of every league: year, start and end dates, current or not.",
    "season_coverage": "What API-Football covers for each season (fixtures, odds, ...).",
}
DEPS = {
    "countries": [],
    "leagues": ["countries"],
    "seasons": ["leagues"],
    "season_coverage": ["seasons"],
}


# The sync runs daily: a table not updated for 26 hours missed a day (warn), 50 hours two (fail).
FRESHNESS = dg.FreshnessPolicy.time_window(
    warn_window=dt.timedelta(hours=26), fail_window=dt.timedelta(hours=50)
)


class FootballSyncConfig(dg.Config):
    invalid_threshold: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Share of invalid items per table above which the run fails, writing nothing.",
    )
    lock_wait_seconds: float = Field(
        default=300,
        ge=0,
        description="How long to wait for another football sync on the same database.",
    )
    if_locked: str = Field(
        default="skip",
        pattern="^(skip|fail)$",
        description="After the wait: 'skip' (succeed, write nothing) or 'fail' the run.",
    )
    chunk_size: int = Field(default=1_000, ge=1, description="Leagues validated per batch.")


@dg.multi_asset(
    name="football_sync",
    specs=[
        dg.AssetSpec(
            name,
            description=DESCRIPTIONS[name],
            deps=DEPS[name],
            group_name="football",
            kinds=KINDS,
            skippable=True,
            freshness_policy=FRESHNESS,
            tags=asset_tags(table=f"football.{name}", provider=API_FOOTBALL_POOL),
        )
        for name in tables.TABLES
    ],
    can_subset=False,
    pool=API_FOOTBALL_POOL,
)
def football_sync(
    context: dg.AssetExecutionContext,
    config: FootballSyncConfig,
    football_api: FootballApiResource,
    football_db: PostgresResource,
) -> Iterator[dg.MaterializeResult]:
    """Countries, leagues, seasons and season coverage from API-Football, in one transaction."""
    started = time.monotonic()
    try:
        session = football_api.session()
    except MissingSettingError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from None
    lock_started = time.monotonic()
    try:
        with (
            session,
            football_db.advisory_lock(LOCK_NAME, wait_seconds=config.lock_wait_seconds),
        ):
            waited = time.monotonic() - lock_started
            # Under the lock: CREATE INDEX IF NOT EXISTS locks its table even when the index
            # exists, so DDL beside another sync's open transaction would wait for it.
            ensure_schema(football_db, tables.apply_schema)
            downloads = {name: session.download(name) for name in ENDPOINTS}
            context.log.info(
                f"downloaded /countries and /leagues ({downloads['leagues'].results} leagues "
                f"declared) in {session.stats.requests} requests"
            )
            previous = _previous_chunk_digests(context)
            while True:
                try:
                    writer, totals = _write_tables(
                        context, config, football_db, downloads, previous
                    )
                    break
                except BrokenBodyError as exc:
                    # Nothing was written (the transaction rolled back): fetch that body again.
                    broken = downloads[exc.endpoint or "leagues"]
                    downloads[broken.endpoint] = session.refetch(broken, exc)
            for download in downloads.values():
                for warning in download.count_warnings():
                    context.log.warning(warning)
    except LockBusyError as exc:
        message = f"another football sync is running on this database: {exc}"
        if config.if_locked == "fail":
            raise dg.Failure(message, allow_retries=False) from None
        context.log.warning(f"skipped, nothing written: {message}")
        return
    except (ProviderKeyError, ProviderQuotaError, ProviderAnswerError, TooManyInvalidError) as e:
        raise dg.Failure(redact(str(e)), allow_retries=False) from None
    except ApiError as exc:
        raise dg.Failure(
            f"API-Football could not be read: {exc}; the tables were left as they were",
            allow_retries=exc.retryable,
        ) from None

    run = {
        "requests": session.stats.requests,
        "retries": session.stats.retries,
        "rate_limit_waits": session.rate_limit_waits,
        "seconds": round(time.monotonic() - started, 3),
        "lock_wait_seconds": round(waited, 3),
        "provider_requests_remaining_today": _int_or_none(
            session.limits.get("x-ratelimit-requests-remaining")
        ),
    }
    for table in tables.TABLES:
        report = writer.report.tables[table]
        chunks = {}
        if table == "leagues":
            chunks = {
                "chunks_unchanged_skipped": writer.digests.skipped,
                "answer_unchanged_not_parsed": writer.digests.answer_unchanged,
                unchanged.METADATA_KEY: dg.MetadataValue.json(writer.digests.as_metadata()),
            }
        yield dg.MaterializeResult(
            asset_key=table,
            metadata={
                **report.as_metadata(),
                "rows_in_table": totals[table],
                "invalid_samples": dg.MetadataValue.json(report.samples),
                **chunks,
                **{k: v for k, v in run.items() if v is not None},
            },
        )


def _previous_chunk_digests(context: dg.AssetExecutionContext) -> unchanged.ChunkDigests | None:
    """What the last successful sync recorded about its chunks of leagues."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("leagues"))
    materialization = event.asset_materialization if event else None
    recorded = materialization.metadata.get(unchanged.METADATA_KEY) if materialization else None
    return unchanged.ChunkDigests.from_metadata(recorded.value if recorded else None)


def _write_tables(
    context: dg.AssetExecutionContext,
    config: FootballSyncConfig,
    football_db: PostgresResource,
    downloads: dict[str, Download],
    previous: unchanged.ChunkDigests | None,
) -> tuple[tables.FootballWriter, dict[str, int]]:
    """Parse both answers and write the four tables in one transaction; their row counts."""
    leagues = downloads["leagues"]
    with football_db.transaction() as conn:
        writer = tables.FootballWriter(
            conn,
            threshold=config.invalid_threshold,
            chunk_size=config.chunk_size,
            progress=context.log.debug,
            previous=previous,
        )
        writer.write_countries(iter_items(downloads["countries"]))
        answer = unchanged.answer_digest(leagues.pages)
        writer.write_leagues_or_count_unchanged(
            iter_items_with_text(leagues), leagues.results or 0, answer
        )
        if writer.report.tables["leagues"].fetched == 0:
            refuse_empty(leagues)
        writer.check()
        return writer, tables.table_counts(conn)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# (check name, description, query counting offending rows, or rows when it must be > 0)
CHECK_QUERIES: dict[str, list[tuple[str, str, str]]] = {
    "countries": [
        ("countries_not_empty", "The table has rows.", "SELECT count(*) FROM countries"),
        (
            "countries_slugs_unique",
            "No two countries share a slug.",
            "SELECT count(*) FROM (SELECT slug FROM countries GROUP BY slug HAVING count(*) > 1) d",
        ),
    ],
    "leagues": [
        ("leagues_not_empty", "The table has rows.", "SELECT count(*) FROM leagues"),
        (
            "leagues_slugs_unique",
            "No two leagues share a slug.",
            "SELECT count(*) FROM (SELECT slug FROM leagues GROUP BY slug HAVING count(*) > 1) d",
        ),
        (
            "leagues_country_exists",
            "Every league's country_id is a country.",
            "SELECT count(*) FROM leagues l LEFT JOIN countries c ON c.id = l.country_id"
            " WHERE c.id IS NULL",
        ),
    ],
    "seasons": [
        ("seasons_not_empty", "The table has rows.", "SELECT count(*) FROM seasons"),
        (
            "seasons_league_exists",
            "Every season's league_id is a league.",
            "SELECT count(*) FROM seasons s LEFT JOIN leagues l ON l.id = s.league_id"
            " WHERE l.id IS NULL",
        ),
    ],
    "season_coverage": [
        (
            "season_coverage_not_empty",
            "The table has rows.",
            "SELECT count(*) FROM season_coverage",
        ),
        (
            "season_coverage_season_exists",
            "Every coverage row's season_id is a season.",
            "SELECT count(*) FROM season_coverage v LEFT JOIN seasons s ON s.id = v.season_id"
            " WHERE s.id IS NULL",
        ),
    ],
}
CHECK_SPECS = [
    dg.AssetCheckSpec(
        name,
        asset=table,
        description=description,
        metadata=check_metadata(domain="football", table=f"football.{table}"),
    )
    for table, checks in CHECK_QUERIES.items()
    for name, description, _ in checks
]


@dg.multi_asset_check(specs=CHECK_SPECS, can_subset=True, name="football_table_checks")
def football_table_checks(
    context: dg.AssetCheckExecutionContext, football_db: PostgresResource
) -> Iterator[dg.AssetCheckResult]:
    """Tables not empty, slugs unique, and every foreign key pointing at an existing row."""
    ensure_schema(football_db, tables.apply_schema)
    selected = context.selected_asset_check_keys
    with football_db.connect() as conn:
        for table, checks in CHECK_QUERIES.items():
            for name, _, query in checks:
                if dg.AssetCheckKey(dg.AssetKey(table), name) not in selected:
                    continue
                count = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
                if name.endswith("_not_empty"):
                    passed, metadata = count > 0, {"rows": count}
                else:
                    passed, metadata = count == 0, {"offending_rows": count}
                yield dg.AssetCheckResult(
                    asset_key=table, check_name=name, passed=passed, metadata=metadata
                )
