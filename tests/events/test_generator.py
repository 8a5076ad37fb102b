"""Unweighted events of a trained integrator reproduce its weighted distributions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from madnis_py.events import Unweighter
from madnis_py.events.generator import (
    BATCH,
    BATCH_PER_CHANNEL,
    EventBatch,
    EventGenerator,
    GenerationSummary,
    default_batch,
    draw_size,
)
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator


@pytest.fixture(scope="module")
def trained() -> tuple[Integrand, Integrator]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    integrand = Integrand("drell_yan")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    mc.train(15, batch=1024)
    return integrand, mc


def observables(p: np.ndarray) -> dict[str, np.ndarray]:
    ll = p[:, 2] + p[:, 3]
    return {"m_ll": np.sqrt(ll[:, 0] ** 2 - (ll[:, 1:] ** 2).sum(axis=1)),
            "y_ll": 0.5 * np.log((ll[:, 0] + ll[:, 3]) / (ll[:, 0] - ll[:, 3])),
            "pt_e": np.hypot(p[:, 3, 1], p[:, 3, 2])}


def chi2_pvalue(events: np.ndarray, ev_weights: np.ndarray, ref: np.ndarray,
                ref_weights: np.ndarray, edges: np.ndarray) -> float:
    """p-value of the unweighted histogram against the weighted one (both with their
    statistical errors: Poisson about the expectation for the events, whose few
    overweight ones carry more weight, and sum w^2 for the weighted points), over the
    bins expecting at least 5 events."""
    n = ev_weights.sum()
    h, _ = np.histogram(events, edges, weights=ev_weights)
    r, _ = np.histogram(ref, edges, weights=ref_weights)
    r2, _ = np.histogram(ref, edges, weights=ref_weights ** 2)
    scale = n / ref_weights.sum()
    expected = r * scale
    var = expected * (ev_weights ** 2).sum() / n + r2 * scale ** 2
    ok = expected >= 5
    chi2 = float(((h - expected)[ok] ** 2 / var[ok]).sum())
    return float(stats.chi2.sf(chi2, int(ok.sum()) - 1))


def weighted_reference(gen: EventGenerator, integrand: Integrand, n: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fresh weighted points of the generator: their weights, momenta (n, 4, 4) and the
    weighted sum of each subprocess's part."""
    w, channels, x = gen.weighted(n)
    moms = np.zeros((len(w), 4, 4))
    sub_w = np.zeros(len(integrand.process.subprocesses))
    for c in np.unique(channels):
        sel = channels == c
        b = integrand(x[sel].numpy(), int(c), prior=False, details=True)
        moms[sel] = b.momenta
        assert b.subprocess_f is not None
        on = b.f > 0
        sub_w += (b.subprocess_f[on] / b.f[on, None] * w[sel][on, None]).sum(axis=0)
    return w, moms, sub_w


def equal_sigma_edges(values: np.ndarray, w: np.ndarray, bins: int = 30) -> np.ndarray:
    """Bin edges of equal cross section between the 0.5 % and 99.5 % quantiles."""
    order = np.argsort(values)
    cum = np.cumsum(w[order]) / w.sum()
    return np.interp(np.linspace(0.005, 0.995, bins + 1), cum, values[order])


def distribution_pvalues(momenta: np.ndarray, ev_weights: np.ndarray, w: np.ndarray,
                         moms: np.ndarray, bins: int = 30) -> dict[str, tuple[float, float]]:
    """Per observable, the p-value of the events (``momenta``, ``ev_weights``) against the
    weighted reference (``w``, ``moms``: :func:`weighted_reference`) in bins of equal
    reference sigma, and on the same bins against the reference with unit weights (a
    wrong distribution, for the test's power)."""
    ev_obs, ref_obs = observables(momenta), observables(moms)
    ok = w > 0
    out = {}
    for name in ev_obs:
        edges = equal_sigma_edges(ref_obs[name][ok], w[ok], bins)
        out[name] = (chi2_pvalue(ev_obs[name], ev_weights, ref_obs[name][ok], w[ok], edges),
                     chi2_pvalue(ev_obs[name], ev_weights, ref_obs[name][ok],
                                 np.ones(ok.sum()), edges))
    return out


