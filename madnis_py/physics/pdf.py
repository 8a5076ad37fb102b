"""Parton distribution functions and alpha_s from LHAPDF6 grids, batched in numpy.

A pure-numpy reader for LHAPDF6 ``lhagrid1`` sets (A. Buckley et al., arXiv:1412.7420)
that reproduces LHAPDF's default numerics: the ``logcubic`` interpolator (cubic Hermite
in log x and log Q2 with LHAPDF's finite-difference slopes at the knots), the
``continuation`` extrapolator (the MSTW-style continuation: power laws in x below the
grid and at large Q2, an interpolated anomalous dimension below Q2_min), the
``nearest`` and ``error`` extrapolators, and the ``ipol`` and ``analytic`` alpha_s.
Heavy-flavour thresholds are subgrid boundaries in Q (repeated Q knots); the subgrid
is chosen from Q2 as LHAPDF does, a Q2 exactly on a boundary using the upper one.

Sets are looked up by name in the package's embedded sets (``madnis_py/data/pdfsets``:
``LHToyPDF``, the Les Houches toy PDF of hep-ph/0204316 evolved at LO), then, when the
``lhapdf`` Python module imports, through LHAPDF itself, else in the directories of
``LHAPDF_DATA_PATH`` (or ``LHAPATH``) and ``LHAPDF_DATA_PREFIX``. An integer is an
LHAPDF ID, mapped to a set and member through ``pdfsets.index`` in those directories.

Example
-------
>>> pdf = PDF("LHToyPDF")
>>> pdf.xfxQ2(21, np.array([1e-3, 0.1]), np.array([100.0, 1e4]))  # doctest: +SKIP
array([...])
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "DEFAULT_PDF_SET",
    "EMBEDDED_PDFSETS_DIR",
    "INFO_DEFAULTS",
    "AlphaSAnalytic",
    "AlphaSIpol",
    "PDF",
    "PDFError",
    "PDFGridFormatError",
    "PDFSetNotFoundError",
    "pdf_search_paths",
    "read_info",
]

FloatArray = NDArray[np.float64]
ArrayLike = Any  # numpy array, torch tensor, sequence or scalar

#: The set used when none is named: the embedded Les Houches toy PDF.
DEFAULT_PDF_SET = "LHToyPDF"
#: Where the embedded sets live (one directory per set, LHAPDF layout).
EMBEDDED_PDFSETS_DIR = Path(__file__).resolve().parent.parent / "data" / "pdfsets"

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

_QUARK_NAMES = ("Down", "Up", "Strange", "Charm", "Bottom", "Top")
_ZETA3 = 1.2020569031595942


class PDFError(Exception):
    """Base class of the errors raised by this module."""


class PDFSetNotFoundError(PDFError, FileNotFoundError):
    """A PDF set (or member, or LHAPDF ID) that is in none of the searched places."""


class PDFGridFormatError(PDFError, ValueError):
    """A malformed ``.info`` or ``.dat`` file; ``path`` and ``line`` locate the problem."""

    def __init__(self, path: str | os.PathLike[str], line: int | None, message: str):
        self.path = str(path)
        self.line = line
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------------------
# YAML-ish metadata (.info files and the header block of member files)
# --------------------------------------------------------------------------------------

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_\-.]*)\s*:(.*)$")
_INT_RE = re.compile(r"^[+-]?\d+$")


def _parse_scalar(text: str) -> Any:
    """Convert one YAML flow scalar: int, float, bool, quoted or bare string."""
    s = text.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'":
        return s[1:-1]
    if _INT_RE.match(s):
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


def _parse_value(text: str) -> Any:
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


def _parse_metadata(lines: Sequence[str], path: str | os.PathLike[str],
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
        out[key] = text if block else _parse_value(text)
        key, buf, block = None, "", False

    def open_value(text: str) -> bool:
        t = text.strip()
        if t.startswith("[") and not t.endswith("]"):
            return True
        if t[:1] in ("\"", "'") and (len(t) < 2 or not t.endswith(t[0])):
            return True
        return False

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
        return _parse_metadata(fh.readlines(), path)


# --------------------------------------------------------------------------------------
# lhagrid1 member files
# --------------------------------------------------------------------------------------

@dataclass
class _GridData:
    """One member's knots and values, subgrids concatenated along Q2 as in LHAPDF 6.3+.

    ``values[ix, iq2, ic]`` is x f for flavour column ``ic``; Q2 knots at subgrid
    boundaries appear twice (end of one subgrid, start of the next).
    """

    xs: FloatArray
    q2s: FloatArray
    pids: list[int]
    values: FloatArray
    header: dict[str, Any] = field(default_factory=dict)


def _read_lhagrid(path: Path) -> _GridData:
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
    header = _parse_metadata(lines[:seps[0]], path, 1)
    fmt = header.get("Format", "lhagrid1")
    if str(fmt) != "lhagrid1":
        raise PDFGridFormatError(path, None, f"Format is {fmt!r}; only 'lhagrid1' is supported")

    xs: FloatArray | None = None
    pids: list[int] | None = None
    q2_blocks: list[FloatArray] = []
    value_blocks: list[FloatArray] = []
    for b in range(len(seps) - 1):
        lo, hi = seps[b] + 1, seps[b + 1]
        body = [(i, lines[i].strip()) for i in range(lo, hi)
                if lines[i].strip() and not lines[i].strip().startswith("#")]
        if not body:
            raise PDFGridFormatError(path, hi + 1, f"empty subgrid block {b + 1}")
        if len(body) < 3:
            raise PDFGridFormatError(path, body[-1][0] + 1,
                                     f"subgrid block {b + 1} needs x knots, Q knots and "
                                     "flavour lines before its values")

        def floats(item: tuple[int, str], what: str) -> FloatArray:
            try:
                arr = np.array([float(t) for t in item[1].split()], dtype=np.float64)
            except ValueError:
                raise PDFGridFormatError(path, item[0] + 1,
                                         f"expected {what} (numbers), got {item[1][:60]!r}"
                                         ) from None
            if arr.size == 0:
                raise PDFGridFormatError(path, item[0] + 1, f"empty {what} line")
            return arr

        bx = floats(body[0], "x knots")
        bq = floats(body[1], "Q knots")
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
        nfl, nrows = len(bp), bx.size * bq.size
        data = body[3:]
        if len(data) != nrows:
            where = data[nrows][0] + 1 if len(data) > nrows else hi + 1
            raise PDFGridFormatError(path, where,
                                     f"subgrid block {b + 1} has {len(data)} value lines, "
                                     f"expected {bx.size} x knots * {bq.size} Q knots = "
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
        q2_blocks.append(bq * bq)
        value_blocks.append(vals.reshape(bx.size, bq.size, nfl))
    assert xs is not None and pids is not None
    q2s = np.concatenate(q2_blocks)
    if np.any(np.diff(q2s) < 0):
        raise PDFGridFormatError(path, None, "Q knots of consecutive subgrids are not ordered")
    return _GridData(xs=xs, q2s=q2s, pids=pids, values=np.concatenate(value_blocks, axis=1),
                     header=header)


# --------------------------------------------------------------------------------------
# Interpolation and extrapolation (LHAPDF's LogBicubicInterpolator and extrapolators)
# --------------------------------------------------------------------------------------

def _hermite(t: FloatArray, vl: FloatArray, vdl: FloatArray, vh: FloatArray,
             vdh: FloatArray) -> FloatArray:
    """Cubic Hermite on [0, 1] from end values and end slopes (slopes times the step)."""
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * vl + (t3 - 2 * t2 + t) * vdl
            + (-2 * t3 + 3 * t2) * vh + (t3 - t2) * vdh)


def _index_below(knots: FloatArray, v: FloatArray) -> NDArray[np.intp]:
    """Largest i with knots[i] <= v, capped at len-2 (LHAPDF's ``indexbelow``)."""
    i = np.searchsorted(knots, v, side="right")
    i = np.where(i == knots.size, i - 1, i) - 1
    return np.clip(i, 0, knots.size - 2)


class _LogBicubicGrid:
    """LHAPDF's ``logcubic`` interpolation and its extrapolators on one member's grid."""

    def __init__(self, data: _GridData, extrapolator: str, path: Path):
        self.xs = data.xs
        self.q2s = data.q2s
        self.logxs = np.log(data.xs)
        self.logq2s = np.log(data.q2s)
        self.values = data.values
        if self.xs.size < 4:
            raise PDFGridFormatError(path, None,
                                     "log-bicubic interpolation needs at least 4 x knots")
        if self.q2s.size < 2:
            raise PDFGridFormatError(path, None,
                                     "log-bicubic interpolation needs at least 2 Q knots")
        self.dlogx = self._x_slopes()
        nq = self.q2s.size
        i = np.arange(nq - 1)
        q = self.q2s
        # Subgrid edges: first knot of the grid or of a subgrid / last knot likewise.
        self._q_lower = (i == 0) | (q[i] == q[np.maximum(i - 1, 0)])
        self._q_upper = (i + 1 == nq - 1) | (q[i + 1] == q[np.minimum(i + 2, nq - 1)])
        self.extrapolator = extrapolator.lower()
        if self.extrapolator not in ("continuation", "nearest", "error"):
            raise PDFGridFormatError(path, None,
                                     f"unknown Extrapolator {extrapolator!r}; expected "
                                     "'continuation', 'nearest' or 'error'")

    def _x_slopes(self) -> FloatArray:
        """d(xf)/d(log x) at every knot: mean of the neighbouring chord slopes
        (one-sided at the ends), as LHAPDF's ``_ddx``."""
        v, lx = self.values, self.logxs
        chord = (v[1:] - v[:-1]) / (lx[1:] - lx[:-1])[:, None, None]
        d = np.empty_like(v)
        d[0] = chord[0]
        d[-1] = chord[-1]
        d[1:-1] = 0.5 * (chord[:-1] + chord[1:])
        return d

    # -- interpolation ---------------------------------------------------------------

    def interpolate(self, col: NDArray[np.intp], x: FloatArray, q2: FloatArray) -> FloatArray:
        """Interpolate flavour columns ``col`` at in-grid points (1-d arrays)."""
        if x.size == 0:
            return np.empty(0)
        ix = _index_below(self.xs, x)
        iq = _index_below(self.q2s, q2)
        lx, lq, v, d = self.logxs, self.logq2s, self.values, self.dlogx
        dlx = lx[ix + 1] - lx[ix]
        tx = (np.log(x) - lx[ix]) / dlx
        nq = self.q2s.size

        def along_x(j: NDArray[np.intp]) -> FloatArray:
            return _hermite(tx, v[ix, j, col], d[ix, j, col] * dlx,
                            v[ix + 1, j, col], d[ix + 1, j, col] * dlx)

        vl = along_x(iq)
        vh = along_x(iq + 1)
        lower = self._q_lower[iq]
        upper = self._q_upper[iq]
        dq1 = lq[iq + 1] - lq[iq]
        logq2 = np.log(q2)
        tq = (logq2 - lq[iq]) / dq1
        out = np.empty_like(x)

        # A two-knot subgrid: LHAPDF falls back to bilinear in (log x, log Q2).
        lin = lower & upper
        if np.any(lin):
            t = tx[lin]
            fl = v[ix[lin], iq[lin], col[lin]] + t * (
                v[ix[lin] + 1, iq[lin], col[lin]] - v[ix[lin], iq[lin], col[lin]])
            fh = v[ix[lin], iq[lin] + 1, col[lin]] + t * (
                v[ix[lin] + 1, iq[lin] + 1, col[lin]] - v[ix[lin], iq[lin] + 1, col[lin]])
            out[lin] = fl + tq[lin] * (fh - fl)
        cub = ~lin
        if np.any(cub):
            slope = vh - vl  # chord slope in log Q2, times dq1
            iqm = np.maximum(iq - 1, 0)
            iqp = np.minimum(iq + 2, nq - 1)
            with np.errstate(divide="ignore", invalid="ignore"):
                vll = np.where(lower, vl, along_x(iqm))
                vhh = np.where(upper, vh, along_x(iqp))
                r0 = np.where(lower, 1.0, dq1 / (lq[iq] - lq[iqm]))
                r2 = np.where(upper, 1.0, dq1 / (lq[iqp] - lq[iq + 1]))
                vdl = np.where(lower, slope, 0.5 * (slope + (vl - vll) * r0))
                vdh = np.where(upper, slope, 0.5 * (slope + (vhh - vh) * r2))
            out[cub] = _hermite(tq[cub], vl[cub], vdl[cub], vh[cub], vdh[cub])
        return out

    # -- extrapolation ---------------------------------------------------------------

    def evaluate(self, col: NDArray[np.intp], x: FloatArray, q2: FloatArray) -> FloatArray:
        """Interpolate inside the grid, extrapolate outside (1-d arrays)."""
        xmin, xmax = self.xs[0], self.xs[-1]
        q2min, q2max = self.q2s[0], self.q2s[-1]
        inx = (x >= xmin) & (x <= xmax)
        inq = (q2 >= q2min) & (q2 <= q2max)
        inside = inx & inq
        out = np.empty_like(x)
        out[inside] = self.interpolate(col[inside], x[inside], q2[inside])
        outside = ~inside
        if not np.any(outside):
            return out
        c, xo, qo = col[outside], x[outside], q2[outside]
        if self.extrapolator == "nearest":
            out[outside] = self.interpolate(c, np.clip(xo, xmin, xmax), np.clip(qo, q2min, q2max))
        elif self.extrapolator == "error":
            raise ValueError(f"{int(outside.sum())} point(s) outside the grid x in "
                             f"[{xmin:g}, {xmax:g}], Q2 in [{q2min:g}, {q2max:g}] and the "
                             "set's Extrapolator is 'error'")
        else:
            # x = 0 or Q2 = 0 give LHAPDF's limits (0 or inf), without warnings.
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                out[outside] = self._continuation(c, xo, qo)
        return out

    @staticmethod
    def _extrapolate_linear(x: FloatArray | float, xl: float, xh: float, yl: FloatArray,
                            yh: FloatArray) -> FloatArray:
        """Straight line in log x through two points, in log y where both y > 1e-3."""
        t = (np.log(x) - math.log(xl)) / (math.log(xh) - math.log(xl))
        pos = (yl > 1e-3) & (yh > 1e-3)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            loglin = np.exp(np.log(yl) + t * (np.log(yh) - np.log(yl)))
        # yh == yl: constant (LHAPDF would give nan for x = 0, where t = -inf).
        return np.where(pos, loglin, yl + np.where(yh == yl, 0.0, t * (yh - yl)))

    def _continuation(self, col: NDArray[np.intp], x: FloatArray, q2: FloatArray) -> FloatArray:
        """LHAPDF's ``ContinuationExtrapolator`` (G. Watt's MSTW extrapolation)."""
        xmin, xmin1, xmax = self.xs[0], self.xs[1], self.xs[-1]
        q2min, q2max1, q2max = self.q2s[0], self.q2s[-2], self.q2s[-1]
        if np.any(x > xmax):
            raise ValueError(f"x = {float(x[x > xmax].max()):g} is above the last x knot "
                             f"{xmax:g}; LHAPDF's continuation extrapolator does not go there")
        ipol = self.interpolate
        lin = self._extrapolate_linear
        out = np.empty_like(x)
        small_x = x < xmin
        in_q = (q2 >= q2min) & (q2 <= q2max)
        high_q = q2 > q2max

        m = small_x & in_q
        if np.any(m):
            c, xx, qq = col[m], x[m], q2[m]
            out[m] = lin(xx, xmin, xmin1, ipol(c, np.full_like(xx, xmin), qq),
                         ipol(c, np.full_like(xx, xmin1), qq))
        m = ~small_x & high_q
        if np.any(m):
            c, xx, qq = col[m], x[m], q2[m]
            out[m] = lin(qq, q2max, q2max1, ipol(c, xx, np.full_like(qq, q2max)),
                         ipol(c, xx, np.full_like(qq, q2max1)))
        m = small_x & high_q
        if np.any(m):
            c, xx, qq = col[m], x[m], q2[m]

            def at_x(xk: float) -> FloatArray:
                xv = np.full_like(xx, xk)
                return lin(qq, q2max, q2max1, ipol(c, xv, np.full_like(qq, q2max)),
                           ipol(c, xv, np.full_like(qq, q2max1)))

            out[m] = lin(xx, xmin, xmin1, at_x(xmin), at_x(xmin1))
        m = q2 < q2min
        if np.any(m):
            c, xx, qq = col[m], x[m], q2[m]
            sx = xx < xmin

            def at_q2(q2k: float) -> FloatArray:
                qv = np.full_like(qq, q2k)
                f = np.empty_like(xx)
                if np.any(sx):
                    xs_ = xx[sx]
                    f[sx] = lin(xs_, xmin, xmin1, ipol(c[sx], np.full_like(xs_, xmin), qv[sx]),
                                ipol(c[sx], np.full_like(xs_, xmin1), qv[sx]))
                if np.any(~sx):
                    f[~sx] = ipol(c[~sx], xx[~sx], qv[~sx])
                return np.asarray(f, dtype=np.float64)

            f0 = at_q2(q2min)
            f1 = at_q2(1.01 * q2min)
            with np.errstate(divide="ignore", invalid="ignore"):
                anom = np.where(np.abs(f0) >= 1e-5,
                                np.maximum(-2.5, (f1 - f0) / f0 / 0.01), 1.0)
            r = qq / q2min
            out[m] = f0 * r ** (anom * r + 1.0 - r)
        return out


# --------------------------------------------------------------------------------------
# alpha_s
# --------------------------------------------------------------------------------------

class AlphaSIpol:
    """LHAPDF's ``ipol`` alpha_s: cubic Hermite in log Q2 through tabulated values.

    Repeated Q values split the table into subgrids (flavour thresholds); slopes are
    means of neighbouring chord slopes in log Q2, one-sided at subgrid edges. Below the
    table alpha_s continues as a power of Q2 fixed by the first two distinct points;
    above it, it is frozen at the last value.

    Parameters
    ----------
    qs : sequence of float
        The ``AlphaS_Qs`` knots in GeV, non-decreasing.
    alphas : sequence of float
        The ``AlphaS_Vals`` at those knots.
    """

    def __init__(self, qs: Sequence[float], alphas: Sequence[float]):
        q = np.asarray(qs, dtype=np.float64)
        a = np.asarray(alphas, dtype=np.float64)
        if q.ndim != 1 or q.shape != a.shape or q.size < 2:
            raise ValueError(f"AlphaS_Qs and AlphaS_Vals must be 1-d of equal length >= 2; "
                             f"got {q.shape} and {a.shape}")
        if np.any(np.diff(q) < 0) or q[0] <= 0:
            raise ValueError("AlphaS_Qs must be positive and non-decreasing")
        self.q2s = q * q
        self.alphas = a
        self.logq2s = np.log(self.q2s)
        n = q.size
        i = np.arange(n - 1)
        self._lower = (i == 0) | (self.q2s[i] == self.q2s[np.maximum(i - 1, 0)])
        self._upper = (i + 1 == n - 1) | (self.q2s[i + 1] == self.q2s[np.minimum(i + 2, n - 1)])
        distinct = np.flatnonzero(self.q2s != self.q2s[0])
        if distinct.size == 0:
            raise ValueError("AlphaS_Qs must contain at least two distinct values")
        k = int(distinct[0])
        self._low_power = math.log10(a[k] / a[0]) / math.log10(self.q2s[k] / self.q2s[0])

    def __call__(self, q2: FloatArray) -> FloatArray:
        q2 = np.asarray(q2, dtype=np.float64)
        out = np.empty_like(q2)
        q2s, a, lq = self.q2s, self.alphas, self.logq2s
        below = q2 < q2s[0]
        above = q2 > q2s[-1]
        with np.errstate(divide="ignore"):  # Q2 = 0: inf, as LHAPDF
            out[below] = a[0] * (q2[below] / q2s[0]) ** self._low_power
        out[above] = a[-1]
        m = ~(below | above)
        if np.any(m):
            qq = q2[m]
            i = _index_below(q2s, qq)

            def chord(j: NDArray[np.intp]) -> FloatArray:
                with np.errstate(divide="ignore", invalid="ignore"):
                    return np.asarray((a[j + 1] - a[j]) / (lq[j + 1] - lq[j]))

            n = q2s.size
            fwd = chord(i)
            prev = chord(np.maximum(i - 1, 0))
            nxt = chord(np.minimum(i + 1, n - 2))
            lower, upper = self._lower[i], self._upper[i]
            d0 = np.where(lower, fwd, 0.5 * (fwd + prev))
            d1 = np.where(upper, fwd, 0.5 * (fwd + nxt))
            dlq = lq[i + 1] - lq[i]
            t = (np.log(qq) - lq[i]) / dlq
            val = _hermite(t, a[i], d0 * dlq, a[i + 1], d1 * dlq)
            out[m] = np.where(np.abs(val) < 2.0, val, np.finfo(np.float64).max)
        return out


def _beta_coefficients(nf: int) -> tuple[float, float, float, float]:
    """Beta-function coefficients beta_0..beta_3 in LHAPDF's normalisation
    (d a/d ln Q2 = -sum beta_i a^(i+2), a = alpha_s; beta_0 = (33 - 2 nf)/(12 pi))."""
    pi = math.pi
    b0 = (33 - 2 * nf) / (12 * pi)
    b1 = (153 - 19 * nf) / (24 * pi ** 2)
    b2 = (2857 - 5033 / 9 * nf + 325 / 27 * nf ** 2) / (128 * pi ** 3)
    b3 = (149753 / 6 + 3564 * _ZETA3 - (1078361 / 162 + 6502 / 27 * _ZETA3) * nf
          + (50065 / 162 + 6472 / 81 * _ZETA3) * nf ** 2 + 1093 / 729 * nf ** 3) / (256 * pi ** 4)
    return b0, b1, b2, b3


class AlphaSAnalytic:
    """LHAPDF's ``analytic`` alpha_s: the asymptotic 1/ln(Q2/Lambda2) expansion.

    alpha_s = 1/(beta_0 L) [1 - beta_1 lnL/(beta_0^2 L) + ...] with L = ln(Q2/Lambda_nf^2)
    up to four loops (PDG review, QCD section), with one Lambda per number of active
    flavours; nf steps up where Q passes a quark mass (or ``Threshold*`` value).

    Parameters
    ----------
    lambdas : mapping of int to float
        Lambda_QCD in GeV per number of flavours (``AlphaS_Lambda3/4/5``).
    order : int
        ``AlphaS_OrderQCD``: 1 = one loop (LO), ..., 4; 0 returns ``alphas_mz``.
    thresholds : mapping of int to float
        Quark id (1..6) to the scale in GeV where it becomes active.
    fixed_nf : int or None
        Cap on (or, with ``fixed_scheme``, the value of) the number of flavours.
    fixed_scheme : bool
        Fixed-flavour-number scheme.
    alphas_mz : float
        Returned for ``order == 0``.
    """

    def __init__(self, lambdas: Mapping[int, float], order: int,
                 thresholds: Mapping[int, float], *, fixed_nf: int | None = None,
                 fixed_scheme: bool = False, alphas_mz: float = 0.118):
        if not lambdas:
            raise ValueError("analytic alpha_s needs at least one Lambda_QCD")
        self.lambdas = dict(lambdas)
        self.order = int(order)
        self.thresholds = dict(thresholds)
        self.fixed_nf = fixed_nf
        self.fixed_scheme = fixed_scheme
        self.alphas_mz = alphas_mz
        self._nfmin = min(self.lambdas)
        self._nfmax = max(self.lambdas)

    def num_flavours(self, q2: FloatArray) -> NDArray[np.int64]:
        """Active flavours at Q2 (LHAPDF's ``AlphaS_Analytic::numFlavorsQ2``)."""
        q2 = np.asarray(q2, dtype=np.float64)
        if self.fixed_scheme and self.fixed_nf is not None:
            return np.full(q2.shape, self.fixed_nf, dtype=np.int64)
        nf = np.full(q2.shape, self._nfmin, dtype=np.int64)
        for it in range(self._nfmin, self._nfmax + 1):
            if it in self.thresholds:
                nf = np.where(self.thresholds[it] ** 2 < q2, it, nf)
        if self.fixed_nf is not None:
            nf = np.minimum(nf, self.fixed_nf)
        return nf

    def _lambda(self, nf: int) -> float:
        if self.fixed_scheme and self.fixed_nf is not None:
            if self.fixed_nf not in self.lambdas:
                raise ValueError(f"fixed {self.fixed_nf}-flavour scheme needs "
                                 f"AlphaS_Lambda{self.fixed_nf}")
            return self.lambdas[self.fixed_nf]
        while nf not in self.lambdas:
            nf -= 1
            if nf < 0:
                raise ValueError("no Lambda_QCD at or below the requested flavour number")
        return self.lambdas[nf]

    def at_nf(self, q2: FloatArray, nf: int, lam: float | None = None) -> FloatArray:
        """The expansion at fixed nf (and Lambda, default the one for nf)."""
        q2 = np.asarray(q2, dtype=np.float64)
        lam = self._lambda(nf) if lam is None else lam
        if self.order == 0:
            return np.full(q2.shape, self.alphas_mz)
        b0, b1, b2, b3 = _beta_coefficients(nf)
        with np.errstate(divide="ignore", invalid="ignore"):
            lnx = np.log(q2 / (lam * lam))
            lnlnx = np.log(lnx)
            y = 1.0 / lnx
            tmp = np.ones_like(q2)
            if self.order > 1:
                tmp = tmp - b1 * lnlnx / b0 ** 2 * y
            if self.order > 2:
                tmp = tmp + b1 ** 2 / b0 ** 4 * y * y * (
                    lnlnx ** 2 - lnlnx + b2 * b0 / b1 ** 2 - 1.0)
            if self.order > 3:
                tmp = tmp - y ** 3 / b0 ** 6 * (
                    b1 ** 3 * (lnlnx ** 3 - 2.5 * lnlnx ** 2 - 2 * lnlnx + 0.5)
                    + 3 * b0 * b1 * b2 * lnlnx - 0.5 * b0 ** 2 * b3)
            val = y * tmp / b0
        return np.where(q2 <= lam * lam, np.finfo(np.float64).max, val)

    def __call__(self, q2: FloatArray) -> FloatArray:
        q2 = np.asarray(q2, dtype=np.float64)
        nf = self.num_flavours(q2)
        out = np.empty_like(q2)
        for n in np.unique(nf):
            m = nf == n
            out[m] = self.at_nf(q2[m], int(n))
        return out

    @classmethod
    def from_alphas_mz(cls, alphas_mz: float, mz: float, order: int,
                       thresholds: Mapping[int, float], *, fixed_nf: int | None = None,
                       fixed_scheme: bool = False) -> "AlphaSAnalytic":
        """Lambdas for nf = 3, 4, 5 fixed by alpha_s(MZ) and continuity at the thresholds.

        Not an LHAPDF mode: LHAPDF's analytic alpha_s needs ``AlphaS_LambdaN``; this is
        the fallback when a set gives only ``AlphaS_MZ``.
        """
        probe = cls({3: 0.1, 4: 0.1, 5: 0.1}, order, thresholds, fixed_nf=fixed_nf,
                    fixed_scheme=fixed_scheme, alphas_mz=alphas_mz)

        def solve(target: float, q: float, nf: int) -> float:
            # alpha_s(Q) rises with Lambda: bisect in log Lambda below Q.
            lo, hi = math.log(1e-8), math.log(q) - 1e-6
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                a = float(probe.at_nf(np.array([q * q]), nf, math.exp(mid))[0])
                if a > target or not math.isfinite(a):
                    hi = mid
                else:
                    lo = mid
            return math.exp(0.5 * (lo + hi))

        if order == 0:
            return cls({5: 0.1}, 0, thresholds, alphas_mz=alphas_mz)
        nf_mz = int(probe.num_flavours(np.array([mz * mz]))[0])
        lambdas = {nf_mz: solve(alphas_mz, mz, nf_mz)}
        probe.lambdas = dict(lambdas)
        for nf in range(nf_mz - 1, 2, -1):  # downwards through the thresholds
            m = thresholds.get(nf + 1)
            if m is None:
                break
            a = float(probe.at_nf(np.array([m * m]), nf + 1, lambdas[nf + 1])[0])
            lambdas[nf] = solve(a, m, nf)
        for nf in range(nf_mz + 1, 6):  # upwards
            m = thresholds.get(nf)
            if m is None:
                break
            a = float(probe.at_nf(np.array([m * m]), nf - 1, lambdas[nf - 1])[0])
            lambdas[nf] = solve(a, m, nf)
        return cls(lambdas, order, thresholds, fixed_nf=fixed_nf, fixed_scheme=fixed_scheme,
                   alphas_mz=alphas_mz)


def _make_alphas(info: Mapping[str, Any], where: str) -> Callable[[FloatArray], FloatArray]:
    """Build the set's alpha_s from its metadata, as LHAPDF's ``mkAlphaS``."""
    kind = str(info.get("AlphaS_Type", "")).lower()
    if kind == "ipol":
        if "AlphaS_Qs" not in info or "AlphaS_Vals" not in info:
            raise PDFError(f"{where}: AlphaS_Type 'ipol' needs AlphaS_Qs and AlphaS_Vals")
        return AlphaSIpol(info["AlphaS_Qs"], info["AlphaS_Vals"])
    if kind == "analytic":
        thresholds: dict[int, float] = {}
        for i, qn in enumerate(_QUARK_NAMES, start=1):
            for key in (f"AlphaS_Threshold{qn}", f"Threshold{qn}", f"AlphaS_M{qn}", f"M{qn}"):
                if key in info:
                    thresholds[i] = float(info[key])
                    break
        scheme = str(info.get("AlphaS_FlavorScheme", info.get("FlavorScheme", "variable")))
        nflav = int(info.get("AlphaS_NumFlavors", info.get("NumFlavors", 5)))
        fixed = scheme.lower() == "fixed"
        order = int(info.get("AlphaS_OrderQCD", INFO_DEFAULTS["AlphaS_OrderQCD"]))
        lambdas = {n: float(info[f"AlphaS_Lambda{n}"]) for n in (3, 4, 5)
                   if f"AlphaS_Lambda{n}" in info}
        if lambdas:
            return AlphaSAnalytic(lambdas, order, thresholds, fixed_nf=nflav,
                                  fixed_scheme=fixed,
                                  alphas_mz=float(info.get("AlphaS_MZ", 0.118)))
        if "AlphaS_MZ" in info:
            return AlphaSAnalytic.from_alphas_mz(float(info["AlphaS_MZ"]),
                                                 float(info.get("MZ", INFO_DEFAULTS["MZ"])),
                                                 order, thresholds, fixed_nf=nflav,
                                                 fixed_scheme=fixed)
        raise PDFError(f"{where}: AlphaS_Type 'analytic' needs AlphaS_Lambda3/4/5 or AlphaS_MZ")
    if not kind:
        raise PDFError(f"{where}: no AlphaS_Type in the set metadata")
    raise PDFError(f"{where}: AlphaS_Type {kind!r} is not supported by the grid reader "
                   "(expected 'ipol' or 'analytic'); use backend='lhapdf'")


# --------------------------------------------------------------------------------------
# Finding sets
# --------------------------------------------------------------------------------------

def pdf_search_paths() -> list[Path]:
    """Directories searched for PDF sets, in order.

    The embedded sets first, then each entry of ``LHAPDF_DATA_PATH`` (``LHAPATH`` when
    that is unset), then ``LHAPDF_DATA_PREFIX`` and its ``LHAPDF`` subdirectory.
    """
    paths = [EMBEDDED_PDFSETS_DIR]
    var = os.environ.get("LHAPDF_DATA_PATH")
    if var is None:
        var = os.environ.get("LHAPATH", "")
    paths += [Path(p) for p in var.split(":") if p]
    prefix = os.environ.get("LHAPDF_DATA_PREFIX")
    if prefix:
        paths += [Path(prefix), Path(prefix) / "LHAPDF"]
    seen: list[Path] = []
    for p in paths:
        if p not in seen:
            seen.append(p)
    return seen


def _member_file(setdir: Path, member: int) -> Path:
    return setdir / f"{setdir.name}_{member:04d}.dat"


def _find_set_dir(name: str, paths: Iterable[Path]) -> Path | None:
    for base in paths:
        cand = base / name
        if (cand / f"{name}.info").is_file():
            return cand
    return None


def _lookup_lhaid(lhaid: int, paths: Sequence[Path]) -> tuple[str, int]:
    """Map an LHAPDF ID to (set name, member) through ``pdfsets.index``."""
    indices = [p / "pdfsets.index" for p in paths if (p / "pdfsets.index").is_file()]
    best: tuple[int, str] | None = None
    for index in indices:
        with open(index, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue
                if len(parts) < 2 or not _INT_RE.match(parts[0]):
                    raise PDFGridFormatError(index, lineno,
                                             "expected '<lhaid> <setname> [version]'")
                first = int(parts[0])
                if first <= lhaid and (best is None or first > best[0]):
                    best = (first, parts[1])
        if best is not None:
            break  # LHAPDF reads the first index file found
    if best is None:
        searched = ", ".join(str(i) for i in indices) or "none found"
        raise PDFSetNotFoundError(
            f"LHAPDF ID {lhaid} is in no pdfsets.index (index files: {searched}; searched "
            f"directories: {', '.join(str(p) for p in paths)})")
    return best[1], lhaid - best[0]


def _try_import_lhapdf() -> Any:
    try:
        import lhapdf
    except ImportError:
        return None
    return lhapdf


# --------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------

class _GridBackend:
    """A member read from an lhagrid1 file and evaluated by this module."""

    kind = "grid"

    def __init__(self, setdir: Path, member: int, name: str):
        info_path = setdir / f"{setdir.name}.info"
        mem_path = _member_file(setdir, member)
        if not mem_path.is_file():
            raise PDFSetNotFoundError(f"PDF set {name!r} has no member {member}: "
                                      f"{mem_path} does not exist")
        info: dict[str, Any] = dict(INFO_DEFAULTS)
        if info_path.is_file():
            info.update(read_info(info_path))
        data = _read_lhagrid(mem_path)
        info.update(data.header)
        flav = info.get("Flavors")
        if flav is not None:
            if not isinstance(flav, list) or sorted(int(f) for f in flav) != sorted(data.pids):
                raise PDFGridFormatError(mem_path, None,
                                         f"parton IDs {data.pids} in the grid do not match "
                                         f"Flavors {flav} of {info_path}")
        interp = str(info.get("Interpolator", "logcubic")).lower()
        if interp != "logcubic":
            raise PDFError(f"{info_path}: Interpolator {interp!r} is not supported by the grid "
                           "reader (only LHAPDF's default 'logcubic'); use backend='lhapdf'")
        self.info = info
        self.path = mem_path
        self.pids = list(data.pids)
        self.grid = _LogBicubicGrid(data, str(info.get("Extrapolator", "continuation")),
                                    mem_path)
        self.force_positive = int(info.get("ForcePositive", 0))
        self._alphas: Callable[[FloatArray], FloatArray] | None = None
        # pid -> column through a sorted table (pid 0 is the gluon, 21).
        order = np.argsort(self.pids)
        self._sorted_pids = np.asarray(self.pids, dtype=np.int64)[order]
        self._sorted_cols = order.astype(np.intp)

    @property
    def flavours(self) -> list[int]:
        return sorted(self.pids)

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self.grid.xs[0]), float(self.grid.xs[-1])

    @property
    def q2_range(self) -> tuple[float, float]:
        return float(self.grid.q2s[0]), float(self.grid.q2s[-1])

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray:
        pid = np.where(pid == 0, 21, pid)
        pos = np.searchsorted(self._sorted_pids, pid)
        pos = np.clip(pos, 0, self._sorted_pids.size - 1)
        known = self._sorted_pids[pos] == pid
        out = np.zeros(x.shape)
        if np.any(known):
            col = self._sorted_cols[pos[known]]
            val = self.grid.evaluate(col, x[known], q2[known])
            if self.force_positive == 1:
                val = np.maximum(val, 0.0)
            elif self.force_positive == 2:
                val = np.maximum(val, 1e-10)
            out[known] = val
        return out

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        if self._alphas is None:
            self._alphas = _make_alphas(self.info, str(self.path.parent))
        return self._alphas(q2)


class _LHAPDFBackend:
    """A member evaluated by the LHAPDF library (point by point through its bindings)."""

    kind = "lhapdf"

    def __init__(self, lhapdf: Any, name: str | int, member: int):
        self._pdf = lhapdf.mkPDF(name) if isinstance(name, int) else lhapdf.mkPDF(name, member)
        info: dict[str, Any] = {}
        try:
            src = self._pdf.info()
            for key in src.keys():
                info[str(key)] = _parse_value(str(src.get_entry(key)))
        except Exception:  # older bindings: no key listing
            pass
        self.info = info
        self.path: Path | None = None
        self.pids = [int(p) for p in self._pdf.flavors()]
        self.set_name: str | None = None
        self.member = member
        try:
            self.set_name = str(self._pdf.set().name)
            self.member = int(self._pdf.memberID)
        except Exception:  # bindings without set()/memberID
            pass

    @property
    def flavours(self) -> list[int]:
        return sorted(self.pids)

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self._pdf.xMin), float(self._pdf.xMax)

    @property
    def q2_range(self) -> tuple[float, float]:
        return float(self._pdf.q2Min), float(self._pdf.q2Max)

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray:
        f = self._pdf.xfxQ2
        return np.fromiter((f(int(p), float(a), float(b)) for p, a, b in zip(pid, x, q2)),
                           dtype=np.float64, count=x.size)

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        f = self._pdf.alphasQ2
        return np.fromiter((f(float(b)) for b in q2), dtype=np.float64, count=q2.size)


