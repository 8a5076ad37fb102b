"""Every built-in process, with cuts looser and tighter than its card's, integrates to the
direct integral of the region the cuts allow.

The integrand is integrated as the integrator does, sum_i int alpha_i f over each channel
i's hypercube with its prior alpha_i, by VEGAS alone (no flows); e+ e- -> mu+ mu- takes
each channel alone, flat. The result is held to a reference that does not use the channel
mappings: Gauss-Legendre quadrature in (m, Y, cos theta*) for the 2 -> 2 processes, in the
energy fractions (x1, x2) averaged over the event orientation for e+ e- -> q q~ g, the
analytic formula for e+ e- -> mu+ mu-, and an independent numpy phase-space generator
for u d~ -> e+ ve g. A channel whose mapping started above what the cuts allow (a
``min_mass = 50`` with ``mmll = 10``, as the built-in cards had) misses part of the
region and fails here; a card that says so is rejected before anything is opened.

The cards are this checkout's ``processes/*/process.toml`` (the built-in ones once
installed); their libraries are the built-in ones.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from madnis_py.integrand import GEV2_TO_PB, Integrand
from madnis_py.phasespace import CutCoverageError, channel_mappings
from madnis_py.physics import load_process
from madnis_py.physics.process import Process
from tests.test_integrand import ee_mumu_sigma

PROCESSES = Path(__file__).resolve().parents[1] / "processes"


def card(name: str) -> Process:
    return load_process(PROCESSES / name)


def vegas_integral(f: Callable[[np.ndarray], np.ndarray], dims: int, neval: int,
                   seed: int | list[int]) -> tuple[float, float]:
    """VEGAS (three adapting iterations, then three measured) of a batch function on the
    unit hypercube: mean and error."""
    import vegas

    rng = np.random.default_rng(seed)
    vint = vegas.Integrator([[0.0, 1.0]] * dims,
                            ran_array_generator=lambda size: rng.random(size))
    batch = vegas.lbatchintegrand(lambda x: f(np.ascontiguousarray(x, dtype=np.float64)))
    vint(batch, nitn=3, neval=neval)
    result = vint(batch, nitn=3, neval=neval)
    return float(result.mean), float(result.sdev)


def multichannel(integrand: Integrand, neval: int, seed: int = 1) -> tuple[float, float]:
    """sigma = sum_i int alpha_i f over channel i's hypercube, each by VEGAS: what the
    integrator computes, so a channel that misses part of the region where its prior
    alpha_i carries the cross section comes out low."""
    total, var = 0.0, 0.0
    for channel in range(integrand.n_channels):
        def share(x: np.ndarray, channel: int = channel) -> np.ndarray:
            batch = integrand(x, channel)
            assert batch.prior is not None
            return np.asarray(batch.f * batch.prior[:, channel])

        mean, err = vegas_integral(share, integrand.dims(channel), neval, [seed, channel])
        total, var = total + mean, var + err * err
    return total, math.sqrt(var)


def check(integrand: Integrand, exact: float, exact_err: float, neval: int,
          max_rel_err: float) -> None:
    """The multi-channel integral within 3 sigma of ``exact`` (+- ``exact_err``)."""
    value, err = multichannel(integrand, neval)
    assert err < max_rel_err * exact, err / exact
    pull = (value - exact) / math.hypot(err, exact_err)
    assert abs(pull) < 3, (value / exact - 1, err / exact, pull)


def gauss(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [lo, hi] (broadcast; a new last axis of n)."""
    x, w = np.polynomial.legendre.leggauss(n)
    lo, hi = np.asarray(lo)[..., None], np.asarray(hi)[..., None]
    half = (hi - lo) / 2
    return lo + half * (x + 1), half * w


def boost_z(p: np.ndarray, rapidity: np.ndarray) -> np.ndarray:
    """Boost momenta (..., 4) along z by ``rapidity`` (broadcast over the leading axes)."""
    ch, sh = np.cosh(rapidity), np.sinh(rapidity)
    out = p.copy()
    out[..., 0] = ch * p[..., 0] + sh * p[..., 3]
    out[..., 3] = sh * p[..., 0] + ch * p[..., 3]
    return out


