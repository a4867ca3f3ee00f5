"""Source file -> mapped, typed, hashed Parquet, in one streaming DuckDB pass.

DuckDB reads the source (CSV, NDJSON, a JSON array or Parquet) in vectors, casts every mapped
field to its type, adds `$_ref` and writes zstd Parquet, spilling to disk when it needs to, so
memory stays flat however large the source is. A row whose value does not cast is not written;
the same pass counts the records it read (DuckDB's operator row counts), so the rejected count
needs no second scan, and up to five rejected rows are sampled when there are any.

`$_ref` is defined, and built in SQL, in `row_ref`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sync_assets.core.analytics import duckdb_connection, ident, literal
from sync_assets.core.redaction import redact
from sync_assets.streams.csv_layout import mixed_line_ends, read_csv_layout
from sync_assets.streams.models import REF_COLUMN, DataModel, FieldMapping
from sync_assets.streams.row_ref import plain_digits_sql, ref_sql
from sync_assets.streams.source_errors import SourceError, duckdb_message

if TYPE_CHECKING:
    import duckdb

DUCKDB_TYPES = {
    "integer": "BIGINT",
    "number": "DOUBLE",
    "text": "VARCHAR",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMPTZ",
}
INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "UHUGEINT",
}
FLOAT_TYPES = {"FLOAT", "DOUBLE"}
TIME_TYPES = {
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMP_S",
    "TIMESTAMP_MS",
    "TIMESTAMP_NS",
    "TIMESTAMPTZ_NS",
}
NANOSECOND_TYPES = {"TIMESTAMP_NS", "TIMESTAMPTZ_NS"}
SAMPLE_SIZE = 5
PARQUET_VERSIONS = ("v1", "v2")


def parquet_options(version: str = "v2") -> str:
    """The COPY options of the output Parquet.

    zstd level 1: most of level 3's ratio at a fraction of its CPU (`$_ref` does not compress).
    A column chunk with more than 1,000 distinct values is not dictionary-encoded: DuckDB would
    otherwise hash up to a fifth of every row group's values of `$_ref` (all distinct) and of
    other high-cardinality columns before giving up on the dictionary, a third of the write.
    `v2` (Parquet format 2.6: DELTA_BINARY_PACKED integers, DELTA_LENGTH_BYTE_ARRAY strings)
    leaves zstd a third less to compress; `v1` (PLAIN and dictionary pages only) is for readers
    that predate those encodings.
    """
    if version not in PARQUET_VERSIONS:
        raise ValueError(f"parquet version {version!r} is not one of {PARQUET_VERSIONS}")
    return (
        "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, DICTIONARY_SIZE_LIMIT 1000,"
        f" PARQUET_VERSION {version}"
    )


class EngineMemoryError(RuntimeError):
    """DuckDB needed more memory than `memory_limit` (and its spill) allows: no source fault."""


class OutputWriteError(OSError):
    """The Parquet could not be written to the staging folder (a full disk, say): no fault of
    the source, and nothing was published."""


# DuckDB's words for a failed write, e.g. `Could not write file "<path>": No space left on device`.
WRITE_FAILED = re.compile(r'Could not write file \\?"[^"]*\\?": ([^"\\]+)')


class TooManyRejectedError(RuntimeError):
    """More rows failed to cast than the threshold allows; nothing was published."""

    def __init__(self, message: str, metadata: dict[str, Any]) -> None:
        super().__init__(message)
        self.metadata = metadata


@dataclass
class EngineSettings:
    """DuckDB limits for one transform: memory is capped, the rest spills to `temp_dir`."""

    memory_limit: str = "400MB"
    threads: int | None = None
    temp_dir: Path | None = None
    parquet_version: str = "v2"


@dataclass
class TransformResult:
    output: Path
    rows_read: int
    rows_written: int
    rows_rejected: int
    rejected_samples: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rejected_fraction(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


# --- SQL building ----------------------------------------------------------------------------


def _from_text(kind: str, text: str) -> str:
    """Cast a VARCHAR expression to `kind`; NULL where it does not cast."""
    if kind == "text":
        return text
    if kind == "integer":
        # Whole values only: '1.0' and '1e3' give 1 and 1000, but '1.5' and '15e-1' are
        # rejected rather than rounded (the BIGINT cast alone rounds them), and so are '0x1F'
        # and '0b101', which it reads as hexadecimal and binary but no number parse does.
        as_int, as_double = f"TRY_CAST({text} AS BIGINT)", f"TRY_CAST({text} AS DOUBLE)"
        # Plain digits, as most sources write them, spell their integer exactly: one cast and
        # a compare. Only the other texts are parsed as a double too (a CASE evaluates a branch
        # for the rows still undecided), and from 2**53 up, where a double has no room for a
        # fraction, a '.' may only be followed by zeros (and an exponent that is not negative).
        return (
            f"CASE WHEN {plain_digits_sql(text)} THEN {as_int}"
            f" WHEN {as_int} = {as_double} AND abs({as_double}) < 9007199254740992 THEN {as_int}"
            f" WHEN {as_int} = {as_double} AND (NOT contains({text}, '.')"
            f" OR regexp_full_match(trim({text}), '[+-]?[0-9]+[.]0*([eE][+]?[0-9]+)?'))"
            f" THEN {as_int} END"
        )
    if kind == "number":
        as_double = f"TRY_CAST({text} AS DOUBLE)"
        return f"CASE WHEN isfinite({as_double}) THEN {as_double} END"
    if kind == "timestamp":
        # `YYYY-MM-DD HH:MM:SS` (or with `T`, or any other character the plain parse refuses)
        # has no room for an offset or a zone, so the plain TIMESTAMP parse (a third of the cost
        # of the zone-aware one) gives the same instant in UTC; anything else, or a text that
        # parse refuses, takes the zone-aware cast.
        zoned = f"TRY_CAST({text} AS TIMESTAMPTZ)"
        plain = f"make_timestamptz(epoch_us(TRY_CAST({text} AS TIMESTAMP)))"
        # Ruby's and Go's default text puts a space before the offset, and Go a zone name
        # after it (`2024-01-02 03:04:05 -0700 MST`): the offset alone decides the instant.
        spaced = (
            f"TRY_CAST(regexp_replace({text}, {literal(SPACED_OFFSET)}, '\\1\\2') AS TIMESTAMPTZ)"
        )
        return _representable(
            kind,
            f"CASE WHEN {text} LIKE '____-__-_____:__:__' THEN coalesce({plain}, {zoned})"
            f" ELSE coalesce({zoned}, {spaced}) END",
        )
    if kind == "boolean":
        # The other types' casts ignore surrounding spaces; the BOOLEAN cast does not, so a
        # value it refuses is tried once more trimmed.
        return f"coalesce(TRY_CAST({text} AS BOOLEAN), TRY_CAST(trim({text}) AS BOOLEAN))"
    return _representable(kind, f"TRY_CAST({text} AS {DUCKDB_TYPES[kind]})")


SPACED_OFFSET = r"^\s*(\S+[ T]\S+) ([+-][0-9]{2}:?[0-9]{2})( [A-Za-z]{1,5})?\s*$"

# Dates and instants that Parquet readers (pyarrow, pandas, Python's datetime) can hold: DuckDB
# also takes 'infinity', '-infinity' and years past 9999 or before 1, which they cannot.
REPRESENTABLE = {
    "date": ("DATE '0001-01-01'", "DATE '9999-12-31'"),
    "timestamp": (
        "TIMESTAMPTZ '0001-01-01 00:00:00+00'",
        "TIMESTAMPTZ '9999-12-31 23:59:59.999999+00'",
    ),
}


def _representable(kind: str, typed: str) -> str:
    """`typed` where it is a date or instant every reader can hold, else NULL (rejected)."""
    if kind not in REPRESENTABLE:
        return typed
    low, high = REPRESENTABLE[kind]
    return f"CASE WHEN {typed} BETWEEN {low} AND {high} THEN {typed} END"


def _from_typed(kind: str, column: str, source_type: str) -> str:
    """Cast a natively typed (Parquet) column; values of another family go through text."""
    base = source_type.split("(")[0].strip().upper()
    numeric = base in INTEGER_TYPES or base in FLOAT_TYPES or base == "DECIMAL"
    if kind == "text" and (base in ("STRUCT", "MAP") or source_type.rstrip().endswith("]")):
        # Lists, structs and maps as compact JSON, the text the same value has in NDJSON.
        return f"CAST(to_json({column}) AS VARCHAR)"
    if kind == "text":
        return f"CAST({column} AS VARCHAR)"
    if kind == "integer" and base in INTEGER_TYPES:
        return f"TRY_CAST({column} AS BIGINT)"
    if kind == "integer" and base == "DECIMAL":  # exact: no double in between
        return f"CASE WHEN {column} = trunc({column}) THEN TRY_CAST({column} AS BIGINT) END"
    if kind == "integer" and numeric:
        as_double = f"CAST({column} AS DOUBLE)"
        return (
            f"CASE WHEN isfinite({as_double}) AND {as_double} = trunc({as_double})"
            f" THEN TRY_CAST({column} AS BIGINT) END"
        )
    if kind == "number" and numeric:
        as_double = f"CAST({column} AS DOUBLE)"
        return f"CASE WHEN isfinite({as_double}) THEN {as_double} END"
    if kind == "boolean" and base == "BOOLEAN":
        return column
    if kind == "date" and base == "DATE":
        return _representable(kind, column)
    if kind == "timestamp" and base in NANOSECOND_TYPES:
        # Truncated to the microsecond, as the text of the same instant is (a cast rounds).
        nanos = f"epoch_ns({column})"
        micros = f"(({nanos} - (({nanos} % 1000) + 1000) % 1000) // 1000)"
        return _representable(kind, f"make_timestamptz({micros})")
    if kind == "timestamp" and base in TIME_TYPES:
        return _representable(kind, f"CAST({column} AS TIMESTAMPTZ)")
    return _from_text(kind, f"CAST({column} AS VARCHAR)")


# --- reading the source ----------------------------------------------------------------------


@dataclass
class _Source:
    """How DuckDB reads the source, and each mapped field's raw and typed expressions."""

    reader: str
    params: dict[str, Any]
    raw: dict[str, str]  # target -> raw column (in the reader's output)
    typed: dict[str, str]  # target -> typed expression over the raw column
    rejectable: list[FieldMapping]
    empty: bool = False
    raw_is_text: bool = True  # the raw columns are the source's text (CSV, JSON), not typed