@pytest.mark.parametrize("accept_on", ["host", "device"])
def test_unweighted_events_reproduce_weighted_distributions(
        trained: tuple[Integrand, Integrator], accept_on: str) -> None:
    integrand, mc = trained
    sigma = mc.integrate(40_000).value
    gen = EventGenerator(mc, sigma, unweighter=Unweighter(method="quantile", quantile=0.999),
                         seed=5, accept_on=accept_on)
    events, summary = gen.generate(20_000, batch=20_000, calibration=50_000)
    assert events is not None and len(events) == summary.n_events == 20_000
    # the weighted reference of the same run: fresh points, their momenta and weights
    w, moms, sub_w = weighted_reference(gen, integrand, 200_000)
    n_sub = len(sub_w)
    ev_w = events.weights / events.weights.mean()
    for name, (p, p_wrong) in distribution_pvalues(events.momenta, ev_w, w, moms).items():
        assert p > 1e-3, (name, p)
        # the test has power: the events' own unweighted histogram against the flat
        # (unit-weight) reference of the weighted points is rejected
        assert p_wrong < 1e-6, (name, p_wrong)
    # flavours follow the subprocess parts of the weighted points
    proc = integrand.process
    share = np.bincount(events.subprocess, minlength=n_sub) / len(events)
    want = sub_w / sub_w.sum()
    err = np.sqrt(want * (1 - want) / len(events) + 0.02 ** 2 * want ** 2)
    assert np.all(np.abs(share - want) < 4 * err), (share, want)
    # momentum conservation and the flavours/colours written with the events
    balance = events.momenta[:, :2].sum(axis=1) - events.momenta[:, 2:].sum(axis=1)
    assert np.abs(balance).max() < 1e-9 * events.momenta[:, :2, 0].sum(axis=1).max()
    np.testing.assert_array_equal(events.pdgs,
                                  np.array([proc.subprocesses[k].pdgs for k in events.subprocess]))
    assert set(np.unique(events.colours)) == {0, 501}


def test_truncation_and_efficiency_are_reported(trained: tuple[Integrand, Integrator]) -> None:
    _, mc = trained
    gen = EventGenerator(mc, 1000.0, unweighter=Unweighter(method="quantile", quantile=0.9,
                                                          overweight="truncate"), seed=2)
    events, summary = gen.generate(3000, batch=10_000, calibration=20_000)
    assert events is not None and np.all(events.weights == 1000.0)
    assert summary.n_overweight > 0 and 0 < summary.truncation_bias < 0.5
    assert 0 < summary.efficiency <= 1
    with pytest.raises(TypeError, match="process"):
        from madnis_py.testfunctions import RidgeAndPeak

        EventGenerator(Integrator(RidgeAndPeak(), feature_dims=2), 1.0,
                       unweighter=Unweighter())


def test_points_are_in_the_integrands_coordinates_after_vegas() -> None:
    """After VEGAS pre-training the generator's points are still the physics integrand's
    own: evaluating it there gives the f each event was weighed with, and the calibration
    and events follow without any re-mapping."""
    torch.manual_seed(0)
    integrand = Integrand("drell_yan")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=3, mixture=0.2)
    mc.pretrain_vegas(nitn=2, neval=2000)
    mc.train(3, batch=512)
    for s in mc.random_batch(2000).samples:
        f = integrand(s.x.numpy(), s.channel).f
        np.testing.assert_array_equal(f, s.f.numpy())
    sigma = mc.integrate(4000).value
    gen = EventGenerator(mc, sigma, unweighter=Unweighter(method="quantile", quantile=0.99),
                         seed=1)
    events, summary = gen.generate(200, batch=4000, calibration=4000)
    assert events is not None and summary.n_events == 200


def test_draw_size_covers_the_events_needed_without_a_whole_batch() -> None:
    assert draw_size(100, None, 20_000) == draw_size(100, 0.0, 20_000) == 20_000
    # 1000 points on average, plus three binomial standard deviations 3 sqrt(90) / 0.1
    assert draw_size(100, 0.1, 20_000) == 1285
    assert draw_size(10, 0.5, 20_000) == 1000 and draw_size(10, 0.5, 500) == 500
    assert draw_size(10 ** 6, 0.1, 20_000) == 20_000
    n = draw_size(400, 0.2, 10 ** 6)
    assert 0 < stats.binom.cdf(399, n, 0.2) < 2e-3  # falls short about once in 1000
    with pytest.raises(ValueError, match="need"):
        draw_size(0, 0.5, 100)


def test_draws_grow_with_the_channels_drawn() -> None:
    assert default_batch(0) == default_batch(1) == BATCH == 20_000
    assert default_batch(100) == BATCH  # 200 points each would be fewer
    assert default_batch(1464) == 1464 * BATCH_PER_CHANNEL == 292_800
    with pytest.raises(ValueError, match="n_channels"):
        default_batch(-1)


