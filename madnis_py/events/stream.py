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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from madnis_py.events.unweight import Acceptance, Unweighter, raised_truncation_max_weight

if TYPE_CHECKING:
    from madnis_py.events.generator import EventBatch

__all__ = ["EventStream"]


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
    on_events
        Called with the change in the number of events taken (negative where held
        events are thinned away): a progress bar.
    """

    def __init__(self, n_events: int, w_max: float, *, sigma: float, unweighter: Unweighter,
                 norm: float, rng: np.random.Generator, n_subprocesses: int,
                 sink: Callable[[EventBatch], None] | None = None, settle_events: int = 0,
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
        #: The written weights of the final events in units of sigma.
        self.written: list[np.ndarray] = []
        #: Final events without a sink.
        self.kept: list[EventBatch] = []
        # the sums over every draw taken: all weights, and their part above w_max
        self._total = 0.0
        self._excess = 0.0
        self._pending: list[tuple[EventBatch, np.ndarray]] = []
        self._above: list[np.ndarray] = []

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

    def take(self, passed: Acceptance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The points of one draw's accept/reject to make events of: a random subset of
        the accepted ones (never just the first: draws are ordered by channel) up to the
        events still needed. Returns their indices in the draw, their written weights
        and their event weights; the draw counts toward the share above ``w_max``."""
        self._excess += passed.excess
        self._total += passed.total
        if self.settling:  # every overweight of the draw is accepted
            self._above.append(passed.weights[passed.weights > self.w_max])
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
            self._pending.append((events, e))
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
        held = min(self.n_events, self.settle_events)  # the events held back
        if not self.settling or self.done < held:
            return
        u = self.unweighter
        if self._total > 0 and self._excess > 2 * u.truncation * self._total:
            self._raise(np.concatenate(self._above))  # thins: done may fall below held
        if self.done >= held:
            self.settling = False
            for events, e in self._pending:
                self._write(events, e)
            self._pending.clear()
            self._above.clear()

    def _raise(self, pooled: np.ndarray) -> None:
        """``w_max`` to the truncation-defined maximum of the draws (their weights above
        it ``pooled``), the held events thinned to it."""
        w_old = self.w_max
        w_new = raised_truncation_max_weight(pooled, self._total, w_old,
                                             self.unweighter.truncation)
        if w_new <= w_old:
            return
        self.w_max = w_new
        self.raised.append(w_new)
        lost = 0
        for j, (events, e) in enumerate(self._pending):
            keep = (self.rng.random(len(e)) * np.minimum(1.0, e / w_old)
                    < np.minimum(1.0, e / w_new))
            lost += int(len(e) - keep.sum())
            self._pending[j] = (events.take(np.flatnonzero(keep)), e[keep])
        self.thinned += lost
        self.done -= lost
        if self._on_events is not None and lost:
            self._on_events(-lost)
        self._excess = float(np.maximum(pooled - w_new, 0.0).sum())
        self._above = [pooled[pooled > w_new]]

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