# DuckDB's words when its strict CSV parser meets a line end of another kind (no line given).
INVALID_CSV_STATE = "state machine reached an invalid state"

# The first bytes of compressed files, as people upload them (gzip is read; the others are named).
MAGIC_NUMBERS = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"PK\x03\x04", "zip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def _compression(model: DataModel, open_source: Callable[[], IO[bytes]]) -> str:
    """`gzip` or `none`, from the source's first bytes (not its name): DuckDB is told which."""
    with open_source() as raw:
        head = raw.read(6)
    found = next((name for magic, name in MAGIC_NUMBERS if head.startswith(magic)), "none")
    if found not in ("gzip", "none"):
        raise SourceError(
            f"data model {model.id!r}: the {model.source_format} source {model.source_uri!r} is"
            f" a {found} file; a text source may be plain or gzip-compressed"
        )
    return found


def _missing(model: DataModel, names: Sequence[str]) -> None:
    """Fail naming the first mapped source column that `names` (the source's columns) lacks."""
    columns = set(names)
    for mapping in model.mappings:
        if mapping.source not in columns:
            available = redact(", ".join(repr(n[:60]) for n in list(names)[:20]))
            raise SourceError(
                f"data model {model.id!r}: field mapping source column {mapping.source!r} "
                f"(-> {mapping.target!r}) is not in the {model.source_format} source "
                f"{model.source_uri!r} (columns: {available or 'none'})"
            )


