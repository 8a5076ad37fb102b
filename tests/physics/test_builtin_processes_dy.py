"""The neutral-current built-in processes ee_mumu, drell_yan and zprime (processes/).

|M|^2 at RAMBO points against (a) the helicity-amplitude formula written out below in
numpy and (b) ufoamp, an independent tree-level generator reading the UFO `sm` model
(ufo-sm) with the same param_card, unitary gauge and fixed-width propagators, to 1e-10.
The Z' has no UFO model: it is checked against the formula, and with its couplings set
to zero against drell_yan. Also: MadGraph's ABI conventions (untouched answer for an
unknown PDG list, helicity indices), the per-diagram |M_i|^2 of madnis_amp2_, and the
param_card reader's errors.

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
from tests.physics.conftest import PROCESSES, SM_CARD, max_rel

ZPRIME_CARD = PROCESSES / "zprime" / "param_card.dat"

RTOL = 1e-10
# Partonic energies below, on and above the Z and Z' peaks.
ENERGIES = (60.0, 91.188, 150.0, 399.7, 400.0, 1000.0)


# ---- phase space -----------------------------------------------------------------------

def rambo_points(sqrt_s: float, n: int, seed: int) -> np.ndarray:
    """``n`` massless 2 -> 2 points in the partonic rest frame, parton 0 along +z."""
    r = np.random.default_rng(seed).random((n, 8))
    return np.asarray(Rambo([0.0, 0.0], Beams(sqrt_s)).map(r).momenta, dtype=np.float64)


def scan_points(n_per_energy: int = 12, seed: int = 7) -> np.ndarray:
    return np.concatenate([rambo_points(e, n_per_energy, seed + i)
                           for i, e in enumerate(ENERGIES)])


# ---- the closed formula ---------------------------------------------------------------

# The inputs of processes/common/param_card_sm.dat (MadGraph 3.5.7's sm defaults).
A_EW_M1, G_F, M_Z, W_Z = 132.507, 1.16639e-5, 91.188, 2.441404
# The Z' of processes/zprime/param_card.dat.
M_ZP, W_ZP = 400.0, 0.5

CHARGE = {1: -1 / 3, 2: 2 / 3, 3: -1 / 3, 4: 2 / 3, 11: -1.0, 13: -1.0}
ISOSPIN = {1: -0.5, 2: 0.5, 3: -0.5, 4: 0.5, 11: -0.5, 13: -0.5}


def sm_couplings() -> dict[str, float]:
    """G_mu scheme as MadGraph's sm model: MW from (aEW, Gf, MZ), sw2 = 1 - MW^2/MZ^2."""
    a_ew = 1 / A_EW_M1
    m_w = math.sqrt(M_Z**2 / 2 + math.sqrt(M_Z**4 / 4 - a_ew * math.pi * M_Z**2
                                           / (G_F * math.sqrt(2))))
    sw2 = 1 - m_w**2 / M_Z**2
    return {"ee": 2 * math.sqrt(a_ew * math.pi), "sw2": sw2, "MW": m_w}


def chiral_couplings(pdg: int, kind: str) -> tuple[float, float]:
    """(left, right) couplings of fermion |pdg| to the photon or the Z."""
    c = sm_couplings()
    q, t3 = CHARGE[abs(pdg)], ISOSPIN[abs(pdg)]
    if kind == "photon":
        return c["ee"] * q, c["ee"] * q
    gz = c["ee"] / math.sqrt(c["sw2"] * (1 - c["sw2"]))
    return gz * (t3 - q * c["sw2"]), -gz * q * c["sw2"]


