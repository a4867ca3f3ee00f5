"""Statements sent ahead: PostgreSQL runs them while this process prepares what comes next."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from types import TracebackType
from typing import Any

import psycopg
from psycopg import sql


class StatementsAhead:
    """Sends statements in libpq's pipeline mode without waiting for their results, so the
    server works on them while this process goes on (a sync's upserts of one chunk overlap the
    parse and validation of the next: on two cores, about the server's whole share of the time).

    `settle()` waits for everything sent and hands each result to its callback, in the order
    sent; a failed statement raises there, and the ones sent after it were not run. COPY cannot
    run in a pipeline: settle before one. Use as a context manager: leaving the block settles,
    and an error in it leaves the connection out of pipeline mode.
    """

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self._pipeline: ExitStack | None = None
        self._callbacks: list[tuple[psycopg.Cursor, Callable[[psycopg.Cursor], None]]] = []

    def send(
        self,
        statement: sql.Composable | str,
        params: dict[str, Any] | None = None,
        then: Callable[[psycopg.Cursor], None] | None = None,
    ) -> None:
        """Send `statement`; once settled, `then` gets the cursor holding its result."""
        if self._pipeline is None:
            pipeline = ExitStack()
            pipeline.enter_context(self.conn.pipeline())
            self._pipeline = pipeline
        cursor = self.conn.cursor()
        cursor.execute(statement, params)
        if then is not None:
            self._callbacks.append((cursor, then))

    def settle(self) -> None:
        """Wait for every statement sent, then run their callbacks in order."""
        pipeline, self._pipeline = self._pipeline, None
        callbacks, self._callbacks = self._callbacks, []
        if pipeline is not None:
            pipeline.close()
        for cursor, then in callbacks:
            then(cursor)

    def __enter__(self) -> StatementsAhead:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self.settle()
            return
        pipeline, self._pipeline = self._pipeline, None
        self._callbacks = []
        if pipeline is not None:
            pipeline.__exit__(exc_type, exc, traceback)
