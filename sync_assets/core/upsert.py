"""Bulk upsert: COPY into a temporary table, then one `INSERT ... ON CONFLICT` statement.

Runs inside the caller's transaction. Rows whose values did not change are not rewritten, so a
re-run that finds nothing new writes nothing and leaves `updated_at` alone.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    import pandas as pd

COPY_BATCH = 50_000
# The values a binary COPY may carry for these column types. psycopg's binary dumpers do not
# check them: an int too big for int2/int4 wraps round (3,000,000,000 -> -1,294,967,296) and a
# float too big for real becomes infinity, where the server refuses the same value as text.
BINARY_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
    "real": (-3.4028234663852886e38, 3.4028234663852886e38),
}


@dataclass(frozen=True)
class UpsertCounts:
    """What one upsert did: rows inserted, updated (values changed) and left unchanged."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0

    @property
    def staged(self) -> int:
        return self.inserted + self.updated + self.unchanged + self.duplicates

    def as_metadata(self, prefix: str = "") -> dict[str, int]:
        return {
            f"{prefix}inserted": self.inserted,
            f"{prefix}updated": self.updated,
            f"{prefix}unchanged": self.unchanged,
        }


def _frame_rows(frame: pd.DataFrame, columns: Sequence[str]) -> Iterable[tuple[Any, ...]]:
    import pandas as pd

    subset = frame[list(columns)].astype(object)
    subset = subset.where(pd.notna(subset), None)
    return subset.itertuples(index=False, name=None)


def upsert_frame(
    conn: psycopg.Connection,
    table: str,
    frame: pd.DataFrame,
    key_columns: Sequence[str],
    *,
    touch_column: str | None = "updated_at",
) -> UpsertCounts:
    """Upsert every column of `frame` into `table` (in the connection's search_path)."""
    columns = list(frame.columns)
    return upsert_rows(
        conn, table, columns, _frame_rows(frame, columns), key_columns, touch_column=touch_column
    )


def upsert_rows(
    conn: psycopg.Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    key_columns: Sequence[str],
    *,
    touch_column: str | None = "updated_at",
) -> UpsertCounts:
    """Upsert `rows` (tuples in `columns` order), keyed on `key_columns`.

    Rows are streamed to COPY in batches, so memory stays flat however many rows come. When a
    key appears twice in `rows`, the last one wins and the earlier ones count as duplicates.
    `touch_column`, when the table has it, is set to now() on insert and on a real change only.
    """
    missing = [k for k in key_columns if k not in columns]
    if missing:
        raise ValueError(f"key columns {missing} are not among the upserted columns of {table}")
    stage = _create_stage(conn, table, columns)
    staged = copy_rows(conn, f"_stage_{table}", columns, rows)
    if staged == 0:
        conn.execute(sql.SQL("DROP TABLE {}").format(stage))
        return UpsertCounts()
    distinct, source = _deduplicated_source(conn, table, stage, columns, key_columns, staged)
    statement = _merge_statement(conn, table, source, columns, key_columns, touch_column)
    inserted, updated = conn.execute(statement).fetchone()  # type: ignore[misc]
    conn.execute(sql.SQL("DROP TABLE {}").format(stage))
    if source is not stage:
        conn.execute(sql.SQL("DROP TABLE {}").format(source))
    return UpsertCounts(
        inserted=inserted,
        updated=updated,
        unchanged=distinct - inserted - updated,
        duplicates=staged - distinct,
    )


def _identifiers(names: Iterable[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(name) for name in names)


def _create_stage(conn: psycopg.Connection, table: str, columns: Sequence[str]) -> sql.Identifier:
    """An empty temp table shaped like the target's `columns`, dropped at commit."""
    stage = sql.Identifier(f"_stage_{table}")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(f"_latest_{table}")))
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {cols} FROM {target} WITH NO DATA"
        ).format(stage=stage, cols=_identifiers(columns), target=sql.Identifier(table))
    )
    return stage


def copy_rows(
    conn: psycopg.Connection, stage: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """COPY `rows` into the temp table `stage` (whose columns are `columns`, in that order) in
    batches, binary while the values allow it; how many rows."""
    stage_id = sql.Identifier(stage)
    types = [
        row[0]
        for row in conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (f"pg_temp.{stage}",),
        )
    ]
    cols = _identifiers(columns)
    staged = 0
    binary = True
    iterator = iter(rows)
    while batch := list(itertools.islice(iterator, COPY_BATCH)):
        if binary:
            try:
                with conn.transaction():  # a savepoint: a failed binary batch leaves no trace
                    _copy_batch(conn, stage_id, cols, batch, types)
            except (TypeError, ValueError, OverflowError, psycopg.Error):
                # Binary COPY needs each Python value to match its column's type exactly (a
                # float for a numeric, a str for a date) and to fit it; text COPY lets the
                # server parse it, and refuse what does not fit with the value in the error.
                binary = False
        if not binary:
            _copy_batch(conn, stage_id, cols, batch, None)
        staged += len(batch)
    return staged