def _mapped_once(model: DataModel, names: Sequence[str], where: str) -> None:
    """Fail when a mapped source column is the name of two columns (which one was meant?)."""
    for mapping in model.mappings:
        if names.count(mapping.source) > 1:
            raise SourceError(
                f"data model {model.id!r}: the {where} names {mapping.source!r} twice"
            )


def _describe(con: duckdb.DuckDBPyConnection, reader: str, params: dict[str, Any]) -> list:
    return con.execute(f"DESCRIBE SELECT * FROM {reader}", params).fetchall()  # noqa: S608


def _inspect(
    con: duckdb.DuckDBPyConnection,
    model: DataModel,
    path: str,
    open_source: Callable[[], IO[bytes]],
) -> _Source:
    """How to read the model's source: its DuckDB reader and each mapped field's SQL."""
    fmt = model.source_format
    compression = _compression(model, open_source) if fmt != "parquet" else "none"
    if fmt == "csv":
        return _inspect_csv(model, path, open_source, compression)
    if fmt in ("ndjson", "json"):
        return _inspect_json(con, model, path, compression)
    return _inspect_parquet(con, model, path, open_source)


def _inspect_csv(
    model: DataModel, path: str, open_source: Callable[[], IO[bytes]], compression: str
) -> _Source:
    layout = read_csv_layout(model, open_source, compression)
    header = layout.header
    if header is None:
        return _Source("", {}, {}, {}, [], empty=True)
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(name, index)
    _missing(model, header)
    _mapped_once(model, header, "CSV header")
    # Positional names: the header's text never appears in SQL.
    columns = {f"c{i}": "VARCHAR" for i in range(len(header))}
    reader = (
        "read_csv($path, header = true, auto_detect = false, delim = $delim, quote = '\"',"
        " escape = '\"', strict_mode = true, null_padding = false, allow_quoted_nulls = false,"
        " skip = $skip, columns = $columns,"
        f" compression = '{compression}')"
    )
    raw = {m.target: f"c{positions[m.source]}" for m in model.mappings}
    typed = {m.target: _from_text(m.type, raw[m.target]) for m in model.mappings}
    return _Source(
        reader,
        {"path": path, "columns": columns, "delim": layout.delimiter, "skip": layout.blank_lines},
        raw,
        typed,
        [m for m in model.mappings if m.type != "text"],
    )


