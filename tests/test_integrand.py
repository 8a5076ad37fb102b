"""Cross sections through the whole integrand against analytic and quadrature results."""

from __future__ import annotations

import math

import numpy as np
import pytest

from madnis_py.integrand import GEV2_TO_PB, Integrand, dynamical_scale
from madnis_py.physics import load_process, read_slha
from madnis_py.physics.builtin import builtin_processes

CARD = read_slha(load_process("ee_mumu").param_card)
ALPHA = 1 / CARD.get("sminputs", 1)
MZ, WZ = CARD.mass(23), CARD.width(23)
MW = math.sqrt(MZ ** 2 / 2 + math.sqrt(MZ ** 4 / 4 - ALPHA * math.pi * MZ ** 2
                                         / (CARD.get("sminputs", 2) * math.sqrt(2))))
SW2 = 1 - MW ** 2 / MZ ** 2


def helicity_factors(s: float, q_in: float, t3_in: float, q_out: float,
                     t3_out: float, zprime: tuple[float, float, float] | None = None) -> float:
    """sum_ij |f_ij|^2 with f_ij = Q Q' + g_i g'_j / (sw^2 cw^2) s / (s - MZ^2 + i MZ WZ),
    plus kappa times the same for a Z' (mass, width, kappa = kappa_q kappa_l) if given."""
    prop = s / complex(s - MZ ** 2, MZ * WZ) / (SW2 * (1 - SW2))
    if zprime is not None:
        mzp, wzp, kappa = zprime
        prop += kappa * s / complex(s - mzp ** 2, mzp * wzp) / (SW2 * (1 - SW2))
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


def test_prior_normalisation_of_tensors_is_that_of_arrays() -> None:
    """_normalised_prior: rows normalised, rows inside the cuts without any prior shared
    alike among the group's channels (1/3 here), other empty rows zero; torch tensors
    (the device integrand's, without a masked assignment) give the arrays' numbers
    exactly."""
    import torch

    from madnis_py.host_syncs import count_host_syncs
    from madnis_py.integrand import _normalised_prior

    rng = np.random.default_rng(3)
    num = rng.uniform(0, 2, (500, 5)) * (rng.uniform(size=(500, 5)) < 0.5)
    num[:, 3:] = 0.0  # another group's channels
    num[::7] = 0.0
    passed = rng.uniform(size=500) < 0.8
    mine = np.array([True, True, True, False, False])
    want = _normalised_prior(num.copy(), passed, mine)
    empty = passed & (num.sum(1) == 0)
    assert empty.sum() > 10
    np.testing.assert_array_equal(want[empty], np.tile([1 / 3, 1 / 3, 1 / 3, 0, 0],
                                                       (empty.sum(), 1)))
    assert np.all(want[~passed & (num.sum(1) == 0)] == 0)
    np.testing.assert_allclose(want[~empty & (num.sum(1) > 0)].sum(1), 1.0, rtol=1e-15)
    with count_host_syncs() as syncs:
        got = _normalised_prior(torch.from_numpy(num), torch.from_numpy(passed),
                                torch.from_numpy(mine))
    assert syncs.total == 0, syncs.table()
    np.testing.assert_array_equal(got.numpy(), want)


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


