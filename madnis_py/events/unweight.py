"""Accept/reject unweighting: from weighted events to unit-weight events.

An event of weight ``w`` is kept with probability ``min(w / w_max, 1)``. With ``w_max`` the
largest weight the kept events all carry the same weight ``w_max`` and follow the weighted
distribution exactly; the expected fraction kept, ``<w> / w_max``, is the unweighting
efficiency. One rare large weight makes that efficiency tiny, so ``w_max`` is taken below
the maximum and the few events above it, the overweights, are either truncated to ``w_max``
(unit weight, the default; the cross section is low by the share above ``w_max``, which is
reported) or kept with their excess weight (unbiased, no longer all of one weight).

The default ``w_max`` is defined by that share: the smallest ``w_max`` for which the part
of the cross section above it, ``sum(max(w - w_max, 0)) / sum(w)``, is at most a set
fraction (MadGraph's ``max_overweight_truncation``, 1e-3), so the truncation bias is bounded
by the fraction whatever the tail of the weights looks like. A high quantile of the weights
or the median of the maxima of random replicas of the sample (arXiv:2001.10028) are the
alternatives; they bound the number of overweight events, not their share of the cross
section.

Every result reports how close to unit weight the written events are
(:class:`WeightReport`): their effective sample size, their largest weight, the share of
the cross section above ``w_max``, and the unweighting efficiency three ways.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["DEFAULT_TRUNCATION", "Acceptance", "Unweighter", "UnweightingResult",
           "WeightReport", "WeightTally", "accept", "check_truncation",
           "effective_sample_size", "max_weight",
           "raised_truncation_max_weight", "share_above", "truncation_max_weight"]

MaxWeightMethod = Literal["exact", "quantile", "replicas", "truncation"]
OverweightPolicy = Literal["keep", "truncate"]

_METHODS = ("exact", "quantile", "replicas", "truncation")
_OVERWEIGHT = ("keep", "truncate")

#: MadGraph's default ``max_overweight_truncation``: the largest share of the cross section
#: allowed above ``w_max``.
DEFAULT_TRUNCATION = 1e-3


def as_weights(weights: npt.ArrayLike, *, allow_empty: bool = False) -> npt.NDArray[np.float64]:
    """The weights as a 1-d float64 array; ValueError saying what is wrong with them."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"weights must be a 1-d array of event weights, got shape {w.shape}")
    if w.size == 0:
        if allow_empty:
            return w
        raise ValueError("weights is empty: no events to take a maximum weight from")
    bad = ~np.isfinite(w)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"weights must be finite; {int(bad.sum())} are not (first: "
                         f"weights[{i}] = {w[i]})")
    neg = w < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise ValueError(f"weights must be non-negative for accept/reject unweighting; "
                         f"{int(neg.sum())} are negative (first: weights[{i}] = {w[i]}); "
                         f"unweight |w| and carry the sign separately")
    return w


@dataclass(frozen=True)
class Acceptance:
    """The points one accept/reject pass kept, and the sums its tallies need.

    Attributes
    ----------
    indices : (k,) int64
        The accepted points' indices in the batch, increasing.
    weights : (k,) float64
        Their event weights ``w``.
    n : int
        Points in the batch.
    total : float
        ``sum(w)`` over the batch.
    excess : float
        ``sum(max(w - w_max, 0))`` over the batch: the part of ``total`` above ``w_max``.
    """

    indices: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    n: int
    total: float
    excess: float

    def __len__(self) -> int:
        return int(self.indices.size)


def check_max_weight(w_max: float) -> float:
    """``w_max`` as a float; ValueError unless finite and > 0."""
    w_max = float(w_max)
    if not (np.isfinite(w_max) and w_max > 0.0):
        raise ValueError(f"w_max must be finite and positive, got {w_max}")
    return w_max


def accept(weights: npt.ArrayLike, w_max: float, rng: np.random.Generator) -> Acceptance:
    """Accept each point with probability ``min(1, w / w_max)``: ``u w_max < w`` for one
    uniform ``u`` of ``rng`` per point, in order (no division; ``w = 0`` is never
    accepted).

    Parameters
    ----------
    weights
        Event weights (n,), finite and non-negative (may be empty); ValueError naming
        the first that is not.
    w_max
        The maximum weight, finite and > 0.
    rng
        Draws ``n`` uniform numbers.
    """
    w = as_weights(weights, allow_empty=True)
    w_max = check_max_weight(w_max)
    indices = np.flatnonzero(rng.random(w.size) * w_max < w).astype(np.int64)
    return Acceptance(indices=indices, weights=w[indices], n=int(w.size),
                      total=float(w.sum()), excess=float(np.maximum(w - w_max, 0.0).sum()))


