"""Points evaluated before generation, kept so that they can become events too.

madevent writes events from every iteration of its survey and refinement; here the same
holds for the points a run evaluates anyway: the VEGAS survey's last rounds and the
integration. Any weighted sample of the cross section can be unweighted against the
generation's ``w_max``, whatever density drew it: a point of channel ``i`` drawn with
density ``g_i`` among ``n_i`` of ``n`` points has the event weight
``w = alpha_i f / g_i * n / n_i``, so that the accepted points have the density

    sum_i n_i g_i(x) * w(x) / w_max = n f(x) / w_max        (sum_i alpha_i = 1),

the distribution of the fresh events, truncated at the same ``w_max``. A sample drawn
from a worse density has more of its cross section above ``w_max``; the generator takes
recorded draws only while their pooled share above ``w_max`` stays within the truncation
the run allows (:meth:`~madnis_py.events.generator.EventGenerator.generate`), so the
bias of the events stays within the card's ``max_overweight_truncation``.

Which draws are worth it is a trade (:func:`plan_recycling`): a survey round a little
worse than the final sampler gives many events, but taking it within the truncation
means a higher ``w_max``, which lowers the acceptance of every fresh draw. The plan
takes the draws, best first, as long as the fresh integrand calls still needed for
``N`` events keep falling.

The records are the integrand's first evaluation of every point
(:meth:`~madnis_py.integrand.TorchChannels.recording`), kept for points with ``w > 0``
only (a zero weight is never accepted) and without the channel prior.

**Thinned rounds.** A survey round of a process with many channels has millions of points
(p p > e+ e- j j QCD=0: 8.4 million in its last round, 3.4 GB of records) and gives
events at an efficiency of 1e-3. :class:`RoundRecorder` can thin such a round as each
channel's points come in, the first stage of a two-stage unweighting: with a floor ``c``,
a point is kept with probability ``min(1, w / c)`` at the weight ``max(w, c)``. Accepting
a kept point later with probability ``min(1, max(w, c) / w_max)`` accepts every point
with probability ``min(1, w / w_max)``, exactly as the whole round would, for every
``w_max >= c`` (:attr:`RecordedDraw.thinned_at`; a draw thinned above the ``w_max`` of
the events is not taken). The kept weights are an unbiased sample of the round's cross
section, above ``c`` point for point, so the plan's shares above ``w_max`` hold for them
as for the whole round. ``c`` is the lowest floor at which the round keeps about
``max_points`` points (:func:`thinning_floor`, from the round before), 0 (the whole
round) where all of them fit: as far below ``w_max`` as the memory allows. (A floor tied
to the previous round's maximum weight instead, a tenth of its truncation-defined one, was
above the events' ``w_max`` on VBF Z: one large weight in a round raises its maximum
twenty-fold.)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from madnis_py.events.unweight import share_above, truncation_max_weight
from madnis_py.integrand import EvaluationRecord, Recording

__all__ = ["RecordedDraw", "RoundRecorder", "plan_recycling", "thinning_floor"]

#: Weights a thinning floor is fitted on at most (a random subset of the round before).
_FIT_POINTS = 200_000


@dataclass(eq=False)  # a draw is itself: compared by identity, not by its arrays
class RecordedDraw:
    """A weighted sample with the record of every point that can be accepted.

    Attributes
    ----------
    source : str
        Where it comes from (``"survey round 9"``, ``"integration"``), for the summary.
    weights : (m,)
        Event weights of the points kept (all > 0), in record order.
    records : list of EvaluationRecord
        Their first evaluation, ``m`` points in all.
    n_points : int
        Points of the whole sample (those with ``w = 0`` included).
    thinned_at : float
        0 for a whole sample; else the floor ``c`` it was thinned with (see the module
        docstring): its points stand for the sample's events for any ``w_max >= c``.
    """

    source: str
    weights: np.ndarray
    records: list[EvaluationRecord]
    n_points: int
    thinned_at: float = 0.0

    @classmethod
    def of(cls, source: str, weights: np.ndarray,
           records: list[EvaluationRecord]) -> RecordedDraw:
        """The draw of event weights ``weights`` (n,) recorded as ``records`` (``n``
        points in all, in the same order), kept where ``w > 0``.

        Raises
        ------
        ValueError
            The records do not hold ``n`` points, or a weight is negative or not finite.
        """
        weights = np.asarray(weights, dtype=np.float64)
        n = sum(len(r) for r in records)
        if weights.ndim != 1 or len(weights) != n:
            raise ValueError(f"{source}: {len(weights)} event weights for {n} recorded "
                             "points: the records do not belong to this draw")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"{source}: event weights must be finite and >= 0")
        kept: list[EvaluationRecord] = []
        parts: list[np.ndarray] = []
        start = 0
        for rec in records:
            w = weights[start:start + len(rec)]
            start += len(rec)
            on = w > 0
            if on.any():
                kept.append(rec.kept(on))
                parts.append(w[on])
        return cls(source, np.concatenate(parts) if parts else np.zeros(0), kept, n)

    def __len__(self) -> int:
        return len(self.weights)


class RoundRecorder:
    """Cuts a running recording into rounds and keeps the last ``keep`` of them.

    Call it after every round (the survey's ``on_round``) with that round's event
    weights: the records added to ``records`` since the last call are that round's;
    they move into a :class:`RecordedDraw` and ``records`` is emptied, so that only the
    last ``keep`` rounds are held in memory. With ``thin`` and ``max_points``, every round
    after the first is thinned instead as it runs (see the module docstring): call
    :meth:`channel_done` after each channel's points of the round (the survey's
    ``on_channel``) with their event weights.

    Parameters
    ----------
    records
        The list a :meth:`~madnis_py.integrand.TorchChannels.recording` fills.
    keep
        Rounds kept (>= 0; 0 keeps none).
    max_points
        Points kept at most (those with ``w > 0``): older rounds are let go first, the
        last round is always kept (None: no limit). A recorded point takes about 300
        bytes with a 2 -> 3 process. A round of more points than that is not recorded
        at all unless it is thinned (:meth:`before_round` pauses the recording): its
        records would be held whole until it ends (p p > e+ e- j j QCD=0: rounds of 14
        million points, 18 GB); a thinned round keeps about ``max_points`` at most.
    label
        The draws' source, followed by the round number.
    thin
        Thin the rounds after the first to about ``max_points`` points each (see the
        module docstring) instead of leaving out those too large to hold.
    seed
        Seeds the thinning's random numbers.
    """

    def __init__(self, records: list[EvaluationRecord], *, keep: int = 2,
                 max_points: int | None = None, label: str = "survey round",
                 thin: bool = False, seed: int = 0) -> None:
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        if max_points is not None and max_points < 0:
            raise ValueError(f"max_points must be >= 0, got {max_points}")
        self.records = records
        self.keep = keep
        self.max_points = max_points
        self.label = label
        self.thin = thin
        self.rounds = 0
        self._draws: deque[RecordedDraw] = deque(maxlen=keep)
        self._skipping = False  # the round under way is not recorded (before_round)
        self._rng = np.random.default_rng([int(seed), 0x746869])  # "thi"
        self._last: np.ndarray | None = None  # the event weights of the round before
        self._floor: float | None = None  # the round under way is thinned at it
        self._kept: list[EvaluationRecord] = []
        self._kept_weights: list[np.ndarray] = []

    def before_round(self, points: int) -> bool:
        """Before a round of ``points`` points: fix its thinning floor, or pause the
        recording (a :class:`~madnis_py.integrand.Recording`) when the round is kept
        whole and alone is more than ``max_points``. Returns whether the round will be
        kept for events."""
        self._floor = None
        if (self.keep and self.thin and self.max_points is not None
                and self._last is not None):
            self._floor = thinning_floor(self._last, points=points,
                                         max_points=self.max_points, rng=self._rng)
        self._skipping = self.keep == 0 or (self._floor is None and self.max_points is not None
                                            and points > self.max_points)
        if isinstance(self.records, Recording):
            self.records.paused = self._skipping
        return not self._skipping

    def channel_done(self, event_weights: np.ndarray) -> None:
        """After one channel's points of a thinned round, with their event weights (in
        the order of the records added since the last call): keep each with probability
        ``min(1, w / c)`` at weight ``max(w, c)``. Does nothing in a round kept whole."""
        if self._skipping or self._floor is None:
            return
        w = np.asarray(event_weights, dtype=np.float64)
        records = list(self.records)
        if sum(len(r) for r in records) != len(w):
            raise ValueError(f"{len(w)} event weights for {sum(len(r) for r in records)} "
                             "recorded points: the records do not belong to this channel")
        self.records.clear()
        floor = self._floor
        keep = self._rng.random(len(w)) * floor < w  # w >= c always, w = 0 never
        start = 0
        for rec in records:
            on = keep[start:start + len(rec)]
            part = w[start:start + len(rec)]
            start += len(rec)
            if on.any():
                self._kept.append(rec.kept(on))
                self._kept_weights.append(np.maximum(part[on], floor))

    def __call__(self, event_weights: np.ndarray) -> None:
        self.rounds += 1
        weights = np.asarray(event_weights, dtype=np.float64)
        self._last = weights if weights.sum() > 0 else self._last
        if self._skipping:  # not recorded: nothing to keep
            self.records.clear()
            return
        if self._floor is not None:
            if len(self.records):
                raise ValueError("a thinned round ended with records that no channel_done "
                                 "took: call it after every channel's points")
            kept = (np.concatenate(self._kept_weights) if self._kept_weights
                    else np.zeros(0))
            draw = RecordedDraw(f"{self.label} {self.rounds}", kept, self._kept,
                                len(weights), thinned_at=self._floor)
            self._kept, self._kept_weights = [], []
        else:
            draw = RecordedDraw.of(f"{self.label} {self.rounds}", weights,
                                   list(self.records))
        self._draws.append(draw)
        while (self.max_points is not None and len(self._draws) > 1
               and sum(len(d) for d in self._draws) > self.max_points):
            self._draws.popleft()
        self.records.clear()

    @property
    def draws(self) -> list[RecordedDraw]:
        """The last ``keep`` rounds, the latest first."""
        return list(reversed(self._draws))


def thinning_floor(weights: np.ndarray, *, points: int, max_points: int,
                   rng: np.random.Generator | None = None) -> float:
    """The lowest floor ``c`` at which a round of ``points`` points keeps at most
    ``max_points`` on average, from the event weights of the round before:
    ``points / len(weights) * sum(min(1, w / c)) = max_points`` (on at most 200,000 of
    the weights, drawn with ``rng``), or 0 where all of its points with ``w > 0`` fit."""
    w = np.asarray(weights, dtype=np.float64)
    w = w[w > 0]
    if len(w) == 0 or points * len(w) / len(weights) <= max_points:
        return 0.0
    scale = points / len(weights)
    if len(w) > _FIT_POINTS:
        scale *= len(w) / _FIT_POINTS
        w = (rng or np.random.default_rng(0)).choice(w, _FIT_POINTS, replace=False)

    def kept(c: float) -> float:
        return scale * float(np.minimum(w / c, 1.0).sum())

    top = float(w.max())
    hi = top * max(1.0, kept(top) / max(max_points, 1))  # kept(hi) <= max_points
    lo = float(w.min())  # kept(lo) = scale * len(w) > max_points
    for _ in range(60):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if kept(mid) > max_points else (lo, mid)
    return hi


def plan_recycling(calibration: np.ndarray, draws: Sequence[RecordedDraw], n_events: int,
                   truncation: float, *, floor: float = 0.0
                   ) -> tuple[float, list[RecordedDraw]]:
    """The ``w_max`` and the recorded draws that need the fewest fresh integrand calls
    for ``n_events`` events, with at most a share ``truncation`` of sigma above
    ``w_max`` both in the fresh draws and in the draws taken.

    ``w_0`` is the calibration sample's truncation-defined maximum weight (the fresh
    draws' share above it is ``truncation``). The draws are ranked by their share above
    ``w_0``; for each leading set ``S`` of them ``w_max(S)`` is the larger of ``w_0`` and
    their pooled truncation-defined maximum, they give ``sum min(w / w_max, 1)`` events,
    and the events still missing cost ``missing / a`` fresh calls, ``a`` the
    calibration sample's acceptance ``<min(w / w_max, 1)>``. The set with the fewest
    fresh calls is taken (the smaller one on a tie), best draw first: every leading part
    of it is then within the truncation too.

    Parameters
    ----------
    calibration
        Event weights of the sampler that generates (the integration's).
    draws
        Candidate draws (the integration's own recorded draw among them); one thinned
        above ``w_0`` (:attr:`RecordedDraw.thinned_at`) is none.
    n_events
        Events the run asks for.
    truncation
        The largest share of sigma above ``w_max`` (``max_overweight_truncation``).
    floor
        The least ``w_max`` (one that fresh draws have checked,
        :meth:`~madnis_py.events.generator.EventGenerator.validate`).
    """
    w0 = max(truncation_max_weight(calibration, truncation), floor)
    # a draw thinned above w0 would not give the events of its whole sample
    ranked = sorted((d for d in draws if len(d) and d.thinned_at <= w0),
                    key=lambda d: share_above(d.weights, w0))

    def fresh_calls(w_max: float, taken: Sequence[RecordedDraw]) -> float:
        got = sum(float(np.minimum(d.weights / w_max, 1.0).sum()) for d in taken)
        acceptance = float(np.minimum(calibration / w_max, 1.0).mean())
        return max(n_events - got, 0.0) / acceptance

    best = (fresh_calls(w0, []), w0, 0)
    for k in range(1, len(ranked) + 1):
        pooled = np.concatenate([d.weights for d in ranked[:k]])
        w_max = max(w0, truncation_max_weight(pooled, truncation))
        calls = fresh_calls(w_max, ranked[:k])
        if calls < best[0]:
            best = (calls, w_max, k)
    return best[1], ranked[:best[2]]
