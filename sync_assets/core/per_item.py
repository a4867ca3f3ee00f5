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

    def commit(results: list[ItemResult]) -> list[ItemResult] | None:  # the driver thread
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
An operational error (the connection lost, the server shutting down, the disk full) is never an
item's fault: it propagates at once, with the database's own message.

Threads: `fetch` runs in a pool of worker threads; everything else (`next(items)`, `commit`,
`stop_requested`, `log`) runs in one driver thread, never in the calling thread. Python delivers
signals, and Dagster raises its run cancellation, only in the main thread at any bytecode; were
the main thread inside `commit`, the interrupt would cut a database call half-way and leave the
connection busy ("another command is already in progress") or a COMMIT's outcome unknown. So the
calling thread only waits for the driver and turns each interrupt into a stop request: the
database work under way always finishes, and what a cancel keeps is every chunk committed
before it plus the finished items the driver commits last. `items` may therefore be read from a
connection too (a server-side cursor), as long as the caller touches that connection only
before and after the call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
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
_WAKE = object()  # put on the completion queue by an interrupt, so the driver notices at once
WAIT_TICK_SECONDS = 1.0  # the calling thread looks for a signal at least this often


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
    except (psycopg.OperationalError, psycopg.InterfaceError):
        raise  # the database or the connection failed: halving the chunk cannot help
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


@dataclass
class _Settings:
    concurrency: int
    chunk_size: int
    progress_every: int
    stop_requested: Callable[[], bool] | None
    stop_poll_seconds: float
    drain_seconds: float
    log: Logger | None
    label: str


