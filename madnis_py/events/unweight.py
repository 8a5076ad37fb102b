"""Accept/reject unweighting: from weighted events to (nearly) unit-weight events.

An event of weight ``w`` is kept with probability ``min(w / w_max, 1)``. With ``w_max`` the
largest weight the kept events all carry the same weight ``w_max`` and follow the weighted
distribution exactly; the expected fraction kept, ``<w> / w_max``, is the unweighting
efficiency. One rare large weight makes that efficiency tiny, so ``w_max`` is usually taken
a little below the maximum (a high quantile, or the median of the maxima of random replicas
of the sample as in arXiv:2001.10028) and the few events above it, the overweights, are
either kept with their excess weight (unbiased, no longer all of one weight) or truncated to
``w_max`` (unit weight, biased low by the excess, which is reported).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["Unweighter", "UnweightingResult", "max_weight"]

MaxWeightMethod = Literal["exact", "quantile", "replicas"]
OverweightPolicy = Literal["keep", "truncate"]

_METHODS = ("exact", "quantile", "replicas")
_OVERWEIGHT = ("keep", "truncate")


def _as_weights(weights: npt.ArrayLike, *, allow_empty: bool = False) -> npt.NDArray[np.float64]:
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


def _check_options(method: str, quantile: float, replicas: int) -> None:
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    if int(replicas) != replicas or replicas < 1:
        raise ValueError(f"replicas must be a positive integer, got {replicas}")


def max_weight(weights: npt.ArrayLike, *, method: MaxWeightMethod = "quantile",
               quantile: float = 0.999, replicas: int = 10,
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
        maximum and much less sensitive to a single outlier.
    quantile
        In ``(0, 1]``; used by ``"quantile"``.
    replicas
        Number of parts, at most the number of weights; used by ``"replicas"``.
    rng
        Draws the random split for ``"replicas"``; a fresh unseeded generator if None.

    Returns
    -------
    float
        ``w_max > 0``.

    Raises
    ------
    ValueError
        On an unknown method, a quantile outside ``(0, 1]``, fewer weights than replicas,
        or weights that are empty, all zero, negative or not finite.
    """
    _check_options(method, quantile, replicas)
    w = _as_weights(weights)
    if not w.any():
        raise ValueError(f"weights are all zero ({w.size} events): no maximum weight to "
                         f"unweight with")
    if method == "exact":
        return float(w.max())
    if method == "quantile":
        return float(np.quantile(w, quantile))
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


@dataclass(frozen=True)
class UnweightingResult:
    """What an unweighting pass kept and what it cost.

    Attributes
    ----------
    indices
        Indices of the accepted events in the input, increasing, ``int64``.
    weights
        Weight each accepted event carries, in the units of the input weights:
        ``max(w, w_max)`` when overweights are kept (so that the expected sum of output
        weights is the sum of input weights), exactly ``w_max`` when they are truncated.
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
    """

    indices: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]
    max_weight: float
    efficiency: float
    acceptance: float
    n_overweight: int
    overweight_fraction: float
    bias: float

    @property
    def n_accepted(self) -> int:
        return int(self.indices.size)

    def __str__(self) -> str:
        return (f"UnweightingResult({self.n_accepted} accepted, w_max={self.max_weight:.6g}, "
                f"efficiency={self.efficiency:.4g}, overweight={self.overweight_fraction:.3g}"
                f" ({self.n_overweight}), bias={self.bias:.3g})")


class Unweighter:
    """Accept/reject unweighting with a chosen reference weight and overweight policy.

    Parameters
    ----------
    method, quantile, replicas
        How ``w_max`` is found from the weights, see :func:`max_weight`.
    overweight
        ``"keep"``: events above ``w_max`` keep their weight ``w`` (unbiased, not all of
        unit weight). ``"truncate"``: they carry ``w_max`` (unit weight, biased low by
        :attr:`UnweightingResult.bias`).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> result = Unweighter(method="exact").unweight(rng.random(1000), rng)
    >>> bool(np.all(result.weights == result.max_weight))
    True
    """

    def __init__(self, *, method: MaxWeightMethod = "quantile", quantile: float = 0.999,
                 replicas: int = 10, overweight: OverweightPolicy = "keep") -> None:
        _check_options(method, quantile, replicas)
        if overweight not in _OVERWEIGHT:
            raise ValueError(f"overweight must be one of {_OVERWEIGHT}, got {overweight!r}")
        self.method: MaxWeightMethod = method
        self.quantile = float(quantile)
        self.replicas = int(replicas)
        self.overweight: OverweightPolicy = overweight

    def __repr__(self) -> str:
        return (f"Unweighter(method={self.method!r}, quantile={self.quantile}, "
                f"replicas={self.replicas}, overweight={self.overweight!r})")

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
            w = _as_weights(weights)
            wmax = max_weight(w, method=self.method, quantile=self.quantile,
                              replicas=self.replicas, rng=rng)
        else:
            w = _as_weights(weights, allow_empty=True)
            wmax = float(w_max)
            if not (np.isfinite(wmax) and wmax > 0.0):
                raise ValueError(f"w_max must be finite and positive, got {w_max}")
        # u * w_max < w accepts with probability min(w / w_max, 1) without dividing, and
        # never accepts w = 0.
        accept = rng.random(w.size) * wmax < w
        indices = np.flatnonzero(accept).astype(np.int64)
        kept = w[indices]
        over = kept > wmax
        n_over = int(np.count_nonzero(over))
        total = float(w.sum())
        excess = float(np.maximum(w - wmax, 0.0).sum())
        if self.overweight == "keep":
            out = np.maximum(kept, wmax)
            bias = 0.0
        else:
            out = np.full(indices.size, wmax)
            bias = excess / total if total > 0.0 else 0.0
        efficiency = total / w.size / wmax if w.size else 0.0
        acceptance = (total - excess) / w.size / wmax if w.size else 0.0
        return UnweightingResult(
            indices=indices, weights=out, max_weight=wmax, efficiency=efficiency,
            acceptance=acceptance, n_overweight=n_over,
            overweight_fraction=n_over / indices.size if indices.size else 0.0, bias=bias)
