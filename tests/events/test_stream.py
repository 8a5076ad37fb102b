"""Events held while w_max settles on their draws: the thinning is an exact re-unweighting."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from madnis_py.events import Unweighter
from madnis_py.events.generator import EventBatch
from madnis_py.events.stream import EventStream
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
            _, _, e = stream.take(accept(w, stream.w_max, rng))
            stream.emit(batch_of(e, 1.0), e)
            if not stream.settling and not w_max_at_flush:
                w_max_at_flush.append(stream.w_max)
        stream.settle()
        if not stream.settling and not w_max_at_flush:
            w_max_at_flush.append(stream.w_max)
    assert sum(written) == 5000 and stream.raised
    assert stream.w_max == w_max_at_flush[0]  # no rise after the held events went
