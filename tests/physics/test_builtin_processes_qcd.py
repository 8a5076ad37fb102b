"""The built-in processes with coloured partons: ttbar, ee_qqg and udx_enug (processes/).

|M|^2 at RAMBO points against (a) ufoamp, an independent tree-level generator reading the
UFO `sm` model (ufo-sm) with the same param_card, unitary gauge and fixed-width
propagators, and (b) textbook formulas, to 1e-10:

- q q~ -> t t~ and g g -> t t~: Combridge (1979), the PDG review's QCD section, Ellis,
  Stirling & Webber eq. (10.12);
- e+ e- -> q q~ g: Ellis, Ross & Terrano; averaged over the orientation of the event
  (exactly, see :func:`orientation_average`) it is the angle-averaged Born with photon
  and Z times C_F alpha_s / (2 pi) (x1^2 + x2^2) / ((1 - x1)(1 - x2)) in dsigma/dx1 dx2;
- u d~ -> e+ ve g: the same helicity structure crossed (left-handed lines only).

Also: alpha_s is taken from the call, an unknown PDG list leaves the answer untouched,
madnis_amp2_ gives one |M_i|^2 per diagram, and a bad param_card gives NaN, not a crash.

The libraries are compiled here with the command setup.py uses and called through cffi
by the ``open_process`` fixture of conftest.py, the one place to swap for
``MatrixElement.from_madgraph(builtin_library(name), card)``.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from madnis_py.phasespace import Beams, Rambo
from tests.physics.conftest import ALPHA_S, SM_CARD, max_rel

RTOL = 1e-10

# The inputs of processes/common/param_card_sm.dat (MadGraph 3.5.7's sm defaults).
A_EW_M1, G_F, M_Z, W_Z, M_T, W_W = 132.507, 1.16639e-5, 91.188, 2.441404, 173.0, 2.0476


# ---- phase space and small helpers -----------------------------------------------------

def rambo_points(masses: list[float], sqrt_s: float, n: int, seed: int) -> np.ndarray:
    """``n`` points in the partonic rest frame, parton 0 along +z."""
    r = np.random.default_rng(seed).random((n, 4 * len(masses)))
    return np.asarray(Rambo(masses, Beams(sqrt_s)).map(r).momenta, dtype=np.float64)


def scan_points(masses: list[float], energies: tuple[float, ...], n_per_energy: int = 6,
                seed: int = 11) -> np.ndarray:
    return np.concatenate([rambo_points(masses, e, n_per_energy, seed + i)
                           for i, e in enumerate(energies)])


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] - np.sum(a[..., 1:] * b[..., 1:], axis=-1)


def sm_couplings() -> dict[str, float]:
    """G_mu scheme as MadGraph's sm model: MW from (aEW, Gf, MZ), sw2 = 1 - MW^2/MZ^2."""
    a_ew = 1 / A_EW_M1
    m_w = math.sqrt(M_Z**2 / 2 + math.sqrt(M_Z**4 / 4 - a_ew * math.pi * M_Z**2
                                           / (G_F * math.sqrt(2))))
    sw2 = 1 - m_w**2 / M_Z**2
    return {"e2": 4 * math.pi * a_ew, "sw2": sw2, "MW": m_w}


def ufoamp_m2(p: np.ndarray, pdgs: list[int], *, alpha_s: float = ALPHA_S,
              **options: Any) -> np.ndarray:
    """|M|^2 from ufoamp with the UFO sm model and our card, alpha_s from the call."""
    ufo_sm = pytest.importorskip("ufo_sm")
    analysis = pytest.importorskip("ufoamp.analysis")
    couplings = {"aS": alpha_s, **options.pop("couplings", {})}
    me = analysis.MatrixElement(str(Path(ufo_sm.__file__).parent), (pdgs[:2], pdgs[2:]),
                                param_card=str(SM_CARD), gauge="unitary",
                                couplings=couplings, **options)
    assert abs(me.param("MW") - sm_couplings()["MW"]) < 1e-12 * 80
    return np.asarray(me.m2_events(p, prune=False), dtype=np.float64)