def _deduplicated_source(
    conn: psycopg.Connection,
    table: str,
    stage: sql.Identifier,
    columns: Sequence[str],
    key_columns: Sequence[str],
    staged: int,
) -> tuple[int, sql.Identifier]:
    """How many distinct keys were staged, and the table holding one row per key."""
    keys = _identifiers(key_columns)
    distinct = conn.execute(
        sql.SQL("SELECT count(*) FROM (SELECT DISTINCT {keys} FROM {stage}) AS k").format(
            keys=keys, stage=stage
        )
    ).fetchone()[0]  # type: ignore[index]
    if distinct == staged:
        return distinct, stage  # the common case: no key twice, so no sort is needed
    # Last one wins: a freshly COPYed temp table keeps insertion order in ctid.
    latest = sql.Identifier(f"_latest_{table}")
    conn.execute(
        sql.SQL(
            "CREATE TEMP TABLE {latest} ON COMMIT DROP AS"
            " SELECT DISTINCT ON ({keys}) {cols} FROM {stage} ORDER BY {keys}, ctid DESC"
        ).format(latest=latest, keys=keys, cols=_identifiers(columns), stage=stage)
    )
    return distinct, latest


def _merge_statement(
    conn: psycopg.Connection,
    table: str,
    source: sql.Identifier,
    columns: Sequence[str],
    key_columns: Sequence[str],
    touch_column: str | None,
) -> sql.Composable:
    """INSERT ... ON CONFLICT from `source`, answering (inserted, updated)."""
    has_touch = (
        touch_column is not None
        and touch_column not in columns
        and _has_column(conn, table, touch_column)
    )
    return upsert_statement(
        table, source, columns, key_columns, touch_column=touch_column if has_touch else None
    )


def upsert_statement(
    table: str,
    source: sql.Composable,
    columns: Sequence[str],
    key_columns: Sequence[str],
    *,
    touch_column: str | None,
) -> sql.Composable:
    """`INSERT ... ON CONFLICT` of `columns` from `source` (a table, or `(query) AS name`,
    holding no key twice) into `table`, answering one row: (inserted, updated). Rows whose
    values did not change are not rewritten; `touch_column` (a column of `table`, or None) is set
    to now() on insert and on a real change."""
    target = sql.Identifier(table)
    value_columns = [c for c in columns if c not in key_columns]
    has_touch = touch_column is not None
    insert_cols = list(columns) + ([touch_column] if has_touch else [])
    select_values = [sql.Identifier(c) for c in columns] + ([sql.SQL("now()")] if has_touch else [])
    return sql.SQL(
        "WITH written AS ("
        " INSERT INTO {target} ({insert_cols}) SELECT {select_values} FROM {source}"
        " ON CONFLICT ({keys}) {conflict} RETURNING (xmax = 0) AS inserted"
        ") SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)"
        " FROM written"
    ).format(
        keys=_identifiers(key_columns),
        source=source,
        target=target,
        insert_cols=_identifiers(insert_cols),  # type: ignore[arg-type]
        select_values=sql.SQL(", ").join(select_values),
        conflict=_on_conflict(target, value_columns, touch_column),
    )


def upserted_counts(rows: int, answer: Sequence[int]) -> UpsertCounts:
    """The counts of an `upsert_statement` over `rows` rows, from its answer."""
    inserted, updated = answer
    return UpsertCounts(inserted=inserted, updated=updated, unchanged=rows - inserted - updated)


def _on_conflict(
    target: sql.Identifier, value_columns: Sequence[str], touch_column: str | None
) -> sql.Composable:
    """Update a conflicting row only where a value really changed (touching `touch_column`)."""
    if not value_columns:
        return sql.SQL("DO NOTHING")
    assignments = [sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in value_columns]
    if touch_column is not None:
        assignments.append(sql.SQL("{} = now()").format(sql.Identifier(touch_column)))
    if len(value_columns) == 1:
        changed = sql.SQL("{}.{} IS DISTINCT FROM EXCLUDED.{}").format(
            target, sql.Identifier(value_columns[0]), sql.Identifier(value_columns[0])
        )
    else:
        changed = sql.SQL("({}) IS DISTINCT FROM ({})").format(
            sql.SQL(", ").join(
                sql.SQL("{}.{}").format(target, sql.Identifier(c)) for c in value_columns
            ),
            sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in value_columns
            ),
        )
    return sql.SQL("DO UPDATE SET {} WHERE {}").format(sql.SQL(", ").join(assignments), changed)


def _copy_batch(
    conn: psycopg.Connection,
    stage: sql.Identifier,
    cols: sql.Composable,
    batch: list[Sequence[Any]],
    binary_types: list[str] | None,
) -> None:
    """COPY one batch: binary when `binary_types` is given (about twice as fast), else text."""
    if binary_types:
        _check_binary_ranges(batch, binary_types)
    options = sql.SQL(" (FORMAT BINARY)") if binary_types else sql.SQL("")
    statement = sql.SQL("COPY {} ({}) FROM STDIN{}").format(stage, cols, options)
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if binary_types:
            copy.set_types(binary_types)
        for row in batch:
            copy.write_row(row)


def _check_binary_ranges(batch: list[Sequence[Any]], types: list[str]) -> None:
    """Raise ValueError when a value lies outside what its column's binary form can hold."""
    for index, column_type in enumerate(types):
        if column_type not in BINARY_RANGES:
            continue
        low, high = BINARY_RANGES[column_type]
        for row in batch:
            value = row[index]
            if value is not None and not low <= value <= high:
                raise ValueError(f"{value!r} does not fit {column_type}")


def _has_column(conn: psycopg.Connection, table: str, column: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s AND column_name = %s",
        (table, column),
    ).fetchone()
    return row is not None
