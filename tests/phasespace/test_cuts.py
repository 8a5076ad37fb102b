"""Cuts with MadGraph run-card names: observables, particle classes, masks, run cards."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from madnis_py.phasespace.cuts import (
    SUPPORTED_CUTS,
    Cuts,
    ResonanceWindow,
    delta_phi,
    delta_r,
    eta,
    invariant_mass,
    particle_class,
    phi,
    pt,
    rapidity,
)

RUN_CARD = Path(__file__).parent / "data" / "run_card_madgraph_default.dat"
SQRT_S = 1000.0
BEAMS = np.array([[SQRT_S / 2, 0, 0, SQRT_S / 2], [SQRT_S / 2, 0, 0, -SQRT_S / 2]])


def massless(pt_: float, eta_: float, phi_: float) -> np.ndarray:
    return np.array([pt_ * math.cosh(eta_), pt_ * math.cos(phi_), pt_ * math.sin(phi_),
                     pt_ * math.sinh(eta_)])


def massive(pt_: float, y: float, phi_: float, mass: float) -> np.ndarray:
    mt = math.hypot(pt_, mass)
    return np.array([mt * math.cosh(y), pt_ * math.cos(phi_), pt_ * math.sin(phi_),
                     mt * math.sinh(y)])


def event(*final: np.ndarray) -> np.ndarray:
    """One event (nparticles, 4): the two beams, then the final state."""
    return np.concatenate([BEAMS, np.stack(final)])


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    # No observable or mask may warn, not even on inf / NaN momenta.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ----------------------------------------------------------------------------- observables

def test_massless_observables_from_pt_eta_phi() -> None:
    p = massless(30.0, 1.2, 0.7)
    assert pt(p) == pytest.approx(30.0, rel=1e-14)
    assert eta(p) == pytest.approx(1.2, rel=1e-14)
    assert phi(p) == pytest.approx(0.7, rel=1e-14)
    assert rapidity(p) == pytest.approx(1.2, rel=1e-13)  # massless: y = eta
    # Third quadrant: phi in [-pi, pi], negative eta.
    q = massless(5.0, -2.0, -2.5)
    assert (pt(q), eta(q), phi(q)) == pytest.approx((5.0, -2.0, -2.5), rel=1e-14)


def test_massive_rapidity_and_eta_differ() -> None:
    # b quark, mT = sqrt(20^2 + 4.7^2): eta = asinh(mT sinh(y) / pT) > y.
    p = massive(20.0, 1.5, 0.3, 4.7)
    assert rapidity(p) == pytest.approx(1.5, rel=1e-13)
    assert eta(p) == pytest.approx(math.asinh(math.hypot(20.0, 4.7) * math.sinh(1.5) / 20.0),
                                   rel=1e-14)
    assert eta(p) > 1.5 + 0.02


def test_observables_along_the_beam_are_infinite() -> None:
    along = np.array([[7.0, 0, 0, 7.0], [7.0, 0, 0, -7.0], [0.0, 0, 0, 0.0]])
    assert eta(along).tolist() == [math.inf, -math.inf, math.inf]
    assert rapidity(along[:2]).tolist() == [math.inf, -math.inf]
    assert pt(along).tolist() == [0.0, 0.0, 0.0]
    # Unphysical |pz| > E: NaN, quietly.
    assert math.isnan(float(rapidity(np.array([1.0, 0, 0, 2.0]))))


def test_observables_batch_and_broadcast() -> None:
    batch = np.stack([np.stack([massless(10.0 * (i + 1), 0.1 * k, 0.2 * k) for k in range(3)])
                      for i in range(4)])  # (4, 3, 4)
    assert pt(batch).shape == (4, 3)
    assert np.allclose(pt(batch), np.array([[10.0], [20.0], [30.0], [40.0]]) * np.ones(3))
    assert np.allclose(eta(batch), 0.1 * np.arange(3))
    # One reference momentum against the whole batch.
    assert delta_r(batch, massless(1.0, 0.0, 0.0)).shape == (4, 3)
    with pytest.raises(ValueError, match=r"p: expected .*last axis of length 4.*\(3, 5\)"):
        pt(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="p2"):
        invariant_mass(np.zeros(4), np.zeros(3))


@pytest.mark.parametrize("phi1,phi2,expected", [
    (math.pi - 0.1, -math.pi + 0.1, -0.2),  # across +pi: the short way round
    (-math.pi + 0.1, math.pi - 0.1, 0.2),   # across -pi
    (0.3, -0.4, 0.7),
    (3.0, -3.0, 6.0 - 2 * math.pi),
    (1.0, 1.0, 0.0),
])
def test_delta_phi_wraps_into_minus_pi_pi(phi1: float, phi2: float, expected: float) -> None:
    p1, p2 = massless(10.0, 0.3, phi1), massless(20.0, -0.5, phi2)
    assert float(delta_phi(p1, p2)) == pytest.approx(expected, abs=1e-14)
    assert float(delta_r(p1, p2)) == pytest.approx(math.hypot(0.8, expected), rel=1e-13)


def test_delta_phi_matches_wrapped_difference() -> None:
    rng = np.random.default_rng(3)
    angles = rng.uniform(-math.pi, math.pi, size=(1000, 2))
    p1 = np.stack([massless(1.0, 0.0, a) for a in angles[:, 0]])
    p2 = np.stack([massless(2.0, 0.0, b) for b in angles[:, 1]])
    d = delta_phi(p1, p2)
    wrapped = (angles[:, 0] - angles[:, 1] + math.pi) % (2 * math.pi) - math.pi
    assert np.all(np.abs(d) <= math.pi)
    assert np.allclose(d, wrapped, atol=1e-12)


def test_delta_r_with_rapidity() -> None:
    b1, b2 = massive(20.0, 1.0, 0.0, 4.7), massive(20.0, -0.5, 0.5, 4.7)
    assert float(delta_r(b1, b2, use_rapidity=True)) == pytest.approx(math.hypot(1.5, 0.5),
                                                                      rel=1e-13)
    assert float(delta_r(b1, b2)) > math.hypot(1.5, 0.5) + 0.01


def test_invariant_mass() -> None:
    back_to_back = (massless(50.0, 0.0, 0.0), massless(50.0, 0.0, math.pi))
    assert float(invariant_mass(*back_to_back)) == pytest.approx(100.0, rel=1e-14)
    # Massless pair: m^2 = 2 pT1 pT2 (cosh(d_eta) - cos(d_phi)).
    p1, p2 = massless(40.0, 0.5, 0.0), massless(35.0, -0.5, 3.0)
    expected = math.sqrt(2 * 40 * 35 * (math.cosh(1.0) - math.cos(3.0)))
    assert float(invariant_mass(p1, p2)) == pytest.approx(expected, rel=1e-13)
    # Two Z-mass particles at rest: 2 m.
    at_rest = np.array([91.0, 0.0, 0.0, 0.0])
    assert float(invariant_mass(at_rest, at_rest)) == pytest.approx(182.0, rel=1e-15)
    # Collinear massless pair: 0 (not NaN from a rounding-negative square).
    assert float(invariant_mass(massless(10.0, 1.3, 0.4), massless(3.0, 1.3, 0.4))) \
        == pytest.approx(0.0, abs=1e-6)
    assert math.isnan(float(invariant_mass(np.full(4, np.nan), at_rest)))


# ----------------------------------------------------------------------- particle classes

@pytest.mark.parametrize("pdg,flavour,expected", [
    (21, 4, "j"), (1, 4, "j"), (-2, 4, "j"), (3, 4, "j"), (-4, 4, "j"),
    (5, 4, "b"), (-5, 4, "b"), (5, 5, "j"), (-5, 5, "j"),
    (4, 3, "b"),  # MadGraph: flavours above maxjetflavor up to 5 are class b
    (6, 4, None), (-6, 6, None), (24, 4, None), (23, 4, None), (25, 4, None),
    (11, 4, "l"), (-11, 4, "l"), (13, 4, "l"), (-13, 4, "l"), (15, 4, "l"), (-15, 4, "l"),
    (22, 4, "a"),
    (12, 4, "v"), (-12, 4, "v"), (14, 4, "v"), (-16, 4, "v"),
])
def test_particle_class(pdg: int, flavour: int, expected: str | None) -> None:
    assert particle_class(pdg, maxjetflavor=flavour) == expected


# One particle of every kind in the final state; the incoming gluons sit along the beam.
ZOO = [21, 21, 21, 1, -2, 3, -4, 5, -5, 11, -11, 13, -13, 15, -15, 22, 12, 6]


def _one_soft_particle_each() -> np.ndarray:
    """Event i has final-state particle i + 2 at pT 5, every other one at pT 50."""
    n_final = len(ZOO) - 2
    events = []
    for soft in range(n_final):
        final = [massless(5.0 if k == soft else 50.0, 0.1 * k - 0.8, 0.37 * k)
                 for k in range(n_final)]
        events.append(event(*final))
    return np.stack(events)


@pytest.mark.parametrize("flavour", [4, 5])
@pytest.mark.parametrize("cls", ["j", "b", "l", "a"])
def test_each_pt_cut_hits_its_class_only(cls: str, flavour: int) -> None:
    cuts = Cuts(ZOO, {f"pt{cls}": 20.0}, maxjetflavor=flavour)
    expected_class = [particle_class(pdg, maxjetflavor=flavour) for pdg in ZOO[2:]]
    assert list(cuts.particle_classes) == [None, None] + expected_class
    passed = cuts.mask(_one_soft_particle_each())
    # Event i fails exactly when its soft particle belongs to the class (incoming: pT 0,
    # never cut).
    assert passed.tolist() == [c != cls for c in expected_class]


def test_b_quarks_are_jets_with_five_flavours() -> None:
    soft_b = event(massless(50.0, 0.0, 0.0), massless(5.0, 1.0, 2.0))
    pdgs = [21, 21, 21, 5]
    assert Cuts(pdgs, {"ptj": 20.0}).mask(soft_b[None]).tolist() == [True]
    assert Cuts(pdgs, {"ptb": 20.0}).mask(soft_b[None]).tolist() == [False]
    assert Cuts(pdgs, {"ptj": 20.0}, maxjetflavor=5).mask(soft_b[None]).tolist() == [False]
    assert Cuts(pdgs, {"ptb": 20.0}, maxjetflavor=5).active == {}
    assert Cuts(np.array(pdgs), {"ptb": 20.0}).active == {"ptb": 20.0}


# --------------------------------------------------------------------------------- masks

# u u~ > e- e+ g with typical cuts; every event but the first fails exactly one cut.
DY_PDGS = [2, -2, 11, -11, 21]
DY_CUTS = {"ptl": 10.0, "etal": 2.5, "drll": 0.4, "ptj": 20.0, "etaj": 5.0, "drjl": 0.4,
           "mmll": 50.0}
DY_EVENTS = [
    # (lepton-, lepton+, gluon) as (pT, eta, phi), and the one cut it fails
    (((40, 0.5, 0.0), (35, -0.5, 3.0), (30, 1.0, 1.5)), None),
    (((9, 1.5, 0.0), (35, -0.5, 3.0), (30, 1.0, 1.5)), "ptl"),       # m 54.7
    (((40, 0.5, 0.0), (35, -2.7, 3.0), (30, 1.0, 1.5)), "etal"),
    (((40, 0.5, 0.0), (35, -0.5, 3.0), (30, 0.6, 0.2)), "drjl"),
    (((200, 0.5, 0.0), (200, 0.6, 0.3), (30, 1.0, 2.5)), "drll"),    # dR 0.32, m 63
    (((20, 0.0, 0.0), (20, 0.0, 1.2), (30, 1.0, 3.0)), "mmll"),      # dR 1.2, m 22.6
    (((40, 0.5, 0.0), (35, -0.5, 3.0), (15, 1.0, 1.5)), "ptj"),
    (((40, 0.5, 0.0), (35, -0.5, 3.0), (30, 5.5, 1.5)), "etaj"),
]


def _dy_batch() -> np.ndarray:
    return np.stack([event(*(massless(*k) for k in kin)) for kin, _ in DY_EVENTS])


def test_mask_on_hand_built_batch() -> None:
    batch = _dy_batch()
    cuts = Cuts(DY_PDGS, DY_CUTS)
    assert cuts.mask(batch).tolist() == [fails is None for _, fails in DY_EVENTS]
    assert cuts(batch).tolist() == cuts.mask(batch).tolist()
    # Each event fails for the reason it was built for: without that cut it passes.
    for name in DY_CUTS:
        without = Cuts(DY_PDGS, {k: v for k, v in DY_CUTS.items() if k != name})
        assert without.mask(batch).tolist() == [fails in (None, name) for _, fails in DY_EVENTS]


def test_no_cuts_pass_everything_and_off_values() -> None:
    batch = _dy_batch()
    assert Cuts(DY_PDGS, {}).mask(batch).all()
    off = {"ptl": 0.0, "ptj": -1.0, "ptlmax": -1.0, "etal": 0.0, "etaj": -1.0, "drll": 0.0,
           "drllmax": -1.0, "mmll": 0.0, "mmllmax": -1.0, "etalmin": 0.0, "yl": 0.0}
    cuts = Cuts(DY_PDGS, off)
    assert cuts.active == {}
    assert cuts.mask(batch).all()
    assert cuts.mask(np.zeros((0, 5, 4))).shape == (0,)


def test_max_cuts() -> None:
    batch = _dy_batch()[:1]  # leptons pT 40 / 35, gluon pT 30, m_ll = 84.2, dR_ll = 3.2
    for name, value, passes in [
        ("ptlmax", 50.0, True), ("ptlmax", 38.0, False),
        ("ptjmax", 30.5, True), ("ptjmax", 29.5, False),
        ("ptjmax", 0.0, False),  # an upper bound of 0 is a real cut
        ("drllmax", 3.5, True), ("drllmax", 3.0, False),
        ("drjlmax", 2.2, True), ("drjlmax", 2.0, False),  # dR_jl = 1.58 and 2.12
        ("mmllmax", 90.0, True), ("mmllmax", 80.0, False),
        ("etalmin", 0.4, True), ("etalmin", 0.6, False),
        ("yl", 0.6, True), ("yl", 0.4, False),
    ]:
        assert Cuts(DY_PDGS, {name: value}).mask(batch).tolist() == [passes], (name, value)


def test_min_and_max_together_and_mass_veto_window() -> None:
    pdgs = [2, -2, 13, -13]
    masses = [70.0, 90.0, 110.0]
    batch = np.stack([event(massless(m / 2, 0.0, 0.0), massless(m / 2, 0.0, math.pi))
                      for m in masses])
    window = Cuts(pdgs, {"mmll": 80.0, "mmllmax": 100.0})
    assert window.mask(batch).tolist() == [False, True, False]
    # mmll > mmllmax: MadGraph vetoes the pairs inside (mmllmax, mmll).
    veto = Cuts(pdgs, {"mmll": 100.0, "mmllmax": 80.0})
    assert veto.mask(batch).tolist() == [True, False, True]
    # Other observables have no veto reading: ptl > ptlmax rejects everything.
    assert not Cuts(pdgs, {"ptl": 50.0, "ptlmax": 40.0}).mask(batch).any()


def test_mmll_only_on_same_flavour_opposite_sign_pairs() -> None:
    pdgs = [2, -2, 11, 13, -11, -13]
    # e- (2) and mu+ (5) nearly collinear: a low-mass pair, but not SFOS.
    low_mixed = event(massless(40, 0.0, 0.0), massless(40, 1.0, 2.0),
                      massless(40, -1.0, 3.5), massless(40, 0.05, 0.05))
    assert invariant_mass(low_mixed[2], low_mixed[5]) < 5.0
    assert Cuts(pdgs, {"mmll": 50.0}).mask(low_mixed[None]).tolist() == [True]
    # The same kinematics with the mu+ relabelled e+ makes it SFOS: cut.
    assert Cuts([2, -2, 11, 13, -13, -11], {"mmll": 50.0}).mask(low_mixed[None]).tolist() \
        == [False]
    # Same sign, or different flavour only: nothing to cut.
    assert Cuts([2, -2, 11, 11], {"mmll": 50.0, "mmllmax": 1.0}).active == {}
    assert Cuts([2, -2, 11, -13], {"mmll": 50.0}).active == {}
    assert Cuts([2, -2, 15, -15], {"mmll": 50.0}).active == {"mmll": 50.0}
    # mmjj has no such restriction: quark and gluon, same sign quarks.
    jets = event(massless(40, 0.0, 0.0), massless(40, 0.05, 0.05))
    for pair in ([21, 2], [2, 2], [1, -3]):
        assert Cuts([21, 21, *pair], {"mmjj": 20.0}).mask(jets[None]).tolist() == [False]


def test_delta_r_cuts_between_classes() -> None:
    # b, photon and lepton close together, a jet far away.
    pdgs = [21, 21, 5, 22, 11, 21]
    ev = event(massless(40, 0.0, 0.0), massless(40, 0.1, 0.1), massless(40, -0.1, -0.1),
               massless(40, 2.0, 3.0))[None]
    for name, passes in [("drab", False), ("drbl", False), ("dral", False), ("drbj", True),
                         ("draj", True), ("drjl", True), ("drjj", True), ("drbb", True),
                         ("drll", True), ("draa", True)]:
        assert Cuts(pdgs, {name: 0.4}).mask(ev).tolist() == [passes], name
    assert Cuts(pdgs, {"drjj": 0.4, "drbb": 0.4, "draa": 0.4, "drll": 0.4}).active == {}


def test_missing_pt() -> None:
    pdgs = [2, -1, -11, 12]
    batch = np.stack([event(massless(30, 0.0, 0.0), massless(pt_, 0.3, math.pi))
                      for pt_ in (15.0, 25.0)])
    assert Cuts(pdgs, {"misset": 20.0}).mask(batch).tolist() == [False, True]
    assert Cuts(pdgs, {"missetmax": 20.0}).mask(batch).tolist() == [True, False]
    # Vector sum: two neutrinos back to back carry no missing pT.
    two = event(massless(30, 0.0, 0.0), massless(25, 0.3, 1.0), massless(25, -0.3, 1.0 + math.pi))
    assert Cuts([2, -2, 11, 12, -12], {"misset": 20.0}).mask(two[None]).tolist() == [False]
    # No neutrinos: MadGraph skips the cut.
    assert Cuts([2, -2, 11, -11], {"misset": 20.0}).active == {}


def test_rapidity_option_for_massive_b() -> None:
    pdgs = [21, 21, 5, -5]
    b = massive(20.0, 2.49, 0.0, 4.7)
    assert eta(b) > 2.5 > rapidity(b)
    ev = event(b, massive(20.0, 0.0, math.pi, 4.7))[None]
    assert Cuts(pdgs, {"etab": 2.5}).mask(ev).tolist() == [False]
    assert Cuts(pdgs, {"etab": 2.5}, use_rapidity=True).mask(ev).tolist() == [True]
    assert Cuts(pdgs, {"yb": 2.5}).mask(ev).tolist() == [True]


def test_non_finite_events_fail_quietly() -> None:
    batch = np.repeat(_dy_batch()[:1], 5, axis=0)
    batch[1, 3, 2] = np.nan      # a final-state component
    batch[2, 0, 0] = np.nan      # an incoming parton
    batch[3, 4, :] = np.nan      # a whole particle
    batch[4, 2, 3] = np.inf
    for cuts in (Cuts(DY_PDGS, {}), Cuts(DY_PDGS, DY_CUTS),
                 Cuts(DY_PDGS, {"ptlmax": 1e9, "drllmax": 100.0, "mmllmax": 1e9})):
        assert cuts.mask(batch).tolist() == [True, False, False, False, False]


# ----------------------------------------------------------------------- errors, repr

def test_unknown_name_is_named_with_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="unknown cut name 'ptx'") as err:
        Cuts(DY_PDGS, {"ptj": 20.0, "ptx": 10.0})
    for name in ("ptj", "misset", "etalmin", "yj", "drjj", "dralmax", "mmllmax"):
        assert name in str(err.value)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"cuts": {"ptj": math.nan}}, ValueError, "'ptj'.*finite"),
    ({"cuts": {"etaj": math.inf}}, ValueError, "'etaj'.*finite"),
    ({"cuts": {"ptj": "20"}}, TypeError, "'ptj'.*real number"),
    ({"cuts": {"ptj": True}}, TypeError, "'ptj'"),
    ({"cuts": [("ptj", 20.0)]}, TypeError, "cuts"),
    ({"pdgs": [21, 21]}, ValueError, "pdgs.*at least 3"),
    ({"pdgs": [21, 21, 2.0]}, TypeError, r"pdgs\[2\]"),
    ({"maxjetflavor": 7}, ValueError, "maxjetflavor.*0..6"),
])
def test_bad_inputs(kwargs: dict[str, object], error: type[Exception], match: str) -> None:
    args: dict[str, object] = {"pdgs": DY_PDGS, "cuts": {}} | kwargs
    with pytest.raises(error, match=match):
        Cuts(**args)  # type: ignore[arg-type]


def test_momenta_shape_is_checked() -> None:
    with pytest.raises(ValueError, match=r"momenta: expected shape \(n, 5, 4\).*\(3, 4, 4\)"):
        Cuts(DY_PDGS, DY_CUTS).mask(np.zeros((3, 4, 4)))


def test_active_and_repr() -> None:
    pdgs = [21, 21, 11, -11, 21]
    cuts = Cuts(pdgs, {"drjl": 0.4, "ptj": 20, "ptb": 30.0, "ptjmax": -1.0, "etaj": 0.0,
                       "drjj": 0.4})
    # ptb: no b; ptjmax, etaj: off; drjj: one jet, no pair.
    assert cuts.active == {"ptj": 20.0, "drjl": 0.4}
    assert repr(cuts) == "Cuts([21, 21, 11, -11, 21], {'ptj': 20.0, 'drjl': 0.4}, maxjetflavor=4)"
    assert "use_rapidity=True" in repr(Cuts(pdgs, {}, use_rapidity=True))
    # The active cuts alone cut the same.
    rng = np.random.default_rng(11)
    batch = np.stack([event(*(massless(rng.uniform(0, 60), rng.uniform(-4, 4),
                                       rng.uniform(-math.pi, math.pi)) for _ in range(3)))
                      for _ in range(500)])
    reduced = Cuts(cuts.pdgs, cuts.active, maxjetflavor=cuts.maxjetflavor)
    assert np.array_equal(cuts.mask(batch), reduced.mask(batch))
    assert 0 < cuts.mask(batch).sum() < len(batch)


def test_supported_names() -> None:
    assert len(SUPPORTED_CUTS) == len(set(SUPPORTED_CUTS)) == 50
    for name in ("ptj", "ptb", "pta", "ptl", "misset", "ptjmax", "ptbmax", "ptamax", "ptlmax",
                 "missetmax", "etaj", "etab", "etaa", "etal", "etajmin", "etabmin", "etaamin",
                 "etalmin", "drjj", "drbb", "drll", "draa", "drbj", "draj", "drjl", "drab",
                 "drbl", "dral", "drjjmax", "dralmax", "mmjj", "mmbb", "mmaa", "mmll",
                 "mmjjmax", "mmbbmax", "mmaamax", "mmllmax", "yj", "yl", "ya", "yb"):
        assert name in SUPPORTED_CUTS


# -------------------------------------------------------------------------- run cards

def parse_run_card(text: str) -> dict[str, str]:
    """The ``value = name ! comment`` lines of a MadGraph run card, as name -> value."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("!", 1)[0].strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        value, _, name = line.rpartition("=")  # values may contain '=' themselves
        fields[name.strip()] = value.strip()
    return fields