def _check_options(method: str, quantile: float, replicas: int, truncation: float) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if int(replicas) != replicas or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas}")
    check_truncation(truncation)


def check_truncation(truncation: float) -> None:
    """ValueError unless ``0 <= truncation < 1`` (a share of the cross section above
    ``w_max``)."""
    if not 0.0 <= truncation < 1.0:
        raise ValueError(f"truncation must be in [0, 1), got {truncation}")


def share_above(weights: npt.ArrayLike, w_max: float) -> float:
    """The share of the cross section above ``w_max``: ``sum(max(w - w_max, 0)) / sum(w)``.

    It is the relative bias of a sample whose overweights are truncated to ``w_max`` (0 for
    weights that sum to 0).
    """
    w = as_weights(weights, allow_empty=True)
    total = float(w.sum())
    return float(np.maximum(w - w_max, 0.0).sum()) / total if total > 0.0 else 0.0


def truncation_max_weight(weights: npt.ArrayLike, truncation: float = DEFAULT_TRUNCATION,
                          *, probabilities: npt.ArrayLike | None = None) -> float:
    """The smallest ``w_max`` with at most a share ``truncation`` of the cross section above.

    ``g(t) = sum(max(w - t, 0))`` falls piecewise linearly from ``sum(w)`` at ``t = 0`` to 0
    at the largest weight. With the weights sorted in decreasing order ``w_(1) >= w_(2) >=
    ...`` and ``S_k`` the sum of the ``k`` largest, ``g(t) = S_k - k t`` between ``w_(k+1)``
    and ``w_(k)``; the solution of ``g(t) = truncation * sum(w)`` lies on the first piece
    (from the top) where ``g`` at the lower end exceeds that target, and is found there in
    closed form (no bisection).

    Parameters
    ----------
    weights
        Event weights, shape ``(n,)``, finite and non-negative, not all zero.
    truncation
        In ``[0, 1)``: the largest share of the cross section above ``w_max`` (MadGraph's
        ``max_overweight_truncation``). 0 gives the largest weight.
    probabilities
        The probability of each point in the sample, shape ``(n,)``, non-negative, where
        the points do not stand for one draw alike (points of several channels seen as a
        draw with other shares of the channels); the shares of the cross section are then
        ``sum(p max(w - w_max, 0)) / sum(p w)``. None: all alike.

    Returns
    -------
    float
        ``w_max > 0`` with ``share_above(weights, w_max) = truncation`` up to rounding.

    Notes
    -----
    A single weight above ``truncation * sum(w)`` carries that share by itself: where the
    weights have rare large outliers, ``w_max`` is set by single events and varies from
    sample to sample (the share on the sample is still exact). The event generator
    measures the share again on the points it draws (``truncation_bias``).
    """
    check_truncation(truncation)
    w = as_weights(weights)
    if probabilities is None:
        p = np.ones_like(w)
    else:
        p = np.asarray(probabilities, dtype=np.float64)
        if p.shape != w.shape or not np.all(np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"probabilities must be {w.shape} finite values >= 0, got "
                             f"shape {p.shape}")
    total = float(np.dot(p, w))
    if total == 0.0:
        raise ValueError(f"weights are all zero ({w.size} events): no maximum weight to "
                         f"unweight with")
    if probabilities is None:
        d, pd = np.sort(w)[::-1], p
    else:
        order = np.argsort(w)[::-1]
        d, pd = w[order], p[order]
    # g(0) = sum(w) > target: the root lies above 0
    return _excess_root(d, pd, truncation * total, 0.0)


