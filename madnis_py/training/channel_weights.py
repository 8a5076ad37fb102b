"""Channel weights alpha_i(x) of the multi-channel integral (the MadNIS "CWnet").

    alpha_i(x) = prior_i(x) exp(K_i(x)) / sum_j prior_j(x) exp(K_j(x)),

with ``prior`` the generator's channel prior alpha^MG (per-diagram |M_i|^2 or propagator
denominators) and ``K`` a small network of channel-independent features of the
phase-space point (the momenta). The last layer starts at zero, so training starts from
the prior. Heimel et al., arXiv:2212.06172, sec. 3.3.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from madnis_py.flows.coupling import MLP

__all__ = ["ChannelWeights", "group_fallback"]


class ChannelWeights(nn.Module):
    """alpha_i(x) from the prior and a correction network.

    Parameters
    ----------
    n_channels : int
    feature_dims : int
        Width of the features passed to :meth:`forward`.
    layers, units : int
        Size of the correction network.
    trainable : bool
        False keeps alpha equal to the prior (the network is not created).
    groups : sequence of int, optional
        Per channel, its subprocess group (:mod:`madnis_py.physics.channels`): a prior
        lives on one group's channels, and a row without prior on an active channel
        falls back to the active channels of that group. None: one group.
    """

    def __init__(self, n_channels: int, feature_dims: int, *, layers: int = 3,
                 units: int = 32, trainable: bool = True,
                 dtype: torch.dtype = torch.float64,
                 groups: Sequence[int] | None = None) -> None:
        super().__init__()
        if n_channels < 1 or feature_dims < 1:
            raise ValueError("ChannelWeights needs n_channels >= 1 and feature_dims >= 1")
        if groups is not None and len(groups) != n_channels:
            raise ValueError(f"groups: {len(groups)} for {n_channels} channels")
        # (channels, groups): each channel's group, one-hot; None: one group
        self.membership: torch.Tensor | None = None
        if groups is not None and len(set(groups)) > 1:
            g = torch.as_tensor(list(groups))
            self.membership = (g[:, None] == torch.unique(g)[None, :]).to(dtype)
        self.n_channels = n_channels
        self.feature_dims = feature_dims
        # per channel: its group's channels, and its own place among them (own())
        group_of = [int(k) for k in groups] if groups is not None else [0] * n_channels
        members: dict[int, list[int]] = {}
        for c, k in enumerate(group_of):
            members.setdefault(k, []).append(c)
        columns = {k: torch.as_tensor(m) for k, m in members.items()}  # one per group
        self._group_columns = [columns[k] for k in group_of]
        self._place = [members[k].index(c) for c, k in enumerate(group_of)]
        self.net = MLP(feature_dims, n_channels, layers=layers, units=units).to(dtype) \
            if trainable else None

    def forward(self, features: torch.Tensor, prior: torch.Tensor | None,
                active: torch.Tensor | None = None) -> torch.Tensor:
        """alpha (n, n_channels), rows summing to one.

        ``prior`` (n, n_channels) is non-negative (rows need not be normalised); None
        means uniform. ``active`` (n_channels,) bool drops channels: their alpha is zero
        and the others share the whole integrand. A row with no prior on any active
        channel falls back to uniform over the active ones (of the group its prior is
        on, with ``groups``).
        """
        n = features.shape[0]
        if prior is None:
            prior = torch.ones(n, self.n_channels, dtype=features.dtype,
                               device=features.device)
        elif prior.shape != (n, self.n_channels):
            raise ValueError(f"prior: expected shape ({n}, {self.n_channels}), got "
                             f"{tuple(prior.shape)}")
        masked = prior if active is None else prior * active.to(prior.dtype)
        empty = masked.sum(dim=1, keepdim=True) <= 0
        fallback = (torch.ones_like(prior) if active is None
                    else active.to(prior.dtype).expand_as(prior))
        if self.membership is not None:  # the active channels of the row's group
            fallback = group_fallback(prior, empty[:, 0], fallback,
                                      self.membership.to(prior),
                                      compact=prior.device.type == "cpu")
        weights = torch.where(empty, fallback, masked)
        if self.network_runs(features):
            assert self.net is not None
            return torch.softmax(torch.log(weights) + self.net(features), dim=1)
        # without a correction alpha is the prior normalised (softmax(log p) to rounding)
        return weights / weights.sum(dim=1, keepdim=True)

    def network_runs(self, features: torch.Tensor) -> bool:
        """Whether alpha at ``features`` goes through the correction network: on the
        CPU it is skipped while it does not change alpha; on a GPU, or with gradients,
        it runs (cheaply) instead of asking whether it does (a host synchronisation)."""
        return self.net is not None and (torch.is_grad_enabled()
                                         or features.device.type != "cpu"
                                         or self.corrects())

    def own(self, features: torch.Tensor, prior: torch.Tensor | None,
            active: torch.Tensor | None, channel: int) -> torch.Tensor:
        """alpha of ``channel`` (n,) at points of that channel: ``forward(...)[:,
        channel]``, to rounding.

        A point's prior lives on its channel's group, so without a correction network
        changing alpha the normalisation needs the group's channels alone: with 528
        channels in groups of a few dozen, the full ``(n, channels)`` alpha was 23 of
        65 s of a VEGAS survey. With the network (or no prior) it is the full alpha's
        column.
        """
        if prior is None or self.network_runs(features):
            return self.forward(features, self.dense(prior, channel), active)[:, channel]
        return self.prior_alpha(prior, active, channel)

    def dense(self, prior: torch.Tensor | None, channel: int) -> torch.Tensor | None:
        """A prior of points of ``channel`` on all channels ``(n, n_channels)``: a
        compact one, on the channel's group alone ``(n, m)`` in channel order (what
        :class:`~madnis_py.integrand.TorchChannels` gives), placed among zeros; a full
        one as it is."""
        if prior is None or prior.shape[1] == self.n_channels:
            return prior
        cols = self._group_columns[channel].to(prior.device)
        if prior.shape[1] != len(cols):
            raise ValueError(f"prior: expected {self.n_channels} columns, or the "
                             f"{len(cols)} of channel {channel}'s group, got "
                             f"{prior.shape[1]}")
        out = prior.new_zeros((prior.shape[0], self.n_channels))
        out[:, cols] = prior
        return out

    def prior_alpha(self, prior: torch.Tensor, active: torch.Tensor | None,
                    channel: int) -> torch.Tensor:
        """alpha of ``channel`` (n,) at points of that channel where the network does
        not change alpha (:meth:`network_runs` is False): the prior normalised on the
        channel's group (:meth:`own`, which asks first). ``prior``: full or compact
        (:meth:`dense`)."""
        cols = self._group_columns[channel].to(prior.device)
        # a compact prior is on the group's columns already (one group: the same)
        p = prior if prior.shape[1] == len(cols) else prior[:, cols]
        on = (torch.ones(len(cols), dtype=p.dtype, device=p.device) if active is None
              else active[cols].to(p.dtype))
        masked = p * on
        total = masked.sum(dim=1)
        empty = total <= 0
        alpha = masked[:, self._place[channel]] / torch.where(empty, 1.0, total)
        # rows without a prior on an active channel: forward's fallback, uniform over the
        # active channels of the group the prior is on (one group: all of them), rows
        # without any prior over all active channels
        mine = on[self._place[channel]]
        n_all = (torch.tensor(float(self.n_channels), dtype=p.dtype, device=p.device)
                 if active is None
                 else active.to(p.dtype).sum())
        fallback = torch.where((p > 0).any(dim=1), mine / on.sum(), mine / n_all)
        return torch.where(empty, fallback, alpha)

    def corrects(self) -> bool:
        """Whether the network changes alpha at all: not while its last layer is zero
        (as it starts, and stays without training), where it is skipped without
        gradients and alpha is the normalised prior (its cost was 7.6 of 62 s of a
        VEGAS-only p p > e+ e- j run, the softmax's another 0.9 us per point with 48
        channels)."""
        if self.net is None:
            return False
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        # one look at the device for both (two, one after the other, before)
        return bool(torch.cat([last.weight.flatten(), last.bias]).any())


def group_fallback(prior: torch.Tensor, empty: torch.Tensor, fallback: torch.Tensor,
                   membership: torch.Tensor, *, compact: bool) -> torch.Tensor:
    """``fallback`` (n, channels) restricted, in the ``empty`` rows with a prior, to the
    channels of the group their prior is on (``membership``: channels x groups, one-hot).

    ``compact``: only those rows are computed (their indices found first, which is a host
    synchronisation on a GPU; the CPU's way, 1.5-2.5x faster there with 48 channels);
    otherwise every row is and ``torch.where`` keeps those (no synchronisation: the
    device's way). Both give the same numbers.
    """
    rows = empty & (prior > 0).any(dim=1)
    if compact:
        at = torch.nonzero(rows).squeeze(1)
        if not len(at):
            return fallback
        mine = ((prior[at] > 0).to(prior.dtype) @ membership > 0).to(prior.dtype)
        out = fallback.clone()
        out[at] = fallback[at] * (mine @ membership.T > 0).to(prior.dtype)
        return out
    mine = ((prior > 0).to(prior.dtype) @ membership > 0).to(prior.dtype)
    return torch.where(rows[:, None], fallback * (mine @ membership.T > 0).to(prior.dtype),
                       fallback)