def hadronic_f(integrand: Integrand, momenta: np.ndarray, x1: np.ndarray,
               x2: np.ndarray) -> np.ndarray:
    """sum over subprocesses of f_a(x1) f_b(x2) |M|^2 cuts(p) at the integrand's fixed
    scale: the integrand's physics, without its phase space."""
    assert integrand.scale is not None
    mu2 = np.full(len(x1), float(integrand.scale) ** 2)
    pdf = integrand.pdf
    alpha_s = pdf.alphasQ2(mu2) if integrand.alpha_s is None else np.full(len(x1),
                                                                          integrand.alpha_s)
    total = np.zeros(len(x1))
    for sub, cuts in zip(integrand.process.subprocesses, integrand.cuts, strict=True):
        ok = cuts.mask(momenta)
        lum = pdf.xfxQ2(sub.pdgs[0], x1, mu2) * pdf.xfxQ2(sub.pdgs[1], x2, mu2) / (x1 * x2)
        sel = ok & (lum != 0)
        m2 = integrand.matrix_element(sub.library_momenta(momenta[sel]), sub.library_pdgs,
                                      alpha_s=alpha_s[sel])
        total[sel] += lum[sel] * m2
    return total


# ----------------------------------------------------------------- 2 -> 2 quadrature

def two_body_quadrature(integrand: Integrand, *, m_breaks: list[float],
                        resonances: tuple[tuple[float, float], ...] = (), ptl: float = 0.0,
                        etal: float = math.inf, n_m: int = 24, n_y: int = 12,
                        n_cos: int = 3) -> float:
    """sigma = sum_ab int dm dY dcos f_a f_b |M|^2 / (2 shat) * 2m/S * beta/(16 pi).

    The lepton cuts bound the region exactly: ``pT = m / (2 cosh eta*)`` and
    ``eta_{1,2} = Y +- eta*`` give ``|eta*| <= min(acosh(m / 2 ptl), etal - |Y|)``; Y is
    split where the two bounds cross, m at ``m_breaks`` and around ``resonances`` (mass,
    width, sampled in atan of the Breit-Wigner). For massless leptons |M|^2 is quadratic
    in cos theta*, so a few nodes in it are exact. Massive final states take no cuts.
    """
    big_s = integrand.sqrt_s ** 2
    masses = integrand.masses
    pieces: list[tuple[np.ndarray, np.ndarray]] = []
    breaks = sorted(set(m_breaks))
    for lo, hi in itertools.pairwise(breaks):
        inside = [(mr, wr) for mr, wr in resonances if lo < mr < hi]
        if inside:
            mr, wr = inside[0]
            t, wt = gauss(math.atan((lo ** 2 - mr ** 2) / (mr * wr)),
                          math.atan((hi ** 2 - mr ** 2) / (mr * wr)), 4 * n_m)
            m2 = mr ** 2 + mr * wr * np.tan(t)
            m = np.sqrt(m2)
            pieces.append((m, wt * ((m2 - mr ** 2) ** 2 + (mr * wr) ** 2) / (mr * wr)
                           / (2 * m)))
        else:
            u, wu = gauss(math.log(lo), math.log(hi), n_m)
            pieces.append((np.exp(u), wu * np.exp(u)))
    m = np.concatenate([p[0] for p in pieces])
    w_m = np.concatenate([p[1] for p in pieces])
    tau = m ** 2 / big_s
    y_lim = np.minimum(-0.5 * np.log(tau), etal)
    a_pt = np.arccosh(np.maximum(m / (2 * ptl), 1.0)) if ptl > 0 else np.full_like(m, np.inf)
    y_pieces: tuple[tuple[np.ndarray, np.ndarray], ...] = ((-y_lim, y_lim),)
    if ptl > 0 and math.isfinite(etal):  # split where the pT bound takes over from eta's
        y_kink = np.clip(etal - a_pt, 0.0, y_lim)
        y_pieces = ((-y_lim, -y_kink), (-y_kink, y_kink), (y_kink, y_lim))
    ys, wys = [], []
    for lo, hi in y_pieces:
        y, wy = gauss(lo, hi, n_y)
        ys.append(y)
        wys.append(wy)
    y, w_y = np.concatenate(ys, axis=1), np.concatenate(wys, axis=1)   # (n_m, pieces n_y)
    eta_max = np.minimum(a_pt[:, None], etal - np.abs(y))
    c_max = np.where(np.isfinite(eta_max), np.tanh(np.maximum(eta_max, 0.0)), 1.0)
    c, w_c = gauss(-c_max, c_max, n_cos)                         # (n_m, pieces n_y, n_cos)
    m_b = np.broadcast_to(m[:, None, None], c.shape).ravel()
    y_b = np.broadcast_to(y[:, :, None], c.shape).ravel()
    c_b = c.ravel()
    weight = (w_m[:, None, None] * w_y[:, :, None] * w_c).ravel()
    shat = m_b ** 2
    e3 = (shat + masses[0] ** 2 - masses[1] ** 2) / (2 * m_b)
    p = np.sqrt(np.maximum(e3 ** 2 - masses[0] ** 2, 0.0))
    s_b = np.sqrt(1 - c_b ** 2)
    mom = np.zeros((len(m_b), 4, 4))
    mom[:, 0] = np.stack([m_b / 2, 0 * m_b, 0 * m_b, m_b / 2], 1)
    mom[:, 1] = np.stack([m_b / 2, 0 * m_b, 0 * m_b, -m_b / 2], 1)
    mom[:, 2] = np.stack([e3, p * s_b, 0 * m_b, p * c_b], 1)
    mom[:, 3] = np.stack([m_b - e3, -p * s_b, 0 * m_b, -p * c_b], 1)
    mom = boost_z(mom, y_b[:, None])
    x1 = np.minimum(m_b / integrand.sqrt_s * np.exp(y_b), 1.0)  # 1 + ulp at the edge
    x2 = np.minimum(m_b / integrand.sqrt_s * np.exp(-y_b), 1.0)
    beta = 2 * p / m_b
    f = hadronic_f(integrand, mom, x1, x2) / (2 * shat) * (2 * m_b / big_s) * beta / (16 * math.pi)
    return float((f * weight).sum()) * GEV2_TO_PB


