"""The DuckDB transform on real files: formats, types, `$_ref`, rejections and bad input."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sync_assets.streams.models import ModelDefinitionError, parse_model
from sync_assets.streams.row_ref import canonical_text, postgres_ref_sql, ref_hash
from sync_assets.streams.transform import (
    EngineSettings,
    SourceError,
    TooManyRejectedError,
    TransformResult,
    _scanned_rows,
    transform,
)
from sync_assets_tests.streams.conftest import COLUMNS, CSV, RECORDS, mappings

UTC = dt.UTC


def model(fmt: str, fields: list[dict] | None = None, **extra):
    return parse_model(
        {
            "id": "m1",
            "source_uri": f"sources/m1.{fmt}",
            "source_format": fmt,
            "field_mappings": fields if fields is not None else mappings(),
            **extra,
        }
    )


def run(tmp_path: Path, fmt: str, content: bytes | str, fields=None, **kwargs) -> TransformResult:
    source = tmp_path / f"source-{random.random()}.{fmt}"
    source.write_bytes(content.encode() if isinstance(content, str) else content)
    staging = tmp_path / f"staging-{random.random()}"
    extra = {k: kwargs.pop(k) for k in ("ref_fields",) if k in kwargs}
    return transform(
        model(fmt, fields, **extra),
        str(source),
        lambda: open(source, "rb"),
        staging,
        **kwargs,
    )


def read(result: TransformResult) -> list[dict]:
    return pq.read_table(result.output).to_pylist()


def parquet_bytes(records: list[dict], schema: pa.Schema | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records, schema=schema), sink)
    return sink.getvalue().to_pybytes()


def typed_records() -> list[dict]:
    rows = []
    for record in RECORDS:
        row = dict(record)
        row["day"] = dt.date.fromisoformat(row["day"]) if row["day"] else None
        row["at"] = (
            dt.datetime.fromisoformat(row["at"].replace("Z", "+00:00")) if row["at"] else None
        )
        rows.append(row)
    return rows


EXPECTED = [
    {
        "id": 1,
        "name": "Ann",
        "amount": 1.5,
        "active": True,
        "day": dt.date(2024, 1, 2),
        "at": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    },
    {
        "id": 2,
        "name": 'Bo, "the" builder',
        "amount": -0.25,
        "active": False,
        "day": dt.date(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 22, 59, 59, 500000, tzinfo=UTC),
    },
    {"id": 3, "name": None, "amount": None, "active": None, "day": None, "at": None},
]


def sources() -> dict[str, bytes | str]:
    return {
        "csv": CSV,
        "ndjson": "\n".join(json.dumps(r) for r in RECORDS) + "\n",
        "json": json.dumps(RECORDS, indent=2),
        "parquet": parquet_bytes(typed_records()),
    }


def test_every_format_gives_the_same_typed_rows_and_refs(tmp_path: Path) -> None:
    kinds = [kind for _, kind in COLUMNS]
    outputs = {}
    for fmt, content in sources().items():
        result = run(tmp_path, fmt, content)
        assert (result.rows_read, result.rows_written, result.rows_rejected) == (3, 3, 0), fmt
        rows = sorted(read(result), key=lambda r: r["id"])
        assert [{k: v for k, v in r.items() if k != "$_ref"} for r in rows] == EXPECTED, fmt
        # The documented algorithm, recomputed in Python, gives the same `$_ref`.
        for row in rows:
            assert row["$_ref"] == ref_hash([row[c] for c, _ in COLUMNS], kinds), fmt
        outputs[fmt] = [r["$_ref"] for r in rows]
        schema = pq.read_schema(result.output)
        assert [f.name for f in schema] == [c for c, _ in COLUMNS] + ["$_ref"]
        assert str(schema.field("at").type) == "timestamp[us, tz=UTC]"
        assert (
            str(schema.field("id").type) == "int64"
            and str(schema.field("day").type) == "date32[day]"
        )
        assert pq.ParquetFile(result.output).metadata.row_group(0).column(0).compression == "ZSTD"
    assert len({tuple(v) for v in outputs.values()}) == 1
    assert len(set(outputs["csv"])) == 3


def test_a_quoted_empty_csv_field_is_an_empty_string_for_text_fields_only(tmp_path: Path) -> None:
    """PostgreSQL's and BigQuery's CSV write NULL as an empty field and '' as `""`."""
    fields = mappings([("id", "integer"), ("name", "text"), ("amount", "number"), ("day", "date")])
    csv_rows = read(run(tmp_path, "csv", 'id,name,amount,day\n1,""," ",""\n2,,,\n', fields))
    expected = [("", None, None), (None, None, None)]
    assert [(r["name"], r["amount"], r["day"]) for r in csv_rows] == expected
    records = [
        {"id": 1, "name": "", "amount": "", "day": "  "},  # blank: no value either
        {"id": 2, "name": None, "amount": None, "day": None},
    ]
    ndjson = run(tmp_path, "ndjson", "\n".join(json.dumps(r) for r in records), fields)
    parquet = run(tmp_path, "parquet", parquet_bytes(records), fields)
    assert ndjson.rows_rejected == parquet.rows_rejected == 0
    refs = [r["$_ref"] for r in csv_rows]
    assert refs == [r["$_ref"] for r in read(ndjson)] == [r["$_ref"] for r in read(parquet)]
    assert refs[0] == ref_hash([1, "", None, None], ["integer", "text", "number", "date"])


def test_ref_does_not_depend_on_row_order_or_reruns(tmp_path: Path) -> None:
    rows = [{"k": i, "v": f"value {i}"} for i in range(500)]
    fields = mappings([("k", "integer"), ("v", "text")])
    shuffled = rows[:]
    random.Random(7).shuffle(shuffled)
    as_csv = "k,v\n" + "".join(f"{r['k']},{r['v']}\n" for r in rows)
    first = {r["k"]: r["$_ref"] for r in read(run(tmp_path, "csv", as_csv, fields))}
    again = {r["k"]: r["$_ref"] for r in read(run(tmp_path, "csv", as_csv, fields))}
    other = read(run(tmp_path, "ndjson", "\n".join(json.dumps(r) for r in shuffled), fields))
    assert first == again == {r["k"]: r["$_ref"] for r in other}
    # ref_fields narrows the hash to the key: a changed value keeps its row's identity.
    keyed = read(
        run(tmp_path, "csv", as_csv.replace("value 3\n", "changed\n"), fields, ref_fields=["k"])
    )
    changed = next(r for r in keyed if r["k"] == 3)
    assert changed["v"] == "changed" and changed["$_ref"] == ref_hash([3], ["integer"]) != first[3]


def test_types_nulls_and_values_that_do_not_cast(tmp_path: Path) -> None:
    fields = mappings(COLUMNS)
    lines = ["id,name,amount,active,day,at"]
    good = [
        "10,a,1e3,yes,2024-01-31,2024-01-31",
        "11,b,-0.5,0,2024-01-31T10:00:00,2024-01-31 10:00:00+02:00",
        "12.0,c,.5,T,2024/01/31,2024-01-31T10:00:00.123456Z",
        " 13 ,,,,,",
    ]
    bad = [
        "1.5,x,1,true,2024-01-01,2024-01-01",  # integer with a fraction
        "14,x,abc,true,2024-01-01,2024-01-01",  # number
        "15,x,NaN,true,2024-01-01,2024-01-01",  # not a finite number
        "16,x,1,maybe,2024-01-01,2024-01-01",  # boolean
        "17,x,1,true,2024-13-01,2024-01-01",  # date
        "18,x,1,true,2024-01-01,yesterday",  # timestamp
    ]
    result = run(
        tmp_path, "csv", "\n".join(lines + good + bad) + "\n", fields, max_rejected_fraction=1
    )
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (10, 4, 6)
    rows = sorted(read(result), key=lambda r: r["id"])
    assert [r["id"] for r in rows] == [10, 11, 12, 13]
    assert [r["amount"] for r in rows] == [1000.0, -0.5, 0.5, None]
    assert [r["active"] for r in rows] == [True, False, True, None]
    assert rows[1]["at"] == dt.datetime(2024, 1, 31, 8, 0, tzinfo=UTC)
    assert rows[0]["at"] == dt.datetime(2024, 1, 31, tzinfo=UTC)
    assert rows[2]["day"] == dt.date(2024, 1, 31) and rows[3]["name"] is None
    samples = {(s["field"], s["value"]) for s in result.rejected_samples}
    assert samples == {
        ("id", "1.5"),
        ("amount", "abc"),
        ("amount", "NaN"),
        ("active", "maybe"),
        ("day", "2024-13-01"),
    }  # five samples at most; the sixth bad row is counted, not sampled
    assert all(s["type"] and s["source"] for s in result.rejected_samples)


def test_integers_are_whole_values_never_rounded(tmp_path: Path) -> None:
    """Exponents that leave a fraction, hexadecimal and binary are rejected, not rounded.

    Plain digits (the BIGINT's own text) take the fast path; the rest are checked as doubles.
    """
    fields = mappings([("k", "integer"), ("v", "integer")])
    whole = ["1e3", "1.0", "-2.00", "+5", " 7 ", "9223372036854775807"]
    whole += ["-9223372036854775808", "42", "-0", "007", "1_000"]
    fractions = ["15e-1", "5e-1", "123e-2", "1.5", "0x1F", "0b101", "9223372036854775808"]
    lines = [f"{i},{v}" for i, v in enumerate(whole + fractions)]
    result = run(
        tmp_path, "csv", "k,v\n" + "\n".join(lines) + "\n", fields, max_rejected_fraction=1
    )
    rows = sorted(read(result), key=lambda r: r["k"])
    assert [r["v"] for r in rows] == [1000, 1, -2, 5, 7, 2**63 - 1, -(2**63), 42, 0, 7, 1000]
    assert result.rows_rejected == len(fractions)
    assert {s["value"] for s in result.rejected_samples} <= set(fractions)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_dates_and_instants_no_reader_can_hold_are_rejected(tmp_path: Path, fmt) -> None:
    """'infinity' and years outside 1-9999: DuckDB takes them, pyarrow and Python cannot."""
    fields = mappings([("k", "integer"), ("d", "date"), ("t", "timestamp")])
    values = ["infinity", "-infinity", "99999-01-01", "0000-01-01", "2024-02-29"]
    if fmt == "csv":
        content: bytes | str = "k,d,t\n" + "".join(f"{i},{v},{v}\n" for i, v in enumerate(values))
    else:
        con = duckdb.connect()
        table = con.sql(
            "SELECT k, CAST(v AS DATE) AS d, CAST(v AS TIMESTAMP) AS t"
            " FROM unnest($values) WITH ORDINALITY AS u(v, k)",
            params={"values": values},
        ).to_arrow_table()
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        content = sink.getvalue().to_pybytes()
    result = run(tmp_path, fmt, content, fields, max_rejected_fraction=1)
    rows = read(result)  # pyarrow reads every value back
    assert [(r["d"], r["t"]) for r in rows] == [
        (dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, tzinfo=UTC))
    ]
    assert rows[0]["$_ref"] == ref_hash(
        [rows[0][n] for n in ("k", "d", "t")], ["integer", "date", "timestamp"]
    )
    assert result.rows_rejected == 4


def test_nanosecond_instants_are_truncated_in_every_format(tmp_path: Path) -> None:
    """A Parquet timestamp[ns] gives the instant and `$_ref` its text gives in a CSV."""
    fields = mappings([("k", "integer"), ("t", "timestamp"), ("d", "date")])
    texts = [
        "2024-01-01 00:00:00.123456789",
        "2024-01-01 23:59:59.9999999",
        "1969-12-31 23:59:59.999999999",
    ]
    nanos = [1704067200123456789, 1704153599999999900, -1]
    csv_rows = read(
        run(
            tmp_path,
            "csv",
            "k,t,d\n" + "".join(f"{i},{x},{x}\n" for i, x in enumerate(texts)),
            fields,
        )
    )
    for zone in (None, "UTC"):
        kind = pa.timestamp("ns", tz=zone)
        table = pa.table({"k": range(3), "t": pa.array(nanos, kind), "d": pa.array(nanos, kind)})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        parquet_rows = read(run(tmp_path, "parquet", sink.getvalue().to_pybytes(), fields))
        assert sorted(parquet_rows, key=lambda r: r["k"]) == sorted(csv_rows, key=lambda r: r["k"])
    by_key = {r["k"]: r for r in csv_rows}
    assert by_key[1]["t"] == dt.datetime(2024, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
    assert by_key[2]["t"] == dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert by_key[1]["d"] == dt.date(2024, 1, 1)


def test_booleans_ignore_surrounding_spaces_as_the_other_types_do(tmp_path: Path) -> None:
    fields = mappings([("k", "integer"), ("b", "boolean")])
    result = run(
        tmp_path, "csv", "k,b\n 1, true\n2 ,false \n3, maybe \n", fields, max_rejected_fraction=1
    )
    assert sorted((r["k"], r["b"]) for r in read(result)) == [(1, True), (2, False)]
    assert [s["value"] for s in result.rejected_samples] == [" maybe "]


def test_integers_above_2_53_keep_their_fractions_visible(tmp_path: Path) -> None:
    """A double cannot hold `.5` at that size: the text and Parquet DECIMALs decide instead."""
    fields = mappings([("k", "integer"), ("v", "integer")])
    texts = [
        "9007199254740993.5",
        "10000000000000000.50",
        "10000000000000000.00",
        "1.5e17",
        "1.0e17",  # zeros after the point and a positive exponent: whole
        "90071992547409935.0e-1",  # 9007199254740993.5
    ]
    result = run(
        tmp_path,
        "csv",
        "k,v\n" + "".join(f"{i},{v}\n" for i, v in enumerate(texts)),
        fields,
        max_rejected_fraction=1,
    )
    assert [r["v"] for r in read(result)] == [10000000000000000, 10**17]
    decimals = pa.array([Decimal("10000000000000000.50"), Decimal("12.00")], pa.decimal128(38, 2))
    table = pa.table({"k": [0, 1], "v": decimals})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    content = sink.getvalue().to_pybytes()
    result = run(tmp_path, "parquet", content, fields, max_rejected_fraction=1)
    assert [r["v"] for r in read(result)] == [12] and result.rows_rejected == 1


@pytest.mark.parametrize(
    ("zone", "day"),
    [("America/New_York", 2), ("-05:00", 2), ("+05:30", 3), ("UTC", 3), (None, 3)],
)
def test_an_instant_mapped_to_a_date_is_its_date_in_its_own_zone(tmp_path, zone, day) -> None:
    """As the text of the same value reads: `2024-01-02T23:30:00-05:00` is 2 January."""
    fields = mappings([("id", "integer"), ("d", "date")])
    instant = dt.datetime(2024, 1, 3, 4, 30, tzinfo=dt.UTC)
    values = pa.array([instant if zone else instant.replace(tzinfo=None)], pa.timestamp("us", zone))
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": [1], "d": values}), sink)
    result = run(tmp_path, "parquet", sink.getvalue().to_pybytes(), fields)
    assert read(result)[0]["d"] == dt.date(2024, 1, day)
    if zone == "-05:00":
        text = run(tmp_path, "csv", "id,d\n1,2024-01-02T23:30:00-05:00\n", fields)
        assert read(text) == read(result)


def test_parquet_columns_are_found_by_their_exact_names(tmp_path: Path) -> None:
    """DuckDB renames `id` beside `Id` to `id_1`; a mapping reads the column it names."""
    table = pa.table({"Id": [1, 2], "id": [10, 20], "id_1": [100, 200]})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    content = sink.getvalue().to_pybytes()
    for source, expected in (("id", [10, 20]), ("id_1", [100, 200]), ("Id", [1, 2])):
        fields = [{"source": source, "target": "x", "type": "integer"}]
        assert sorted(r["x"] for r in read(run(tmp_path, "parquet", content, fields))) == expected
    twice = pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"])
    sink = pa.BufferOutputStream()
    pq.write_table(twice, sink)
    with pytest.raises(SourceError, match="names 'x' twice"):
        run(tmp_path, "parquet", sink.getvalue().to_pybytes(), mappings([("x", "integer")]))
    with pytest.raises(SourceError, match="the CSV header names 'x' twice"):
        run(tmp_path, "csv", "x,x\n1,2\n", mappings([("x", "integer")]))


def test_parquet_bytes_and_nested_values_as_text_match_ndjson(tmp_path: Path) -> None:
    """Unlabelled UTF-8 bytes are text; lists and structs are their compact JSON, as in NDJSON,
    so the same record has the same `$_ref` from either format."""
    fields = mappings([("b", "text"), ("l", "text"), ("s", "text")])
    table = pa.table(
        {
            "b": pa.array([b"caf\xc3\xa9"], pa.binary()),
            "l": pa.array([["a", "b"]]),
            "s": pa.array([{"k": 1}]),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    from_parquet = read(run(tmp_path, "parquet", sink.getvalue().to_pybytes(), fields))
    ndjson = '{"b": "café", "l": ["a", "b"], "s": {"k": 1}}\n'
    assert from_parquet == read(run(tmp_path, "ndjson", ndjson, fields))
    assert from_parquet[0]["b"] == "café" and from_parquet[0]["s"] == '{"k":1}'


def test_json_values_of_the_wrong_kind_are_rejected(tmp_path: Path) -> None:
    fields = mappings([("id", "integer"), ("tags", "text"), ("n", "number")])
    records = [
        {"id": 1, "tags": ["a", "b"], "n": "2.5"},  # a string number casts; a list is text
        {"id": {"x": 1}, "tags": None, "n": 1},  # an object is not an integer
        {"id": "", "tags": "t", "n": True},  # an empty string is no value; true is no number
    ]
    result = run(
        tmp_path,
        "ndjson",
        "\n".join(json.dumps(r) for r in records),
        fields,
        max_rejected_fraction=1,
    )
    assert (result.rows_written, result.rows_rejected) == (1, 2)
    assert read(result)[0] == {
        "id": 1,
        "tags": '["a","b"]',
        "n": 2.5,
        "$_ref": read(result)[0]["$_ref"],
    }


def test_parquet_numbers_cast_by_value_and_other_types_through_text(tmp_path: Path) -> None:
    fields = mappings([("a", "integer"), ("b", "number"), ("c", "text"), ("d", "timestamp")])
    schema = pa.schema(
        [("a", pa.float64()), ("b", pa.int32()), ("c", pa.int64()), ("d", pa.date32())]
    )
    records = [
        {"a": 2.0, "b": 3, "c": 4, "d": dt.date(2024, 5, 6)},
        {"a": 2.5, "b": None, "c": None, "d": None},
    ]
    result = run(
        tmp_path, "parquet", parquet_bytes(records, schema), fields, max_rejected_fraction=1
    )
    assert (result.rows_written, result.rows_rejected) == (1, 1)
    row = read(result)[0]
    assert (row["a"], row["b"], row["c"], row["d"]) == (
        2,
        3.0,
        "4",
        dt.datetime(2024, 5, 6, tzinfo=UTC),
    )
    assert result.rejected_samples == [
        {"field": "a", "source": "a", "type": "integer", "value": "2.5"}
    ]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "parquet"])
def test_rows_read_is_counted_in_the_same_pass_as_the_write(tmp_path: Path, fmt) -> None:
    # Enough rows for several vectors and threads; every 997th value does not cast.
    records = [{"k": i, "v": "x" if i % 997 == 0 else str(i * 0.5)} for i in range(20_000)]
    fields = mappings([("k", "integer"), ("v", "number")])
    if fmt == "csv":
        content: str | bytes = "k,v\n" + "".join(f"{r['k']},{r['v']}\n" for r in records)
    elif fmt == "ndjson":
        content = "\n".join(json.dumps(r) for r in records)
    elif fmt == "json":
        content = json.dumps(records)
    else:
        content = parquet_bytes(records)
    result = run(tmp_path, fmt, content, fields, max_rejected_fraction=1)
    assert (result.rows_read, result.rows_written, result.rows_rejected) == (20_000, 19_979, 21)
    assert {s["value"] for s in result.rejected_samples} == {"x"}


def test_the_scan_count_comes_from_the_profile_or_is_absent() -> None:
    scan = {"type": "TABLE_SCAN", "intermediate_rows": 7}
    profile = {"operator": [{"type": "COPY_TO_FILE", "children": [{"children": [scan]}]}]}
    assert _scanned_rows(json.dumps(profile)) == 7
    # No scan, two scans, or no profile at all: the caller counts with a second scan.
    assert _scanned_rows(json.dumps({"operator": [{"type": "COPY_TO_FILE"}]})) is None
    assert _scanned_rows(json.dumps({"operator": [scan, scan]})) is None
    assert _scanned_rows("{}") is None and _scanned_rows("not json") is None


def test_a_numbers_canonical_text_is_its_bits_in_hex() -> None:
    assert canonical_text(1.5, "number") == "3FF8000000000000"
    assert canonical_text(-1.5, "number") == "BFF8000000000000"
    assert canonical_text(0.1, "number") == "3FB999999999999A"
    assert canonical_text(0.0, "number") == canonical_text(-0.0, "number") == "0"
    assert canonical_text(5e-324, "number") == "1"  # the smallest subnormal: no leading zeros
    assert canonical_text(7, "number") == canonical_text(7.0, "number") == "401C000000000000"


PG_RECOMPUTE_CSV = """id,name,amount,active,day,at
1,Ann,1.5,true,2024-01-02,2024-01-02T03:04:05Z
2,"Bo, ""the"" builder",-0.25,false,2024-02-29,2024-02-29 22:59:59.5+00
3,,,,,
4,"",-0.0,true,0099-12-31,1969-12-31T23:59:59.999999Z
5,Zoë,5e-324,false,9999-12-31,2038-01-19 03:14:08.123456-05:00
6,x,1.7976931348623157e308,true,1970-01-01,1970-01-01 00:00:00
7,y,-0.1,,2000-02-29,
"""


def test_postgresql_recomputes_every_rows_ref(tmp_path: Path, database_url: str) -> None:
    """`postgres_ref_sql`, over the typed rows loaded into PostgreSQL, gives each row's `$_ref`
    whatever the session's time zone and date style."""
    result = run(tmp_path, "csv", PG_RECOMPUTE_CSV)
    rows = read(result)
    assert len(rows) == 7
    with psycopg.connect(database_url) as conn:
        conn.execute("SET TimeZone = 'America/New_York'")
        conn.execute("SET DateStyle = 'SQL, DMY'")
        conn.execute(
            "CREATE TABLE t (id bigint, name text, amount float8, active boolean, day date,"
            " at timestamptz)"
        )
        with conn.cursor().copy("COPY t FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row[c] for c, _ in COLUMNS])
        ref = postgres_ref_sql(COLUMNS)  # identifiers quoted by it
        recomputed = conn.execute(f"SELECT id, {ref} FROM t").fetchall()  # noqa: S608
    assert dict(recomputed) == {r["id"]: r["$_ref"] for r in rows}


NUMBER_TEXTS = [
    "0.1",
    "100",
    "100.0",
    "1.50",
    "-0.0",
    "0.0",
    "1e16",
    "12345678901234567",
    "0.0001",
    "0.00001",
    "123456789012345.6",
    "0.30000000000000004",
    "-7.25",
    "9007199254740993",
    ".5",
    "+3.5",
    "0.12345678901234567",
    "1.7976931348623157e308",
    "-1.7976931348623157e308",
    "5e-324",
    "-2.2250738585072014e-308",
    "1e-320",
]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_number_refs_are_the_bits_of_the_double(tmp_path: Path, fmt: str) -> None:
    """Every number, subnormals and the largest doubles included, from text or from a Parquet
    DOUBLE, gives the ref of its value (-0.0 that of 0.0)."""
    values = [float(t) for t in NUMBER_TEXTS]
    if fmt == "csv":
        content: str | bytes = "k,v\n" + "".join(f"{i},{t}\n" for i, t in enumerate(NUMBER_TEXTS))
    elif fmt == "ndjson":
        content = "".join(json.dumps({"k": i, "v": v}) + "\n" for i, v in enumerate(values))
    else:
        content = parquet_bytes([{"k": i, "v": v} for i, v in enumerate(values)])
    result = run(tmp_path, fmt, content, mappings([("k", "integer"), ("v", "number")]))
    refs = {r["k"]: r["$_ref"] for r in read(result)}
    assert len(refs) == len(values)
    for i, value in enumerate(values):
        assert refs[i] == ref_hash([i, value], ["integer", "number"]), NUMBER_TEXTS[i]
    negative_zero = NUMBER_TEXTS.index("-0.0")
    assert refs[negative_zero] == ref_hash([negative_zero, 0.0], ["integer", "number"])


AS_WRITTEN_FIELDS = [("k", "integer"), ("a", "number"), ("m", "number"), ("d", "date")]


def as_written_source(fmt: str) -> str:
    """Rows written canonically (plain digits, shortest numbers, ISO dates), money with two
    decimals, and rows written every other way a value can be written."""
    usual = [
        (str(i), f"{i}.5", f"{i}.{i % 100:02d}", f"2024-01-{i % 28 + 1:02d}") for i in range(1000)
    ]
    odd = [
        ("0001001", "1.50", "3.10", " 2024-01-02"),
        (" 1002 ", "1e3", "0.00001", "2024-01-02 "),
        ("+1003", "", "", ""),
        ("1004", "12345678901234567", "-0.0", "2024-02-29"),
        ("1005", "+3.5", "0.1", "0099-12-31"),
        ("1006", ".5", "100", "2024-01-02"),
        ("1007", "-0.00012", "1234567890123.45", "2024-01-02"),
    ]
    rows = usual + odd + usual[:50]
    names = [n for n, _ in AS_WRITTEN_FIELDS]
    if fmt == "csv":
        return ",".join(names) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    return "".join(json.dumps(dict(zip(names, r, strict=True))) + "\n" for r in rows)


@pytest.mark.parametrize("fmt", ["csv", "ndjson"])
def test_refs_from_source_texts_reused_as_written_match_the_values(tmp_path, fmt) -> None:
    """Where an integer's source text is its canonical text, `$_ref` uses the text as it is,
    and formats the value elsewhere: every row's ref is its values' ref."""
    content = as_written_source(fmt)
    result = run(tmp_path, fmt, content, mappings(AS_WRITTEN_FIELDS))
    rows = read(result)
    assert result.rows_rejected == 0 and len(rows) == 1057
    kinds = [t for _, t in AS_WRITTEN_FIELDS]
    for row in rows:
        values = [row[n] for n, _ in AS_WRITTEN_FIELDS]
        assert row["$_ref"] == ref_hash(values, kinds), values
    odd = {r["k"]: r for r in rows if r["k"] > 1000}
    assert odd[1001]["k"] == 1001 and odd[1001]["d"] == dt.date(2024, 1, 2)
    assert odd[1002]["a"] == 1000.0 and odd[1002]["m"] == 0.00001
    assert odd[1003]["a"] is None and odd[1003]["m"] is None and odd[1003]["d"] is None
    assert odd[1005]["d"] == dt.date(99, 12, 31)


def test_timestamps_are_the_instants_duckdb_reads_with_their_zone(tmp_path: Path) -> None:
    texts = [
        "2024-01-31 10:00:00",
        "2024-01-31T10:00:00",
        "2024-01-31 24:00:00",
        "1969-12-31 23:59:59",
        "2024-01-31 10:00+02",
        "2024-01-31 10:00:00+02:00",
        "2024-01-31T10:00:00Z",
        "2024-01-31 10:00:00.5",
        "2024-01-31 10:00:00 America/New_York",
        "2024-01-31",
        "2024-1-31 10:00:00",
        "2024-01-31 1:00:00Z",
        "0024-01-31 10:00:00",
        "2024-02-30 10:00:00",
        "2024-01-31 10:00:0Z",
        "2024-01-31X10:00:00",
        "2024-01-31t10:00:00",
        "2024-01-31_10:00:00",
    ]
    content = "k,at\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts))
    fields = mappings([("k", "integer"), ("at", "timestamp")])
    result = run(tmp_path, "csv", content, fields, max_rejected_fraction=1)
    got = {r["k"]: r["at"] for r in read(result)}
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        for i, text in enumerate(texts):
            want = con.execute("SELECT TRY_CAST($t AS TIMESTAMPTZ)", {"t": text}).fetchone()[0]
            assert got.get(i) == want, text
    assert result.rows_rejected == sum(1 for i in range(len(texts)) if i not in got)


@pytest.mark.parametrize(
    ("version", "format_version", "id_encoding"),
    [("v2", "2.6", "DELTA_BINARY_PACKED"), ("v1", "1.0", "PLAIN")],
)
def test_parquet_versions_hold_the_same_rows(tmp_path, version, format_version, id_encoding):
    settings = EngineSettings(parquet_version=version)
    result = run(tmp_path, "csv", CSV, settings=settings)
    rows = sorted(read(result), key=lambda r: r["id"])
    assert [{k: v for k, v in r.items() if k != "$_ref"} for r in rows] == EXPECTED
    # Past 1,000 distinct values a column is not dictionary-encoded: the version's encoding.
    content = "id,name\n" + "".join(f"{i},n{i}\n" for i in range(3000))
    fields = mappings([("id", "integer"), ("name", "text")])
    result = run(tmp_path, "csv", content, fields, settings=settings)
    metadata = pq.ParquetFile(result.output).metadata
    assert metadata.format_version == format_version
    assert id_encoding in metadata.row_group(0).column(0).encodings
    with duckdb.connect() as con:
        again = con.execute("SELECT sum(id) FROM read_parquet($p)", {"p": str(result.output)})
        assert again.fetchone() == (sum(range(3000)),)
    assert sorted(r["id"] for r in read(result)) == list(range(3000))


def test_rejections_above_the_threshold_fail(tmp_path: Path) -> None:
    fields = mappings([("id", "integer")])
    content = "id\n" + "".join(f"{i}\n" for i in range(198)) + "x\ny\n"  # 1% rejected
    assert run(tmp_path, "csv", content, fields).rows_rejected == 2
    with pytest.raises(TooManyRejectedError, match=r"3 of 201 rows \(1.49%\).*1.00% threshold"):
        run(tmp_path, "csv", content + "z\n", fields)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json", "parquet"])
def test_a_mapped_column_the_source_lacks_names_the_model_and_column(tmp_path: Path, fmt) -> None:
    content = sources()[fmt]
    fields = mappings([("id", "integer"), ("nope", "text")])
    with pytest.raises(SourceError, match=r"data model 'm1'.*source column 'nope'"):
        run(tmp_path, fmt, content, fields)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_csv_with_another_delimiter_is_read_with_it(tmp_path: Path, delimiter: str) -> None:
    """Spreadsheets export `;` where the decimal mark is a comma; tabs and pipes are common too."""
    comma = run(tmp_path, "csv", CSV)
    rows = [
        ["id", "name", "amount", "active", "day", "at"],
        ["1", "Ann", "1.50", "true", "2024-01-02", "2024-01-02T03:04:05Z"],
        [
            "2",
            f'Bo, "the"{delimiter} builder',
            "-0.25",
            "false",
            "2024-02-29",
            "2024-02-29T22:59:59.5Z",
        ],
        ["3", "", "", "", "", ""],
    ]
    quoted = [[f'"{v}"' if v and not v.isalnum() else v for v in row] for row in rows]
    text = "".join(delimiter.join(row) + "\n" for row in quoted)
    other = run(tmp_path, "csv", text.replace('"the"', '""the""'))
    assert (other.rows_read, other.rows_rejected) == (3, 0)
    assert read(other)[1]["name"] == f'Bo, "the"{delimiter} builder'
    assert [r["$_ref"] for r in read(other)][::2] == [r["$_ref"] for r in read(comma)][::2]


@pytest.mark.parametrize(
    "content",
    ["\n\n" + CSV, "\ufeff\r\n" + CSV.replace("\n", "\r\n"), gzip.compress(b"\n" + CSV.encode())],
    ids=["lf", "bom-crlf", "gzip"],
)
def test_blank_lines_before_the_csv_header_are_skipped(tmp_path: Path, content) -> None:
    result = run(tmp_path, "csv", content)
    assert (result.rows_read, result.rows_rejected) == (3, 0)
    assert read(result) == read(run(tmp_path, "csv", CSV))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        # A header written with LF, rows by Python's csv.writer (CRLF by default).
        (b"id,name\n1,a\r\n2,b\r\n", "line 2 ends with CRLF where the first line ends with LF"),
        (
            b"id,name\n" + b"".join(b"%d,a\n" % i for i in range(5000)) + b"9,secret-value\r\n",
            "line 5002 ends with CRLF where the first line ends with LF",
        ),
        (b'id,name\n1,"x\r\ny"\n2,c\r\n', "line 4 ends with CRLF"),  # quoted CRLFs are data
        (b"id,name\r\n1,a\rb\r\n", "line 2 ends with CR where the first line ends with CRLF"),
        (gzip.compress(b"id,name\r\n1,a\n"), "line 2 ends with LF where the first line ends"),
    ],
    ids=["csv-writer", "appended", "quoted", "bare-cr", "gzip"],
)
def test_mixed_line_ends_fail_naming_the_line(tmp_path: Path, content: bytes, reason) -> None:
    """DuckDB's strict parser fails on them without a line: the sync finds and names it."""
    with pytest.raises(SourceError, match=r"data model 'm1'") as caught:
        run(tmp_path, "csv", content, mappings([("id", "integer"), ("name", "text")]))
    assert reason in str(caught.value) and "secret-value" not in str(caught.value)


