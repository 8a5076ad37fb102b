"""When to stop training: the wall time to N unweighted events as the objective.

A run is asked for ``N`` unweighted events. After ``k`` training steps that took
``T_k`` seconds (the measurements included), generating them is predicted to take

    T_k + N / (eps_k * r_k),

with ``eps_k = <w> / w_max`` the unweighting efficiency of the event weights at that point
(``w_max`` the truncation-defined one of the unweighting,
:func:`~madnis_py.events.unweight.truncation_max_weight` with a share ``1e-3`` of the
cross section above it) and ``r_k`` the weighted points per second of generation (sampling
and integrand call, measured on the same points). Costs per accepted event (its second
evaluation with details, writing it) are the same whatever is trained, so they are left
out: they shift the prediction, not the decision.

Training is worth going on as long as this total keeps falling: :class:`StoppingRule`
stops it when the predicted total has not improved for ``patience`` measurements, or when
the gain in generation time over the last ``patience`` measurement windows is below what
those windows cost; in either case only once the training since the best measurement has
cost a share ``explore`` of what is still at stake (the generation time a perfect flow,
``eps = 1``, would save): learning curves have plateaus, and with many events a plateau
is cheap to sit out. The rule sees a running median of the measured efficiencies: a
truncation ``w_max`` is set by the few largest weights, and one sample that caught (or
missed) a huge weight must neither stop training nor become the best.

The probe itself is skipped when its integrand calls alone, or its steps at their fixed
cost (every channel's flow evaluated and differentiated, whatever the batch: measured on
one channel before the first step by the caller), would cost more than a perfect flow
could save over the base maps (few events left to generate, base maps that are already
nearly perfect, or a thousand channels: VBF Z's first step took 24 s where a perfect flow
could save 5 s), and abandoned after its first step when that step's time,
times the probe's steps, exceeds a share :data:`PROBE_SHARE` of it: the probe only
buys the first measurement, and the flows need many more steps to come near a perfect
one (p p > e+ e- j with madevent's 48 channels spent 8-10 s on probes that could have
saved 8 s at most, and lost; so did g g > t t~ g's, 3 s of 8.5). The first measurement
after a short probe of flow training is compared with the base maps alone (VEGAS, or
flat without pre-training): the flows are not trained further when even a perfect flow
(``eps = 1``) at the measured sampling rate could not generate faster than the base
maps, or when the probe did not raise the efficiency at all; and they are switched off
at the end when their best measurement does not generate faster than the base maps
(``"vegas_alone"``, what MadGraph 7 does for two-body final states).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from madnis_py.events.unweight import DEFAULT_TRUNCATION, truncation_max_weight

__all__ = ["PROBE_SHARE", "TARGETS", "Measurement", "StoppingRule", "Target",
           "TrainingDecision", "truncation_efficiency"]

#: The share of what a perfect flow could save that the probe's measured cost may reach.
PROBE_SHARE = 0.25

Target = Literal["steps", "events"]
#: The training targets: a fixed number of steps, or the shortest time to N events.
TARGETS: tuple[str, ...] = ("steps", "events")

Reason = Literal["max_steps", "no_improvement", "marginal_gain_below_cost", "vegas_alone"]


def truncation_efficiency(weights: npt.ArrayLike,
                          truncation: float = DEFAULT_TRUNCATION) -> float:
    """``eps = <w> / w_max`` with the unweighting's truncation-defined ``w_max`` (a share
    ``truncation`` of the cross section above it); 0 when every weight is zero."""
    w = np.asarray(weights, dtype=np.float64)
    if not np.any(w > 0):
        return 0.0
    return float(w.mean() / truncation_max_weight(w, truncation))


@dataclass(frozen=True)
class Measurement:
    """One measurement of the generation cost.

    Attributes
    ----------
    steps : int
        Flow training steps before it (0: the base maps alone).
    train_s : float
        Seconds of this training so far, this and earlier measurements included.
    eps : float
        Unweighting efficiency ``<w> / w_max`` of the measured weights.
    rate : float
        Weighted points per second of generation (sampling and integrand call).
    """

    steps: int
    train_s: float
    eps: float
    rate: float

    def generation_s(self, n_events: int) -> float:
        """Predicted seconds to generate ``n_events`` unweighted events:
        ``N / (eps * r)`` (infinite for ``eps = 0``)."""
        if n_events == 0:
            return 0.0
        if self.eps <= 0 or self.rate <= 0:
            return math.inf
        return n_events / (self.eps * self.rate)

    def total_s(self, n_events: int) -> float:
        """Predicted seconds to ``n_events`` events when training stops here."""
        return self.train_s + self.generation_s(n_events)


@dataclass
class TrainingDecision:
    """What the training decided, for the run summary.

    Attributes
    ----------
    target : {"steps", "events"}
    reason : str
        ``"max_steps"`` (the step limit was reached), ``"no_improvement"``,
        ``"marginal_gain_below_cost"`` or ``"vegas_alone"`` (the flows are not used).
    steps : int
        Flow training steps taken.
    chosen_steps : int
        Steps of the measurement whose flows are kept (0: the base maps alone).
    predicted_total_s : float or None
        Training time plus the predicted generation time of ``n_events`` at the chosen
        point (None for the ``"steps"`` target, which measures nothing).
    n_events : int
    use_flow : bool
        Whether the flows are used after the decision.
    eps_base, eps_final : float or None
        The measured efficiency of the base maps alone and at the chosen point.
    measurements : list of dict
        Every :class:`Measurement`, in order.
    """

    target: str
    reason: str
    steps: int
    chosen_steps: int = 0
    predicted_total_s: float | None = None
    n_events: int = 0
    use_flow: bool = True
    eps_base: float | None = None
    eps_final: float | None = None
    measurements: list[dict[str, float]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON)."""
        return asdict(self)