def drell_yan_quadrature(sqrt_s: float, mll_min: float, pdf,
                         zprime: tuple[float, float, float] | None = None) -> float:
    """LO p p -> e+ e- with mu_F = m_ll: sum_q int dtau dy [q(x1) qbar(x2) + qbar(x1) q(x2)]
    sigma_qqbar(tau S), the y integral by 400-point Gauss-Legendre, tau by adaptive quad."""
    from scipy import integrate

    big_s = sqrt_s ** 2
    nodes, weights = np.polynomial.legendre.leggauss(400)
    quarks = {1: (-1 / 3, -0.5), 2: (2 / 3, 0.5), 3: (-1 / 3, -0.5), 4: (2 / 3, 0.5)}

    def in_log_tau(log_tau: float) -> float:
        tau = math.exp(log_tau)
        shat = tau * big_s
        ymax = -0.5 * log_tau
        y = nodes * ymax
        x1, x2 = np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)
        q2 = np.full_like(y, shat)
        total = 0.0
        for q, (charge, t3) in quarks.items():
            lum = (pdf.xfxQ2(q, x1, q2) * pdf.xfxQ2(-q, x2, q2)
                   + pdf.xfxQ2(-q, x1, q2) * pdf.xfxQ2(q, x2, q2)) / (x1 * x2)
            sigma_hat = (math.pi * ALPHA ** 2 / (3 * shat) / 3
                         * helicity_factors(shat, charge, t3, -1, -0.5, zprime))
            total += sigma_hat * float((weights * lum).sum()) * ymax
        return total * tau  # dtau = tau dlog(tau)

    lo = math.log(mll_min ** 2 / big_s)
    peak = math.log(MZ ** 2 / big_s)
    peaks = [peak] if zprime is None else sorted([peak, math.log(zprime[0] ** 2 / big_s)])
    value = integrate.quad(in_log_tau, lo, 0.0, points=peaks, limit=400, epsabs=0,
                           epsrel=1e-7)[0]
    return value * GEV2_TO_PB


def test_propagator_prior_is_madgraphs_sde_strategy_2() -> None:
    """channel_prior = "propagators": channel weights from the propagator denominators
    (here 1 / shat^2 for the photon and the Breit-Wigner of the Z, normalised), the same
    integrand; the fingerprint tells the checkpoints apart."""
    options = {"sqrt_s": 13000.0, "dynamical_scale_choice": 4, "cuts": {"mmll": 50.0},
               "pdf": "LHToyPDF"}
    amplitudes = Integrand("drell_yan", **options)
    propagators = Integrand("drell_yan", channel_prior="propagators", **options)
    x = np.random.default_rng(5).random((3000, amplitudes.dims(0)))
    a, b = amplitudes(x, 0), propagators(x, 0)
    np.testing.assert_array_equal(a.f, b.f)
    assert a.prior is not None and b.prior is not None
    q = b.momenta[:, 0] + b.momenta[:, 1]
    shat = q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(axis=1)
    names = propagators.channel_names()
    z, photon = names.index("Z"), 1 - names.index("Z")
    want = np.empty_like(b.prior)
    want[:, z] = 1 / ((shat - MZ ** 2) ** 2 + (MZ * WZ) ** 2)
    want[:, photon] = 1 / shat ** 2
    want /= want.sum(axis=1, keepdims=True)
    on = b.passed
    assert on.sum() > 1000
    np.testing.assert_allclose(b.prior[on], want[on], rtol=1e-10)
    assert np.abs(a.prior[on] - b.prior[on]).max() > 0.1  # |M_i|^2 is another prior
    assert "channel_prior" not in amplitudes.fingerprint()
    assert propagators.fingerprint()["channel_prior"] == "propagators"
    with pytest.raises(ValueError, match="channel_prior must be one of amplitudes, "
                       "propagators, got 'diagrams'"):
        Integrand("drell_yan", channel_prior="diagrams", **options)


def test_multichannel_estimate_with_the_propagator_prior_against_quadrature() -> None:
    """Any prior splits f among the channels without bias: the multi-channel estimate
    with the propagator prior is the quadrature's within 3 errors."""
    import torch

    from madnis_py.integrand import TorchChannels
    from madnis_py.training import Integrator

    torch.set_num_threads(1)
    integrand = Integrand("drell_yan", sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0}, pdf="LHToyPDF", channel_prior="propagators")
    exact = drell_yan_quadrature(13000.0, 50.0, integrand.pdf)
    channels = TorchChannels(integrand)
    r = Integrator(channels, feature_dims=channels.feature_dims, seed=4).integrate(
        200_000, iterations=2)
    assert r.error < 5e-3 * r.value
    assert abs(r.value - exact) < 3 * r.error, (r.value / exact - 1, r.error / r.value)


