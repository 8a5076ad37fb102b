"""The sampler of one channel: base map, flow and defensive mixture.

A channel draws latent points ``z`` in [0, 1]^d from

    q_z(z) = (1 - lambda) q_flow(z) + lambda,

the flow mixed with the uniform density (Hesterberg's defensive mixture; ``lambda`` is
the ``mixture`` option, 0 switches it off), and maps them with its base map ``x = V(z)``
(an adapted ``vegas.AdaptiveMap`` after VEGAS pre-training, else the identity) into the
integrand's own coordinates, where the density is

    q(x) = q_z(z) / |dV/dz|.

So the uniform part of the mixture is the base map alone (VEGAS or flat), and a weight
``f / q`` never exceeds the base map's ``f / q_base`` by more than ``1 / lambda``: the
flow's rare tail points cannot set the largest weight. A channel whose flow is switched
off (``use_flow = False``) samples its base map alone.

Points and densities are float64 (see docs/architecture.md); the base map runs in numpy
(vegas), the flow in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from madnis_py.flows import Flow

__all__ = ["ChannelSampler", "Draw"]


@dataclass
class Draw:
    """Points of one channel with their densities.

    Attributes
    ----------
    z : (n, d)
        Latent points (the flow's coordinates, the base map's input).
    x : (n, d)
        The same points in the integrand's coordinates.
    log_q : (n,)
        log density of ``x`` in the integrand's coordinates.
    log_jac : (n,)
        log |dx/dz| of the base map (0 without one).
    """

    z: torch.Tensor
    x: torch.Tensor
    log_q: torch.Tensor
    log_jac: torch.Tensor


class ChannelSampler:
    """Draws the points of one channel and knows their density.

    Parameters
    ----------
    flow : Flow
        The channel's flow on the latent unit hypercube (trained by the integrator,
        which owns its parameters).
    mixture : float
        Weight ``lambda`` in [0, 1) of the base map alone in the defensive mixture.
    base : vegas.AdaptiveMap, optional
        The base map from latent to integrand coordinates; ``None`` is the identity.
    use_flow : bool
        ``False`` samples the base map alone (the flow is kept, not used).
    """

    def __init__(self, flow: Flow, *, mixture: float = 0.0, base: Any | None = None,
                 use_flow: bool = True) -> None:
        if not 0.0 <= mixture < 1.0:
            raise ValueError(f"mixture must be in [0, 1), got {mixture!r}")
        self.flow = flow
        self.mixture = float(mixture)
        self.base = base
        self.use_flow = use_flow

    @property
    def dims(self) -> int:
        return int(self.flow.dims)

    @property
    def dtype(self) -> torch.dtype:
        return self.flow.dtype

    def to_integrand(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = V(z)`` and ``log |dV/dz|`` (the identity and 0 without a base map)."""
        if self.base is None:
            return z, torch.zeros(len(z), dtype=z.dtype)
        zn = np.ascontiguousarray(z.detach().cpu().numpy(), dtype=np.float64)
        x = np.empty_like(zn)
        jac = np.empty(len(zn))
        self.base.map(zn, x, jac)
        return torch.from_numpy(x).to(z), torch.from_numpy(np.log(jac)).to(z)

    def to_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = V^-1(x)`` and ``log |dV/dz|`` at it (the inverse of :meth:`to_integrand`)."""
        if self.base is None:
            return x, torch.zeros(len(x), dtype=x.dtype)
        xn = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float64)
        z = np.empty_like(xn)
        jac = np.empty(len(xn))
        self.base.invmap(xn, z, jac)
        return torch.from_numpy(z).to(x), torch.from_numpy(np.log(jac)).to(x)

    def latent_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q_z(z) of latent points, differentiable in the flow's parameters."""
        if not self.use_flow:
            return torch.zeros(len(z), dtype=z.dtype)
        log_q = self.flow.log_prob(z)
        if self.mixture > 0:
            log_q = torch.logaddexp(log_q + math.log1p(-self.mixture),
                                    torch.full_like(log_q, math.log(self.mixture)))
        return log_q

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) of points in the integrand's coordinates."""
        z, log_jac = self.to_latent(x)
        return self.latent_log_prob(z) - log_jac

    def sample(self, n: int, generator: torch.Generator) -> Draw:
        """``n`` points with their densities (no gradient)."""
        flow = self.flow
        with torch.no_grad():
            if not self.use_flow:
                z = torch.rand(n, flow.dims, dtype=flow.dtype, generator=generator)
                log_qz = torch.zeros(n, dtype=flow.dtype)
            elif self.mixture > 0:
                n_base = int((torch.rand(n, dtype=flow.dtype, generator=generator)
                              < self.mixture).sum())
                z_flow, _ = flow.sample(n - n_base, generator=generator)
                z_base = torch.rand(n_base, flow.dims, dtype=flow.dtype, generator=generator)
                z = torch.cat([z_flow, z_base])
                log_qz = self.latent_log_prob(z)
            else:
                z, log_qz = flow.sample(n, generator=generator)
        x, log_jac = self.to_integrand(z)
        return Draw(z, x, log_qz - log_jac, log_jac)

    def grid(self) -> list[np.ndarray] | None:
        """The base map's grid, one array of increments' edges per dimension (None
        without a base map)."""
        if self.base is None:
            return None
        return [np.asarray(g, dtype=np.float64) for g in self.base.extract_grid()]
