"""Stream the elements of a large JSON file without holding the whole document in memory.

The LRV and Visual Genome releases are single JSON documents of hundreds of MB; `json.load` holds the text, the
parsed objects and (after conversion) a third copy. Here each element is decoded by the C `raw_decode` from a
sliding buffer, and errors name the file with the line, column and character offset.
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError


_CHUNK = 1 << 20
_SLACK = 1 << 16
_WS = " \t\n\r"
_NUMBER = "0123456789.eE+-"


class _Cursor:
    """A forward-only window over a text file that tracks absolute offsets and line numbers for errors."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = open(path, encoding="utf-8-sig")
        self.buf = ""
        self.pos = 0  # position inside buf
        self.base = 0  # absolute offset of buf[0]
        self.base_line = 1  # line number at buf[0]
        self.base_col = 0  # characters between the last newline and buf[0]
        self.eof = False

    def close(self):
        self._fh.close()

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            chunk = self._fh.read(_CHUNK)
        except UnicodeDecodeError as err:
            raise InputError(f"{self.path}: not UTF-8 text ({err.reason} near byte {err.start})") from None
        if not chunk:
            self.eof = True
            return False
        # drop what was consumed so memory stays at about one chunk plus the largest element
        consumed = self.buf[: self.pos]
        self.base_line += consumed.count("\n")
        newline = consumed.rfind("\n")
        self.base_col = len(consumed) - newline - 1 if newline >= 0 else self.base_col + len(consumed)
        self.base += self.pos
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next non-whitespace character ('' at end of file), without consuming it."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WS:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return ""

    def expect(self, chars: str, what: str) -> str:
        char = self.peek()
        if not char or char not in chars:
            self.fail(f"expected {what}, found {char!r}" if char else f"expected {what}, found end of file")
        self.pos += 1
        return char

    def value(self):
        """Decode one JSON value at the cursor, reading more text while it is incomplete."""
        self.peek()
        while True:
            try:
                obj, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError as err:
                # an element cut by the buffer's end looks like an error: read more and retry, unless the error
                # sits well inside the buffer (then it is real, and reading on would pull the file into memory).
                # A cut string is reported at its start however long it is, and only a cut one is unterminated.
                cut = err.pos + _SLACK >= len(self.buf) or err.msg.startswith("Unterminated string")
                if cut and not self.eof and self._fill():
                    continue
                self.fail(err.msg, at=err.pos)
            except RecursionError:
                self.fail("nesting too deep")
            except ValueError:  # int() refuses numbers over sys.get_int_max_str_digits() (a DoS guard)
                self.fail(f"a number of more than {sys.get_int_max_str_digits()} digits")
            # a number at the buffer's end may continue in the next chunk ("12" | "34", "1" | ".5", "-1.5" | "E-3")
            if not self.eof and not self.buf[end:].strip(_NUMBER) and self._fill():
                continue
            self.pos = end
            return obj

    def fail(self, msg: str, at: int | None = None):
        at = self.pos if at is None else at
        before = self.buf[:at]
        line = self.base_line + before.count("\n")
        newline = before.rfind("\n")
        column = at - newline if newline >= 0 else self.base_col + at + 1
        raise InputError(f"{self.path}: invalid JSON at line {line} column {column} (char {self.base + at}): {msg}")


_DECODER = json.JSONDecoder()


def _iter_array(cur: _Cursor) -> Iterator:
    cur.expect("[", "'['")
    if cur.peek() == "]":
        cur.pos += 1
        return
    while True:
        yield cur.value()
        if cur.expect(",]", "',' or ']'") == "]":
            return


def _iter_object(cur: _Cursor) -> Iterator[str]:
    """Yield each key of an object with the cursor on its value, which the caller must consume."""
    cur.expect("{", "'{'")
    if cur.peek() == "}":
        cur.pos += 1
        return
    while True:
        if cur.peek() != '"':
            cur.fail("expected a string key")
        key = cur.value()
        cur.expect(":", "':'")
        yield key
        if cur.expect(",}", "',' or '}'") == "}":
            return


def top_level_kind(path: str | Path) -> str:
    """'[' or '{': the first significant character of the document (raises on an empty file)."""
    cur = _Cursor(Path(path))
    try:
        char = cur.peek()
    finally:
        cur.close()
    if not char:
        raise InputError(f"{path}: the file is empty")
    if char not in "[{":
        raise InputError(f"{path}: invalid JSON at line 1: expected a list or an object, found {char!r}")
    return char


def iter_records(path: str | Path, list_key: str | None = None) -> Iterator:
    """Yield the elements of a top-level JSON list, or of the list under `list_key` in a top-level object.

    Other keys of that object are decoded and discarded (they are small in every release file).
    """
    cur = _Cursor(Path(path))
    try:
        if cur.peek() == "[" or list_key is None:
            yield from _iter_array(cur)
        else:
            found = False
            for key in _iter_object(cur):
                if key == list_key and cur.peek() == "[":
                    found = True
                    yield from _iter_array(cur)
                else:
                    cur.value()
            if not found:
                raise InputError(f"{path}: no `{list_key}` list in the top-level object")
        if cur.peek():
            cur.fail("extra data after the JSON document")
    finally:
        cur.close()


def iter_items(path: str | Path) -> Iterator[tuple[str, object]]:
    """Yield `(key, value)` for each member of a top-level JSON object, one value decoded at a time."""
    cur = _Cursor(Path(path))
    try:
        for key in _iter_object(cur):
            yield key, cur.value()
        if cur.peek():
            cur.fail("extra data after the JSON document")
    finally:
        cur.close()
