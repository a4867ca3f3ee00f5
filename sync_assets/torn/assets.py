"""The torn asset: every user's basic profile, fetched with the user's own decrypted key."""

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any, Self

import dagster as dg
import psycopg
from pydantic import Field

from sync_assets.core.domain import asset_tags, check_metadata
from sync_assets.core.per_item import FAILED, SUCCEEDED, ItemResult, PerItemReport, StopBatch
from sync_assets.core.per_item_asset import (
    ChunkCommitter,
    ChunkWritten,
    end_canceled,
    record_materialization,
    run_items,
    was_canceled,
)
from sync_assets.core.postgres import PostgresResource, ensure_schema
from sync_assets.core.upsert import upsert_rows
from sync_assets.core.validation import validate_frame
from sync_assets.torn.client import (
    TORN_API_POOL,
    TornApiResource,
    TornSession,
    TornUnavailableError,
    UserFetchError,
)
from sync_assets.torn.keys import UserItem, UserKeyCipherResource, count_users, iter_user_items

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = (
    "user_id",
    "name",
    "player_id",
    "level",
    "gender",
    "status_state",
    "status_description",
)
FAILED_SHARE_CHECK = "failed_users_at_most_threshold"
USER_IDS_PER_REASON = 20


class UserSyncConfig(dg.Config):
    concurrency: int = Field(default=20, ge=1, le=200, description="Users fetched at once.")
    requests_per_second: float = Field(
        default=50.0, gt=0, description="Cap on Torn API requests per second, retries included."
    )
    chunk_size: int = Field(
        default=500,
        ge=1,
        description="Users committed per transaction (fetching pauses while a chunk commits).",
    )
    warn_failed_share: float = Field(
        default=0.10, ge=0, le=1, description="The warning check fails above this failed share."
    )
    fail_run_failed_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description=(
            "The run fails when this share of users (or more) failed or, after an early stop,"
            " was not reached; 1.0: all of them."
        ),
    )
    progress_every: int = Field(default=200, ge=1, description="A run-log line every N users.")


def apply_schema(db: PostgresResource) -> None:
    """Create torn.user_data (once per process and database: core.postgres.ensure_schema)."""
    ensure_schema(db, _create_tables)


def _create_tables(db: PostgresResource) -> None:
    db.apply_ddl(resources.files("sync_assets.torn").joinpath("schema.sql").read_text())


@dataclass
class FailureTally:
    """Failed users by reason: how many, the first user ids, and one example message."""

    reasons: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, user_id: str, reason_text: str | None) -> None:
        reason, _, message = (reason_text or "failed").partition(": ")
        entry = self.reasons.setdefault(reason, {"count": 0, "user_ids": [], "example": message})
        entry["count"] += 1
        if len(entry["user_ids"]) < USER_IDS_PER_REASON:
            entry["user_ids"].append(user_id)

    def add_committed(
        self, results: list[ItemResult[UserItem]], demoted: list[ItemResult[UserItem]]
    ) -> None:
        """Count the failed users of a committed chunk (a demoted result replaces its first)."""
        final = {r.item: r for r in results} | {r.item: r for r in demoted}
        for result in final.values():
            if result.status == FAILED:
                self.add(result.item.user_id, result.reason)

    def counts(self) -> dict[str, int]:
        return {reason: entry["count"] for reason, entry in sorted(self.reasons.items())}

    def summary(self) -> str:
        ordered = sorted(self.reasons.items(), key=lambda kv: -kv[1]["count"])
        return "; ".join(f"{r} {e['count']} ({e['example']})" for r, e in ordered[:5])


@dg.asset(
    group_name="torn",
    kinds={"python", "postgres"},
    tags=asset_tags(table="torn.user_data", provider=TORN_API_POOL),
    pool=TORN_API_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            FAILED_SHARE_CHECK,
            asset="user_data",
            description=(
                "No more than `warn_failed_share` (10%) of users failed to sync"
                " (or were not reached: Torn stopped the batch)."
            ),
            metadata=check_metadata(domain="torn", table="torn.user_data"),
        )
    ],
)
def user_data(
    context: dg.AssetExecutionContext,
    config: UserSyncConfig,
    torn_api: TornApiResource,
    torn_keys: UserKeyCipherResource,
    torn_db: PostgresResource,
) -> dg.MaterializeResult:
    """Each user's Torn profile, fetched with the user's own encrypted API key."""
    started = time.monotonic()
    aes_key = torn_keys.key()  # a missing or malformed ENCRYPTION_KEY fails here, in one line
    apply_schema(torn_db)
    sync = _sync_users(context, config, torn_api, torn_db, aes_key)
    verdict = _Verdict.of(config, sync.report, sync.total)
    metadata = _metadata(config, sync, verdict, started)
    _end_unless_done(context, sync, verdict, metadata)
    if sync.report.failed:
        context.log.warning(
            f"{sync.report.failed} of {sync.report.processed} users failed: {sync.tally.summary()}"
        )
    return dg.MaterializeResult(
        metadata=metadata, check_results=[_failed_share_check(config, sync, verdict)]
    )


