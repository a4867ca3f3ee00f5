"""The Dagster side of a per-item asset (steam_app_details, user_data), written once.

`run_per_item` knows nothing of Dagster; an asset body built on it needs the same few things
around it, and they live here::

    committer = ChunkCommitter(conn, write_chunk, counts=("inserted", "updated"))
    report = run_items(context, items, fetch, committer, request_stats=..., label="apps", ...)
    metadata = {**report.as_metadata(), **committer.written, ...}
    if was_canceled(report):
        end_canceled(context, report, metadata, noun="apps", wrote=report.committed > 0)
    return dg.MaterializeResult(metadata=metadata)

`write_chunk(conn, results)` writes one chunk in the transaction `ChunkCommitter` opens and
returns a `ChunkWritten`. The run's cancel request (the UI's Terminate marks the run CANCELING)
is polled between chunks; an interrupt (SIGTERM/SIGINT to the run worker) stops the batch too.
Either way the committed chunks stay, a materialization records them, and the run ends
CANCELED.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

import dagster as dg
import psycopg
from dagster import DagsterRunStatus

from sync_assets.core.per_item import ItemResult, PerItemReport, RequestStats, run_per_item

STOPPING = (DagsterRunStatus.CANCELING, DagsterRunStatus.CANCELED)
SAMPLES_KEPT = 5


@dataclass(frozen=True)
class ChunkWritten[T]:
    """What writing one chunk did: row counts to sum, results demoted to failed (e.g. rows that
    failed validation), and samples of the invalid rows."""

    counts: Mapping[str, int]
    demoted: list[ItemResult[T]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)


class ChunkCommitter[T]:
    """`commit` for `run_per_item`: each chunk written in one transaction on `conn`.

    Sums the chunks' counts in `written` (starting from zero for each name in `counts`) and keeps
    the first invalid-row samples. `dry_run` rolls every transaction back: the counts then say
    what would have been written. `after(results, demoted)` runs once a chunk is committed.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        write: Callable[[psycopg.Connection, list[ItemResult[T]]], ChunkWritten[T]],
        *,
        counts: Iterable[str],
        dry_run: bool = False,
        after: Callable[[list[ItemResult[T]], list[ItemResult[T]]], None] | None = None,
    ) -> None:
        self.conn = conn
        self.write = write
        self.dry_run = dry_run
        self.after = after
        self.written: dict[str, int] = dict.fromkeys(counts, 0)
        self.samples: list[dict[str, Any]] = []

    def __call__(self, results: list[ItemResult[T]]) -> list[ItemResult[T]]:
        with self.conn.transaction(force_rollback=self.dry_run):
            chunk = self.write(self.conn, results)
        for key, value in chunk.counts.items():
            self.written[key] = self.written.get(key, 0) + value
        self.samples.extend(chunk.samples[: max(0, SAMPLES_KEPT - len(self.samples))])
        if self.after is not None:
            self.after(results, chunk.demoted)
        return chunk.demoted


def run_is_stopping(context: dg.AssetExecutionContext) -> bool:
    """True once the run was asked to stop (the UI's Terminate marks it CANCELING)."""
    run = context.instance.get_run_by_id(context.run.run_id)
    return run is not None and run.status in STOPPING


def run_items[T](
    context: dg.AssetExecutionContext,
    items: Iterable[T],
    fetch: Callable[[T], ItemResult[T]],
    commit: Callable[[list[ItemResult[T]]], Iterable[ItemResult[T]] | None],
    *,
    concurrency: int,
    chunk_size: int,
    progress_every: int,
    request_stats: RequestStats | None,
    label: str,
) -> PerItemReport:
    """`run_per_item` inside an asset: the run's cancel request polled, progress in its log."""
    return run_per_item(
        items,
        fetch,
        commit,
        concurrency=concurrency,
        chunk_size=chunk_size,
        progress_every=progress_every,
        stop_requested=lambda: run_is_stopping(context),
        request_stats=request_stats,
        log=context.log,
        label=label,
    )


def was_canceled(report: PerItemReport) -> bool:
    """The batch stopped because the run was canceled or its worker interrupted."""
    return report.stopped_by in ("request", "interrupt") or report.interrupted is not None


def record_materialization(context: dg.AssetExecutionContext, metadata: dict[str, Any]) -> None:
    """A step that fails or is canceled returns no result: this records the rows it did write."""
    context.log_event(dg.AssetMaterialization(asset_key=context.asset_key, metadata=metadata))


def end_canceled(
    context: dg.AssetExecutionContext,
    report: PerItemReport,
    metadata: dict[str, Any],
    *,
    noun: str,
    wrote: bool,
) -> NoReturn:
    """Record what a canceled batch committed, then end the step so the run ends CANCELED."""
    if wrote:
        record_materialization(context, metadata)
    run = context.instance.get_run_by_id(context.run.run_id)
    if run is not None and run.status not in STOPPING:
        # SIGTERM/SIGINT to the worker, not the UI: without this the run would end FAILURE.
        context.instance.report_run_canceling(
            run, message=f"Interrupted (SIGTERM/SIGINT): completed {noun} were committed."
        )
    report.raise_if_interrupted()
    raise dg.Failure(
        f"{context.asset_key.to_user_string()} canceled after committing {report.committed} {noun}",
        metadata=metadata,
        allow_retries=False,
    )
