"""The channel weights alpha_i(x) (madnis_py.training.channel_weights): rows summing to
one, dropped channels, the per-group fallback, the prior where the network does not
correct it."""

from __future__ import annotations

import pytest
import torch

from madnis_py.training.channel_weights import ChannelWeights


def _inputs(n: int = 3000, channels: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(4)
    features = torch.rand(n, 5, dtype=torch.float64, generator=gen)
    prior = torch.rand(n, channels, dtype=torch.float64, generator=gen)
    prior[:, :3] *= torch.rand(n, 1, dtype=torch.float64, generator=gen) < 0.5  # group 0
    prior[prior[:, :3].sum(1) > 0, 3:] = 0.0  # each row's prior on one group
    prior[:40] = 0.0  # outside the cuts: no prior anywhere
    prior[40:80] = 0.0  # prior only on a channel that will be dropped
    prior[40:80, 1] = 0.7
    return features, prior


@pytest.mark.parametrize("groups", [None, [0, 0, 0, 1, 1, 1]])
@pytest.mark.parametrize("trained", [False, True])
def test_rows_sum_to_one_and_dropped_channels_get_nothing(groups: list[int] | None,
                                                          trained: bool) -> None:
    torch.manual_seed(0)
    weights = ChannelWeights(6, 5, groups=groups).to(torch.float64)
    if trained:  # a correcting network
        with torch.no_grad():
            weights.net[-1].bias.add_(torch.linspace(-1, 1, 6, dtype=torch.float64))
    assert weights.corrects() == trained
    features, prior = _inputs()
    active = torch.tensor([True, False, True, True, True, False])
    with torch.no_grad():
        for act in (None, active):
            alpha = weights(features, prior, act)
            torch.testing.assert_close(alpha.sum(1), torch.ones(len(alpha),
                                                                 dtype=torch.float64))
            if act is not None:
                assert torch.all(alpha[:, ~act] == 0)
            if not trained:  # the prior on the active channels, normalised
                rows = slice(80, None)
                masked = prior[rows] * (1.0 if act is None else act.to(torch.float64))
                keep = masked.sum(1) > 0
                torch.testing.assert_close(alpha[rows][keep],
                                           (masked / masked.sum(1, keepdim=True))[keep],
                                           rtol=1e-15, atol=0)


def test_rows_without_prior_fall_back_to_their_groups_active_channels() -> None:
    weights = ChannelWeights(6, 5, groups=[0, 0, 0, 1, 1, 1], trainable=False)
    features, prior = _inputs()
    active = torch.tensor([True, False, True, True, True, False])
    alpha = weights(features, prior, active)
    # prior only on the dropped channel 1 (group 0): channels 0 and 2 share the row
    torch.testing.assert_close(alpha[40:80], torch.tensor(
        [[0.5, 0.0, 0.5, 0.0, 0.0, 0.0]], dtype=torch.float64).expand(40, 6))
    # no prior at all: every active channel alike
    torch.testing.assert_close(alpha[:40], (active / active.sum()).to(torch.float64)
                               .expand(40, 6))


def test_group_fallback_compacted_or_selected_gives_the_same_numbers() -> None:
    """The CPU's compaction of the rows without prior and the device's selection of every
    row by torch.where (no host synchronisation) give the same alpha fallback, priors
    spanning two groups included."""
    from madnis_py.host_syncs import count_host_syncs
    from madnis_py.training.channel_weights import group_fallback

    gen = torch.Generator().manual_seed(2)
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 2, 2])
    member = (groups[:, None] == torch.arange(3)[None, :]).to(torch.float64)
    prior = torch.rand(400, 8, dtype=torch.float64, generator=gen)
    prior *= torch.rand(400, 8, generator=gen) < 0.3
    active = torch.tensor([False, True, False, False, True, True, False, True])
    empty = (prior * active).sum(1) <= 0
    fallback = active.to(torch.float64).expand_as(prior)
    assert (empty & (prior > 0).any(1)).sum() > 50
    compact = group_fallback(prior, empty, fallback, member, compact=True)
    with count_host_syncs() as syncs:
        selected = group_fallback(prior, empty, fallback, member, compact=False)
    assert syncs.total == 0
    torch.testing.assert_close(selected, compact, rtol=0, atol=0)
    assert not torch.equal(compact, fallback)


@pytest.mark.parametrize("groups", [None, [0, 0, 0, 1, 1, 1]])
@pytest.mark.parametrize("trained", [False, True])
def test_a_channels_own_alpha_is_its_column_of_all(groups: list[int] | None,
                                                   trained: bool) -> None:
    """own(): at points of a channel (their prior on its group, or none), its alpha from
    the group's channels alone equals its column of the full alpha, the fallback rows
    (no prior; prior on a dropped channel only) and dropped channels included; with a
    correcting network, and with gradients, it is that column."""
    torch.manual_seed(0)
    weights = ChannelWeights(6, 5, groups=groups).to(torch.float64)
    if trained:
        with torch.no_grad():
            weights.net[-1].bias.add_(torch.linspace(-1, 1, 6, dtype=torch.float64))
    features, prior = _inputs()
    active = torch.tensor([True, False, True, True, True, False])
    with torch.no_grad():
        for act in (None, active):
            full = weights(features, prior, act)
            for i in range(6):
                other = slice(3, None) if i < 3 else slice(None, 3)
                rows = prior[:, other].sum(1) == 0  # the points of a channel of i's group
                got = weights.own(features[rows], prior[rows], act, i)
                torch.testing.assert_close(got, full[rows, i], rtol=1e-14, atol=0)
    grads = weights.own(features, prior, active, 2)
    assert grads.requires_grad == (weights.net is not None)
    # a compact prior (on the channel's group alone, as TorchChannels gives it) gives
    # the same alpha, and dense() places it back among the channels
    with torch.no_grad():
        for act in (None, active):
            for i in range(6):
                other, cols = ((slice(3, None), slice(None, 3)) if i < 3
                               else (slice(None, 3), slice(3, None)))
                rows = prior[:, other].sum(1) == 0
                small = prior[rows][:, cols] if groups is not None else prior[rows]
                torch.testing.assert_close(weights.dense(small, i), prior[rows],
                                           rtol=0, atol=0)
                torch.testing.assert_close(weights.own(features[rows], small, act, i),
                                           weights.own(features[rows], prior[rows], act, i),
                                           rtol=0, atol=0)
    if groups is not None:
        with pytest.raises(ValueError, match="expected 6 columns, or the 3 of channel 0"):
            weights.dense(prior[:, :4], 0)