def test_commas_stay_unless_another_delimiter_gives_every_mapped_column(tmp_path: Path) -> None:
    fields = mappings([("id", "integer"), ("name", "text")])
    with pytest.raises(SourceError, match=r"source column 'id'.*columns: 'id;nom'"):
        run(tmp_path, "csv", "id;nom\n1;a\n", fields)  # `;` splits it, yet 'name' is not there
    result = run(tmp_path, "csv", "id,name;x\n1,a;b\n", fields[:1])
    assert read(result)[0]["id"] == 1  # read with commas: the mapped column is there
    with pytest.raises(SourceError, match=r"Expected Number of Columns: 2 Found: 3"):
        run(tmp_path, "csv", "id;name\n1;a;b\n", fields)  # a ragged `;` file fails as one


@pytest.mark.parametrize(("fmt", "content"), [("ndjson", "{}\n{}\n"), ("json", "[{}, {}]")])
def test_objects_without_any_key_lack_the_mapped_column(tmp_path: Path, fmt, content) -> None:
    """Records that are objects, just empty ones, are not called 'not objects'."""
    fields = mappings([("id", "integer")])
    with pytest.raises(SourceError, match=r"source column 'id' .* \(columns: none\)"):
        run(tmp_path, fmt, content, fields)


def test_json_keys_that_differ_only_in_case_are_told_apart(tmp_path: Path) -> None:
    """DuckDB renames `id` to `id_1` beside an `Id`; the model's `id` is still found, exactly."""
    content = '{"Id": 0, "name": "x"}\n' + "".join(
        f'{{"id": {i}, "name": "n"}}\n' for i in range(1, 1000)
    )
    result = run(tmp_path, "ndjson", content, mappings([("id", "integer"), ("name", "text")]))
    ids = sorted((r["id"] for r in read(result)), key=lambda v: (v is not None, v))
    assert ids == [None, *range(1, 1000)]  # the `Id` record has no `id`
    with pytest.raises(SourceError, match=r"source column 'ID'"):
        run(tmp_path, "ndjson", content, mappings([("ID", "integer")]))