def lepton_cuts(cuts: dict[str, float]) -> dict[str, float]:
    return {"ptl": cuts.get("ptl", 0.0), "etal": cuts.get("etal", math.inf)}


DY_CUTS = {
    "looser": {"ptl": 10.0, "etal": 2.5, "mmll": 10.0},   # issue 14: was 25 % low
    "tighter": {"ptl": 20.0, "etal": 2.0, "mmll": 70.0},
}
MZ, WZ = 91.188, 2.441404


def dilepton_quadrature(integrand: Integrand, resonances: tuple[tuple[float, float], ...],
                        extra_breaks: tuple[float, ...] = ()) -> float:
    cuts = integrand.cut_values
    m_lo = max(cuts["mmll"], 2 * cuts["ptl"])
    breaks = [m_lo, 2 * cuts["ptl"] * math.cosh(cuts["etal"]), 300.0,
              integrand.sqrt_s * math.exp(-cuts["etal"]), integrand.sqrt_s, *extra_breaks]
    for mass, width in resonances:
        breaks += [mass - 10 * width, mass + 10 * width]
    return two_body_quadrature(integrand, m_breaks=[b for b in breaks if b >= m_lo],
                               resonances=resonances, ptl=cuts["ptl"], etal=cuts["etal"])


@pytest.mark.parametrize("which", list(DY_CUTS))
def test_drell_yan(which: str) -> None:
    integrand = Integrand(card("drell_yan"), cuts=DY_CUTS[which])
    exact = dilepton_quadrature(integrand, ((MZ, WZ),))
    check(integrand, exact, 0.0, neval=2000, max_rel_err=0.01)


def test_drell_yan_mappings_that_start_too_late_are_caught() -> None:
    """The check can fail: the old cards' channels (min_mass = 50 GeV) under mmll = 10
    miss a quarter of the cross section, far outside the errors."""
    integrand = Integrand(card("drell_yan"), cuts=DY_CUTS["looser"])
    exact = dilepton_quadrature(integrand, ((MZ, WZ),))
    old = [replace(t, s_channel=replace(t.s_channel, min_mass=50.0))
           for t in integrand.process.channels if t.s_channel is not None]
    integrand.mappings = channel_mappings(old, integrand.masses, integrand.beams)
    value, err = multichannel(integrand, neval=1000)
    assert value < exact - 10 * err and value / exact < 0.8


ZPRIME_CUTS = {
    "looser": {"ptl": 10.0, "etal": 2.5, "mmll": 10.0},
    "tighter": {"ptl": 10.0, "etal": 2.5, "mmll": 300.0},
}


