"""LHAPDF metadata: the flat YAML subset of ``.info`` files and member-file headers.

LHAPDF's global defaults (its ``lhapdf.conf``) fill the keys a set leaves out.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from madnis_py.physics.pdf.errors import PDFGridFormatError

__all__ = ["INFO_DEFAULTS", "parse_metadata", "parse_value", "read_info"]

#: LHAPDF's global defaults (its ``lhapdf.conf``) for keys a set may leave out.
INFO_DEFAULTS: dict[str, Any] = {
    "Interpolator": "logcubic",
    "Extrapolator": "continuation",
    "ForcePositive": 0,
    "MZ": 91.1876,
    "MDown": 0.005,
    "MUp": 0.002,
    "MStrange": 0.10,
    "MCharm": 1.29,
    "MBottom": 4.19,
    "MTop": 172.9,
    "FlavorScheme": "variable",
    "NumFlavors": 5,
    "AlphaS_OrderQCD": 5,
}

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-.]*)\s*:(.*)$")
INT_RE = re.compile(r"^[+-]?\d+$")


def _parse_scalar(text: str) -> Any:
    """Convert one YAML flow scalar: int, float, bool, quoted or bare string."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if INT_RE.match(s):
        return int(s)
    try:
        return float(s)
    except ValueError:
        pass
    low = s.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    return s


def _split_flow_list(body: str) -> list[str]:
    """Split the inside of ``[a, "b, c", d]`` at top-level commas."""
    items, cur, quote = [], [], ""
    for ch in body:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
            cur.append(ch)
        elif ch == ",":
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    items.append("".join(cur))
    return [i for i in (s.strip() for s in items) if i]


def parse_value(text: str) -> Any:
    s = text.strip()
    if s.startswith("[") and s.endswith("]"):
        return [_parse_scalar(i) for i in _split_flow_list(s[1:-1])]
    return _parse_scalar(s)


def _strip_comment(line: str) -> str:
    """Drop a ``# comment`` that is not inside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i]
    return line


def parse_metadata(lines: Sequence[str], path: str | os.PathLike[str],
                    first_line: int = 1) -> dict[str, Any]:
    """Parse the flat ``Key: value`` YAML subset LHAPDF metadata uses.

    Supports flow lists (``[a, b]``, possibly over several lines), quoted strings
    (possibly over several lines), block scalars (``|``, ``>``) and indented
    continuation lines of plain scalars.
    """
    out: dict[str, Any] = {}
    key: str | None = None
    buf = ""
    block = False
    start = first_line

    def flush() -> None:
        nonlocal key, buf, block
        if key is None:
            return
        text = buf.strip()
        if text.startswith("[") and not text.endswith("]"):
            raise PDFGridFormatError(path, start, f"unterminated list for key {key!r}")
        out[key] = text if block else parse_value(text)
        key, buf, block = None, "", False

    def open_value(text: str) -> bool:
        t = text.strip()
        if t.startswith("[") and not t.endswith("]"):
            return True
        return t[:1] in ("\"", "'") and (len(t) < 2 or not t.endswith(t[0]))

    for offset, raw in enumerate(lines):
        lineno = first_line + offset
        line = raw.rstrip("\n").rstrip("\r")
        if key is not None and block:
            if line.strip() == "" or line[:1] in " \t":
                buf += ("\n" if buf else "") + line.strip()
                continue
            flush()
        if key is not None and (open_value(buf) or (line[:1] in " \t" and line.strip())):
            buf += " " + _strip_comment(line).strip()
            continue
        stripped = _strip_comment(line).strip()
        if not stripped or stripped == "---" or stripped.startswith("%"):
            continue
        m = _KEY_RE.match(stripped)
        if m is None:
            raise PDFGridFormatError(path, lineno,
                                     f"expected a 'Key: value' metadata line, got {stripped!r}")
        flush()
        key, buf, start = m.group(1), m.group(2).strip(), lineno
        if buf in ("|", ">", "|-", ">-"):
            buf, block = "", True
    flush()
    return out


def read_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read an LHAPDF ``.info`` file into a dict of parsed values.

    Parameters
    ----------
    path : str or PathLike
        The ``<set>.info`` file.

    Returns
    -------
    dict
        Keys as in the file; ints, floats, bools, strings and lists of those.

    Raises
    ------
    PDFGridFormatError
        On a line that is not metadata, naming the file and line.
    """
    with open(path, encoding="utf-8") as fh:
        return parse_metadata(fh.readlines(), path)
