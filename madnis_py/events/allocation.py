"""How the event generation shares its draws among the channels.

The integrator allocates points to channels in proportion to the standard deviations of
their weights (stratified sampling): the right choice for the error of an integral, not
for unweighting. A point of channel ``i`` drawn with share ``p_i`` of a draw carries the
event weight ``e = w / p_i``, ``w = alpha_i f / q_i`` the channel's own weight, and every
point is accepted against one ``w_max``. A channel whose weights reach ``W_i`` needs
``e <= w_max``, i.e. ``p_i >= W_i / w_max``: the smallest ``w_max`` for all channels at
once, and with it the largest acceptance ``sum_i I_i / w_max``, comes with

    p_i = W_i / sum_j W_j,   w_max = sum_j W_j,

each channel's share of the draws in proportion to its own maximum weight. That is
madevent's way: every channel (``G`` directory) is unweighted against its own maximum and
contributes events in proportion to its cross section, so it is run for ``I_i / eps_i =
W_i`` calls. The maxima ``W_i`` are found by the card's own method (truncation by
default) on each channel's part of the calibration sample.

That is only as good as the maxima are. With hundreds of channels and a few hundred
calibration points each, heavy-tailed channels show a maximum far below their own, get
too small a share, and fresh draws exceed ``w_max`` by far more than the sample did; the
integrator's allocation by standard deviations, a steadier statistic, then unweights
several times better (p p > e+ e- j j, 528 channels). ``"auto"`` (the default of the
``[unweighting] allocation`` key, :data:`ALLOCATIONS`) chooses between the two out of
sample (:func:`choose_allocation`): the calibration sample is split in two halves per
channel, the maxima are found on one half, and the acceptance at the truncation-defined
``w_max`` of draws shared either way is measured on the other (:func:`held_out_acceptance`),
and the other way round.

The estimate stays unbiased whatever the shares: the event weights of a draw use the
points each channel really got (:meth:`~madnis_py.training.Integrator.random_batch`), and
every active channel keeps the integrator's floor ``min_fraction / n_active`` of the
points.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from madnis_py.events.unweight import truncation_max_weight
from madnis_py.training.multichannel import allocation_shares

__all__ = ["ALLOCATIONS", "Allocation", "AllocationChoice", "channel_max_weights",
           "choose_allocation", "held_out_acceptance", "reweigh"]

Allocation = Literal["auto", "max_weight", "sigma"]
#: ``"max_weight"``: draws shared by the channels' own maximum weights (madevent's
#: per-channel unweighting); ``"sigma"``: the integrator's allocation by the standard
#: deviations (that of the integration); ``"auto"``: the one of the two with the larger
#: acceptance out of sample (:func:`choose_allocation`, the default).
ALLOCATIONS: tuple[Allocation, ...] = ("auto", "max_weight", "sigma")


def _own_weights(weights: npt.ArrayLike, channels: npt.ArrayLike, n_channels: int
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The channels' own weights ``w = e n_i / n`` of a draw's event weights ``e``, and
    the channels as integers."""
    e = np.asarray(weights, dtype=np.float64)
    ch = np.asarray(channels, dtype=np.int64)
    if e.ndim != 1 or ch.shape != e.shape:
        raise ValueError(f"weights {e.shape} and channels {ch.shape} must be 1D and alike")
    if ch.size and (ch.min() < 0 or ch.max() >= n_channels):
        raise ValueError(f"channels must lie in [0, {n_channels}), got "
                         f"[{ch.min()}, {ch.max()}]")
    counts = np.bincount(ch, minlength=n_channels)
    return e * counts[ch] / max(e.size, 1), ch


def channel_max_weights(weights: npt.ArrayLike, channels: npt.ArrayLike, n_channels: int,
                        max_weight: Callable[[npt.NDArray[np.float64]], float]
                        ) -> npt.NDArray[np.float64]:
    """Each channel's maximum ``W_i`` of its own weights ``w = alpha_i f / q_i``.

    Parameters
    ----------
    weights, channels
        Event weights of one draw and the channel of each point, shape ``(n,)``; the draw
        gave channel ``i`` its ``n_i`` points, so ``w = e n_i / n``.
    n_channels
        Channels of the integrator.
    max_weight
        The maximum of a channel's weights (the unweighter's method,
        :meth:`~madnis_py.events.unweight.Unweighter.max_weight`).

    Returns
    -------
    ndarray
        ``(n_channels,)``; 0 for a channel without a point or whose weights are all 0.
    """
    own, ch = _own_weights(weights, channels, n_channels)
    return _maxima_of_own(own, ch, n_channels, max_weight)


def _maxima_of_own(own: npt.NDArray[np.float64], ch: npt.NDArray[np.int64], n_channels: int,
                   max_weight: Callable[[npt.NDArray[np.float64]], float]
                   ) -> npt.NDArray[np.float64]:
    """Each channel's maximum of its own weights ``own`` (0 without a weight > 0)."""
    out = np.zeros(n_channels)
    for i in np.unique(ch):
        part = own[ch == i]
        if np.any(part > 0):
            out[i] = float(max_weight(part))
    return out