# ---- t t~ --------------------------------------------------------------------------------

TT_ENERGIES = (350.0, 400.0, 1000.0, 13000.0)
TT_PDGS = [[21, 21, 6, -6]] + [pdgs for q in (1, 2, 3, 4)
                               for pdgs in ([q, -q, 6, -6], [-q, q, 6, -6])]


def ttbar_ufoamp(p: np.ndarray, pdgs: list[int], alpha_s: float = ALPHA_S) -> np.ndarray:
    """QCD only (MadGraph's default for these processes: QED = 0), and no top width in the
    t- and u-channel propagators, as the built-in (MadGraph's standalone output would
    keep WT there: a relative effect up to ~1e-4)."""
    return ufoamp_m2(p, pdgs, alpha_s=alpha_s, max_orders={"QED": 0},
                     couplings={"WT": 0.0})


def ttbar_analytic(p: np.ndarray, pdgs: list[int], alpha_s: float = ALPHA_S) -> np.ndarray:
    """Spin- and colour-averaged |M|^2 (Combridge 1979; ESW eq. 10.12), m = MT:

    q q~ -> t t~: g^4 4/9 ((m^2 - t)^2 + (m^2 - u)^2 + 2 m^2 s) / s^2,
    g g  -> t t~: g^4 (1/(6 t1 t2) - 3/8) (t1^2 + t2^2 + rho - rho^2 / (4 t1 t2)),
    t1 = 2 k1.p3 / s, t2 = 2 k2.p3 / s, rho = 4 m^2 / s; symmetric in the incoming order.
    """
    g4 = (4 * math.pi * alpha_s) ** 2
    k1, k2, p3 = p[:, 0], p[:, 1], p[:, 2]
    s = 2 * dot(k1, k2)
    m2 = M_T**2
    if pdgs[0] == 21:
        t1, t2, rho = 2 * dot(k1, p3) / s, 2 * dot(k2, p3) / s, 4 * m2 / s
        return g4 * (1 / (6 * t1 * t2) - 3 / 8) * (t1**2 + t2**2 + rho - rho**2 / (4 * t1 * t2))
    t, u = m2 - 2 * dot(k1, p3), m2 - 2 * dot(k2, p3)
    return g4 * 4 / 9 * ((m2 - t) ** 2 + (m2 - u) ** 2 + 2 * m2 * s) / s**2


@pytest.mark.parametrize("pdgs", TT_PDGS, ids=str)
def test_ttbar(open_process: Any, pdgs: list[int]) -> None:
    p = scan_points([M_T, M_T], TT_ENERGIES)
    m2 = open_process("ttbar")(p, pdgs)
    assert np.all(m2 > 0)
    assert max_rel(m2, ttbar_analytic(p, pdgs)) < RTOL
    assert max_rel(m2, ttbar_ufoamp(p, pdgs)) < RTOL


# ---- e+ e- -> q q~ g -------------------------------------------------------------------

EE_ENERGIES = (50.0, 91.188, 500.0)
EE_PDGS = [[-11, 11, q, -q, 21] for q in (1, 2, 3, 4)]
CHARGE = {1: -1 / 3, 2: 2 / 3, 3: -1 / 3, 4: 2 / 3, 11: -1.0}
ISOSPIN = {1: -0.5, 2: 0.5, 3: -0.5, 4: 0.5, 11: -0.5}


