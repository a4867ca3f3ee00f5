"""`$_ref`, the row identity: its definition, a reference implementation, and its DuckDB SQL.

`$_ref` (algorithm `md5-v2`) is the lowercase hex MD5 of the UTF-8 text made by joining, in
`ref_fields` order, each ref field's canonical text with U+001F; a NULL is U+001E. Canonical
text: integer -> decimal digits (`-42`); number -> the 64 bits of the IEEE 754 double as an
unsigned integer in uppercase hex without leading zeros, -0.0 taken as 0.0 (`1.5` ->
`3FF8000000000000`, `0.0` -> `0`); text -> itself; boolean -> `true` / `false`; date ->
`YYYY-MM-DD`; timestamp -> microseconds since 1970-01-01T00:00:00Z as an integer. `ref_hash`
is the reference implementation for consumers, `postgres_ref_sql` the same in PostgreSQL.

A number's bits, unlike its decimal text, are the same in every language (Python's `repr`,
JavaScript's `toString` and Java's `Double.toString` write some doubles differently) and
cost DuckDB a third of formatting the double. The SQL builds the same text from the typed
values, except where an integer's source text is already its canonical text.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Any

from sync_assets.core.analytics import ident
from sync_assets.streams.models import DataModel, FieldMapping

NULL_MARK, SEPARATOR = "\x1e", "\x1f"
# The same two characters in SQL (DuckDB and PostgreSQL both spell them so).
NULL_SQL, SEPARATOR_SQL = f"chr({ord(NULL_MARK)})", f"chr({ord(SEPARATOR)})"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def canonical_text(value: Any, kind: str) -> str:
    """The text a value contributes to `$_ref` (see the module docstring)."""
    if value is None:
        return NULL_MARK
    if kind == "integer":
        return str(int(value))
    if kind == "number":
        return format(struct.unpack("<Q", struct.pack("<d", float(value) + 0.0))[0], "X")
    if kind == "boolean":
        return "true" if value else "false"
    if kind == "date":
        return value.isoformat()
    if kind == "timestamp":
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - EPOCH
        return str((delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
    return str(value)


def ref_hash(values: Sequence[Any], kinds: Sequence[str]) -> str:
    """`$_ref` of one row from its ref fields' typed values, in `ref_fields` order."""
    text = SEPARATOR.join(canonical_text(v, k) for v, k in zip(values, kinds, strict=True))
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 (an id, not security)


# A ref field's canonical text in PostgreSQL (14 and later, where `extract` gives an exact
# numeric), whatever the session's TimeZone and DateStyle.
POSTGRES_TEXT = {
    "integer": "{0}::text",
    "number": "CASE WHEN {0}::float8 = 0 THEN '0'"
    " ELSE upper(ltrim(encode(float8send({0}::float8), 'hex'), '0')) END",
    "text": "{0}",
    "boolean": "{0}::text",
    "date": "to_char({0}, 'YYYY-MM-DD')",
    "timestamp": "(extract(epoch FROM {0}) * 1000000)::bigint::text",
}


def postgres_ref_sql(fields: Sequence[tuple[str, str]]) -> str:
    """`$_ref` as a PostgreSQL expression over columns named and typed as the ref fields
    (`(name, kind)` in `ref_fields` order), for consumers that recompute it in the database."""
    texts = [POSTGRES_TEXT[kind].format(ident(name)) for name, kind in fields]
    parts = ", ".join(f"coalesce({t}, {NULL_SQL})" for t in texts)
    return f"md5(concat_ws({SEPARATOR_SQL}, {parts}))"


# --- DuckDB SQL ------------------------------------------------------------------------------


def plain_digits_sql(text: str) -> str:
    """TRUE where `text` is the BIGINT's own text: the integer's canonical text as written.

    The integer cast tests this too, spelled the same, so DuckDB computes it once for both.
    """
    return f"CAST(TRY_CAST({text} AS BIGINT) AS VARCHAR) = {text}"


def _formatted_sql(kind: str, typed: str) -> str:
    """The canonical text of a typed value, formatted by DuckDB."""
    if kind == "text":
        return typed
    if kind == "timestamp":
        return f"CAST(epoch_us({typed}) AS VARCHAR)"
    if kind == "number":
        # A DOUBLE cast to BIT is its IEEE 754 bits; adding 0.0 turns -0.0 into 0.0.
        return f"to_hex(CAST(CAST({typed} + 0.0 AS BIT) AS BIGINT))"
    # BOOLEAN gives 'true'/'false'; DATE 'YYYY-MM-DD'.
    return f"CAST({typed} AS VARCHAR)"


def ref_sql(
    model: DataModel,
    typed_column: Callable[[FieldMapping], str],
    written: Callable[[FieldMapping], str | None],
) -> str:
    """`$_ref` over typed columns; `written` gives a field's source text where that text is its
    canonical text (NULL elsewhere, or None for no such text): it is used as it is."""
    by_target = {m.target: m for m in model.mappings}
    parts = []
    for target in model.ref_fields:
        mapping = by_target[target]
        texts = [written(mapping), _formatted_sql(mapping.type, typed_column(mapping))]
        parts.append(f"coalesce({', '.join(t for t in texts if t)}, {NULL_SQL})")
    # concat with the separators spelled out: the same text as concat_ws, built faster.
    return f"md5(concat({f', {SEPARATOR_SQL}, '.join(parts)}))"
