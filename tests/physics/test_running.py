"""alpha_s run as madevent runs it without PDFs (lepton beams)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

from madnis_py.host_syncs import count_host_syncs
from madnis_py.integrand import Integrand
from madnis_py.physics.running import B_MASS, C_MASS, MZ, madgraph_alphas


def _two_loop_ode(q: float, asmz: float) -> float:
    """The two-loop renormalisation-group equation integrated numerically, 5 flavours
    above the b threshold, 4 below (alpha_s continuous there)."""
    def rhs(nf: int):  # d alpha / d ln Q^2
        b0 = (11 - 2 * nf / 3) / (4 * math.pi)
        b1 = (102 - 38 * nf / 3) / (16 * math.pi ** 2)
        return lambda t, a: [-b0 * a[0] ** 2 - b1 * a[0] ** 3]

    def run(a0: float, q0: float, q1: float, nf: int) -> float:
        sol = solve_ivp(rhs(nf), (2 * math.log(q0), 2 * math.log(q1)), [a0],
                        rtol=1e-12, atol=1e-14)
        return float(sol.y[0, -1])

    if q >= B_MASS:
        return run(asmz, MZ, q, 5)
    return run(run(asmz, MZ, B_MASS, 5), B_MASS, q, 4)


def test_alpha_s_runs_as_madevent() -> None:
    # madevent, e+ e- > j j g at 1 TeV, scale 1000 GeV, param card aS = 0.118: AQCDUP of
    # its events is 8.684367e-02
    assert float(madgraph_alphas(1000.0, 0.118)[()]) == pytest.approx(0.08684367, abs=5e-9)
    assert float(madgraph_alphas(MZ, 0.118)[()]) == 0.118
    qs = np.array([2.0, 4.0, 10.0, 50.0, 200.0, 3000.0])
    ours = madgraph_alphas(qs, 0.118)
    exact = np.array([_two_loop_ode(q, 0.118) for q in qs])
    np.testing.assert_allclose(ours, exact, rtol=1e-8)
    # one loop: the closed form
    np.testing.assert_allclose(madgraph_alphas(500.0, 0.118, nloop=1),
                               0.118 / (1 + 0.118 * 23 / (12 * math.pi)
                                        * math.log(500.0 ** 2 / MZ ** 2)), rtol=1e-15)
    # continuous at the thresholds, decreasing with the scale
    for m in (C_MASS, B_MASS):
        lo, hi = madgraph_alphas([m * (1 - 1e-12), m], 0.118)
        assert lo == pytest.approx(hi, rel=1e-9)
    assert np.all(np.diff(madgraph_alphas(np.geomspace(1.0, 1e4, 50), 0.118)) < 0)
    with pytest.raises(ValueError, match="nloop"):
        madgraph_alphas(100.0, 0.118, nloop=3)
    with pytest.raises(ValueError, match="scales must be > 0"):
        madgraph_alphas([100.0, 0.0], 0.118)


def test_lepton_beams_run_alpha_s_to_each_points_scale() -> None:
    integ = Integrand("ee_qqg", dynamical_scale_choice=3)  # HT / 2, not the card's M_Z
    x = np.random.default_rng(0).random((2000, integ.dims(0)))
    b = integ(x, 0, details=True)
    on = b.passed
    assert on.sum() > 100 and b.alpha_s is not None and b.scale is not None
    assert integ.asmz is not None
    np.testing.assert_array_equal(b.alpha_s[on], madgraph_alphas(b.scale[on], integ.asmz))
    # the card's fixed scale at M_Z keeps alpha_s(M_Z); a fixed alpha_s wins
    fixed = Integrand("ee_qqg")(x, 0, details=True)
    assert fixed.alpha_s is not None
    np.testing.assert_array_equal(fixed.alpha_s[fixed.passed], integ.asmz)
    given = Integrand("ee_qqg", dynamical_scale_choice=3, alpha_s=0.1)(x, 0, details=True)
    assert given.alpha_s is not None and np.all(given.alpha_s[given.passed] == 0.1)
    # |M|^2 of e+ e- -> q q~ g is proportional to alpha_s
    ratio = b.f[on] / given.f[on]
    np.testing.assert_allclose(ratio, b.alpha_s[on] / 0.1, rtol=1e-12)


def _scales() -> np.ndarray:
    """Scales on all three sides of the flavour thresholds."""
    return np.concatenate([np.exp(np.random.default_rng(2).uniform(0.0, 9.0, 20000)),
                           [C_MASS, B_MASS, MZ, 1.0]])


@pytest.mark.parametrize("nloop", [1, 2])
def test_torch_scales_run_as_the_numpy_ones(nloop: int) -> None:
    """A tensor of scales runs with the same formulas on its device (the device
    integrand's lepton beams): to rounding, a float64 tensor where the scales are."""
    qs = _scales()
    want = madgraph_alphas(qs, 0.13, nloop)
    got = madgraph_alphas(torch.from_numpy(qs), 0.13, nloop)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=2e-15, atol=0)
    # one host synchronisation (the Newton solution's convergence, read once) where the
    # numpy path's masked selections and per-region checks were ten on a GPU
    with count_host_syncs() as syncs:
        madgraph_alphas(torch.from_numpy(qs), 0.13, nloop)
    assert syncs.total == (1 if nloop == 2 else 0), syncs.table()
    # scales <= 0: NaN for the integrand's value check to report, no synchronisation
    bad = madgraph_alphas(torch.tensor([100.0, -1.0, 0.0]), 0.118)
    assert math.isfinite(float(bad[0])) and torch.isnan(bad[1:]).all()


def test_integrand_alphas_of_tensors() -> None:
    """Integrand.alphas_at gives tensors for tensors: fixed and run alpha_s; a PDF set's
    alpha_s needs the numpy reader (DevicePDF on a device)."""
    mu = torch.linspace(5.0, 2000.0, 300, dtype=torch.float64)
    lep = Integrand("ee_qqg")
    np.testing.assert_allclose(lep.alphas_at(mu).numpy(), lep.alphas_at(mu.numpy()),
                               rtol=2e-15, atol=0)
    fixed = Integrand("ee_qqg", alpha_s=0.1).alphas_at(mu)
    assert isinstance(fixed, torch.Tensor) and torch.all(fixed == 0.1)
    with pytest.raises(TypeError, match="DevicePDF"):
        Integrand("drell_yan").alphas_at(mu)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_scales_run_as_the_numpy_ones() -> None:
    qs = _scales()
    got = madgraph_alphas(torch.from_numpy(qs).cuda(), 0.118)
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), madgraph_alphas(qs, 0.118), rtol=1e-14,
                               atol=0)
