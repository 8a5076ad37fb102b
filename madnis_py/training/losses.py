"""Losses for training a flow density q_theta on samples drawn from an older density.

One registry, :data:`LOSSES`, names every training loss; the multi-channel
:class:`~madnis_py.training.Integrator`, the single-channel :func:`train_flow
<madnis_py.training.single_channel.train_flow>`, the run card's ``[training] loss`` and
their validation all read it.

The per-channel pieces take the weights ``w_old = alpha f / q_old`` of points drawn from
q_old (no gradient through ``f``) and ``log q`` of the same points under the trained
flow; gradients flow only through ``log q`` (and ``alpha`` in the multi-channel case),
never through ``f``. MadNIS: Heimel et al., arXiv:2212.06172, sec. 3 and
arXiv:2311.01548.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import torch

__all__ = ["LOSSES", "LossInfo", "check_loss", "forward_kl_loss", "forward_kl_term",
           "reverse_kl_loss", "reverse_kl_term", "second_moment", "variance_loss"]

SingleChannelLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def second_moment(w_old: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """E_{q_old}[w_old^2 q_old / q] = E_q[w^2]: the second moment of the weight under q,
    estimated on samples of q_old (``ratio = q_old / q``)."""
    return (w_old ** 2 * ratio).mean()


def forward_kl_term(w_old: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """-E_{q_old}[w_old log q] = -I E_p[log q]: KL(p || q) times I, up to a constant."""
    return -(w_old.detach() * log_q).mean()


def reverse_kl_term(p: torch.Tensor, ratio: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """E_{q_old}[(q / q_old) (log q - log p)] = KL(q || p) up to a constant, for the
    unnormalised target ``p`` (detached; floored at 1e-12 of its maximum so that points
    outside the cuts do not give -inf)."""
    p = p.detach()
    top = float(p.max())
    floor = 1e-12 * top if top > 0 else 1e-300
    log_p = torch.log(torch.clamp(p, min=floor))
    return ((1 / ratio) * (log_q - log_p)).mean()


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
    return second_moment(w_old, torch.exp(log_q_old - log_q)) / mean**2 - 1.0


def forward_kl_loss(f: torch.Tensor, log_q_old: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(p || q) up to a constant, with p = f / I, estimated on samples from q_old."""
    w_old = (f.detach() / log_q_old.detach().exp())
    return forward_kl_term(w_old, log_q) / w_old.mean()


def reverse_kl_loss(f: torch.Tensor, log_q_old: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """KL(q || p) up to a constant, with p = f / I, estimated on samples from q_old."""
    return reverse_kl_term(f, torch.exp(log_q_old.detach() - log_q), log_q)


@dataclass(frozen=True)
class LossInfo:
    """A training loss.

    Attributes
    ----------
    name
        Its name in the run card and the ``loss=`` arguments.
    description
        One line for documentation and error messages.
    one_flow
        The loss of a single flow ``(f, log_q_old, log_q) -> loss`` (for one channel the
        stratified variance is the variance).
    """

    name: str
    description: str
    one_flow: SingleChannelLoss


#: Every training loss by name, in the order the documentation lists them.
LOSSES: Mapping[str, LossInfo] = MappingProxyType({info.name: info for info in (
    LossInfo("variance", "sum of the channels' variances over the squared integral",
             variance_loss),
    LossInfo("stratified", "the stratified variance (sum_i sigma_i)^2 over the squared "
             "integral", variance_loss),
    LossInfo("forward_kl", "KL(p_i || q_i) per channel (the channel weights follow the "
             "variance)", forward_kl_loss),
    LossInfo("reverse_kl", "KL(q_i || p_i) per channel (the channel weights follow the "
             "variance)", reverse_kl_loss),
)})


def check_loss(name: object) -> str:
    """``name`` if it is a loss of :data:`LOSSES`, else a ValueError listing them."""
    if not isinstance(name, str) or name not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {name!r}")
    return name
