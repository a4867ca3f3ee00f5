"""A CSV source's header, delimiter and leading blank lines, read before DuckDB reads the rows.

The header is read in Python so that its text never reaches SQL (DuckDB reads the columns by
position) and so that a broken header fails with its reason instead of DuckDB reading no rows.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from sync_assets.streams.models import DataModel
from sync_assets.streams.source_errors import SourceError

OTHER_DELIMITERS = (";", "\t", "|")
UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that `surrogateescape` could not decode


@dataclass(frozen=True)
class CsvLayout:
    header: list[str] | None  # None: no record at all (an empty file, blank lines only)
    delimiter: str = ","
    blank_lines: int = 0  # before the header, for DuckDB's `skip`


def read_csv_layout(
    model: DataModel, open_source: Callable[[], IO[bytes]], compression: str
) -> CsvLayout:
    """The header, delimiter and leading blank lines of a CSV, read without loading the file.

    Comma-separated as RFC 4180 says, unless the header read that way lacks a mapped column
    and read with `;` (spreadsheets in locales that write decimal commas), a tab or `|` it has
    every one: such files are read with that delimiter instead of failing.
    """
    try:
        layout = _first_record(model, open_source, compression, ",")
    except SourceError as error:
        layout, failure = None, error
    else:
        failure = None
        header = layout.header
        if header is None or all(m.source in header for m in model.mappings):
            return layout
    for delimiter in OTHER_DELIMITERS:
        try:
            other = _first_record(model, open_source, compression, delimiter)
        except SourceError:
            continue
        names = other.header or []
        if len(names) > 1 and all(m.source in names for m in model.mappings):
            return other
    if failure is not None:
        raise failure
    assert layout is not None
    return layout


def _first_record(
    model: DataModel, open_source: Callable[[], IO[bytes]], compression: str, delimiter: str
) -> CsvLayout:
    """The first record read with `delimiter` and the blank lines before it.

    Only the header's own bytes must be UTF-8 here: undecodable bytes are kept as escapes, so a
    bad byte in a row that shares the first buffer is left to DuckDB, which names its line.
    """
    with open_source() as raw:
        stream = gzip.GzipFile(fileobj=raw) if compression == "gzip" else raw
        text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            # Strict: a quote that never closes, or text after a closing quote, is an error
            # here (DuckDB would read no rows after such a header and report nothing).
            records = csv.reader(text, strict=True, delimiter=delimiter)
            blank_lines, header = 0, None
            for record in records:
                if record:
                    header = record
                    break
                blank_lines = records.line_num  # Excel and hand-edited files may start blank
        except csv.Error as exc:
            raise _header_error(model, str(exc)) from None
        except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
            raise _header_error(model, f"it is not readable gzip ({exc})") from None
    if header and any(UNDECODABLE.search(name) for name in header):
        raise _header_error(model, "it is not UTF-8 text")
    return CsvLayout(header, delimiter, blank_lines)


def _header_error(model: DataModel, reason: str) -> SourceError:
    return SourceError(
        f"data model {model.id!r}: the header of the CSV source {model.source_uri!r} cannot be"
        f" read: {reason}"
    )