def _inspect_json(
    con: duckdb.DuckDBPyConnection, model: DataModel, path: str, compression: str
) -> _Source:
    layout = "newline_delimited" if model.source_format == "ndjson" else "array"
    options = f"format = '{layout}', compression = '{compression}'"
    names = _json_keys(con, model, path, options)
    if names is None:
        return _Source("", {}, {}, {}, [], empty=True)
    _missing(model, names)
    sources = list(dict.fromkeys(m.source for m in model.mappings))
    reader = f"read_json($path, {options}, records = true, columns = $columns)"
    # An empty string is no value for a typed field (as an empty CSV field is).
    raw = {
        m.target: ident(m.source) if m.type == "text" else f"NULLIF({ident(m.source)}, '')"
        for m in model.mappings
    }
    typed = {m.target: _from_text(m.type, raw[m.target]) for m in model.mappings}
    return _Source(
        reader,
        {"path": path, "columns": {name: "VARCHAR" for name in sources}},
        raw,
        typed,
        [m for m in model.mappings if m.type != "text"],
    )


def _json_keys(
    con: duckdb.DuckDBPyConnection, model: DataModel, path: str, options: str
) -> list[str] | None:
    """The keys of the JSON source's records (None for a source without records)."""
    import duckdb

    probe = f"read_json($path, {options}, records = true)"
    objects = f"read_json_objects($path, {options}) AS t(value)"
    try:
        names = [row[0] for row in _describe(con, probe, {"path": path})]
        if any(m.source not in names for m in model.mappings):
            # A key that first appears after DuckDB's sample: look at every record once.
            full = f"read_json($path, {options}, records = true, sample_size = -1)"
            names = [row[0] for row in _describe(con, full, {"path": path})]
    except duckdb.BinderException as exc:
        if "expected records" not in str(exc):
            raise
        counted = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE json_type(value) <> 'OBJECT')"  # noqa: S608
            f" FROM {objects}",
            {"path": path},
        ).fetchone()
        total, not_objects = counted if counted else (0, 0)
        if not total:
            return None
        if not not_objects:  # objects, but not one key among them
            _missing(model, [])
        raise SourceError(
            f"data model {model.id!r}: the {model.source_format} source holds values that are"
            " not objects"
        ) from None
    if any(m.source not in names for m in model.mappings):
        # DuckDB names columns case-insensitively ('Id' and 'id' become 'Id' and 'id_1'),
        # while the read below matches keys exactly: the keys themselves decide.
        names = [
            row[0]
            for row in con.execute(
                f"SELECT DISTINCT unnest(json_keys(value)) FROM {objects}"  # noqa: S608
                " WHERE json_type(value) = 'OBJECT' ORDER BY 1",
                {"path": path},
            ).fetchall()
        ]
    return names