def test_drell_yan_cross_section_against_quadrature() -> None:
    integrand = Integrand("drell_yan", sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0}, pdf="LHToyPDF")
    exact = drell_yan_quadrature(13000.0, 50.0, integrand.pdf)
    rng = np.random.default_rng(3)
    z = integrand.channel_names().index("Z")
    f = integrand(rng.random((600_000, integrand.dims(z))), z, prior=False).f
    mean, err = f.mean(), f.std() / math.sqrt(len(f))
    assert err < 3e-3 * mean
    assert abs(mean - exact) < 3 * err, (mean / exact - 1, err / mean)
    # The photon channel alone is noisier (the Z peak is sampled as 1/shat) but unbiased.
    photon = 1 - z
    f = integrand(rng.random((200_000, integrand.dims(photon))), photon, prior=False).f
    mean, err = f.mean(), f.std() / math.sqrt(len(f))
    assert abs(mean - exact) < 3 * err


def test_a_resonance_window_integrates_the_window_alone() -> None:
    """A decay chain's on-shell window (p p > z, z > e+ e-: |m_ee - M_Z| < 15 Gamma_Z)
    is a cut on every point: the cross section is the quadrature between its edges, and
    the channels' mappings start at its lower edge."""
    import dataclasses

    from madnis_py.phasespace.cuts import ResonanceWindow

    window = ResonanceWindow((2, 3), MZ, WZ, 15.0, "z")
    proc = load_process("drell_yan")
    proc = dataclasses.replace(proc, subprocesses=tuple(
        dataclasses.replace(s, resonance_windows=(window,)) for s in proc.subprocesses))
    integrand = Integrand(proc, sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0}, pdf="LHToyPDF")
    assert all(m.topology.min_shat == pytest.approx(window.lower ** 2, rel=1e-12)
               for m in integrand.mappings)
    exact = (drell_yan_quadrature(13000.0, window.lower, integrand.pdf)
             - drell_yan_quadrature(13000.0, window.upper, integrand.pdf))
    rng = np.random.default_rng(4)
    # the photon channel samples the peak as 1/shat: unbiased, but noisier
    for channel, n, rel in ((integrand.channel_names().index("Z"), 300_000, 3e-3),
                            (integrand.channel_names().index("photon"), 200_000, 2e-2)):
        batch = integrand(rng.random((n, integrand.dims(channel))), channel, prior=False)
        mll = np.sqrt(np.maximum(batch.momenta[:, 2:].sum(axis=1)[:, 0] ** 2 - (
            batch.momenta[:, 2:].sum(axis=1)[:, 1:] ** 2).sum(axis=1), 0))
        assert not batch.passed[(mll < window.lower) | (mll > window.upper)].any()
        mean, err = batch.f.mean(), batch.f.std() / math.sqrt(n)
        assert err < rel * mean
        assert abs(mean - exact) < 3 * err, (channel, mean / exact - 1, err / mean)


def test_a_forbidden_window_takes_the_vetoed_diagrams_share_inside_it() -> None:
    """``p p > e+ e- $ z``: inside the Z window the Z diagram's share of |M|^2
    (|M_Z|^2 / (|M_a|^2 + |M_Z|^2), madevent's channel weight of the vetoed channel) is
    lost, outside nothing changes; the factor is the library's own per-diagram |M_i|^2."""
    import dataclasses

    from madnis_py.phasespace.cuts import ResonanceWindow
    from madnis_py.physics.process import ForbiddenWindow

    window = ResonanceWindow((2, 3), MZ, WZ, 15.0, "z")
    plain = load_process("drell_yan")
    z = [t.name for t in plain.channels].index("Z")  # diagram i is channel i here
    vetoed = dataclasses.replace(plain, subprocesses=tuple(
        dataclasses.replace(s, forbidden_windows=(ForbiddenWindow(window, (z,)),))
        for s in plain.subprocesses))
    options = dict(sqrt_s=13000.0, dynamical_scale_choice=4, cuts={"mmll": 50.0},
                   pdf="LHToyPDF")
    full, cut = Integrand(plain, **options), Integrand(vetoed, **options)
    x = np.random.default_rng(6).random((40_000, full.dims(z)))
    a, b = full(x, z, prior=False, details=True), cut(x, z, prior=False, details=True)
    q = a.momenta[:, 2:].sum(axis=1)
    mll = np.sqrt(q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(axis=1))
    inside = np.abs(mll - MZ) < 15.0 * WZ
    assert 0.3 < inside.mean() < 0.99
    np.testing.assert_array_equal(b.f[~inside], a.f[~inside])
    # inside: each subprocess keeps the photon diagram's share
    want = np.zeros(len(x))
    alphas = full.alphas_at(a.scale)
    for k, sub in enumerate(plain.subprocesses):
        sel = inside & (a.subprocess_f[:, k] > 0)
        p_lib = sub.library_momenta(a.momenta[sel])
        _, amp2 = full.matrix_element.smatrix_amp2(p_lib, sub.library_pdgs,
                                                   alpha_s=alphas[sel])
        want[sel] += a.subprocess_f[sel, k] * (1 - amp2[:, z] / amp2.sum(axis=1))
    np.testing.assert_allclose(b.f[inside], want[inside], rtol=1e-13)
    assert (b.f[inside] < 0.2 * a.f[inside]).mean() > 0.5  # the peak is mostly gone