def test_a_json_key_that_appears_late_is_found(tmp_path: Path) -> None:
    records = [{"id": i} for i in range(30_000)] + [{"id": 30_000, "late": "here"}]
    fields = mappings([("id", "integer"), ("late", "text")])
    result = run(tmp_path, "ndjson", "\n".join(json.dumps(r) for r in records), fields)
    late = {r["id"]: r["late"] for r in read(result)}
    assert result.rows_written == 30_001 and late[30_000] == "here" and late[0] is None


def test_a_row_that_is_not_utf8_is_named_by_line_and_not_quoted(tmp_path: Path) -> None:
    """The row's content stays out of the error (it is the user's data), and so does DuckDB's
    advice and option dump; the line number is kept."""
    fields = mappings([("id", "integer"), ("name", "text")])
    rows = b"".join(b"%d,ok\n" % i for i in range(3000))
    content = b"id,name\n" + rows + b"9,caf\xe9 private-data\n"
    with pytest.raises(SourceError) as caught:
        run(tmp_path, "csv", content, fields)
    message = str(caught.value)
    assert "data model 'm1'" in message and "Line: 3002" in message
    assert "not utf-8 encoded" in message
    for leaked in ("private-data", "Original Line", str(tmp_path), "strict_mode", "Possible"):
        assert leaked not in message