def born_angle_averaged(q: int, s: float) -> float:
    """e+ e- -> q q~ through photon and Z, |M|^2 spin- and colour-summed over the final
    state, averaged over the initial spins and over the scattering angle: with chiral
    amplitudes e^2 s (1 +- cos theta) A_ij, <(1 +- cos)^2> = 4/3,
    <|M|^2> = N_c / 4 * 4/3 * s^2 sum_ij |A_ij|^2, A_ij = sum_V g^V_i(e) g^V_j(q) / D_V."""
    c = sm_couplings()
    gz = math.sqrt(c["e2"] / (c["sw2"] * (1 - c["sw2"])))

    def chiral(pdg: int) -> tuple[tuple[float, float], tuple[float, float]]:
        charge, t3 = CHARGE[pdg], ISOSPIN[pdg]
        e = math.sqrt(c["e2"])
        return (e * charge, e * charge), (gz * (t3 - charge * c["sw2"]), -gz * charge * c["sw2"])

    (ae, ze), (aq, zq) = chiral(11), chiral(q)
    dz = s - M_Z**2 + 1j * M_Z * W_Z
    total = sum(abs(ae[i] * aq[j] / s + ze[i] * zq[j] / dz) ** 2
                for i in range(2) for j in range(2))
    return 3 / 4 * 4 / 3 * s**2 * total


def orientation_average(me: Any, p: np.ndarray, pdgs: list[int]) -> np.ndarray:
    """|M|^2 averaged over the orientation of the final state relative to the beams.

    For massless beams p_e-+ = sqrt(s)/2 (1, +-n), |M|^2 is a polynomial of degree 2 in
    the beam direction n (the lepton tensor is bilinear in the beam momenta), and the six
    directions +-x, +-y, +-z integrate every polynomial of degree <= 3 exactly over the
    sphere; so the beams are turned instead of the final state.
    """
    total = np.zeros(p.shape[0])
    for axis, sign in itertools.product(range(3), (1.0, -1.0)):
        q = p.copy()
        half = 0.5 * (q[:, 0, 0] + q[:, 1, 0])
        q[:, 0, 1:] = 0.0
        q[:, 1, 1:] = 0.0
        q[:, 0, 1 + axis] = sign * half
        q[:, 1, 1 + axis] = -sign * half
        total += me(q, pdgs)
    return total / 6


@pytest.mark.parametrize("pdgs", EE_PDGS, ids=str)
def test_ee_qqg_against_ufoamp(open_process: Any, pdgs: list[int]) -> None:
    p = scan_points([0.0, 0.0, 0.0], EE_ENERGIES)
    m2 = open_process("ee_qqg")(p, pdgs)
    assert np.all(m2 > 0)
    assert max_rel(m2, ufoamp_m2(p, pdgs)) < RTOL


@pytest.mark.parametrize("pdgs", [EE_PDGS[0], EE_PDGS[1]], ids=str)
@pytest.mark.parametrize("sqrt_s", EE_ENERGIES)
def test_ee_qqg_ert_formula(open_process: Any, pdgs: list[int], sqrt_s: float) -> None:
    """<|M_3|^2> = 2 C_F g_s^2 / s (x1^2 + x2^2) / ((1 - x1)(1 - x2)) <|M_2|^2>, from
    dsigma/dx1 dx2 = sigma_0 C_F alpha_s/(2 pi) (...) and dPhi_3 = s / (128 pi^3) dx1 dx2."""
    p = rambo_points([0.0, 0.0, 0.0], sqrt_s, 8, seed=5)
    avg = orientation_average(open_process("ee_qqg"), p, pdgs)
    s = sqrt_s**2
    x1, x2 = 2 * p[:, 2, 0] / sqrt_s, 2 * p[:, 3, 0] / sqrt_s
    gs2 = 4 * math.pi * ALPHA_S
    ref = (2 * 4 / 3 * gs2 / s * (x1**2 + x2**2) / ((1 - x1) * (1 - x2))
           * born_angle_averaged(pdgs[2], s))
    assert max_rel(avg, ref) < RTOL


# ---- u d~ -> e+ ve g --------------------------------------------------------------------

