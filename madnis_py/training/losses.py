"""Losses for training a flow density q_theta on samples drawn from an older density.

All losses take the integrand values ``f`` and ``log q_old`` of points drawn from
q_old (no gradient) and ``log q`` of the same points under the trained flow (with
gradient). Gradients flow only through ``log q``, never through ``f``.
MadNIS: Heimel et al., arXiv:2212.06172, sec. 3.
"""

from __future__ import annotations

import torch

__all__ = ["variance_loss", "forward_kl_loss"]


def variance_loss(f: torch.Tensor, log_q_old: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Variance of the weight f/q, estimated on samples from q_old.

    Var_q[f/q] = E_{q_old}[f^2 / (q_old q)] - I^2; the I^2 term has no gradient. The
    result is divided by the (detached) squared mean weight, so it is the squared
    relative standard deviation and independent of the integrand's scale.
    """
    f = f.detach()
    log_q_old = log_q_old.detach()
    w_old = f / log_q_old.exp()
    mean = w_old.mean()
    second = (w_old**2 * torch.exp(log_q_old - log_q)).mean()
    return second / mean**2 - 1.0


def forward_kl_loss(f: torch.Tensor, log_q_old: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) up to a constant, with p = f / I, estimated on samples from q_old."""
    w_old = (f.detach() / log_q_old.detach().exp())
    return -(w_old * log_q).mean() / w_old.mean()