class _OneFlavourPDF:
    """A PDF seen through ``xfxQ2`` and ``alphasQ2`` alone (a user's own object)."""

    def __init__(self, pdf: object) -> None:
        self._pdf = pdf

    def xfxQ2(self, pid: int, x: np.ndarray, q2: np.ndarray) -> np.ndarray:
        return self._pdf.xfxQ2(pid, x, q2)  # type: ignore[attr-defined, no-any-return]

    def alphasQ2(self, q2: np.ndarray) -> np.ndarray:
        return self._pdf.alphasQ2(q2)  # type: ignore[attr-defined, no-any-return]


def test_every_parton_of_a_beam_at_once_gives_the_same_integrand() -> None:
    # the PDF's xfxQ2_flavours (all the beam's partons in one call) against one xfxQ2
    # call per parton: the same f, per-subprocess parts and prior, bit for bit
    fast = Integrand("ttbar", sqrt_s=13000.0, pdf="LHToyPDF")
    slow = Integrand("ttbar", sqrt_s=13000.0, pdf=_OneFlavourPDF(fast.pdf))
    assert fast._beam_pids[0][0] == tuple(sorted({s.pdgs[0]
                                                  for s in fast.process.subprocesses}))
    rng = np.random.default_rng(5)
    for c in range(fast.n_channels):
        x = rng.random((3000, fast.dims(c)))
        a, b = fast(x, c, prior=True, details=True), slow(x, c, prior=True, details=True)
        np.testing.assert_array_equal(a.f, b.f)
        np.testing.assert_array_equal(a.subprocess_f, b.subprocess_f)
        np.testing.assert_array_equal(a.prior, b.prior)
        assert np.count_nonzero(a.f) > 100


def test_details_and_diagram_channels_of_ttbar() -> None:
    """q q~ -> t t~ has one diagram (the card maps it to channel 0), g g -> t t~ three:
    the prior is still normalised; details split f into its subprocesses."""
    integrand = Integrand("ttbar")
    x = np.random.default_rng(1).random((2000, integrand.dims(0)))
    for channel in range(integrand.n_channels):
        b = integrand(x, channel, details=True)
        assert b.prior is not None and b.subprocess_f is not None
        assert b.scale is not None and b.alpha_s is not None
        np.testing.assert_allclose(b.subprocess_f.sum(axis=1), b.f, rtol=1e-12)
        on = b.f > 0
        np.testing.assert_allclose(b.prior[on].sum(axis=1), 1.0, rtol=1e-12)
        quarks = b.subprocess_f[:, 1:].sum(axis=1) > 0
        assert quarks.any() and (b.subprocess_f[:, 0] > 0).any()
        # the scale is MadGraph's choice 3, half the sum of the transverse masses
        np.testing.assert_allclose(b.scale[on], dynamical_scale(b.momenta[on], 3))
        assert np.all((b.alpha_s[on] > 0.05) & (b.alpha_s[on] < 0.2))