def test_default_madgraph_run_card() -> None:
    fields = parse_run_card(RUN_CARD.read_text())
    assert fields["nevents"] == "10000" and fields["systematics_program"] == "systematics"
    assert fields["ptl"] == "10.0" and fields["maxjetflavor"] == "4"
    # The card is for p p > e+ e-: its lepton cuts and nothing else are cut names we know.
    picked = {name for name in fields if name in SUPPORTED_CUTS}
    assert picked == {"ptl", "ptlmax", "etal", "etalmin", "drll", "drllmax", "mmll", "mmllmax"}
    cuts = Cuts.from_run_card([2, -2, 11, -11], fields)
    assert cuts.active == {"ptl": 10.0, "etal": 2.5, "drll": 0.4}
    assert cuts.maxjetflavor == 4
    assert Cuts.from_run_card([21, 21, 21, 21], fields).active == {}
    batch = _dy_batch()[:3, :4]  # drop the gluon: e- e+ only
    assert cuts.mask(batch).tolist() == [True, False, False]


def test_from_run_card_conversions() -> None:
    pdgs = [21, 21, 21, 5]
    fields: dict[str, object] = {
        "PTJ": " 20.0 ", "ptb": "1d1", "etab": 2.5, "drbj": "4.0D-1", "mmjj": 0,
        "nevents": "10000", "pdlabel": "nn23lo1", "pt_min_pdg": "{}", "use_syst": "True",
        "systematics_arguments": "['--mur=0.5,1,2']", "xqcut": "abc",
    }
    cuts = Cuts.from_run_card(pdgs, fields)
    assert cuts.active == {"ptj": 20.0, "ptb": 10.0, "etab": 2.5, "drbj": 0.4}
    assert cuts.maxjetflavor == 4
    five = Cuts.from_run_card(pdgs, {**fields, "maxjetflavor": "5"})
    assert five.maxjetflavor == 5 and five.particle_classes[3] == "j"
    assert Cuts.from_run_card(pdgs, fields, maxjetflavor=5).maxjetflavor == 5
    assert Cuts.from_run_card(pdgs, {"maxjetflavor": 5}, maxjetflavor=5).maxjetflavor == 5
    with pytest.raises(ValueError, match="maxjetflavor=4.*says maxjetflavor = 5"):
        Cuts.from_run_card(pdgs, {"maxjetflavor": "5"}, maxjetflavor=4)
    with pytest.raises(ValueError, match="'ptj'.*expected a number.*'twenty'"):
        Cuts.from_run_card(pdgs, {"ptj": "twenty"})
    with pytest.raises(ValueError, match="'maxjetflavor'.*integer"):
        Cuts.from_run_card(pdgs, {"maxjetflavor": "4.5"})
    with pytest.raises(ValueError, match="'ptj'.*finite"):
        Cuts.from_run_card(pdgs, {"ptj": "nan"})
    with pytest.raises(ValueError, match="'ptj' and 'PTJ'"):
        Cuts.from_run_card(pdgs, {"ptj": 1.0, "PTJ": 2.0})


