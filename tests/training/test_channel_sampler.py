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
    map's coordinates): the same latent points and weights come out."""
    old = np.load(DATA / "vegas_mixture_8e04772_samples.npz")
    mc = Integrator.load(DATA / "vegas_mixture_8e04772.pt", RidgeAndPeak())
    assert mc.config["mixture"] == 0.2 and mc.steps_done == 5
    assert all(s.base is not None for s in mc.samplers)
    for s in mc.sample(300):
        np.testing.assert_array_equal(s.z.numpy(), old[f"x{s.channel}"])
        np.testing.assert_allclose(s.weight.numpy(), old[f"w{s.channel}"], rtol=1e-13)