@dataclass
class _UserSync:
    """One batch over every user: its report, the users it had, what it wrote and who failed."""

    report: PerItemReport
    total: int
    committer: ChunkCommitter[UserItem]
    tally: FailureTally
    session: TornSession


@dataclass(frozen=True)
class _Verdict:
    """How the batch went: the users not reached after Torn stopped it, the failed share."""

    blocked: bool  # Torn refused every key (StopBatch)
    not_reached: int
    considered: int
    failed_share: float
    too_many_failed: bool

    @classmethod
    def of(cls, config: UserSyncConfig, report: PerItemReport, total: int) -> Self:
        blocked = report.stopped_by == "fetch"
        # The users never reached after a block were not refreshed either.
        not_reached = max(total, report.processed) - report.processed if blocked else 0
        considered = report.processed + not_reached
        failed_share = (report.failed + not_reached) / considered if considered else 0.0
        too_many = considered > 0 and failed_share >= config.fail_run_failed_share
        return cls(blocked, not_reached, considered, failed_share, too_many)


def _sync_users(
    context: dg.AssetExecutionContext,
    config: UserSyncConfig,
    torn_api: TornApiResource,
    torn_db: PostgresResource,
    aes_key: bytes,
) -> _UserSync:
    """Fetch every user's profile and commit them in chunks on the writer connection; the
    users and their keys come lazily from a server-side cursor on the reader connection."""
    tally = FailureTally()
    with (
        torn_db.advisory_lock("user_data"),
        torn_db.connect(autocommit=True) as reader,
        torn_db.connect(autocommit=True) as writer,
    ):
        total = count_users(reader)
        context.log.info(
            f"{total} users to sync, {config.concurrency} at once, "
            f"at most {config.requests_per_second:g} requests/s"
        )
        session = torn_api.session(config.requests_per_second, config.concurrency)
        committer = ChunkCommitter(
            writer,
            _write_profiles,
            counts=("inserted", "updated", "unchanged"),
            after=tally.add_committed,
        )
        with contextlib.closing(iter_user_items(reader, aes_key)) as items:
            try:
                report = run_items(
                    context,
                    items,
                    lambda item: _fetch(session, item),
                    committer,
                    concurrency=config.concurrency,
                    chunk_size=config.chunk_size,
                    progress_every=config.progress_every,
                    request_stats=session.stats.http,
                    label="users",
                )
            finally:
                session.close()
    return _UserSync(report, total, committer, tally, session)


def _end_unless_done(
    context: dg.AssetExecutionContext,
    sync: _UserSync,
    verdict: _Verdict,
    metadata: dict[str, Any],
) -> None:
    """Raise when the run must not succeed: canceled, or too many users failed."""
    report = sync.report
    if was_canceled(report):
        context.log.warning(f"user_data stopped early: {report.stop_reason}")
        end_canceled(context, report, metadata, noun="users", wrote=report.succeeded > 0)
    if verdict.too_many_failed and report.succeeded:
        # The run will fail, but the users it fetched were written: record that they were.
        record_materialization(context, metadata)
    if verdict.blocked:
        context.log.warning(
            f"user_data stopped early: {report.stop_reason}; {verdict.not_reached} users not"
            " reached keep their last row until a later run"
        )
    if verdict.too_many_failed and verdict.blocked:
        raise dg.Failure(
            f"user_data stopped early ({report.stop_reason}):"
            f" {report.succeeded} of {verdict.considered} users refreshed",
            metadata=metadata,
            allow_retries=False,  # retrying at once would only knock on the ban again
        )
    if verdict.too_many_failed:
        everyone = (
            "every user"
            if report.failed == report.processed
            else f"{verdict.failed_share:.0%} of users"
        )
        raise dg.Failure(
            f"{everyone} failed ({report.failed} of {report.processed}): {sync.tally.summary()}",
            metadata=metadata,
        )