# ------------------------------------------------ against a plain per-event reference

_DR_NAMES = ("jj", "bb", "ll", "aa", "bj", "aj", "jl", "ab", "bl", "al")


def _reference_pass(pdgs: list[int], p: np.ndarray, cuts: dict[str, float],
                    maxjetflavor: int) -> bool:
    """MadGraph's setcuts.f / cuts.f logic, one event, scalar maths, written separately."""
    if not np.isfinite(p).all():
        return False
    final = range(2, len(pdgs))
    classes = {i: _reference_class(pdgs[i], maxjetflavor) for i in final}
    kin: dict[int, tuple[float, float, float, float]] = {}
    for i in final:
        e, px, py, pz = p[i]
        ptv = math.hypot(px, py)
        y = 0.5 * math.log((e + pz) / (e - pz))
        kin[i] = (ptv, math.asinh(pz / ptv), math.atan2(py, px), y)
    if not all(_reference_single_ok(classes[i], kin[i], cuts) for i in final):
        return False
    nus = [i for i in final if classes[i] == "v"]
    if nus:
        miss = math.hypot(sum(p[i][1] for i in nus), sum(p[i][2] for i in nus))
        if not _in_window(miss, cuts.get("misset", 0), cuts.get("missetmax", -1)):
            return False
    return all(_reference_pair_ok(pdgs, p, classes, kin, i, j, cuts)
               for i in final for j in final if j > i)