def test_the_generation_draws_default_batches_of_its_active_channels(
        trained: tuple[Integrand, Integrator], monkeypatch: pytest.MonkeyPatch) -> None:
    _, mc = trained
    gen = EventGenerator(mc, 10.0, unweighter=Unweighter(method="quantile", quantile=0.99),
                         seed=4)
    gen.calibrate(2_000)
    gen.validation_rounds = 0
    # no acceptance known: the first draw is a whole batch (draw_size)
    monkeypatch.setattr(gen, "_calibration_acceptance", lambda: None)
    sizes: list[int] = []
    draw = gen._draw
    monkeypatch.setattr(gen, "_draw", lambda n, **kw: sizes.append(n) or draw(n, **kw))
    monkeypatch.setattr("madnis_py.events.generator.BATCH", 3_000)
    gen.generate(10)
    assert sizes[0] == default_batch(mc.n_active) == 3_000
    with pytest.raises(ValueError, match="batch"):
        gen.generate(10, batch=0)


def test_the_last_draw_is_sized_to_the_events_still_needed(
        trained: tuple[Integrand, Integrator]) -> None:
    _, mc = trained
    gen = EventGenerator(mc, 10.0, unweighter=Unweighter(method="quantile", quantile=0.99),
                         seed=4)
    events, summary = gen.generate(300, batch=20_000, calibration=5_000)
    assert events is not None and len(events) == 300
    drawn = summary.n_weighted - 5_000
    assert drawn < 20_000  # one whole batch before
    assert drawn * summary.efficiency >= 300
    assert summary.n_calls == summary.n_weighted  # no second evaluation


def test_the_accept_reject_runs_where_asked(trained: tuple[Integrand, Integrator]) -> None:
    _, mc = trained
    unweighter = Unweighter()
    assert EventGenerator(mc, 1.0, unweighter=unweighter).accept_on == "host"  # a CPU run
    with pytest.raises(ValueError, match="accept_on must be one of"):
        EventGenerator(mc, 1.0, unweighter=unweighter, accept_on="gpu")
    runs = []
    for accept_on in ("device", "device", "host"):
        gen = EventGenerator(mc, 1.0, unweighter=unweighter, seed=9, accept_on=accept_on)
        gen.calibrate(5000)
        events, summary = gen.generate(300, batch=5000)
        assert events is not None and len(events) == 300
        runs.append((events, summary))
    (a, sa), (b, sb), (h, sh) = runs
    # the accept/reject's uniforms are a stream of their own, not the points' (the same
    # seed on the same device would accept each point on its own coordinates)
    gen = EventGenerator(mc, 1.0, unweighter=unweighter, seed=9, accept_on="device")
    assert gen.device_rng is not None
    u = torch.rand(1000, generator=gen.device_rng, dtype=torch.float64)
    z = torch.rand(1000, generator=mc.generator, dtype=torch.float64)
    assert abs(float(np.corrcoef(u.numpy(), z.numpy())[0, 1])) < 0.15
    # one seed, the same events on the device path
    np.testing.assert_array_equal(a.momenta, b.momenta)
    assert sa.efficiency == sb.efficiency
    # the same calibration and points drawn (the uniforms of the device draw have their
    # own generator), another accept/reject
    assert sa.max_weight == sh.max_weight
    assert not np.array_equal(a.momenta, h.momenta)
    assert abs(sa.efficiency - sh.efficiency) < 0.5 * sh.efficiency


@pytest.mark.parametrize("allocation", ["max_weight", "sigma", "auto"])
def test_fresh_draws_check_w_max_before_events(trained: tuple[Integrand, Integrator],
                                               allocation: str) -> None:
    """A w_max set too low on its calibration sample (here five times, as a few hundred
    points per channel of a many-channel process set it) truncated far more than the
    card's share of sigma in the draws that follow; the fresh draws that check it first
    raise it to their own truncation-defined maximum, and the events keep the bound.
    Without the check (validation_rounds = 0) they do not. The draws' points give
    events like any other."""
    _, mc = trained
    calibration = mc.integrate(20_000)
    weights, channels = mc.last_weights * 0.2, mc.last_channels

    def generate(rounds: int) -> tuple[EventGenerator, object]:
        gen = EventGenerator(mc, calibration.value, unweighter=Unweighter(), seed=3,
                             allocation=allocation)  # type: ignore[arg-type]
        gen.validation_rounds = rounds
        gen.settle_events = 0  # the check alone
        gen.calibrate_on(weights, channels)
        events, summary = gen.generate(2000, batch=20_000)
        assert events is not None and len(events.weights) == 2000
        return gen, summary

    unchecked, without = generate(0)
    checked, summary = generate(3)
    assert without.validation == [] and without.truncation_bias > 0.05  # type: ignore[attr-defined]
    shares = summary.validation  # type: ignore[attr-defined]
    assert len(shares) >= 2 and shares[0] > 0.05 and shares[-1] <= 2e-3
    assert checked.w_max is not None and unchecked.w_max is not None
    assert checked.w_max > 2 * unchecked.w_max
    assert summary.truncation_bias < 2e-3  # type: ignore[attr-defined]


