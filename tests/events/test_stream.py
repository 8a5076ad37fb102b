"""Events held while w_max settles on their draws: the thinning is an exact re-unweighting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from madnis_py.events import Unweighter
from madnis_py.events.generator import EventBatch
from madnis_py.events.stream import LOWER_RANGE, EventStream
from madnis_py.events.unweight import accept, truncation_max_weight


def batch_of(e: np.ndarray, sigma: float) -> EventBatch:
    """Events of one particle carrying their event weights ``e`` as their scales (to find
    them again after the thinning)."""
    k = len(e)
    return EventBatch(pdgs=np.zeros((k, 1), dtype=np.int64),
                      colours=np.zeros((k, 1, 2), dtype=np.int64),
                      momenta=np.zeros((k, 1, 4)), weights=np.full(k, sigma),
                      scales=np.asarray(e, dtype=np.float64), alpha_s=np.zeros(k),
                      subprocess=np.zeros(k, dtype=np.int64),
                      channel=np.zeros(k, dtype=np.int64))


def weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Event weights: 95 % uniform in [0, 1], 5 % uniform in [5, 20] (57 % of the cross
    section, whose truncation-defined maximum lies just below 20)."""
    rare = rng.random(n) < 0.05
    return np.where(rare, rng.uniform(5.0, 20.0, n), rng.random(n))


def run(stream: EventStream, rng: np.random.Generator, draw: int) -> None:
    """Draws of :func:`weights` until the stream is complete."""
    while not stream.complete:
        if stream.done < stream.n_events:
            w = weights(rng, draw)
            stream.observe(w)
            idx, written, e = stream.take(accept(w, stream.w_max, rng))
            stream.emit(batch_of(e, stream.sigma), e)
        stream.settle()


def chi2_p(e: np.ndarray, reference: np.ndarray, w_max: float) -> float:
    """p-value of the events' weights against the accept/reject of the reference weights
    at ``w_max`` (acceptance ``min(1, w / w_max)``), in 20 bins of equal expectation."""
    accepted = np.minimum(1.0, reference / w_max)
    order = np.argsort(reference)
    cum = np.cumsum(accepted[order]) / accepted.sum()
    edges = np.interp(np.linspace(0, 1, 21), cum, reference[order])
    edges[0], edges[-1] = 0.0, np.inf
    h, _ = np.histogram(e, edges)
    expected, _ = np.histogram(reference, edges, weights=accepted)
    expected *= len(e) / accepted.sum()
    return float(stats.chi2.sf(((h - expected) ** 2 / expected).sum(), len(h) - 1))


def test_held_events_thinned_to_a_raised_w_max_are_an_accept_reject_against_it() -> None:
    """w_max set far too low (a third of the truncation-defined one, 27 % of sigma above
    it): the draws raise it, the held events are thinned, more are drawn. The final
    events follow min(1, w / w_max) of the final w_max, not of the first, and the draws
    truncate within twice the share."""
    rng = np.random.default_rng(1)
    reference = weights(rng, 4_000_000)
    honest = truncation_max_weight(reference, 1e-3)
    # the first draw's accepted points give more events than wanted: all are held, and
    # thinned to the new w_max after it (about half of the final events)
    stream = EventStream(30_000, honest / 3, sigma=2.0, unweighter=Unweighter(), norm=1.0,
                         rng=rng, n_subprocesses=1, settle_events=200_000)
    run(stream, rng, 400_000)
    e = np.concatenate([b.scales for b in stream.kept])
    assert len(e) == stream.done == 30_000 and not stream.settling
    assert stream.raised and stream.w_max == stream.raised[-1] and stream.thinned > 0
    assert stream.w_max == pytest.approx(honest, rel=0.01)
    assert stream.truncation_bias <= 2e-3
    assert stream.overweight == int((e > stream.w_max).sum())
    np.testing.assert_array_equal(np.concatenate(stream.written), np.ones(30_000))
    assert chi2_p(e, reference, stream.w_max) > 1e-3
    # the test has power: against the first w_max the events are rejected
    assert chi2_p(e, reference, honest / 3) < 1e-6