@pytest.mark.parametrize(
    ("fmt", "content", "reason"),
    [
        ("csv", "id,name\n1,a\n2\n3,c\n", "Expected Number of Columns: 2 Found: 1"),
        ("csv", "id,name\n1,a\n2,b,extra\n", "Expected Number of Columns: 2 Found: 3"),
        # The quote never closes: DuckDB quotes every row after it as the "line".
        ("csv", 'id,name\n1,"open\n2,secret-value\n3,secret-value\n', "Line: 2 Value with"),
        ("csv", 'id,"na"me\n1,a\n', "cannot be read: ',' expected after"),
        ("csv", 'id,"name\n1,secret-value\n', "cannot be read: unexpected end of data"),
        ("csv", b"id,n\xe9\n1,a\n", "the header of the CSV source 'sources/m1.csv' cannot be"),
        ("ndjson", '{"id": 1, "name": "a"}\n{"id": 2, "na', "malformed JSON in record 2"),
        ("json", '[{"id": 1, "name": "a"}, {"id": ', "malformed JSON in record 2"),
        # DuckDB numbers a malformed record one past its place, and quotes JSON records.
        (
            "ndjson",
            '{"id": 1, "name": "a"}\n\n{"id": 2, "name": "secret-value" x}\n{"id": 3}\n',
            "malformed JSON in record 2 (at its byte 34): unexpected character",
        ),
        (
            "json",
            '[{"id": 1, "name": "a"},\n {"id": 2, "name": "secret-value" x}]',
            "malformed JSON in record 2",
        ),
        (
            "ndjson",
            '{"id": 1, "name": "secret-value", "name": "b"}\n',
            'record 1 is an object with the key "name" twice',
        ),
        (
            "ndjson",
            "".join(f'{{"id": {i}, "name": "a"}}\n' for i in range(30_000)) + '"secret-value"\n',
            "record 30001 is a string, not an object",
        ),
        (
            "json",
            "[" + ", ".join(f'{{"id": {i}, "name": "a"}}' for i in range(30_000)) + ', ["secret"]]',
            "record 30001 is an array, not an object",
        ),
        (  # a mapped key missing from DuckDB's sample: every record is looked at first
            "json",
            "[" + ", ".join(f'{{"id": {i}}}' for i in range(30_000)) + ', ["secret-value"]]',
            "the json source holds values that are not objects",
        ),
        ("json", '{"id": 1, "name": "a"}', "Expected top-level JSON array"),
        ("json", '[{"id": 1, "name": "a"}, 5]', "values that are not objects"),
        ("parquet", "id,name\n1,a\n", "No magic bytes"),
    ],
)
def test_malformed_sources_fail_with_the_reason(tmp_path: Path, fmt, content, reason) -> None:
    fields = mappings([("id", "integer"), ("name", "text")])
    with pytest.raises(SourceError, match=r"data model 'm1'") as caught:
        run(tmp_path, fmt, content, fields)
    assert reason in str(caught.value)
    assert "secret-value" not in str(caught.value)  # no error quotes the rows
    assert str(tmp_path) not in str(caught.value) and "Try setting" not in str(caught.value)


