"""The channel prior of MadGraph's ``sde_strategy = 2``: each channel's weight is the
product of its propagators' denominators, ``prod_j 1 / |q_j^2 - M_j^2 + i M_j Gamma_j|^2``,
normalised over the channels of a group by the integrand.

:class:`PropagatorPrior` evaluates it for all channels of a group at once. Each
propagator's momentum is a signed sum of external momenta: an s-channel line carries the
sum of the final-state legs below it (the partonic pair ``0 + 1`` at the root of an
s-channel topology), a t-channel line ``p0 - (legs of the blocks before it)``. Channels of
one group share most of these sums (p p > e+ e- j j QCD=0, grouped: the largest group's
48 channels have 144 propagators, 18 distinct denominators of 13 distinct sums), so the
sums are computed once, as one matrix product of the momenta with their coefficients,
and each channel's product is gathered from the distinct denominators: 7x faster there
than channel by channel (0.67 s -> 0.10 s per 100k points). numpy arrays and torch
tensors (any device) alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar, cast

import numpy as np
import torch

from madnis_py.phasespace.topology import Decay, Node, Topology, leaves

__all__ = ["PropagatorPrior", "propagator_lines"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class PropagatorPrior:
    """``prod_j 1 / ((q_j^2 - M_j^2)^2 + (M_j Gamma_j)^2)`` per channel.

    Parameters
    ----------
    topologies
        The channels' topologies, in the order of the output's columns.
    n_legs
        External momenta per point (2 incoming and the final state).

    Examples
    --------
    >>> from madnis_py.phasespace.topology import Decay, Propagator, Topology
    >>> z = Topology(s_channel=Decay(Propagator(91.19, 2.44, name="Z"), (2, 3)))
    >>> prior = PropagatorPrior([z], n_legs=4)
    >>> p = np.array([[[50.0, 0, 0, 50], [50, 0, 0, -50], [50, 50, 0, 0], [50, -50, 0, 0]]])
    >>> float(prior(p)[0, 0]) == 1 / ((100.0 ** 2 - 91.19 ** 2) ** 2 + (91.19 * 2.44) ** 2)
    True
    """

    def __init__(self, topologies: Sequence[Topology], n_legs: int) -> None:
        sums: dict[tuple[int, ...], int] = {}
        lines: dict[tuple[int, float, float], int] = {}
        per_channel = []
        for topo in topologies:
            mine = []
            for coefficients, mass, width in propagator_lines(topo, n_legs):
                k = sums.setdefault(coefficients, len(sums))
                mine.append(lines.setdefault((k, mass, width), len(lines)))
            per_channel.append(mine)

        self.n_channels = len(per_channel)
        #: Coefficients of the distinct momentum sums over the legs, (sums, legs).
        self.coefficients = np.array(list(sums), dtype=np.float64).reshape(len(sums), n_legs)
        keys = list(lines)
        #: Per distinct denominator: its sum, M^2 and (M Gamma)^2.
        self.line_sum = np.array([k[0] for k in keys], dtype=np.int64)
        self.mass2 = np.array([k[1] ** 2 for k in keys], dtype=np.float64)
        self.mass_width2 = np.array([(k[1] * k[2]) ** 2 for k in keys], dtype=np.float64)
        # each channel's denominators, padded with a line of a zero sum and (M Gamma)^2
        # = 1, whose denominator is 1 exactly (index len(lines))
        depth = max((len(m) for m in per_channel), default=1)  # every topology has one
        self.gather = np.full((self.n_channels, depth), len(keys), dtype=np.int64)
        for i, mine in enumerate(per_channel):
            self.gather[i, :len(mine)] = mine
        self._padded = (np.vstack([self.coefficients, np.zeros((1, n_legs))]),
                        np.append(self.line_sum, len(sums)), np.append(self.mass2, 0.0),
                        np.append(self.mass_width2, 1.0), self.gather)
        self._on: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}

    def __call__(self, momenta: ArrayT) -> ArrayT:
        """The prior of every channel at ``momenta`` ``(n, legs, 4)``: ``(n, channels)``,
        unnormalised (``inf`` where a denominator vanishes).

        Computed point-last, ``(sums, 4, n)``: the sums as one matrix product over the
        legs, the products of each channel's denominators over contiguous rows; the
        same operations on numpy arrays and torch tensors."""
        p: Any
        if isinstance(momenta, torch.Tensor):
            p = momenta
            key = (p.device, p.dtype)
            if key not in self._on:
                self._on[key] = tuple(
                    torch.as_tensor(a, device=p.device,
                                    dtype=p.dtype if a.dtype == np.float64 else torch.int64)
                    for a in self._padded)
            arrays: tuple[Any, ...] = self._on[key]
        else:
            p = np.asarray(momenta, dtype=np.float64)
            arrays = self._padded
        coefficients, line_sum, mass2, mass_width2, gather = arrays
        n, legs = p.shape[0], p.shape[1]
        # (n, legs, 4) -> (legs, 4 n): component k of point i at column k n + i
        q = (coefficients @ p.reshape(n, 4 * legs).T.reshape(legs, 4 * n)).reshape(
            len(coefficients), 4, n)
        q2 = q[:, 0] ** 2 - q[:, 1] ** 2 - q[:, 2] ** 2 - q[:, 3] ** 2
        d = (q2[line_sum] - mass2[:, None]) ** 2 + mass_width2[:, None]
        with np.errstate(divide="ignore"):
            return cast(ArrayT, 1.0 / d[gather].prod(1).T)


def propagator_lines(topo: Topology, n_legs: int) -> list[tuple[tuple[int, ...], float, float]]:
    """A channel's propagators as (coefficients of its momentum over the ``n_legs``
    external momenta, mass, width): the root of an s-channel topology ``p0 + p1``, every
    other s-channel line the sum of its final-state legs, t-channel line j
    ``p0 - (legs of blocks 0 .. j)``."""
    out: list[tuple[tuple[int, ...], float, float]] = []

    def over(legs: list[int]) -> tuple[int, ...]:
        c = [0] * n_legs
        for leg in legs:
            c[leg] += 1
        return tuple(c)

    def decays(node: Node, root: bool) -> None:
        if isinstance(node, Decay):
            if not root:
                out.append((over(leaves(node)), node.propagator.mass, node.propagator.width))
            decays(node.daughters[0], False)
            decays(node.daughters[1], False)

    if topo.s_channel is not None:
        prop = topo.s_channel.propagator
        out.append((over([0, 1]), prop.mass, prop.width))
        decays(topo.s_channel, True)
        return out
    assert topo.t_channel is not None
    q = [0] * n_legs
    q[0] = 1
    # k blocks are joined by k - 1 propagators: the last block has none after it
    for block, prop in zip(topo.t_channel.blocks, topo.t_channel.propagators, strict=False):
        for leg in leaves(block):
            q[leg] -= 1
        out.append((tuple(q), prop.mass, prop.width))
    for block in topo.t_channel.blocks:
        decays(block, False)
    return out
