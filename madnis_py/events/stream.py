"""Accepted events on their way to the sink, while ``w_max`` settles on their own draws.

The calibration sample that fixes ``w_max`` (:mod:`madnis_py.events.unweight`) has a few
hundred points per channel in a process with hundreds of channels; where the weights
are heavy-tailed, the draws of the events then put several times the card's share of
sigma above ``w_max`` (p p > e+ e- j j: 0.5 % against 0.1 %), and fresh draws of the
calibration's size cannot show it (:meth:`~madnis_py.events.generator.EventGenerator.
validate`). The events' own draws, millions of points, can. An :class:`EventStream`
therefore holds the first events back and, once they are all in, measures the share of
sigma above ``w_max`` of all draws so far; beyond twice the truncation it raises
``w_max`` to their truncation-defined maximum (from their sum and their overweights
alone, :func:`~madnis_py.events.unweight.raised_truncation_max_weight`) and thins the
held events: one accepted with probability ``min(1, w / w_old)`` is kept with
probability ``min(1, w / w_new) / min(1, w / w_old)``, so that the held events are
exactly those an accept/reject against the new ``w_max`` keeps. The generator draws
more points for the events thinned away, and the check is made again once they are in.
When it passes, the held events go to the sink and ``w_max`` stays.

The same draws can show that ``w_max`` is too *high*: one weight of the calibration
sample above its share sets the truncation-defined maximum (on p p > e+ e- j j QCD=0 one
point in 1.6 million set it at 8178 instead of about 1600, and the events took 75
million integrand calls instead of 7 million). Events accepted against a higher
``w_max`` are still unit-weight events of the same cross section, truncated less: the
accepted points of a draw of density ``g`` have the density ``g min(1, w / w_max)``,
proportional to ``f`` wherever ``w <= w_max``, for every ``w_max``, so events accepted
against different maxima mix. While the events are held, the stream therefore pools the
weights of all draws taken (from ``w_max / 16`` up; their sum over all points), and each
time their points have doubled past four times the calibration sample's it lowers
``w_max`` to their truncation-defined maximum at *half* the card's share, where that is
at least 10 % lower. Where the weights are heavy-tailed, a sample's truncation-defined
maximum grows with the sample (VBF Z: median 300 on 10^5 points, 760 on 1.6 10^6, 1360
on 4 10^7; ``benchmarks/RESULTS.md``): a pool barely larger than the calibration sample
would lower ``w_max`` on the rare weights it has not met yet (``madnis-py generate``
lowered it to 683 on 200,000 points at the full share, and the end of the hold raised it
to 1610 again), hence the wait and the margin, the mirror of the rise's factor two.
The rise works on the same pool at the end of the hold and thins each held event
against the ``w_max`` it was accepted against; after the hold ``w_max`` stays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from madnis_py.events.unweight import Acceptance, Unweighter, raised_truncation_max_weight

if TYPE_CHECKING:
    from madnis_py.events.generator import EventBatch

__all__ = ["EventStream", "LOWER_RANGE", "LOWER_STEP"]

#: Weights below the first ``w_max`` over this are not pooled: the draws lower ``w_max``
#: at most this far.
LOWER_RANGE = 16.0
#: The draws first check ``w_max`` for a fall when their points are this many times the
#: calibration sample's, then each time they double.
LOWER_FIRST = 4
#: ``w_max`` is lowered where the draws' truncation-defined maximum (at half the share)
#: is at most this fraction of it (no churn of small steps).
LOWER_STEP = 0.9


class EventStream:
    """The events of one generation, tallied and sent to a sink.

    Parameters
    ----------
    n_events
        Events wanted.
    w_max
        The maximum weight as calibrated; :attr:`w_max` follows its rises.
    sigma
        The cross section the events are normalised to (pb).
    unweighter
        The card's maximum-weight method and overweight policy.
    norm
        The normalisation of kept overweights (``overweight="keep"``).
    rng
        Picks the events taken from each draw and the held events thinned away.
    n_subprocesses
        Subprocesses of the process (the events' counts per subprocess).
    sink
        Receives each batch of final events (an LHE writer); ``None`` keeps them in
        :attr:`kept`.
    settle_events
        Events held back while ``w_max`` may rise (0: none; only with the
        truncation-defined maximum weight and truncated overweights).
    lower_after
        Points of the sample ``w_max`` was calibrated on: while events are held, the
        draws may lower ``w_max`` once their points reach :data:`LOWER_FIRST` times this,
        and again each
        time they double (0: ``w_max`` is never lowered).
    on_events
        Called with the change in the number of events taken (negative where held
        events are thinned away): a progress bar.
    """

    def __init__(self, n_events: int, w_max: float, *, sigma: float, unweighter: Unweighter,
                 norm: float, rng: np.random.Generator, n_subprocesses: int,
                 sink: Callable[[EventBatch], None] | None = None, settle_events: int = 0,
                 lower_after: int = 0,
                 on_events: Callable[[int], object] | None = None) -> None:
        self.n_events = int(n_events)
        #: The maximum weight the events are accepted against.
        self.w_max = float(w_max)
        self.sigma = float(sigma)
        self.unweighter = unweighter
        self.norm = float(norm)
        self.rng = rng
        self.sink = sink
        self.settle_events = int(settle_events)
        #: Whether events are still held back and ``w_max`` may rise.
        self.settling = (self.settle_events > 0 and unweighter.method == "truncation"
                         and unweighter.overweight == "truncate")
        #: Whether the draws may still lower ``w_max`` (only while events are held).
        self.lowering = self.settling and lower_after > 0
        self._on_events = on_events
        #: Events taken (held ones included).
        self.done = 0
        #: Final events per subprocess.
        self.counts = np.zeros(n_subprocesses, dtype=np.int64)
        #: Final events above ``w_max``.
        self.overweight = 0
        #: Held events the rises took away.
        self.thinned = 0
        #: ``w_max`` after each rise.
        self.raised: list[float] = []
        #: ``w_max`` after each fall.
        self.lowered: list[float] = []
        #: The written weights of the final events in units of sigma.
        self.written: list[np.ndarray] = []
        #: Final events without a sink.
        self.kept: list[EventBatch] = []
        # the sums over every draw taken: all weights, and their part above w_max (each
        # draw's at the w_max it was taken against)
        self._total = 0.0
        self._excess = 0.0
        # held events: the events, their event weights, the w_max they were accepted at
        self._pending: list[tuple[EventBatch, np.ndarray, float]] = []
        # the weights above _floor of every draw observed, and the draws' points
        self._floor = self.w_max / LOWER_RANGE if self.lowering else self.w_max
        self._pool: list[np.ndarray] = []
        self._pool_total = 0.0  # the sum of the pooled draws' weights
        self._least = 0.0  # w_max is not lowered below (the pooled draws' thinning floors)
        self._points = 0
        self._next_lowering = LOWER_FIRST * int(lower_after)

    @property
    def complete(self) -> bool:
        """All events taken and none held."""
        return self.done >= self.n_events and not self._pending

    @property
    def truncation_bias(self) -> float:
        """The share of sigma above ``w_max`` of all draws taken (the relative bias of
        truncated overweights; 0 when they are kept)."""
        if self.unweighter.overweight != "truncate" or self._total <= 0:
            return 0.0
        return self._excess / self._total

    def observe(self, weights: np.ndarray | torch.Tensor, *, points: int | None = None,
                exact_above: float = 0.0) -> None:
        """A draw the events will be taken from: while ``w_max`` may move, its weights
        above the pool's floor (the first ``w_max`` itself where it can only rise) join
        the pool.

        ``weights`` are the event weights of the whole draw, where the draw is (of a
        tensor, the sum and the weights above the floor come to the host in one copy);
        ``points`` the points it stands for (``len(weights)``, more for a thinned
        recorded draw), and ``exact_above`` its thinning floor (its shares above
        ``w_max`` hold for ``w_max`` above it only: ``w_max`` is not lowered below)."""
        self._points += len(weights) if points is None else int(points)
        self._least = max(self._least, float(exact_above))
        if not self.settling:
            return
        if isinstance(weights, torch.Tensor):
            wt = weights.double()
            packed = torch.cat([wt.sum().reshape(1), wt[wt > self._floor]]).cpu().numpy()
            total, above = float(packed[0]), packed[1:]
        else:
            w = np.asarray(weights, dtype=np.float64)
            total, above = float(w.sum()), w[w > self._floor]
        self._pool_total += total
        self._pool.append(above)

    def take(self, passed: Acceptance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points of one draw's accept/reject to make events of: a random subset of
        the accepted ones (never just the first: draws are ordered by channel) up to the
        events still needed. Returns their indices in the draw, their written weights
        and their event weights; the draw counts toward the share above ``w_max``
        (:meth:`observe` it first)."""
        self._excess += passed.excess
        self._total += passed.total
        pick = np.sort(self.rng.permutation(len(passed))[: self.n_events - self.done])
        idx = passed.indices[pick]
        e = passed.weights[pick]
        ratio = e / self.w_max
        scale = (np.maximum(ratio, 1.0) * self.norm if self.unweighter.overweight == "keep"
                 else np.ones(len(idx)))
        return idx, self.sigma * scale, e

    def emit(self, events: EventBatch, e: np.ndarray) -> None:
        """Events of the points :meth:`take` returned, with their event weights ``e``:
        held while settling, else final."""
        self.done += len(events)
        if self.settling:
            self._pending.append((events, e, self.w_max))
        else:
            self._write(events, e)
        if self._on_events is not None:
            self._on_events(len(events))

    def settle(self) -> None:
        """After a draw, once the held events are all in: where all draws so far put more
        than twice the truncation above ``w_max``, raise it to their truncation-defined
        maximum and thin the held events to it (more draws follow); else write them and
        keep ``w_max``.

        The check waits for the events: earlier, it would fire on the first draws that
        happen to hold a rare large weight and set ``w_max`` from far fewer points (on
        p p > e+ e- j j the draws that followed then truncated 0.2-0.3 of the card's
        share: ``w_max`` too high)."""
        self._lower()
        held = min(self.n_events, self.settle_events)  # the events held back
        if not self.settling or self.done < held:
            return
        u = self.unweighter
        if self._total > 0 and self._excess > 2 * u.truncation * self._total:
            self._raise()  # thins: done may fall below held
        if self.done >= held:
            self.settling = self.lowering = False
            for events, e, _ in self._pending:
                self._write(events, e)
            self._pending.clear()
            self._pool.clear()

    def acceptance(self) -> float | None:
        """``<min(1, w / w_max)>`` of all draws taken at the present ``w_max`` (None
        unless ``w_max`` was lowered and the draws are still pooled)."""
        if not (self.lowered and self.lowering) or self._points == 0:
            return None
        pooled = self._pooled()
        above = pooled[pooled > self.w_max]
        below = self._pool_total - float(above.sum())
        return (below / self.w_max + len(above)) / self._points

    def _pooled(self) -> np.ndarray:
        """The pooled weights, in one array."""
        if len(self._pool) != 1:
            self._pool = [np.concatenate(self._pool) if self._pool else np.zeros(0)]
        return self._pool[0]

    def lower_before(self, weights: Sequence[np.ndarray], points: int,
                     exact_above: float = 0.0) -> None:
        """Before draws known in advance (recorded ones) are unweighted: lower ``w_max``
        as :meth:`settle` would once they were observed, on the pool and them, so that
        none of them is unweighted against a ``w_max`` they show too high. They are not
        pooled: :meth:`observe` each one that is then taken. ``weights``, ``points``
        and ``exact_above`` as in :meth:`observe`, of all of them."""
        if not self.lowering:
            return
        w = np.concatenate(list(weights)) if len(weights) else np.zeros(0)
        self._lower(extra=w[w > self._floor], extra_total=float(w.sum()),
                    extra_points=int(points), least=float(exact_above))

    def _lower(self, extra: np.ndarray | None = None, extra_total: float = 0.0,
               extra_points: int = 0, least: float = 0.0) -> None:
        """Where the draws' points (and ``extra_points`` more) have reached the next
        check: ``w_max`` to the truncation-defined maximum at half the truncation of the
        pool (and ``extra``, of sum ``extra_total``), at least ``w_max / LOWER_RANGE``
        of the first and every pooled draw's thinning floor, where that is at most
        ``LOWER_STEP`` of it."""
        points = self._points + extra_points
        total = self._pool_total + extra_total
        if not self.lowering or points < self._next_lowering or total <= 0:
            return
        self._next_lowering = 2 * points
        pooled = self._pooled() if extra is None else np.concatenate([self._pooled(), extra])
        w_new = raised_truncation_max_weight(pooled, total,
                                             max(self._floor, self._least, least),
                                             self.unweighter.truncation / 2)
        if w_new <= LOWER_STEP * self.w_max:
            self.w_max = w_new
            self.lowered.append(w_new)

    def _raise(self) -> None:
        """``w_max`` to the truncation-defined maximum of the draws, the held events
        thinned to it: one accepted against ``w_a`` is kept with probability
        ``min(1, w / w_new) / min(1, w / w_a)`` (always where ``w_a >= w_new``)."""
        pooled = self._pooled()
        w_new = raised_truncation_max_weight(pooled, self._pool_total, self.w_max,
                                             self.unweighter.truncation)
        if w_new <= self.w_max:
            return
        self.w_max = w_new
        self.raised.append(w_new)
        lost = 0
        for j, (events, e, w_at) in enumerate(self._pending):
            keep = (self.rng.random(len(e)) * np.minimum(1.0, e / w_at)
                    < np.minimum(1.0, e / w_new))
            lost += int(len(e) - keep.sum())
            self._pending[j] = (events.take(np.flatnonzero(keep)), e[keep], w_at)
        self.thinned += lost
        self.done -= lost
        if self._on_events is not None and lost:
            self._on_events(-lost)
        self._excess = float(np.maximum(pooled - w_new, 0.0).sum())

    def _write(self, events: EventBatch, e: np.ndarray) -> None:
        """Final events: tallied, and to the sink."""
        if not len(events):
            return
        self.counts += np.bincount(events.subprocess, minlength=len(self.counts))
        self.overweight += int((e > self.w_max).sum())
        self.written.append(events.weights / self.sigma)
        if self.sink is not None:
            self.sink(events)
        else:
            self.kept.append(events)
