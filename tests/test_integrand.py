"""Cross sections through the whole integrand against analytic and quadrature results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from madnis_py.integrand import GEV2_TO_PB, Integrand, dynamical_scale
from madnis_py.physics import load_process, read_slha

CARD = read_slha(load_process("ee_mumu").param_card)
ALPHA = 1 / CARD.get("sminputs", 1)
MZ, WZ = CARD.mass(23), CARD.width(23)
MW = math.sqrt(MZ ** 2 / 2 + math.sqrt(MZ ** 4 / 4 - ALPHA * math.pi * MZ ** 2
                                         / (CARD.get("sminputs", 2) * math.sqrt(2))))
SW2 = 1 - MW ** 2 / MZ ** 2


def helicity_factors(s: float, q_in: float, t3_in: float, q_out: float,
                     t3_out: float) -> float:
    """sum_ij |f_ij|^2 with f_ij = Q Q' + g_i g'_j / (sw^2 cw^2) s / (s - MZ^2 + i MZ WZ)."""
    prop = s / complex(s - MZ ** 2, MZ * WZ) / (SW2 * (1 - SW2))
    g_in = (t3_in - q_in * SW2, -q_in * SW2)
    g_out = (t3_out - q_out * SW2, -q_out * SW2)
    return sum(abs(q_in * q_out + a * b * prop) ** 2 for a in g_in for b in g_out)


def ee_mumu_sigma(sqrt_s: float, eta_max: float | None = None) -> float:
    s = sqrt_s ** 2
    sigma = math.pi * ALPHA ** 2 / (3 * s) * helicity_factors(s, -1, -0.5, -1, -0.5)
    if eta_max is not None:
        # (1 +- cos)^2 integrated over |cos| < c relative to the full range; both leptons
        # are back to back, so one |eta| cut is the cut on both.
        c = math.tanh(eta_max)
        sigma *= (3 * c + c ** 3) / 4
    return sigma * GEV2_TO_PB


@pytest.mark.parametrize(("sqrt_s", "eta"), [(91.188, None), (500.0, None), (1000.0, 2.5)])
def test_ee_mumu_cross_section(sqrt_s: float, eta: float | None) -> None:
    cuts = {} if eta is None else {"etal": eta}
    integrand = Integrand("ee_mumu", sqrt_s=sqrt_s, cuts=cuts)
    exact = ee_mumu_sigma(sqrt_s, eta)
    rng = np.random.default_rng(1)
    for channel in range(integrand.n_channels):
        f = integrand(rng.random((400_000, integrand.dims(channel))), channel).f
        mean, err = f.mean(), f.std() / math.sqrt(len(f))
        assert err < 2e-3 * mean
        assert abs(mean - exact) < 3 * err, (channel, mean / exact - 1, err / mean)


def test_prior_is_normalised_and_follows_the_resonance() -> None:
    integrand = Integrand("ee_mumu", sqrt_s=91.188)
    batch = integrand(np.random.default_rng(2).random((1000, 2)), 0)
    assert batch.prior is not None
    np.testing.assert_allclose(batch.prior.sum(axis=1), 1.0, rtol=1e-12)
    names = integrand.channel_names()
    z = names.index(next(n for n in names if "Z" in n))
    assert np.all(batch.prior[:, z] > 0.9)  # on the Z pole the Z diagram dominates


def test_dynamical_scales() -> None:
    p = np.zeros((1, 4, 4))
    p[0, 0] = [50, 0, 0, 50]
    p[0, 1] = [50, 0, 0, -50]
    p[0, 2] = [50, 30, 0, 40]
    p[0, 3] = [50, -30, 0, -40]
    assert dynamical_scale(p, 1)[0] == pytest.approx(60.0)
    assert dynamical_scale(p, 2)[0] == pytest.approx(60.0)
    assert dynamical_scale(p, 3)[0] == pytest.approx(30.0)
    assert dynamical_scale(p, 4)[0] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="dynamical_scale_choice must be 1, 2, 3 or 4"):
        dynamical_scale(p, 7)