def test_a_stream_that_does_not_settle_writes_at_once() -> None:
    """settle_events = 0 (or overweights kept): every event is final when emitted, and
    w_max stays, however much the draws truncate."""
    rng = np.random.default_rng(2)
    for unweighter, settle in ((Unweighter(), 0),
                               (Unweighter(overweight="keep"), 200_000)):
        written: list[int] = []
        stream = EventStream(2000, 0.5, sigma=1.0, unweighter=unweighter, norm=1.0, rng=rng,
                             n_subprocesses=1, settle_events=settle,
                             sink=lambda b, out=written: out.append(len(b)))
        assert not stream.settling
        run(stream, rng, 5000)
        assert sum(written) == 2000 and stream.raised == [] and stream.w_max == 0.5
    assert stream.truncation_bias == 0.0  # kept overweights: no truncation


def test_only_the_first_settle_events_are_held() -> None:
    """The held events go to the sink once there are settle_events of them; the rest are
    final when drawn, against w_max as it then stands."""
    rng = np.random.default_rng(3)
    written: list[int] = []
    stream = EventStream(5000, 2.0, sigma=1.0, unweighter=Unweighter(), norm=1.0, rng=rng,
                         n_subprocesses=1, settle_events=1000,
                         sink=lambda b: written.append(len(b)))
    w_max_at_flush = []
    while not stream.complete:
        if stream.done < stream.n_events:
            w = weights(rng, 2000)
            stream.observe(w)
            _, _, e = stream.take(accept(w, stream.w_max, rng))
            stream.emit(batch_of(e, 1.0), e)
            if not stream.settling and not w_max_at_flush:
                w_max_at_flush.append(stream.w_max)
        stream.settle()
        if not stream.settling and not w_max_at_flush:
            w_max_at_flush.append(stream.w_max)
    assert sum(written) == 5000 and stream.raised
    assert stream.w_max == w_max_at_flush[0]  # no rise after the held events went


def drawn_until_complete(stream: EventStream, rng: np.random.Generator, draw: int) -> int:
    """:func:`run`, returning the points drawn."""
    points = 0
    while not stream.complete:
        if stream.done < stream.n_events:
            w = weights(rng, draw)
            points += draw
            stream.observe(w)
            _, _, e = stream.take(accept(w, stream.w_max, rng))
            stream.emit(batch_of(e, stream.sigma), e)
        stream.settle()
    return points


def test_draws_lower_a_w_max_set_too_high_and_the_events_need_fewer_points() -> None:
    """w_max three times the truncation-defined one (one outlier in the calibration
    sample): once the draws have four times the calibration's points they lower it to their
    own truncation-defined maximum, and the events take far fewer points than against
    the first w_max. The events follow the accept/reject at the final w_max (those
    accepted before against the higher one are the same events, truncated less)."""
    rng = np.random.default_rng(4)
    reference = weights(rng, 4_000_000)
    honest = truncation_max_weight(reference, 1e-3)
    points = {}
    streams = {}
    for lower_after in (0, 50_000):
        stream = EventStream(30_000, 3 * honest, sigma=1.0, unweighter=Unweighter(),
                             norm=1.0, rng=rng, n_subprocesses=1, settle_events=200_000,
                             lower_after=lower_after)
        points[lower_after] = drawn_until_complete(stream, rng, 50_000)
        streams[lower_after] = stream
    fixed, lowered = streams[0], streams[50_000]
    assert fixed.lowered == [] and fixed.w_max == 3 * honest
    assert len(lowered.lowered) == 1 and lowered.w_max == lowered.lowered[0]
    assert lowered.w_max == pytest.approx(honest, rel=0.02)
    assert lowered.raised == [] and lowered.thinned == 0
    assert points[50_000] < 0.5 * points[0]
    assert lowered.truncation_bias <= 1e-3
    e = np.concatenate([b.scales for b in lowered.kept])
    assert len(e) == 30_000
    assert chi2_p(e, reference, lowered.w_max) > 1e-3
    assert chi2_p(e, reference, honest / 3) < 1e-6  # the test has power


