"""Integrands with exactly known integrals, for tests, demos and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = ["Camel"]


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