def _inspect_parquet(
    con: duckdb.DuckDBPyConnection,
    model: DataModel,
    path: str,
    open_source: Callable[[], IO[bytes]],
) -> _Source:
    # Strings written without their UTF-8 label (Hive, Impala, older Spark) are read as text.
    reader = "read_parquet($path, binary_as_string = true)"
    described = _describe(con, reader, {"path": path})
    # DuckDB renames columns whose names differ only in case (`Id`, `id` -> `Id`, `id_1`); the
    # file's own names, in the same order, decide which column a mapping reads.
    names, zones = _parquet_schema(open_source)
    if len(names) != len(described):
        names = [row[0] for row in described]
    _missing(model, names)
    _mapped_once(model, names, "Parquet source")
    column = {
        name: (ident(row[0]), str(row[1])) for name, row in zip(names, described, strict=True)
    }
    raw = {
        # An empty or blank string is no value for a typed field, as in the other formats.
        m.target: f"NULLIF(trim({column[m.source][0]}), '')"
        if m.type != "text" and column[m.source][1] == "VARCHAR"
        else column[m.source][0]
        for m in model.mappings
    }
    typed = {
        m.target: _from_typed(m.type, raw[m.target], column[m.source][1]) for m in model.mappings
    }
    for m in model.mappings:
        if m.type == "date" and (local := _local_time_sql(con, raw[m.target], zones.get(m.source))):
            # The date as the file's own zone shows it, as the text of the same value reads
            # (`2024-01-02T23:30:00-05:00` is 2 January); a zone-less instant is UTC.
            typed[m.target] = _representable("date", f"CAST({local} AS DATE)")
    rejectable = [
        m for m in model.mappings if m.type != "text" and typed[m.target] != raw[m.target]
    ]
    return _Source(reader, {"path": path}, raw, typed, rejectable, raw_is_text=False)