class _Batch[T]:
    """One batch: `drive()` runs it in the driver thread; `interrupt()` comes from the caller's."""

    def __init__(
        self,
        items: Iterable[T],
        fetch: Callable[[T], ItemResult[T]],
        commit: Callable[[list[ItemResult[T]]], Iterable[ItemResult[T]] | None],
        settings: _Settings,
        request_stats: RequestStats | None,
    ) -> None:
        self.items = items
        self.fetch = fetch
        self.commit = commit
        self.settings = settings
        self.request_stats = request_stats
        self.base_requests = request_stats.requests if request_stats else 0
        self.base_retries = request_stats.retries if request_stats else 0
        self.report = PerItemReport()
        self.started = time.monotonic()
        self.stopping = threading.Event()  # no new item is taken, queued ones are not started
        self.abandon = threading.Event()  # a second interrupt: stop waiting for items in flight
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._claimed = threading.Lock()
        self._completed: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._in_flight = 0
        self._pending: list[ItemResult[T]] = []
        self._next_progress = settings.progress_every

    # The calling (main) thread -----------------------------------------------------------

    def interrupt(self, exc: BaseException) -> None:
        """The first interrupt stops the batch; a second one abandons the items in flight."""
        if self.report.interrupted is None:
            self.report.interrupted = exc
        else:
            self.abandon.set()
        self.stopping.set()
        self._completed.put(_WAKE)

    # The driver thread ---------------------------------------------------------------------

    def drive(self) -> None:
        """Fetch and commit the whole batch, then commit what is left; errors are kept."""
        if not self._claimed.acquire(blocking=False):
            return  # started twice (an interrupt hit the first start): the first one drives
        try:
            self._fetch_and_commit()
            self._flush()
            self._refresh_stats()
            if self.settings.log is not None:
                self.settings.log.info(f"{self.settings.label} done: {self.report.summary()}")
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread to raise
            self.error = exc
        finally:
            self.finished.set()

    def _fetch_and_commit(self) -> None:
        settings = self.settings
        executor = ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix=f"per-item-{settings.label}"
        )
        try:
            iterator = iter(self.items)
            exhausted = False
            last_poll = time.monotonic()
            drain_until = float("inf")
            while True:
                if not exhausted:
                    exhausted = self._submit_more(executor, iterator)
                if not self._in_flight:
                    return
                if self.report.interrupted is not None:
                    if drain_until == float("inf"):
                        drain_until = self._stop_for_interrupt()
                    if self.abandon.is_set() or time.monotonic() >= drain_until:
                        self._warn(f"abandoned {self._in_flight} in flight (not recorded)")
                        return
                wait = min(settings.stop_poll_seconds, drain_until - time.monotonic())
                self._absorb(self._collect(max(0.0, wait)))
                self._flush(full_chunks_only=True)
                if settings.stop_requested is not None:
                    now = time.monotonic()
                    if now - last_poll >= settings.stop_poll_seconds:
                        last_poll = now
                        if not self.stopping.is_set() and settings.stop_requested():
                            self._stop("the run was asked to stop (cancel requested)", "request")
        finally:
            self.stopping.set()
            executor.shutdown(wait=False, cancel_futures=True)
            self._refresh_stats()

    def _submit_more(self, executor: ThreadPoolExecutor, iterator: Iterator[T]) -> bool:
        """Keep twice `concurrency` submitted; True once `items` is exhausted.

        The pool runs `concurrency` at once and the rest wait in its queue, so the workers keep
        fetching while the driver commits.
        """
        while not self.stopping.is_set() and self._in_flight < 2 * self.settings.concurrency:
            item = next(iterator, _END)
            if item is _END:
                return True
            future = executor.submit(self._guarded, item)  # type: ignore[arg-type]
            self._in_flight += 1
            future.add_done_callback(self._completed.put)
        return False

    def _guarded(self, item: T) -> ItemResult[T] | None:
        if self.stopping.is_set():
            return None  # submitted but never started: stays unprocessed
        try:
            return self.fetch(item)
        except StopBatch:
            raise
        except Exception as exc:  # noqa: BLE001 - one bad item must not end the batch
            return ItemResult.failed(item, f"{type(exc).__name__}: {exc}")

    def _collect(self, timeout: float) -> list[Future[ItemResult[T] | None]]:
        """The fetches done so far, waiting up to `timeout` for one (an interrupt wakes it)."""
        done: list[Future[ItemResult[T] | None]] = []
        try:
            entry = self._completed.get(timeout=timeout)
            while True:
                if entry is not _WAKE:
                    done.append(entry)
                entry = self._completed.get_nowait()
        except queue.Empty:
            return done

    def _absorb(self, done: Iterable[Future[ItemResult[T] | None]]) -> None:
        for future in done:
            self._in_flight -= 1
            try:
                result = future.result()
            except StopBatch as exc:
                self._stop(str(exc) or "stop requested by fetch", "fetch")
                continue
            if result is None:
                continue
            self.report.count(result)
            self._pending.append(result)
        self._log_progress()

    def _flush(self, full_chunks_only: bool = False) -> None:
        """Commit the finished items, a chunk at a time (only full chunks, if asked)."""
        chunk_size = self.settings.chunk_size
        while self._pending and (len(self._pending) >= chunk_size or not full_chunks_only):
            chunk = self._pending[:chunk_size]
            replaced = _commit_isolating(self.commit, chunk, self.settings.log, self.settings.label)
            if replaced:
                originals = {r.item: r for r in chunk}
                for new in replaced:
                    old = originals.get(new.item)
                    if old is not None and old.status != new.status:
                        self.report.replace(old, new)
            del self._pending[: len(chunk)]
            self.report.committed += len(chunk)
            self.report.chunks += 1

    def _stop_for_interrupt(self) -> float:
        """Record the interrupt as the stop; the time until which items in flight may finish."""
        exc = self.report.interrupted
        name = type(exc).__name__
        self._stop(f"interrupted ({name}): no new {self.settings.label} taken", "interrupt")
        return time.monotonic() + self.settings.drain_seconds

    def _stop(self, reason: str, by: str) -> None:
        if not self.report.stopped_early:
            self.report.stopped_early = True
            self.report.stop_reason = redact(reason)
            self.report.stopped_by = by
            self._warn(f"stopping early: {self.report.stop_reason}")
        self.stopping.set()

    def _warn(self, message: str) -> None:
        if self.settings.log is not None:
            self.settings.log.warning(f"{self.settings.label}: {message}")

    def _log_progress(self) -> None:
        every, log = self.settings.progress_every, self.settings.log
        if log is None or not every or self.report.processed < self._next_progress:
            return
        self._refresh_stats()
        log.info(f"{self.settings.label} progress: {self.report.summary()}")
        while self._next_progress <= self.report.processed:
            self._next_progress += every

    def _refresh_stats(self) -> None:
        self.report.seconds = time.monotonic() - self.started
        if self.request_stats is not None:
            self.report.retries = self.request_stats.retries - self.base_retries
            self.report.requests = (
                self.request_stats.requests - self.base_requests + self.report.retries
            )


def _drive_in_own_thread(batch: _Batch[Any]) -> None:
    """Run `batch.drive` in a new thread and wait for it; interrupts meanwhile stop the batch.

    Each start makes a new thread: an interrupt may land inside `Thread.start`, before or after
    the thread exists, so a second start follows and `drive` runs only in the first to claim it.
    """
    launched = False
    while not batch.finished.is_set():
        try:
            try:
                if not launched:
                    name = f"per-item-{batch.settings.label}-driver"
                    threading.Thread(target=batch.drive, name=name, daemon=True).start()
                    launched = True
                # Timed, so a signal the OS handed to another thread is still seen here soon.
                batch.finished.wait(WAIT_TICK_SECONDS)
            except INTERRUPTS as exc:
                batch.interrupt(exc)
        except INTERRUPTS as exc:  # a second one landed while the first was handed over
            batch.interrupt(exc)


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
    settings = _Settings(
        concurrency,
        chunk_size,
        progress_every,
        stop_requested,
        stop_poll_seconds,
        drain_seconds,
        log,
        label,
    )
    batch = _Batch(items, fetch, commit, settings, request_stats)
    _drive_in_own_thread(batch)
    if batch.error is not None:
        raise batch.error
    report = batch.report
    if report.interrupted is not None and report.stopped_by is None:
        # It came as the driver finished: all was committed, but the run is still interrupted.
        report.stopped_early, report.stopped_by = True, "interrupt"
        report.stop_reason = (
            report.stop_reason or f"interrupted ({type(report.interrupted).__name__})"
        )
    return report
