"""TOML helpers of the run cards: where a key sits in the text, and writing values back.

``tomllib`` parses a document into plain dicts and forgets where each key was, so an
error about a value could not name its line. :class:`KeyLocator` scans the text once
and remembers the line of every table header and of every ``key = value`` inside a
table (dotted keys and one level of inline tables included). It is a line scanner, not
a parser: it skips multi-line strings and the continuation lines of multi-line arrays,
and a key it cannot place falls back to the line of its table.

:func:`toml_value` and :func:`toml_key` write the values a run card holds (strings,
numbers, booleans, dates, arrays, inline tables) so that ``tomllib`` reads back the same.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping, Sequence

__all__ = ["KeyLocator", "split_key", "toml_key", "toml_value"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# A key at the start of a line: bare, quoted, or dotted mixtures of both.
_KEY_PART = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_LINE_KEY = re.compile(rf"^\s*({_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=(.*)$")
_TABLE_HEADER = re.compile(r"^\s*\[(?!\[)\s*(.+?)\s*\]\s*(?:#.*)?$")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*(.+?)\s*\]\]\s*(?:#.*)?$")
_INLINE_KEY = re.compile(rf"(?:^|[{{,])\s*({_KEY_PART})\s*=")


def split_key(text: str) -> list[str]:
    """The parts of a (possibly dotted, possibly quoted) TOML key, unquoted."""
    parts = re.findall(_KEY_PART, text)
    out = []
    for part in parts:
        if part[:1] in "\"'" and len(part) >= 2:
            part = part[1:-1]
        out.append(part)
    return out


def _strip_strings(text: str) -> str:
    """The text with the contents of one-line strings blanked, so that brackets, '#'
    and '=' inside them are not read as syntax."""
    return re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', lambda m: '""', text)


class KeyLocator:
    """Line numbers (1-based) of the tables and keys of a TOML text.

    Parameters
    ----------
    text : str
        The document, as read.

    Examples
    --------
    >>> loc = KeyLocator("[run]\\nseed = 1\\n")
    >>> loc.line("run", "seed"), loc.line("run")
    (2, 1)
    """

    def __init__(self, text: str) -> None:
        self._tables: dict[str, int] = {}
        self._keys: dict[tuple[str, str], int] = {}
        table = ""
        in_string: str | None = None  # the delimiter of an open multi-line string
        depth = 0  # open brackets of a multi-line array
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if line.count(in_string) % 2 == 1:
                    in_string = None
                continue
            if depth > 0:
                clean = _strip_strings(line).split("#", 1)[0]
                depth = max(depth + clean.count("[") - clean.count("]"), 0)
                continue
            header = _ARRAY_HEADER.match(line) or _TABLE_HEADER.match(line)
            if header is not None:
                table = ".".join(split_key(header.group(1)))
                self._tables.setdefault(table, number)
                continue
            match = _LINE_KEY.match(line)
            if match is None:
                continue
            parts = split_key(match.group(1))
            value = match.group(2)
            for delimiter in ('"""', "'''"):
                if value.count(delimiter) % 2 == 1:
                    in_string = delimiter
            self._record(table, parts, number)
            if in_string is None:
                clean = _strip_strings(value).split("#", 1)[0]
                depth = max(clean.count("[") - clean.count("]"), 0)
            brace = value.find("{")
            if brace >= 0 and value[:brace].strip() == "":
                inner = ".".join([table, *parts] if table else parts)
                for key in _INLINE_KEY.findall(value[brace:]):
                    self._record(inner, split_key(key), number)

    def _record(self, table: str, parts: Sequence[str], number: int) -> None:
        for i in range(len(parts)):
            owner = ".".join([table, *parts[:i]] if table else list(parts[:i]))
            self._keys.setdefault((owner, ".".join(parts[i:])), number)
            self._keys.setdefault((owner, parts[i]), number)

    def line(self, table: str, key: str | None = None) -> int | None:
        """The line of ``key`` in ``table`` ("" for the top level), else of the table.

        Returns ``None`` when neither is in the text (a table that was never written).
        """
        if key is not None and (table, key) in self._keys:
            return self._keys[table, key]
        if table in self._tables:
            return self._tables[table]
        if "." in table:
            parent, _, name = table.rpartition(".")
            return self.line(parent, name)
        if table and ("", table) in self._keys:
            return self._keys["", table]
        return None


def toml_key(key: str) -> str:
    """A key as TOML writes it: bare when it can be, else a quoted string."""
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_string(text: str) -> str:
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
             "\r": "\\r"}
    for ch in text:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def toml_value(value: object) -> str:
    """A value as TOML writes it, on one line (tables become inline tables).

    Raises
    ------
    TypeError
        A value TOML has no type for (``None``, arbitrary objects).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = ", ".join(f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML type for {type(value).__name__} value {value!r}")