# --------------------------------------------------------------------------------------
# Public class
# --------------------------------------------------------------------------------------

def _is_torch(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def _as_numpy(a: Any, name: str) -> NDArray[Any]:
    if _is_torch(a):
        return np.asarray(a.detach().cpu().numpy())
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like (numpy, torch or sequence); "
                        f"got {type(a).__name__}") from exc


class PDF:
    """One member of a PDF set: x f(x, Q2) for any parton and alpha_s(Q2), batched.

    Parameters
    ----------
    name_or_path_or_lhaid : str, PathLike or int, optional
        A set name (``"LHToyPDF"``, ``"CT18NNLO"``, or ``"NAME/MEMBER"``), the path of a
        set directory, ``.info`` or member ``.dat`` file, or an LHAPDF ID (mapped to a
        set and member through ``pdfsets.index``). Default: the embedded toy set.
    member : int
        Member number (ignored for an LHAPDF ID, a ``NAME/MEMBER`` name or a ``.dat`` path).
    backend : {"auto", "grid", "lhapdf"}
        ``"grid"``: this module's reader. ``"lhapdf"``: the LHAPDF library (must import).
        ``"auto"``: embedded sets and explicit paths with the grid reader; other names
        through LHAPDF when it imports, else with the grid reader from the LHAPDF data
        directories.

    Raises
    ------
    PDFSetNotFoundError
        The set or member is not found; the message names every searched directory.
    PDFGridFormatError
        A malformed grid or metadata file; the message names file and line.
    """

    def __init__(self, name_or_path_or_lhaid: str | os.PathLike[str] | int = DEFAULT_PDF_SET,
                 member: int = 0, *, backend: str = "auto"):
        if backend not in ("auto", "grid", "lhapdf"):
            raise ValueError(f"backend must be 'auto', 'grid' or 'lhapdf'; got {backend!r}")
        spec = name_or_path_or_lhaid
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or member < 0:
            raise ValueError(f"member must be a non-negative int; got {member!r}")
        member = int(member)
        paths = pdf_search_paths()
        self._backend: Union[_GridBackend, _LHAPDFBackend]

        if isinstance(spec, bool) or not isinstance(spec, (str, os.PathLike, int, np.integer)):
            raise TypeError("name_or_path_or_lhaid must be a set name, a path or an LHAPDF "
                            f"ID (int); got {type(spec).__name__}")

        if isinstance(spec, (int, np.integer)):
            lhaid = int(spec)
            if backend != "grid":
                lhapdf = _try_import_lhapdf()
                if lhapdf is not None:
                    self._backend = _LHAPDFBackend(lhapdf, lhaid, 0)
                    self.name = self._backend.set_name or str(lhaid)
                    self.member = self._backend.member
                    return
                if backend == "lhapdf":
                    raise ImportError("backend='lhapdf' needs the LHAPDF Python module "
                                      "('import lhapdf' failed)")
            setname, member = _lookup_lhaid(lhaid, paths)
            spec = setname

        text = os.fspath(spec)
        p = Path(text)
        is_path = isinstance(spec, os.PathLike) or os.sep in text or p.suffix in (".info", ".dat")
        if is_path and p.exists():
            if backend == "lhapdf":
                raise ValueError("backend='lhapdf' takes set names, not paths; got "
                                 f"{text!r}")
            setdir, member = self._resolve_path(p, member)
            self.name, self.member = setdir.name, member
            self._backend = _GridBackend(setdir, member, setdir.name)
            return

        name = text
        m = re.fullmatch(r"(.+)/(\d+)", text)
        if m is not None and not p.exists():
            name, member = m.group(1), int(m.group(2))
        if "/" in name or os.sep in name:
            raise PDFSetNotFoundError(f"PDF set path {text!r} does not exist")
        self.name, self.member = name, member

        embedded = _find_set_dir(name, [EMBEDDED_PDFSETS_DIR])
        if backend == "auto" and embedded is not None:
            self._backend = _GridBackend(embedded, member, name)
            return
        if backend in ("auto", "lhapdf"):
            lhapdf = _try_import_lhapdf()
            if lhapdf is not None:
                try:
                    self._backend = _LHAPDFBackend(lhapdf, name, member)
                except Exception as exc:
                    lpaths = []
                    try:
                        lpaths = [str(x) for x in lhapdf.paths()]
                    except Exception:
                        pass
                    raise PDFSetNotFoundError(
                        f"LHAPDF could not load PDF set {name!r} member {member} ({exc}); "
                        f"LHAPDF searched: {', '.join(lpaths) or 'unknown'}") from exc
                return
            if backend == "lhapdf":
                raise ImportError("backend='lhapdf' needs the LHAPDF Python module "
                                  "('import lhapdf' failed)")
        found = _find_set_dir(name, paths)
        if found is None:
            searched = "\n  ".join(str(x) for x in paths)
            raise PDFSetNotFoundError(
                f"PDF set {name!r} not found: no {name}/{name}.info in any of\n  {searched}\n"
                "(set LHAPDF_DATA_PATH to the directory holding the set, or install LHAPDF)")
        self._backend = _GridBackend(found, member, name)

    @staticmethod
    def _resolve_path(p: Path, member: int) -> tuple[Path, int]:
        if p.is_dir():
            return p, member
        if p.suffix == ".info":
            return p.parent, member
        m = re.fullmatch(r"(.+)_(\d{4})\.dat", p.name)
        if m is None or m.group(1) != p.parent.name:
            raise PDFSetNotFoundError(f"{p} is not a member file <set>/<set>_NNNN.dat of an "
                                      "LHAPDF set directory")
        return p.parent, int(m.group(2))

    # -- metadata --------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"grid"`` (this module) or ``"lhapdf"`` (the LHAPDF library)."""
        return self._backend.kind

    @property
    def info(self) -> dict[str, Any]:
        """Metadata: the set's ``.info`` over LHAPDF's defaults, then the member header."""
        return self._backend.info

    @property
    def path(self) -> Path | None:
        """The member ``.dat`` file (None with the LHAPDF backend)."""
        return self._backend.path

    @property
    def flavours(self) -> list[int]:
        """Parton IDs in the set, sorted (PDG codes; 21 is the gluon)."""
        return self._backend.flavours

    @property
    def x_min(self) -> float:
        """Smallest x knot."""
        return self._backend.x_range[0]

    @property
    def x_max(self) -> float:
        """Largest x knot."""
        return self._backend.x_range[1]

    @property
    def q2_min(self) -> float:
        """Smallest Q2 knot, GeV^2."""
        return self._backend.q2_range[0]

    @property
    def q2_max(self) -> float:
        """Largest Q2 knot, GeV^2."""
        return self._backend.q2_range[1]

    @property
    def q_min(self) -> float:
        """Smallest Q knot, GeV."""
        return math.sqrt(self.q2_min)

    @property
    def q_max(self) -> float:
        """Largest Q knot, GeV."""
        return math.sqrt(self.q2_max)

    @property
    def order_qcd(self) -> int | None:
        """Perturbative order of the evolution (LHAPDF ``OrderQCD``: 0 = LO)."""
        v = self.info.get("OrderQCD")
        return None if v is None else int(v)

    def __repr__(self) -> str:
        return (f"PDF({self.name!r}, member={self.member}, backend={self.backend!r}, "
                f"x in [{self.x_min:g}, {self.x_max:g}], Q in [{self.q_min:g}, {self.q_max:g}] "
                "GeV)")

    # -- evaluation ------------------------------------------------------------------

    def xfxQ2(self, pid: ArrayLike, x: ArrayLike, Q2: ArrayLike) -> Any:
        """x f(x, Q2) for parton ``pid``, broadcast over ``pid``, ``x`` and ``Q2``.

        Parameters
        ----------
        pid : int or array of int
            PDG parton IDs; 0 and 21 both mean the gluon. IDs not in the set give 0.
        x : array_like
            Momentum fractions in [0, 1].
        Q2 : array_like
            Squared scales in GeV^2, >= 0.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            x f with the broadcast shape, float64; a torch tensor (on ``x``'s device, with
            ``x``'s floating dtype) when ``x`` or ``Q2`` is one.

        Raises
        ------
        ValueError
            x outside [0, 1], Q2 < 0 or a non-integer pid.
        """
        like = x if _is_torch(x) else (Q2 if _is_torch(Q2) else None)
        p = _as_numpy(pid, "pid")
        xa = _as_numpy(x, "x").astype(np.float64, copy=False)
        qa = _as_numpy(Q2, "Q2").astype(np.float64, copy=False)
        if p.dtype.kind == "f":
            if not np.all(p == np.round(p)):
                raise ValueError("pid must hold integer PDG codes")
        elif p.dtype.kind not in "iu":
            raise ValueError(f"pid must hold integer PDG codes; got dtype {p.dtype}")
        pb, xb, qb = np.broadcast_arrays(p.astype(np.int64), xa, qa)
        if np.any(~((xb >= 0) & (xb <= 1))):
            bad = xb[~((xb >= 0) & (xb <= 1))].ravel()[0]
            raise ValueError(f"x must lie in [0, 1]; got {bad!r}")
        if np.any(~(qb >= 0)):
            bad = qb[~(qb >= 0)].ravel()[0]
            raise ValueError(f"Q2 must be >= 0 GeV^2; got {bad!r}")
        out = self._backend.xfxQ2(pb.ravel(), xb.ravel(), qb.ravel()).reshape(xb.shape)
        return self._wrap(out, like)

    def xfxQ(self, pid: ArrayLike, x: ArrayLike, Q: ArrayLike) -> Any:
        """x f(x, Q) for parton ``pid`` at scale ``Q`` (GeV); see :meth:`xfxQ2`."""
        if _is_torch(Q):
            return self.xfxQ2(pid, x, Q * Q)
        q = _as_numpy(Q, "Q").astype(np.float64, copy=False)
        return self.xfxQ2(pid, x, q * q)

    def alphasQ2(self, Q2: ArrayLike) -> Any:
        """alpha_s(Q2) from the set's ``AlphaS_Type`` (``ipol`` or ``analytic``).

        Parameters
        ----------
        Q2 : array_like
            Squared scales in GeV^2, >= 0.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            alpha_s with the shape of ``Q2`` (a torch tensor if ``Q2`` is one).
        """
        qa = _as_numpy(Q2, "Q2").astype(np.float64, copy=False)
        if np.any(~(qa >= 0)):
            raise ValueError(f"Q2 must be >= 0 GeV^2; got {qa[~(qa >= 0)].ravel()[0]!r}")
        out = self._backend.alphasQ2(qa.ravel()).reshape(qa.shape)
        return self._wrap(out, Q2 if _is_torch(Q2) else None)

    def alphasQ(self, Q: ArrayLike) -> Any:
        """alpha_s at scale ``Q`` (GeV); see :meth:`alphasQ2`."""
        if _is_torch(Q):
            return self.alphasQ2(Q * Q)
        q = _as_numpy(Q, "Q").astype(np.float64, copy=False)
        return self.alphasQ2(q * q)

    @staticmethod
    def _wrap(out: FloatArray, like: Any) -> Any:
        if like is None:
            return out
        import torch

        dtype = like.dtype if like.is_floating_point() else torch.float64
        return torch.as_tensor(out).to(device=like.device, dtype=dtype)