def analytic_m2(p: np.ndarray, pdgs: list[int], *, diagrams: tuple[str, ...] = ("photon", "Z"),
                kappa: float = 1.0) -> np.ndarray:
    """Spin- and colour-averaged |M|^2 of f f~ -> f' f'~ through s-channel vectors.

    In the partonic rest frame, theta the angle between the incoming and the outgoing
    fermion (not antifermion), chiralities i, j of the two lines:
      |M|^2 = 1/4 (N_c / N_c^2) sum_ij s^2 |A_ij|^2 (1 + cos theta)^2   (i = j)
                                          or (1 - cos theta)^2   (i != j),
      A_ij = sum_V g^V_i(f) g^V_j(f') / (s - M_V^2 + i M_V W_V)
    for V in photon (M = W = 0), Z and Z' (the Z couplings times kappa).
    """
    i_f = 0 if pdgs[0] > 0 else 1
    i_fout = 2 if pdgs[2] > 0 else 3
    s = (p[:, 0, 0] + p[:, 1, 0]) ** 2 - np.sum((p[:, 0, 1:] + p[:, 1, 1:]) ** 2, axis=-1)
    a, b = p[:, i_f, 1:], p[:, i_fout, 1:]
    cos = np.sum(a * b, axis=-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    colour = 1 / 3 if abs(pdgs[0]) < 10 else 1.0
    total = np.zeros_like(s)
    for i, j in itertools.product(range(2), repeat=2):
        amp = np.zeros_like(s, dtype=complex)
        for name in diagrams:
            kind, mass, width, scale = {"photon": ("photon", 0.0, 0.0, 1.0),
                                        "Z": ("Z", M_Z, W_Z, 1.0),
                                        "Zprime": ("Z", M_ZP, W_ZP, kappa)}[name]
            g1 = chiral_couplings(pdgs[i_f], kind)[i]
            g2 = chiral_couplings(pdgs[i_fout], kind)[j]
            amp += scale * g1 * g2 / (s - mass**2 + 1j * mass * width)
        sign = 1.0 if i == j else -1.0
        total += s**2 * np.abs(amp) ** 2 * (1 + sign * cos) ** 2
    return colour * total / 4


# ---- ufoamp ---------------------------------------------------------------------------

def ufoamp_m2(p: np.ndarray, pdgs: list[int], *, drop: int | None = None) -> np.ndarray:
    """|M|^2 from ufoamp with the UFO sm model and our card (``drop``: a boson removed)."""
    ufo_sm = pytest.importorskip("ufo_sm")
    analysis = pytest.importorskip("ufoamp.analysis")
    drop_vertex = None if drop is None else (lambda vertex, codes: drop in codes)
    me = analysis.MatrixElement(str(Path(ufo_sm.__file__).parent), (pdgs[:2], pdgs[2:]),
                                param_card=str(SM_CARD), gauge="unitary",
                                drop_vertex=drop_vertex)
    assert abs(me.param("MW") - sm_couplings()["MW"]) < 1e-12 * 80
    assert me.param("WZ") == W_Z
    return np.asarray(me.m2_events(p, prune=False), dtype=np.float64)


EE_PDGS = [-11, 11, -13, 13]
DY_PDGS = [[q, -q, -11, 11] for q in (2, 4, 1, 3)] + [[-q, q, -11, 11] for q in (2, 4, 1, 3)]


# ---- |M|^2 -----------------------------------------------------------------------------

def test_abi_version(open_process: Any) -> None:
    for name in ("ee_mumu", "drell_yan", "zprime"):
        card = ZPRIME_CARD if name == "zprime" else SM_CARD
        assert open_process(name, card).lib.madnis_abi_version_() == 1


@pytest.mark.parametrize("pdgs", [EE_PDGS, [11, -11, -13, 13]], ids=str)
def test_ee_mumu(open_process: Any, pdgs: list[int]) -> None:
    me = open_process("ee_mumu")
    p = scan_points()
    m2 = me(p, pdgs)
    assert np.all(m2 > 0)
    assert max_rel(m2, analytic_m2(p, pdgs)) < RTOL
    if pdgs == EE_PDGS:  # the mirrored list is not a MadGraph subprocess; same physics
        assert max_rel(m2, ufoamp_m2(p, pdgs)) < RTOL


def test_ee_mumu_photon_limit_is_qed(open_process: Any) -> None:
    """Far below the Z the photon dominates: |M|^2 -> 2 e^4 (t^2 + u^2) / s^2."""
    p = rambo_points(1.0, 20, seed=3)
    m2 = open_process("ee_mumu")(p, EE_PDGS)
    e2 = sm_couplings()["ee"] ** 2
    s = 1.0
    t = -2 * np.einsum("ni,ni->n", p[:, 1] * [1, -1, -1, -1], p[:, 3])
    u = -s - t
    np.testing.assert_allclose(m2, 2 * e2**2 * (t**2 + u**2) / s**2, rtol=2e-4)


@pytest.mark.parametrize("pdgs", DY_PDGS, ids=str)
def test_drell_yan(open_process: Any, pdgs: list[int]) -> None:
    me = open_process("drell_yan")
    p = scan_points(8)
    m2 = me(p, pdgs)
    assert np.all(m2 > 0)
    assert max_rel(m2, analytic_m2(p, pdgs)) < RTOL
    assert max_rel(m2, ufoamp_m2(p, pdgs)) < RTOL


@pytest.mark.parametrize("pdgs", DY_PDGS, ids=str)
def test_zprime(open_process: Any, pdgs: list[int]) -> None:
    p = scan_points(8)
    m2 = open_process("zprime", ZPRIME_CARD)(p, pdgs)
    ref = analytic_m2(p, pdgs, diagrams=("photon", "Z", "Zprime"))
    assert max_rel(m2, ref) < RTOL
    # the Z' dominates on its peak and hardly matters on the Z peak
    sqrt_s = p[:, 0, 0] + p[:, 1, 0]
    ratio = m2 / analytic_m2(p, pdgs)
    assert np.all(ratio[np.isclose(sqrt_s, M_ZP)] > 10)
    assert np.all(np.abs(ratio[np.isclose(sqrt_s, M_Z)] - 1) < 0.01)


def zprime_card(tmp_path: Path, kappa_q: float, kappa_l: float) -> Path:
    text = ZPRIME_CARD.read_text()
    for index, value in ((1, kappa_q), (2, kappa_l)):
        old = f"    {index} 1.000000e+00 # kappa_"
        assert old in text
        text = text.replace(old, f"    {index} {value:e} # kappa_")
    card = tmp_path / "param_card.dat"
    card.write_text(text)
    return card


@pytest.mark.parametrize("kappas", [(0.0, 1.0), (1.0, 0.0)], ids=["quarks", "leptons"])
def test_zprime_without_couplings_is_drell_yan(open_process: Any, tmp_path: Path,
                                               kappas: tuple[float, float]) -> None:
    zp = open_process("zprime", zprime_card(tmp_path, *kappas))
    dy = open_process("drell_yan")
    p = scan_points(6)
    for pdgs in DY_PDGS:
        np.testing.assert_array_equal(zp(p, pdgs), dy(p, pdgs))
        amp2 = zp.amp2(p, pdgs)
        np.testing.assert_array_equal(amp2[:, :2], dy.amp2(p, pdgs))
        np.testing.assert_array_equal(amp2[:, 2], 0.0)


def test_zprime_coupling_scale(open_process: Any, tmp_path: Path) -> None:
    """Only the product kappa_q kappa_l enters."""
    p = scan_points(6)
    a = open_process("zprime", zprime_card(tmp_path, 0.5, 0.8))(p, [2, -2, -11, 11])
    ref = analytic_m2(p, [2, -2, -11, 11], diagrams=("photon", "Z", "Zprime"), kappa=0.4)
    assert max_rel(a, ref) < RTOL


# ---- per-diagram |M_i|^2 ----------------------------------------------------------------

@pytest.mark.parametrize("name,pdgs,card,diagrams", [
    ("ee_mumu", EE_PDGS, SM_CARD, ("photon", "Z")),
    ("drell_yan", [2, -2, -11, 11], SM_CARD, ("photon", "Z")),
    ("drell_yan", [-1, 1, -11, 11], SM_CARD, ("photon", "Z")),
    ("zprime", [4, -4, -11, 11], ZPRIME_CARD, ("photon", "Z", "Zprime")),
    ("zprime", [-3, 3, -11, 11], ZPRIME_CARD, ("photon", "Z", "Zprime")),
], ids=lambda v: str(v) if isinstance(v, list) else None)
def test_amp2_is_one_squared_diagram_each(open_process: Any, name: str, pdgs: list[int],
                                          card: Path, diagrams: tuple[str, ...]) -> None:
    me = open_process(name, card)
    p = scan_points(6)
    amp2 = me.amp2(p, pdgs)
    assert amp2.shape == (p.shape[0], len(diagrams))
    for k, diagram in enumerate(diagrams):
        assert max_rel(amp2[:, k], analytic_m2(p, pdgs, diagrams=(diagram,))) < RTOL
    # interference: the sum of the squares is not |M|^2, but the same order of magnitude
    assert not np.allclose(amp2.sum(axis=1), me(p, pdgs), rtol=1e-6)


@pytest.mark.parametrize("name,pdgs", [("ee_mumu", EE_PDGS), ("drell_yan", [2, -2, -11, 11])])
def test_amp2_against_ufoamp_with_one_boson(open_process: Any, name: str,
                                            pdgs: list[int]) -> None:
    """The photon entry is |M|^2 without Z vertices, the Z entry |M|^2 without photons."""
    p = scan_points(4)
    amp2 = open_process(name).amp2(p, pdgs)
    assert max_rel(amp2[:, 0], ufoamp_m2(p, pdgs, drop=23)) < RTOL
    assert max_rel(amp2[:, 1], ufoamp_m2(p, pdgs, drop=22)) < RTOL


# ---- MadGraph's ABI conventions ---------------------------------------------------------

@pytest.mark.parametrize("name,pdgs", [
    ("ee_mumu", [-11, 11, 13, -13]), ("ee_mumu", [-13, 13, -11, 11]),
    ("ee_mumu", [-11, 11, -13]), ("drell_yan", [2, -2, -13, 13]),
    ("drell_yan", [5, -5, -11, 11]), ("drell_yan", [2, -2, 11, -11]),
    ("zprime", [21, 21, -11, 11]),
])
def test_unknown_pdg_list_leaves_the_answer_untouched(open_process: Any, name: str,
                                                      pdgs: list[int]) -> None:
    me = open_process(name, ZPRIME_CARD if name == "zprime" else SM_CARD)
    p = rambo_points(200.0, 1, seed=1)[0][: len(pdgs)]
    for fill in (-7.0, 123.5):
        assert me.call(p, pdgs, fill=fill) == fill
    assert me.amp2_raw(p, pdgs).size == 0  # *namp2 = 0


def test_procid(open_process: Any) -> None:
    """MadGraph's test: procid <= 0 or the process number (1) of `generate`."""
    me = open_process("drell_yan")
    p = rambo_points(200.0, 1, seed=2)[0]
    ref = me.call(p, [2, -2, -11, 11])
    assert me.call(p, [2, -2, -11, 11], procid=0) == ref
    assert me.call(p, [2, -2, -11, 11], procid=1) == ref
    assert me.call(p, [2, -2, -11, 11], procid=2, fill=-1.0) == -1.0


@pytest.mark.parametrize("name,pdgs,card", [
    ("ee_mumu", EE_PDGS, SM_CARD), ("drell_yan", [2, -2, -11, 11], SM_CARD),
    ("drell_yan", [-4, 4, -11, 11], SM_CARD), ("zprime", [1, -1, -11, 11], ZPRIME_CARD),
])
def test_helicity_index(open_process: Any, name: str, pdgs: list[int], card: Path) -> None:
    """nhel = 1..16 is MadGraph's helicity table (particle 4 fastest, -1 first); the
    helicities, divided by IDEN like the total, add up to the total, and only opposite
    helicities on each fermion line survive."""
    me = open_process(name, card)
    p = scan_points(2)
    total = me(p, pdgs)
    per_hel = np.stack([me(p, pdgs, nhel=h) for h in range(1, 17)], axis=1)
    np.testing.assert_allclose(per_hel.sum(axis=1), total, rtol=1e-13)
    i_f, i_fbar = (0, 1) if pdgs[0] > 0 else (1, 0)
    i_out, i_outbar = (2, 3) if pdgs[2] > 0 else (3, 2)
    for k, hel in enumerate(itertools.product((-1, 1), repeat=4)):
        allowed = hel[i_f] == -hel[i_fbar] and hel[i_out] == -hel[i_outbar]
        assert np.all(per_hel[:, k] > 0) if allowed else np.all(per_hel[:, k] == 0)
    if name == "zprime":
        return
    # physical helicities, as HELAS (and ufoamp) define them
    ufo_sm = pytest.importorskip("ufo_sm")
    analysis = pytest.importorskip("ufoamp.analysis")
    ref = analysis.MatrixElement(str(Path(ufo_sm.__file__).parent), (pdgs[:2], pdgs[2:]),
                                 param_card=str(SM_CARD), gauge="unitary")
    iden = 36.0 if abs(pdgs[0]) < 10 else 4.0
    for k, hel in enumerate(itertools.product((-1, 1), repeat=4)):
        if per_hel[0, k] == 0:
            continue
        for n, ev in enumerate(p):
            amp = ref.proc.helicity_amplitude(list(ev), hel)
            assert abs(per_hel[n, k] / (np.sum(np.abs(amp) ** 2) / iden) - 1) < RTOL


# ---- the param_card reader --------------------------------------------------------------

def test_block_names_are_case_insensitive(open_process: Any, tmp_path: Path) -> None:
    text = SM_CARD.read_text().replace("Block mass", "BLOCK MASS").replace(
        "Block sminputs", "bLoCk SMInputs Q= 91.188").replace("DECAY  23", "decay 23")
    card = tmp_path / "card.dat"
    card.write_text(text)
    p = scan_points(2)
    np.testing.assert_array_equal(open_process("ee_mumu", card)(p, EE_PDGS),
                                  open_process("ee_mumu")(p, EE_PDGS))


@pytest.mark.parametrize("edit,message", [
    (("23 9.118800e+01 # MZ", "23 9.11.8800e+01 # MZ"),
     ":{line}: BLOCK mass: value '9.11.8800e+01' is not a number"),
    (("DECAY  23 2.441404e+00", "DECAY  23 Auto"), ":{line}: DECAY 23: width 'Auto'"),
    (("DECAY  23 2.441404e+00 # WZ", ""), "missing DECAY 23"),
    (("    2 1.166390e-05 # Gf", ""), "missing entry 2 of BLOCK SMINPUTS"),
])
def test_card_errors_name_the_file_and_line(open_process: Any, tmp_path: Path,
                                            capfd: pytest.CaptureFixture[str],
                                            edit: tuple[str, str], message: str) -> None:
    text = SM_CARD.read_text()
    assert edit[0] in text
    card = tmp_path / "broken_card.dat"
    card.write_text(text.replace(edit[0], edit[1]))
    me = open_process("ee_mumu", card)
    err = capfd.readouterr().err
    line = text[: text.index(edit[0])].count("\n") + 1
    message = message.format(line=line)
    assert "ee_mumu: " in err and message in err
    if message.startswith(":"):
        assert f"{card}{message}" in err
    # a library without valid parameters answers NaN, never a number from stale ones
    assert math.isnan(me.call(rambo_points(200.0, 1, seed=0)[0], EE_PDGS))


def test_missing_card(open_process: Any, tmp_path: Path,
                      capfd: pytest.CaptureFixture[str]) -> None:
    me = open_process("drell_yan", tmp_path / "nowhere.dat")
    assert "nowhere.dat: cannot open the param_card" in capfd.readouterr().err
    assert math.isnan(me.call(rambo_points(200.0, 1, seed=0)[0], [2, -2, -11, 11]))


def test_zprime_card_needs_its_block(open_process: Any, tmp_path: Path,
                                     capfd: pytest.CaptureFixture[str]) -> None:
    me = open_process("zprime", SM_CARD)
    assert "missing entry 32 of BLOCK MASS" in capfd.readouterr().err
    assert math.isnan(me.call(rambo_points(200.0, 1, seed=0)[0], [2, -2, -11, 11]))
