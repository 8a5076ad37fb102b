"""The grid reader's PDF on a torch device: x f(x, Q2) without leaving the device.

:class:`DevicePDF` holds one member's knots, values and knot slopes as torch tensors
and evaluates LHAPDF's ``logcubic`` interpolation (:mod:`.interpolation`, the same
formulas, term by term) with torch operations, so a batch of CUDA tensors stays on the
GPU; on the CPU it runs the same code and agrees with the numpy reader to rounding.

What crosses to the host, and why (``host_points`` counts the points that did):

* points outside the grid with the ``continuation`` extrapolator (x below the first
  knot, Q2 outside the knots): its piecewise power laws go through the numpy reader, for
  those points only (a physics run with cuts keeps x and Q2 inside the grid);
  ``nearest`` clamps on the device, ``error`` raises as the reader does;
* nothing for ``alpha_s(Q2)`` of a grid-reader member: the ``ipol`` tables (most sets,
  the embedded toy set) interpolate on the device like the x f grids, and the
  ``analytic`` expansion runs there with the reader's own terms
  (:meth:`~madnis_py.physics.pdf.alphas.AlphaSAnalytic.series`);
* sets read through the LHAPDF library (``backend="lhapdf"``): LHAPDF is host code, so
  the whole batch goes through it, one call per parton ID as on the CPU.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from madnis_py._core import ext
from madnis_py.physics.pdf.alphas import AlphaSAnalytic, AlphaSIpol, make_alphas
from madnis_py.physics.pdf.backends import GridBackend

__all__ = ["DevicePDF"]


def _hermite(t: torch.Tensor, vl: torch.Tensor, vdl: torch.Tensor, vh: torch.Tensor,
             vdh: torch.Tensor) -> torch.Tensor:
    """Cubic Hermite on [0, 1] (:func:`~madnis_py.physics.pdf.interpolation.hermite`)."""
    t2 = t * t
    t3 = t2 * t
    return ((2 * t3 - 3 * t2 + 1) * vl + (t3 - 2 * t2 + t) * vdl
            + (-2 * t3 + 3 * t2) * vh + (t3 - t2) * vdh)


def _index_below(knots: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Largest i with knots[i] <= v, capped at len-2 (LHAPDF's ``indexbelow``)."""
    i = torch.searchsorted(knots, v, right=True)
    i = torch.where(i == knots.numel(), i - 1, i) - 1
    return i.clamp(0, knots.numel() - 2)


