"""Compiled phase-space mappings against exact volumes, kinematics, round trips and
finite-difference Jacobians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madnis_py.phasespace import (
    Beams,
    ChannelMapping,
    Decay,
    Propagator,
    Rambo,
    TChannel,
    Topology,
    TopologyError,
)
from tests.phasespace.conftest import massless_volume, s_chain, topologies, two_body_volume

SQRT_S = 100.0
S = SQRT_S ** 2


def mc_mean(w: np.ndarray) -> tuple[float, float]:
    return float(w.mean()), float(w.std() / math.sqrt(len(w)))


def check_kinematics(mom: np.ndarray, masses: list[float]) -> None:
    """Momentum conservation and on-shell masses to 1e-9 of the event's energy scale."""
    scale = mom[:, :2, 0].sum(axis=1)
    total_in = mom[:, 0] + mom[:, 1]
    total_out = mom[:, 2:].sum(axis=1)
    assert np.all(np.abs(total_out - total_in).max(axis=1) <= 1e-9 * scale)
    p2 = mom[..., 0] ** 2 - (mom[..., 1:] ** 2).sum(axis=-1)
    m2 = np.array([0.0, 0.0, *[m * m for m in masses]])
    assert np.all(np.abs(p2 - m2) <= 1e-9 * scale[:, None] ** 2)
    assert np.all(mom[..., 0] >= 0)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_rambo_massless_weight_is_the_exact_volume(n: int) -> None:
    rng = np.random.default_rng(n)
    rambo = Rambo([0.0] * n, Beams(SQRT_S))
    batch = rambo.map(rng.random((2000, rambo.dims)))
    np.testing.assert_allclose(batch.weight, massless_volume(n, S), rtol=1e-12, atol=0)
    check_kinematics(batch.momenta, [0.0] * n)


@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_every_channel_type_reproduces_the_massless_volume(n: int) -> None:
    rng = np.random.default_rng(10 + n)
    exact = massless_volume(n, S)
    for name, topo in topologies(n).items():
        mapping = ChannelMapping(topo, [0.0] * n, Beams(SQRT_S))
        assert mapping.dims == 3 * n - 4
        batch = mapping.map(rng.random((100_000, mapping.dims)))
        assert batch.n_outside == 0
        mean, err = mc_mean(batch.weight)
        assert abs(mean - exact) <= max(4 * err, 1e-12 * exact), (name, mean / exact, err / exact)
        check_kinematics(batch.momenta, [0.0] * n)


@pytest.mark.parametrize("masses", [(10.0, 20.0), (91.188, 0.0), (0.0, 49.0)])
def test_massive_two_body_volume(masses: tuple[float, float]) -> None:
    rng = np.random.default_rng(2)
    exact = two_body_volume(S, *masses)
    r = rng.random((50_000, 2))
    s_ch = ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3))), masses, Beams(SQRT_S))
    np.testing.assert_allclose(s_ch.map(r).weight, exact, rtol=1e-12)
    t_ch = ChannelMapping(Topology(t_channel=TChannel((2, 3), (Propagator(mass=5.0, nu=1.2),))),
                          masses, Beams(SQRT_S))
    batch = t_ch.map(r)
    mean, err = mc_mean(batch.weight)
    assert abs(mean - exact) < 4 * err
    check_kinematics(batch.momenta, list(masses))
    rambo = Rambo(masses, Beams(SQRT_S)).map(rng.random((2000, 8)))
    np.testing.assert_allclose(rambo.weight, exact, rtol=1e-12)


def test_massive_three_body_volume_agrees_between_rambo_and_channels() -> None:
    # No closed form: two independent generators of the same massive volume.
    rng = np.random.default_rng(3)
    masses = [173.0, 173.0, 0.0]
    beams = Beams(500.0)
    rambo = Rambo(masses, beams).map(rng.random((200_000, 12)))
    check_kinematics(rambo.momenta, masses)
    mean_r, err_r = mc_mean(rambo.weight)
    for topo in (Topology(s_channel=Decay(Propagator(), (2, Decay(Propagator(173.0, 1.5), (3, 4))))),
                 Topology(t_channel=TChannel((2, 4, 3), (Propagator(173.0), Propagator())))):
        batch = ChannelMapping(topo, masses, beams).map(rng.random((200_000, 5)))
        check_kinematics(batch.momenta, masses)
        mean, err = mc_mean(batch.weight)
        assert abs(mean - mean_r) < 4 * math.hypot(err, err_r)