FIELDS = ("f", "momenta", "x1x2", "phase_space_weight", "passed", "prior", "subprocess_f",
          "scale", "alpha_s")


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", builtin_processes())
def test_channels_evaluated_together_give_each_channels_own_values(name: str,
                                                                   layout: str) -> None:
    """evaluate_channels runs everything after the phase-space map once per subprocess
    group: every point's values are those of its channel's own call, bit for bit, in the
    order given (a channel twice, groups interleaved), and every point is counted."""
    integrand = Integrand(name, subprocess_channels=layout)
    rng = np.random.default_rng(11)
    order = [*range(integrand.n_channels)][::-1] + [0]
    xs = [(rng.random((int(rng.integers(1, 300)), integrand.dims(c))), c) for c in order]
    xs.append((np.zeros((0, integrand.dims(1))), 1))  # an empty batch
    for details in (False, True):
        alone = [integrand(x, c, details=details) for x, c in xs]
        before = integrand.n_points
        together = integrand.evaluate_channels(xs, details=details)
        assert integrand.n_points - before == sum(len(x) for x, _ in xs)
        assert len(together) == len(xs)
        for a, b in zip(alone, together, strict=True):
            for field in FIELDS:
                u, v = getattr(a, field), getattr(b, field)
                assert (u is None) == (v is None), field
                if u is not None:
                    np.testing.assert_array_equal(v, u, err_msg=field)
    with pytest.raises(IndexError, match="channels"):
        integrand.evaluate_channels([(xs[0][0], integrand.n_channels)])


def test_torch_channels_together_record_each_channel() -> None:
    """TorchChannels.evaluate_channels (what random_batch calls): the tensors of one call
    per channel, and one record per channel in order."""
    import torch

    from madnis_py.integrand import TorchChannels

    channels = TorchChannels(Integrand("ttbar"))
    gen = torch.Generator().manual_seed(2)
    xs = [(torch.rand(200, channels.dims(c), dtype=torch.float64, generator=gen), c)
          for c in range(channels.n_channels)]
    with channels.recording() as records:
        together = channels.evaluate_channels(xs)
    assert [r.channel for r in records] == list(range(channels.n_channels))
    for (x, c), got, rec in zip(xs, together, records, strict=True):
        assert rec.holds(x)
        for u, v in zip(channels(x, c), got, strict=True):
            assert u is not None and v is not None
            torch.testing.assert_close(v, u, rtol=0, atol=0)


def test_a_record_keeps_no_prior_and_only_the_subprocesses_with_a_part() -> None:
    """RecordedBatch.of: the channel prior is dropped and the subprocess parts are kept
    on the columns with a part (drell_yan: 8 subprocesses, one group per flavour pair
    with the grouped channels); the events' view gives every subprocess's column back,
    equal to the integrand's, and a kept subset stays compact."""
    from madnis_py.integrand import RecordedBatch

    integrand = Integrand("drell_yan", subprocess_channels="grouped")
    x = np.random.default_rng(3).random((500, integrand.dims(0)))
    batch = integrand(x, 0, details=True)
    assert batch.prior is not None and batch.subprocess_f is not None
    rec = RecordedBatch.of(0, x, batch)
    assert rec.batch.prior is None and rec.n_subprocesses == batch.subprocess_f.shape[1]
    assert rec.subprocesses is not None
    assert rec.subprocesses.tolist() == np.flatnonzero(batch.subprocess_f.any(0)).tolist()
    assert 0 < len(rec.subprocesses) < rec.n_subprocesses
    index = np.array([3, 7, 100, 499])
    np.testing.assert_array_equal(rec.events_at(index).subprocess_f,
                                  batch.subprocess_f[index])
    on = batch.f > 0
    kept = rec.kept(on)
    assert kept.subprocesses is rec.subprocesses
    np.testing.assert_array_equal(kept.events_at(np.arange(on.sum())).subprocess_f,
                                  batch.subprocess_f[on])