def _reference_class(pdg: int, maxjetflavor: int) -> str | None:
    a = abs(pdg)
    if a == 21 or 1 <= a <= min(maxjetflavor, 5):
        return "j"
    if maxjetflavor < a <= 5:
        return "b"
    return {11: "l", 13: "l", 15: "l", 22: "a", 12: "v", 14: "v", 16: "v"}.get(a)


def _in_window(v: float, lo: float, hi: float) -> bool:
    """lo <= v <= hi, with hi < 0 meaning no upper cut."""
    return not (v < lo or (hi >= 0 and v > hi))


def _reference_single_ok(c: str | None, kin: tuple[float, float, float, float],
                         cuts: dict[str, float]) -> bool:
    """The pt, eta and y cuts of one particle of class ``c``."""
    if c not in ("j", "b", "a", "l"):
        return True
    ptv, etav, _, yv = kin
    if not _in_window(ptv, cuts.get(f"pt{c}", 0), cuts.get(f"pt{c}max", -1)):
        return False
    if (cuts.get(f"eta{c}", -1) > 0 and abs(etav) > cuts.get(f"eta{c}", -1)) \
            or abs(etav) < cuts.get(f"eta{c}min", 0):
        return False
    return not (cuts.get(f"y{c}", -1) > 0 and abs(yv) > cuts.get(f"y{c}", -1))


