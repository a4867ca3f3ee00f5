"""Bring a PostgreSQL table to exactly the rows of a DuckDB table, writing only what differs.

Inside the caller's transaction: the table is locked against other writers (readers go on and
see the old rows until the commit), its current rows are copied into DuckDB and compared with
the new ones there, then the rows that went or changed are deleted and the rows that came or
changed are inserted, both by COPY. Rows that did not change are not touched, so a refresh with
nothing new writes nothing. Arrays and json columns travel as JSON text and are compared typed.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg2.extensions
from psycopg2 import sql

from sync_assets.core.analytics import count_rows, ident, literal
from sync_assets.core.pg_bulk import copy_in, copy_out, indexes_set_aside, read_pg_csv

if TYPE_CHECKING:
    import duckdb

# From this many rows, filling an empty table sets its indexes aside and builds them after.
BULK_FILL_ROWS = 50_000

# A PostgreSQL array literal with every element quoted (backslash escapes " and \ inside);
# temporary, so cursors working at once each have their own (no catalog write conflicts).
# A list without NULLs whose JSON text has no backslash escapes is that text with braces for
# brackets (JSON quotes strings as the array literal does), at half the cost.
PG_ARRAY_MACRO = r"""
CREATE OR REPLACE TEMP MACRO pg_array(l) AS CASE WHEN l IS NULL THEN NULL
    WHEN list_count(l) = len(l) AND NOT contains(to_json(l)::VARCHAR, '\')
        THEN '{' || (to_json(l)::VARCHAR)[2:-2] || '}'
    ELSE '{' || array_to_string(list_transform(l, lambda x: CASE WHEN x IS NULL THEN 'NULL'
        ELSE '"' || replace(replace(x::VARCHAR, '\', '\\'), '"', '\"') || '"' END), ',') || '}'
END
"""

# Without a key, the columns that say how many copies of a row to delete and which row it is.
_SURPLUS, _GROUP = "_replace_rows_surplus", "_replace_rows_group"


@dataclass(frozen=True)
class RowChanges:
    """What bringing one table up to date did."""

    rows: int
    added: int
    removed: int


def replace_rows(
    cur: psycopg2.extensions.cursor,
    duck: duckdb.DuckDBPyConnection,
    target: str,
    new: str,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    folder: Path,
    *,
    digest: str | None = None,
    bulk_fill_rows: int = BULK_FILL_ROWS,
) -> RowChanges:
    """Make the PostgreSQL table `target` (on the search path) hold exactly the rows of the
    DuckDB table `new`, within the caller's transaction. Working tables are temporary (this
    cursor's own), so several cursors may replace different tables at once.

    Rows are matched on `key` (never null) and compared on the other columns; without a key,
    whole rows are compared as a multiset (for small tables: the delete cannot use an index):
    of equal rows (nulls equal), only the copies too many go and only the missing copies
    come. A json column is compared as its type in `new`: give it a STRUCT, LIST or MAP type
    there (a JSON-typed column would compare as text, and jsonb orders keys its own way). An
    empty table of `bulk_fill_rows` rows or more is filled with its indexes set aside
    (`indexes_set_aside`).

    `digest` names a uuid column of the target that holds, for each row, the MD5 of its
    columns' JSON as written here: rows are then compared by key and digest, and the other
    columns are never read back (for tables of wide arrays or json). Such a table must only be
    written through replace_rows: a row changed by other means keeps its old digest, and is
    not noticed until its new row differs. A digest that does not match (none yet, or another
    DuckDB version's JSON) only rewrites the row.
    """
    if digest and not key:
        raise ValueError(f"{target}: a digest column needs a key to compare rows by")
    table = sql.Identifier(target)
    # One writer per table at a time (two runs, or two deployments); readers are not blocked.
    cur.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
    rows = count_rows(duck, new)
    source, written, compared = new, columns, columns
    if digest:
        source, written, compared = f"_digested_{target}", (*columns, digest), (*key, digest)
    current, changes = f"_current_{target}", f"_changes_{target}"
    try:
        if digest:
            duck.execute(
                f"CREATE OR REPLACE TEMP VIEW {ident(source)} AS"  # noqa: S608
                f" SELECT *, {row_digest_sql(columns)} AS {ident(digest)} FROM {ident(new)}"
            )
        link = _Link(cur, duck, target, column_kinds(cur, target, written), folder)
        if "array" in link.kinds.values():
            duck.execute(PG_ARRAY_MACRO)
        cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table))
        if not cur.fetchone()[0]:  # type: ignore[index]
            # Nothing there (a first refresh): no comparison, every row goes in.
            bulk = indexes_set_aside(cur, table) if rows >= bulk_fill_rows else nullcontext()
            with bulk:
                return RowChanges(rows, link.copy_rows(f"FROM {ident(source)}", table, written), 0)
        link.read_current(source, compared, into=current)
        if key:
            gone, came = _keyed_changes(duck, changes, source, current, compared, written, key)
        else:
            gone, came = _whole_row_changes(duck, changes, new, current)
        removed = link.delete(gone, key or columns, by_key=bool(key))
        added = link.copy_rows(came, table, written)
    finally:
        for working in (current, changes, changes + "_came"):
            duck.execute(f"DROP TABLE IF EXISTS {ident(working)}")
        if digest:
            duck.execute(f"DROP VIEW IF EXISTS {ident(source)}")
    return RowChanges(rows, added, removed)


def row_digest_sql(columns: tuple[str, ...]) -> str:
    """DuckDB SQL for the MD5 (as a UUID) of a row's `columns` as JSON: unambiguous, where a
    list's text form is not (['a, b'] and ['a', 'b'] both print as [a, b])."""
    fields = ", ".join(f"{ident(c)} := {ident(c)}" for c in columns)
    return f"CAST(md5(CAST(to_json(struct_pack({fields})) AS VARCHAR)) AS UUID)"


def column_kinds(
    cur: psycopg2.extensions.cursor, target: str, columns: tuple[str, ...]
) -> dict[str, str]:
    """Each column's kind in the PostgreSQL table: array, json or scalar."""
    cur.execute(
        """SELECT a.attname, CASE WHEN t.typcategory = 'A' THEN 'array'
                                  WHEN t.typname IN ('json', 'jsonb') THEN 'json'
                                  ELSE 'scalar' END
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped""",
        (sql.Identifier(target).as_string(cur),),
    )
    kinds = dict(cur.fetchall())
    return {column: kinds.get(column, "scalar") for column in columns}


def _keyed_changes(
    duck: duckdb.DuckDBPyConnection,
    changes: str,
    new: str,
    current: str,
    compared: tuple[str, ...],
    written: tuple[str, ...],
    key: tuple[str, ...],
) -> tuple[str, str]:
    """One full join on the key finds every row that went, came or changed (in a `compared`
    column); return queries for the old keys to delete and the new rows (`written` columns)
    to insert."""
    rest = [c for c in compared if c not in key]
    differs = " OR ".join(
        [f"n.{ident(key[0])} IS NULL", f"c.{ident(key[0])} IS NULL"]
        + [f"n.{ident(c)} IS DISTINCT FROM c.{ident(c)}" for c in rest]
    )
    old = ", ".join(f"c.{ident(k)} AS {ident('_old_' + k)}" for k in key)
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {ident(changes)} AS SELECT {old}, n.*"  # noqa: S608
        f" FROM {ident(new)} n FULL JOIN {ident(current)} c"
        f" ON {' AND '.join(f'n.{ident(k)} = c.{ident(k)}' for k in key)} WHERE {differs}"
    )
    gone = ", ".join(f"{ident('_old_' + k)} AS {ident(k)}" for k in key)
    return (
        f"SELECT {gone} FROM {ident(changes)} WHERE {ident('_old_' + key[0])} IS NOT NULL",  # noqa: S608
        f"SELECT {', '.join(ident(c) for c in written)} FROM {ident(changes)}"  # noqa: S608
        f" WHERE {ident(key[0])} IS NOT NULL",
    )


def _whole_row_changes(
    duck: duckdb.DuckDBPyConnection, changes: str, new: str, current: str
) -> tuple[str, str]:
    """Multiset differences of whole rows (nulls equal): return a query for each distinct row
    to delete, with how many of its copies go (`_SURPLUS`) and a number for it (`_GROUP`),
    and a query for the rows to insert (one row per copy)."""
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {ident(changes)} AS"  # noqa: S608
        f" FROM {ident(current)} EXCEPT ALL FROM {ident(new)}"
    )
    duck.execute(
        f"CREATE OR REPLACE TEMP TABLE {ident(changes + '_came')} AS"  # noqa: S608
        f" FROM {ident(new)} EXCEPT ALL FROM {ident(current)}"
    )
    return (
        f"SELECT *, row_number() OVER () AS {_GROUP} FROM"  # noqa: S608
        f" (SELECT *, count(*) AS {_SURPLUS} FROM {ident(changes)} GROUP BY ALL)",
        f"FROM {ident(changes + '_came')}",
    )


@dataclass(frozen=True)
class _Link:
    """One table's two ends: the PostgreSQL cursor (in the caller's transaction) and the
    DuckDB cursor, the table's column kinds, and a folder for the CSV passed between them."""

    cur: psycopg2.extensions.cursor
    duck: duckdb.DuckDBPyConnection
    target: str
    kinds: dict[str, str]
    folder: Path

    def read_current(self, new: str, columns: tuple[str, ...], *, into: str) -> None:
        """Copy the table's current rows into the DuckDB table `into`, typed like `new`."""
        types = {r[0]: r[1] for r in self.duck.execute(f"DESCRIBE {ident(new)}").fetchall()}
        shapes = {"array": "to_json({})::text", "json": "{}::text", "scalar": "{}"}
        out = sql.SQL(", ").join(
            sql.SQL(shapes[self.kinds[c]]).format(sql.Identifier(c)) for c in columns
        )
        path = self.folder / f"current_{self.target}.csv"
        query = sql.SQL("SELECT {} FROM {}").format(out, sql.Identifier(self.target))
        copy_out(self.cur, query.as_string(self.cur), path)
        raw = {c: types[c] if self.kinds[c] == "scalar" else "VARCHAR" for c in columns}
        typed = ", ".join(
            ident(c)
            if self.kinds[c] == "scalar"
            else f"CAST(CAST({ident(c)} AS JSON) AS {types[c]}) AS {ident(c)}"
            for c in columns
        )
        self.duck.execute(
            f"CREATE OR REPLACE TEMP TABLE {ident(into)} AS SELECT {typed} FROM ({read_pg_csv(raw)})",  # noqa: S608
            [str(path)],
        )
        path.unlink()

    def copy_rows(self, query: str, into: sql.Identifier, columns: tuple[str, ...]) -> int:
        """COPY the rows of the DuckDB `query` into the PostgreSQL table `into`; return how
        many (none: nothing is sent)."""
        path, count = self._export(query, columns)
        if count:
            self._copy_in(path, into, columns)
        path.unlink()
        return count

    def delete(self, gone: str, match: tuple[str, ...], *, by_key: bool) -> int:
        """Delete the rows the DuckDB query `gone` lists, by `match` columns (without a key,
        only the `_SURPLUS` copies of each, see `_whole_row_changes`); return how many went."""
        extra = () if by_key else (_SURPLUS, _GROUP)
        path, count = self._export(gone, (*match, *extra))
        if count:
            staging = sql.Identifier(f"_gone_{self.target}")
            columns = sql.SQL(", ").join(
                [sql.Identifier(c) for c in match]
                + [sql.SQL("0::bigint AS {}").format(sql.Identifier(c)) for c in extra]
            )
            self.cur.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
                ).format(staging, columns, sql.Identifier(self.target))
            )
            self._copy_in(path, staging, (*match, *extra))
            # Keys are never null, and `=` lets the delete use the key's index.
            equal = "t.{c} = g.{c}" if by_key else "t.{c} IS NOT DISTINCT FROM g.{c}"
            same = sql.SQL(" AND ").join(sql.SQL(equal).format(c=sql.Identifier(c)) for c in match)
            if by_key:
                self.cur.execute(
                    sql.SQL("DELETE FROM {} t USING {} g WHERE {}").format(
                        sql.Identifier(self.target), staging, same
                    )
                )
            else:
                # Equal rows are told apart only by their ctid: keep all but the surplus.
                self.cur.execute(
                    sql.SQL(
                        "DELETE FROM {target} WHERE ctid IN (SELECT ctid FROM"
                        " (SELECT t.ctid, g.{surplus}, row_number() OVER"
                        " (PARTITION BY g.{group} ORDER BY t.ctid) AS copy_no"
                        " FROM {target} t JOIN {staging} g ON {same}) s"
                        " WHERE copy_no <= {surplus})"
                    ).format(
                        target=sql.Identifier(self.target),
                        staging=staging,
                        surplus=sql.Identifier(_SURPLUS),
                        group=sql.Identifier(_GROUP),
                        same=same,
                    )
                )
                count = self.cur.rowcount
            self.cur.execute(sql.SQL("DROP TABLE {}").format(staging))
        path.unlink()
        return count

    def _export(self, query: str, columns: tuple[str, ...]) -> tuple[Path, int]:
        """Write the rows of `query` as CSV that COPY reads into the table's column types;
        return the file and how many rows it holds."""
        shapes = {"array": "pg_array({})", "json": "to_json({})", "scalar": "{}"}
        exprs = ", ".join(shapes[self.kinds.get(c, "scalar")].format(ident(c)) for c in columns)
        path = self.folder / f"rows_{self.target}.csv"
        written = self.duck.execute(
            f"COPY (SELECT {exprs} FROM ({query})) TO {literal(str(path))}"  # noqa: S608
            " (FORMAT csv, HEADER false)"
        ).fetchone()
        return path, int(written[0]) if written else 0

    def _copy_in(self, path: Path, into: sql.Identifier, columns: tuple[str, ...]) -> None:
        names = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
        copy_in(self.cur, into.as_string(self.cur), names.as_string(self.cur), path)