@pytest.mark.parametrize("which", list(ZPRIME_CUTS))
def test_zprime(which: str) -> None:
    integrand = Integrand(card("zprime"), cuts=ZPRIME_CUTS[which])
    exact = dilepton_quadrature(integrand, ((MZ, WZ), (400.0, 0.5)),
                                extra_breaks=(380.0, 420.0))
    check(integrand, exact, 0.0, neval=2000, max_rel_err=0.015)


def test_ttbar() -> None:
    """No cut acts on top quarks (MadGraph never cuts on them): the channels start at the
    threshold, with the card's (no) cuts or tight jet cuts alike."""
    integrand = Integrand(card("ttbar"), scale=173.0)
    jets = Integrand(card("ttbar"), scale=173.0, cuts={"ptj": 200.0, "etaj": 1.0})
    assert all(not c.active for c in integrand.cuts + jets.cuts)
    for a, b in zip(integrand.mappings, jets.mappings, strict=True):
        np.testing.assert_array_equal(a.program.float_table, b.program.float_table)
        assert a.program.float_table[0, 1] == 2 * 173.0
    exact = two_body_quadrature(integrand, m_breaks=[346.0, 360.0, 450.0, 700.0, 1500.0,
                                                     4000.0, 13000.0], n_m=16, n_cos=10)
    check(integrand, exact, 0.0, neval=1000, max_rel_err=0.01)


@pytest.mark.parametrize("cuts", [None, {"etal": 1.0}])
def test_ee_mumu(cuts: dict[str, float] | None) -> None:
    """Lepton beams: the pair's mass is sqrt(s), which no limit moves; every channel alone,
    flat."""
    integrand = Integrand(card("ee_mumu"), cuts=cuts)
    exact = ee_mumu_sigma(integrand.sqrt_s, None if cuts is None else cuts["etal"])
    rng = np.random.default_rng(1)
    for channel in range(integrand.n_channels):
        f = integrand(rng.random((50_000, integrand.dims(channel))), channel, prior=False).f
        mean, err = f.mean(), f.std() / math.sqrt(len(f))
        assert err < 0.01 * exact
        assert abs(mean - exact) < 3 * err, (channel, mean / exact - 1, err / mean)


# ----------------------------------------------------------------- e+ e- -> q q~ g