class DevicePDF:
    """x f(x, Q2) and alpha_s(Q2) of a :class:`~madnis_py.physics.pdf.PDF` on ``device``.

    Parameters
    ----------
    pdf : PDF
        The member to evaluate; a grid-reader member is interpolated on the device, an
        LHAPDF one is called on the host (see the module docstring).
    device : str or torch.device
        Where the tables live and the results are returned (float64).
    """

    def __init__(self, pdf: Any, device: str | torch.device) -> None:
        self.pdf = pdf
        self.device = torch.device(device)
        self.host_points = 0
        backend = getattr(pdf, "_backend", None)
        self._grid_backend: GridBackend | None = (backend if isinstance(backend, GridBackend)
                                                  else None)
        self._columns: dict[int, int] = {}
        self._ipol: AlphaSIpol | None = None
        self._analytic: AlphaSAnalytic | None = None
        if self._grid_backend is None:
            return
        grid = self._grid_backend.grid

        def as_t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64,
                                   device=self.device)

        self.xs, self.q2s = as_t(grid.xs), as_t(grid.q2s)
        self.logxs, self.logq2s = as_t(grid.logxs), as_t(grid.logq2s)
        # (flavour, x, Q2): one contiguous table per flavour
        self.values = as_t(np.moveaxis(grid.values, 2, 0))
        self.dlogx = as_t(np.moveaxis(grid.dlogx, 2, 0))
        self.q_lower = torch.as_tensor(grid._q_lower, device=self.device)
        self.q_upper = torch.as_tensor(grid._q_upper, device=self.device)
        #: On a CUDA device, interpolate with the compiled kernel (one launch for all
        #: points and partons; ``csrc/pdf_math.h``, the CPU kernel's maths) instead of
        #: the torch operations (about 40 launches); False keeps the torch ones.
        self.use_kernel = self.device.type == "cuda" and bool(ext.WITH_CUDA)
        self._kernel_tables: tuple[torch.Tensor, ...] | None = None
        self._kernel_cols: dict[tuple[int, ...], torch.Tensor] = {}
        self.extrapolator = grid.extrapolator
        self.force_positive = self._grid_backend.force_positive
        self._columns = {int(p): k for k, p in enumerate(self._grid_backend.pids)}
        kind = str(self._grid_backend.info.get("AlphaS_Type", "")).lower()
        if kind == "analytic":
            analytic = make_alphas(self._grid_backend.info,
                                   str(self._grid_backend.path.parent))
            assert isinstance(analytic, AlphaSAnalytic)
            self._analytic = analytic
        if kind == "ipol":
            ipol = make_alphas(self._grid_backend.info, str(self._grid_backend.path.parent))
            assert isinstance(ipol, AlphaSIpol)
            self._ipol = ipol
            self._a_q2s, self._a_vals = as_t(ipol.q2s), as_t(ipol.alphas)
            self._a_logq2s = as_t(ipol.logq2s)
            self._a_lower = torch.as_tensor(ipol._lower, device=self.device)
            self._a_upper = torch.as_tensor(ipol._upper, device=self.device)

    @property
    def on_device(self) -> bool:
        """Whether x f is interpolated on the device (a grid-reader member)."""
        return self._grid_backend is not None

    def xfxQ2(self, pid: int, x: torch.Tensor, q2: torch.Tensor) -> torch.Tensor:
        """x f(x, Q2) of parton ``pid`` (0 and 21: the gluon; unknown IDs give 0) at 1-d
        float64 tensors ``x`` in [0, 1] and ``q2`` >= 0 of equal length, evaluated on the
        member's device and returned on the device of ``x``."""
        return self.xfxQ2_flavours([pid], x, q2)[:, 0]

    def xfxQ2_flavours(self, pids: Sequence[int], x: torch.Tensor,
                       q2: torch.Tensor) -> torch.Tensor:
        """x f(x, Q2) of the partons ``pids`` at every point: ``(n, len(pids))``, each
        column equal to :meth:`xfxQ2` of its parton, with the knot search and the check
        for points outside the grid done once for all of them (as the reader's
        ``xfxQ2_flavours``)."""
        return self.xfxQ2_beams([(pids, x)], q2)[0]

    def xfxQ2_beams(self, beams: Sequence[tuple[Sequence[int], torch.Tensor]],
                    q2: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`xfxQ2_flavours` of several beams, each its partons at its own x, at the
        same ``q2``: the beams' checks for points outside the grid are one host
        synchronisation on a GPU, not one each."""
        for _, x in beams:
            if x.shape != q2.shape or x.dim() != 1:
                raise ValueError(f"x and q2: expected two 1-d tensors of one length, got "
                                 f"{tuple(x.shape)} and {tuple(q2.shape)}")
        if self._grid_backend is None:
            out = []
            for pids, x in beams:
                self.host_points += x.numel() * len(pids)
                host = self.pdf.xfxQ2_flavours([int(p) for p in pids],
                                               x.detach().cpu().numpy(),
                                               q2.detach().cpu().numpy())
                out.append(torch.as_tensor(np.asarray(host, dtype=np.float64)).to(
                    x.device, non_blocking=True))
            return out
        where = q2.device  # the results go back there (no copy when it is the device)
        q2 = q2.to(self.device, torch.float64)
        xmin, xmax = self.xs[0], self.xs[-1]
        q2min, q2max = self.q2s[0], self.q2s[-1]
        q2_in = torch.minimum(torch.maximum(q2, q2min), q2max)
        q2_ok = (q2 >= q2min) & (q2 <= q2max)
        parts = []
        for pids, x in beams:
            x = x.to(self.device, torch.float64)
            cols = [self._columns.get(21 if int(p) == 0 else int(p)) for p in pids]
            known = sorted({c for c in cols if c is not None})
            # clamped inputs keep the outside points' (unused) arithmetic finite, and
            # are the 'nearest' extrapolator's points
            values = (self._interpolate(known, torch.minimum(torch.maximum(x, xmin), xmax),
                                        q2_in) if known else x.new_zeros(0, len(x)))
            inside = (x >= xmin) & (x <= xmax) & q2_ok
            parts.append((pids, x, cols, known, values, inside))
        checked = [inside for _, _, _, known, _, inside in parts if known]
        if (self.extrapolator != "nearest" and checked
                and not bool(torch.stack([m.all() for m in checked]).all())):
            parts = [(pids, x, cols, known, torch.stack([
                         self._outside(c, x, q2, inside, values[k])
                         for k, c in enumerate(known)]) if known else values, inside)
                     for pids, x, cols, known, values, inside in parts]
        out = []
        for pids, x, cols, known, values, _ in parts:
            table = torch.zeros(len(pids), len(x), dtype=torch.float64, device=self.device)
            if known:
                if self.force_positive == 1:
                    values = values.clamp(min=0.0)
                elif self.force_positive == 2:
                    values = values.clamp(min=1e-10)
                row = {c: k for k, c in enumerate(known)}
                for j, c in enumerate(cols):
                    if c is not None:
                        table[j] = values[row[c]]
            out.append(table.T.to(where))
        return out

    def _outside(self, col: int, x: torch.Tensor, q2: torch.Tensor, inside: torch.Tensor,
                 out: torch.Tensor) -> torch.Tensor:
        assert self._grid_backend is not None
        grid = self._grid_backend.grid
        idx = torch.nonzero(~inside).squeeze(1)
        xo = x[idx].cpu().numpy()
        qo = q2[idx].cpu().numpy()
        self.host_points += len(idx)
        # the reader raises for 'error', as the host path does
        vals = grid.evaluate(np.full(len(idx), col, dtype=np.intp), xo, qo)
        out = out.clone()
        out[idx] = torch.as_tensor(vals, dtype=torch.float64).to(out.device)
        return out

    def _interpolate(self, cols: Sequence[int], x: torch.Tensor,
                     q2: torch.Tensor) -> torch.Tensor:
        """LogBicubicGrid.interpolate for the flavour columns ``cols`` at points inside
        the grid: ``(len(cols), n)``; the knot search once for all columns, each value
        the same elementwise arithmetic as for its column alone."""
        if self.use_kernel and x.is_cuda:
            return self._interpolate_kernel(cols, x, q2)
        lx, lq = self.logxs, self.logq2s
        # (k, x, Q2): views for one column, a gather on the device for several
        v = (self.values[cols[0]:cols[0] + 1] if len(cols) == 1
             else torch.stack([self.values[c] for c in cols]))
        d = (self.dlogx[cols[0]:cols[0] + 1] if len(cols) == 1
             else torch.stack([self.dlogx[c] for c in cols]))
        nq = self.q2s.numel()
        ix = _index_below(self.xs, x)
        iq = _index_below(self.q2s, q2)
        dlx = lx[ix + 1] - lx[ix]
        tx = (torch.log(x) - lx[ix]) / dlx

        def along_x(j: torch.Tensor) -> torch.Tensor:
            return _hermite(tx, v[:, ix, j], d[:, ix, j] * dlx, v[:, ix + 1, j],
                            d[:, ix + 1, j] * dlx)

        vl = along_x(iq)
        vh = along_x(iq + 1)
        lower = self.q_lower[iq]
        upper = self.q_upper[iq]
        dq1 = lq[iq + 1] - lq[iq]
        tq = (torch.log(q2) - lq[iq]) / dq1
        # a two-knot subgrid: bilinear in (log x, log Q2)
        fl = v[:, ix, iq] + tx * (v[:, ix + 1, iq] - v[:, ix, iq])
        fh = v[:, ix, iq + 1] + tx * (v[:, ix + 1, iq + 1] - v[:, ix, iq + 1])
        linear = fl + tq * (fh - fl)
        slope = vh - vl
        iqm = (iq - 1).clamp(min=0)
        iqp = (iq + 2).clamp(max=nq - 1)
        vll = torch.where(lower, vl, along_x(iqm))
        vhh = torch.where(upper, vh, along_x(iqp))
        # the where()s below keep 0/0 of the subgrid edges out of the chosen branch
        den0 = torch.where(lower, torch.ones_like(dq1), lq[iq] - lq[iqm])
        den2 = torch.where(upper, torch.ones_like(dq1), lq[iqp] - lq[iq + 1])
        r0 = torch.where(lower, torch.ones_like(dq1), dq1 / den0)
        r2 = torch.where(upper, torch.ones_like(dq1), dq1 / den2)
        vdl = torch.where(lower, slope, 0.5 * (slope + (vl - vll) * r0))
        vdh = torch.where(upper, slope, 0.5 * (slope + (vhh - vh) * r2))
        cubic = _hermite(tq, vl, vdl, vh, vdh)
        return torch.where(lower & upper, linear, cubic)

    def _interpolate_kernel(self, cols: Sequence[int], x: torch.Tensor,
                            q2: torch.Tensor) -> torch.Tensor:
        """:meth:`_interpolate` by the CUDA kernel (``pdf_logbicubic_cuda``) on torch's
        current stream: the grid in the CPU kernel's layout, kept on the device."""
        assert self._grid_backend is not None
        grid = self._grid_backend.grid
        if self._kernel_tables is None:  # (x, Q2, flavour) and int64 flags, as the CPU
            self._kernel_tables = (  # kernel reads them
                *(torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64,
                                  device=self.device) for a in (grid.values, grid.dlogx)),
                *(torch.as_tensor(np.ascontiguousarray(f), dtype=torch.int64,
                                  device=self.device) for f in grid._flags))
        values, dlogx, lower, upper = self._kernel_tables
        key = tuple(int(c) for c in cols)
        if key not in self._kernel_cols:
            nf = values.shape[2]
            if any(not 0 <= c < nf for c in key):
                raise ValueError(f"columns {key}: the grid has {nf} flavours")
            self._kernel_cols[key] = torch.tensor(key, dtype=torch.int64, device=self.device)
        col_t = self._kernel_cols[key]
        x = x.to(torch.float64).contiguous()
        q2 = q2.to(torch.float64).contiguous()
        logx, logq2 = torch.log(x), torch.log(q2)
        out = torch.empty(len(x), len(key), dtype=torch.float64, device=x.device)
        with torch.cuda.device(x.device):
            ext.pdf_logbicubic_cuda(
                values.data_ptr(), dlogx.data_ptr(), self.xs.data_ptr(), self.q2s.data_ptr(),
                self.logxs.data_ptr(), self.logq2s.data_ptr(), lower.data_ptr(),
                upper.data_ptr(), values.shape[0], values.shape[1], values.shape[2],
                col_t.data_ptr(), len(key), False, x.data_ptr(), q2.data_ptr(),
                logx.data_ptr(), logq2.data_ptr(), out.data_ptr(), len(x),
                torch.cuda.current_stream(x.device).cuda_stream)
        return out.T

    def _analytic_alphas(self, q2: torch.Tensor) -> torch.Tensor:
        """AlphaSAnalytic on the device: the active flavours by its steps, the series at
        each flavour number present, Lambda^2 and below the float64 maximum (as the
        reader)."""
        a = self._analytic
        assert a is not None
        if a.order == 0:
            return torch.full_like(q2, a.alphas_mz)
        lowest, steps = a.flavour_steps()
        nf = torch.full(q2.shape, lowest, dtype=torch.int64, device=q2.device)
        for threshold, above in steps:
            nf = torch.where(q2 > threshold, above, nf)
        out = torch.zeros_like(q2)
        for n in sorted({lowest, *(above for _, above in steps)}):
            lam2 = a.lambda_qcd(n) ** 2
            lnx = torch.log(q2 / lam2)
            val = a.series(lnx, torch.log(lnx), n)
            val = torch.where(q2 <= lam2, torch.full_like(val, np.finfo(np.float64).max), val)
            out = torch.where(nf == n, val, out)
        return out

    def alphasQ2(self, q2: torch.Tensor) -> torch.Tensor:
        """alpha_s(Q2) of the member: ``ipol`` (AlphaSIpol's formulas) and ``analytic``
        (AlphaSAnalytic's series) on the device, a member read through LHAPDF through
        the host (see the module docstring)."""
        where = q2.device  # the result goes back there (no copy when it is the device)
        if self._analytic is not None:
            return self._analytic_alphas(q2.to(self.device, torch.float64)).to(where)
        if self._ipol is None:
            self.host_points += q2.numel()
            out = self.pdf.alphasQ2(q2.detach().cpu().numpy())
            return torch.as_tensor(np.asarray(out), dtype=torch.float64).to(q2.device)
        q2 = q2.to(self.device, torch.float64)
        q2s, a, lq = self._a_q2s, self._a_vals, self._a_logq2s
        n = q2s.numel()
        below = q2 < q2s[0]
        above = q2 > q2s[-1]
        qq = torch.minimum(torch.maximum(q2, q2s[0]), q2s[-1])
        i = _index_below(q2s, qq)

        def chord(j: torch.Tensor) -> torch.Tensor:
            dl = lq[j + 1] - lq[j]
            # a repeated knot (a threshold) has dl = 0: its chord is never selected below
            return (a[j + 1] - a[j]) / torch.where(dl == 0, torch.ones_like(dl), dl)

        fwd = chord(i)
        prev = chord((i - 1).clamp(min=0))
        nxt = chord((i + 1).clamp(max=n - 2))
        lower, upper = self._a_lower[i], self._a_upper[i]
        d0 = torch.where(lower, fwd, 0.5 * (fwd + prev))
        d1 = torch.where(upper, fwd, 0.5 * (fwd + nxt))
        dlq = lq[i + 1] - lq[i]
        t = (torch.log(qq) - lq[i]) / dlq
        val = _hermite(t, a[i], d0 * dlq, a[i + 1], d1 * dlq)
        val = torch.where(val.abs() < 2.0, val, torch.full_like(val, np.finfo(np.float64).max))
        low = a[0] * (q2 / q2s[0]) ** self._ipol._low_power
        return torch.where(below, low, torch.where(above, a[-1], val)).to(where)