W_ENERGIES = (60.0, 85.0, 150.0, 1000.0)
W_PDGS = [[2, -1, -11, 12, 21], [-1, 2, -11, 12, 21]]


def w_jet_analytic(p: np.ndarray, pdgs: list[int], alpha_s: float = ALPHA_S) -> np.ndarray:
    """u(pu) d~(pd) -> e+(pe) ve(pn) g(k), left-handed lines only (the e+ e- -> q q~ g
    chiral structure crossed), Q^2 = (pe + pn)^2, CKM = 1:
    |M|^2 = 8 N_c C_F g_s^2 Q^2 |gw^2/2 / (Q^2 - MW^2 + i MW WW)|^2
            ((pu.pe)^2 + (pd.pn)^2) / ((pu.k)(pd.k)) / 36."""
    c = sm_couplings()
    gw2 = c["e2"] / c["sw2"]
    iu, idx = (0, 1) if pdgs[0] == 2 else (1, 0)
    pu, pd, pe, pn, k = p[:, iu], p[:, idx], p[:, 2], p[:, 3], p[:, 4]
    q2 = 2 * dot(pe, pn)
    prop2 = (gw2 / 2) ** 2 / np.abs(q2 - c["MW"] ** 2 + 1j * c["MW"] * W_W) ** 2
    gs2 = 4 * math.pi * alpha_s
    return (8 * 4 * gs2 * q2 * prop2 * (dot(pu, pe) ** 2 + dot(pd, pn) ** 2)
            / (dot(pu, k) * dot(pd, k)) / 36)


@pytest.mark.parametrize("pdgs", W_PDGS, ids=str)
def test_udx_enug(open_process: Any, pdgs: list[int]) -> None:
    p = scan_points([0.0, 0.0, 0.0], W_ENERGIES)
    m2 = open_process("udx_enug")(p, pdgs)
    assert np.all(m2 > 0)
    assert max_rel(m2, w_jet_analytic(p, pdgs)) < RTOL
    assert max_rel(m2, ufoamp_m2(p, pdgs)) < RTOL


# ---- alpha_s ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,pdgs,masses,power", [
    ("ttbar", [21, 21, 6, -6], [M_T, M_T], 2), ("ttbar", [-2, 2, 6, -6], [M_T, M_T], 2),
    ("ee_qqg", EE_PDGS[1], [0.0, 0.0, 0.0], 1), ("udx_enug", W_PDGS[0], [0.0, 0.0, 0.0], 1),
])
def test_alpha_s_comes_from_the_call(open_process: Any, name: str, pdgs: list[int],
                                     masses: list[float], power: int) -> None:
    """|M|^2 ~ alpha_s^power whatever SMINPUTS 3 says, and agrees with a reference given
    the same alpha_s (the formula, or ufoamp with aS set)."""
    me = open_process(name)
    p = rambo_points(masses, 500.0, 4, seed=9)
    a, b = me(p, pdgs, alpha_s=0.09), me(p, pdgs, alpha_s=0.18)
    np.testing.assert_allclose(b / a, 2.0**power, rtol=1e-13)
    reference = {"ttbar": ttbar_analytic, "udx_enug": w_jet_analytic,
                 "ee_qqg": lambda p, pdgs, alpha_s: ufoamp_m2(p, pdgs, alpha_s=alpha_s)}[name]
    assert max_rel(a, reference(p, pdgs, alpha_s=0.09)) < RTOL


# ---- per-diagram |M_i|^2 ----------------------------------------------------------------

