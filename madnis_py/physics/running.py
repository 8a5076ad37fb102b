"""alpha_s(Q) without a PDF set, as madevent runs it for lepton beams.

Without PDFs madevent takes alpha_s(M_Z) from the param card (``SMINPUTS 3``) and runs it
at two loops (``setrun.f``: ``nloop = 2``) with ``ALPHAS(Q)`` of MadGraph's
``alfas_functions.f``: the exact two-loop solution of the renormalisation-group equation
in ``t = ln(Q^2 / Q0^2)``, found by Newton's method from the approximate one, with 5
flavours above the b threshold (4.7 GeV), 4 between it and the c threshold (1.42 GeV) and
3 below, alpha_s continuous at the thresholds. Its coefficients are ``b0 = beta0 / (4 pi)``
and ``c1 = beta1 / (4 pi beta0)`` (``beta0 = 11 - 2 nf / 3``, ``beta1 = 102 - 38 nf / 3``).
Newton's method here stops when a step changes alpha_s by less than 1e-14 (MadGraph's by
5e-4 relative, one step earlier at most: the results agree to about 1e-8).
"""

from __future__ import annotations

import functools
import math
from types import ModuleType
from typing import Any, overload

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["madgraph_alphas"]

MZ = 91.188
#: MadGraph's heavy-quark masses for the flavour thresholds (``COMMON/QMASS``).
C_MASS, B_MASS = 1.42, 4.7

def _coefficients(nf: int) -> tuple[float, float]:
    beta0 = 11.0 - 2.0 * nf / 3.0
    beta1 = 102.0 - 38.0 * nf / 3.0
    return beta0 / (4 * math.pi), beta1 / (4 * math.pi * beta0)


def _run(t: Any, a_in: float, nf: int, nloop: int, xp: ModuleType) -> Any:
    """alpha_s at ``t = ln(Q^2 / Q0^2)`` (a numpy array or a torch tensor, ``xp`` its
    module) from ``a_in`` at ``Q0`` with ``nf`` flavours (MadGraph's ``NEWTON1``)."""
    b0, c1 = _coefficients(nf)
    return _solve(t, xp.full_like(t, a_in), b0, c1, nloop, xp)


def _solve(t: Any, a0: Any, b0: Any, c1: Any, nloop: int, xp: ModuleType,
           first_look: int = 0) -> Any:
    """The one- or two-loop solution at ``t`` from ``a0`` with the coefficients ``b0``,
    ``c1`` (numbers, or arrays like ``t``): Newton's method from the approximate
    solution until a step changes alpha_s by less than 1e-14, its convergence looked at
    from step ``first_look`` on (each look a host synchronisation for a GPU tensor)."""
    if nloop == 1:
        return a0 / (1.0 + a0 * b0 * t)
    a = a0 / (1.0 + b0 * a0 * t + c1 * a0 * xp.log(1.0 + a0 * b0 * t))
    a = xp.where(a < 0, 0.3, a)

    def f2(x: Any) -> Any:
        return 1.0 / x + c1 * xp.log(c1 * x / (1.0 + c1 * x))

    for k in range(50):
        f = b0 * t + f2(a0) - f2(a)
        fp = 1.0 / (a ** 2 * (1.0 + c1 * a))
        step = f / fp
        a = a - step
        if k >= first_look and bool(xp.all(xp.abs(step) < 1e-14)):
            break
    return a


@functools.lru_cache(maxsize=64)
def _thresholds(asmz: float, nloop: int) -> tuple[float, float]:
    """alpha_s at the b and c thresholds (continuous there), run down from M_Z: the same
    for every call with this ``asmz``, so solved once."""
    a_b = float(_run(np.asarray(2 * math.log(B_MASS / MZ)), asmz, 5, nloop, np))
    a_c = float(_run(np.asarray(2 * math.log(C_MASS / B_MASS)), a_b, 4, nloop, np))
    return a_b, a_c


@overload
def madgraph_alphas(q: torch.Tensor, asmz: float, nloop: int = 2) -> torch.Tensor: ...


@overload
def madgraph_alphas(q: npt.ArrayLike, asmz: float, nloop: int = 2
                    ) -> npt.NDArray[np.float64]: ...


def madgraph_alphas(q: Any, asmz: float, nloop: int = 2) -> Any:
    """alpha_s at the scales ``q`` (GeV, > 0) from ``alpha_s(M_Z) = asmz``, run as
    madevent runs it without PDFs (see the module docstring; ``nloop`` 1 or 2).

    ``q`` may be a torch tensor (float64 on any device): the answer is then a tensor on
    its device, computed there with the same formulas.

    Examples
    --------
    >>> round(float(madgraph_alphas(91.188, 0.118)), 12)
    0.118
    """
    if nloop not in (1, 2):
        raise ValueError(f"nloop must be 1 or 2, got {nloop}")
    if not asmz > 0:
        raise ValueError(f"alpha_s(M_Z) must be > 0, got {asmz!r}")
    a_b, a_c = _thresholds(float(asmz), nloop)
    if isinstance(q, torch.Tensor):
        return _alphas_tensor(q.to(torch.float64), float(asmz), a_b, a_c, nloop)
    xp: ModuleType = np
    qs = np.asarray(q, dtype=np.float64)
    if bool(xp.any(~(qs > 0))):
        raise ValueError("scales must be > 0")
    out = xp.empty_like(qs)
    high, mid, low = qs >= B_MASS, (qs < B_MASS) & (qs >= C_MASS), qs < C_MASS
    out[high] = _run(2 * xp.log(qs[high] / MZ), asmz, 5, nloop, xp)
    out[mid] = _run(2 * xp.log(qs[mid] / B_MASS), a_b, 4, nloop, xp)
    out[low] = _run(2 * xp.log(qs[low] / C_MASS), a_c, 3, nloop, xp)
    return out


def _alphas_tensor(qs: torch.Tensor, asmz: float, a_b: float, a_c: float,
                   nloop: int) -> torch.Tensor:
    """:func:`madgraph_alphas` of a tensor with one host synchronisation on a GPU: the
    three flavour regions' coefficients and starting points chosen per point by
    ``torch.where`` (no masked selections), one Newton solution for all points, its
    convergence read once after six steps (the numpy solution's steps are below 1e-14
    after four from 1 GeV to 100 TeV) and again after each further step only where
    that was not enough. The same formulas as the numpy path; the results differ from
    it only where it stops a step earlier or later, at rounding. Scales <= 0 give NaN
    (which the integrand's value check reports) instead of an error."""
    high, low = qs >= B_MASS, qs < C_MASS

    def pick(at_high: float, at_mid: float, at_low: float) -> torch.Tensor:
        return torch.where(high, at_high, torch.where(low, at_low, torch.full_like(qs, at_mid)))

    b0 = pick(*(_coefficients(nf)[0] for nf in (5, 4, 3)))
    c1 = pick(*(_coefficients(nf)[1] for nf in (5, 4, 3)))
    a0 = pick(asmz, a_b, a_c)
    t = 2 * torch.log(qs / pick(MZ, B_MASS, C_MASS))
    a = _solve(t, a0, b0, c1, nloop, torch, first_look=5)
    return torch.where(qs > 0, a, torch.nan)