def _failed_share_check(
    config: UserSyncConfig, sync: _UserSync, verdict: _Verdict
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=FAILED_SHARE_CHECK,
        passed=verdict.failed_share <= config.warn_failed_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "failed": sync.report.failed,
            "not_reached": verdict.not_reached,
            "users": verdict.considered,
            "failed_share": round(verdict.failed_share, 4),
            "threshold": config.warn_failed_share,
            "failed_by_reason": dg.MetadataValue.json(sync.tally.counts()),
        },
    )


def _fetch(session: TornSession, item: UserItem) -> ItemResult[UserItem]:
    if item.problem is not None:
        return ItemResult.failed(item, item.problem)
    try:
        profile = session.basic_profile(item.key or "")
    except TornUnavailableError as exc:
        raise StopBatch(str(exc)) from None
    except UserFetchError as exc:
        return ItemResult.failed(item, f"{exc.reason}: {exc.message}")
    return ItemResult.succeeded(
        item,
        {
            "user_id": item.user_id,
            "name": profile.name,
            "player_id": profile.player_id,
            "level": profile.level,
            "gender": profile.gender,
            "status_state": profile.status_state,
            "status_description": profile.status_description,
        },
    )


def _write_profiles(
    conn: psycopg.Connection, results: Sequence[ItemResult[UserItem]]
) -> ChunkWritten[UserItem]:
    """Validate the chunk's profiles and upsert the valid ones (in the committer's transaction)."""
    import pandas as pd

    from sync_assets.torn.schemas import UserDataRow

    succeeded = [r for r in results if r.status == SUCCEEDED]
    frame = pd.DataFrame([r.value for r in succeeded], columns=list(COLUMNS))
    outcome = validate_frame(frame, UserDataRow, name="user profiles")
    valid = outcome.valid
    demoted: list[ItemResult[UserItem]] = []
    good_positions = set(valid.index)
    for position, result in enumerate(succeeded):
        if position not in good_positions:
            sample = next((s for s in outcome.samples if s.get("row") == position), None)
            why = f"{sample['column']} {sample['check']}" if sample else "invalid row"
            demoted.append(ItemResult.failed(result.item, f"invalid_profile: {why}"))
    samples = []
    for sample in outcome.samples:
        row = sample.get("row")
        user = succeeded[row].item.user_id if isinstance(row, int) else None
        samples.append({**sample, "user_id": user})
    counts = upsert_rows(conn, "user_data", COLUMNS, _rows(valid), ["user_id"])
    return ChunkWritten(counts.as_metadata(), demoted, samples)


def _rows(valid: "pd.DataFrame") -> list[tuple[Any, ...]]:
    """Validated rows as tuples in COLUMNS order: None for missing, ints for integer columns."""
    import pandas as pd

    frame = valid[list(COLUMNS)].astype(object)
    frame = frame.where(pd.notna(frame), None)
    integer = [c in ("player_id", "level") for c in COLUMNS]
    return [
        tuple(
            None if v is None else int(v) if is_int else str(v)
            for v, is_int in zip(row, integer, strict=True)
        )
        for row in frame.itertuples(index=False, name=None)
    ]


def _metadata(
    config: UserSyncConfig, sync: _UserSync, verdict: _Verdict, started: float
) -> dict[str, Any]:
    report = sync.report
    return {
        "users_total": sync.total,
        "users_succeeded": report.succeeded,
        "users_failed": report.failed,
        "users_not_reached": verdict.not_reached,
        "failed_by_reason": dg.MetadataValue.json(sync.tally.counts()),
        "failed_users": dg.MetadataValue.json(sync.tally.reasons),
        "processed": report.processed,
        "committed": report.committed,
        "requests": report.requests,
        "retries": report.retries,
        "error_code_retries": sync.session.stats.error_retries,
        "requests_per_second": round(report.requests_per_second, 3),
        "concurrency": config.concurrency,
        "rate_limit_per_second": config.requests_per_second,
        **sync.committer.written,
        "invalid_samples": dg.MetadataValue.json(sync.committer.samples),
        "stopped_early": report.stopped_early,
        "stop_reason": report.stop_reason or "",
        "seconds": round(time.monotonic() - started, 3),
    }
