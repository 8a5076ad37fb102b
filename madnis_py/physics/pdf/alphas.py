"""alpha_s as LHAPDF computes it from a set's metadata: ``ipol`` and ``analytic``."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from madnis_py.physics.pdf.errors import PDFError
from madnis_py.physics.pdf.info import INFO_DEFAULTS
from madnis_py.physics.pdf.interpolation import hermite, index_below

__all__ = ["AlphaSAnalytic", "AlphaSIpol", "make_alphas"]

FloatArray = NDArray[np.float64]

_QUARK_NAMES = ("Down", "Up", "Strange", "Charm", "Bottom", "Top")
_ZETA3 = 1.2020569031595942


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
            i = index_below(q2s, qq)

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
            val = hermite(t, a[i], d0 * dlq, a[i + 1], d1 * dlq)
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

    def flavour_steps(self) -> tuple[int, list[tuple[float, int]]]:
        """How the active flavours step with Q2 (LHAPDF's
        ``AlphaS_Analytic::numFlavorsQ2``): the number at the lowest scales, and the
        ``(threshold Q2, number above it)`` steps in the order they apply (a later step
        wins where ``Q2 > threshold``; the ``fixed_nf`` cap included)."""
        if self.fixed_scheme and self.fixed_nf is not None:
            return self.fixed_nf, []
        cap = self.fixed_nf if self.fixed_nf is not None else self._nfmax
        steps = [(self.thresholds[it] ** 2, min(it, cap))
                 for it in range(self._nfmin, self._nfmax + 1) if it in self.thresholds]
        return min(self._nfmin, cap), steps

    def num_flavours(self, q2: FloatArray) -> NDArray[np.int64]:
        """Active flavours at Q2 (LHAPDF's ``AlphaS_Analytic::numFlavorsQ2``)."""
        q2 = np.asarray(q2, dtype=np.float64)
        lowest, steps = self.flavour_steps()
        nf = np.full(q2.shape, lowest, dtype=np.int64)
        for threshold, above in steps:
            nf = np.where(threshold < q2, above, nf)
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

    def lambda_qcd(self, nf: int) -> float:
        """Lambda_QCD in GeV used with ``nf`` active flavours."""
        return self._lambda(nf)

    def series(self, lnx: Any, lnlnx: Any, nf: int) -> Any:
        """The expansion in ``L = lnx = ln(Q2 / Lambda^2)`` (and ``lnlnx = ln L``) at
        ``nf`` flavours, for ``order >= 1``: arithmetic only, so numpy arrays and torch
        tensors (:class:`~madnis_py.physics.pdf.device.DevicePDF`) take the same terms."""
        b0, b1, b2, b3 = _beta_coefficients(nf)
        y = 1.0 / lnx
        tmp: Any = 1.0
        if self.order > 1:
            tmp = tmp - b1 * lnlnx / b0 ** 2 * y
        if self.order > 2:
            tmp = tmp + b1 ** 2 / b0 ** 4 * y * y * (
                lnlnx ** 2 - lnlnx + b2 * b0 / b1 ** 2 - 1.0)
        if self.order > 3:
            tmp = tmp - y ** 3 / b0 ** 6 * (
                b1 ** 3 * (lnlnx ** 3 - 2.5 * lnlnx ** 2 - 2 * lnlnx + 0.5)
                + 3 * b0 * b1 * b2 * lnlnx - 0.5 * b0 ** 2 * b3)
        return y * tmp / b0

    def at_nf(self, q2: FloatArray, nf: int, lam: float | None = None) -> FloatArray:
        """The expansion at fixed nf (and Lambda, default the one for nf)."""
        q2 = np.asarray(q2, dtype=np.float64)
        lam = self._lambda(nf) if lam is None else lam
        if self.order == 0:
            return np.full(q2.shape, self.alphas_mz)
        with np.errstate(divide="ignore", invalid="ignore"):
            lnx = np.log(q2 / (lam * lam))
            val = self.series(lnx, np.log(lnx), nf)
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
                       fixed_scheme: bool = False) -> AlphaSAnalytic:
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


def make_alphas(info: Mapping[str, Any], where: str) -> Callable[[FloatArray], FloatArray]:
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