def _excess_root(d: npt.NDArray[np.float64], p: npt.NDArray[np.float64], target: float,
                 floor: float) -> float:
    """The ``t >= floor`` where ``g(t) = sum(p max(d - t, 0))`` falls to ``target``, for
    weights ``d`` in decreasing order (all above ``floor``) with probabilities ``p``,
    given ``g(floor) > target``.

    With ``S_k`` the sum of ``p d`` over the ``k`` largest and ``P_k`` that of ``p``,
    ``g(t) = S_k - P_k t`` between ``d_(k+1)`` and ``d_(k)``; the root lies on the first
    piece (from the top) where ``g`` at the lower end exceeds the target, and is found
    there in closed form (no bisection).
    """
    top = np.cumsum(p * d)                  # S_k for k = 1..n
    below = np.append(d[1:], floor)         # d_(k+1), the floor past the smallest
    k = np.cumsum(p)
    excess = top - k * below                # g(d_(k+1)), non-decreasing in k
    i = int(np.argmax(excess > target))     # the first True
    wmax = (float(top[i]) - target) / float(k[i])
    # rounding must not put w_max outside its piece
    return float(min(max(wmax, below[i]), d[i]))


def raised_truncation_max_weight(above: npt.ArrayLike, total: float, w_max: float,
                                 truncation: float = DEFAULT_TRUNCATION) -> float:
    """:func:`truncation_max_weight` of a sample known by its sum ``total`` and its
    weights ``above`` a ``w_max`` set before: the smallest ``w >= w_max`` with at most
    the share ``truncation`` of ``total`` above it. A sample too large to keep (all the
    draws of an event generation) needs only its overweights for it.

    Parameters
    ----------
    above
        Every weight of the sample above ``w_max`` (more are ignored).
    total
        The sum of all the sample's weights, > 0.
    w_max
        The maximum weight so far, > 0.
    truncation
        In ``[0, 1)``.

    Returns
    -------
    float
        ``w_max`` itself where the share above it is within ``truncation``.
    """
    check_truncation(truncation)
    w_max = check_max_weight(w_max)
    if not total > 0:
        raise ValueError(f"total must be > 0, got {total!r}")
    w = as_weights(above, allow_empty=True)
    d = np.sort(w[w > w_max])[::-1]
    target = truncation * total
    if float((d - w_max).sum()) <= target:
        return w_max
    return _excess_root(d, np.ones_like(d), target, w_max)