def test_parquet_text_that_is_not_utf8_fails_without_quoting_it(tmp_path: Path) -> None:
    table = pa.table({"id": [1, 2], "name": pa.array([b"ok", b"\xffsecret-value"], pa.binary())})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    with pytest.raises(SourceError, match="a value is not valid UTF8") as caught:
        run(tmp_path, "parquet", sink.getvalue().to_pybytes(), mappings([("name", "text")]))
    assert "secret-value" not in str(caught.value) and "\\x" not in str(caught.value)


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("csv", ""),
        ("csv", "\r\n\n"),
        ("csv", "id,name,amount,active,day,at\n"),
        ("ndjson", ""),
        ("json", "[]"),
    ],
)
def test_an_empty_source_gives_an_empty_parquet_with_the_mapped_schema(
    tmp_path, fmt, content
) -> None:
    result = run(tmp_path, fmt, content)
    assert (result.rows_read, result.rows_written) == (0, 0)
    schema = pq.read_schema(result.output)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("id", "int64"),
        ("name", "string"),
        ("amount", "double"),
        ("active", "bool"),
        ("day", "date32[day]"),
        ("at", "timestamp[us, tz=UTC]"),
        ("$_ref", "string"),
    ]


HOSTILE = [
    'we"ird',
    "semi; DROP TABLE streams.data_models; --",
    "it's",
    "sp ace",
    "x') TO '/tmp/pwned.csv' (FORMAT csv); --",
]


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_hostile_field_names_are_quoted_never_executed(tmp_path: Path, fmt) -> None:
    fields = [{"source": name, "target": name[::-1], "type": "text"} for name in HOSTILE]
    fields[0]["type"] = "integer"
    record = {name: str(i) for i, name in enumerate(HOSTILE)}
    if fmt == "csv":
        header = ",".join('"' + n.replace('"', '""') + '"' for n in HOSTILE)
        content: bytes | str = header + "\n" + ",".join(record.values()) + "\n"
    elif fmt == "ndjson":
        content = json.dumps(record) + "\n"
    else:
        content = parquet_bytes([record])
    result = run(tmp_path, fmt, content, fields)
    [row] = read(result)
    assert row[HOSTILE[0][::-1]] == 0 and row[HOSTILE[1][::-1]] == "1"
    assert list(row) == [n[::-1] for n in HOSTILE] + ["$_ref"]
    assert not Path("/tmp/pwned.csv").exists()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"id": "../etc"}, "not usable as a file name"),
        ({"source_uri": "/etc/passwd"}, "must be '<bucket>/<key>'"),
        ({"source_uri": "sources/../../secret"}, "must be '<bucket>/<key>'"),
        ({"source_uri": "sources/star*.csv"}, r"holds \*, which DuckDB reads as a file pattern"),
        ({"source_uri": "sources/data[1]?.csv"}, r"holds \? \["),
        ({"source_format": "xlsx"}, "source_format 'xlsx'"),
        ({"field_mappings": [{"source": "a", "type": "money"}]}, "type 'money'"),
        ({"field_mappings": [{"source": "a"}, {"source": "b", "target": "A"}]}, "used twice"),
        ({"field_mappings": [{"source": "a", "target": "$_ref"}]}, "reserved"),
        ({"field_mappings": []}, "field_mappings is empty"),
        ({"ref_fields": ["zzz"]}, "ref field 'zzz' is not a mapped target"),
    ],
)
def test_model_definitions_are_validated(row: dict, message: str) -> None:
    base = {
        "id": "m1",
        "source_uri": "sources/a.csv",
        "source_format": "csv",
        "field_mappings": [{"source": "a", "target": "a", "type": "text"}],
    }
    with pytest.raises(ModelDefinitionError, match=message):
        parse_model({**base, **row})