@pytest.mark.parametrize("name,pdgs,masses,n_diagrams", [
    ("ttbar", [21, 21, 6, -6], [M_T, M_T], 3),
    ("ttbar", [3, -3, 6, -6], [M_T, M_T], 1),
    ("ttbar", [-4, 4, 6, -6], [M_T, M_T], 1),
    ("ee_qqg", EE_PDGS[0], [0.0, 0.0, 0.0], 4),
    ("ee_qqg", EE_PDGS[3], [0.0, 0.0, 0.0], 4),
    ("udx_enug", W_PDGS[0], [0.0, 0.0, 0.0], 2),
    ("udx_enug", W_PDGS[1], [0.0, 0.0, 0.0], 2),
], ids=lambda v: str(v) if isinstance(v, list) else None)
def test_amp2_has_one_entry_per_diagram(open_process: Any, name: str, pdgs: list[int],
                                        masses: list[float], n_diagrams: int) -> None:
    me = open_process(name)
    p = rambo_points(masses, 500.0, 6, seed=4)
    amp2 = me.amp2(p, pdgs)
    assert amp2.shape == (p.shape[0], n_diagrams)
    assert np.all(np.isfinite(amp2)) and np.all(amp2 > 0)
    m2 = me(p, pdgs)
    if n_diagrams == 1:
        np.testing.assert_array_equal(amp2[:, 0], m2)
    else:  # interference: the squares do not add up to |M|^2
        assert not np.allclose(amp2.sum(axis=1), m2, rtol=1e-6)
    # amp2 follows alpha_s like |M|^2
    ratio = me.amp2(p, pdgs, alpha_s=2 * ALPHA_S) / amp2
    expected = me(p, pdgs, alpha_s=2 * ALPHA_S) / m2
    np.testing.assert_allclose(ratio, np.repeat(expected[:, None], n_diagrams, axis=1),
                               rtol=1e-13)


def test_amp2_qq_ttbar_is_the_textbook_formula(open_process: Any) -> None:
    p = scan_points([M_T, M_T], TT_ENERGIES, 3)
    amp2 = open_process("ttbar").amp2(p, [1, -1, 6, -6])
    assert max_rel(amp2[:, 0], ttbar_analytic(p, [1, -1, 6, -6])) < RTOL


def test_amp2_ee_qqg_photon_and_z_diagrams(open_process: Any) -> None:
    """|M_1 + M_2|^2 <= 2 (|M_1|^2 + |M_2|^2) for every helicity: the photon pair of
    entries bounds |M|^2 without Z vertices, the Z pair |M|^2 without photons."""
    pdgs = EE_PDGS[1]
    p = rambo_points([0.0, 0.0, 0.0], 150.0, 4, seed=8)
    amp2 = open_process("ee_qqg").amp2(p, pdgs)
    assert amp2.shape == (4, 4)
    no_z = ufoamp_m2(p, pdgs, drop_vertex=lambda vertex, codes: 23 in codes)
    no_a = ufoamp_m2(p, pdgs, drop_vertex=lambda vertex, codes: 22 in codes)
    assert np.all(no_z <= 2 * (amp2[:, 0] + amp2[:, 1]) * (1 + 1e-12))
    assert np.all(no_a <= 2 * (amp2[:, 2] + amp2[:, 3]) * (1 + 1e-12))


# ---- MadGraph's ABI conventions ---------------------------------------------------------

@pytest.mark.parametrize("name,pdgs", [
    ("ttbar", [21, 21, -6, 6]), ("ttbar", [5, -5, 6, -6]), ("ttbar", [2, -1, 6, -6]),
    ("ttbar", [2, 2, 6, -6]), ("ttbar", [21, 21, 6]), ("ttbar", [21, 21, 6, -6, 21]),
    ("ee_qqg", [11, -11, 1, -1, 21]), ("ee_qqg", [-11, 11, -1, 1, 21]),
    ("ee_qqg", [-11, 11, 5, -5, 21]), ("ee_qqg", [-11, 11, 1, -1]),
    ("ee_qqg", [-11, 11, 21, 1, -1]), ("ee_qqg", [-13, 13, 2, -2, 21]),
    ("udx_enug", [1, -2, 11, -12, 21]), ("udx_enug", [2, -1, 12, -11, 21]),
    ("udx_enug", [2, -3, -11, 12, 21]), ("udx_enug", [2, -1, -11, 12]),
    ("udx_enug", [21, 2, -11, 12, -1]),
], ids=str)
def test_unknown_pdg_list_leaves_the_answer_untouched(open_process: Any, name: str,
                                                      pdgs: list[int]) -> None:
    me = open_process(name)
    masses = [M_T, M_T] if name == "ttbar" else [0.0, 0.0, 0.0]
    p = rambo_points(masses, 500.0, 1, seed=1)[0]
    n = len(pdgs)
    q = np.zeros((n, 4))
    q[: min(n, p.shape[0])] = p[: min(n, p.shape[0])]
    for fill in (-7.0, 123.5):
        assert me.call(q, pdgs, fill=fill) == fill
    assert me.amp2_raw(q, pdgs).size == 0  # *namp2 = 0