def _reference_pair_ok(pdgs: list[int], p: np.ndarray, classes: dict[int, str | None],
                       kin: dict[int, tuple[float, float, float, float]], i: int, j: int,
                       cuts: dict[str, float]) -> bool:
    """The delta R and invariant-mass cuts of the pair (i, j)."""
    ci, cj = classes[i], classes[j]
    if ci is None or cj is None:
        return True
    pair = {frozenset(n): n for n in _DR_NAMES}.get(frozenset((ci, cj)))
    if pair is not None:
        dphi = abs((kin[i][2] - kin[j][2] + math.pi) % (2 * math.pi) - math.pi)
        dr = math.hypot(kin[i][1] - kin[j][1], dphi)
        if not _in_window(dr, cuts.get(f"dr{pair}", 0), cuts.get(f"dr{pair}max", -1)):
            return False
    if ci == cj and ci in "jbal" and (ci != "l" or pdgs[i] == -pdgs[j]):
        s = p[i] + p[j]
        m2 = s[0] ** 2 - s[1] ** 2 - s[2] ** 2 - s[3] ** 2
        lo, hi = cuts.get(f"mm{ci}{ci}", 0), cuts.get(f"mm{ci}{ci}max", -1)
        lo2, hi2 = lo * abs(lo), hi * abs(hi)
        if hi >= 0 and lo2 > hi2:
            return not lo2 > m2 > hi2
        return _in_window(m2, lo2, hi2)  # hi2 < 0 exactly when hi < 0: no upper cut
    return True