def max_weight(weights: npt.ArrayLike, *, method: MaxWeightMethod = "truncation",
               quantile: float = 0.999, replicas: int = 10,
               truncation: float = DEFAULT_TRUNCATION,
               rng: np.random.Generator | None = None) -> float:
    """The reference weight ``w_max`` for unweighting a sample of weights.

    Parameters
    ----------
    weights
        Event weights, shape ``(n,)``, finite and non-negative, not all zero.
    method
        ``"exact"``: the largest weight. ``"quantile"``: the ``quantile`` of *all* weights,
        zeros included (events removed by cuts count), so that about a fraction
        ``1 - quantile`` of the generated events are overweight; linear interpolation
        between order statistics, ``quantile=1`` is the maximum. ``"replicas"``: the
        weights are split into ``replicas`` random parts of (nearly) equal size and the
        median of the parts' maxima is returned (arXiv:2001.10028); it is at most the
        maximum and much less sensitive to a single outlier. ``"truncation"``: the smallest
        ``w_max`` with at most a share ``truncation`` of the cross section above it
        (:func:`truncation_max_weight`).
    quantile
        In ``(0, 1]``; used by ``"quantile"``.
    replicas
        Number of parts, at most the number of weights; used by ``"replicas"``.
    truncation
        In ``[0, 1)``; used by ``"truncation"``.
    rng
        Draws the random split for ``"replicas"``; a fresh unseeded generator if None.

    Returns
    -------
    float
        ``w_max > 0``.

    Raises
    ------
    ValueError
        On an unknown method, a quantile outside ``(0, 1]``, a truncation outside
        ``[0, 1)``, fewer weights than replicas, or weights that are empty, all zero, negative or not finite.
    """
    _check_options(method, quantile, replicas, truncation)
    w = as_weights(weights)
    if not w.any():
        raise ValueError(f"weights are all zero ({w.size} events): no maximum weight to "
                         f"unweight with")
    if method == "exact":
        return float(w.max())
    if method == "quantile":
        return float(np.quantile(w, quantile))
    if method == "truncation":
        return truncation_max_weight(w, truncation)
    if replicas > w.size:
        raise ValueError(f"replicas={replicas} is more than the {w.size} weights to split")
    rng = np.random.default_rng() if rng is None else rng
    parts = np.array_split(rng.permutation(w), replicas)
    wmax = float(np.median([p.max() for p in parts]))
    if wmax == 0.0:
        # Fewer than half the parts hold a nonzero weight: the median says nothing useful.
        raise ValueError(f"weights are almost all zero ({np.count_nonzero(w)} of {w.size} "
                         f"nonzero): the median of {replicas} replica maxima is 0; use "
                         f"method='exact' or 'quantile'")
    return wmax


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2``: the number of events when all
    carry one weight, fewer the more the weights vary (0 for no events or zero weights)."""
    w = as_weights(weights, allow_empty=True)
    squares = float(np.dot(w, w))
    return float(w.sum()) ** 2 / squares if squares > 0.0 else 0.0


@dataclass(frozen=True)
class WeightTally:
    """Sums of event weights that add up across parts of a sample (shards): what the
    written-events half of a :class:`WeightReport` needs.

    Attributes
    ----------
    n
        Number of weights.
    sum_w, sum_w2
        Their sum and the sum of their squares.
    max_w
        The largest (0 for none).
    """

    n: int = 0
    sum_w: float = 0.0
    sum_w2: float = 0.0
    max_w: float = 0.0

    @classmethod
    def of(cls, weights: npt.ArrayLike) -> WeightTally:
        """The tally of ``weights`` (finite, non-negative, shape ``(n,)``)."""
        w = as_weights(weights, allow_empty=True)
        return cls(n=int(w.size), sum_w=float(w.sum()), sum_w2=float(np.dot(w, w)),
                   max_w=float(w.max()) if w.size else 0.0)

    def __add__(self, other: WeightTally) -> WeightTally:
        return WeightTally(self.n + other.n, self.sum_w + other.sum_w,
                           self.sum_w2 + other.sum_w2, max(self.max_w, other.max_w))

    @property
    def ess(self) -> float:
        """Kish's effective sample size ``(sum w)^2 / sum w^2`` (0 for no or zero
        weights), as :func:`effective_sample_size`."""
        return self.sum_w ** 2 / self.sum_w2 if self.sum_w2 > 0.0 else 0.0


@dataclass(frozen=True)
class WeightReport:
    """How close to unit weight the written events are, and what their ``w_max`` cost.

    The first two attributes describe the written (unweighted) events, the others the
    weighted sample ``w_max`` was measured against (the calibration sample, or the weights
    passed to :meth:`Unweighter.unweight`).

    Attributes
    ----------
    ess
        Effective sample size of the written events, ``(sum w)^2 / sum w^2`` over their
        weights; equals their number exactly when all carry one weight.
    max_weight_ratio
        Largest written weight over the nominal one (the weight of an event at or below
        ``w_max``): 1 for a unit-weight sample, ``max(w) / w_max`` over the accepted
        events when overweights are kept.
    share_above
        Share of the cross section above ``w_max``, ``sum(max(w - w_max, 0)) / sum(w)``:
        the relative bias of a sample whose overweights are truncated to ``w_max`` (the
        cross section it estimates is ``(1 - share_above) sum(w)``).
    eps_truncation
        Unweighting efficiency ``<w> / w_max`` with the truncation-defined ``w_max``, the
        smallest with at most a share ``truncation`` of the cross section above it
        (:func:`truncation_max_weight`); the mean runs over all weights, zeros included.
    eps_raw
        ``<w> / max(w)``: the efficiency of exact unweighting against the largest weight.
    eps_quantile
        ``<w> / q(w)`` with ``q`` the ``quantile`` of the weights (99.9 % by default),
        at most 1 (arXiv:2001.10028).
    truncation, quantile
        The share and the quantile the two efficiencies were computed with.
    """

    ess: float
    max_weight_ratio: float
    share_above: float
    eps_truncation: float
    eps_raw: float
    eps_quantile: float
    truncation: float = DEFAULT_TRUNCATION
    quantile: float = 0.999

    @classmethod
    def measure(cls, weights: npt.ArrayLike, w_max: float, written: npt.ArrayLike, *,
                nominal: float | None = None, truncation: float = DEFAULT_TRUNCATION,
                quantile: float = 0.999) -> WeightReport:
        """The report of events ``written`` unweighted from ``weights`` against ``w_max``.

        Parameters
        ----------
        weights
            The weighted sample, shape ``(n,)``; the efficiencies are NaN when it is empty
            or all zero.
        w_max
            The reference weight the events were unweighted against.
        written
            Weights of the written events, shape ``(m,)``, in any unit.
        nominal
            Weight of a written event at or below ``w_max``, in the unit of ``written``;
            ``w_max`` if None (``written`` in the unit of ``weights``).
        truncation, quantile
            Settings of ``eps_truncation`` and ``eps_quantile``.
        """
        return cls.from_tally(weights, w_max, WeightTally.of(written), nominal=nominal,
                              truncation=truncation, quantile=quantile)

    @classmethod
    def from_tally(cls, weights: npt.ArrayLike, w_max: float, written: WeightTally, *,
                   nominal: float | None = None, truncation: float = DEFAULT_TRUNCATION,
                   quantile: float = 0.999) -> WeightReport:
        """:meth:`measure` with the written events given by their :class:`WeightTally`:
        the report of a sample written in parts (shards), from the sum of the parts'
        tallies."""
        check_truncation(truncation)
        w = as_weights(weights, allow_empty=True)
        unit = w_max if nominal is None else nominal
        if not (np.isfinite(unit) and unit > 0.0):
            raise ValueError(f"the nominal weight must be finite and positive, got {unit}")
        ratio = written.max_w / unit if written.n else 0.0
        if w.any():
            mean = float(w.mean())
            eps_t = mean / truncation_max_weight(w, truncation)
            eps_r = mean / float(w.max())
            eps_q = min(mean / float(np.quantile(w, quantile)), 1.0)
        else:
            eps_t = eps_r = eps_q = float("nan")
        return cls(ess=written.ess, max_weight_ratio=ratio,
                   share_above=share_above(w, w_max), eps_truncation=eps_t, eps_raw=eps_r,
                   eps_quantile=eps_q, truncation=float(truncation), quantile=float(quantile))

    def as_dict(self) -> dict[str, float]:
        """The attributes by name (for JSON summaries)."""
        return {k: float(v) for k, v in asdict(self).items()}

    def __str__(self) -> str:
        return (f"ESS {self.ess:.6g}, largest weight {self.max_weight_ratio:.4g} x nominal, "
                f"{self.share_above:.3g} of sigma above w_max; eps_uw {self.eps_truncation:.3g}"
                f" (truncation {self.truncation:g}), {self.eps_raw:.3g} (max), "
                f"{self.eps_quantile:.3g} ({self.quantile:g} quantile)")


@dataclass(frozen=True)
class UnweightingResult:
    """What an unweighting pass kept and what it cost.

    Attributes
    ----------
    indices
        Indices of the accepted events in the input, increasing, ``int64``.
    weights
        Weight each accepted event carries, in the units of the input weights:
        exactly ``w_max`` when overweights are truncated (the default), ``max(w, w_max)``
        when they are kept (so that the expected sum of output weights is the sum of input
        weights).
    max_weight
        The ``w_max`` used.
    efficiency
        Unweighting efficiency ``mean(w) / w_max`` over all input events. When no weight
        exceeds ``w_max`` it is the expected fraction accepted.
    acceptance
        Expected fraction accepted, ``mean(min(w / w_max, 1))``; equals
        ``efficiency * (1 - excess)`` with ``excess = sum(max(w - w_max, 0)) / sum(w)``.
    n_overweight
        Accepted events with ``w > w_max`` (all events above ``w_max`` are accepted).
    overweight_fraction
        ``n_overweight / len(indices)`` (0 when nothing was accepted).
    bias
        Relative bias of the cross section estimated from the output weights:
        ``sum(max(w - w_max, 0)) / sum(w)`` when truncated (the sample is low by this
        fraction), 0 when overweights are kept.
    report
        Effective sample size and largest weight of the accepted events, share of the cross
        section above ``w_max``, and the efficiency with the truncation-defined, the
        largest and the quantile ``w_max`` (:class:`WeightReport`).
    """

    indices: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    max_weight: float
    efficiency: float
    acceptance: float
    n_overweight: int
    overweight_fraction: float
    bias: float
    report: WeightReport

    @property
    def n_accepted(self) -> int:
        return int(self.indices.size)

    def __str__(self) -> str:
        return (f"UnweightingResult({self.n_accepted} accepted, w_max={self.max_weight:.6g}, "
                f"efficiency={self.efficiency:.4g}, overweight={self.overweight_fraction:.3g}"
                f" ({self.n_overweight}), bias={self.bias:.3g}; {self.report})")


class Unweighter:
    """Accept/reject unweighting with a chosen reference weight and overweight policy.

    Parameters
    ----------
    method, quantile, replicas, truncation
        How ``w_max`` is found from the weights, see :func:`max_weight`. The default is the
        smallest ``w_max`` with at most a share ``truncation`` (1e-3) of the cross section
        above it.
    overweight
        ``"truncate"`` (default): events above ``w_max`` carry ``w_max``, so every event
        has unit weight and the cross section is low by :attr:`UnweightingResult.bias`
        (at most ``truncation`` on the calibration sample with the default method).
        ``"keep"``: they keep their weight ``w`` (unbiased, not all of unit weight).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> result = Unweighter().unweight(rng.random(1000), rng)
    >>> bool(np.all(result.weights == result.max_weight)), round(result.bias, 12)
    (True, 0.001)
    """

    def __init__(self, *, method: MaxWeightMethod = "truncation", quantile: float = 0.999,
                 replicas: int = 10, truncation: float = DEFAULT_TRUNCATION,
                 overweight: OverweightPolicy = "truncate") -> None:
        _check_options(method, quantile, replicas, truncation)
        if overweight not in _OVERWEIGHT:
            raise ValueError(f"overweight must be one of {_OVERWEIGHT}, got {overweight!r}")
        self.method: MaxWeightMethod = method
        self.quantile = float(quantile)
        self.replicas = int(replicas)
        self.truncation = float(truncation)
        self.overweight: OverweightPolicy = overweight

    def __repr__(self) -> str:
        return (f"Unweighter(method={self.method!r}, quantile={self.quantile}, "
                f"replicas={self.replicas}, truncation={self.truncation}, "
                f"overweight={self.overweight!r})")

    def max_weight(self, weights: npt.ArrayLike, rng: np.random.Generator | None = None
                   ) -> float:
        """``w_max`` of ``weights`` with this unweighter's method (:func:`max_weight`)."""
        return max_weight(weights, method=self.method, quantile=self.quantile,
                          replicas=self.replicas, truncation=self.truncation, rng=rng)

    def report(self, weights: npt.ArrayLike, w_max: float, written: npt.ArrayLike, *,
               nominal: float | None = None) -> WeightReport:
        """:meth:`WeightReport.measure` with this unweighter's truncation and quantile."""
        return WeightReport.measure(weights, w_max, written, nominal=nominal,
                                    truncation=self.truncation, quantile=self.quantile)

    def report_tally(self, weights: npt.ArrayLike, w_max: float, written: WeightTally, *,
                     nominal: float | None = None) -> WeightReport:
        """:meth:`WeightReport.from_tally` with this unweighter's truncation and
        quantile."""
        return WeightReport.from_tally(weights, w_max, written, nominal=nominal,
                                       truncation=self.truncation, quantile=self.quantile)

    def unweight(self, weights: npt.ArrayLike, rng: np.random.Generator, *,
                 w_max: float | None = None) -> UnweightingResult:
        """Accept each event with probability ``min(w / w_max, 1)``.

        Parameters
        ----------
        weights
            Event weights, shape ``(n,)``, finite and non-negative.
        rng
            Source of the uniform numbers (and of the replica split).
        w_max
            A reference weight fixed elsewhere, e.g. common to all shards of a run; found
            from ``weights`` with this unweighter's method if None. With ``w_max`` given,
            empty or all-zero weights (a shard with no events passing cuts) are allowed.

        Returns
        -------
        UnweightingResult
        """
        if w_max is None:
            w = as_weights(weights)
            wmax = self.max_weight(w, rng)
        else:
            w = as_weights(weights, allow_empty=True)
            wmax = check_max_weight(w_max)
        kept = accept(w, wmax, rng)
        indices = kept.indices
        n_over = int(np.count_nonzero(kept.weights > wmax))
        total, excess = kept.total, kept.excess
        if self.overweight == "keep":
            out = np.maximum(kept.weights, wmax)
            bias = 0.0
        else:
            out = np.full(indices.size, wmax)
            bias = excess / total if total > 0.0 else 0.0
        efficiency = total / w.size / wmax if w.size else 0.0
        acceptance = (total - excess) / w.size / wmax if w.size else 0.0
        return UnweightingResult(
            indices=indices, weights=out, max_weight=wmax, efficiency=efficiency,
            acceptance=acceptance, n_overweight=n_over,
            overweight_fraction=n_over / indices.size if indices.size else 0.0, bias=bias,
            report=self.report(w, wmax, out))
