"""Invariant samplers: normalised densities, exact inverses, zero-variance Breit-Wigner."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from madnis_py.phasespace import BreitWigner, PowerLaw

SAMPLERS = [
    (BreitWigner(91.188, 2.441404), 1.0, 250.0 ** 2),
    (BreitWigner(173.0, 1.4915), 150.0 ** 2, 200.0 ** 2),
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

    points = [91.188 ** 2, 173.0 ** 2] if isinstance(sampler, BreitWigner) else None
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
