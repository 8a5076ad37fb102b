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
W_i`` calls. :data:`ALLOCATIONS` names the two choices of the ``[unweighting]
allocation`` key; the maxima ``W_i`` are found by the card's own method (truncation by
default) on each channel's part of the calibration sample.

The estimate stays unbiased whatever the shares: the event weights of a draw use the
points each channel really got (:meth:`~madnis_py.training.Integrator.random_batch`), and
every active channel keeps the integrator's floor ``min_fraction / n_active`` of the
points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = ["ALLOCATIONS", "Allocation", "channel_max_weights", "reweigh"]

Allocation = Literal["max_weight", "sigma"]
#: ``"max_weight"``: draws shared by the channels' own maximum weights (madevent's
#: per-channel unweighting, the default); ``"sigma"``: the integrator's allocation by the
#: standard deviations (that of the integration).
ALLOCATIONS: tuple[Allocation, ...] = ("max_weight", "sigma")


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
