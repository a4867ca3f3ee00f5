"""DuckDB's read errors as run failures may show them: the reason and where, never the data.

A source row is the user's data (it may hold anything), so it stays out of logs, run records
and `stream_sync_jobs.error`; the line or record number is enough to find it. The path DuckDB
opened is a staging detail (the failure names the model's `source_uri`), and DuckDB's advice
names options the sync sets itself.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path

from sync_assets.core.redaction import redact


class SourceError(RuntimeError):
    """The source cannot be read as its declared format, or lacks a mapped column."""


ADVICE_MARKERS = (
    "Possible fixes",
    "Possible Solution",
    "\n  file =",
    "\nLINE ",
    "Try setting ",
    "Try increasing 'maximum_object_size'",
)
CSV_REASONS = (
    "Expected Number of Columns",
    "Value with unterminated quote",
    "Invalid unicode",
    "Maximum line size",
)
QUOTED_VALUE = re.compile(r'value ".*" is not valid', re.DOTALL)  # Parquet's non-UTF-8 bytes
IN_FILE = re.compile(r" in file the source(?=,)")
MALFORMED_JSON = re.compile(
    r"Malformed JSON, at byte (\d+) in (?:line|record/value) (\d+): (.*)", re.DOTALL
)
JSON_TRANSFORM = re.compile(
    r"JSON transform error, in (?:line|record/value) (\d+): (.*)", re.DOTALL
)
DUPLICATE_KEY = re.compile(r'has duplicate key "(.*)"\s*$', re.DOTALL)
NOT_AN_OBJECT = re.compile(r"Expected OBJECT, but got (\w+)")
JSON_KINDS = {
    "VARCHAR": "string",
    "BIGINT": "number",
    "UBIGINT": "number",
    "DOUBLE": "number",
    "BOOLEAN": "boolean",
    "ARRAY": "array",
    "NULL": "null",
}
PARSER_REASON = re.compile(r"[A-Za-z ,'-]+")  # yyjson's own words, e.g. "unexpected character"


def duckdb_message(exc: BaseException, path: str) -> str:
    """DuckDB's error without the source data it quotes, its advice, option dump or `path`."""
    text = str(exc)
    for spelled in (f"'{path}'", f'"{path}"', path):
        text = text.replace(spelled, "the source")
    for marker in ADVICE_MARKERS:
        text = text.split(marker, 1)[0]
    head, quoted, rest = text.partition("Original Line:")
    if quoted:
        # The quoted row may run over many lines (a quote that never closes takes the rest of
        # the file with it); DuckDB's reason comes after it, on the last line.
        reason = next((line.strip() for line in reversed(rest.splitlines()[1:]) if line), "")
        if not reason.startswith(CSV_REASONS):
            reason = "the row does not follow the CSV format"
        text = f"{head} {reason}"
    text = QUOTED_VALUE.sub("a value is not valid", text)
    text = IN_FILE.sub("", text)
    text = MALFORMED_JSON.sub(_malformed_json, text)
    text = JSON_TRANSFORM.sub(_json_transform, text)
    return redact(" ".join(text.split())[:600])


def _malformed_json(match: re.Match[str]) -> str:
    offset, record = int(match.group(1)), int(match.group(2)) - _malformed_record_skew()
    reason = match.group(3).strip().rstrip(".")
    if not PARSER_REASON.fullmatch(reason):
        reason = "not valid JSON"
    return f"malformed JSON in record {record} (at its byte {offset}): {reason}"


def _json_transform(match: re.Match[str]) -> str:
    record, detail = match.group(1), match.group(2).strip()
    if key := DUPLICATE_KEY.search(detail):
        return f'record {record} is an object with the key "{key.group(1)[:80]}" twice'
    if kind := NOT_AN_OBJECT.match(detail):
        found = JSON_KINDS.get(kind.group(1), "value of another kind")
        return f"record {record} is {'an' if found[0] in 'aeiou' else 'a'} {found}, not an object"
    return f"record {record} does not have the shape of the other records"


@functools.cache
def _malformed_record_skew() -> int:
    """How far past the malformed record DuckDB's number points (DuckDB 2.0: one).

    Measured on a two-record file whose second record is broken, so the message is right for
    whichever DuckDB is installed.
    """
    import duckdb

    with tempfile.TemporaryDirectory() as folder, duckdb.connect() as con:
        path = Path(folder) / "probe.ndjson"
        path.write_text('{"a": 1}\n{"a": 1 x}\n')
        try:
            con.execute(
                "SELECT * FROM read_json(?, format = 'newline_delimited', records = true)",
                [str(path)],
            ).fetchall()
        except duckdb.Error as exc:
            found = MALFORMED_JSON.search(
                IN_FILE.sub("", str(exc).replace(f'"{path}"', "the source"))
            )
            if found:
                return int(found.group(2)) - 2
    return 0
