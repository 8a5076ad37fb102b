"""The generation's draws shared among the channels by their own maximum weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from madnis_py.events import Unweighter
from madnis_py.events.allocation import (
    channel_max_weights,
    choose_allocation,
    held_out_acceptance,
    reweigh,
)
from madnis_py.events.generator import EventGenerator
from madnis_py.events.unweight import truncation_max_weight
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator, allocate
from madnis_py.training.multichannel import allocation_shares


def draw(rng: np.random.Generator, counts: np.ndarray, scales: np.ndarray,
         shapes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event weights and channels of a draw giving channel i its counts[i] points, the
    channel's own weights gamma(shape_i) * scale_i / shape_i (mean scale_i)."""
    n = int(counts.sum())
    ch = np.repeat(np.arange(len(counts)), counts)
    own = rng.gamma(shapes[ch], scales[ch] / shapes[ch])
    return own * n / counts[ch], ch


def test_maxima_are_those_of_each_channels_own_weights() -> None:
    rng = np.random.default_rng(3)
    counts = np.array([3000, 1000, 0, 6000])
    w, ch = draw(rng, counts, np.array([1.0, 5.0, 1.0, 0.2]), np.array([2.0, 0.5, 1.0, 9.0]))
    maxima = channel_max_weights(w, ch, 4, truncation_max_weight)
    for i in (0, 1, 3):  # the channel's own weights w e n_i / n, whatever the allocation
        own = w[ch == i] * counts[i] / counts.sum()
        assert maxima[i] == pytest.approx(truncation_max_weight(own), rel=1e-12)
    assert maxima[2] == 0.0
    # the same points as a draw with shares p: own weight / p_i
    shares = np.array([0.2, 0.5, 0.1, 0.2])
    again = reweigh(w, ch, shares)
    np.testing.assert_allclose(again, w * counts[ch] / counts.sum() / shares[ch], rtol=1e-14)
    with pytest.raises(ValueError, match="no share"):
        reweigh(w, ch, np.array([0.5, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match=r"channels must lie in \[0, 3\)"):
        channel_max_weights(w, ch, 3, truncation_max_weight)


def test_shares_by_maxima_accept_more_than_shares_by_sigma_and_stay_unbiased() -> None:
    """Three channels of unequal quality: exact-maximum unweighting accepts sum I / sum W
    of the points with shares W_i / sum W (the optimum), more than with shares by the
    standard deviations, and the mean event weight is the integral either way."""
    rng = np.random.default_rng(11)
    scales, shapes = np.array([1.0, 3.0, 0.5]), np.array([0.7, 20.0, 3.0])
    total = scales.sum()
    n = 200_000
    w, ch = draw(rng, np.full(3, n // 3), scales, shapes)
    own = [w[ch == i] / 3 for i in range(3)]
    sigma_shares = np.array([o.std() for o in own]) / sum(o.std() for o in own)
    maxima = channel_max_weights(w, ch, 3, lambda part: float(part.max()))
    accepted = {}
    for name, shares in (("sigma", sigma_shares), ("max_weight", maxima / maxima.sum())):
        counts = np.round(shares * n).astype(np.int64)
        e, _ = draw(rng, counts, scales, shapes)
        assert e.mean() == pytest.approx(total, rel=5 * e.std() / e.mean() / np.sqrt(n))
        accepted[name] = float(np.minimum(e / e.max(), 1).mean())
    assert accepted["max_weight"] == pytest.approx(total / maxima.sum(), rel=0.05)
    assert accepted["max_weight"] > 1.25 * accepted["sigma"]


def lognormal_draw(rng: np.random.Generator, counts: np.ndarray, scales: np.ndarray,
                   spreads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Event weights and channels of a draw giving channel i its counts[i] points, the
    channel's own weights lognormal with mean scale_i and log-spread spreads[i]."""
    n = int(counts.sum())
    ch = np.repeat(np.arange(len(counts)), counts)
    own = scales[ch] * rng.lognormal(-spreads[ch] ** 2 / 2, spreads[ch])
    return own * n / counts[ch], ch


def acceptance_of(e: np.ndarray) -> float:
    """The acceptance of a draw's event weights at the truncation-defined w_max (1e-3)."""
    w_max = truncation_max_weight(e, 1e-3)
    return float(np.minimum(e, w_max).mean() / w_max)


def test_held_out_acceptance_is_that_of_a_draw_with_those_shares() -> None:
    """Points of any allocation, seen as a draw with other shares: the acceptance at the
    truncation-defined w_max is that of such a draw (exactly where they were drawn with
    those shares, to the draws' noise otherwise)."""
    rng = np.random.default_rng(2)
    scales, shapes = np.array([1.0, 3.0, 0.5, 2.0]), np.array([0.7, 20.0, 3.0, 1.5])
    shares = np.array([0.4, 0.1, 0.2, 0.3])
    e, ch = draw(rng, np.round(shares * 100_000).astype(np.int64), scales, shapes)
    own = e * shares[ch]  # e n_i / n with n_i = shares_i n
    assert held_out_acceptance(own, ch, shares, 1e-3) == pytest.approx(acceptance_of(e),
                                                                       rel=1e-12)
    # drawn alike, seen with the shares: the acceptance of a fresh draw with the shares
    w, ch = draw(rng, np.full(4, 100_000), scales, shapes)
    seen = held_out_acceptance(w / 4, ch, shares, 1e-3)
    fresh, _ = draw(rng, np.round(shares * 400_000).astype(np.int64), scales, shapes)
    assert seen == pytest.approx(acceptance_of(fresh), rel=0.03)
    assert held_out_acceptance(w / 4, ch, np.array([0.5, 0.5, 0.0, 0.0]), 1e-3) == 0.0


def chosen_and_fresh(rng: np.random.Generator,
                     sample: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                     sigmas: np.ndarray, per_channel: int) -> tuple[str, dict[str, float]]:
    """The allocation chosen on a calibration draw of ``sample`` (allocated by the true
    ``sigmas``, the integrator's), and the acceptance of a fresh draw of 10^6 points
    shared either way."""
    n_channels = len(sigmas)
    by_sigma = allocation_shares(sigmas, min_fraction=0.1)
    w, ch = sample(allocate(n_channels * per_channel, sigmas, min_fraction=0.1))
    choice = choose_allocation(w, ch, by_sigma, max_weight=truncation_max_weight,
                               truncation=1e-3, rng=rng, min_fraction=0.1)
    maxima = channel_max_weights(w, ch, n_channels, truncation_max_weight)
    by_maxima = allocation_shares(maxima, min_fraction=0.1)
    fresh = {name: acceptance_of(sample(allocate(1_000_000, shares, min_fraction=0.0))[0])
             for name, shares in (("sigma", by_sigma), ("max_weight", by_maxima))}
    return choice.allocation, fresh


def test_few_channels_of_unequal_quality_are_shared_by_their_maxima() -> None:
    """Four channels, 25000 points each: three that their flows map almost perfectly
    (gamma weights of shape 1000, within a few % of their mean: small sigmas, not small
    maxima) and a broad one. The sigmas starve the good channels, whose weights then
    set w_max; the maxima share the draws 1.8x better, and the choice on held-out halves
    of the calibration sample is the one a large fresh draw confirms."""
    rng = np.random.default_rng(4)
    scales, shapes = np.ones(4), np.array([1000.0, 1000.0, 1000.0, 0.5])
    chosen, fresh = chosen_and_fresh(rng, lambda c: draw(rng, c, scales, shapes),
                                     scales / np.sqrt(shapes), 25_000)
    assert chosen == "max_weight"
    assert fresh["max_weight"] > 1.5 * fresh["sigma"], fresh


def test_many_heavy_tailed_channels_are_shared_by_their_sigmas() -> None:
    """400 lognormal channels of a hundred points each: the maxima fall short where the
    tails are long, and the true sigmas share the draws better; the choice on held-out
    halves is the one a large fresh draw confirms (p p > e+ e- j j in miniature)."""
    rng = np.random.default_rng(4)
    scales = rng.lognormal(0.0, 1.0, 400)
    spreads = rng.uniform(0.5, 1.8, 400)
    sigmas = scales * np.sqrt(np.expm1(spreads ** 2))
    chosen, fresh = chosen_and_fresh(rng, lambda c: lognormal_draw(rng, c, scales, spreads),
                                     sigmas, 100)
    assert chosen == "sigma"
    assert fresh["sigma"] > 1.2 * fresh["max_weight"], fresh


@pytest.fixture(scope="module")
def untrained() -> Integrator:
    """zprime's photon, Z and Z' channels on their flat maps, allocated alike (as a run
    whose flows were never trained, before a survey)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    channels = TorchChannels(Integrand("zprime", cuts={"mmll": 50.0}))
    return Integrator(channels, feature_dims=channels.feature_dims, seed=1)


def test_the_generator_shares_its_draws_by_the_channels_maxima(untrained: Integrator) -> None:
    """The calibration sets each channel's maximum, the draws follow them (the floor
    min_fraction aside), the events' acceptance is higher than with the integrator's
    allocation (0.43 against 0.20 here), and the weighted points of such draws still
    estimate the cross section. ``"auto"`` sees that on held-out halves and chooses the
    maxima."""
    mc = untrained
    result = mc.integrate(40_000)
    unweighter = Unweighter()
    eff = {}
    for allocation in ("sigma", "max_weight", "auto"):
        gen = EventGenerator(mc, result.value, unweighter=unweighter, seed=4,
                             allocation=allocation)
        _, summary = gen.generate(4000, batch=20_000, calibration=40_000)
        eff[allocation] = summary.efficiency
        assert summary.allocation == ("sigma" if allocation == "sigma" else "max_weight")
        if allocation == "sigma":
            assert gen.channel_maxima is None and gen.allocation_choice is None
            continue
        if allocation == "auto":  # chose the maxima on held-out halves
            choice = gen.allocation_choice
            assert choice is not None and choice.allocation == "max_weight"
            assert summary.allocation_acceptance == choice.acceptance
            assert choice.acceptance["max_weight"] > 1.5 * choice.acceptance["sigma"]
            continue
        maxima = gen.channel_maxima
        assert maxima is not None and np.all(maxima > 0)
        w, channels, _ = gen.weighted(100_000)
        got = np.bincount(channels, minlength=3) / len(channels)
        floor = mc.min_fraction / 3
        np.testing.assert_allclose(got, floor + (1 - mc.min_fraction) * maxima / maxima.sum(),
                                   atol=1e-4)
        err = np.hypot(w.std() / np.sqrt(len(w)), result.error)
        assert abs(w.mean() - result.value) < 4 * err
    assert eff["max_weight"] > 1.5 * eff["sigma"], eff
    assert eff["auto"] > 1.5 * eff["sigma"], eff


def test_a_bad_allocation_is_refused(untrained: Integrator) -> None:
    with pytest.raises(ValueError, match="allocation must be one of"):
        EventGenerator(untrained, 1.0, unweighter=Unweighter(),
                       allocation="flat")  # type: ignore[arg-type]
    gen = EventGenerator(untrained, 1.0, unweighter=Unweighter())
    with pytest.raises(ValueError, match="channel_maxima must be 3 values"):
        gen.fix_max_weight(1.0, 1.0, [1.0])