def reweigh(weights: npt.ArrayLike, channels: npt.ArrayLike,
            shares: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Event weights of the same points had their draw given channel ``i`` the share
    ``shares[i]`` of its points (``e n_i / n / shares[i]``): a calibration sample drawn
    with one allocation, seen by the generation that uses another.

    Raises
    ------
    ValueError
        A point of a channel whose share is not positive.
    """
    p = np.asarray(shares, dtype=np.float64)
    own, ch = _own_weights(weights, channels, len(p))
    if ch.size and not np.all(p[ch] > 0):
        raise ValueError("a point's channel has no share of the draws")
    return np.asarray(own / p[ch], dtype=np.float64)


def held_out_acceptance(own: npt.ArrayLike, channels: npt.ArrayLike, shares: npt.ArrayLike,
                        truncation: float) -> float:
    """The acceptance of draws shared by ``shares`` among the channels, at their
    truncation-defined ``w_max``, as points of the channels show it.

    A draw with shares ``p_i`` gives a point of channel ``i`` the event weight ``e = w /
    p_i`` (``w`` its own weight) and the probability ``p_i / m_i`` of each of the ``m_i``
    points of channel ``i`` here, whatever allocation drew them. ``w_max`` leaves the
    share ``truncation`` of the cross section above it (:func:`~madnis_py.events.unweight.
    truncation_max_weight` with those probabilities), and the acceptance is
    ``<min(e, w_max)> / w_max``.

    Parameters
    ----------
    own
        The points' own weights ``w = alpha_i f / q_i``, shape ``(n,)``.
    channels
        The channel of each point, shape ``(n,)``.
    shares
        Each channel's share of a draw, ``(n_channels,)``.
    truncation
        The share of the cross section above ``w_max``, in ``[0, 1)``.

    Returns
    -------
    float
        In ``[0, 1]``; 0 where a point's channel has no share (its events could not be
        drawn) or no weight is positive.
    """
    w = np.asarray(own, dtype=np.float64)
    ch = np.asarray(channels, dtype=np.int64)
    p = np.asarray(shares, dtype=np.float64)
    if w.shape != ch.shape or w.ndim != 1:
        raise ValueError(f"own weights {w.shape} and channels {ch.shape} must be 1D and alike")
    if ch.size == 0 or not np.any(w > 0) or not np.all(p[ch] > 0):
        return 0.0
    counts = np.bincount(ch, minlength=len(p))
    e = w / p[ch]
    prob = p[ch] / counts[ch]
    w_max = truncation_max_weight(e, truncation, probabilities=prob)
    return float(np.dot(prob, np.minimum(e, w_max)) / (w_max * prob.sum()))


@dataclass(frozen=True)
class AllocationChoice:
    """The allocation :func:`choose_allocation` chose, and why.

    Attributes
    ----------
    allocation : {"max_weight", "sigma"}
        The allocation of the draws.
    acceptance : dict
        Each candidate's acceptance on the held-out halves (:func:`held_out_acceptance`,
        the mean over the halves).
    """

    allocation: Literal["max_weight", "sigma"]
    acceptance: dict[str, float] = field(default_factory=dict)


def _halves(channels: npt.NDArray[np.int64], rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """A random half of each channel's points (True), the other half False: the points
    of a channel in random order alternate between the halves."""
    order = rng.permutation(channels.size)
    order = order[np.argsort(channels[order], kind="stable")]
    first = np.searchsorted(channels[order], channels[order])  # start of each run
    rank = np.arange(channels.size) - first
    half = np.empty(channels.size, dtype=bool)
    half[order] = rank % 2 == 0
    return half


def choose_allocation(weights: npt.ArrayLike, channels: npt.ArrayLike,
                      sigma_shares: npt.ArrayLike, *,
                      max_weight: Callable[[npt.NDArray[np.float64]], float],
                      truncation: float, rng: np.random.Generator,
                      min_fraction: float = 0.05,
                      active: npt.ArrayLike | None = None) -> AllocationChoice:
    """Choose the allocation of the draws out of sample: two-fold cross-validation on a
    calibration sample.

    Each channel's points are split in two random halves. The maxima are found on one
    half (``max_weight``) and give the shares by maxima (with the integrator's floor
    ``min_fraction / n_active``); those and ``sigma_shares`` are each measured on the
    other half (:func:`held_out_acceptance`), and the other way round. The maxima are
    thus always judged on points that did not set them, as fresh draws will judge them.

    Parameters
    ----------
    weights, channels
        Event weights of one draw and the channel of each point, shape ``(n,)``.
    sigma_shares
        The integrator's shares by standard deviations, ``(n_channels,)``.
    max_weight
        A channel's maximum of its own weights (the card's method).
    truncation
        The share of the cross section above ``w_max`` the acceptances are measured at.
    rng
        Draws the halves.
    min_fraction, active
        The integrator's floor and active channels.

    Returns
    -------
    AllocationChoice
        ``"max_weight"`` unless ``"sigma"`` accepts more (ties keep the maxima).
    """
    p_sigma = np.asarray(sigma_shares, dtype=np.float64)
    on = None if active is None else np.asarray(active, dtype=bool)
    own, ch = _own_weights(weights, channels, len(p_sigma))
    half = _halves(ch, rng)
    acc = {"max_weight": 0.0, "sigma": 0.0}
    for held in (half, ~half):
        fit = ~held
        maxima = _maxima_of_own(own[fit], ch[fit], len(p_sigma), max_weight)
        if np.any(maxima > 0):
            p_max = allocation_shares(maxima, min_fraction=min_fraction, active=on)
            acc["max_weight"] += held_out_acceptance(own[held], ch[held], p_max,
                                                     truncation) / 2
        acc["sigma"] += held_out_acceptance(own[held], ch[held], p_sigma, truncation) / 2
    best: Literal["max_weight", "sigma"] = ("sigma" if acc["sigma"] > acc["max_weight"]
                                            else "max_weight")
    return AllocationChoice(best, acc)