def test_the_output_schema_does_not_depend_on_whether_the_data_holds_nulls(tmp_path) -> None:
    """DuckDB would mark a column REQUIRED when a Parquet source's statistics show no NULL."""
    fields = mappings([("id", "integer"), ("name", "text")])
    schemas = []
    for ids in ([1, 2], [1, None]):
        table = pa.table({"id": pa.array(ids, pa.int64()), "name": ["a", "b"]})
        schemas.append(
            pq.read_schema(
                run(tmp_path, "parquet", parquet_bytes(table.to_pylist()), fields).output
            )
        )
    schemas.append(pq.read_schema(run(tmp_path, "csv", "id,name\n1,a\n", fields).output))
    assert all(field.nullable for field in schemas[0])
    assert (
        schemas[0].remove_metadata() == schemas[1].remove_metadata() == schemas[2].remove_metadata()
    )


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("csv", "id,name\n1,Ann\n2,Bo\n"),
        ("ndjson", '{"id": 1, "name": "Ann"}\n{"id": 2, "name": "Bo"}\n'),
        ("json", '[{"id": 1, "name": "Ann"}, {"id": 2, "name": "Bo"}]'),
    ],
)
def test_a_gzip_compressed_text_source_is_read_whatever_its_name(tmp_path, fmt, content) -> None:
    """Told by its first bytes, as an upload named `orders.csv` may still be gzip."""
    fields = mappings([("id", "integer"), ("name", "text")])
    plain = read(run(tmp_path, fmt, content, fields))
    assert read(run(tmp_path, fmt, gzip.compress(content.encode()), fields)) == plain
    assert [r["name"] for r in plain] == ["Ann", "Bo"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"PK\x03\x04" + b"\x00" * 40, "is a zip file; a text source may be"),
        (b"\x1f\x8b" + b"\x00" * 40, "it is not readable gzip"),
        (gzip.compress(b"id,name\n1,Ann\n" * 100, mtime=0)[:40], "Unexpected end of GZIP stream"),
    ],
    ids=["zip", "not gzip after its magic", "truncated gzip"],
)
def test_other_compressions_and_broken_gzip_fail_with_the_reason(tmp_path, content, reason):
    with pytest.raises(SourceError, match=reason):
        run(tmp_path, "csv", content, mappings([("id", "integer")]))


def test_ruby_and_go_timestamps_with_a_space_before_the_offset(tmp_path: Path) -> None:
    """`Time#to_s` (Ruby) and `time.Time.String()` (Go) are not ISO 8601, and common in CSVs."""
    texts = {
        "2024-01-02 03:04:05 +0000": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        "2024-01-02 03:04:05 -0700 MST": dt.datetime(2024, 1, 2, 10, 4, 5, tzinfo=UTC),
        "2024-01-02 03:04:05.123456789 +0530 IST": dt.datetime(
            2024, 1, 1, 21, 34, 5, 123456, tzinfo=UTC
        ),
        "2024-01-02 03:04:05 +0000 and more": None,
    }
    content = "k,at\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts))
    fields = mappings([("k", "integer"), ("at", "timestamp")])
    result = run(tmp_path, "csv", content, fields, max_rejected_fraction=1)
    got = {r["k"]: r["at"] for r in read(result)}
    assert [got.get(i) for i in range(len(texts))] == list(texts.values())
    assert result.rows_rejected == 1
