"""The sampler of one channel: base map, flow and defensive mixture.

A channel draws latent points ``z`` in [0, 1]^d from the flow, maps them with its base
map ``x = V(z)`` (an adapted ``vegas.AdaptiveMap`` after VEGAS pre-training, else the
identity) into the integrand's own coordinates, and mixes in two defensive components
(Hesterberg's defensive mixture):

    q(x) = [(1 - lambda - mu) q_flow(z) + lambda] / |dV/dz| + mu,

``lambda`` (the ``mixture`` option) the base map alone (VEGAS or flat) and ``mu`` (the
``uniform_mixture`` option) the uniform density in the integrand's coordinates. A weight
``f / q`` then never exceeds the base map's ``f / q_base`` by more than ``1 / lambda``
(the flow's rare tail points cannot set the largest weight) nor ``f / mu`` (the VEGAS
grid's own holes cannot either: an increment the pre-training shrank to nothing still
gets ``mu`` of the density). Without a base map both components are the same uniform
density. A channel whose flow is switched off (``use_flow = False``) samples its base map
alone, mixed with ``mu`` of the uniform density.

Points and densities are float64 (see docs/architecture.md). Everything runs on the
flow's device: the flow, the random numbers (the generator must live there too) and the
base map, whose VEGAS grid is evaluated by :class:`GridMap` (``vegas.AdaptiveMap``'s
piecewise-linear map and its inverse in torch); the ``vegas.AdaptiveMap`` itself is kept
for the grid it holds (checkpoints, :meth:`ChannelSampler.grid`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from madnis_py.flows import Flow

__all__ = ["VEGAS_FLOOR", "ChannelSampler", "Draw", "GridMap", "floored_map"]

#: Default share of the uniform density mixed into every dimension of a VEGAS map after
#: pre-training (:func:`floored_map`); measured on drell_yan (benchmarks/RESULTS.md).
VEGAS_FLOOR = 0.3


def floored_map(vmap: Any, floor: float) -> Any:
    """A ``vegas.AdaptiveMap`` whose density in every dimension is ``(1 - floor) p + floor``
    (on the unit interval), with ``p`` the density of ``vmap`` in that dimension.

    VEGAS shrinks the increments where its adaptation saw little of the integrand; with few
    points per iteration an increment can shrink to ~1e-3 of the interval although the
    integrand there is not small, and the weights of the rare points that land there set
    the largest weight (the unweighting efficiency) for the whole run, flow or not. The
    floor bounds the map's Jacobian by ``1 / floor`` per dimension, at the price of
    ``floor`` of the points spread uniformly. ``floor = 0`` returns ``vmap`` itself.

    The new increments' edges are the ``k / n`` quantiles of the mixed density, whose
    cumulative distribution is piecewise linear between the old edges (so the result is
    exact up to the map's own piecewise-linear form).
    """
    if not 0.0 <= floor < 1.0:
        raise ValueError(f"floor must be in [0, 1), got {floor!r}")
    if floor == 0.0:
        return vmap
    import vegas

    grids = []
    for edges in vmap.extract_grid():
        g = np.asarray(edges, dtype=np.float64)
        n = len(g) - 1
        cdf = (1.0 - floor) * np.arange(n + 1) / n + floor * (g - g[0]) / (g[-1] - g[0])
        new = np.interp(np.arange(n + 1) / n, cdf, g)
        new[0], new[-1] = g[0], g[-1]
        grids.append(new)
    return vegas.AdaptiveMap(grids)


class GridMap:
    """A VEGAS grid's map ``x = V(y)`` of the unit hypercube and its inverse, in torch on
    any device: the formulas of ``vegas.AdaptiveMap.map`` and ``invmap`` (G. P. Lepage,
    arXiv:2009.05112), which run on the host in numpy.

    In every dimension ``d`` with ``N_d`` increments of edges ``g_0 < ... < g_N``,
    ``y N_d = i + t`` maps to ``x = g_i + (g_{i+1} - g_i) t`` with ``dx/dy = (g_{i+1} - g_i)
    N_d``; ``y = 1`` maps to ``g_N``, and ``x`` outside ``[g_0, g_N]`` inverts to 0 or 1
    with the Jacobian of the end increment, as vegas does.

    Parameters
    ----------
    grids : list of arrays
        Per dimension the increments' edges (``vegas.AdaptiveMap.extract_grid()``).
    device : str or torch.device
    """

    def __init__(self, grids: list[np.ndarray], device: str | torch.device = "cpu") -> None:
        edges = [np.asarray(g, dtype=np.float64) for g in grids]
        ninc = [len(g) - 1 for g in edges]
        dims, width = len(edges), max(ninc)
        # all dimensions in one table each, a row per dimension: edges padded with +inf
        # (never below a point, so the batched search sees each row's own edges), the
        # increments and their log slopes padded where the clamped index never reaches
        padded = np.full((dims, width + 1), np.inf)
        incs = np.ones((dims, width + 1))
        for d, g in enumerate(edges):
            padded[d, :len(g)] = g
            incs[d, :ninc[d]] = g[1:] - g[:-1]
        self.edges = torch.as_tensor(padded, device=device)
        self.incs = torch.as_tensor(incs, device=device)
        n_t = torch.as_tensor(ninc, device=device)
        # log of each increment's dx/dy = inc N: one gather per point, no log
        self.log_slopes = torch.log(self.incs * n_t[:, None].to(torch.float64))
        self._ninc = n_t
        self._ninc_f = n_t.to(torch.float64)
        self._last = torch.as_tensor([g[-1] for g in edges], device=device)
        # offset of each dimension's row in the flattened tables (all of one width)
        self._rows = torch.arange(dims, device=device) * (width + 1)

    @property
    def dims(self) -> int:
        return len(self._last)

    def _gather(self, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each point's edge below, increment and log slope of increment ``i`` (n, dims)
        of its dimension."""
        flat = i + self._rows
        return (torch.take(self.edges, flat), torch.take(self.incs, flat),
                torch.take(self.log_slopes, flat))

    @staticmethod
    def _sum_dims(log_slopes: torch.Tensor) -> torch.Tensor:
        """The log Jacobian: the dimensions' log slopes added in order (as vegas does)."""
        out = torch.zeros(len(log_slopes), dtype=log_slopes.dtype, device=log_slopes.device)
        for d in range(log_slopes.shape[1]):
            out += log_slopes[:, d]
        return out

    def map(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = V(y)`` and ``log |dV/dy|`` for points ``y`` (n, dims)."""
        y_ninc = y * self._ninc_f
        iy = torch.floor(y_ninc).long()
        i = torch.minimum(iy.clamp_min(0), self._ninc - 1)
        g, inc, log_slope = self._gather(i)
        x = torch.where(iy < self._ninc, g + inc * (y_ninc - iy), self._last)
        return x, self._sum_dims(log_slope)

    def invmap(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``y = V^-1(x)`` and ``log |dV/dy|`` there, for points ``x`` (n, dims)."""
        iy = torch.searchsorted(self.edges, x.T.contiguous(), right=True).T
        i = torch.minimum((iy - 1).clamp_min(0), self._ninc - 1)
        g, inc, log_slope = self._gather(i)
        inner = (iy > 0) & (iy <= self._ninc)
        y = torch.where(inner, (i + (x - g) / inc) / self._ninc_f, (iy > 0).to(x.dtype))
        return y, self._sum_dims(log_slope)


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
        Weight ``lambda`` of the base map alone in the defensive mixture.
    uniform_mixture : float
        Weight ``mu`` of the uniform density in the integrand's coordinates;
        ``lambda + mu`` must be in [0, 1).
    base : vegas.AdaptiveMap, optional
        The base map from latent to integrand coordinates; ``None`` is the identity.
    use_flow : bool
        ``False`` samples the base map alone (the flow is kept, not used).
    """

    def __init__(self, flow: Flow, *, mixture: float = 0.0, uniform_mixture: float = 0.0,
                 base: Any | None = None, use_flow: bool = True) -> None:
        if not 0.0 <= mixture < 1.0:
            raise ValueError(f"mixture must be in [0, 1), got {mixture!r}")
        if not 0.0 <= uniform_mixture < 1.0 - mixture:
            raise ValueError(f"uniform_mixture must be in [0, 1 - mixture), got "
                             f"{uniform_mixture!r} with mixture = {mixture!r}")
        self.flow = flow
        self.mixture = float(mixture)
        self.uniform_mixture = float(uniform_mixture)
        self._grid_maps: dict[torch.device, GridMap] = {}
        self.base = base
        self.use_flow = use_flow

    @property
    def base(self) -> Any | None:
        """The base map (a ``vegas.AdaptiveMap``), or ``None`` for the identity."""
        return self._base

    @base.setter
    def base(self, vmap: Any | None) -> None:
        self._base = vmap
        self._grid_maps = {}
        # vegas' own compiled map and inverse run on host points, 10-30x faster than
        # GridMap's torch there; its inverse needs the same increments in every dimension
        self._host_vegas = vmap is not None and len({len(g) for g in vmap.extract_grid()}) == 1

    @property
    def device(self) -> torch.device:
        """Where the sampler draws: its flow's device."""
        return self.flow.device

    def _grid_map(self, device: torch.device) -> GridMap:
        if device not in self._grid_maps:
            assert self.base is not None
            self._grid_maps[device] = GridMap(self.base.extract_grid(), device)
        return self._grid_maps[device]

    @property
    def dims(self) -> int:
        return int(self.flow.dims)

    @property
    def dtype(self) -> torch.dtype:
        return self.flow.dtype

    def to_integrand(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x = V(z)`` and ``log |dV/dz|`` (the identity and 0 without a base map)."""
        return self._through_base("map", z)

    def to_latent(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``z = V^-1(x)`` and ``log |dV/dz|`` at it (the inverse of :meth:`to_integrand`)."""
        return self._through_base("invmap", x)

    def _through_base(self, direction: str,
                      t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The base map's ``map`` or ``invmap`` on ``t`` (on ``t``'s device, float64),
        with ``log |dV/dz|``: vegas' own on the CPU, :class:`GridMap` elsewhere (the same
        formulas, to rounding)."""
        if self.base is None:
            return t, torch.zeros(len(t), dtype=t.dtype, device=t.device)
        if t.device.type == "cpu" and self._host_vegas:
            src = np.ascontiguousarray(t.detach().numpy(), dtype=np.float64)
            out, jac = np.empty_like(src), np.empty(len(src))
            getattr(self.base, direction)(src, out, jac)
            return (torch.from_numpy(out).to(t.dtype),
                    torch.from_numpy(np.log(jac)).to(t.dtype))
        grid_map = self._grid_map(t.device)
        out, log_jac = getattr(grid_map, direction)(t.detach().to(torch.float64))
        return out.to(t.dtype), log_jac.to(t.dtype)

    def latent_log_prob(self, z: torch.Tensor,
                        flow_log_q: torch.Tensor | None = None) -> torch.Tensor:
        """log of the latent part ``(1 - lambda - mu) q_flow(z) + lambda``, normalised
        to ``1 - mu`` (the uniform component lives in the integrand's coordinates, see
        :meth:`log_prob_at`), differentiable in the flow's parameters. ``flow_log_q``:
        the flow's own ``log_prob(z)`` where already computed
        (:func:`~madnis_py.flows.flow.log_prob_many`)."""
        flat = math.log1p(-self.uniform_mixture) if self.uniform_mixture else 0.0
        if not self.use_flow:
            return torch.full((len(z),), flat, dtype=z.dtype, device=z.device)
        log_q = self.flow.log_prob(z) if flow_log_q is None else flow_log_q
        share = 1.0 - self.mixture - self.uniform_mixture
        if self.mixture > 0:
            return torch.logaddexp(log_q + math.log(share),
                                   torch.full_like(log_q, math.log(self.mixture)))
        return log_q + math.log(share) if self.uniform_mixture else log_q

    def log_prob_at(self, z: torch.Tensor, log_jac: torch.Tensor,
                    flow_log_q: torch.Tensor | None = None) -> torch.Tensor:
        """log q(x) at ``x = V(z)`` with ``log |dV/dz|`` known (the draw's), differentiable
        in the flow's parameters: the training's density (``flow_log_q``: see
        :meth:`latent_log_prob`)."""
        log_q = self.latent_log_prob(z, flow_log_q) - log_jac
        if self.uniform_mixture:
            log_q = torch.logaddexp(log_q, torch.full_like(log_q,
                                                           math.log(self.uniform_mixture)))
        return log_q

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log q(x) of points in the integrand's coordinates."""
        z, log_jac = self.to_latent(x)
        return self.log_prob_at(z, log_jac)

    @property
    def flow_only(self) -> bool:
        """Whether the channel samples its flow alone (no defensive mixture): its latent
        points are then the flow's ``sample`` (which several channels' flows can draw
        together, :func:`~madnis_py.flows.stacked.sample_stacked`)."""
        return self.use_flow and not self.mixture and not self.uniform_mixture

    def sample(self, n: int, generator: torch.Generator,
               latent: tuple[torch.Tensor, torch.Tensor] | None = None) -> Draw:
        """``n`` points with their densities (no gradient). ``latent``: the flow's
        ``sample(n)``, ``(z, log q(z))``, drawn already (only where :attr:`flow_only`)."""
        flow = self.flow
        dev = flow.device
        if latent is not None:
            if not self.flow_only or len(latent[0]) != n:
                raise ValueError("latent points are only for a channel sampling its flow "
                                 "alone, n of them")
            with torch.no_grad():
                z, log_qz = latent
                x, log_jac = self.to_integrand(z)
                return Draw(z, x, log_qz - log_jac, log_jac)
        with torch.no_grad():
            n_uniform = 0
            if self.uniform_mixture or (self.use_flow and self.mixture > 0):
                u = torch.rand(n, dtype=flow.dtype, generator=generator, device=dev)
                lo = self.mixture if self.use_flow else 0.0
                n_uniform = int(((u >= lo) & (u < lo + self.uniform_mixture)).sum())
            if not self.use_flow:
                z = torch.rand(n - n_uniform, flow.dims, dtype=flow.dtype,
                               generator=generator, device=dev)
                log_qz = torch.zeros(len(z), dtype=flow.dtype, device=dev)
            elif self.mixture > 0 or self.uniform_mixture:
                n_base = int((u < self.mixture).sum())
                z_flow, _ = flow.sample(n - n_base - n_uniform, generator=generator)
                z_base = torch.rand(n_base, flow.dims, dtype=flow.dtype, generator=generator,
                                    device=dev)
                z = torch.cat([z_flow, z_base])
                log_qz = self.latent_log_prob(z)
            else:
                z, log_qz = flow.sample(n, generator=generator)
            x, log_jac = self.to_integrand(z)
            if not n_uniform:
                return Draw(z, x, log_qz - log_jac, log_jac)
            x_uni = torch.rand(n_uniform, flow.dims, dtype=flow.dtype, generator=generator,
                               device=dev)
            z_uni, log_jac_uni = self.to_latent(x_uni)
            z = torch.cat([z, z_uni])
            x = torch.cat([x, x_uni])
            log_jac = torch.cat([log_jac, log_jac_uni])
            return Draw(z, x, self.log_prob_at(z, log_jac), log_jac)

    def grid(self) -> list[np.ndarray] | None:
        """The base map's grid, one array of increments' edges per dimension (None
        without a base map)."""
        if self.base is None:
            return None
        return [np.asarray(g, dtype=np.float64) for g in self.base.extract_grid()]