@pytest.mark.parametrize("maxjetflavor", [4, 5])
def test_mask_matches_per_event_reference(maxjetflavor: int) -> None:
    pdgs = [21, 2, 21, 1, 5, -5, 11, -11, 13, 22, 12, -14, 6]
    # With maxjetflavor=4 every cut rejects some events on its own (mmbb > mmbbmax: a veto
    # window).
    cuts = {"ptj": 20.0, "ptb": 15.0, "ptbmax": 120.0, "pta": 10.0, "ptl": 10.0,
            "ptlmax": 120.0, "misset": 10.0, "missetmax": 140.0, "etaj": 2.9, "etab": 2.8,
            "etaa": 2.5, "etal": 2.5, "etalmin": 0.1, "yj": 2.8, "drjj": 0.3, "drbb": 0.4,
            "drll": 0.3, "draj": 0.2, "drjl": 0.3, "drab": 0.3, "drbl": 0.3, "dral": 0.3,
            "drbj": 0.3, "drjjmax": 5.0, "mmjj": 30.0, "mmbb": 60.0, "mmbbmax": 40.0,
            "mmll": 20.0, "mmllmax": 500.0}
    rng = np.random.default_rng(17)
    n = 400
    events = np.empty((n, len(pdgs), 4))
    events[:, :2] = BEAMS
    for k in range(n):
        for i in range(2, len(pdgs)):
            mass = 4.7 if abs(pdgs[i]) == 5 else (173.0 if pdgs[i] == 6 else 0.0)
            events[k, i] = massive(rng.uniform(5, 130), rng.uniform(-3.0, 3.0),
                                   rng.uniform(-math.pi, math.pi), mass)
    got = Cuts(pdgs, cuts, maxjetflavor=maxjetflavor).mask(events)
    expected = [_reference_pass(pdgs, events[k], cuts, maxjetflavor) for k in range(n)]
    assert got.tolist() == expected
    assert 0 < sum(expected) < n


