"""SQL for the steam schema: the catalog, the per-app batch, and recording a chunk of results."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import psycopg

from sync_assets.core.per_item import FAILED, SKIPPED, SUCCEEDED, ItemResult
from sync_assets.core.postgres import PostgresResource
from sync_assets.core.upsert import UpsertCounts, upsert_rows
from sync_assets.core.validation import validate_frame
from sync_assets.steam.parse import DETAIL_COLUMNS, Redirect

CATALOG_CHUNK = 20_000
# The Web API sometimes answers with a short or empty list; apps are delisted a few at a time.
MAX_UNLISTED_SHARE = 0.5


class ShrunkenCatalogError(RuntimeError):
    """The app list lacks too many known apps to be believed."""


BACKOFF_BASE = dt.timedelta(days=1)
BACKOFF_CAP = dt.timedelta(days=64)


def apply_schema(db: PostgresResource) -> None:
    db.apply_ddl(resources.files("sync_assets.steam").joinpath("schema.sql").read_text())


@dataclass
class CatalogCounts:
    listed: int = 0
    invalid: int = 0
    new: int = 0
    removed: int = 0
    returned: int = 0
    samples: list[dict[str, Any]] | None = None


def store_catalog(
    conn: psycopg.Connection, entries: Iterable[dict[str, Any]], seen_at: dt.datetime
) -> CatalogCounts:
    """Upsert the listed apps chunk by chunk; mark apps no longer listed (never delete them)."""
    import pandas as pd

    from sync_assets.steam.schemas import CatalogEntry

    counts = CatalogCounts(samples=[])
    returned = conn.execute(
        "SELECT count(*) FROM apps WHERE removed_from_catalog_at IS NOT NULL"
    ).fetchone()[0]  # type: ignore[index]
    iterator = iter(entries)
    while chunk := list(itertools.islice(iterator, CATALOG_CHUNK)):
        frame = pd.DataFrame(
            [(e.get("appid"), e.get("name") or "") for e in chunk if isinstance(e, dict)],
            columns=["appid", "name"],
        )
        counts.invalid += len(chunk) - len(frame)
        outcome = validate_frame(frame, CatalogEntry, name="app list")
        counts.listed += len(chunk)
        counts.invalid += outcome.invalid
        if outcome.samples and len(counts.samples) < 5:
            counts.samples.extend(outcome.samples[: 5 - len(counts.samples)])
        rows = (
            (int(appid), str(name), seen_at, None)
            for appid, name in outcome.valid[["appid", "name"]].itertuples(index=False)
        )
        written: UpsertCounts = upsert_rows(
            conn,
            "apps",
            ["appid", "name", "last_seen_at", "removed_from_catalog_at"],
            rows,
            ["appid"],
        )
        counts.new += written.inserted
    present = conn.execute(
        "SELECT count(*) FROM apps WHERE removed_from_catalog_at IS NULL AND last_seen_at < %s",
        (seen_at,),
    ).fetchone()[0]  # type: ignore[index]
    unlisted_share = present / max(1, present + counts.listed)
    if present and unlisted_share > MAX_UNLISTED_SHARE:
        raise ShrunkenCatalogError(
            f"the app list has {counts.listed} apps but {present} apps in the catalog are not"
            f" on it ({unlisted_share:.0%}); an outage answer rather than delistings, so"
            " nothing was written"
        )
    counts.removed = conn.execute(
        "UPDATE apps SET removed_from_catalog_at = %s"
        " WHERE last_seen_at < %s AND removed_from_catalog_at IS NULL",
        (seen_at, seen_at),
    ).rowcount
    still_removed = conn.execute(
        "SELECT count(*) FROM apps WHERE removed_from_catalog_at IS NOT NULL"
        " AND removed_from_catalog_at < %s",
        (seen_at,),
    ).fetchone()[0]  # type: ignore[index]
    counts.returned = returned - still_removed
    return counts


def select_batch(conn: psycopg.Connection, batch_size: int, max_errors: int) -> list[int]:
    """The next apps to fetch: never synced first, then the longest since their last sync.

    Apps that failed `max_errors` times in a row wait until their `next_attempt_after`.
    """
    rows = conn.execute(
        "SELECT a.appid FROM apps a LEFT JOIN app_sync_status s USING (appid)"
        " WHERE a.removed_from_catalog_at IS NULL"
        "   AND (coalesce(s.consecutive_errors, 0) < %(max)s"
        "        OR s.next_attempt_after IS NULL OR s.next_attempt_after <= now())"
        " ORDER BY s.last_synced_at ASC NULLS FIRST, coalesce(s.consecutive_errors, 0),"
        "   s.last_error_at ASC NULLS FIRST, a.appid"
        " LIMIT %(limit)s",
        {"max": max_errors, "limit": batch_size},
    ).fetchall()
    return [row[0] for row in rows]


def backoff_after(consecutive_errors: int, max_errors: int) -> dt.timedelta | None:
    """How long an app waits after its `consecutive_errors`-th failure in a row (None: no wait)."""
    if consecutive_errors < max_errors:
        return None
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (consecutive_errors - max_errors))


@dataclass
class ChunkOutcome:
    """What recording one chunk did (or, in a dry run, would do)."""

    details: UpsertCounts
    demoted: list[ItemResult[int]]
    invalid_samples: list[dict[str, Any]]
    removed: int = 0  # details rows dropped because the app's answer was another app's


def record_chunk(
    conn: psycopg.Connection, results: Sequence[ItemResult[int]], max_errors: int
) -> ChunkOutcome:
    """Write the chunk's details and every item's sync state, in the caller's transaction.

    A row that fails validation is not written and its app counts as failed. An app whose
    answer carries another app's data loses any details stored for it before.
    """
    import pandas as pd

    from sync_assets.steam.schemas import AppDetailsRow

    succeeded = [r for r in results if r.status == SUCCEEDED]
    frame = pd.DataFrame([r.value for r in succeeded], columns=list(DETAIL_COLUMNS))
    outcome = validate_frame(frame, AppDetailsRow, name="app details")
    valid_positions = set(outcome.valid.index)
    demoted: list[ItemResult[int]] = []
    for position, result in enumerate(succeeded):
        if position not in valid_positions:
            sample = next((s for s in outcome.samples if s.get("row") == position), None)
            why = f"invalid {sample['column']}: {sample['value']}" if sample else "invalid row"
            demoted.append(ItemResult.failed(result.item, f"store answer rejected: {why}"))
    rows = [tuple(succeeded[p].value[c] for c in DETAIL_COLUMNS) for p in sorted(valid_positions)]
    details = upsert_rows(conn, "app_details", DETAIL_COLUMNS, rows, ["appid"])

    demoted_ids = {r.item for r in demoted}
    done = [
        (r.item, r.reason if r.status == SKIPPED else None)
        for r in results
        if r.status in (SUCCEEDED, SKIPPED) and r.item not in demoted_ids
    ]
    failed = [(r.item, r.reason) for r in results if r.status == FAILED] + [
        (r.item, r.reason) for r in demoted
    ]
    redirected = [r.item for r in results if r.status == SKIPPED and isinstance(r.value, Redirect)]
    removed = (
        conn.execute("DELETE FROM app_details WHERE appid = ANY(%s)", (redirected,)).rowcount
        if redirected
        else 0
    )
    _record_done(conn, done)
    _record_failed(conn, failed, max_errors)
    return ChunkOutcome(
        details=details, demoted=demoted, invalid_samples=outcome.samples, removed=removed
    )


def _record_done(conn: psycopg.Connection, done: list[tuple[int, str | None]]) -> None:
    """Synced now: errors reset; a skip keeps its reason ("not available") as the last note."""
    if not done:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO app_sync_status AS s (appid, last_synced_at, consecutive_errors,"
            "  last_error, last_error_at, next_attempt_after)"
            " VALUES (%(appid)s, now(), 0, %(note)s::text, CASE WHEN %(note)s::text IS NULL THEN NULL"
            "  ELSE now() END, NULL)"
            " ON CONFLICT (appid) DO UPDATE SET last_synced_at = now(), consecutive_errors = 0,"
            "  last_error = EXCLUDED.last_error,"
            "  last_error_at = coalesce(EXCLUDED.last_error_at, s.last_error_at),"
            "  next_attempt_after = NULL",
            [{"appid": appid, "note": _skip_note(note)} for appid, note in done],
        )


def _skip_note(reason: str | None) -> str | None:
    return f"skipped: {reason}" if reason else None


def _record_failed(
    conn: psycopg.Connection, failed: list[tuple[int, str | None]], max_errors: int
) -> None:
    """One more error in a row; from `max_errors` on, wait out an exponential backoff."""
    if not failed:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO app_sync_status AS s (appid, consecutive_errors, last_error,"
            "  last_error_at, next_attempt_after)"
            " VALUES (%(appid)s, 1, %(error)s, now(), CASE WHEN 1 >= %(max)s::int"
            "  THEN now() + %(base)s END)"
            " ON CONFLICT (appid) DO UPDATE SET consecutive_errors = s.consecutive_errors + 1,"
            "  last_error = EXCLUDED.last_error, last_error_at = now(),"
            "  next_attempt_after = CASE WHEN s.consecutive_errors + 1 >= %(max)s"
            "   THEN now() + least(%(cap)s, %(base)s * power(2, s.consecutive_errors + 1 - %(max)s))"
            "   END",
            [
                {
                    "appid": appid,
                    "error": (error or "failed")[:1000],
                    "max": max_errors,
                    "base": BACKOFF_BASE,
                    "cap": BACKOFF_CAP,
                }
                for appid, error in failed
            ],
        )
