"""Per-item syncs: fetch many items concurrently, commit in chunks, stop early and cleanly.

One call runs a whole batch::

    from sync_assets.core.per_item import ItemResult, StopBatch, run_per_item

    def fetch(appid: int) -> ItemResult:          # runs in a worker thread: network only
        payload = client.get_json(...)            # the client's token bucket paces every call
        if payload is None:
            return ItemResult.skipped(appid, "not available")
        if blocked:
            raise StopBatch("the store answered 403")   # stop taking new items
        return ItemResult.succeeded(appid, row)  # any exception -> ItemResult.failed(...)

    def commit(results: list[ItemResult]) -> list[ItemResult] | None:  # calling thread
        with db.transaction() as conn: ...          # write rows AND per-item state together
        return demoted                              # optional: results that replace some of
                                                    # the chunk's (e.g. failed validation)

    report = run_per_item(
        items,                       # hashable ids, consumed lazily (one per free slot)
        fetch,
        commit,
        concurrency=8,               # items in flight at once
        chunk_size=100,              # completed items per commit
        progress_every=100,          # a progress line in `log` every N processed items
        stop_requested=is_canceling, # polled every `stop_poll_seconds`; True -> stop cleanly
        request_stats=client.stats,  # .requests (calls) and .retries, as ApiClient.stats;
                                     # the report's `requests` counts every HTTP attempt
        log=context.log,
    )
    context.add_output_metadata(report.as_metadata())
    report.raise_if_interrupted()    # re-raise SIGINT/SIGTERM (Dagster: the run ends canceled)
    # report.stopped_by: None, "fetch" (StopBatch), "request" (stop_requested), "interrupt"

Pacing is the client's job: give its `ApiClient` a shared `token_bucket(n, seconds, burst=2)`
(retries wait for it too) and set `concurrency` to about rate x latency, plus headroom.

Guarantees: an item is committed only after its fetch finished; a chunk is committed whole or
not at all (the caller's transaction); on a stop (StopBatch, `stop_requested`, or an interrupt
such as Dagster's run cancellation or SIGTERM) no new item is started, the items in flight are
finished (after an interrupt: for up to `drain_seconds`, then abandoned, never recorded), and
every finished item is committed before returning. So a crash loses at most the items in
flight plus one uncommitted chunk, and never records an item that was not written. Items not
processed keep their old state and come back in a later batch.

A chunk whose commit raises is committed again in halves, down to single items, so one item
the database refuses (a NUL character in a text, a number too big for its column) is recorded
as failed instead of failing every batch that picks it up first. When even that failure cannot
be recorded, the fault is not the item's (the database is down) and the error propagates.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from dagster import DagsterExecutionInterruptedError

from sync_assets.core.redaction import redact

SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"

INTERRUPTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, DagsterExecutionInterruptedError)


class StopBatch(Exception):
    """Raised by `fetch` to stop the batch early (e.g. the provider blocked us); not a failure."""


class RequestStats(Protocol):
    requests: int
    retries: int


class Logger(Protocol):
    def info(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...
    def warning(self, msg: str, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class ItemResult[T]:
    """What happened to one item: succeeded (with `value`), skipped or failed (with `reason`)."""

    item: T
    status: str
    value: Any = None
    reason: str | None = None

    @classmethod
    def succeeded(cls, item: T, value: Any = None) -> ItemResult[T]:
        return cls(item, SUCCEEDED, value)

    @classmethod
    def skipped(cls, item: T, reason: str, value: Any = None) -> ItemResult[T]:
        return cls(item, SKIPPED, value, redact(reason))

    @classmethod
    def failed(cls, item: T, reason: str) -> ItemResult[T]:
        return cls(item, FAILED, None, redact(reason)[:1000])


@dataclass
class PerItemReport:
    """Counters for one batch; `as_metadata()` is ready for Dagster metadata."""

    processed: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    committed: int = 0
    chunks: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    stop_reason: str | None = None
    stopped_by: str | None = None  # "fetch" (StopBatch), "request" (stop_requested), "interrupt"
    interrupted: BaseException | None = field(default=None, repr=False)
    failure_samples: list[str] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def count(self, result: ItemResult[Any], step: int = 1) -> None:
        self.processed += step
        if result.status == SUCCEEDED:
            self.succeeded += step
        elif result.status == SKIPPED:
            self.skipped += step
        else:
            self.failed += step
            if step > 0 and len(self.failure_samples) < 5 and result.reason:
                self.failure_samples.append(f"{result.item}: {result.reason}"[:300])

    def replace(self, old: ItemResult[Any], new: ItemResult[Any]) -> None:
        """Recount an item whose outcome changed at commit time (e.g. invalid after all)."""
        self.count(old, -1)
        self.count(new)

    def summary(self) -> str:
        return (
            f"processed {self.processed} (succeeded {self.succeeded}, failed {self.failed}, "
            f"skipped {self.skipped}), committed {self.committed}, {self.requests} requests, "
            f"{self.retries} retries, {self.requests_per_second:.2f} requests/s"
        )

    def as_metadata(self) -> dict[str, Any]:
        return {
            "processed": self.processed,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "committed": self.committed,
            "requests": self.requests,
            "retries": self.retries,
            "requests_per_second": round(self.requests_per_second, 3),
            "seconds": round(self.seconds, 3),
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason or "",
            "stopped_by": self.stopped_by or "",
            "failure_samples": "\n".join(self.failure_samples),
        }

    def raise_if_interrupted(self) -> None:
        if self.interrupted is not None:
            raise self.interrupted


_END = object()


def _commit_isolating[T](
    commit: Callable[[list[ItemResult[T]]], Iterable[ItemResult[T]] | None],
    chunk: list[ItemResult[T]],
    log: Logger | None,
    label: str,
    *,
    top: bool = True,
) -> list[ItemResult[T]]:
    """`commit(chunk)`; when it raises, the halves, down to the single items at fault."""
    try:
        return list(commit(chunk) or [])
    except Exception as exc:  # noqa: BLE001 - narrowed down below, re-raised if not the items'
        error = redact(f"{type(exc).__name__}: {exc}")
        if len(chunk) == 1:
            if chunk[0].status == FAILED:
                raise  # not even a failure can be recorded: not this item's fault
            failed = ItemResult.failed(chunk[0].item, f"not written: {error}")
            if log is not None:
                log.warning(f"{label}: {chunk[0].item} not written: {error[:300]}")
            return [failed, *(commit([failed]) or [])]
        if top and log is not None:
            log.warning(
                f"{label}: a chunk of {len(chunk)} failed to commit ({error[:300]});"
                " committing it in halves to find the items at fault"
            )
    middle = len(chunk) // 2
    return [
        *_commit_isolating(commit, chunk[:middle], log, label, top=False),
        *_commit_isolating(commit, chunk[middle:], log, label, top=False),
    ]


def run_per_item[T](
    items: Iterable[T],
    fetch: Callable[[T], ItemResult[T]],
    commit: Callable[[list[ItemResult[T]]], Iterable[ItemResult[T]] | None],
    *,
    concurrency: int = 8,
    chunk_size: int = 100,
    progress_every: int = 100,
    stop_requested: Callable[[], bool] | None = None,
    stop_poll_seconds: float = 2.0,
    drain_seconds: float = 10.0,
    request_stats: RequestStats | None = None,
    log: Logger | None = None,
    label: str = "items",
) -> PerItemReport:
    """Fetch `items` with at most `concurrency` in flight and commit results every `chunk_size`.

    Returns the report; an interrupt (KeyboardInterrupt, Dagster's run termination) is caught,
    the finished work committed, and the exception left in `report.interrupted` to re-raise.
    """
    if concurrency < 1 or chunk_size < 1:
        raise ValueError("concurrency and chunk_size must be at least 1")
    report = PerItemReport()
    base_requests = request_stats.requests if request_stats else 0
    base_retries = request_stats.retries if request_stats else 0
    stopping = threading.Event()
    pending: list[ItemResult[T]] = []
    in_flight: set[Future[ItemResult[T]]] = set()
    started = time.monotonic()
    last_poll = started
    next_progress = progress_every

    def guarded(item: T) -> ItemResult[T] | None:
        if stopping.is_set():
            return None  # submitted but never started: stays unprocessed
        try:
            return fetch(item)
        except StopBatch:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad item must not end the batch
            return ItemResult.failed(item, f"{type(exc).__name__}: {exc}")

    def stop(reason: str, by: str) -> None:
        if not report.stopped_early:
            report.stopped_early = True
            report.stop_reason = redact(reason)
            report.stopped_by = by
            if log is not None:
                log.warning(f"{label}: stopping early: {report.stop_reason}")
        stopping.set()

    def absorb(done: Iterable[Future[ItemResult[T]]]) -> None:
        nonlocal next_progress
        for future in done:
            try:
                result = future.result()
            except StopBatch as exc:
                stop(str(exc) or "stop requested by fetch", "fetch")
                continue
            if result is None:
                continue
            report.count(result)
            pending.append(result)
        if log is not None and progress_every and report.processed >= next_progress:
            _refresh_stats()
            log.info(f"{label} progress: {report.summary()}")
            while next_progress <= report.processed:
                next_progress += progress_every

    def flush(full_chunks_only: bool = False) -> None:
        while pending and (len(pending) >= chunk_size or not full_chunks_only):
            chunk = pending[:chunk_size]
            replaced = _commit_isolating(commit, chunk, log, label)
            if replaced:
                originals = {r.item: r for r in chunk}
                for new in replaced:
                    old = originals.get(new.item)
                    if old is not None and old.status != new.status:
                        report.replace(old, new)
            del pending[: len(chunk)]
            report.committed += len(chunk)
            report.chunks += 1

    def _refresh_stats() -> None:
        report.seconds = time.monotonic() - started
        if request_stats is not None:
            report.retries = request_stats.retries - base_retries
            report.requests = request_stats.requests - base_requests + report.retries

    iterator = iter(items)
    exhausted = False
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"per-item-{label}")
    try:
        try:
            while True:
                # Twice `concurrency` submitted: the pool runs `concurrency` at once and the rest
                # wait in its queue, so the workers keep fetching while this thread commits.
                while not stopping.is_set() and not exhausted and len(in_flight) < 2 * concurrency:
                    item = next(iterator, _END)
                    if item is _END:
                        exhausted = True
                        break
                    in_flight.add(executor.submit(guarded, item))  # type: ignore[arg-type]
                if not in_flight:
                    break
                done, in_flight = wait(
                    in_flight, timeout=stop_poll_seconds, return_when=FIRST_COMPLETED
                )
                absorb(done)
                flush(full_chunks_only=True)
                now = time.monotonic()
                if stop_requested is not None and now - last_poll >= stop_poll_seconds:
                    last_poll = now
                    if not stopping.is_set() and stop_requested():
                        stop("the run was asked to stop (cancel requested)", "request")
        except INTERRUPTS as exc:
            report.interrupted = exc
            stop(f"interrupted ({type(exc).__name__}): no new {label} taken", "interrupt")
            try:
                done, in_flight = wait(in_flight, timeout=drain_seconds)
                absorb(done)
            except INTERRUPTS:
                pass  # a second interrupt: abandon what is in flight, still commit the rest
            if in_flight and log is not None:
                log.warning(f"{label}: abandoned {len(in_flight)} in flight (not recorded)")
    finally:
        stopping.set()
        executor.shutdown(wait=False, cancel_futures=True)
        _refresh_stats()
    try:
        flush()
    except INTERRUPTS as exc:
        # The interrupted chunk's transaction rolled back; it is still pending, so try once more.
        report.interrupted = report.interrupted or exc
        flush()
    _refresh_stats()
    if log is not None:
        log.info(f"{label} done: {report.summary()}")
    return report
