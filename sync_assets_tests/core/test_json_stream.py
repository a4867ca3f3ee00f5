"""The items of a JSON object's array, read a block at a time: values, texts, and refusals."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from sync_assets.core import json_stream
from sync_assets.core.json_stream import JsonStreamError, array_items


def items(body: str | bytes, key: str = "response") -> list[tuple[object, str]]:
    data = body.encode() if isinstance(body, str) else body
    return list(array_items(io.BytesIO(data), key))


@pytest.fixture(params=[1, 3, 7, 1 << 20], ids=lambda size: f"block{size}")
def block(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Tiny blocks put every value, number and UTF-8 sequence across block boundaries."""
    monkeypatch.setattr(json_stream, "BLOCK", request.param)
    return request.param


def test_each_item_comes_with_the_text_it_was_read_from(block: int) -> None:
    body = (
        '{"get": "leagues", "errors": [], "response": [\n'
        '  {"league": {"id": 1, "name": "Première Ligue"}, "seasons": [{"year": 2024}]},\n'
        '  123456789012345678901234567890, 1.5, "日本", true, null, [], {}\n'
        '], "paging": {"current": 1, "total": 1}}\n'
    )
    read = items(body)
    assert [value for value, _ in read] == json.loads(body)["response"]
    assert [text for _, text in read] == [
        '{"league": {"id": 1, "name": "Première Ligue"}, "seasons": [{"year": 2024}]}',
        "123456789012345678901234567890",
        "1.5",
        '"日本"',
        "true",
        "null",
        "[]",
        "{}",
    ]


def test_a_number_beyond_a_double_is_kept_exactly(block: int) -> None:
    [(value, text)] = items('{"response": [1e400]}')
    assert value == Decimal("1e400") and text == "1e400"


def test_the_array_may_come_anywhere_and_may_be_missing_or_not_an_array(block: int) -> None:
    assert [v for v, _ in items('{"a": {"response": [9]}, "response": [1, 2], "z": 0}')] == [1, 2]
    assert items('{"results": 0}') == []
    assert items('{"response": {"1": 2}}') == []
    assert items("{}") == []
    assert items(' {"response": []} \n') == []


@pytest.mark.parametrize(
    ("body", "given", "message"),
    [
        ('{"response": [1, 2', 2, "expected ']'"),
        ('{"response": [1, {"a": "cut', 1, "Unterminated string"),
        ('{"response": [1, NaN]}', 1, "NaN is not JSON"),
        ('{"response": [-Infinity]}', 0, "-Infinity is not JSON"),
        ('{"response": [1]} trailing', 1, "extra data"),
        ('{"response": [1], "paging": {"total": }', 1, "Expecting value"),
        ('[{"response": [1]}]', 0, "expected '{'"),
        ('{"response": [1 2]}', 1, "expected ']'"),
        ("", 0, "the end of the file"),
    ],
)
def test_broken_json_raises_after_the_items_before_the_break(
    block: int, body: str, given: int, message: str
) -> None:
    read = []
    with pytest.raises(JsonStreamError, match=message):
        for value, _ in array_items(io.BytesIO(body.encode()), "response"):
            read.append(value)
    assert len(read) == given


def test_bytes_that_are_not_utf8_are_refused(block: int) -> None:
    with pytest.raises(JsonStreamError, match="not UTF-8"):
        items(b'{"response": ["caf\xe9"]}')


def test_a_lone_surrogate_escape_reads_as_a_question_mark(block: int) -> None:
    [(value, text)] = items('{"response": [{"name": "a\\ud800b \\ud83d\\ude00"}]}')
    assert value == {"name": "a?b 😀"}
    assert text == '{"name": "a\\ud800b \\ud83d\\ude00"}'
