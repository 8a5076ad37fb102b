"""VEGAS pre-training as a survey: every channel's map adapted in rounds of a growing,
stratified budget, for as long as it shortens the time to N events.

The channels' VEGAS maps (``vegas.AdaptiveMap``, no stratification inside a channel) are
adapted together, one round at a time. Round ``k`` draws ``n_k = points * C * growth^k``
points in all (``C`` active channels), shared among the channels in proportion to the
standard deviations of their weights in the round before (the stratified optimum, as in
training and generation), each channel at least ``points // 10``. A channel's points are
drawn from its map with ``floor`` of the uniform density mixed in
(:func:`~madnis_py.training.channel_sampler.floored_map`, what the channel samples after
pre-training), and the map is trained on them with ``(f J_V)^2`` at their coordinates
``y = V^-1(x)`` in its own map ``V``: VEGAS adapts to the average of its training data
per increment, which does not depend on how densely the points fill the increments.

Every round is also a measurement of the generation cost: its event weights
``alpha_i f / q_i * n / n_i`` are those unweighting would see, so their truncation-defined
efficiency ``eps`` predicts that ``n_events`` unweighted events cost ``n_events / eps``
integrand calls. With ``n_events > 0`` the survey stops once its own calls reach that
prediction (``"balanced"``): adaptation never costs more than the events it speeds up,
and a process whose events are cheap is not surveyed for longer than they take. The rule
compares levels, not one round with the next: a truncation-defined ``w_max`` is set by
the rarest, largest weights, which small samples miss, so the efficiency of a round falls
with its size and a round-by-round comparison stops too early on peaked integrands
(measured on e+ e- -> mu+ mu- a: it stopped after 3 of 10 rounds at an efficiency of
0.001, where 10 rounds reach 0.015). It counts calls, not seconds, so the decision is
reproducible from the seed. With ``n_events = 0`` the survey runs all ``iterations``
rounds. MadGraph's madevent does the same in spirit (a cheap survey of every channel,
then refinement where the cross section is); the fixed budget of ``iterations x points``
per channel it replaces spent most of a run's integrand calls on channels and rounds
that no longer changed the result (benchmarks/RESULTS.md).

The survey also stops once a round no longer lowers the predicted calls to the events
(``"no_gain"``, from the third round on and once its calls reach half the balance at the
median efficiency of the last three rounds, where a plateau is no longer the noise of
small rounds): its calls so far plus
``(n_events - R) / eps``,
with ``eps`` the median efficiency of the last three rounds and ``R`` the events the last
``recycled_rounds`` rounds give at it when their points are taken for events
(:mod:`madnis_py.events.recycle`). With many events the balance is far off and the
efficiency plateaus after a few rounds (g g > t t~ g: 0.045-0.049 from round 10 on, for
10^5 events), while a process whose small rounds keep improving (p p > e+ e- j) goes on.

The estimate of the integral is the inverse-variance average of each channel's rounds in
the second half of the survey (the first adapt from a flat start), summed over channels.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from madnis_py.events.unweight import DEFAULT_TRUNCATION, check_truncation
from madnis_py.training.channel_sampler import floored_map
from madnis_py.training.results import IterationAverage
from madnis_py.training.stopping import truncation_efficiency

__all__ = ["SurveyResult", "survey"]

#: ``share(channel, x) -> alpha_channel * f`` at points ``x`` (n, d) of the channel's unit
#: hypercube (numpy float64, values >= 0).
Share = Callable[[int, np.ndarray], np.ndarray]


@dataclass
class SurveyResult:
    """What :func:`survey` found.

    Attributes
    ----------
    maps : list
        Per channel, the adapted ``vegas.AdaptiveMap`` (before the floor; None for a
        channel that was not active).
    values, errors : ndarray
        Per channel, the estimate of its share of the integral and its error.
    points : ndarray
        Per channel, the points of the rounds in the estimate.
    sigmas : ndarray
        Per channel, the standard deviation of its weights in the last round (the
        allocation that follows).
    rounds : int
    n_calls : int
        Integrand calls of the whole survey.
    reason : str
        ``"max_iterations"``, ``"balanced"`` (the survey's calls reached the calls
        its efficiency predicts for the events) or ``"no_gain"`` (a round no longer
        lowered the predicted calls to the events).
    measurements : list of dict
        Per round: its points, the calls and seconds since the start, its efficiency
        and its points per second.
    """

    maps: list[Any]
    values: np.ndarray
    errors: np.ndarray
    points: np.ndarray
    sigmas: np.ndarray
    rounds: int
    n_calls: int
    reason: str
    measurements: list[dict[str, float]] = field(default_factory=list)

    @property
    def value(self) -> float:
        return float(self.values.sum())

    @property
    def error(self) -> float:
        return float(math.sqrt(float(np.sum(self.errors ** 2))))

    def as_dict(self) -> dict[str, Any]:
        """The scalars and the measurements (JSON)."""
        return {"rounds": self.rounds, "n_calls": self.n_calls, "reason": self.reason,
                "value": self.value, "error": self.error,
                "measurements": list(self.measurements)}


@dataclass
class _Round:
    means: np.ndarray
    variances: np.ndarray  # of the mean
    counts: np.ndarray
    stds: np.ndarray
    event_weights: np.ndarray


def survey(share: Share, dims: list[int], active: np.ndarray, *, points: int = 2000,
           growth: float = 1.3, iterations: int = 10, floor: float = 0.3, ninc: int = 50,
           alpha: float = 0.5, n_events: int = 0, seed: int = 0,
           progress: Callable[[int], None] | None = None,
           on_round: Callable[[np.ndarray], None] | None = None,
           on_channel: Callable[[np.ndarray], None] | None = None,
           recycled_rounds: int = 0,
           before_round: Callable[[int], bool] | None = None,
           truncation: float = DEFAULT_TRUNCATION) -> SurveyResult:
    """Adapt one VEGAS map per active channel (see the module docstring).

    Parameters
    ----------
    share
        The integrand's share of each channel (``alpha_i f``), batched.
    dims
        Dimension of every channel.
    active
        Which channels take part (boolean, one per channel).
    points
        Points per active channel of the first round (>= 20).
    growth
        Factor by which each round's budget exceeds the one before (>= 1).
    iterations
        Largest number of rounds (>= 2: the estimate needs an adapted round).
    floor
        Share of the uniform density mixed into every map's dimension when sampling.
    ninc, alpha
        Increments per dimension of the maps and VEGAS' damping of their adaptation.
    n_events
        Unweighted events the run asks for (the survey stops once its calls reach
        ``n_events / eps``); 0 runs all ``iterations`` rounds.
    seed
        Seeds the channels' random numbers (one stream per channel).
    progress
        Called with 1 after every round; it draws nothing.
    on_round
        Called after every round with its event weights (``alpha_i f / q_i * n / n_i``),
        in the order of that round's ``share`` calls (channel by channel): a recording
        of the evaluations can keep the round's points as events
        (:class:`~madnis_py.events.recycle.RoundRecorder`).
    on_channel
        Called after each channel's ``share`` calls of a round with the event weights of
        its points, in their order (a recording can thin the round's records as they come
        in, :meth:`RoundRecorder.channel_done
        <madnis_py.events.recycle.RoundRecorder.channel_done>`).
    recycled_rounds
        How many of the last rounds will give events (their points at the round's
        efficiency count against ``n_events`` in the predicted total, see the module
        docstring); 0: none.
    before_round
        Called with a round's number of points before it is drawn; it says whether the
        round will give events (a recording declines a round too large to hold,
        :meth:`RoundRecorder.before_round
        <madnis_py.events.recycle.RoundRecorder.before_round>`): only such rounds count
        among the ``recycled_rounds``.
    truncation
        The share of the cross section above the ``w_max`` of every round's efficiency:
        the unweighting's own (the run card's ``max_overweight_truncation``), so that
        the survey predicts the events at the truncation they will be drawn with.
    """
    import vegas

    active = np.asarray(active, dtype=bool)
    if len(dims) != len(active) or not active.any():
        raise ValueError("survey needs one dimension per channel and an active channel")
    if points < 20:
        raise ValueError(f"points must be >= 20, got {points}")
    if not growth >= 1.0:
        raise ValueError(f"growth must be >= 1, got {growth!r}")
    if iterations < 2:
        raise ValueError(f"iterations must be >= 2, got {iterations}")
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor!r}")
    check_truncation(truncation)
    n_channels = len(dims)
    maps = [vegas.AdaptiveMap([[0.0, 1.0]] * d, ninc=ninc) if on else None
            for d, on in zip(dims, active, strict=True)]
    rngs = [np.random.default_rng([seed, i]) for i in range(n_channels)]
    sigmas = np.where(active, 1.0, 0.0)
    total = points * int(active.sum())
    minimum = max(points // 10, 2)
    rounds: list[_Round] = []
    measurements: list[dict[str, float]] = []
    reason = "max_iterations"
    t0 = time.perf_counter()
    calls = 0
    predicted = math.inf  # calls to the events when the survey stops after a round
    for k in range(iterations):
        t_round = time.perf_counter()
        counts = _allocate(int(round(total * growth ** k)), sigmas, active, minimum)
        recorded = True if before_round is None else bool(before_round(int(counts.sum())))
        r = _round(share, maps, rngs, counts, floor, alpha, on_channel)
        rounds.append(r)
        if on_round is not None:
            on_round(r.event_weights)
        calls += int(counts.sum())
        positive = r.stds[active]
        sigmas = np.where(active, np.maximum(r.stds, 1e-3 * float(positive.max())
                                             if positive.max() > 0 else 1.0), 0.0)
        dt = max(time.perf_counter() - t_round, 1e-9)
        eps = truncation_efficiency(r.event_weights, truncation)
        measurements.append({"round": k + 1, "points": int(counts.sum()), "calls": calls,
                             "eps": eps, "seconds": time.perf_counter() - t0,
                             "rate": float(counts.sum()) / dt, "recorded": recorded})
        if progress is not None:
            progress(1)
        stop, predicted = _stop(measurements, n_events, recycled_rounds, predicted)
        if stop is not None:
            reason = stop
            break
    values, errors, used = _estimate(rounds, n_channels)
    return SurveyResult(maps=maps, values=values, errors=errors, points=used,
                        sigmas=sigmas, rounds=len(rounds), n_calls=calls, reason=reason,
                        measurements=measurements)


def _stop(measurements: list[dict[str, float]], n_events: int, recycled_rounds: int,
          predicted: float) -> tuple[str | None, float]:
    """After a round: ``"balanced"``, ``"no_gain"`` or None (go on), and the predicted
    calls to the events to compare the next round with (``predicted`` those after the
    round before, ``inf`` at first)."""
    k = len(measurements) - 1
    calls, eps = measurements[-1]["calls"], measurements[-1]["eps"]
    if n_events <= 0:
        return None, predicted
    if k >= 1 and calls >= n_events / max(eps, 1e-300):
        return "balanced", predicted
    # a plateau counts only once the survey has spent half of what the events cost at
    # its efficiency: small early rounds are too noisy to judge one. The median of the
    # last three rounds, as in the prediction: one round that catches a rare weight
    # falls tenfold (p p > j j j: 1.1e-4 between 1.4e-3 and 8e-4) and kept the check off
    # for a round that cost a fifth of the run
    level = _recent_efficiency(measurements)
    if k >= 2 and calls >= 0.5 * n_events / max(level, 1e-300):
        after = _predicted_calls(measurements, n_events, recycled_rounds)
        if after >= predicted:
            return "no_gain", predicted
        return None, after
    return None, predicted


def _recent_efficiency(measurements: list[dict[str, float]]) -> float:
    """The median efficiency of the last three rounds: one sample's truncation-defined
    efficiency is noisy (a rare weight caught or missed)."""
    return float(np.median([m["eps"] for m in measurements[-3:]]))


def _predicted_calls(measurements: list[dict[str, float]], n_events: int,
                     recycled_rounds: int) -> float:
    """The survey's calls so far plus the fresh calls ``n_events`` events would still
    take after it: at the median efficiency of its last three rounds (one sample's
    truncation-defined efficiency is noisy), less the events of the last
    ``recycled_rounds`` rounds at that efficiency (of those recorded: a round too large
    to hold gives none)."""
    eps = _recent_efficiency(measurements)
    if eps <= 0:
        return math.inf
    recycled = (sum(m["points"] for m in measurements[-recycled_rounds:]
                    if m.get("recorded", True)) * eps
                if recycled_rounds else 0.0)
    return measurements[-1]["calls"] + max(n_events - recycled, 0.0) / eps


def _allocate(n: int, sigmas: np.ndarray, active: np.ndarray, minimum: int) -> np.ndarray:
    """``n`` points shared by ``sigmas`` among the active channels, each at least
    ``minimum``."""
    share = np.where(active, sigmas, 0.0)
    share = share / share.sum()
    return np.where(active, np.maximum(np.floor(n * share), minimum), 0).astype(np.int64)


def _round(share: Share, maps: list[Any], rngs: list[np.random.Generator],
           counts: np.ndarray, floor: float, alpha: float,
           on_channel: Callable[[np.ndarray], None] | None = None) -> _Round:
    """One round: every channel's points drawn from its floored map, evaluated, its map
    trained and adapted (``on_channel`` receives its event weights)."""
    n_channels = len(maps)
    means = np.zeros(n_channels)
    variances = np.zeros(n_channels)
    stds = np.zeros(n_channels)
    events = []
    n_total = int(counts.sum())
    for i, vmap in enumerate(maps):
        n = int(counts[i])
        if vmap is None or n == 0:
            continue
        sampler = floored_map(vmap, floor)
        y = rngs[i].random((n, vmap.dim))
        x = np.empty_like(y)
        jac_f = np.empty(n)
        sampler.map(y, x, jac_f)
        f = np.asarray(share(i, x), dtype=np.float64)
        w = f * jac_f
        if floor > 0:  # the map's own coordinates and Jacobian at the drawn points
            y_map = np.empty_like(x)
            jac_v = np.empty(n)
            vmap.invmap(x, y_map, jac_v)
        else:
            y_map, jac_v = y, jac_f
        vmap.add_training_data(y_map, (f * jac_v) ** 2)
        vmap.adapt(alpha=alpha)
        means[i] = float(w.mean())
        stds[i] = float(w.std())
        variances[i] = stds[i] ** 2 / n if n > 1 else math.inf
        events.append(w * (n_total / n))
        if on_channel is not None:
            on_channel(events[-1])
    return _Round(means, variances, counts, stds, np.concatenate(events))


def _estimate(rounds: list[_Round], n_channels: int) -> tuple[np.ndarray, np.ndarray,
                                                               np.ndarray]:
    """Per channel, the inverse-variance average of the second half of the rounds (and
    its error, and the points in it)."""
    used = rounds[len(rounds) // 2:]
    values = np.zeros(n_channels)
    errors = np.zeros(n_channels)
    points = np.zeros(n_channels, dtype=np.int64)
    for i in range(n_channels):
        parts = [(r.means[i], r.variances[i]) for r in used if r.counts[i] > 0]
        if not parts:
            continue
        points[i] = sum(int(r.counts[i]) for r in used)
        # rounds whose weights were all equal (all zero: none passed the cuts) carry no
        # error to weigh them by; they count only when no round does
        average = IterationAverage()
        for m, v in parts:
            if 0 < v < math.inf:
                average.add(m, v)
        if average.iterations == 0:
            values[i] = float(np.mean([m for m, _ in parts]))
            continue
        values[i], errors[i] = average.mean, average.sdev
    return values, errors, points