def test_hadronic_two_body_volume_matches_quadrature() -> None:
    # E[w] = int dx1 dx2 Phi_2(x1 x2 S) over x1 x2 S > (m1 + m2)^2.
    from scipy import integrate

    m1, m2, sqrt_s = 80.0, 91.0, 1000.0
    thr = (m1 + m2) ** 2 / sqrt_s ** 2
    inner = integrate.quad(lambda tau: -math.log(tau) * two_body_volume(tau * sqrt_s ** 2, m1, m2),
                           thr, 1.0, epsabs=0, epsrel=1e-12, limit=200)[0]
    rng = np.random.default_rng(4)
    for topo in (Topology(s_channel=Decay(Propagator(), (2, 3))),
                 Topology(s_channel=Decay(Propagator(500.0, 50.0), (2, 3))),
                 Topology(t_channel=TChannel((2, 3), (Propagator(80.0),)))):
        mapping = ChannelMapping(topo, [m1, m2], Beams(sqrt_s, hadronic=True))
        assert mapping.dims == 4
        batch = mapping.map(rng.random((200_000, 4)))
        mean, err = mc_mean(batch.weight)
        assert abs(mean - inner) < 4 * err
        x12 = batch.x1x2
        np.testing.assert_allclose(batch.momenta[:, 0, 0], x12[:, 0] * sqrt_s / 2, rtol=1e-14)
        np.testing.assert_allclose(batch.momenta[:, 1, 0], x12[:, 1] * sqrt_s / 2, rtol=1e-14)
        check_kinematics(batch.momenta, [m1, m2])


@pytest.mark.parametrize("hadronic", [False, True])
@pytest.mark.parametrize("n", [2, 3, 4, 5])
def test_round_trip_and_inverse_weight(n: int, hadronic: bool) -> None:
    # Away from the collinear edges (r in [0.02, 0.98]) every node has E/m < 1e6, where
    # double-precision momenta carry the rest-frame angles to 1e-9 (docs/phasespace.md).
    rng = np.random.default_rng(20 + n)
    masses = [0.0] * (n - 1) + [5.0]
    for name, topo in topologies(n).items():
        topo = Topology(s_channel=topo.s_channel, t_channel=topo.t_channel, name=name,
                        min_shat=100.0)
        mapping = ChannelMapping(topo, masses, Beams(1000.0 if hadronic else SQRT_S, hadronic))
        r = 0.02 + 0.96 * rng.random((20_000, mapping.dims))
        batch = mapping.map(r)
        assert batch.n_outside == 0
        back, w = mapping.inverse(batch.momenta)
        diff = np.abs(back - r)
        diff = np.minimum(diff, 1 - diff)  # azimuths wrap around
        assert diff.max() < 1e-9, (name, diff.max())
        np.testing.assert_allclose(w, batch.weight, rtol=1e-9, err_msg=name)


def test_breit_wigner_channel_round_trip_and_kinematics() -> None:
    rng = np.random.default_rng(5)
    z = Propagator(91.188, 2.441404, name="Z")
    topo = Topology(t_channel=TChannel((2, Decay(z, (3, 4))), (Propagator(),)), min_shat=100.0)
    mapping = ChannelMapping(topo, [0.0, 0.000511, 0.000511], Beams(SQRT_S * 5, hadronic=True))
    r = 0.02 + 0.96 * rng.random((20_000, mapping.dims))
    batch = mapping.map(r)
    check_kinematics(batch.momenta, [0.0, 0.000511, 0.000511])
    back, w = mapping.inverse(batch.momenta)
    assert np.abs(back - r).max() < 1e-9
    np.testing.assert_allclose(w, batch.weight, rtol=1e-9)


# ---- Jacobians by finite differences ------------------------------------------------