def _parquet_schema(open_source: Callable[[], IO[bytes]]) -> tuple[list[str], dict[str, str]]:
    """The top-level column names as the file spells them, and the time zone of each instant
    column that has one (pandas and pyarrow keep it in the footer's Arrow schema)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open_source() as handle:
        schema = pq.ParquetFile(handle).schema_arrow
    zones = {
        f.name: f.type.tz
        for f in schema
        if isinstance(f.type, pa.TimestampType) and f.type.tz not in (None, "UTC", "Z")
    }
    return list(schema.names), zones


FIXED_OFFSET = re.compile(r"([+-])([0-9]{2}):?([0-9]{2})")


def _local_time_sql(con: duckdb.DuckDBPyConnection, column: str, zone: str | None) -> str | None:
    """`column` (an instant) as the wall-clock time in `zone`; None for UTC or a zone DuckDB
    does not know (the UTC date is then taken)."""
    if not zone:
        return None
    if offset := FIXED_OFFSET.fullmatch(zone):
        sign, hours, minutes = offset.groups()
        total = (int(hours) * 60 + int(minutes)) * (-1 if sign == "-" else 1)
        return f"(CAST({column} AS TIMESTAMP) + INTERVAL ({total}) MINUTE)"
    known = con.execute("SELECT count(*) FROM pg_timezone_names() WHERE name = ?", [zone])
    row = known.fetchone()
    return f"timezone({literal(zone)}, {column})" if row and row[0] else None


# --- the transform ---------------------------------------------------------------------------


def connect(settings: EngineSettings) -> duckdb.DuckDBPyConnection:
    return duckdb_connection(
        settings.memory_limit, threads=settings.threads, temp_dir=settings.temp_dir
    )


def _empty_output(
    con: duckdb.DuckDBPyConnection, model: DataModel, target: Path, options: str
) -> None:
    columns = [f"CAST(NULL AS {DUCKDB_TYPES[m.type]}) AS {ident(m.target)}" for m in model.mappings]
    columns.append(f"CAST(NULL AS VARCHAR) AS {ident(REF_COLUMN)}")
    con.execute(
        f"COPY (SELECT {', '.join(columns)} WHERE false) TO {literal(str(target))}"  # noqa: S608
        f" ({options})"
    )


def transform(
    model: DataModel,
    path: str,
    open_source: Callable[[], IO[bytes]],
    staging: Path,
    *,
    settings: EngineSettings | None = None,
    max_rejected_fraction: float = 0.01,
    filesystem: Any = None,
) -> TransformResult:
    """Write `model`'s mapped, hashed rows from the source at `path` under `staging`.

    `path` is what DuckDB opens (a local path, or `<protocol>://...` of `filesystem`, an fsspec
    filesystem registered with DuckDB); `open_source` opens the same object for Python.
    Raises SourceError (unreadable source, missing column) or TooManyRejectedError.
    """
    import duckdb

    started = time.monotonic()
    staging.mkdir(parents=True, exist_ok=True)
    output = staging / "valid.parquet"
    settings = settings or EngineSettings()
    options = parquet_options(settings.parquet_version)
    with closing(connect(settings)) as con:
        if filesystem is not None:
            con.register_filesystem(filesystem)
        try:
            source = _inspect(con, model, path, open_source)
            if source.empty:
                _empty_output(con, model, output, options)
                return TransformResult(output, 0, 0, 0, seconds=time.monotonic() - started)
            written, rejected = _copy(con, model, source, output, options)
            samples = _samples(con, source) if rejected else []
        except duckdb.OutOfMemoryException as exc:
            raise EngineMemoryError(
                f"data model {model.id!r}: DuckDB ran out of memory under memory_limit"
                f" {settings.memory_limit!r} ({duckdb_message(exc, path)[:200]}); raise"
                " ops.stream_parquet.config.memory_limit"
            ) from None
        except duckdb.Error as exc:
            if isinstance(exc, duckdb.IOException) and str(staging) in str(exc):
                written = WRITE_FAILED.search(str(exc))
                raise OutputWriteError(
                    f"data model {model.id!r}: cannot write its Parquet to the staging folder: "
                    f"{written.group(1) if written else str(exc).replace(str(staging), '<staging>')}"
                    "; nothing was published"
                ) from None
            reason = duckdb_message(exc, path)
            if model.source_format == "csv" and INVALID_CSV_STATE in reason:
                reason = mixed_line_ends(open_source, _compression(model, open_source)) or reason
            raise SourceError(
                f"data model {model.id!r}: cannot read the {model.source_format} source "
                f"{model.source_uri!r}: {reason}"
            ) from None
    result = TransformResult(
        output, written + rejected, written, rejected, samples, time.monotonic() - started
    )
    if result.rejected_fraction > max_rejected_fraction:
        raise TooManyRejectedError(
            f"data model {model.id!r}: {rejected} of {result.rows_read} rows "
            f"({result.rejected_fraction:.2%}) have values that do not cast, above the "
            f"{max_rejected_fraction:.2%} threshold; nothing was published",
            {"rows_read": result.rows_read, "rows_rejected": rejected, "samples": samples},
        )
    return result


def _copy(
    con: duckdb.DuckDBPyConnection,
    model: DataModel,
    source: _Source,
    output: Path,
    options: str,
) -> tuple[int, int]:
    """Write the rows that cast to `output`; return (written, rejected).

    One streaming COPY writes the valid rows (DuckDB's parallel Parquet writer keeps memory
    bounded). The rows read come from the same pass: DuckDB's profiler counts the rows each
    operator emits, and the source scan's count is every record of the source. Only when that
    count is unavailable does a second scan (no casts) count the records.
    """
    import pyarrow.parquet as pq

    position = {m.target: i for i, m in enumerate(model.mappings)}
    typed_cols = ", ".join(
        f"{source.typed[m.target]} AS t{i}" for i, m in enumerate(model.mappings)
    )
    raws = ", ".join(
        f"{source.raw[m.target]} AS r{i}"
        for i, m in enumerate(model.mappings)
        if m in source.rejectable
    )
    written_columns, as_written = _as_written(model, source)
    extra = "".join(f", {c}" for c in [raws, *written_columns] if c)
    inner = f"SELECT {typed_cols}{extra} FROM {source.reader}"  # noqa: S608
    checks = " OR ".join(
        _rejected_sql(source, f"r{position[m.target]}", f"t{position[m.target]} IS NULL")
        for m in source.rejectable
    )
    outputs = [f"t{i} AS {ident(m.target)}" for i, m in enumerate(model.mappings)]
    ref = ref_sql(model, lambda m: f"t{position[m.target]}", lambda m: as_written.get(m.target))
    outputs.append(f"{ref} AS {ident(REF_COLUMN)}")
    query = f"SELECT {', '.join(outputs)} FROM ({inner}) WHERE NOT ({checks or 'false'})"  # noqa: S608
    # The filter reads the typed columns the projection below it computed. Pushed down, it
    # would be rewritten over the raw columns and every cast evaluated twice. Statistics
    # propagation would mark a column REQUIRED when a Parquet source's row groups happen to
    # hold no NULL, so the output's schema would change with the data from one sync to the next.
    con.execute("SET disabled_optimizers = 'filter_pushdown,statistics_propagation'")
    con.execute("SET enable_profiling = 'no_output'")
    con.execute("SET profiling_coverage = 'ALL'")
    con.execute("SET tracked_metrics = ['operator.intermediate_rows', 'operator.type']")
    try:
        con.execute(f"COPY ({query}) TO {literal(str(output))} ({options})", source.params)
        total = _scanned_rows(con.get_profiling_information(format="json"))
    finally:
        con.execute("RESET enable_profiling")
        con.execute("RESET disabled_optimizers")
    written = pq.ParquetFile(output).metadata.num_rows
    if total is None:
        counted = con.execute(f"SELECT count(*) FROM {source.reader}", source.params).fetchone()  # noqa: S608
        total = int(counted[0]) if counted else written
    return written, total - written


def _as_written(model: DataModel, source: _Source) -> tuple[list[str], dict[str, str]]:
    """Where an integer ref field's source text is already its canonical text (plain digits),
    `$_ref` uses it as it is.

    Returns the columns the projection beside the casts adds, and per ref field the expression
    (over the columns above the filter) of its source text where that text is canonical, NULL
    elsewhere. The test is the integer cast's own, computed once for both.
    """
    if not source.raw_is_text:
        return [], {}
    columns: list[str] = []
    written: dict[str, str] = {}
    refs = set(model.ref_fields)
    for i, mapping in enumerate(model.mappings):
        raw = source.raw[mapping.target]
        if mapping.target in refs and mapping.type == "integer":
            columns.append(f"CASE WHEN {plain_digits_sql(raw)} THEN {raw} END AS w{i}")
            written[mapping.target] = f"w{i}"
    return columns, written


def _rejected_sql(source: _Source, raw: str, failed: str) -> str:
    """A row's value was given but did not cast. An empty or blank text is no value for a typed
    field: a CSV's `""` is an empty string for text fields only (PostgreSQL and BigQuery write
    NULL as an empty field and an empty string as `""`). Tested only where the cast failed."""
    if source.raw_is_text:
        return f"({failed} AND {raw} IS NOT NULL AND trim({raw}) <> '')"
    return f"({raw} IS NOT NULL AND {failed})"


def _scanned_rows(profile: str) -> int | None:
    """The rows the plan's one table scan emitted, from DuckDB's JSON profile (None if absent)."""
    try:
        roots = json.loads(profile).get("operator") or []
    except (ValueError, AttributeError):
        return None
    scans: list[int] = []
    pending = list(roots)
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        if node.get("type") == "TABLE_SCAN" and isinstance(node.get("intermediate_rows"), int):
            scans.append(node["intermediate_rows"])
        pending.extend(node.get("children") or [])
    return scans[0] if len(scans) == 1 else None


def _samples(con: duckdb.DuckDBPyConnection, source: _Source) -> list[dict[str, Any]]:
    """Up to five rejected rows: which field, its type and the raw value that did not cast."""
    if not source.rejectable:
        return []
    columns = []
    for index, mapping in enumerate(source.rejectable):
        columns.append(f"CAST({source.raw[mapping.target]} AS VARCHAR) AS r{index}")
        columns.append(f"{source.typed[mapping.target]} IS NULL AS f{index}")
    checks = " OR ".join(
        _rejected_sql(source, f"r{i}", f"f{i}") for i in range(len(source.rejectable))
    )
    rows = con.execute(
        f"SELECT * FROM (SELECT {', '.join(columns)} FROM {source.reader})"  # noqa: S608
        f" WHERE {checks} LIMIT {SAMPLE_SIZE}",
        source.params,
    ).fetchall()
    samples = []
    for row in rows:
        for index, mapping in enumerate(source.rejectable):
            value, failed = row[2 * index], row[2 * index + 1]
            if value is not None and value.strip() and failed:
                samples.append(
                    {
                        "field": mapping.target,
                        "source": mapping.source,
                        "type": mapping.type,
                        "value": redact(str(value))[:200],
                    }
                )
                break
    return samples