Generation = tuple[EventGenerator, EventBatch | None, GenerationSummary]


def scaled_calibration(mc: Integrator, scale: float, seed: int
                       ) -> Callable[[int], Generation]:
    """An integration of 20000 points whose weights, times ``scale``, calibrate w_max
    (``scale`` < 1: too low, > 1: too high); ``generate(settle)`` then gives 8000 events
    with no fresh draws to check w_max and ``settle`` events held while it settles on
    their draws."""
    calibration = mc.integrate(20_000)
    weights, channels = mc.last_weights * scale, mc.last_channels

    def generate(settle: int) -> Generation:
        gen = EventGenerator(mc, calibration.value, unweighter=Unweighter(), seed=seed)
        gen.validation_rounds = 0
        gen.settle_events = settle
        gen.calibrate_on(weights, channels)
        events, summary = gen.generate(8000, batch=20_000)
        return gen, events, summary

    return generate


def test_w_max_settles_on_the_draws_of_the_events(trained: tuple[Integrand, Integrator]
                                                  ) -> None:
    """A w_max five times too low and no fresh draws to check it: the events' own draws
    raise it while the events are held back, the held events are thinned to it, and
    more are drawn. The draws truncate within twice the card's share (more than 5 %
    without), and the events follow the weighted distributions."""
    integrand, mc = trained
    generate = scaled_calibration(mc, 0.2, seed=4)

    _, _, unsettled = generate(0)
    assert unsettled.raised == [] and unsettled.thinned == 0
    assert unsettled.truncation_bias > 0.05
    gen, events, summary = generate(200_000)
    assert events is not None and len(events) == summary.n_events == 8000
    assert summary.raised and summary.max_weight == summary.raised[-1]
    assert summary.max_weight > 2 * unsettled.max_weight
    assert summary.thinned > 0
    assert summary.truncation_bias <= 2e-3
    w, moms, _ = weighted_reference(gen, integrand, 200_000)
    for name, (p, _) in distribution_pvalues(events.momenta, np.ones(len(events)), w,
                                             moms).items():
        assert p > 1e-3, (name, p)


def test_the_draws_of_the_events_lower_a_w_max_calibrated_too_high(
        trained: tuple[Integrand, Integrator]) -> None:
    """A w_max five times too high (a calibration sample that caught one outlier): once
    the events' draws have four times the calibration's points they lower it to their own
    truncation-defined maximum, and the events take far fewer integrand calls than
    against the calibrated one, follow the weighted distributions, and the draws
    truncate within the card's share."""
    integrand, mc = trained
    generate = scaled_calibration(mc, 5.0, seed=5)

    _, _, fixed = generate(0)
    assert fixed.lowered == []
    gen, events, summary = generate(200_000)
    assert events is not None and len(events) == summary.n_events == 8000
    assert summary.lowered and summary.max_weight == summary.lowered[-1]
    assert summary.max_weight < 0.5 * fixed.max_weight
    assert summary.n_calls < 0.6 * fixed.n_calls
    assert summary.truncation_bias <= 1e-3
    w, moms, _ = weighted_reference(gen, integrand, 200_000)
    for name, (p, _) in distribution_pvalues(events.momenta, np.ones(len(events)), w,
                                             moms).items():
        assert p > 1e-3, (name, p)


def test_events_beyond_those_held_follow_the_settled_w_max(
        trained: tuple[Integrand, Integrator]) -> None:
    """Only the first settle_events are held: w_max settles on their draws, those are
    written, and the rest are drawn against it as it then stands."""
    _, mc = trained
    calibration = mc.integrate(20_000)
    gen = EventGenerator(mc, calibration.value, unweighter=Unweighter(), seed=3)
    gen.validation_rounds = 0
    gen.settle_events = 1000
    gen.calibrate_on(mc.last_weights * 0.2, mc.last_channels)
    written: list[int] = []
    _, summary = gen.generate(5000, batch=20_000, sink=lambda ev: written.append(len(ev)))
    assert sum(written) == summary.n_events == 5000
    assert summary.raised and summary.thinned > 0
    assert summary.truncation_bias < 0.01
