"""The multi-channel integrator on a toy with an exact integral and on Drell-Yan + Z'."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.plots import plot_history
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator, allocate


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_toy_integral_and_learned_channel_weights_beat_the_prior() -> None:
    toy = RidgeAndPeak()
    results = {}
    for trainable in (False, True):
        mc = Integrator(toy, feature_dims=2, trainable_weights=trainable, seed=3,
                        flow_options={"bins": 16})
        mc.train(150, batch=2048)
        r = mc.integrate(200_000)
        assert abs(r.value - toy.exact) < 3 * r.error, (trainable, r, toy.exact)
        assert r.n_calls == 200_000 and sum(r.channel_points) == 200_000
        results[trainable] = r
    # learnt alphas (jointly with the flows) against alpha = prior with the same flows
    assert results[True].rel_std < 0.7 * results[False].rel_std, results


def test_one_seed_is_one_run_whatever_torchs_global_state() -> None:
    """The seed fixes the initial flows and channel weights too (not torch's global
    generator, which the integrator leaves as it was)."""
    toy = RidgeAndPeak()
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        before = torch.random.get_rng_state()
        mc = Integrator(toy, feature_dims=2, seed=4, flow_options={"bins": 8})
        assert torch.equal(torch.random.get_rng_state(), before)
        mc.train(3, batch=256)
        runs.append((mc.integrate(2000).value,
                     [p.detach().clone() for p in (*mc.flows.parameters(),
                                                   *mc.weights.parameters())]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    other = Integrator(toy, feature_dims=2, seed=5, flow_options={"bins": 8})
    fresh = Integrator(toy, feature_dims=2, seed=4, flow_options={"bins": 8})
    assert not all(torch.equal(a, b) for a, b in zip(
        fresh.flows.parameters(), other.flows.parameters(), strict=True))


def test_each_channels_alpha_and_its_gradient_are_its_column_of_alpha() -> None:
    """The channel weights of a step are evaluated once on all channels' points and each
    point takes its channel's column (one gather, not one slice per channel): the values
    and the gradients of the network are those of the columns taken one by one."""
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=6, flow_options={"bins": 4})
    samples = mc.sample(600)
    rows = [(st.channel, st.features, st.prior) for st in samples]
    assert len(rows) == 2 and mc.weights.network_runs(rows[0][1])
    params = list(mc.weights.parameters())
    own = mc._own_alphas(rows)
    (torch.cat(own) ** 2).sum().backward()
    grads = [p.grad.clone() for p in params]
    mc.weights.zero_grad()
    prior = torch.cat([mc.weights.dense(st.prior, st.channel) for st in samples])
    alpha = mc.weights(torch.cat([st.features for st in samples]), prior, mc._active())
    columns = []
    start = 0
    for st in samples:
        columns.append(alpha[start:start + len(st.x), st.channel])
        start += len(st.x)
    (torch.cat(columns) ** 2).sum().backward()
    for got, want in zip(own, columns, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    for got, p in zip(grads, params, strict=True):
        torch.testing.assert_close(got, p.grad, rtol=1e-15, atol=0)


def test_pulls_are_honest_over_seeds() -> None:
    toy = RidgeAndPeak()
    pulls = []
    for seed in range(20):
        mc = Integrator(toy, feature_dims=2, seed=seed)
        mc.train(15, batch=1024)
        r = mc.integrate(20_000)
        pulls.append((r.value - toy.exact) / r.error)
    pulls_arr = np.array(pulls)
    assert abs(pulls_arr.mean()) < 0.5, pulls
    assert 0.6 <= pulls_arr.std() <= 1.5, pulls


def test_drell_yan_with_zprime_three_channels_against_quadrature() -> None:
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.physics import read_slha
    from tests.test_integrand import drell_yan_quadrature

    integrand = Integrand("zprime", sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0})
    assert integrand.n_channels == 3
    card = read_slha(integrand.process.param_card)
    zprime = (card.mass(32), card.width(32),
              card.get("zprime", 1) * card.get("zprime", 2))
    exact = drell_yan_quadrature(13000.0, 50.0, integrand.pdf, zprime)
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=2)
    mc.train(40, batch=2048)
    r = mc.integrate(200_000)
    assert r.error < 3e-3 * r.value
    assert abs(r.value - exact) < 3 * r.error, (r, exact)


def test_checkpoint_round_trip_gives_identical_next_samples(tmp_path: Path) -> None:
    toy = RidgeAndPeak()
    mc = Integrator(toy, feature_dims=2, seed=4)
    mc.train(5, batch=512)
    mc.save(tmp_path / "run.pt")
    after = mc.sample(1000)
    resumed = Integrator(toy, feature_dims=2, seed=99)
    resumed.load_state(tmp_path / "run.pt")
    again = resumed.sample(1000)
    assert resumed.steps_done == 5
    for a, b in zip(after, again, strict=True):
        assert a.channel == b.channel
        assert torch.equal(a.x, b.x) and torch.equal(a.weight, b.weight)


def test_allocation_follows_sigmas_with_a_floor() -> None:
    counts = allocate(1000, np.array([3.0, 1.0, 0.0]), min_fraction=0.3)
    assert counts.sum() == 1000 and counts[2] == 100
    assert counts[0] > counts[1] > counts[2]
    np.testing.assert_array_equal(allocate(10, np.array([np.nan, np.nan])), [5, 5])


@pytest.mark.parametrize("bad, why", [(math.nan, "NaN"), (math.inf, "diverges"),
                                      (-1.0, "negative weights are not supported")])
def test_bad_integrand_values_are_refused(bad: float, why: str) -> None:
    from madnis_py.training import IntegrandError

    toy = RidgeAndPeak()

    def broken(x: torch.Tensor, channel: int):
        f, y, prior = toy(x, channel)
        f = f.clone()
        f[3::50] = bad
        return f, y, prior

    broken.n_channels = 2  # type: ignore[attr-defined]
    broken.dims = toy.dims  # type: ignore[attr-defined]
    mc = Integrator(broken, feature_dims=2, seed=5)  # type: ignore[arg-type]
    with pytest.raises(IntegrandError, match=f"channel 0: 10 of 500 .* point 3, .*{why}"):
        mc.train(3, batch=1000)
    with pytest.raises(IntegrandError, match=why):
        mc.integrate(1000)


def test_bad_values_of_channels_evaluated_together_name_their_channel() -> None:
    """An integrand that evaluates all channels of a batch in one call
    (``evaluate_channels``): one check of all values, the channel at fault named."""
    from madnis_py.training import IntegrandError

    toy = RidgeAndPeak()

    class Together:
        n_channels = 2
        dims = staticmethod(toy.dims)

        def __call__(self, x: torch.Tensor, channel: int):  # type: ignore[no-untyped-def]
            return self.evaluate_channels([(x, channel)])[0]

        def evaluate_channels(self, batches):  # type: ignore[no-untyped-def]
            out = []
            for x, channel in batches:
                f, y, prior = toy(x, channel)
                if channel == 1:
                    f = f.clone()
                    f[7] = -2.0
                out.append((f, y, prior))
            return out

    mc = Integrator(Together(), feature_dims=2, seed=5)  # type: ignore[arg-type]
    with pytest.raises(IntegrandError, match="channel 1: 1 of .* point 7, .*negative"):
        mc.random_batch(1000)


def test_vegas_pretraining_is_reported_and_unbiased(tmp_path: Path) -> None:
    toy = RidgeAndPeak()
    mc = Integrator(toy, feature_dims=2, seed=6)
    vegas_only = mc.pretrain_vegas(nitn=6, neval=10_000)
    assert abs(vegas_only.value - toy.exact) < 3 * vegas_only.error
    assert vegas_only.n_calls == mc.n_calls > 0
    mc.train(30, batch=1024)
    flags = mc.select_flows(5_000)
    assert len(flags) == 2
    r = mc.integrate(100_000)
    assert abs(r.value - toy.exact) < 3 * r.error
    # the VEGAS grids travel with the checkpoint
    mc.save(tmp_path / "vegas.pt")
    first = mc.sample(500)
    other = Integrator(toy, feature_dims=2, seed=0)
    other.load_state(tmp_path / "vegas.pt")
    assert other.use_flow == mc.use_flow
    for a, b in zip(first, other.sample(500), strict=True):
        assert torch.equal(a.weight, b.weight)


class _WithDeadChannel:
    """The toy plus a third channel (channel 1's map again) that the prior never uses."""

    n_channels = 3

    def __init__(self) -> None:
        self.toy = RidgeAndPeak()

    def dims(self, channel: int) -> int:
        return 2

    def __call__(self, x: torch.Tensor, channel: int):
        f, y, prior = self.toy(x, min(channel, 1))
        return f, y, torch.cat([prior, torch.zeros(len(x), 1, dtype=x.dtype)], dim=1)


def test_a_channel_without_share_is_dropped() -> None:
    integrand = _WithDeadChannel()
    mc = Integrator(integrand, feature_dims=2, seed=7, warmup=2, drop_patience=3)
    with pytest.warns(UserWarning, match="dropping channel 2"):
        mc.train(8, batch=1024)
    assert mc.active.tolist() == [True, True, False]
    r = mc.integrate(60_000)
    assert r.channel_points[-1] == 0 or len(r.channel_points) == 2
    assert abs(r.value - integrand.toy.exact) < 3 * r.error


def test_zero_integral_is_a_clear_error() -> None:
    toy = RidgeAndPeak()

    def nothing(x: torch.Tensor, channel: int):
        f, y, prior = toy(x, channel)
        return torch.zeros_like(f), y, prior

    nothing.n_channels = 2  # type: ignore[attr-defined]
    nothing.dims = toy.dims  # type: ignore[attr-defined]
    mc = Integrator(nothing, feature_dims=2, seed=8)  # type: ignore[arg-type]
    with pytest.raises(ZeroDivisionError, match="integrand is zero on all"):
        mc.train(1, batch=256)
    with pytest.raises(ZeroDivisionError, match="the integral is zero"):
        mc.integrate(1000)


def test_iterations_chi2_unweighting_efficiency_and_history(tmp_path: Path) -> None:
    toy = RidgeAndPeak()
    mc = Integrator(toy, feature_dims=2, seed=9)
    mc.train(20, batch=1024, progress=True)
    r = mc.integrate(60_000, iterations=4)
    assert abs(r.value - toy.exact) < 3 * r.error
    assert 0 < r.eps_uw <= r.eps_uw_quantile <= 1
    assert r.chi2_dof < 5
    assert "eps_uw" in str(r) and "chi2/dof" in str(r)
    mc.save_history(tmp_path / "history.json")
    plot_history(mc.history, tmp_path / "history.png")  # madnis_py.plots draws it
    assert (tmp_path / "history.png").stat().st_size > 0
    import json

    h = json.loads((tmp_path / "history.json").read_text())
    assert len(h["loss"]) == 20 and len(h["fractions"][0]) == 2
    assert len(h["eps_uw"]) == 20 and all(0 < e <= 1 for e in h["eps_uw"])
    # the batches' unweighting efficiency improves with training
    assert np.mean(h["eps_uw"][-5:]) > np.mean(h["eps_uw"][:3])
    assert (tmp_path / "history.png").stat().st_size > 1000


def test_buffered_steps_reuse_samples_without_new_calls() -> None:
    toy = RidgeAndPeak()
    plain = Integrator(toy, feature_dims=2, seed=10)
    plain.train(40, batch=1024)
    buffered = Integrator(toy, feature_dims=2, seed=10)
    buffered.train(40, batch=1024, buffered_steps=3, buffer_batches=4)
    assert buffered.n_calls == plain.n_calls == 40 * 1024
    r_plain = plain.integrate(100_000)
    r_buf = buffered.integrate(100_000)
    assert abs(r_buf.value - toy.exact) < 3 * r_buf.error
    # four optimisation steps per batch of calls learn more from the same calls
    assert r_buf.rel_std < r_plain.rel_std


def test_load_builds_the_integrator_from_the_checkpoint(tmp_path: Path) -> None:
    mc = Integrator("ee_mumu", seed=11, warmup=1, flow_options={"bins": 8})
    mc.train(3, batch=512)
    mc.save(tmp_path / "ee.pt")
    resumed = Integrator.load(tmp_path / "ee.pt")
    assert resumed.steps_done == 3 and resumed.config == mc.config
    a, b = mc.sample(300), resumed.sample(300)
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.weight, y.weight)
    toy_run = Integrator(RidgeAndPeak(), feature_dims=2, seed=1)
    toy_run.save(tmp_path / "toy.pt")
    with pytest.raises(ValueError, match="pass it"):
        Integrator.load(tmp_path / "toy.pt")


