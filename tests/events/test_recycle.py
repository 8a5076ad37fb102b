"""Events from points evaluated before generation (:mod:`madnis_py.events.recycle`).

A weighted sample drawn with another density than the generator's (here: the integrator
before its training) gives events of the same distribution when it is unweighted against
the generator's ``w_max``; a sample with too much of its cross section above ``w_max``
is left out; the survey's rounds are cut from one recording.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_py.events import Unweighter
from madnis_py.events.generator import EventGenerator
from madnis_py.events.recycle import (
    RecordedDraw,
    RoundRecorder,
    plan_recycling,
    thinning_floor,
)
from madnis_py.events.unweight import share_above, truncation_max_weight
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator
from tests.events.test_generator import distribution_pvalues, weighted_reference


@pytest.fixture(scope="module")
def before_and_after() -> tuple[Integrand, Integrator, RecordedDraw]:
    """drell_yan: a recorded draw of the untrained integrator, then the integrator
    trained (another density)."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    integrand = Integrand("drell_yan")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    with channels.recording() as records:
        batch = mc.random_batch(60_000)
    draw = RecordedDraw.of("untrained", batch.weights(), records)
    mc.train(15, batch=1024)
    return integrand, mc, draw


def test_a_recorded_draw_keeps_the_points_that_can_be_accepted(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    integrand, mc, draw = before_and_after
    assert draw.n_points == 60_000 and 0 < len(draw) < draw.n_points
    assert np.all(draw.weights > 0)
    assert sum(len(r.x) for r in draw.records) == len(draw)
    for rec in draw.records:
        assert np.all(rec.batch.f > 0) and rec.batch.prior is None
        # the record is the integrand's evaluation of its points
        again = integrand(rec.x[:50], rec.channel, prior=False, details=True)
        np.testing.assert_array_equal(again.f, rec.batch.f[:50])
        np.testing.assert_array_equal(again.momenta, rec.batch.momenta[:50])
    with pytest.raises(ValueError, match="3 event weights for"):
        RecordedDraw.of("bad", np.ones(3), draw.records)
    with pytest.raises(ValueError, match="finite and >= 0"):
        RecordedDraw.of("bad", -draw.weights, draw.records)


def test_events_of_another_density_follow_the_same_distribution(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    integrand, mc, draw = before_and_after
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.calibrate(40_000)
    assert gen.w_max is not None
    # a w_max above which the untrained draw has 0.5 % of its cross section
    gen.fix_max_weight(max(gen.w_max, truncation_max_weight(draw.weights, 0.005)))
    assert gen.w_max is not None
    share = share_above(draw.weights, gen.w_max)
    assert 0 < share <= 0.005 < gen.recycle_limit() == 0.01
    expected = float(np.minimum(draw.weights / gen.w_max, 1).sum())
    calls = gen.n_calls
    wanted = int(expected) + 500  # more than the draw gives: the rest is drawn
    events, summary = gen.generate(wanted, recycled=[draw])
    assert events is not None and summary.n_events == wanted
    n = summary.recycled_events
    assert summary.recycled == {"untrained": n} and summary.recycle_skipped == {}
    assert abs(n - expected) < 5 * np.sqrt(expected)
    assert gen.n_calls > calls and n < wanted
    # the draw's share above w_max enters the reported bias with the fresh draws'
    assert summary.truncation_bias > 0
    # only the recycled events: compare them with a weighted reference of the trained
    # integrator, drawn fresh
    rec = events.take(slice(0, n))
    w, moms, _ = weighted_reference(gen, integrand, 200_000)
    for name, (p, p_wrong) in distribution_pvalues(rec.momenta, np.ones(n), w, moms,
                                                   bins=20).items():
        assert p > 1e-3, (name, p)
        # the test has power: the draw's points with unit weights are rejected on every
        # observable at the level the recycled events pass (seen: 8e-8, 3e-135 and 1e-4
        # for m_ll, y_ll and pt_e; the untrained channels' 1/shat^1.5 photon sampling is
        # close to the physics in pt_e)
        assert p_wrong < 1e-3, (name, p_wrong)


def test_a_draw_with_too_much_above_w_max_is_left_out(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    _, mc, draw = before_and_after
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.calibrate(40_000)
    assert gen.w_max is not None
    share = share_above(draw.weights, gen.w_max)
    assert share > gen.recycle_limit() == 0.01
    _, summary = gen.generate(200, recycled=[draw])
    assert summary.recycled_events == 0 and summary.recycle_skipped == {"untrained": share}
    # kept overweights are normalised on the calibration sample: nothing is recycled
    keep = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.03, overweight="keep"),
                          seed=3)
    keep.calibrate(40_000)
    _, summary = keep.generate(200, recycled=[draw])
    assert summary.recycled_events == 0 and list(summary.recycle_skipped) == ["untrained"]


def test_the_survey_rounds_are_cut_from_one_recording() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    channels = TorchChannels(Integrand("ee_qqg"))
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    seen: list[np.ndarray] = []
    with channels.recording() as records:
        keeper = RoundRecorder(records, keep=2)

        def on_round(w: np.ndarray) -> None:
            seen.append(w)
            keeper(w)
            assert records == []  # moved out: at most `keep` rounds are held

        mc.pretrain_vegas(nitn=4, neval=300, on_round=on_round)
    assert keeper.rounds == len(seen) == 4
    assert [d.source for d in keeper.draws] == ["survey round 4", "survey round 3"]
    for draw, w in zip(keeper.draws, seen[::-1], strict=False):
        assert draw.n_points == len(w)
        np.testing.assert_array_equal(draw.weights, w[w > 0])
        # a round's weight is its channel's alpha f / q * n / n_i: f > 0 where w > 0
        assert all(np.all(r.batch.f > 0) for r in draw.records)
    assert RoundRecorder([], keep=0).draws == []
    with pytest.raises(ValueError, match="keep must be >= 0"):
        RoundRecorder([], keep=-1)
    with pytest.raises(ValueError, match="max_points must be >= 0"):
        RoundRecorder([], max_points=-1)


def test_the_oldest_rounds_go_first_when_they_hold_too_many_points() -> None:
    integrand = Integrand("ee_mumu")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    with channels.recording() as records:
        keeper = RoundRecorder(records, keep=3, max_points=2500)
        for n in (1000, 1200, 1400, 3000):
            keeper(mc.random_batch(n).weights())
            kept = [len(d) for d in keeper.draws]
            # the newest round always stays, older ones while the total fits
            assert kept[0] > 0 and (len(kept) == 1 or sum(kept) <= 2500), kept
    assert [d.source for d in keeper.draws] == ["survey round 4"]


def test_a_round_too_large_to_hold_is_not_recorded() -> None:
    """A survey round of more points than max_points is never recorded (its records
    would be held whole until it ends): the recording pauses, the round gives no draw,
    and the round kept before stays."""
    integrand = Integrand("ee_mumu")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    with channels.recording() as records:
        keeper = RoundRecorder(records, keep=3, max_points=2500)
        sizes = []

        def before(points: int) -> bool:
            sizes.append(points)
            return keeper.before_round(points)

        mc.pretrain_vegas(nitn=4, neval=600, growth=1.5, on_round=keeper,
                          before_round=before)
    assert sizes[0] == 1200 and sizes[1] < 2500 < sizes[2] < sizes[3]
    # round 1 went for round 2 (both would pass max_points); 3 and 4 were never held
    assert [d.source for d in keeper.draws] == ["survey round 2"]
    assert keeper.draws[0].n_points == sizes[1]
    assert records.paused and records == []
    rounds = mc.vegas_survey.measurements  # the survey knows which rounds give events
    assert [m["recorded"] for m in rounds] == [True, True, False, False]


def _draw(source: str, weights: np.ndarray) -> RecordedDraw:
    return RecordedDraw(source, weights, [], len(weights))  # plan_recycling reads weights


def test_the_plan_takes_the_draws_that_save_fresh_calls() -> None:
    rng = np.random.default_rng(4)
    truncation = 1e-3
    calibration = rng.exponential(size=100_000)  # the sampler that generates
    same = _draw("same", rng.exponential(size=100_000))
    worse = _draw("worse", rng.pareto(2.5, size=100_000))  # a heavy tail
    # a little worse: 2 % of its points weigh twice as much
    mild = _draw("mild", rng.exponential(size=100_000)
                 * np.where(rng.random(100_000) < 0.02, 2.0, 1.0))
    w0 = truncation_max_weight(calibration, truncation)
    # few events: the sampler's own kind of draw gives them all, the heavy one would
    # only raise w_max
    w_max, chosen = plan_recycling(calibration, [worse, same], 1000, truncation)
    assert [d.source for d in chosen] == ["same"]
    assert w_max >= w0 and share_above(same.weights, w_max) <= truncation * (1 + 1e-9)
    # the plan is the best leading set of the ranked draws: check it by brute force
    acceptance = lambda w: float(np.minimum(calibration / w, 1).mean())  # noqa: E731

    def fresh(taken: list[RecordedDraw], n: int) -> tuple[float, float]:
        if not taken:
            return w0, n / acceptance(w0)
        w = max(w0, truncation_max_weight(np.concatenate([d.weights for d in taken]),
                                          truncation))
        got = sum(float(np.minimum(d.weights / w, 1).sum()) for d in taken)
        return w, max(n - got, 0) / acceptance(w)

    taken = {}
    for n in (1000, 30_000, 10**6):
        w_max, chosen = plan_recycling(calibration, [worse, mild, same], n, truncation)
        options = [[], [same], [same, mild], [same, mild, worse]]
        best = min(options, key=lambda t: fresh(t, n)[1])
        assert chosen == best and w_max == fresh(best, n)[0], n
        taken[n] = [d.source for d in chosen]
        pooled = np.concatenate([d.weights for d in chosen]) if chosen else calibration
        assert share_above(pooled, w_max) <= truncation * (1 + 1e-9)
        # the fresh draws' share above w_max stays within the truncation too
        assert share_above(calibration, w_max) <= truncation * (1 + 1e-9)
    # the trade: the mildly worse draw is worth its higher w_max only where it gives a
    # good part of the events
    assert taken == {1000: ["same"], 30_000: ["same", "mild"], 10**6: ["same"]}
    # no events wanted: nothing to save, nothing taken
    assert plan_recycling(calibration, [same], 0, truncation) == (w0, [])


def _thinned_round(mc: Integrator, n: int, max_points: int
                   ) -> tuple[RecordedDraw, np.ndarray, list]:
    """A round of ``n`` points of ``mc`` thinned by a RoundRecorder after a first round
    of 5000 kept whole: the draw, the round's event weights and its records whole
    (recorded beside)."""
    channels = mc.integrand
    with channels.recording() as records:
        keeper = RoundRecorder(records, keep=2, max_points=max_points, thin=True, seed=7)
        assert keeper.before_round(5000)
        keeper(mc.random_batch(5000).weights())  # round 1: whole, sets the floor
        assert keeper.before_round(n)
        batch = mc.random_batch(n)
        whole = list(records)
        w = batch.weights()
        keeper.channel_done(w)  # all channels' records of the round at once
        assert records == []
        keeper(w)
    return keeper.draws[0], w, whole


def test_a_thinned_round_keeps_every_large_weight_and_the_rest_by_chance(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    _, mc, _ = before_and_after
    draw, w, whole = _thinned_round(mc, 60_000, max_points=10_000)
    c = draw.thinned_at
    assert c > 0 and draw.source == "survey round 2" and draw.n_points == 60_000
    assert np.all(draw.weights >= c)
    big = w >= c
    # every point at or above the floor is kept with its own weight
    np.testing.assert_array_equal(np.sort(draw.weights[draw.weights > c]), np.sort(w[w > c]))
    x_kept = np.concatenate([r.x for r in draw.records])
    x_all = np.concatenate([r.x for r in whole])
    big_rows = {tuple(row) for row in x_all[big]}
    assert big_rows <= {tuple(row) for row in x_kept}
    # the others with probability w / c: their number and their sum of weights
    small = (w > 0) & ~big
    n_small = len(draw) - int(big.sum())
    expected = float((w[small] / c).sum())
    assert abs(n_small - expected) < 5 * np.sqrt(expected), (n_small, expected)
    assert len(draw) < 0.5 * np.count_nonzero(w)  # thinned
    # the kept weights are an unbiased sample of the round's cross section
    spread = np.sqrt(float((w[small] * (c - w[small])).sum()))
    assert abs(draw.weights.sum() - w.sum()) < 5 * spread


def test_a_thinned_round_gives_the_events_of_the_whole_round(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    """Unweighting the kept points against any w_max >= the floor accepts each point of
    the round with probability min(1, w / w_max): as many events as the whole round
    gives, distributed as the fresh ones."""
    integrand, mc, _ = before_and_after
    draw, w, _ = _thinned_round(mc, 60_000, max_points=20_000)
    assert len(draw) < 0.7 * np.count_nonzero(w)
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.calibrate(40_000)
    assert gen.w_max is not None
    gen.fix_max_weight(max(gen.w_max, draw.thinned_at, truncation_max_weight(w, 0.005)))
    assert gen.w_max is not None
    expected = float(np.minimum(w / gen.w_max, 1).sum())  # of the whole round
    events, summary = gen.generate(int(expected) + 300, recycled=[draw])
    assert events is not None
    n = summary.recycled_events
    assert summary.recycled == {"survey round 2": n}
    assert abs(n - expected) < 5 * np.sqrt(expected), (n, expected)
    rec = events.take(slice(0, n))
    wr, moms, _ = weighted_reference(gen, integrand, 200_000)
    for name, (p, _) in distribution_pvalues(rec.momenta, np.ones(n), wr, moms,
                                             bins=20).items():
        assert p > 1e-3, (name, p)


def test_a_draw_thinned_above_w_max_gives_no_events(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    _, mc, draw = before_and_after
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.calibrate(40_000)
    assert gen.w_max is not None
    above = RecordedDraw("thinned high", draw.weights, draw.records, draw.n_points,
                         thinned_at=2 * gen.w_max)
    _, summary = gen.generate(100, recycled=[above])
    assert summary.recycled_events == 0 and list(summary.recycle_skipped) == ["thinned high"]
    # nor does the plan take it, whatever it would save
    calibration = gen.calibration_weights
    assert calibration is not None
    w0 = truncation_max_weight(calibration, 0.01)
    low = RecordedDraw("thinned low", draw.weights, draw.records, draw.n_points,
                       thinned_at=w0)
    high = RecordedDraw("thinned high", draw.weights, draw.records, draw.n_points,
                        thinned_at=1.01 * w0)
    assert plan_recycling(calibration, [high], 10**6, 0.01) == (w0, [])
    assert plan_recycling(calibration, [low], 10**6, 0.01)[1] in ([], [low])


def test_the_floor_is_the_lowest_that_holds_max_points() -> None:
    rng = np.random.default_rng(5)
    w = rng.pareto(2.5, size=400_000) * (rng.random(400_000) < 0.5)  # half pass the cuts
    # a round of 800k points has 400k with w > 0 on average: kept whole if they fit
    assert thinning_floor(w, points=800_000, max_points=400_000) == 0.0
    c = thinning_floor(w, points=800_000, max_points=20_000, rng=rng)
    assert 19_000 < 2 * float(np.minimum(w / c, 1).sum()) <= 20_200
    assert c < truncation_max_weight(w, 1e-3)  # below the events' w_max
    assert thinning_floor(np.zeros(10), points=10**6, max_points=10) == 0.0


def test_survey_rounds_after_the_first_are_thinned_as_they_run() -> None:
    """Through the survey's on_channel: round 1, too large to hold and with no floor yet,
    is not recorded; the later rounds are thinned as each channel's points come in (the
    records never hold more than one channel's points), to about max_points each, and
    the oldest go first."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    channels = TorchChannels(Integrand("ee_qqg"))
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    held = []
    with channels.recording() as records:
        keeper = RoundRecorder(records, keep=4, max_points=6000, thin=True, seed=2)

        def on_channel(w: np.ndarray) -> None:
            held.append(sum(len(r) for r in records))
            keeper.channel_done(w)
            assert records == []

        mc.pretrain_vegas(nitn=4, neval=2000, on_round=keeper, on_channel=on_channel,
                          before_round=keeper.before_round)
    rounds = mc.vegas_survey.measurements
    assert [m["recorded"] for m in rounds] == [False, True, True, True]
    assert rounds[0]["points"] > 6000
    assert max(held) <= max(m["points"] for m in rounds) // 2  # one of several channels
    (draw,) = keeper.draws  # rounds 2 and 3 went for round 4
    assert draw.source == "survey round 4" and draw.n_points == rounds[-1]["points"]
    assert draw.thinned_at > 0 and np.all(draw.weights >= draw.thinned_at)
    assert 0.8 * 6000 < len(draw) < 1.2 * 6000


def test_a_draw_the_first_plan_left_out_is_planned_again_at_a_raised_w_max(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """When the fresh draws that check w_max raise it, the recorded draws are planned
    again from all that the first plan was given: a draw with too much of its sigma above
    the calibrated w_max can be within the truncation above the raised one."""
    _, mc, draw = before_and_after
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.calibrate(40_000)
    assert gen.w_max is not None
    # a first plan that takes nothing (for no events: nothing to save), at the
    # calibrated w_max, above which the draw has too much of its sigma
    assert gen.plan_recycling([draw], 0) == []
    assert share_above(draw.weights, gen.w_max) > gen.recycle_limit()
    raised = truncation_max_weight(draw.weights, 0.005)
    assert raised > gen.w_max
    check = gen.validate

    def validate(n: int) -> list:  # the fresh draws raise w_max
        held = check(n)
        gen.w_max = raised
        return held

    monkeypatch.setattr(gen, "validate", validate)
    _, summary = gen.generate(300, recycled=[])  # the first plan's choice: none
    assert summary.recycled.get("untrained", 0) > 0
    assert summary.max_weight >= raised


def test_a_w_max_set_too_high_falls_before_the_recorded_draws_are_unweighted(
        before_and_after: tuple[Integrand, Integrator, RecordedDraw]) -> None:
    """A w_max five times too high and a recorded draw of the generator's own density
    with more than four times the calibration's points: w_max falls to the draw's
    truncation-defined maximum at half the share before the draw is unweighted, so the
    draw gives the events an accept/reject against the lower w_max gives, distributed
    as the fresh ones."""
    integrand, mc, _ = before_and_after
    with mc.integrand.recording() as records:
        batch = mc.random_batch(100_000)
    draw = RecordedDraw.of("integration", batch.weights(), records)
    gen = EventGenerator(mc, 1.0, unweighter=Unweighter(truncation=0.01), seed=3)
    gen.validation_rounds = 0
    w, channels, _ = gen.weighted(20_000)
    gen.calibrate_on(5 * w, channels)
    assert gen.w_max is not None
    high = gen.w_max
    low = truncation_max_weight(draw.weights, 0.005)
    assert low < 0.5 * high
    expected = float(np.minimum(draw.weights / low, 1).sum())
    events, summary = gen.generate(int(expected) + 300, recycled=[draw])
    assert events is not None
    assert summary.lowered[0] == pytest.approx(low, rel=1e-9)
    n = summary.recycled_events
    assert summary.recycled == {"integration": n}
    assert abs(n - expected) < 5 * np.sqrt(expected), (n, expected)
    assert n > 3 * float(np.minimum(draw.weights / high, 1).sum())
    rec = events.take(slice(0, n))
    wr, moms, _ = weighted_reference(gen, integrand, 200_000)
    for name, (p, _) in distribution_pvalues(rec.momenta, np.ones(n), wr, moms,
                                             bins=20).items():
        assert p > 1e-3, (name, p)
