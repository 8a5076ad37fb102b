"""The ``lhagrid1`` member-file reader: knots, parton IDs and values of one member.

Every malformed line is reported with its file and line number (``PDFGridFormatError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from madnis_py.physics.pdf.errors import PDFGridFormatError
from madnis_py.physics.pdf.info import parse_metadata

__all__ = ["GridData", "read_lhagrid"]

FloatArray = NDArray[np.float64]


@dataclass
class GridData:
    """One member's knots and values, subgrids concatenated along Q2 as in LHAPDF 6.3+.

    ``values[ix, iq2, ic]`` is x f for flavour column ``ic``; Q2 knots at subgrid
    boundaries appear twice (end of one subgrid, start of the next).
    """

    xs: FloatArray
    q2s: FloatArray
    pids: list[int]
    values: FloatArray
    header: dict[str, Any] = field(default_factory=dict)


def read_lhagrid(path: Path) -> GridData:
    """Parse an ``lhagrid1`` member file (metadata block, then ``---``-separated subgrids)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PDFGridFormatError(path, None, f"not a text file ({exc})") from None
    lines = text.splitlines()
    # Block boundaries: lines that are exactly '---' (after trimming).
    seps = [i for i, ln in enumerate(lines) if ln.strip() == "---"]
    if not seps:
        raise PDFGridFormatError(path, None, "no '---' separator: not an lhagrid1 member file")
    if any(ln.strip() and not ln.strip().startswith("#") for ln in lines[seps[-1] + 1:]):
        raise PDFGridFormatError(path, seps[-1] + 2,
                                 "data after the final '---': member files must end with "
                                 "a '---' separator line")
    header = parse_metadata(lines[:seps[0]], path, 1)
    fmt = header.get("Format", "lhagrid1")
    if str(fmt) != "lhagrid1":
        raise PDFGridFormatError(path, None, f"Format is {fmt!r}; only 'lhagrid1' is supported")

    xs: FloatArray | None = None
    pids: list[int] | None = None
    q2_blocks: list[FloatArray] = []
    value_blocks: list[FloatArray] = []
    for b in range(len(seps) - 1):
        lo, hi = seps[b] + 1, seps[b + 1]
        body = _block_body(path, lines, lo, hi, b)
        bx, bq, bp = _block_knots(path, body)
        if xs is None:
            xs = bx
        elif bx.shape != xs.shape or np.any(bx != xs):
            raise PDFGridFormatError(path, body[0][0] + 1,
                                     "x knots differ from those of the first subgrid "
                                     "(LHAPDF requires one x grid for all subgrids)")
        if pids is None:
            pids = bp
        elif bp != pids:
            raise PDFGridFormatError(path, body[2][0] + 1,
                                     f"parton IDs {bp} differ from those of the first "
                                     f"subgrid {pids}")
        if len(set(bp)) != len(bp) or not bp:
            raise PDFGridFormatError(path, body[2][0] + 1, f"invalid parton ID list {bp}")
        vals = _block_values(path, body[3:], b, hi, bx.size, bq.size, len(bp))
        q2_blocks.append(bq * bq)
        value_blocks.append(vals)
    assert xs is not None and pids is not None
    q2s = np.concatenate(q2_blocks)
    if np.any(np.diff(q2s) < 0):
        raise PDFGridFormatError(path, None, "Q knots of consecutive subgrids are not ordered")
    return GridData(xs=xs, q2s=q2s, pids=pids, values=np.concatenate(value_blocks, axis=1),
                     header=header)


def _block_body(path: Path, lines: list[str], lo: int, hi: int,
                b: int) -> list[tuple[int, str]]:
    """The (line index, text) pairs of subgrid block ``b`` (lines ``lo:hi``), blank and
    comment lines left out; at least the x knot, Q knot and flavour lines."""
    body = [(i, lines[i].strip()) for i in range(lo, hi)
            if lines[i].strip() and not lines[i].strip().startswith("#")]
    if not body:
        raise PDFGridFormatError(path, hi + 1, f"empty subgrid block {b + 1}")
    if len(body) < 3:
        raise PDFGridFormatError(path, body[-1][0] + 1,
                                 f"subgrid block {b + 1} needs x knots, Q knots and "
                                 "flavour lines before its values")
    return body


def _floats(path: Path, item: tuple[int, str], what: str) -> FloatArray:
    """The numbers on one (line index, text) line, which must not be empty."""
    try:
        arr = np.array([float(t) for t in item[1].split()], dtype=np.float64)
    except ValueError:
        raise PDFGridFormatError(path, item[0] + 1,
                                 f"expected {what} (numbers), got {item[1][:60]!r}"
                                 ) from None
    if arr.size == 0:
        raise PDFGridFormatError(path, item[0] + 1, f"empty {what} line")
    return arr


def _block_knots(path: Path,
                 body: list[tuple[int, str]]) -> tuple[FloatArray, FloatArray, list[int]]:
    """A block's x knots, Q knots (positive, strictly increasing) and parton IDs."""
    bx = _floats(path, body[0], "x knots")
    bq = _floats(path, body[1], "Q knots")
    try:
        bp = [int(t) for t in body[2][1].split()]
    except ValueError:
        raise PDFGridFormatError(path, body[2][0] + 1,
                                 f"expected integer parton IDs, got {body[2][1][:60]!r}"
                                 ) from None
    for arr, what, item in ((bx, "x knots", body[0]), (bq, "Q knots", body[1])):
        if not np.all(np.isfinite(arr)) or np.any(np.diff(arr) <= 0) or arr[0] <= 0:
            raise PDFGridFormatError(path, item[0] + 1,
                                     f"{what} must be positive and strictly increasing")
    return bx, bq, bp


def _block_values(path: Path, data: list[tuple[int, str]], b: int, hi: int, nx: int,
                  nq: int, nfl: int) -> FloatArray:
    """A block's values, shape (nx, nq, nfl): one line of ``nfl`` finite numbers per
    (x, Q) knot pair; ``hi`` is the index of the block's closing ``---``."""
    nrows = nx * nq
    if len(data) != nrows:
        where = data[nrows][0] + 1 if len(data) > nrows else hi + 1
        raise PDFGridFormatError(path, where,
                                 f"subgrid block {b + 1} has {len(data)} value lines, "
                                 f"expected {nx} x knots * {nq} Q knots = "
                                 f"{nrows}")
    tokens: list[str] = []
    for lineno, ln in data:
        parts = ln.split()
        if len(parts) != nfl:
            raise PDFGridFormatError(path, lineno + 1,
                                     f"{len(parts)} values on a line, expected one per "
                                     f"flavour ({nfl})")
        tokens.extend(parts)
    try:
        vals = np.array(tokens, dtype=np.float64)
    except ValueError:
        for lineno, ln in data:
            for t in ln.split():
                try:
                    float(t)
                except ValueError:
                    raise PDFGridFormatError(path, lineno + 1,
                                             f"cannot read {t!r} as a number") from None
        raise  # pragma: no cover - every token parsed individually
    if not np.all(np.isfinite(vals)):
        bad = int(np.flatnonzero(~np.isfinite(vals))[0]) // nfl
        raise PDFGridFormatError(path, data[bad][0] + 1, "non-finite value")
    return vals.reshape(nx, nq, nfl)
