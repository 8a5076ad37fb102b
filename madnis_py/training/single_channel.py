"""Importance sampling with one flow: training by a loss on fresh samples, and the
integral estimate with its error.

The multi-channel MadNIS integrator builds on these pieces; on its own this is the
single-channel integrator used by the demo and by the flow tests.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from madnis_py.flows import Flow
from madnis_py.training.losses import LOSSES, check_loss

__all__ = ["IntegrationResult", "integrate_flow", "train_flow"]

Integrand = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class IntegrationResult:
    """Monte Carlo estimate of an integral.

    Attributes
    ----------
    value, error
        Mean weight and its standard error.
    rel_std
        Relative standard deviation of the weights (per point).
    n
        Number of integrand calls.
    """

    value: float
    error: float
    rel_std: float
    n: int

    def __str__(self) -> str:
        return (f"{self.value:.6g} +- {self.error:.2g} (rel. std {self.rel_std:.3g}, "
                f"{self.n} points)")


def integrate_flow(flow: Flow | None, integrand: Integrand, n: int, *, dims: int | None = None,
                   generator: torch.Generator | None = None,
                   batch: int = 100_000) -> IntegrationResult:
    """Estimate the integral of ``integrand`` on [0,1]^d with ``n`` points from ``flow``.

    ``flow=None`` samples uniformly (flat sampling, ``dims`` required).
    """
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")
    total = total_sq = 0.0
    done = 0
    with torch.no_grad():
        while done < n:
            m = min(batch, n - done)
            if flow is None:
                if dims is None:
                    raise ValueError("dims is required for flat sampling")
                x = torch.rand(m, dims, dtype=torch.float64, generator=generator,
                               device=None if generator is None else generator.device)
                w = integrand(x)
            else:
                x, log_q = flow.sample(m, generator=generator)
                w = integrand(x) / log_q.exp()
            w = w.double()
            total += float(w.sum())
            total_sq += float((w**2).sum())
            done += m
    mean = total / n
    var = max(total_sq / n - mean**2, 0.0) * n / (n - 1)
    rel = math.sqrt(var) / abs(mean) if mean != 0 else math.inf
    return IntegrationResult(mean, math.sqrt(var / n), rel, n)


def train_flow(flow: Flow, integrand: Integrand, *, steps: int = 500, batch: int = 2048,
               lr: float = 3e-3, loss: str = "variance",
               generator: torch.Generator | None = None,
               callback: Callable[[int, float], None] | None = None) -> list[float]:
    """Train ``flow`` towards ``integrand`` / its integral; returns the loss per step.

    Each step draws ``batch`` fresh points from the flow (no gradient), evaluates the
    integrand once per point, and takes one Adam step on the chosen loss evaluated with
    the flow's ``log_prob`` on those points. The learning rate decays with a cosine.
    ``loss`` is a name of :data:`~madnis_py.training.losses.LOSSES` (``"kl"``, the old
    name of ``"forward_kl"``, is still accepted with a DeprecationWarning).
    """
    if loss == "kl":
        warnings.warn('train_flow(loss="kl") is now loss="forward_kl"', DeprecationWarning,
                      stacklevel=2)
        loss = "forward_kl"
    loss_fn = LOSSES[check_loss(loss)].one_flow
    opt = torch.optim.Adam(flow.parameters(), lr=lr, fused=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    history = []
    for step in range(steps):
        with torch.no_grad():
            x, log_q_old = flow.sample(batch, generator=generator)
            f = integrand(x)
        ok = torch.isfinite(f) & (f >= 0)
        value = loss_fn(f[ok], log_q_old[ok], flow.log_prob(x[ok]))
        opt.zero_grad()
        value.backward()  # type: ignore[no-untyped-call]
        opt.step()
        sched.step()
        history.append(float(value.detach()))
        if callback is not None:
            callback(step, history[-1])
    return history
