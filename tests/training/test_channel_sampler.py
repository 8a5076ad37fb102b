"""Each channel's sampler (base map + flow + defensive mixture) and the one weighted-batch
primitive built on it: densities in the integrand's coordinates, weights computed once,
and checkpoints of the version before the samplers (commit 8e04772) still loading."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.flows import Flow
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import ChannelSampler, Integrator

DATA = Path(__file__).parent / "data"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the flows' initialisation


@pytest.fixture(scope="module")
def vegas_trained() -> Integrator:
    torch.manual_seed(0)
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=1, mixture=0.25,
                    flow_options={"bins": 8})
    mc.pretrain_vegas(nitn=4, neval=4000)
    mc.train(10, batch=1024)
    return mc


def test_density_is_the_latent_density_over_the_map_jacobian(
        vegas_trained: Integrator) -> None:
    gen = torch.Generator().manual_seed(2)
    for sampler in vegas_trained.samplers:
        assert sampler.base is not None
        d = sampler.sample(2000, gen)
        # q(x) evaluated from x (through the inverse VEGAS map) is the density drawn with
        with torch.no_grad():
            log_q = sampler.log_prob(d.x)
        np.testing.assert_allclose(log_q.numpy(), d.log_q.numpy(), rtol=0, atol=1e-9)
        np.testing.assert_allclose(sampler.to_latent(d.x)[0].numpy(), d.z.numpy(),
                                   rtol=0, atol=1e-12)
        # q integrates to one over the integrand's unit square (flat points, mean of q)
        u = torch.rand(400_000, 2, dtype=torch.float64, generator=gen)
        with torch.no_grad():
            q = sampler.log_prob(u).exp()
        assert abs(float(q.mean()) - 1) < 5 * float(q.std()) / math.sqrt(len(q))


def test_the_mixture_bounds_the_weight_by_the_base_map(vegas_trained: Integrator) -> None:
    """q >= lambda q_base = lambda / |dV/dz|: no weight exceeds the VEGAS map's by more
    than 1 / lambda, however poorly the flow covers a region."""
    mc = vegas_trained
    toy = RidgeAndPeak()
    for s in mc.sample(20_000):
        # the points are in the integrand's own coordinates: f there is the f weighed
        f, features, prior = toy(s.x, s.channel)
        assert torch.equal(f, s.f)
        alpha = mc.weights(features, prior, mc._active())[:, s.channel]
        base_weight = alpha * f * s.log_jac.exp()  # alpha f / q_base
        assert bool((s.weight <= base_weight / 0.25 * (1 + 1e-12)).all())
        assert bool((s.log_q.exp() >= 0.25 * (-s.log_jac).exp() * (1 - 1e-12)).all())


def test_without_base_map_and_mixture_the_sampler_is_the_flow() -> None:
    flow = Flow(3, bins=4)
    sampler = ChannelSampler(flow)
    d = sampler.sample(100, torch.Generator().manual_seed(5))
    x, log_q = flow.sample(100, generator=torch.Generator().manual_seed(5))
    assert torch.equal(d.x, x) and torch.equal(d.z, x) and torch.equal(d.log_q, log_q)
    assert torch.equal(d.log_jac, torch.zeros(100, dtype=torch.float64))
    off = ChannelSampler(flow, use_flow=False)
    d = off.sample(100, torch.Generator().manual_seed(5))
    assert torch.equal(d.log_q, torch.zeros(100, dtype=torch.float64))
    with pytest.raises(ValueError, match="mixture"):
        ChannelSampler(flow, mixture=1.0)


def test_random_batch_weighs_every_event_once(vegas_trained: Integrator) -> None:
    mc = vegas_trained
    n = 5000
    batch = mc.random_batch(n)
    w, channels = batch.weights(), batch.channels()
    assert len(w) == len(channels) == len(batch.points()) == n
    for s in batch.samples:
        n_i = len(s.weight)
        np.testing.assert_array_equal(s.event_weight.numpy(), s.weight.numpy() * (n / n_i))
        np.testing.assert_array_equal(w[channels == s.channel], s.event_weight.numpy())
    # the mean event weight is the sum of the channels' estimates I_i
    total = sum(float(s.weight.mean()) for s in batch.samples)
    assert abs(float(w.mean()) - total) < 1e-12 * total
    counts = np.array([1000, 4000])
    fixed = mc.random_batch(n, counts=counts)
    assert [len(s.x) for s in fixed.samples] == [1000, 4000]
    with pytest.raises(ValueError, match="counts sum to 4999"):
        mc.random_batch(n, counts=np.array([999, 4000]))


def test_use_flow_is_the_samplers_flag() -> None:
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=0)
    mc.use_flow = [False, True]
    assert [s.use_flow for s in mc.samplers] == [False, True] == mc.use_flow
    with pytest.raises(ValueError, match="2 flags"):
        mc.use_flow = [True]


def test_a_checkpoint_of_the_wrapped_integrand_version_still_loads() -> None:
    """Written by commit 8e04772 (VEGAS as a wrapper of the integrand, points in the
    map's coordinates): the same latent points and weights come out (to rounding: the
    fused coupling kernel sums the subnet's products in another order than torch)."""
    old = np.load(DATA / "vegas_mixture_8e04772_samples.npz")
    mc = Integrator.load(DATA / "vegas_mixture_8e04772.pt", RidgeAndPeak())
    assert mc.config["mixture"] == 0.2 and mc.steps_done == 5
    assert all(s.base is not None for s in mc.samplers)
    for s in mc.sample(300):
        np.testing.assert_allclose(s.z.numpy(), old[f"x{s.channel}"], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(s.weight.numpy(), old[f"w{s.channel}"], rtol=1e-13)


# --------------------------------------------------------------------------- defences


def _shrunk_map():
    """A 2-D VEGAS map with one increment shrunk to 1e-4 of the interval (what a poorly
    sampled adaptation leaves), and a plain one."""
    import vegas

    edges = np.concatenate([np.linspace(0.0, 0.5, 6), [0.5001], np.linspace(0.6, 1.0, 5)])
    edges[7] = 0.6  # increments: 5 of 0.1, one of 1e-4, one of 0.0999, 4 of 0.1
    edges = np.unique(edges)
    return vegas.AdaptiveMap([edges, np.linspace(0.0, 1.0, len(edges))])


def test_floored_map_is_the_mixed_density_and_bounds_the_jacobian() -> None:
    from madnis_py.training.channel_sampler import floored_map

    vmap = _shrunk_map()
    assert floored_map(vmap, 0.0) is vmap
    floor = 0.3
    new = floored_map(vmap, floor)
    old_edges = np.asarray(vmap.extract_grid()[0])
    n = len(old_edges) - 1
    # Its increments' edges are the k/n quantiles of (1 - floor) p + floor: the mixed CDF,
    # evaluated on the old map at the new edges, is k/n exactly.
    z_old = np.empty((n + 1, 2))
    jac = np.empty(n + 1)
    edges = np.asarray(new.extract_grid()[0])
    vmap.invmap(np.stack([edges, np.full(n + 1, 0.5)], axis=1), z_old, jac)
    cdf = (1 - floor) * z_old[:, 0] + floor * edges
    np.testing.assert_allclose(cdf, np.arange(n + 1) / n, rtol=0, atol=1e-12)
    # and the Jacobian never exceeds 1 / floor: the density is >= floor everywhere, also
    # in the increment the old map had shrunk to 1e-4
    z = np.random.default_rng(0).random((200_000, 2))
    x = np.empty_like(z)
    j = np.empty(len(z))
    new.map(z, x, j)
    assert j.max() <= 1 / floor * (1 + 1e-12)
    # the density 1 / jac integrates to one (flat points in x, through the inverse map)
    u = np.random.default_rng(1).random((400_000, 2))
    zz = np.empty_like(u)
    jj = np.empty(len(u))
    new.invmap(u, zz, jj)
    q = 1 / jj
    assert abs(q.mean() - 1) < 5 * q.std() / math.sqrt(len(q))
    with pytest.raises(ValueError, match="floor"):
        floored_map(vmap, 1.0)


def test_pretrain_vegas_floors_the_map_and_refuses_a_bad_floor_first() -> None:
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=1)
    with pytest.raises(ValueError, match="floor"):
        mc.pretrain_vegas(nitn=2, neval=500, floor=-0.1)
    assert mc.n_calls == 0 and all(s.base is None for s in mc.samplers)
    floor = 0.25
    res = mc.pretrain_vegas(nitn=4, neval=4000, floor=floor)
    z = torch.rand(50_000, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for s in mc.samplers:
        _, log_jac = s.to_integrand(z)
        assert float(log_jac.max()) <= 2 * math.log(1 / floor) + 1e-12
    # the VEGAS estimate is unaffected and exact within its error
    exact = RidgeAndPeak().exact
    assert abs(res.value - exact) < 5 * res.error


def test_uniform_mixture_density_and_weight_bound() -> None:
    """q = [(1 - lambda - mu) q_flow + lambda] / |dV/dz| + mu in the integrand's coordinates:
    normalised, drawn with that share of uniform points, recomputed from x alone, and no
    weight above alpha f / mu."""
    torch.manual_seed(0)
    lam, mu = 0.1, 0.2
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=4, mixture=lam, uniform_mixture=mu,
                    flow_options={"bins": 8})
    mc.pretrain_vegas(nitn=4, neval=4000, floor=0.0)
    mc.train(5, batch=1024)
    gen = torch.Generator().manual_seed(6)
    for sampler in mc.samplers:
        d = sampler.sample(20_000, gen)
        with torch.no_grad():
            np.testing.assert_allclose(sampler.log_prob(d.x).numpy(), d.log_q.numpy(),
                                       rtol=0, atol=1e-9)
            assert bool((d.log_q.exp() >= mu * (1 - 1e-12)).all())
            u = torch.rand(400_000, 2, dtype=torch.float64, generator=gen)
            q = sampler.log_prob(u).exp()
        assert abs(float(q.mean()) - 1) < 5 * float(q.std()) / math.sqrt(len(q))
    toy = RidgeAndPeak()
    for s in mc.sample(20_000):
        f, features, prior = toy(s.x, s.channel)
        alpha = mc.weights(features, prior, mc._active())[:, s.channel]
        assert bool((s.weight <= alpha * f / mu * (1 + 1e-12)).all())
    with pytest.raises(ValueError, match="uniform_mixture"):
        Integrator(RidgeAndPeak(), feature_dims=2, mixture=0.5, uniform_mixture=0.5)


def test_uniform_mixture_zero_keeps_the_random_stream() -> None:
    """mu = 0 draws exactly what the sampler drew before the option existed."""
    flow = Flow(2, bins=4)
    a = ChannelSampler(flow, mixture=0.3).sample(500, torch.Generator().manual_seed(9))
    b = ChannelSampler(flow, mixture=0.3, uniform_mixture=0.0).sample(
        500, torch.Generator().manual_seed(9))
    assert torch.equal(a.x, b.x) and torch.equal(a.log_q, b.log_q)


@pytest.mark.parametrize("ninc", [(50, 50, 50), (7, 50, 1)])
def test_base_map_on_host_points_is_the_grid_map(ninc: tuple[int, ...]) -> None:
    """On the CPU the base map is vegas' own compiled map and inverse (GridMap's torch
    elsewhere): the same points and log Jacobians to rounding; a grid whose dimensions
    have different numbers of increments (whose inverse vegas gets wrong) stays on
    GridMap."""
    import vegas

    from madnis_py.training.channel_sampler import GridMap

    rng = np.random.default_rng(3)
    grids = [np.concatenate([[0.0], np.sort(rng.uniform(0, 1, n - 1)) ** 2, [1.0]])
             for n in ninc]
    sampler = ChannelSampler(Flow(3), base=vegas.AdaptiveMap(grids))
    assert sampler._host_vegas == (len(set(ninc)) == 1)
    grid = GridMap(grids)
    y = torch.from_numpy(rng.random((4000, 3)))
    y[0] = torch.tensor([0.0, 1.0, 0.5])
    x, log_jac = sampler.to_integrand(y)
    want_x, want_jac = grid.map(y)
    torch.testing.assert_close(x, want_x, rtol=1e-13, atol=1e-15)
    torch.testing.assert_close(log_jac, want_jac, rtol=1e-12, atol=1e-13)
    back, log_jac_back = sampler.to_latent(x)
    torch.testing.assert_close(back, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(log_jac_back, log_jac, rtol=1e-12, atol=1e-12)
    empty, empty_jac = sampler.to_integrand(torch.zeros(0, 3, dtype=torch.float64))
    assert empty.shape == (0, 3) and empty_jac.shape == (0,)
