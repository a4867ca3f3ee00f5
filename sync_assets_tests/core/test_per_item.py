"""run_per_item: bounded concurrency, chunked commits, early stops and interrupts."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import pytest
from dagster import DagsterExecutionInterruptedError

from sync_assets.core.per_item import ItemResult, StopBatch, run_per_item
from sync_assets_tests.processes import wait_for


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.peak = 0
        self.started: list[int] = []
        self.chunks: list[list[int]] = []

    def fetch(self, delay: float = 0.005):
        def run(item: int) -> ItemResult[int]:
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
                self.started.append(item)
            try:
                time.sleep(delay)
                if item % 10 == 3:
                    raise RuntimeError(f"item {item} broke")
                if item % 10 == 7:
                    return ItemResult.skipped(item, "not available")
                return ItemResult.succeeded(item, item * 2)
            finally:
                with self.lock:
                    self.active -= 1

        return run

    def commit(self, results: list[ItemResult[int]]) -> None:
        self.chunks.append([r.item for r in results])

    @property
    def committed(self) -> list[int]:
        return [i for chunk in self.chunks for i in chunk]


def test_counts_bounded_concurrency_and_chunks() -> None:
    rec = Recorder()
    report = run_per_item(range(250), rec.fetch(), rec.commit, concurrency=4, chunk_size=100)
    assert rec.peak <= 4
    assert sorted(rec.committed) == list(range(250))
    assert [len(c) for c in rec.chunks] == [100, 100, 50]
    assert (report.processed, report.failed, report.skipped) == (250, 25, 25)
    assert report.succeeded == 200 and report.committed == 250
    assert "item 3 broke" in report.failure_samples[0]
    assert not report.stopped_early


def test_items_are_taken_lazily_and_stop_batch_ends_cleanly() -> None:
    rec = Recorder()
    pulled: list[int] = []

    def items():
        for i in range(10_000):
            pulled.append(i)
            yield i

    def fetch(item: int) -> ItemResult[int]:
        if item == 40:
            raise StopBatch("provider blocked us (HTTP 403)")
        return rec.fetch(0.002)(item)

    report = run_per_item(items(), fetch, rec.commit, concurrency=3, chunk_size=25)
    assert report.stopped_early and "403" in report.stop_reason
    assert 40 not in rec.committed
    assert len(pulled) < 50  # nothing is pulled far ahead of the free slots
    assert report.committed == report.processed == len(rec.committed)
    assert set(rec.committed) >= set(range(37))


def test_stop_requested_is_polled() -> None:
    rec = Recorder()
    flag = threading.Event()
    threading.Timer(0.2, flag.set).start()
    report = run_per_item(
        range(100_000),
        rec.fetch(0.01),
        rec.commit,
        concurrency=2,
        stop_requested=flag.is_set,
        stop_poll_seconds=0.05,
    )
    assert report.stopped_early and "cancel" in report.stop_reason
    assert 0 < report.committed < 1000
    assert report.committed == len(set(rec.committed))


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need main thread"
)
def test_a_real_signal_interrupt_commits_finished_items_and_is_returned() -> None:
    rec = Recorder()

    def raise_interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGUSR1, raise_interrupt)
    try:
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        report = run_per_item(
            range(100_000), rec.fetch(0.01), rec.commit, concurrency=4, chunk_size=20
        )
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert isinstance(report.interrupted, KeyboardInterrupt)
    assert report.stopped_early and "interrupted" in report.stop_reason
    assert 0 < report.committed == report.processed == len(set(rec.committed))
    # Every started item either finished and was committed, or was still in flight.
    assert len(rec.started) - report.committed <= 4
    with pytest.raises(KeyboardInterrupt):
        report.raise_if_interrupted()


def test_a_database_that_stays_down_propagates_after_narrowing_down() -> None:
    calls = []

    def commit(results):
        calls.append(len(results))
        if len(calls) >= 2:
            raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        run_per_item(
            range(50), lambda i: ItemResult.succeeded(i), commit, concurrency=2, chunk_size=10
        )
    # The failed chunk in halves down to one item, whose failure cannot be recorded either.
    assert calls == [10, 10, 5, 2, 1, 1]


def test_an_item_the_database_refuses_is_recorded_failed_and_the_rest_written() -> None:
    written: list[ItemResult[int]] = []
    logged: list[str] = []

    class Log:
        def info(self, msg: str, *args, **kwargs) -> None:
            pass

        def warning(self, msg: str, *args, **kwargs) -> None:
            logged.append(msg)

    def commit(results: list[ItemResult[int]]) -> None:
        if any(r.item in (13, 31) and r.status != "failed" for r in results):
            raise ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        written.extend(results)

    report = run_per_item(
        range(40), lambda i: ItemResult.succeeded(i), commit, chunk_size=10, log=Log()
    )
    assert sorted(r.item for r in written) == list(range(40))
    failed = {r.item: r.reason for r in written if r.status == "failed"}
    assert failed.keys() == {13, 31}
    assert "not written: ValueError: PostgreSQL text fields cannot contain NUL" in failed[13]
    assert (report.succeeded, report.failed, report.committed) == (38, 2, 40)
    assert any("a chunk of 10 failed to commit" in m for m in logged)
    assert any(m.startswith("items: 13 not written") for m in logged)


def test_commit_can_demote_results_and_counters_follow() -> None:
    def commit(results):
        return [ItemResult.failed(r.item, "invalid row") for r in results if r.item % 2 == 0]

    report = run_per_item(
        range(10), lambda i: ItemResult.succeeded(i), commit, concurrency=2, chunk_size=4
    )
    assert (report.processed, report.succeeded, report.failed) == (10, 5, 5)
    assert report.committed == 10


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need main thread"
)
def test_an_interrupt_during_a_commit_never_cuts_the_database_call(database_url: str) -> None:
    """Dagster raises its run termination in the main thread at any bytecode; one that lands
    while a chunk's COMMIT waits on the server must not leave the connection busy ("another
    command is already in progress") nor lose the chunks committed before it."""
    with psycopg.connect(database_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE written (item int PRIMARY KEY)")
        setup.execute("CREATE TABLE gate (id int PRIMARY KEY)")
        setup.execute("INSERT INTO gate VALUES (1)")
    blocker = psycopg.connect(database_url)
    blocker.execute("SELECT * FROM gate FOR UPDATE")  # held until the test lets go
    conn = psycopg.connect(database_url, autocommit=True)
    chunks: list[list[int]] = []
    interrupted = threading.Event()

    def commit(results: list[ItemResult[int]]) -> None:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO written VALUES (%s)", [(r.item,) for r in results])
            if len(chunks) == 1:  # the second chunk waits for the gate inside its transaction
                conn.execute("SELECT * FROM gate FOR UPDATE")
        chunks.append([r.item for r in results])

    def dagster_interrupt(signum, frame):
        interrupted.set()
        raise DagsterExecutionInterruptedError  # as Dagster's handler during a step

    def interrupt_while_the_second_chunk_waits() -> None:
        with psycopg.connect(database_url, autocommit=True) as watcher:
            wait_for(
                lambda: watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                ).fetchone()[0],
                timeout=60,
                what="the second chunk's commit to wait on the gate",
                every=0.02,
            )
        os.kill(os.getpid(), signal.SIGUSR1)
        interrupted.wait(60)
        blocker.rollback()  # the commit under way can now finish

    previous = signal.signal(signal.SIGUSR1, dagster_interrupt)
    helper = threading.Thread(target=interrupt_while_the_second_chunk_waits)
    try:
        helper.start()
        report = run_per_item(
            range(100_000), lambda i: ItemResult.succeeded(i), commit, concurrency=2, chunk_size=5
        )
    finally:
        signal.signal(signal.SIGUSR1, previous)
        helper.join(60)
        blocker.close()
    assert interrupted.is_set()
    assert isinstance(report.interrupted, DagsterExecutionInterruptedError)
    assert report.stopped_by == "interrupt"
    # The first chunk, the one under way, and the finished items after it are all committed,
    # each chunk once; nothing new was taken after the interrupt.
    assert len(chunks) >= 2 and chunks[0] == [0, 1, 2, 3, 4]
    written = sorted(item for chunk in chunks for item in chunk)
    assert report.committed == report.processed == len(written) < 100
    rows = conn.execute("SELECT item FROM written ORDER BY item").fetchall()
    assert [r[0] for r in rows] == written
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the connection is idle and usable
    conn.close()