class StoppingRule:
    """Decides, one measurement at a time, whether training is still worth its time.

    Parameters
    ----------
    n_events : int
        The unweighted events the run asks for.
    patience : int
        Measurements without a better predicted total (and the windows over which the
        gain is compared with the cost) before training stops; >= 1.
    explore : float
        Training time since the best measurement, as a share of the generation time
        still at stake there, that a plateau may cost before training stops; >= 0
        (0: stop after ``patience`` measurements whatever is at stake).
    smooth : int
        The rule sees each flow measurement's efficiency as the median of it and the
        ``smooth - 1`` flow measurements before it (:attr:`smoothed`): a single sample
        whose truncation ``w_max`` is set by one huge weight (or missed one) neither
        stops training nor becomes the best; >= 1 (1: as measured).

    Attributes
    ----------
    measurements, smoothed : list of Measurement
        The flow measurements as measured, and as the rule sees them.
    """

    def __init__(self, n_events: int, *, patience: int = 3, explore: float = 0.1,
                 smooth: int = 3) -> None:
        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        if not explore >= 0:
            raise ValueError(f"explore must be >= 0, got {explore}")
        if smooth < 1:
            raise ValueError(f"smooth must be >= 1, got {smooth}")
        self.n_events = n_events
        self.patience = patience
        self.explore = explore
        self.base: Measurement | None = None
        self.smooth = smooth
        self.measurements: list[Measurement] = []
        self.smoothed: list[Measurement] = []

    def set_base(self, m: Measurement) -> None:
        """The base maps alone, before any flow training."""
        self.base = m

    @property
    def best(self) -> Measurement | None:
        """The (smoothed) flow measurement with the smallest predicted total (None
        before one)."""
        if not self.smoothed:
            return None
        return min(self.smoothed, key=lambda m: m.total_s(self.n_events))

    def worth_probing(self, probe_calls: int, probe_s: float = 0.0,
                      share: float = 1.0) -> bool:
        """Before the probe (with the base measured): whether its cost is less than a
        ``share`` of what a perfect flow could save at most, ``N / (eps r) - N / r`` at
        the base maps' rate ``r`` (a flow samples more slowly). The cost is the larger
        of its ``probe_calls`` integrand calls at the base maps' rate (a lower bound,
        before any step) and ``probe_s`` seconds (extrapolated from its first step).
        Not when no events are left to generate."""
        if self.base is None:
            raise RuntimeError("worth_probing needs the base measurement")
        b = self.base
        if self.n_events == 0 or b.rate <= 0:
            return False
        cost = max(probe_calls / b.rate, probe_s)
        return share * (b.generation_s(self.n_events) - self.n_events / b.rate) > cost

    def flows_start(self) -> bool:
        """After the probe (the first flow measurement): whether the flows are worth
        training on. Not when even a perfect flow (``eps = 1`` at the measured rate)
        would generate more slowly than the base maps (``eps_base * r_base >= r``), nor
        when the probe did not raise the efficiency at all."""
        if self.base is None or not self.measurements:
            raise RuntimeError("flows_start needs the base measurement and one after it")
        probe = self.measurements[0]
        return (self.base.eps * self.base.rate < probe.rate
                and probe.eps > self.base.eps)

    def flows_win(self) -> bool:
        """At the end: whether the best flow measurement generates faster than the base
        maps (the training time is spent either way)."""
        best = self.best
        if self.base is None or best is None:
            return False
        return best.generation_s(self.n_events) < self.base.generation_s(self.n_events)

    def add(self, m: Measurement) -> Reason | None:
        """Record a measurement after flow training; the reason to stop, or None to go on.

        Stops with ``"no_improvement"`` when none of the last ``patience`` measurements
        improved on the best total before them (all of them :attr:`smoothed`), and with ``"marginal_gain_below_cost"``
        when a straight line through the predicted generation times of the last
        ``patience + 1`` measurements, against the training time, falls by less than
        one second per second of training (a line: one noisy measurement does not
        decide). Either only once :meth:`at_stake` allows it.
        """
        self.measurements.append(m)
        eps = float(np.median([x.eps for x in self.measurements[-self.smooth:]]))
        self.smoothed.append(replace(m, eps=eps))
        p = self.patience
        ms = self.smoothed
        if len(ms) <= p:
            return None
        n = self.n_events
        before = min(x.total_s(n) for x in ms[:-p])
        reason: Reason | None = None
        if min(x.total_s(n) for x in ms[-p:]) >= before:
            reason = "no_improvement"
        elif -self.generation_slope(ms[-p - 1:]) < 1.0:
            reason = "marginal_gain_below_cost"
        best = self.best
        assert best is not None
        if reason is not None and m.train_s - best.train_s < self.explore * self.at_stake():
            return None
        return reason

    def at_stake(self) -> float:
        """Generation seconds a perfect flow would save over the best measurement:
        ``N / (eps r) - N / r`` there (0 before a measurement)."""
        best = self.best
        if best is None or best.rate <= 0:
            return 0.0
        return max(best.generation_s(self.n_events) - self.n_events / best.rate, 0.0)

    def generation_slope(self, ms: list[Measurement]) -> float:
        """Least-squares slope of the predicted generation time against the training
        time over ``ms``: generation seconds gained (negative) per training second;
        0 where it is undefined (fewer than two distinct times, an infinite time)."""
        t = np.array([m.train_s for m in ms])
        g = np.array([m.generation_s(self.n_events) for m in ms])
        if len(ms) < 2 or not np.all(np.isfinite(g)) or np.ptp(t) == 0:
            return 0.0
        dt = t - t.mean()
        return float(np.dot(dt, g - g.mean()) / np.dot(dt, dt))
