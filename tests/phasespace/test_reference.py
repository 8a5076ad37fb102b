"""Compiled phase-space mappings against the numpy reference (``madnis_py.phasespace.reference``).

Both state ``docs/phasespace.md`` with the same operations in the same order: on x86-64
with glibc, the reference run with glibc's exp/log/pow/tan/atan/cosh/sinh in place of
numpy's agrees with the compiled maps bit for bit. numpy's (SIMD) versions differ from
glibc's by an ulp here and there, so the comparison is to 1e-12: weights and the inverse's
weights relative, momenta relative to sqrt_s, x1x2 and the inverse's r absolute. Where a
formula amplifies that ulp beyond 1e-12 the inputs are restricted, the reason next to the
restriction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from madnis_py.phasespace import (
    Beams,
    BreitWigner,
    BreitWignerTail,
    ChannelMapping,
    Decay,
    PowerLaw,
    Propagator,
    Rambo,
    TChannel,
    Topology,
)
from madnis_py.phasespace import reference as ref
from madnis_py.phasespace.topology import (
    SAMPLER_BREIT_WIGNER,
    SAMPLER_BREIT_WIGNER_TAIL,
    SAMPLER_POWER,
)
from tests.phasespace.conftest import topologies

pytestmark = pytest.mark.filterwarnings("error")  # the reference emits no numpy warning

TOL = 1e-12
SQRT_S_LEP = 100.0
SQRT_S_HAD = 1000.0
# A massless final state at a hadron collider needs a cut on shat. 30 GeV rather than less:
# the power law of a t-channel line with offset c = m_W^2 much larger than its range
# 4 pa |p| (a light partonic system) takes (vhi^e - vlo^e) of nearly equal numbers, which
# turns one ulp of pow into ulp * c / ((1 - nu) 4 pa |p|): 2e-12 at sqrt(shat) = 10 GeV.
MIN_SHAT = 900.0
N_EVENTS = 4000
BW_Z = Propagator(91.188, 2.441404, name="Z")

# Conditioning: a mass at the top of its range (r -> 1) leaves lambda(M^2, m1^2, m2^2) of
# its parent's splitting as a difference of nearly equal numbers (one ulp of pow in s
# becomes ~ ulp / (1 - r)); shat -> S (r[0] -> 1) does the same to yhi - ylo = -log(tau);
# near the collinear edges the inverse's angles carry ulp * E / m (docs/phasespace.md,
# "Conditioning"). Inside [0.02, 0.98] one ulp stays below 1e-12 (measured: <= 3e-13).
R_LO, R_HI = 0.02, 0.98
# The hadronic inverse boosts the lab momenta into the partonic frame with cosh y, sinh y
# (numpy's and glibc's differ by an ulp). Invariant masses are taken from the lab momenta,
# but the rest-frame angles of a nearly collinear pair still move by ~ ulp * E / m, so
# 1e-12 needs the massless s-channel power laws (s ~ r^5 near 0) to keep r >= 0.2
# (measured: 4e-11 at r >= 0.02).
R_LO_HAD_INVERSE = 0.2


def _uniform(rng: np.random.Generator, n: int, dims: int, lo: float = R_LO,
             hi: float = R_HI) -> np.ndarray:
    return lo + (hi - lo) * rng.random((n, dims))


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| / |b| (0 where both are 0; inf where only b is 0)."""
    d = np.abs(a - b)
    scale = np.abs(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(d == 0, 0.0, d / scale)
    return float(rel.max(initial=0.0))


def compare_forward(mapping: ChannelMapping | Rambo, r: np.ndarray, sqrt_s: float,
                    hadronic: bool, ref_out: tuple[np.ndarray, np.ndarray, np.ndarray]
                    ) -> dict[str, float]:
    batch = mapping.map(r)
    mom, w, x12 = ref_out
    np.testing.assert_array_equal(w == 0, batch.weight == 0)
    return {"weight": max_rel(w, batch.weight),
            "momenta": float(np.abs(mom - batch.momenta).max(initial=0.0)) / sqrt_s,
            "x1x2": float(np.abs(x12 - batch.x1x2).max(initial=0.0))}


def compare_inverse(mapping: ChannelMapping, momenta: np.ndarray) -> dict[str, float]:
    r_c, w_c = mapping.inverse(momenta)
    r_p, w_p = ref.channel_inverse(mapping.program, momenta, mapping.beams.sqrt_s,
                                   mapping.beams.hadronic)
    np.testing.assert_array_equal(w_p == 0, w_c == 0)
    return {"inverse r": float(np.abs(r_p - r_c).max(initial=0.0)),
            "inverse weight": max_rel(w_p, w_c)}


def channel_diffs(topology: Topology, masses: Sequence[float], hadronic: bool, seed: int,
                  n: int = N_EVENTS, sqrt_s: float | None = None) -> dict[str, float]:
    """Largest differences between the compiled channel map and the reference."""
    if sqrt_s is None:
        sqrt_s = SQRT_S_HAD if hadronic else SQRT_S_LEP
    mapping = ChannelMapping(topology, masses, Beams(sqrt_s, hadronic))
    rng = np.random.default_rng(seed)
    r = _uniform(rng, n, mapping.dims)
    out = compare_forward(mapping, r, sqrt_s, hadronic,
                          ref.channel_forward(mapping.program, r, sqrt_s, hadronic))
    if hadronic:
        r = _uniform(rng, n, mapping.dims, lo=R_LO_HAD_INVERSE)
    batch = mapping.map(r)
    assert batch.n_outside == 0
    out.update(compare_inverse(mapping, batch.momenta))
    return out


def assert_within(diffs: dict[str, float], tol: float = TOL) -> None:
    bad = {k: v for k, v in diffs.items() if not v <= tol}
    assert not bad, f"differences above {tol}: {bad} (all: {diffs})"


def with_cut(topology: Topology, name: str, min_shat: float = MIN_SHAT) -> Topology:
    return Topology(s_channel=topology.s_channel, t_channel=topology.t_channel, name=name,
                    min_shat=min_shat)


def _massive(n: int) -> list[float]:
    masses = [0.0] * n
    masses[0], masses[-1] = 5.0, 1.5
    if n >= 4:
        masses[2] = 0.3
    return masses


# ------------------------------------------------------------------------ samplers


@pytest.mark.parametrize("sampler", [
    BreitWigner(91.188, 2.441404), BreitWigner(1.0, 0.5), PowerLaw(0.0), PowerLaw(0.5),
    PowerLaw(0.8), PowerLaw(0.8, 25.0), PowerLaw(1.0, 6464.16), PowerLaw(1.7, 3.0),
    BreitWignerTail(91.188, 2.441404), BreitWignerTail(1.0, 0.5),
])
def test_invariant_samplers(sampler: BreitWigner | BreitWignerTail | PowerLaw) -> None:
    rng = np.random.default_rng(0)
    n = 5000
    if isinstance(sampler, BreitWignerTail):
        kind, a, b = SAMPLER_BREIT_WIGNER_TAIL, sampler.mass, sampler.width
        # windows below, across and above (M + 15 G)^2, up to 150 M^2
        m2 = sampler.mass ** 2
        lo = m2 * rng.random(n) * np.where(rng.random(n) < 0.8, 0.9, 20.0)
        hi = lo + m2 * (0.2 + 150 * rng.random(n))
    elif isinstance(sampler, BreitWigner):
        kind, a, b = SAMPLER_BREIT_WIGNER, sampler.mass, sampler.width
        # Windows around or near the pole: far below it, x = M^2 + M G tan(y) cancels
        # (relative error ulp * M^2 / x with y near -pi/2).
        m2 = sampler.mass ** 2
        lo = m2 * rng.random(n) * 0.9
        hi = lo + m2 * (0.2 + 2 * rng.random(n))
    else:
        kind, a, b = SAMPLER_POWER, sampler.nu, sampler.offset
        lo = 50.0 * rng.random(n) * (sampler.nu < 1 or sampler.offset > 0)
        hi = lo + 1e4 * (0.01 + rng.random(n))
    r = rng.random(n)
    x_c, j_c = sampler.map(r, lo, hi)
    x_p, j_p = ref.invariant_forward(kind, a, b, lo, hi, r)
    r_c, ji_c = sampler.inverse(x_c, lo, hi)
    r_p, ji_p = ref.invariant_inverse(kind, a, b, lo, hi, x_c)
    assert_within({"x": max_rel(x_p, x_c), "jac": max_rel(j_p, j_c),
                   "inverse r": float(np.abs(r_p - r_c).max()),
                   "inverse jac": max_rel(ji_p, ji_c)})


# ------------------------------------------------------------------------ channels


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_every_topology(n: int, hadronic: bool) -> None:
    for name, topo in topologies(n).items():
        for masses in ([0.0] * n, _massive(n)):
            diffs = channel_diffs(with_cut(topo, name), masses, hadronic, seed=n)
            assert_within(diffs)


def _bw_topologies() -> dict[str, Topology]:
    p = Propagator()
    return {
        "Z": Topology(s_channel=Decay(BW_Z, (2, 3)), name="Z"),
        "jZ": Topology(s_channel=Decay(p, (2, Decay(BW_Z, (3, 4)))), name="jZ"),
        "ZZ": Topology(s_channel=Decay(p, (Decay(BW_Z, (2, 3)), Decay(BW_Z, (4, 5)))),
                       name="ZZ"),
        "t-Z": Topology(t_channel=TChannel((2, Decay(BW_Z, (3, 4)), 5),
                                           (Propagator(), Propagator(mass=10.0))), name="t-Z"),
    }


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
def test_breit_wigner_channels(hadronic: bool) -> None:
    # Far below its pole, with a window of (m[k] - m[other])^2 << M^2, a Breit-Wigner
    # takes x = M^2 + M G tan(y) with y near -pi/2 (one ulp of tan becomes ulp * M^2 / x)
    # and yhi - ylo of nearly equal arctans: at sqrt(shat) = 100 GeV the second Z of ZZ is
    # there. Partonic energies of at least 200 GeV keep every Z window near its pole.
    for name, topo in _bw_topologies().items():
        n = {"Z": 2, "jZ": 3, "ZZ": 4, "t-Z": 4}[name]
        diffs = channel_diffs(with_cut(topo, name, min_shat=200.0 ** 2), [0.0] * n, hadronic,
                              seed=7, sqrt_s=None if hadronic else 250.0)
        assert_within(diffs)


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
@pytest.mark.parametrize("nu", [0.0, 0.5, 0.8, 1.0])
def test_t_channel_propagators(nu: float, hadronic: bool) -> None:
    mass = 80.4 if nu >= 1 else 0.0
    props = (Propagator(mass=mass, nu=nu), Propagator(mass=3.0, nu=nu),
             Propagator(mass=mass, nu=nu))
    topo = Topology(t_channel=TChannel((2, 3, Decay(Propagator(), (4, 5)), 6), props),
                    name=f"t nu={nu}", min_shat=MIN_SHAT)
    for masses in ([0.0] * 5, [0.0, 4.7, 0.0, 0.0, 30.0]):
        diffs = channel_diffs(topo, masses, hadronic, seed=int(10 * nu))
        assert_within(diffs)


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
def test_t_channel_scales(hadronic: bool) -> None:
    """Massless lines with a scale (the cuts' pT^2) and nu >= 1: the offset is the larger
    of the scale and the mass squared, and the compiled map follows the reference."""
    props = (Propagator(nu=1.0), Propagator(mass=3.0, nu=1.2), Propagator(nu=0.8))
    topo = Topology(t_channel=TChannel((2, 3, Decay(Propagator(), (4, 5)), 6), props,
                                       (400.0, 4.0, 100.0)), name="t scales", min_shat=MIN_SHAT)
    program = ChannelMapping(topo, [0.0] * 5, Beams(SQRT_S_HAD, hadronic)).program
    t_nodes = program.int_table[:, 0] == 2
    assert program.float_table[t_nodes, 5].tolist() == [400.0, 9.0, 100.0]
    for masses in ([0.0] * 5, [0.0, 4.7, 0.0, 0.0, 30.0]):
        assert_within(channel_diffs(topo, masses, hadronic, seed=3))


def _flat_topologies() -> dict[str, Topology]:
    flat = Propagator(nu=0.0)

    def chain(legs: list[int]) -> Decay:
        return Decay(flat, (legs[0], legs[1] if len(legs) == 2 else chain(legs[1:])))

    return {
        "s-chain": Topology(s_channel=chain([2, 3, 4, 5, 6]), name="s-chain"),
        "t-chain": Topology(t_channel=TChannel((2, 3, 4, 5, 6), (flat,) * 4), name="t-chain"),
        "t3+decay": Topology(t_channel=TChannel((chain([2, 3]), 4, chain([5, 6])),
                                                (flat, Propagator(mass=80.4, nu=0.0))),
                             name="t3+decay"),
    }


@pytest.mark.parametrize("name", ["s-chain", "t-chain", "t3+decay"])
def test_edges_with_flat_samplers(name: str) -> None:
    """The whole cube, its faces included, where no transcendental function amplifies.

    With flat samplers and lepton beams the maps use sqrt (correctly rounded in both) and
    cos, sin, atan2 of the azimuth only, which no later step amplifies; so the
    cancellation-free formulas (boosts against the boost direction, t-ranges, u from
    kt^2, the collinear dot product) must agree to 1e-12 up to the collinear edges that the
    other tests keep away from. Points that the edges put outside (r = 0 of a massless
    pair's mass, r = 1 of a mass at its upper bound) are outside in both.
    """
    rng = np.random.default_rng(11)
    for masses in ([0.0] * 5, [5.0, 0.0, 0.3, 0.0, 1.5]):
        mapping = ChannelMapping(_flat_topologies()[name], masses, Beams(SQRT_S_LEP))
        r = rng.random((N_EVENTS, mapping.dims))
        edge = rng.random(r.shape) < 0.3
        r[edge] = rng.choice([0.0, 1.0, 1e-12, 1 - 1e-12, 1e-7, 1 - 1e-7], size=int(edge.sum()))
        diffs = compare_forward(mapping, r, SQRT_S_LEP, False,
                                ref.channel_forward(mapping.program, r, SQRT_S_LEP, False))
        batch = mapping.map(r)
        inside = batch.weight > 0
        assert 0.5 * N_EVENTS < inside.sum() < N_EVENTS
        diffs.update(compare_inverse(mapping, batch.momenta[inside]))
        assert_within(diffs)


# ------------------------------------------------------------------------ RAMBO


RAMBO_CASES = [([0.0] * 2, False), ([0.0] * 5, False), ([1.0, 2.0, 3.0, 50.0], False),
               ([0.0, 0.0, 4.7, 20.0, 30.0], False), ([0.0] * 3, True),
               ([10.0, 20.0, 30.0], True), ([0.0, 173.0, 173.0, 0.0], True)]


def rambo_diffs(masses: list[float], hadronic: bool, seed: int,
                n: int = N_EVENTS) -> dict[str, float]:
    sqrt_s = SQRT_S_HAD if hadronic else SQRT_S_LEP
    min_shat = MIN_SHAT if hadronic else 0.0
    rambo = Rambo(masses, Beams(sqrt_s, hadronic), min_shat=min_shat)
    r = np.random.default_rng(seed).random((n, rambo.dims))
    if hadronic:
        # The luminosity's edges: shat -> S makes yhi - ylo = -log(tau) of tau -> 1 (one
        # ulp of exp in shat becomes ulp / (1 - tau)), shat -> (sum m)^2 puts the massive
        # final state at rest. The rest of RAMBO's cube maps regularly.
        r[:, 0] = R_LO + (R_HI - R_LO) * r[:, 0]
    return compare_forward(rambo, r, sqrt_s, hadronic,
                           ref.rambo_forward(masses, r, sqrt_s, hadronic, min_shat=min_shat))


@pytest.mark.parametrize("masses,hadronic", RAMBO_CASES)
def test_rambo(masses: list[float], hadronic: bool) -> None:
    assert_within(rambo_diffs(masses, hadronic, seed=len(masses)))


# ------------------------------------------------------------------------ outside points


def _spoil(r: np.ndarray) -> np.ndarray:
    """Every other event gets a NaN, a negative or a too-large coordinate."""
    r = r.copy()
    r[0::6, -1] = np.nan
    r[1::6, 0] = -1e-9
    r[2::6, r.shape[1] // 2] = 1.0 + 1e-9
    return r


def _assert_identical_zeros(w_c: np.ndarray, w_p: np.ndarray, expected: np.ndarray,
                            *pairs: tuple[np.ndarray, np.ndarray]) -> None:
    np.testing.assert_array_equal(w_c == 0, expected)
    np.testing.assert_array_equal(w_p == 0, expected)
    for a, b in pairs:
        assert np.all(a[expected] == 0) and np.all(b[expected] == 0)


CUT = Topology(s_channel=Decay(Propagator(), (Decay(Propagator(), (2, 3), min_mass=30.0), 4)),
               name="cut", min_shat=MIN_SHAT)


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
def test_outside_points_forward(hadronic: bool) -> None:
    rng = np.random.default_rng(3)
    sqrt_s = SQRT_S_HAD if hadronic else SQRT_S_LEP
    beams = Beams(sqrt_s, hadronic)
    spoiled = np.arange(600) % 6 < 3
    for mapping in (ChannelMapping(with_cut(topologies(4)["t3+decay"], "t3"), [0.0] * 4, beams),
                    ChannelMapping(CUT, [0.0] * 3, beams)):
        r = _spoil(_uniform(rng, 600, mapping.dims))
        batch = mapping.map(r)
        mom, w, x12 = ref.channel_forward(mapping.program, r, sqrt_s, hadronic)
        _assert_identical_zeros(batch.weight, w, spoiled, (batch.momenta, mom),
                                (batch.x1x2, x12))
        assert_within(compare_forward(mapping, r, sqrt_s, hadronic, (mom, w, x12)))
    rambo = Rambo([0.0, 4.7, 0.0], beams, min_shat=MIN_SHAT)
    r = _spoil(rng.random((600, rambo.dims)))
    batch = rambo.map(r)
    mom, w, x12 = ref.rambo_forward([0.0, 4.7, 0.0], r, sqrt_s, hadronic, min_shat=MIN_SHAT)
    _assert_identical_zeros(batch.weight, w, spoiled, (batch.momenta, mom), (batch.x1x2, x12))


@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
def test_outside_points_inverse(hadronic: bool) -> None:
    """Non-finite momenta, x1 > 1 (hadron beams) and foreign events (RAMBO) whose pair mass
    lies below the channel's cut (r < 0) are outside in both."""
    sqrt_s = SQRT_S_HAD if hadronic else SQRT_S_LEP
    beams = Beams(sqrt_s, hadronic)
    rambo = Rambo([0.0] * 3, beams, min_shat=MIN_SHAT)
    mom = rambo.map(np.random.default_rng(4).random((600, rambo.dims))).momenta
    pair = mom[:, 2] + mom[:, 3]
    below_cut = pair[:, 0] ** 2 - (pair[:, 1:] ** 2).sum(axis=1) < 30.0 ** 2
    mom[0::5, 3, 1] = np.nan
    mom[1::5, 4, 0] = np.inf
    if hadronic:
        mom[2::5, 0, 0] = 0.5 * sqrt_s * (1 + 1e-9)
    spoiled = np.arange(600) % 5 < (3 if hadronic else 2)
    assert 10 < np.sum(below_cut & ~spoiled) < 300
    mapping = ChannelMapping(CUT, [0.0] * 3, beams)
    r_c, w_c = mapping.inverse(mom)
    r_p, w_p = ref.channel_inverse(mapping.program, mom, sqrt_s, hadronic)
    _assert_identical_zeros(w_c, w_p, spoiled | below_cut, (r_c, r_p))
    if not hadronic:  # RAMBO events come with collinear pairs: see R_LO_HAD_INVERSE
        assert_within(compare_inverse(mapping, mom))


# ---- helicity-frame s-node decays (the compiled map's; z-axis angles for comparison) -------

@pytest.mark.parametrize("hadronic", [False, True], ids=["lepton", "hadron"])
@pytest.mark.parametrize("name", ["s-chain", "s-tree", "t+decay", "t3+decay"])
def test_helicity_frame_decays(name: str, hadronic: bool) -> None:
    """``helicity=True`` rotates every s-node's decay so that its polar angle is measured
    from the node's direction of flight: the same weight at the same r (the isotropic
    density does not see the axis), the same invariants, ``cos theta_hel = 2 r - 1``
    exactly, an inverse that recovers r, and the same weight as the z-axis map at the
    same momenta (the density of an event does not depend on the axis either)."""
    masses = _massive(5)
    topo = with_cut(topologies(5)[name], name) if hadronic else topologies(5)[name]
    sqrt_s = SQRT_S_HAD if hadronic else SQRT_S_LEP
    program = ChannelMapping(topo, masses, Beams(sqrt_s, hadronic)).program
    r = _uniform(np.random.default_rng(11), N_EVENTS, 3 * 5 - 4 + 2 * hadronic)
    mom_z, w_z, x_z = ref.channel_forward(program, r, sqrt_s, hadronic, helicity=False)
    mom_h, w_h, x_h = ref.channel_forward(program, r, sqrt_s, hadronic)
    assert np.all(w_z > 0)
    np.testing.assert_array_equal(w_h, w_z)
    np.testing.assert_array_equal(x_h, x_z)
    assert np.abs(mom_h - mom_z).max() > 0.1 * sqrt_s  # the rotation does something
    np.testing.assert_allclose(mom_h[:, 2:].sum(axis=1), mom_h[:, :2].sum(axis=1),
                               rtol=0, atol=1e-12 * sqrt_s)
    np.testing.assert_allclose((mom_h[..., 0] ** 2 - (mom_h[..., 1:] ** 2).sum(-1))[:, 2:],
                               np.broadcast_to(np.square(masses), (N_EVENTS, 5)),
                               rtol=0, atol=1e-9 * sqrt_s ** 2)
    r_back, w_back = ref.channel_inverse(program, mom_h, sqrt_s, hadronic)
    lo = R_LO_HAD_INVERSE if hadronic else R_LO
    inner = np.all((r > lo) & (r < R_HI), axis=1)
    assert inner.sum() > 100
    assert np.abs(r_back - r)[inner].max() < 1e-9
    assert max_rel(w_back[inner], w_h[inner]) < 1e-9
    _, w_other_axis = ref.channel_inverse(program, mom_h, sqrt_s, hadronic, helicity=False)
    assert max_rel(w_other_axis[inner], w_h[inner]) < 1e-9


def test_helicity_angle_is_measured_from_the_flight_direction() -> None:
    """q q~ > (Z > e+ e-) g at fixed masses: in the Z rest frame the e+ makes the angle
    arccos(2 r - 1) with the Z's direction of flight."""
    topo = Topology(s_channel=Decay(Propagator(), (Decay(BW_Z, (2, 3)), 4)), name="Zg")
    program = ChannelMapping(topo, [0.0] * 3, Beams(SQRT_S_LEP)).program
    r = _uniform(np.random.default_rng(5), N_EVENTS, 5)
    mom, w, _ = ref.channel_forward(program, r, SQRT_S_LEP, False)
    compiled = ChannelMapping(topo, [0.0] * 3, Beams(SQRT_S_LEP)).map(r).momenta
    np.testing.assert_allclose(compiled, mom, rtol=0, atol=1e-9 * SQRT_S_LEP)
    z = mom[:, 2] + mom[:, 3]
    mz = np.sqrt(z[:, 0] ** 2 - (z[:, 1:] ** 2).sum(-1))
    rest = np.stack(ref._boost(tuple(z.T), mz, tuple(mom[:, 2].T), 0.0, -1.0), axis=1)
    flight = z[:, 1:] / np.linalg.norm(z[:, 1:], axis=1, keepdims=True)
    cos = (rest[:, 1:] * flight).sum(-1) / np.linalg.norm(rest[:, 1:], axis=1)
    # r columns: m_Z (0), then the root's angles (1, 2), then the Z's (3, 4)
    np.testing.assert_allclose(cos, 2 * r[:, 3] - 1, rtol=0, atol=1e-12)