def phase_space_coordinates(mom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates y = (p_1 .. p_{n-2}, cos theta_{n-1}, phi_{n-1}) of the final state
    (partonic frame) and the flat density dPhi_n / d^(3n-4)y."""
    p = mom[:, 2:]
    n = p.shape[1]
    e = p[..., 0]
    pv = p[..., 1:]
    last = pv[:, n - 2]
    pabs = np.linalg.norm(last, axis=1)
    cos = last[:, 2] / pabs
    phi = np.arctan2(last[:, 1], last[:, 0])
    y = np.concatenate([pv[:, : n - 2].reshape(len(p), -1), cos[:, None], phi[:, None]], axis=1)
    dens = (2 * np.pi) ** (4 - 3 * n) / np.prod(2 * e[:, : n - 2], axis=1) if n > 2 else \
        (2 * np.pi) ** (4 - 3 * n) * np.ones(len(p))
    dedp = pabs / e[:, n - 2] - (pv[:, n - 1] * last).sum(axis=1) / pabs / e[:, n - 1]
    dens = dens * pabs ** 2 / (4 * e[:, n - 2] * e[:, n - 1] * np.abs(dedp))
    return y, dens


@pytest.mark.parametrize("n", [2, 3, 4])
def test_weight_equals_finite_difference_jacobian(n: int) -> None:
    rng = np.random.default_rng(30 + n)
    masses = [0.0] * (n - 1) + [7.0]
    h = 1e-6
    for name, topo in topologies(n).items():
        mapping = ChannelMapping(topo, masses, Beams(SQRT_S))
        r = 0.1 + 0.8 * rng.random((20, mapping.dims))
        w = mapping.map(r).weight
        y0, dens = phase_space_coordinates(mapping.map(r).momenta)
        jac = np.empty((len(r), mapping.dims, mapping.dims))
        for j in range(mapping.dims):
            step = np.zeros(mapping.dims)
            step[j] = h
            yp, _ = phase_space_coordinates(mapping.map(r + step).momenta)
            ym, _ = phase_space_coordinates(mapping.map(r - step).momenta)
            d = yp - ym
            d[:, -1] = (d[:, -1] + np.pi) % (2 * np.pi) - np.pi  # the azimuth wraps
            jac[:, :, j] = d / (2 * h)
        np.testing.assert_allclose(w, dens * np.abs(np.linalg.det(jac)), rtol=1e-6,
                                   err_msg=name)


def test_luminosity_weight_equals_finite_difference_jacobian() -> None:
    rng = np.random.default_rng(6)
    beams = Beams(13000.0, hadronic=True)
    mapping = ChannelMapping(Topology(s_channel=Decay(Propagator(91.188, 2.44), (2, 3))),
                             [0.0, 0.0], beams)
    lepton = ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3))), [0.0, 0.0],
                            Beams(1.0))
    r = 0.1 + 0.8 * rng.random((20, 4))
    batch = mapping.map(r)
    h = 1e-7
    jac = np.empty((20, 2, 2))
    for j in range(2):
        step = np.zeros(4)
        step[j] = h
        jac[:, :, j] = (mapping.map(r + step).x1x2 - mapping.map(r - step).x1x2) / (2 * h)
    # weight = dx1 dx2/dr * Phi_2 density (massless: 1/(8 pi) per unit r of the angles)
    phi2 = lepton.map(r[:, 2:]).weight
    np.testing.assert_allclose(batch.weight, np.abs(np.linalg.det(jac)) * phi2, rtol=1e-6)


# ---- bad input ----------------------------------------------------------------------


def test_points_outside_get_zero_weight_and_are_counted() -> None:
    mapping = ChannelMapping(topologies(3)["t+decay"], [0.0] * 3, Beams(SQRT_S))
    r = np.full((4, 5), 0.5)
    r[1, 2] = np.nan
    r[2, 0] = 1.5
    r[3, 4] = -0.1
    batch = mapping.map(r)
    assert batch.n_outside == 3
    assert batch.weight[0] > 0 and np.all(batch.weight[1:] == 0)
    assert np.all(np.isfinite(batch.momenta)) and np.all(batch.momenta[1:] == 0)
    assert (mapping.n_points, mapping.n_outside) == (4, 3)
    rambo = Rambo([0.0] * 3, Beams(SQRT_S))
    rb = rambo.map(np.where(np.isnan(np.pad(r, ((0, 0), (0, 7)), constant_values=0.3)), np.nan,
                            np.pad(r, ((0, 0), (0, 7)), constant_values=0.3)))
    assert rb.n_outside == 3 and np.all(np.isfinite(rb.weight))


@pytest.mark.parametrize("hadronic", [False, True])
def test_an_empty_batch_maps_to_empty_arrays(hadronic: bool) -> None:
    """No points in, no points out (the shape check once divided by the batch size: a
    floating-point exception that killed the process)."""
    beams = Beams(13000.0 if hadronic else SQRT_S, hadronic)
    topo = topologies(3)["t+decay"]
    topo = type(topo)(s_channel=topo.s_channel, t_channel=topo.t_channel, name="t+decay",
                      min_shat=100.0)
    mapping = ChannelMapping(topo, [0.0] * 3, beams)
    batch = mapping.map(np.zeros((0, mapping.dims)))
    assert batch.momenta.shape == (0, 5, 4) and batch.weight.shape == (0,)
    assert batch.x1x2.shape == (0, 2) and batch.n_outside == 0
    r, w = mapping.inverse(batch.momenta)
    assert r.shape == (0, mapping.dims) and w.shape == (0,)
    rambo = Rambo([0.0] * 3, beams, min_shat=100.0 if hadronic else 0.0)
    assert rambo.map(np.zeros((0, rambo.dims))).weight.shape == (0,)
    with pytest.raises(ValueError, match="expected shape"):
        mapping.map(np.zeros((0, mapping.dims + 1)))


def test_inverse_of_foreign_momenta_is_zero_weight() -> None:
    mapping = ChannelMapping(Topology(s_channel=s_chain([2, 3, 4])), [0.0, 10.0, 10.0],
                             Beams(SQRT_S))
    batch = mapping.map(np.full((2, 5), 0.4))
    mom = batch.momenta.copy()
    mom[0, 2, 0] = np.nan
    mom[1, 3:] = mom[1, 3:] * 10.0  # invariant mass of (3, 4) above the range
    r, w = mapping.inverse(mom)
    assert np.all(w == 0) and np.all(r == 0)


def test_topology_errors_name_the_channel_and_particle() -> None:
    beams = Beams(SQRT_S)
    with pytest.raises(TopologyError, match=r"channel ww: .*particle\(s\) \[4\].*not attached"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3)), name="ww"),
                       [0.0] * 3, beams)
    with pytest.raises(TopologyError, match="particle 3 appears twice"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (3, 3))), [0.0] * 2, beams)
    with pytest.raises(TopologyError, match="refers to particle 7"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 7))), [0.0] * 2, beams)
    with pytest.raises(TopologyError, match="3 blocks needs 2 propagators"):
        ChannelMapping(Topology(t_channel=TChannel((2, 3, 4), (Propagator(),))), [0.0] * 3, beams)
    with pytest.raises(TopologyError, match="propagator g .*massless with nu = 1.0"):
        ChannelMapping(Topology(t_channel=TChannel((2, 3), (Propagator(nu=1.0, name="g"),))),
                       [0.0] * 2, beams)
    with pytest.raises(TopologyError, match="s-channel propagator a .*min_mass"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, Decay(Propagator(nu=1, name="a"),
                                                                       (3, 4))))),
                       [0.0] * 3, beams)
    with pytest.raises(TopologyError, match="needs a lower cut"):
        ChannelMapping(Topology(t_channel=TChannel((2, 3), (Propagator(),))), [0.0] * 2,
                       Beams(SQRT_S, hadronic=True))
    with pytest.raises(TopologyError, match="exactly one of"):
        Topology()
    with pytest.raises(ValueError, match="below the threshold 200.0 GeV"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3))), [100.0, 100.0], beams)
    with pytest.raises(ValueError, match="mass of particle 3 must be finite"):
        ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3))), [1.0, math.nan], beams)
    with pytest.raises(TopologyError, match="width must be a finite number"):
        Propagator(91.0, -1.0)


def test_input_errors_name_the_argument() -> None:
    mapping = ChannelMapping(Topology(s_channel=Decay(Propagator(), (2, 3))), [0.0, 0.0],
                             Beams(SQRT_S))
    with pytest.raises(ValueError, match=r"r: expected shape \(n, 2\)"):
        mapping.map(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="r: expected dtype float64"):
        mapping.map(np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="Beams.sqrt_s"):
        Beams(-1.0)


def test_torch_cpu_tensors_give_the_numpy_result() -> None:
    mapping = ChannelMapping(topologies(4)["t3+decay"], [0.0] * 4, Beams(SQRT_S))
    r = np.random.default_rng(7).random((100, mapping.dims))
    a = mapping.map(r)
    b = mapping.map(torch.from_numpy(r))
    assert isinstance(b.momenta, torch.Tensor)
    np.testing.assert_array_equal(a.momenta, b.momenta.numpy())
    np.testing.assert_array_equal(a.weight, b.weight.numpy())


def test_threads_give_identical_results() -> None:
    topo = topologies(4)["s-tree"]
    r = np.random.default_rng(8).random((10_000, 8))
    one = ChannelMapping(topo, [0.0] * 4, Beams(SQRT_S), threads=1).map(r)
    two = ChannelMapping(topo, [0.0] * 4, Beams(SQRT_S), threads=2).map(r)
    np.testing.assert_array_equal(one.momenta, two.momenta)
    np.testing.assert_array_equal(one.weight, two.weight)


def test_off_shell_z_channel_covers_the_region_of_its_photon_twin() -> None:
    # e+ e- -> mu+ mu- a at 1 TeV: diagram 8 (initial-state photon, Z* -> mu mu) and its
    # photon twin (diagram 7). Above m_mumu = 500 GeV the Z* still carries ~ 10 % of |M|^2
    # (the channel prior gives its channel alpha ~ 0.1 there), but a pure Breit-Wigner made
    # the Z channel's density 1/2500 of the photon channel's: its weights reached 130x the
    # mean. With the 1/s tail the two differ by a bounded factor.
    beams = Beams(1000.0)

    def channel(prop: Propagator) -> ChannelMapping:
        chain = TChannel((Decay(prop, (2, 3)), 4), (Propagator(name="e-"),))
        return ChannelMapping(Topology(t_channel=chain), [0.0, 0.0, 0.0], beams)

    z = channel(Propagator(91.188, 2.441404, name="Z"))
    photon = channel(Propagator(name="a"))
    batch = photon.map(np.random.default_rng(11).random((20_000, photon.dims)))
    q = batch.momenta[:, 2] + batch.momenta[:, 3]
    m_mumu = np.sqrt(np.maximum(q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(axis=1), 0.0))
    far = (batch.weight > 0) & (m_mumu > 500.0)
    assert far.sum() > 1000
    _, w_z = z.inverse(batch.momenta[far])
    ratio = batch.weight[far] / w_z  # g_Z / g_photon
    assert ratio.min() > 1 / 30


def _mass2(p: np.ndarray) -> np.ndarray:
    return p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(axis=-1)


def test_daughters_never_outweigh_their_parents() -> None:
    """e+ e- > mu+ mu- vm vm~ (found on its MadGraph output): on the channel Z > (vm* >
    (W+ > mu+ vm) mu-) vm~, where the massless vm* takes a mass of a few MeV, the W's
    range lies 1e-10 GeV^2 wide far below its pole; the Breit-Wigner lost it to
    cancellation, sampled the W heavier than its parent, and the vm~ came out with a
    negative energy (down to -160 GeV in 4e5 points), which the matrix element answered
    with NaN. Every point inside now has energies >= 0 and each pair below its parent,
    compiled and reference alike."""
    from madnis_py.phasespace import reference

    topo = Topology.from_dict({"s_channel": {
        "propagator": {"mass": 91.188, "width": 2.441404, "name": "z"},
        "decay": [{"propagator": {"name": "vm"},
                   "decay": [{"propagator": {"mass": 80.419, "width": 2.0476, "name": "w+"},
                              "decay": [2, 4]}, 3]}, 5]}})
    mapping = ChannelMapping(topo, [0.0] * 4, Beams(1000.0, False))
    x = np.random.default_rng(1).random((400_000, mapping.dims))
    mapped = mapping.map(x)
    for mom, w in ((mapped.momenta, mapped.weight),
                   reference.channel_forward(mapping.program, x[:100_000], 1000.0, False)[:2]):
        mom, w = np.asarray(mom), np.asarray(w)
        inside = w > 0
        assert inside.mean() > 0.99
        p = mom[inside]
        assert (p[:, 2:, 0] >= 0).all()
        # masses squared from the momenta: rounding of (500 GeV)^2 terms, 1e-9 s apart
        w_pair = _mass2(p[:, 2] + p[:, 4])
        vm_star = _mass2(p[:, 2] + p[:, 3] + p[:, 4])
        assert (w_pair <= vm_star + 1e-9 * 1000.0 ** 2).all()
