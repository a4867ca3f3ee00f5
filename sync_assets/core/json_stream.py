"""The items of one array in a JSON object file, parsed one at a time, each with its own text.

The file is read and decoded a block at a time and every item is parsed by the standard
library's C scanner (`JSONDecoder.raw_decode`), so memory holds about one block whatever the size
of the array, and the parse runs at about twice ijson's speed. Each item comes with the exact
text it was read from, for a digest of what was sent without serializing it again.

Strict JSON only: `NaN` and `Infinity` are refused, as is anything after the object. Integers
are exact, and a number too large for a double (`1e400`) is kept exactly as a Decimal rather
than becoming infinity. A lone surrogate escape (`"\ud800"`, text no encoder can write) reads as
`?`, as ijson reads it.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, BinaryIO

BLOCK = 1 << 20
WHITESPACE = re.compile(r"[ \t\n\r]*")
NUMBER_TAIL = re.compile(r"[0-9eE+\-.]*\Z")
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JsonStreamError(ValueError):
    """The file is not one complete, strict JSON object."""


def _refuse_constant(name: str) -> Any:
    raise JsonStreamError(f"{name} is not JSON")


def _exact_float(text: str) -> float | Decimal:
    number = float(text)
    return number if math.isfinite(number) else Decimal(text)


_DECODE = json.JSONDecoder(parse_float=_exact_float, parse_constant=_refuse_constant).raw_decode


def array_items(handle: BinaryIO, key: str) -> Iterator[tuple[Any, str]]:
    """Each item of the array under `key` of the object in `handle` (UTF-8), with its text.

    The rest of the object is read too, so a file cut short or with broken JSON anywhere
    raises JsonStreamError (after the items before the break were given). A `key` that is
    absent or not an array gives nothing.
    """
    window = _Window(handle)
    window.expect("{")
    if window.peek() == "}":
        window.advance()
    else:
        while True:
            name, _ = window.value()
            if not isinstance(name, str):
                raise JsonStreamError(f"expected a member name at {window.where()}")
            window.expect(":")
            if name == key and window.peek() == "[":
                yield from _array(window)
            else:
                window.value()
            if window.peek() == ",":
                window.advance()
                continue
            window.expect("}")
            break
    if window.peek() != "":
        raise JsonStreamError(f"extra data after the object at {window.where()}")


def _array(window: _Window) -> Iterator[tuple[Any, str]]:
    window.expect("[")
    if window.peek() == "]":
        window.advance()
        return
    while True:
        yield window.value()
        if window.peek() == ",":
            window.advance()
            continue
        window.expect("]")
        return


class _Window:
    """The decoded text of `handle` from the current position on, a block at a time."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.text = ""
        self.pos = 0
        self.consumed = 0  # characters dropped before `text`
        self.eof = False

    def where(self) -> str:
        return f"character {self.consumed + self.pos}"

    def _more(self) -> bool:
        """Append the next block (dropping what was consumed); False at the end of the file."""
        if self.eof:
            return False
        block = self.handle.read(BLOCK)
        try:
            tail = self.decoder.decode(block, final=not block)
        except UnicodeDecodeError as exc:
            raise JsonStreamError(f"not UTF-8 near {self.where()}: {exc.reason}") from None
        self.eof = not block
        self.consumed += self.pos
        self.text = self.text[self.pos :] + tail
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character after whitespace ("" at the end of the file)."""
        while True:
            self.pos = WHITESPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.text):
                return self.text[self.pos]
            if not self._more():
                return ""

    def advance(self) -> None:
        self.pos += 1

    def expect(self, char: str) -> None:
        found = self.peek()
        if found != char:
            seen = repr(found) if found else "the end of the file"
            raise JsonStreamError(f"expected {char!r} at {self.where()}, found {seen}")
        self.pos += 1

    def value(self) -> tuple[Any, str]:
        """The JSON value starting at the next non-blank character, and its text."""
        self.peek()
        while True:
            try:
                value, end = _DECODE(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if self._more():  # the value may go on in the next block
                    continue
                raise JsonStreamError(f"{exc.msg} at character {self.consumed + exc.pos}") from None
            except ValueError as exc:  # an integer of more digits than Python converts
                raise JsonStreamError(f"{exc} at {self.where()}") from None
            # A number the window cuts ("12" of "123", "1" of "1e400") may go on in the next
            # block: so may anything followed by nothing but number characters.
            if NUMBER_TAIL.match(self.text, end) and self._more():
                continue
            text = self.text[self.pos : end]
            self.pos = end
            if SURROGATE_ESCAPE.search(text):
                value = _without_lone_surrogates(value)
            return value, text


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode()
    if isinstance(value, list):
        return [_without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
    return value