def test_equal_signatures_give_equal_masks() -> None:
    values = {"ptj": 20.0, "etaj": 5.0, "ptl": 10.0, "etal": 2.5, "drll": 0.4, "drjl": 0.4,
              "mmll": 50.0}
    qq = Cuts([2, -2, -11, 11, 21], values)  # u u~ > e+ e- g
    gq = Cuts([21, 4, -11, 11, 4], values)   # g c > e+ e- c: a jet at the same place
    assert qq.signature == gq.signature
    other = [Cuts([21, 4, -11, 11, 5], values),  # a b quark: not a jet (maxjetflavor 4)
             Cuts([2, -2, -11, 11, 21], {**values, "ptj": 30.0}),
             Cuts([2, -2, -11, 11, 21], values, use_rapidity=True),
             Cuts([2, -2, -13, 11, 21], values)]  # mmll: no same-flavour pair
    assert all(c.signature != qq.signature for c in other)
    rng = np.random.default_rng(2)
    p = rng.normal(scale=60.0, size=(4000, 5, 4))
    p[..., 0] = np.linalg.norm(p[..., 1:], axis=-1)  # massless
    np.testing.assert_array_equal(qq.mask(p), gq.mask(p))
    assert 0 < qq.mask(p).sum() < len(p)
    assert any(not np.array_equal(c.mask(p), qq.mask(p)) for c in other)


# --------------------------------------------------------------------------- windows

