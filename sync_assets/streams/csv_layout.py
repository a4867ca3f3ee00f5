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
        text = io.TextIOWrapper(
            _decompressed(raw, compression),
            encoding="utf-8-sig",
            errors="surrogateescape",
            newline="",
        )
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


LINE_ENDS = {b"\r\n": "CRLF", b"\n": "LF", b"\r": "CR"}
LINE_BREAK_OR_QUOTE = re.compile(rb'\r\n|\r|\n|"')


def mixed_line_ends(open_source: Callable[[], IO[bytes]], compression: str) -> str | None:
    """Where a CSV's line ends change kind (LF, CRLF, CR) outside quotes, or None.

    DuckDB's strict parser reads one kind per file and, meeting another, fails without a line
    number; a file appended to from another system (or written by `csv.writer`, which ends its
    rows with CRLF, after a header written with LF) has two. Read in full, only after a failure.
    """
    line, first, quoted, pending_cr = 1, None, False, False
    with open_source() as raw:
        stream = _decompressed(raw, compression)
        while chunk := stream.read(1 << 20):
            if pending_cr:  # a CR that ended the last chunk: its LF may start this one
                chunk = b"\r" + chunk
            pending_cr = chunk.endswith(b"\r")
            if pending_cr:
                chunk = chunk[:-1]
            for found in LINE_BREAK_OR_QUOTE.finditer(chunk):
                token = found.group()
                if token == b'"':
                    quoted = not quoted
                    continue
                if not quoted:
                    first = first or token
                    if token != first:
                        return (
                            f"line {line} ends with {LINE_ENDS[token]} where the first line ends"
                            f" with {LINE_ENDS[first]}: a CSV ends all its lines the same way"
                        )
                line += 1
        if pending_cr and not quoted and first not in (None, b"\r"):
            return f"line {line} ends with CR where the first line ends with {LINE_ENDS[first]}"
    return None


def _decompressed(raw: IO[bytes], compression: str) -> IO[bytes]:
    return gzip.GzipFile(fileobj=raw) if compression == "gzip" else raw


def _header_error(model: DataModel, reason: str) -> SourceError:
    return SourceError(
        f"data model {model.id!r}: the header of the CSV source {model.source_uri!r} cannot be"
        f" read: {reason}"
    )