# Rotations whose third rows are +-x, +-y, +-z: the beam axis seen from the event. For
# unpolarised massless beams |M|^2 is a quadratic polynomial in the beam direction, and
# the octahedron integrates those exactly over the sphere.
ROTATIONS = [np.array(r, dtype=float) for r in (
    [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
    [[0, 1, 0], [0, 0, 1], [1, 0, 0]], [[0, -1, 0], [0, 0, 1], [-1, 0, 0]],
    [[0, 0, 1], [1, 0, 0], [0, 1, 0]], [[0, 0, -1], [1, 0, 0], [0, -1, 0]])]


def ee_qqg_quadrature(integrand: Integrand, mmjj: float, n: int = 24) -> float:
    """sigma = 1/(2s) int dPhi_3 <|M|^2>, dPhi_3 = s/(128 pi^3) dx1 dx2 after the event's
    orientation (x_i = 2 E_i / sqrt(s); q, q~, g). Every pair mass above mmjj is
    ``x_k <= 1 - y`` for all three, ``y = mmjj^2 / s``; the 1/(1 - x) growth is taken by
    Gauss-Legendre in log(1 - x)."""
    sqrt_s = integrand.sqrt_s
    y = mmjj ** 2 / sqrt_s ** 2
    u, wu = gauss(math.log(y), math.log(1 - 2 * y), n)          # u = log(1 - x1)
    x1 = 1 - np.exp(u)
    v, wv = gauss(np.full_like(x1, math.log(y)), np.log(x1 - y), n)  # v = log(1 - x2)
    x1 = np.broadcast_to(x1[:, None], v.shape).ravel()
    x2 = (1 - np.exp(v)).ravel()
    weight = (wu[:, None] * np.exp(u)[:, None] * wv * np.exp(v)).ravel()
    x3 = 2 - x1 - x2
    e = sqrt_s / 2 * np.stack([x1, x2, x3], 1)
    cos12 = 1 - 2 * (1 - x3) / (x1 * x2)
    sin12 = np.sqrt(np.maximum(1 - cos12 ** 2, 0.0))
    k1 = np.stack([0 * x1, 0 * x1, e[:, 0]], 1)
    k2 = np.stack([e[:, 1] * sin12, 0 * x1, e[:, 1] * cos12], 1)
    k3 = -(k1 + k2)
    total = np.zeros(len(x1))
    for rot in ROTATIONS:
        mom = np.zeros((len(x1), 5, 4))
        mom[:, 0] = [sqrt_s / 2, 0, 0, sqrt_s / 2]
        mom[:, 1] = [sqrt_s / 2, 0, 0, -sqrt_s / 2]
        for leg, k in ((2, k1), (3, k2), (4, k3)):
            mom[:, leg, 0] = e[:, leg - 2]
            mom[:, leg, 1:] = k @ rot.T
        for sub, cuts in zip(integrand.process.subprocesses, integrand.cuts, strict=True):
            ok = cuts.mask(mom)
            assert integrand.scale is not None  # the card's fixed scale
            alphas = integrand.alphas_at(np.full(int(ok.sum()), float(integrand.scale)))
            m2 = integrand.matrix_element(mom[ok], sub.library_pdgs, alpha_s=alphas)
            total[ok] += m2 / len(ROTATIONS)
    return float((total * weight).sum()) / (2 * sqrt_s ** 2) * sqrt_s ** 2 / (
        128 * math.pi ** 3) * GEV2_TO_PB


@pytest.mark.parametrize("mmjj", [5.0, 20.0])
def test_ee_qqg(mmjj: float) -> None:
    """The card's mmjj = 10 GeV, looser and tighter: the channels' q g and q~ g decays
    start at mmjj."""
    integrand = Integrand(card("ee_qqg"), cuts={"mmjj": mmjj})
    exact = ee_qqg_quadrature(integrand, mmjj)
    check(integrand, exact, 0.0, neval=1000, max_rel_err=0.03)


# ----------------------------------------------------------------- u d~ -> e+ ve g

def w_jet_f(integrand: Integrand, r: np.ndarray) -> np.ndarray:
    """f on an independent parametrisation of dx1 dx2 dPhi_3 by 7 numbers: log(tau) and Y
    flat, m(e+ ve)^2 Breit-Wigner, the (e+ ve) system and the gluon back to back with the
    gluon flat in its rapidity eta* (cos theta* = tanh eta*) for |eta*| below
    acosh(|p| / (ptj / 2)), the decay isotropic. Its only limits are necessary
    conditions: pT(g) <= |p| and sqrt(shat) >= pT(g) >= ptj."""
    ptj = integrand.cut_values["ptj"]
    big_s = integrand.sqrt_s ** 2
    mw, ww = 80.419, 2.0476
    n = len(r)
    log_tau_min = math.log(ptj ** 2 / big_s)
    log_tau = log_tau_min * (1 - r[:, 0])
    tau = np.exp(log_tau)
    w = -log_tau_min * tau                                        # dtau
    y = log_tau / 2 * (1 - 2 * r[:, 1])
    w = w * -log_tau                                              # dY
    shat = tau * big_s
    sqrt_shat = np.sqrt(shat)
    t_lo, t_hi = math.atan(-mw / ww), np.arctan((shat - mw ** 2) / (mw * ww))
    t = t_lo + (t_hi - t_lo) * r[:, 2]
    m2 = mw ** 2 + mw * ww * np.tan(t)
    w = w * (t_hi - t_lo) * ((m2 - mw ** 2) ** 2 + (mw * ww) ** 2) / (mw * ww) / (2 * math.pi)
    p = (shat - m2) / (2 * sqrt_shat)
    eta_lim = np.arccosh(np.maximum(p / (ptj / 2), 1.0))
    eta = eta_lim * (2 * r[:, 3] - 1)
    cos, sin = np.tanh(eta), 1 / np.cosh(eta)
    phi = 2 * math.pi * r[:, 4]
    w = w * (p / sqrt_shat) / (16 * math.pi ** 2) * 2 * eta_lim * sin ** 2 * 2 * math.pi
    g = np.stack([p, p * sin * np.cos(phi), p * sin * np.sin(phi), p * cos], 1)
    wsys = np.stack([sqrt_shat - p, -g[:, 1], -g[:, 2], -g[:, 3]], 1)
    # e+ isotropic in the (e+ ve) rest frame, then boosted along the system's momentum.
    m = np.sqrt(m2)
    cd, phd = 2 * r[:, 5] - 1, 2 * math.pi * r[:, 6]
    sd = np.sqrt(1 - cd ** 2)
    e_rest = np.stack([m / 2, m / 2 * sd * np.cos(phd), m / 2 * sd * np.sin(phd), m / 2 * cd], 1)
    w = w / (8 * math.pi)
    beta = wsys[:, 1:] / wsys[:, :1]
    gamma = wsys[:, 0] / m
    bp = (beta * e_rest[:, 1:]).sum(axis=1)
    b2 = (beta ** 2).sum(axis=1)
    coef = np.where(b2 > 0, (gamma - 1) * bp / np.where(b2 > 0, b2, 1.0), 0.0) + gamma * e_rest[:, 0]
    e_lab = np.concatenate([(gamma * (e_rest[:, 0] + bp))[:, None],
                            e_rest[:, 1:] + coef[:, None] * beta], axis=1)
    nu = wsys - e_lab
    inside = (p > ptj / 2) & (m2 > 0)
    mom = np.zeros((n, 5, 4))
    mom[:, 0] = np.stack([sqrt_shat / 2, 0 * p, 0 * p, sqrt_shat / 2], 1)
    mom[:, 1] = np.stack([sqrt_shat / 2, 0 * p, 0 * p, -sqrt_shat / 2], 1)
    mom[:, 2], mom[:, 3], mom[:, 4] = e_lab, nu, g
    mom = boost_z(mom, y[:, None])
    x1, x2 = np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)
    f = np.zeros(n)
    idx = np.nonzero(inside)[0]
    f[idx] = (hadronic_f(integrand, mom[idx], x1[idx], x2[idx]) / (2 * shat[idx]) * w[idx]
              * GEV2_TO_PB)
    return f


