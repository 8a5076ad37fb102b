"""LHAPDF's ``logcubic`` interpolation and its extrapolators on one member's grid.

Cubic Hermite in log x and log Q2 with LHAPDF's finite-difference slopes at the knots
(``LogBicubicInterpolator``; bilinear on two-knot subgrids), and the ``continuation``
(G. Watt's MSTW-style power laws), ``nearest`` and ``error`` extrapolators.

The interpolation runs in the compiled core (``csrc/pdf_cpu.cpp``), operation for
operation :meth:`LogBicubicGrid.interpolate_reference`, the numpy implementation, with
the logarithms taken by numpy: the two agree bit for bit (``tests/physics/test_pdf.py``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from madnis_py._core import ext
from madnis_py.physics.pdf.errors import PDFGridFormatError
from madnis_py.physics.pdf.grid import GridData

__all__ = ["LogBicubicGrid", "hermite", "index_below"]

FloatArray = NDArray[np.float64]


def hermite(t: FloatArray, vl: FloatArray, vdl: FloatArray, vh: FloatArray,
             vdh: FloatArray) -> FloatArray:
    """Cubic Hermite on [0, 1] from end values and end slopes (slopes times the step)."""
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * vl + (t3 - 2 * t2 + t) * vdl
            + (-2 * t3 + 3 * t2) * vh + (t3 - t2) * vdh)


def index_below(knots: FloatArray, v: FloatArray) -> NDArray[np.intp]:
    """Largest i with knots[i] <= v, capped at len-2 (LHAPDF's ``indexbelow``)."""
    i = np.searchsorted(knots, v, side="right")
    i = np.where(i == knots.size, i - 1, i) - 1
    return np.clip(i, 0, knots.size - 2)


class LogBicubicGrid:
    """LHAPDF's ``logcubic`` interpolation and its extrapolators on one member's grid."""

    def __init__(self, data: GridData, extrapolator: str, path: Path):
        self.xs = data.xs
        self.q2s = data.q2s
        self.logxs = np.log(data.xs)
        self.logq2s = np.log(data.q2s)
        self.values = np.ascontiguousarray(data.values, dtype=np.float64)
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
        self._flags = (self._q_lower.astype(np.int64), self._q_upper.astype(np.int64))
        self._knots = tuple(np.ascontiguousarray(a, dtype=np.float64)
                            for a in (self.xs, self.q2s, self.logxs, self.logq2s))
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
        """Interpolate at in-grid points (1-d ``x``, ``q2``): flavour column ``col[i]`` at
        point i (``col`` 1-d, the result 1-d), or the columns ``col`` (shape ``(1, k)``)
        at every point (the result ``(n, k)``, each entry bit for bit the 1-d one: the
        knot search is done once per point for all columns). Compiled; bit for bit
        :meth:`interpolate_reference`."""
        block = col.ndim == 2
        x = np.ascontiguousarray(x, dtype=np.float64)
        q2 = np.ascontiguousarray(q2, dtype=np.float64)
        cols = np.ascontiguousarray(col[0] if block else col, dtype=np.int64)
        out = np.empty((x.size, cols.size) if block else x.size)
        if x.size:
            ext.pdf_logbicubic(self.values, self.dlogx, *self._knots, *self._flags, cols,
                               not block, x, q2, np.log(x), np.log(q2), out)
        return out

    def interpolate_reference(self, col: NDArray[np.intp], x: FloatArray,
                              q2: FloatArray) -> FloatArray:
        """:meth:`interpolate` in numpy (the reference of the compiled kernel)."""
        block = col.ndim == 2
        if x.size == 0:
            return np.empty((0, col.shape[1]) if block else 0)
        ix = index_below(self.xs, x)
        iq = index_below(self.q2s, q2)
        # rows: the per-point masks select points; per-point values are columns in a block
        lower = self._q_lower[iq]
        upper = self._q_upper[iq]
        lin = lower & upper
        lx, lq, v, d = self.logxs, self.logq2s, self.values, self.dlogx
        if block:
            cols = col[0]
            col = np.broadcast_to(col, (x.size, cols.size))
            ix, iq, x, q2 = ix[:, None], iq[:, None], x[:, None], q2[:, None]
            lower, upper = lower[:, None], upper[:, None]

            def at(a: FloatArray, i: NDArray[np.intp], j: NDArray[np.intp],
                   c: NDArray[np.intp]) -> FloatArray:
                return a[i[:, 0], j[:, 0]][:, cols]  # whole knot rows, then the columns
        else:

            def at(a: FloatArray, i: NDArray[np.intp], j: NDArray[np.intp],
                   c: NDArray[np.intp]) -> FloatArray:
                return a[i, j, c]
        dlx = lx[ix + 1] - lx[ix]
        tx = (np.log(x) - lx[ix]) / dlx
        nq = self.q2s.size

        def along_x(j: NDArray[np.intp]) -> FloatArray:
            return hermite(tx, at(v, ix, j, col), at(d, ix, j, col) * dlx,
                            at(v, ix + 1, j, col), at(d, ix + 1, j, col) * dlx)

        vl = along_x(iq)
        vh = along_x(iq + 1)
        dq1 = lq[iq + 1] - lq[iq]
        logq2 = np.log(q2)
        tq = (logq2 - lq[iq]) / dq1
        out = np.empty(col.shape)

        # A two-knot subgrid: LHAPDF falls back to bilinear in (log x, log Q2).
        if np.any(lin):
            t, i, j, c = tx[lin], ix[lin], iq[lin], col[lin]
            fl = at(v, i, j, c) + t * (at(v, i + 1, j, c) - at(v, i, j, c))
            fh = at(v, i, j + 1, c) + t * (at(v, i + 1, j + 1, c) - at(v, i, j + 1, c))
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
            out[cub] = hermite(np.broadcast_to(tq, vl.shape)[cub], vl[cub], vdl[cub],
                               vh[cub], vdh[cub])
        return out

    def evaluate_columns(self, cols: NDArray[np.intp], x: FloatArray,
                         q2: FloatArray) -> FloatArray:
        """Flavour columns ``cols`` (k,) at every point (1-d ``x``, ``q2``): ``(n, k)``,
        bit for bit :meth:`evaluate` of each column, with the knot search done once per
        point inside the grid."""
        n, k = x.size, cols.size
        inside = ((x >= self.xs[0]) & (x <= self.xs[-1])
                  & (q2 >= self.q2s[0]) & (q2 <= self.q2s[-1]))
        out = np.empty((n, k))
        out[inside] = self.interpolate(cols[None, :], x[inside], q2[inside])
        outside = ~inside
        if np.any(outside):
            m = int(outside.sum())
            out[outside] = self.evaluate(np.tile(cols, m), np.repeat(x[outside], k),
                                         np.repeat(q2[outside], k)).reshape(m, k)
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

