"""Mapping limits from the cuts: the bounds never cut an event the cuts keep, are reached
by events that pass, and a card limit tighter than the cuts is an error."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from madnis_py.phasespace import (
    Beams,
    CutCoverageError,
    Cuts,
    Decay,
    Propagator,
    Rambo,
    TChannel,
    Topology,
    fit_to_cuts,
)
from madnis_py.phasespace.coverage import products_mass, t_channel_scales

DY = [2, -2, -11, 11]
WJ = [2, -1, -11, 12, 21]
ZZ4L = [21, 21, -11, 11, -13, 13]
PHOTON = Topology(s_channel=Decay(Propagator(name="a"), (2, 3), min_mass=50.0), name="photon")
W = Propagator(80.419, 2.0476, name="W+")
WJET = Topology(t_channel=TChannel((4, Decay(W, (2, 3))), (Propagator(name="q"),)),
                name="g from beam 1", min_shat=1600.0)


def _mass2(p: np.ndarray) -> np.ndarray:
    return np.asarray(p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(axis=-1))


@pytest.mark.parametrize(("pdgs", "masses", "cuts"), [
    (DY, [0.0, 0.0], {"ptl": 10.0, "etal": 2.5}),
    (WJ, [0.0, 0.0, 0.0], {"ptj": 20.0, "ptl": 10.0, "misset": 15.0}),
    (WJ, [0.0, 0.0, 0.0], {"ptj": 5.0, "ptl": 30.0}),
    ([21, 21, 6, -6, 21], [173.0, 173.0, 0.0], {"ptj": 50.0}),
    (ZZ4L, [0.0] * 4, {"ptl": 15.0, "mmll": 40.0}),
    ([21, 2, -11, 11, 2], [0.0] * 3, {"ptj": 20.0, "ptl": 10.0, "drll": 0.4, "drjl": 0.4}),
    (ZZ4L, [0.0] * 4, {"ptl": 5.0, "drll": 1.0}),
])
def test_bounds_hold_for_every_event_that_passes(pdgs: list[int], masses: list[float],
                                                 cuts: dict[str, float]) -> None:
    """Flat events (RAMBO, not a channel map) that pass the cuts all lie above the bounds,
    and the smallest of them come close: the bounds are neither wrong nor loose."""
    c = Cuts(pdgs, cuts)
    shat_min = c.min_shat(masses)
    sqrt_s = 1.5 * math.sqrt(shat_min) + sum(masses)
    rambo = Rambo(masses, Beams(sqrt_s))
    mom = rambo.map(np.random.default_rng(7).random((400_000, rambo.dims))).momenta
    ok = c.mask(mom)
    assert ok.sum() > 1000
    shat = _mass2(mom[ok, 0] + mom[ok, 1])
    assert shat.min() >= shat_min * (1 - 1e-12)
    n = len(masses)
    for size in range(2, n + 1):
        for legs in [list(range(2, 2 + size)), list(range(n + 2 - size, n + 2))]:
            bound = c.min_mass(legs, masses)
            m = np.sqrt(np.maximum(_mass2(mom[ok][:, legs].sum(axis=1)), 0))
            assert m.min() >= bound * (1 - 1e-12), (legs, m.min(), bound)


def test_pt_balance_bounds_shat() -> None:
    """ptj > 20 GeV alone: the gluon's pT is balanced by the lepton pair, sqrt(s) >= 40;
    an event at exactly that energy passes."""
    c = Cuts(WJ, {"ptj": 20.0, "ptl": 10.0})
    assert c.min_shat([0.0] * 3) == pytest.approx(1600.0, rel=1e-15)
    # e+ and ve collinear with pT 10 each, the gluon with 20 opposite, all at eta = 0.
    event = np.array([[[20, 0, 0, 20], [20, 0, 0, -20], [10, 10, 0, 0], [10, 10, 0, 0],
                       [20, -20, 0, 0]]], dtype=float)
    assert c.mask(event).tolist() == [True]
    assert Cuts(DY, {"ptl": 10.0}).min_shat([0.0, 0.0]) == pytest.approx(400.0)
    # Massive: two tops and a 50 GeV jet: 50 + sqrt((2 mt)^2 + 50^2) > 2 mt + 50.
    top = Cuts([21, 21, 6, -6, 21], {"ptj": 50.0}).min_shat([173.0, 173.0, 0.0])
    assert math.sqrt(top) == pytest.approx(50 + math.hypot(346.0, 50.0), rel=1e-14)
    # A single neutrino's pT is the missing pT.
    assert Cuts(WJ, {"misset": 30.0}).min_shat([0.0] * 3) == pytest.approx(3600.0)


def test_pair_mass_bounds() -> None:
    c = Cuts(ZZ4L, {"mmll": 40.0})
    assert c.pair_mass_cuts() == {(2, 3): ("mmll", 40.0), (4, 5): ("mmll", 40.0)}
    assert c.min_mass([2, 3], [0.0] * 4) == 40.0
    assert c.min_mass([2, 4], [0.0] * 4) == 0.0  # e+ mu+: not a same-flavour pair
    assert c.min_mass([2, 3, 4], [0.0] * 4) == 40.0
    assert c.min_mass([2, 3, 4, 5], [0.0] * 4) == 80.0  # two pairs at once
    assert Cuts(DY, {"mmll": 100.0, "mmllmax": 80.0}).pair_mass_cuts() == {}  # a veto
    assert Cuts([-11, 11, 1, -1, 21], {"mmjj": 10.0}).min_mass([2, 4], [0.0] * 3) == 10.0
    with pytest.raises(ValueError, match="legs"):
        c.min_mass([1, 2], [0.0] * 4)


def test_pt_and_delta_r_bound_pair_masses() -> None:
    """Two massless particles with pT >= a_i, a_j and Delta R >= R: m^2 >= 2 a_i a_j
    (1 - cos R), reached by a pair at eta = 0 with d_phi = R, which passes."""
    pdgs = [21, 2, -11, 11, 2]
    c = Cuts(pdgs, {"ptj": 20.0, "ptl": 10.0, "drll": 0.4, "drjl": 0.5})
    ll = math.sqrt(200 * (1 - math.cos(0.4)))
    jl = math.sqrt(400 * (1 - math.cos(0.5)))
    assert c.pair_mass_bounds([0.0] * 3) == {
        (2, 3): (("drll", "ptl"), pytest.approx(ll, rel=1e-15)),
        (2, 4): (("drjl", "ptj", "ptl"), pytest.approx(jl, rel=1e-15)),
        (3, 4): (("drjl", "ptj", "ptl"), pytest.approx(jl, rel=1e-15))}
    assert c.min_mass([2, 3], [0.0] * 3) == pytest.approx(ll, rel=1e-15)
    def at(pt_: float, phi_: float) -> list[float]:
        return [pt_, pt_ * math.cos(phi_), pt_ * math.sin(phi_), 0.0]
    # e+ e- at the bound (the jet far away in phi, balancing nothing: only the pair counts)
    up = 1 + 1e-12  # above the cuts despite the rounding of cos and sin
    event = np.array([[[50, 0, 0, 50], [50, 0, 0, -50], at(10 * up, 0.0),
                       at(10 * up, 0.4 * up), at(21.0, 2.0)]])
    assert c.mask(event).tolist() == [True]
    assert math.sqrt(_mass2(event[0, 2] + event[0, 3])) == pytest.approx(ll, rel=1e-9)
    # a massive pair, no pT cut on one of them, or R beyond pi (capped at pi)
    assert c.min_mass([2, 3], [0.0, 1.0, 0.0]) == 1.0
    assert Cuts(pdgs, {"ptl": 10.0, "drll": 0.4}).min_mass([2, 4], [0.0] * 3) == 0.0
    assert Cuts(pdgs, {"ptl": 10.0, "drll": 4.0}).min_mass([2, 3], [0.0] * 3) == \
        pytest.approx(20.0, rel=1e-15)
    # an mmll cut above the bound wins, below it not
    assert Cuts(pdgs, {"ptl": 10.0, "drll": 0.4, "mmll": 5.0}).pair_mass_bounds(
        [0.0] * 3)[2, 3] == (("mmll",), 5.0)
    assert Cuts(pdgs, {"ptl": 10.0, "drll": 0.4, "mmll": 3.0}).min_mass([2, 3], [0.0] * 3) \
        == pytest.approx(ll, rel=1e-15)


def test_t_channel_scales_follow_the_cuts() -> None:
    """Each line's scale is the smaller pT demand of the two blocks it joins, squared (the
    loosest subprocess counts); scales the card gives are kept."""
    (wjet,) = fit_to_cuts([WJET], [Cuts(WJ, {"ptj": 30.0, "ptl": 10.0})], [0.0] * 3,
                          hadronic=True)
    assert wjet.t_channel is not None and wjet.t_channel.scales == (100.0,)  # e+ ve: 10 + 0
    (wjet,) = fit_to_cuts([WJET], [Cuts(WJ, {"ptj": 30.0, "ptl": 25.0, "misset": 20.0}),
                                   Cuts(WJ, {"ptj": 20.0, "ptl": 40.0, "misset": 20.0})],
                          [0.0] * 3, hadronic=True)
    assert wjet.t_channel is not None and wjet.t_channel.scales == (400.0,)  # 30^2, 20^2
    chain = Topology(t_channel=TChannel((2, 4, 3), (Propagator(), Propagator())), name="c")
    (fitted,) = fit_to_cuts([chain], [Cuts(WJ, {"ptj": 20.0, "ptl": 10.0})], [0.0] * 3,
                            hadronic=True)
    assert fitted.t_channel is not None and fitted.t_channel.scales == (100.0, 0.0)
    given = replace(WJET, t_channel=replace(WJET.t_channel, scales=(7.0,)))
    (kept,) = fit_to_cuts([given], [Cuts(WJ, {"ptj": 30.0})], [0.0] * 3, hadronic=True)
    assert kept.t_channel is not None and kept.t_channel.scales == (7.0,)
    assert t_channel_scales((2, 3), [Cuts(DY, {})]) == (0.0,)


def test_products_mass_follows_poles_and_pt_cuts() -> None:
    """An s-channel root's products mass: resonances at their poles (or their products'
    if heavier), other decays at their products' (at least their min_mass), particles at
    their transverse mass at the pT minimum; the loosest subprocess counts; only with
    hadron beams, and a value the card gives is kept."""
    z = Propagator(91.188, 2.441404, name="Z")
    vbf = [2, -2, -11, 11, 2, -2]
    cuts = Cuts(vbf, {"ptj": 20.0, "ptl": 10.0})
    # u u~ > Z* > (u~* > Z u~) u: 91.188 + 20 + 20
    zuu = Topology(s_channel=Decay(z, (Decay(Propagator(name="u~"), (Decay(z, (2, 3)), 5)),
                                       4)), name="Z* > u~* u")
    (fitted,) = fit_to_cuts([zuu], [cuts], [0.0] * 4, hadronic=True)
    assert fitted.products_mass == pytest.approx(131.188, rel=1e-12)
    assert fitted.s_channel is not None
    assert products_mass(fitted.s_channel, [cuts], [0.0] * 4) == fitted.products_mass
    # u d~ > W+* > Z W+: both at their poles (the W's jets, 40 GeV, are lighter)
    (wz,) = fit_to_cuts([replace(zuu, s_channel=Decay(W, (Decay(z, (2, 3)), Decay(W, (4, 5)))))],
                        [cuts], [0.0] * 4, hadronic=True)
    assert wz.products_mass == pytest.approx(91.188 + 80.419, rel=1e-12)
    # jets of 50 GeV: the W's products outweigh its pole; a massive leg: its transverse mass
    (heavy,) = fit_to_cuts([wz], [Cuts(vbf, {"ptj": 50.0, "ptl": 10.0})], [0.0] * 4,
                           hadronic=True)
    assert heavy.products_mass == wz.products_mass  # given: kept
    (heavy,) = fit_to_cuts([replace(wz, products_mass=0.0)], [Cuts(vbf, {"ptj": 50.0})],
                           [0.0] * 4, hadronic=True)
    assert heavy.products_mass == pytest.approx(91.188 + 100.0, rel=1e-12)
    top = Topology(s_channel=Decay(Propagator(name="g"), (2, 3)), name="g > t t~")
    (tt,) = fit_to_cuts([top], [Cuts([21, 21, 6, -6], {"ptj": 30.0})], [173.0, 173.0],
                        hadronic=True)
    assert tt.products_mass == 2 * 173.0  # the cut is on jets, not on the tops
    (bb,) = fit_to_cuts([top], [Cuts([21, 21, 5, -5], {"ptb": 30.0})], [4.7, 4.7],
                        hadronic=True)
    assert bb.products_mass == pytest.approx(2 * math.hypot(4.7, 30.0), rel=1e-12)
    # the loosest cuts of the subprocesses count; lepton beams: unknown
    (loose,) = fit_to_cuts([zuu], [cuts, Cuts(vbf, {"ptj": 10.0})], [0.0] * 4, hadronic=True)
    assert loose.products_mass == pytest.approx(111.188, rel=1e-12)
    (lepton,) = fit_to_cuts([zuu], [cuts], [0.0] * 4, hadronic=False)
    assert lepton.products_mass == 0.0


def test_first_t_line_is_above_the_pt_cut() -> None:
    """|t| = |(p_a - k)^2| >= pT(k)^2 for a massless k and either beam (the bound behind
    the first line's scale): flat events, the closest come within a few per cent."""
    rambo = Rambo([0.0] * 3, Beams(200.0))
    mom = rambo.map(np.random.default_rng(3).random((200_000, rambo.dims))).momenta
    c = Cuts(WJ, {"ptj": 20.0})
    ok = c.mask(mom)
    for beam in (0, 1):
        t = -_mass2(mom[ok, beam] - mom[ok, 4])
        ratio = t / (mom[ok, 4, 1] ** 2 + mom[ok, 4, 2] ** 2)
        assert ratio.min() >= 1 - 1e-12
        assert ratio.min() < 1.05


def test_looser_card_limits_follow_the_cuts() -> None:
    loose = Topology(s_channel=Decay(Propagator(name="a"), (2, 3), min_mass=5.0), name="a")
    for cut, expected in ((30.0, 30.0), (0.0, 20.0)):
        (fitted,) = fit_to_cuts([loose], [Cuts(DY, {"ptl": 10.0, "mmll": cut})],
                                [0.0, 0.0], hadronic=True)
        assert fitted.s_channel is not None
        assert fitted.s_channel.min_mass == expected
        assert fitted.min_shat == expected ** 2
    (wjet,) = fit_to_cuts([WJET], [Cuts(WJ, {"ptj": 30.0, "ptl": 10.0})], [0.0] * 3,
                          hadronic=True)
    assert wjet.min_shat == 3600.0
    # Several subprocesses: the loosest cuts decide (mmll has no e+ e- pair in the second).
    mixed = [Cuts(DY, {"mmll": 60.0}), Cuts([2, -2, -11, 13], {"mmll": 60.0, "ptl": 3.0})]
    (both,) = fit_to_cuts([replace(loose, s_channel=Decay(Propagator(), (2, 3)))], mixed,
                          [0.0, 0.0], hadronic=True)
    assert both.s_channel is not None and both.s_channel.min_mass == 6.0
    with pytest.raises(CutCoverageError, match=r"down to 6 GeV \(cuts ptl = 3 in "
                       r"subprocess \[2, -2, -11, 13\]\)"):
        fit_to_cuts([PHOTON], mixed[::-1], [0.0, 0.0], hadronic=True)


def test_lepton_beams_leave_the_root_alone() -> None:
    """With lepton beams the root's mass is sqrt(s): no limit to fit; inner decays are."""
    topo = Topology(s_channel=Decay(Propagator(name="Z"), (Decay(Propagator(name="q"), (2, 4)),
                                                           3)), name="Z, g from q")
    (fitted,) = fit_to_cuts([topo], [Cuts([-11, 11, 1, -1, 21], {"mmjj": 10.0})],
                            [0.0] * 3, hadronic=False)
    assert fitted.s_channel is not None
    assert fitted.s_channel.min_mass == 0.0
    inner = fitted.s_channel.daughters[0]
    assert isinstance(inner, Decay) and inner.min_mass == 10.0


def test_tighter_card_mass_limit_names_channel_and_cut() -> None:
    with pytest.raises(CutCoverageError, match=r"card.toml: channel 'photon': "
                       r"s_channel.min_mass = 50 GeV .* m\(2, 3\) of propagator a down to "
                       r"20 GeV \(cuts mmll = 10, ptl = 10\)"):
        fit_to_cuts([PHOTON], [Cuts(DY, {"ptl": 10.0, "etal": 2.5, "mmll": 10.0})],
                    [0.0, 0.0], hadronic=True, card="card.toml")
    with pytest.raises(CutCoverageError, match="down to 0 GeV \\(no cut bounds it"):
        fit_to_cuts([PHOTON], [Cuts(DY, {})], [0.0, 0.0], hadronic=True)
    inner = Topology(s_channel=Decay(Propagator(), (Decay(Propagator(name="q"), (2, 4),
                                                          min_mass=20.0), 3)), name="q")
    with pytest.raises(CutCoverageError, match=r"channel 'q': s_channel.decay\[0\].min_mass"
                       r" = 20 GeV .*m\(2, 4\).*down to 10 GeV \(cuts mmjj = 10\)"):
        fit_to_cuts([inner], [Cuts([-11, 11, 1, -1, 21], {"mmjj": 10.0})], [0.0] * 3,
                    hadronic=False)
    # Equal to the cut (as written in a card) is not tighter.
    fit_to_cuts([PHOTON], [Cuts(DY, {"mmll": 50.0})], [0.0, 0.0], hadronic=True)


def test_tighter_card_min_shat_names_channel_and_cut() -> None:
    with pytest.raises(CutCoverageError, match=r"channel 'g from beam 1': min_shat = 1600 "
                       r"GeV\^2 .*partonic s down to 400 GeV\^2 \(cuts ptj = 10, ptl = 10\)"):
        fit_to_cuts([WJET], [Cuts(WJ, {"ptj": 10.0, "ptl": 10.0, "etal": 2.5})], [0.0] * 3,
                    hadronic=True)
    # With lepton beams min_shat is no limit (the partonic energy is not sampled).
    fit_to_cuts([WJET], [Cuts(WJ, {})], [0.0] * 3, hadronic=False)
