"""The accept/reject draw of unweighting on the device that holds the weights.

:func:`accept_on_device` is :func:`~madnis_py.events.unweight.accept` with the uniform
numbers drawn by a torch generator on the weights' device (a GPU): the comparison, the
sums and the selection run there, and the host gets one packed copy of what the event
generator needs (the accepted points' indices and weights and two sums) instead of the
batch's weights. Torch's generators and numpy's draw different numbers, so one seed
accepts different points on the two paths; each is reproducible with its seed.
"""

from __future__ import annotations

import numpy as np
import torch

from madnis_py.events.unweight import Acceptance, check_max_weight

__all__ = ["accept_on_device"]


def accept_on_device(weights: torch.Tensor, w_max: float,
                     generator: torch.Generator) -> Acceptance:
    """Accept each point with probability ``min(1, w / w_max)`` where ``weights`` are.

    ``u w_max < w`` for ``u = torch.rand(n, generator=generator)``; one float64 copy of
    ``[total, excess, invalid, indices..., weights...]`` reaches the host (``invalid``
    counts the weights that are not finite or are negative: a ValueError). Indices are
    exact in float64 below 2^53 points.

    Parameters
    ----------
    weights
        Event weights (n,), float64.
    w_max
        The maximum weight, finite and > 0.
    generator
        A torch generator on the weights' device; draws ``n`` uniform numbers.
    """
    w_max = check_max_weight(w_max)
    if weights.ndim != 1:
        raise ValueError(f"weights must be 1D, got shape {tuple(weights.shape)}")
    if weights.dtype != torch.float64:
        raise TypeError(f"weights must be float64, got {weights.dtype}")
    if generator.device.type != weights.device.type:
        raise ValueError(f"the generator is on {generator.device}, the weights on "
                         f"{weights.device}")
    u = torch.rand(weights.shape, generator=generator, dtype=torch.float64,
                   device=weights.device)
    indices = torch.nonzero(u * w_max < weights).squeeze(1)
    invalid = (~torch.isfinite(weights) | (weights < 0)).sum().to(torch.float64)
    packed = torch.cat([weights.sum().reshape(1),
                        (weights - w_max).clamp_min(0.0).sum().reshape(1),
                        invalid.reshape(1), indices.to(torch.float64),
                        weights[indices]]).cpu().numpy()
    if packed[2] > 0:
        raise ValueError(f"{int(packed[2])} of {weights.numel()} weights are not finite "
                         "or are negative")
    k = indices.numel()
    return Acceptance(indices=packed[3:3 + k].astype(np.int64), weights=packed[3 + k:],
                      n=int(weights.numel()), total=float(packed[0]),
                      excess=float(packed[1]))
