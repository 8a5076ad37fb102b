"""Integrands with exactly known integrals, for tests, demos and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["Camel", "RidgeAndPeak"]


class Camel:
    """Equal-weight sum of narrow Gaussians on the unit hypercube (the "camel").

    f(x) = (1/m) sum_j prod_i N(x_i; mu_j, sigma) for the m peak positions ``means``
    (each on the diagonal, as in the standard camel at 1/3 and 2/3). Its integral over
    [0, 1]^d is exact through the error function.

    Parameters
    ----------
    dims
        Dimension d.
    means
        Peak positions on the diagonal.
    sigma
        Width of every Gaussian.
    """

    def __init__(self, dims: int, *, means: Sequence[float] = (1 / 3, 2 / 3),
                 sigma: float = 0.05) -> None:
        if dims < 1 or sigma <= 0 or not means:
            raise ValueError("Camel needs dims >= 1, sigma > 0 and at least one mean")
        self.dims = dims
        self.means = tuple(float(m) for m in means)
        self.sigma = float(sigma)

    @property
    def exact(self) -> float:
        """The integral over [0, 1]^d."""
        s = self.sigma * math.sqrt(2.0)
        one_dim = [0.5 * (math.erf((1 - m) / s) + math.erf(m / s)) for m in self.means]
        return sum(v**self.dims for v in one_dim) / len(self.means)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """f(x) for points ``x`` (n, d); returns (n,)."""
        norm = float((2 * math.pi * self.sigma**2) ** (-self.dims / 2)) / len(self.means)
        out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        for m in self.means:
            out = out + torch.exp(-((x - m) ** 2).sum(dim=1) / (2 * self.sigma**2))
        return out * norm


class RidgeAndPeak:
    """A two-channel toy of a resonance and a massless propagator on y in [0, 1]^2.

    f(y) = BW(y0; 0.3, width) (1 + y1)  +  (1 + y0) / (y1 + eps),
    with BW the normalised Breit-Wigner (Cauchy) shape. Channel 0 maps x to y with a
    Breit-Wigner of twice the width in y0, channel 1 with a 1/(y1 + 3 eps) map in y1:
    both deliberately imperfect, as are the priors (the channels' "propagator
    denominators" with those mis-set parameters), so there is something to learn. The
    exact integral is analytic.

    Calling it with ``(x, channel)`` returns ``f(y(x)) |dy/dx|``, the channel-independent
    features ``y`` and the prior ``(n, 2)``.
    """

    n_channels = 2

    def __init__(self, *, width: float = 0.01, eps: float = 1e-3) -> None:
        self.width = float(width)
        self.eps = float(eps)
        self.map_width = 2 * self.width
        self.map_eps = 3 * self.eps

    def dims(self, channel: int = 0) -> int:
        return 2

    @property
    def exact(self) -> float:
        g, e = self.width, self.eps
        ridge = (math.atan(0.7 / g) + math.atan(0.3 / g)) / math.pi * 1.5
        peak = 1.5 * math.log((1 + e) / e)
        return ridge + peak

    def f(self, y: torch.Tensor) -> torch.Tensor:
        g = self.width
        bw = g / math.pi / ((y[:, 0] - 0.3) ** 2 + g * g)
        return bw * (1 + y[:, 1]) + (1 + y[:, 0]) / (y[:, 1] + self.eps)

    def prior(self, y: torch.Tensor) -> torch.Tensor:
        p0 = 1 / ((y[:, 0] - 0.3) ** 2 + self.map_width ** 2)
        p1 = 1 / (y[:, 1] + self.map_eps)
        p = torch.stack([p0, p1], dim=1)
        return p / p.sum(dim=1, keepdim=True)

    def __call__(self, x: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = x.clone()
        if channel == 0:
            g = self.map_width
            lo, hi = math.atan(-0.3 / g), math.atan(0.7 / g)
            a = lo + x[:, 0] * (hi - lo)
            y[:, 0] = 0.3 + g * torch.tan(a)
            jac = (hi - lo) * ((y[:, 0] - 0.3) ** 2 + g * g) / g
        elif channel == 1:
            e = self.map_eps
            span = math.log((1 + e) / e)
            y[:, 1] = e * torch.exp(x[:, 1] * span) - e
            jac = (y[:, 1] + e) * span
        else:
            raise IndexError(f"channel {channel}: the toy has 2 channels")
        return self.f(y) * jac, y, self.prior(y)