W_JET_CUTS = {
    "looser": {"ptj": 10.0, "etaj": 5.0, "ptl": 10.0, "etal": 2.5, "drjl": 0.4},
    "tighter": {"ptj": 40.0, "etaj": 5.0, "ptl": 10.0, "etal": 2.5, "drjl": 0.4},
}


@pytest.mark.parametrize("which", list(W_JET_CUTS))
def test_udx_enug(which: str) -> None:
    integrand = Integrand(card("udx_enug"), cuts=W_JET_CUTS[which], scale=80.419)
    exact, exact_err = vegas_integral(lambda r: w_jet_f(integrand, r), 7, 16_000, seed=11)
    assert exact_err < 0.012 * exact
    check(integrand, exact, exact_err, neval=8000, max_rel_err=0.02)


# ----------------------------------------------------------------- the error

def _card_with(tmp_path: Path, name: str, edit: Callable[[str], str]) -> Path:
    """A copy of a built-in card, edited, whose library does not exist: the coverage
    check has to fail before anything is opened."""
    text = edit((PROCESSES / name / "process.toml").read_text())
    text = text.replace(f'library = "{name}"', 'library = "missing/libnone.so"')
    text = text.replace('param_card = "../common/', f'param_card = "{PROCESSES}/common/')
    path = tmp_path / "process.toml"
    path.write_text(text)
    return path


def test_card_mass_limit_tighter_than_the_cuts_is_an_error(tmp_path: Path) -> None:
    path = _card_with(tmp_path, "drell_yan", lambda t: t.replace(
        'decay = [2, 3] }\n', 'decay = [2, 3], min_mass = 50.0 }\n'))
    process = load_process(path)
    with pytest.raises(FileNotFoundError):  # the cuts allow it: on to the library
        Integrand(process, cuts={"mmll": 50.0})
    with pytest.raises(CutCoverageError, match=rf"{path}: channel 'photon': "
                       r"s_channel.min_mass = 50 GeV .*down to 20 GeV \(cuts mmll = 10, "
                       r"ptl = 10\)\. "):
        Integrand(process, cuts={"ptl": 10.0, "etal": 2.5, "mmll": 10.0})


def test_card_min_shat_tighter_than_the_cuts_is_an_error(tmp_path: Path) -> None:
    path = _card_with(tmp_path, "udx_enug", lambda t: t.replace(
        'name = "g from beam 1"\n', 'name = "g from beam 1"\nmin_shat = 1600.0\n'))
    with pytest.raises(CutCoverageError, match=r"channel 'g from beam 1': min_shat = 1600 "
                       r"GeV\^2 .*down to 400 GeV\^2 \(cuts ptj = 10, ptl = 10\)\. "):
        Integrand(load_process(path), cuts=W_JET_CUTS["looser"])