def test_w_max_is_not_lowered_before_the_draws_have_four_calibrations_of_points(
        ) -> None:
    """lower_after is the calibration sample's size: the draws of a run shorter than
    four times that leave w_max as calibrated, as does a stream that does not settle."""
    rng = np.random.default_rng(5)
    for settle, lower_after in ((200_000, 10_000_000), (0, 10_000)):
        stream = EventStream(5000, 60.0, sigma=1.0, unweighter=Unweighter(), norm=1.0,
                             rng=rng, n_subprocesses=1, settle_events=settle,
                             lower_after=lower_after)
        drawn_until_complete(stream, rng, 50_000)
        assert stream.lowered == [] and stream.w_max == 60.0


def test_a_rise_after_a_fall_thins_each_held_event_against_its_own_w_max() -> None:
    """Draws of light weights (uniform in [0, 1]) lower w_max from 30 as far as it goes
    (30 / 16); draws with the heavy part then raise it to about 20. The held events
    accepted against 30 are all kept (their acceptance was already below the new
    one's); those accepted against 30 / 16 are thinned by
    min(1, w / w_new) / min(1, w / w_low)."""
    rng = np.random.default_rng(6)
    stream = EventStream(20_000, 30.0, sigma=1.0, unweighter=Unweighter(), norm=1.0,
                         rng=rng, n_subprocesses=1, settle_events=200_000, lower_after=5000)
    emitted = {1: 0, 2: 0, 3: 0}
    while not stream.complete:
        if stream.done < stream.n_events:
            phase = 3 if stream.raised else 2 if stream.lowered else 1
            w = rng.random(2000) if phase == 1 else weights(rng, 20_000)
            stream.observe(w)
            _, _, e = stream.take(accept(w, stream.w_max, rng))
            events = batch_of(e, 1.0)
            events.channel[:] = phase
            emitted[phase] += len(e)
            stream.emit(events, e)
        stream.settle()
    assert stream.lowered == [30.0 / LOWER_RANGE]
    assert stream.raised and stream.w_max == pytest.approx(20.0, rel=0.05)
    kept = np.concatenate([b.channel for b in stream.kept])
    assert len(kept) == 20_000
    assert emitted[1] > 50 and int((kept == 1).sum()) == emitted[1]
    assert 0 < int((kept == 2).sum()) < emitted[2] / 2


def test_a_draw_observed_as_a_tensor_is_pooled_as_its_array() -> None:
    """The device path hands the draw's weights over as a tensor: the stream lowers and
    raises w_max exactly as with the host array."""
    import torch

    outcomes = []
    for as_tensor in (False, True):
        rng = np.random.default_rng(7)
        stream = EventStream(30_000, 60.0, sigma=1.0, unweighter=Unweighter(), norm=1.0,
                             rng=rng, n_subprocesses=1, settle_events=200_000,
                             lower_after=20_000)
        while not stream.complete:
            if stream.done < stream.n_events:
                w = weights(rng, 50_000)
                passed = accept(w, stream.w_max, rng)
                stream.observe(torch.from_numpy(w) if as_tensor else w)
                _, _, e = stream.take(passed)
                stream.emit(batch_of(e, 1.0), e)
            stream.settle()
        outcomes.append((stream.lowered, stream.raised, stream.w_max,
                         np.concatenate([b.scales for b in stream.kept])))
    (low_a, up_a, w_a, e_a), (low_t, up_t, w_t, e_t) = outcomes
    assert low_a and low_a == low_t and up_a == up_t and w_a == w_t
    np.testing.assert_array_equal(e_a, e_t)