@pytest.mark.parametrize("name,pdgs,masses", [
    ("ttbar", [21, 21, 6, -6], [M_T, M_T]), ("ee_qqg", EE_PDGS[2], [0.0, 0.0, 0.0]),
    ("udx_enug", W_PDGS[1], [0.0, 0.0, 0.0]),
])
def test_procid(open_process: Any, name: str, pdgs: list[int], masses: list[float]) -> None:
    """MadGraph's test: procid <= 0 or the process number (1) of `generate`."""
    me = open_process(name)
    p = rambo_points(masses, 500.0, 1, seed=2)[0]
    ref = me.call(p, pdgs)
    assert me.call(p, pdgs, procid=0) == ref
    assert me.call(p, pdgs, procid=1) == ref
    assert me.call(p, pdgs, procid=2, fill=-1.0) == -1.0


@pytest.mark.parametrize("name", ["ttbar", "ee_qqg", "udx_enug"])
def test_abi_version(open_process: Any, name: str) -> None:
    assert open_process(name).lib.madnis_abi_version_() == 1


@pytest.mark.parametrize("name,pdgs,masses", [
    ("ttbar", [21, 21, 6, -6], [M_T, M_T]), ("ee_qqg", EE_PDGS[0], [0.0, 0.0, 0.0]),
    ("udx_enug", W_PDGS[0], [0.0, 0.0, 0.0]),
])
def test_bad_card_gives_nan(open_process: Any, tmp_path: Path, name: str, pdgs: list[int],
                            masses: list[float]) -> None:
    """A card the SM reader rejects (here: no top mass) leaves the library unusable, which
    shows as NaN for a known subprocess; an unknown one is still left untouched."""
    text = SM_CARD.read_text().replace("    6 1.730000e+02 # MT", "")
    assert text != SM_CARD.read_text()
    card = tmp_path / "param_card.dat"
    card.write_text(text)
    me = open_process(name, card)
    p = rambo_points(masses, 500.0, 1, seed=3)[0]
    assert math.isnan(me.call(p, pdgs))
    assert np.all(np.isnan(me.amp2_raw(p, pdgs)))
    assert me.call(p, [11, 11, 11, 11], fill=2.5) == 2.5


def test_parameters_follow_the_card(open_process: Any, tmp_path: Path) -> None:
    """The Z width comes from the card, not from the library."""
    text = SM_CARD.read_text().replace("DECAY  23 2.441404e+00", "DECAY  23 3.000000e+00")
    card = tmp_path / "param_card.dat"
    card.write_text(text)
    p = rambo_points([0.0, 0.0, 0.0], M_Z, 4, seed=6)
    wide = open_process("ee_qqg", card)(p, EE_PDGS[0])
    narrow = open_process("ee_qqg")(p, EE_PDGS[0])
    # on the Z peak |M|^2 ~ 1 / WZ^2 (the photon is a per-mille effect there)
    np.testing.assert_allclose(wide / narrow, (W_Z / 3.0) ** 2, rtol=5e-3)
