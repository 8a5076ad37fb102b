"""Samplers of one invariant (s of an s-channel propagator, -t of a t-channel line).

Each maps ``r`` in [0, 1] onto ``[lo, hi]`` with a normalised density ``g`` and returns
``x`` with the Jacobian ``dx/dr = 1 / g(x)``; ``inverse`` goes back with the same
Jacobian. These are the samplers the compiled channel maps use (``csrc/phasespace_math.h``,
formulas in ``docs/phasespace.md``), exposed for tests and for integrands that sample a
propagator on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from madnis_py._core import ext
from madnis_py.phasespace.topology import (
    SAMPLER_BREIT_WIGNER,
    SAMPLER_BREIT_WIGNER_TAIL,
    SAMPLER_POWER,
)

__all__ = ["BreitWigner", "BreitWignerTail", "InvariantSampler", "PowerLaw"]


@dataclass(frozen=True)
class InvariantSampler:
    """Base: ``map(r, lo, hi) -> (x, jac)`` and ``inverse(x, lo, hi) -> (r, jac)``."""

    def _kind(self) -> tuple[int, float, float]:
        raise NotImplementedError

    def _run(self, values: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike,
             inverse: bool) -> tuple[np.ndarray, np.ndarray]:
        v = np.ascontiguousarray(values, dtype=np.float64)
        lo_b = np.ascontiguousarray(np.broadcast_to(np.asarray(lo, dtype=np.float64), v.shape))
        hi_b = np.ascontiguousarray(np.broadcast_to(np.asarray(hi, dtype=np.float64), v.shape))
        if np.any(hi_b < lo_b):
            raise ValueError("invariant sampler: hi must be >= lo")
        out = np.empty_like(v)
        jac = np.empty_like(v)
        kind, a, b = self._kind()
        ext.ps_invariant(kind, a, b, lo_b, hi_b, v, out, jac, inverse=inverse)
        return out, jac

    def map(self, r: npt.ArrayLike, lo: npt.ArrayLike,
            hi: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """x in [lo, hi] and dx/dr for r in [0, 1]."""
        return self._run(r, lo, hi, False)

    def inverse(self, x: npt.ArrayLike, lo: npt.ArrayLike,
                hi: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        """r and dx/dr for x in [lo, hi]."""
        return self._run(x, lo, hi, True)


@dataclass(frozen=True)
class BreitWigner(InvariantSampler):
    """Density ``~ 1 / ((s - M^2)^2 + M^2 Gamma^2)`` (the squared propagator)."""

    mass: float
    width: float

    def __post_init__(self) -> None:
        if not (self.mass > 0 and self.width > 0):
            raise ValueError(f"BreitWigner: mass and width must be > 0, got {self.mass}, "
                             f"{self.width}")

    def _kind(self) -> tuple[int, float, float]:
        return SAMPLER_BREIT_WIGNER, self.mass, self.width


@dataclass(frozen=True)
class BreitWignerTail(BreitWigner):
    """The Breit-Wigner on ``[lo, xb]`` and ``1 / s`` on ``[xb, hi]``, with
    ``xb = (M + TAIL_CUTOFF Gamma)^2`` and the Breit-Wigner's share chosen so that the
    density is continuous at ``xb`` (the plain Breit-Wigner when ``hi <= xb``, ``1 / s``
    alone when ``lo >= xb``). The channel maps sample every massive s-channel propagator
    with it but the partonic energy of hadron beams: far above the pole a pure
    Breit-Wigner leaves a share ``~ M Gamma / (pi s)`` of ``r``, too little for a diagram
    whose off-shell propagator still carries a sizeable part of the integrand."""

    def _kind(self) -> tuple[int, float, float]:
        return SAMPLER_BREIT_WIGNER_TAIL, self.mass, self.width


@dataclass(frozen=True)
class PowerLaw(InvariantSampler):
    """Density ``~ 1 / (x + offset)^nu`` (nu = 0 is flat)."""

    nu: float
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not (self.nu >= 0 and np.isfinite(self.nu) and np.isfinite(self.offset)):
            raise ValueError(f"PowerLaw: nu must be finite and >= 0, got {self.nu}")

    def _kind(self) -> tuple[int, float, float]:
        return SAMPLER_POWER, self.nu, self.offset