@pytest.mark.parametrize("options", [
    {"loss": "forward_kl"}, {"loss": "reverse_kl"}, {"loss": "stratified"},
    {"mixture": 0.2}, {"max_weight_penalty": 0.2}, {"loss": "reverse_kl", "mixture": 0.1}])
def test_losses_mixture_and_weight_penalty_give_the_exact_integral(
        options: dict[str, object]) -> None:
    toy = RidgeAndPeak()
    mc = Integrator(toy, feature_dims=2, seed=5, flow_options={"bins": 16},
                    **options)  # type: ignore[arg-type]
    flat = mc.integrate(50_000)
    mc.train(60, batch=1024)
    r = mc.integrate(100_000)
    assert abs(r.value - toy.exact) < 3 * r.error, (options, r, toy.exact)
    # every option must actually learn: at least 3x smaller std than the untrained flows
    assert r.rel_std < flat.rel_std / 3, (options, r.rel_std, flat.rel_std)


def test_defensive_mixture_density_is_normalised_and_bounds_the_weights() -> None:
    toy = RidgeAndPeak()
    lam = 0.25
    mc = Integrator(toy, feature_dims=2, seed=6, mixture=lam)
    mc.train(20, batch=1024)
    gen = torch.Generator().manual_seed(0)
    for c in range(2):
        # q_mix integrates to one over the unit square (flat points, mean of q)
        u = torch.rand(400_000, 2, dtype=torch.float64, generator=gen)
        with torch.no_grad():
            q = mc.samplers[c].log_prob(u).exp()
        assert abs(float(q.mean()) - 1) < 5 * float(q.std()) / math.sqrt(len(q))
        assert float(q.min()) >= lam * (1 - 1e-12)
    # the weight alpha f / q_mix is at most alpha f / lambda on every sampled point
    for s in mc.sample(20_000):
        f, features, prior = toy(s.x, s.channel)
        alpha = mc.weights(features, prior, mc._active())[:, s.channel]
        assert bool((s.weight <= alpha * f / lam * (1 + 1e-12)).all())


def test_weight_penalty_lowers_the_largest_weights() -> None:
    toy = RidgeAndPeak()
    ratio = {}
    for beta in (0.0, 0.5):
        mc = Integrator(toy, feature_dims=2, seed=7, max_weight_penalty=beta,
                        flow_options={"bins": 16})
        mc.train(80, batch=1024)
        r = mc.integrate(100_000)
        ratio[beta] = r.eps_uw
    assert ratio[0.5] > ratio[0.0], ratio


def test_bad_loss_options_are_rejected() -> None:
    toy = RidgeAndPeak()
    with pytest.raises(ValueError, match="loss must be one of"):
        Integrator(toy, feature_dims=2, loss="kl")
    with pytest.raises(ValueError, match="mixture"):
        Integrator(toy, feature_dims=2, mixture=1.0)
    with pytest.raises(ValueError, match="max_weight_penalty"):
        Integrator(toy, feature_dims=2, max_weight_penalty=-1.0)
