"""Invariant samplers: normalised densities, exact inverses, zero-variance Breit-Wigner, the
Breit-Wigner with a 1/s tail."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate

from madnis_py.phasespace import BreitWigner, BreitWignerTail, PowerLaw
from madnis_py.phasespace.topology import TAIL_CUTOFF

MZ, GZ = 91.188, 2.441404
XB_Z = (MZ + TAIL_CUTOFF * GZ) ** 2

SAMPLERS = [
    (BreitWigner(91.188, 2.441404), 1.0, 250.0 ** 2),
    (BreitWigner(173.0, 1.4915), 150.0 ** 2, 200.0 ** 2),
    (BreitWignerTail(MZ, GZ), 0.0, 1000.0 ** 2),  # pole, then the tail
    (BreitWignerTail(MZ, GZ), 60.0 ** 2, 13000.0 ** 2),
    (BreitWignerTail(MZ, GZ), 1.0, 120.0 ** 2),  # below the tail: the plain Breit-Wigner
    (BreitWignerTail(MZ, GZ), 200.0 ** 2, 1000.0 ** 2),  # above the pole: 1/s alone
    (PowerLaw(0.0), 0.0, 100.0),
    (PowerLaw(0.8), 0.0, 1e4),
    (PowerLaw(1.0), 1.0, 1e4),
    (PowerLaw(1.0, 80.4 ** 2), 0.0, 1e4),
    (PowerLaw(2.3, 10.0), 5.0, 1e3),
]


@pytest.mark.parametrize(("sampler", "lo", "hi"), SAMPLERS)
def test_density_integrates_to_one(sampler, lo: float, hi: float) -> None:
    def density(x: float) -> float:
        return float(1.0 / sampler.inverse(np.array([x]), lo, hi)[1][0])

    points = [91.188 ** 2, 173.0 ** 2, XB_Z] if isinstance(sampler, BreitWigner) else None
    points = [p for p in points or [] if lo < p < hi] or None
    total = integrate.quad(density, lo, hi, points=points, limit=500, epsabs=0,
                           epsrel=1e-10)[0]
    assert total == pytest.approx(1.0, rel=1e-8)


@pytest.mark.parametrize(("sampler", "lo", "hi"), SAMPLERS)
def test_inverse_round_trip(sampler, lo: float, hi: float) -> None:
    r = np.random.default_rng(0).random(10_000)
    x, jac = sampler.map(r, lo, hi)
    assert np.all((x >= lo) & (x <= hi))
    back, jac2 = sampler.inverse(x, lo, hi)
    np.testing.assert_allclose(back, r, atol=1e-12)
    np.testing.assert_allclose(jac2, jac, rtol=1e-12)
    # dx/dr by central differences
    h = 1e-6
    r_in = 0.01 + 0.98 * r  # away from r = 0, where x ~ r^5 for nu = 0.8
    xp, _ = sampler.map(r_in + h, lo, hi)
    xm, _ = sampler.map(r_in - h, lo, hi)
    _, j_in = sampler.map(r_in, lo, hi)
    np.testing.assert_allclose((xp - xm) / (2 * h), j_in, rtol=1e-5)


def test_breit_wigner_sampling_of_a_breit_wigner_has_zero_variance() -> None:
    m, g = 91.188, 2.441404
    lo, hi = 60.0 ** 2, 120.0 ** 2
    r = np.random.default_rng(1).random(100_000)
    s, jac = BreitWigner(m, g).map(r, lo, hi)
    f = 1.0 / ((s - m * m) ** 2 + (m * g) ** 2)
    w = f * jac
    exact = (np.arctan((hi - m * m) / (m * g)) - np.arctan((lo - m * m) / (m * g))) / (m * g)
    np.testing.assert_allclose(w, exact, rtol=1e-10)


def test_power_law_sampling_of_its_own_shape_has_zero_variance() -> None:
    r = np.random.default_rng(2).random(10_000)
    for nu in (0.5, 1.0, 1.7):
        x, jac = PowerLaw(nu, 3.0).map(r, 1.0, 500.0)
        w = (x + 3.0) ** -nu * jac
        np.testing.assert_allclose(w, w[0], rtol=1e-10)


def _tail_density(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """docs/phasespace.md: the Breit-Wigner on [lo, xb], 1/s on [xb, hi], continuous."""
    m2, mg = MZ * MZ, MZ * GZ
    norm_bw = (math.atan((XB_Z - m2) / mg) - math.atan((lo - m2) / mg)) / mg
    bw = 1 / (((x - m2) ** 2 + mg * mg) * norm_bw)
    tail = 1 / (x * math.log(hi / XB_Z))
    bw_b = 1 / (((XB_Z - m2) ** 2 + mg * mg) * norm_bw)
    tail_b = 1 / (XB_Z * math.log(hi / XB_Z))
    p = tail_b / (bw_b + tail_b)
    return np.where(x < XB_Z, p * bw, (1 - p) * tail)


def test_breit_wigner_tail_density_is_the_breit_wigner_then_one_over_s() -> None:
    lo, hi = 0.0, 1000.0 ** 2
    x = np.concatenate([np.linspace(1.0, XB_Z, 500, endpoint=False),
                        np.geomspace(XB_Z, hi, 500)])
    _, jac = BreitWignerTail(MZ, GZ).inverse(x, lo, hi)
    np.testing.assert_allclose(1 / jac, _tail_density(x, lo, hi), rtol=1e-12)
    # continuous at xb: the two pieces meet
    _, j = BreitWignerTail(MZ, GZ).inverse(np.array([XB_Z * (1 - 1e-12), XB_Z]), lo, hi)
    assert j[0] == pytest.approx(j[1], rel=1e-9)


def test_breit_wigner_tail_gives_the_off_shell_region_a_share_a_grid_can_adapt() -> None:
    # e+ e- -> mu+ mu- a at 1 TeV: the Z* -> mu mu of the initial-state-radiation diagrams
    # carries 6 % of its channel's integral above m = 500 GeV. A pure Breit-Wigner gives
    # that region a share 2.2e-4 of r (the weights there reached 130x the mean); the tail
    # gives it 2.4 %.
    lo, hi, cut = 0.0, 1000.0 ** 2, 500.0 ** 2
    share_bw = 1 - float(BreitWigner(MZ, GZ).inverse(np.array([cut]), lo, hi)[0][0])
    share_tail = 1 - float(BreitWignerTail(MZ, GZ).inverse(np.array([cut]), lo, hi)[0][0])
    assert share_bw < 3e-4
    assert 0.02 < share_tail < 0.03
    # while the pole (M +- 5 G) keeps at least 90 % of the share the pure Breit-Wigner gives it
    pole = np.array([(MZ - 5 * GZ) ** 2, (MZ + 5 * GZ) ** 2])
    r_bw = BreitWigner(MZ, GZ).inverse(pole, lo, hi)[0]
    r_tail = BreitWignerTail(MZ, GZ).inverse(pole, lo, hi)[0]
    assert r_tail[1] - r_tail[0] > 0.9 * (r_bw[1] - r_bw[0])