def _top_decay(mass: float, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` events of b e+ ve (legs 2, 3, 4) with invariant mass ``mass``: three
    massless momenta balanced in the b e ve rest frame, then boosted along z."""
    p = np.zeros((n, 5, 4))
    p[:, :2] = BEAMS
    for k in range(n):
        # two random directions, the third balances; scale to the mass
        a, b = rng.normal(size=3), rng.normal(size=3)
        c = -(a + b)
        e = np.array([np.linalg.norm(a), np.linalg.norm(b), np.linalg.norm(c)])
        scale = mass / e.sum()
        q = np.column_stack([e, np.stack([a, b, c])]) * scale
        beta = rng.uniform(-0.5, 0.5)
        gamma = 1 / math.sqrt(1 - beta ** 2)
        q[:, 0], q[:, 3] = gamma * (q[:, 0] + beta * q[:, 3]), gamma * (q[:, 3] + beta * q[:, 0])
        p[k, 2:] = q
    return p


def test_resonance_window_keeps_the_decay_products_on_shell() -> None:
    top = ResonanceWindow((4, 2, 3), 173.0, 1.5, 15.0, "t")
    assert top.legs == (2, 3, 4) and (top.lower, top.upper) == (150.5, 195.5)
    cuts = Cuts((21, 21, 5, -11, 12), {}, windows=[top])
    rng = np.random.default_rng(2)
    inside = np.concatenate([_top_decay(m, rng, 20) for m in (150.6, 173.0, 195.4)])
    outside = np.concatenate([_top_decay(m, rng, 20) for m in (150.4, 100.0, 195.6, 400.0)])
    assert cuts.mask(inside).all()
    assert not cuts.mask(outside).any()
    assert cuts.windows == (top,)
    assert cuts.signature != Cuts((21, 21, 5, -11, 12), {}).signature
    assert "windows=" in repr(cuts)


def test_a_window_bounds_the_mass_of_its_products_and_what_holds_them() -> None:
    w = ResonanceWindow((2, 3), 80.4, 2.0, 15.0, "w+")
    cuts = Cuts((2, -1, -11, 12, 21), {}, windows=[w])
    masses = [0.0, 0.0, 0.0]
    assert cuts.min_mass([2, 3], masses) == pytest.approx(50.4)
    assert cuts.min_mass([2, 3, 4], masses) == pytest.approx(50.4)
    assert cuts.min_mass([3, 4], masses) == 0.0  # not the products of the window
    assert cuts.min_shat(masses) == pytest.approx(50.4 ** 2)


@pytest.mark.parametrize(("legs", "mass", "width", "bwcutoff", "match"), [
    ((2,), 91.0, 2.0, 15.0, "legs must be two or more"),
    ((2, 2), 91.0, 2.0, 15.0, "legs must be two or more"),
    ((1, 2), 91.0, 2.0, 15.0, "legs must be two or more"),
    ((2, 3), 0.0, 2.0, 15.0, "mass must be a positive finite number"),
    ((2, 3), 91.0, math.nan, 15.0, "width must be a positive finite number"),
    ((2, 3), 91.0, 2.0, -1.0, "bwcutoff must be a positive finite number"),
])
def test_bad_windows_are_refused(legs: tuple[int, ...], mass: float, width: float,
                                 bwcutoff: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ResonanceWindow(legs, mass, width, bwcutoff)


def test_a_window_on_legs_the_process_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match=r"legs \[3, 4\] outside the final state 2..3"):
        Cuts((11, -11, 13, -13), {}, windows=[ResonanceWindow((3, 4), 91.0, 2.0)])


def test_decay_products_escape_the_cuts_unless_the_window_says_so() -> None:
    """MadGraph's cut_decays = False (its default): the products of a decay chain's
    resonance are cut by nothing but the missing pT, which still sums the neutrinos."""
    pdgs = (21, 21, 5, -11, 12, 21)  # b e+ ve from the top, and a jet
    top = ResonanceWindow((2, 3, 4), 173.0, 1.5)
    p = _top_decay(173.0, np.random.default_rng(4), 200)
    p = np.concatenate([p, np.zeros((200, 1, 4))], axis=1)
    p[:, 5] = massless(30.0, 0.5, 1.0)  # the jet, recoil ignored (cuts see momenta only)
    hard = {"ptl": 500.0, "ptb": 500.0, "etal": 0.01, "drbl": 5.0, "ptj": 20.0}
    assert Cuts(pdgs, hard, windows=[top]).mask(p).all()
    assert not Cuts(pdgs, hard, windows=[ResonanceWindow((2, 3, 4), 173.0, 1.5,
                                                         cut_products=True)]).mask(p).any()
    assert not Cuts(pdgs, {**hard, "ptj": 40.0}, windows=[top]).mask(p).any()  # the jet
    missing = Cuts(pdgs, {"misset": 1e4}, windows=[top])
    assert missing.particle_classes[2:] == (None, None, "v", "j")
    assert not missing.mask(p).any()
