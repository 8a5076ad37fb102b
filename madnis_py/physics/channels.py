"""Integration channels of a process: which topology and which subprocesses each has.

A process card lists topologies (``[[channel]]``) and subprocesses whose library diagrams
map to them (``diagram_channels``). Two layouts of the multi-channel integral

    sigma = sum_i E_{g_i}[alpha_i f / g_i]

follow from them:

``"shared"``
    One channel per topology; every channel evaluates every subprocess, and the channel
    weights ``alpha_i`` are normalised over all channels.
``"grouped"`` (madevent's)
    Subprocesses sharing a matrix element (the same ``matrix_element`` name and
    ``mirror``: MadGraph's flavour grouping, e.g. ``g u`` and ``g c``) form a group; each
    group has its own channels, one per topology its diagrams reach, and a point of one
    of them evaluates that group's matrix element only. The channel weights are
    normalised within the group: ``f = sum_G f_G`` and ``sum_{i in G} alpha_i = 1``
    wherever ``f_G`` is not zero, so every group's integral is its channels' sum. This is
    how madevent integrates: one P directory per group of flavours, its mirror as separate
    channels, and a point of a channel costs that group's matrix element, not all of
    them (p p > e+ e- j: 1 of 12 per point).

Subprocesses without a ``matrix_element`` name form one group together, so a process
whose card names none (the built-in ones) has the same channels in both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from madnis_py.physics.process import Subprocess

__all__ = ["CHANNEL_PRIORS", "LAYOUTS", "ChannelLayout", "ChannelPrior", "Layout"]

Layout = Literal["grouped", "shared"]
#: The channel layouts (see the module docstring).
LAYOUTS: tuple[str, ...] = ("grouped", "shared")

ChannelPrior = Literal["amplitudes", "propagators"]
#: What the channel weights' prior alpha_i^MG is made of: each channel's diagrams'
#: |M_i|^2 (``"amplitudes"``, madevent's ``sde_strategy = 1``, where the library exports
#: them), or the product of its topology's propagator denominators
#: 1 / |q^2 - M^2 + i M Gamma|^2 (``"propagators"``, ``sde_strategy = 2``, which
#: MadGraph writes for processes whose diagrams cancel against each other, such as
#: vector-boson fusion).
CHANNEL_PRIORS: tuple[str, ...] = ("amplitudes", "propagators")


@dataclass(frozen=True)
class ChannelLayout:
    """The integration channels of a process.

    Attributes
    ----------
    topology : tuple of int
        Per channel, the process card's topology (``[[channel]]`` index).
    group : tuple of int
        Per channel, its subprocess group.
    groups : tuple of tuple of int
        Per group, its subprocesses (indices into the card's ``[[subprocess]]``).
    columns : tuple of tuple of int
        Per subprocess, the channel of each of its library diagrams (-1: none), within
        the subprocess's group.
    """

    topology: tuple[int, ...]
    group: tuple[int, ...]
    groups: tuple[tuple[int, ...], ...]
    columns: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, subprocesses: Sequence[Subprocess], n_topologies: int,
           layout: str = "grouped") -> ChannelLayout:
        """The channels of ``subprocesses`` over ``n_topologies`` topologies in one of
        :data:`LAYOUTS`."""
        if layout not in LAYOUTS:
            raise ValueError(f"subprocess_channels must be one of {', '.join(LAYOUTS)}, "
                             f"got {layout!r}")
        keys: dict[object, int] = {}
        member: list[int] = []
        for sub in subprocesses:
            key = (None if layout == "shared" or sub.matrix_element is None
                   else (sub.matrix_element, sub.mirror))
            member.append(keys.setdefault(key, len(keys)))
        groups = tuple(tuple(k for k, g in enumerate(member) if g == j)
                       for j in range(len(keys)))

        def diagrams(sub: Subprocess) -> tuple[int, ...]:
            return (sub.diagram_channels if sub.diagram_channels is not None
                    else tuple(range(n_topologies)))

        topology: list[int] = []
        group: list[int] = []
        where: dict[tuple[int, int], int] = {}  # (group, topology) -> channel
        for j, subs in enumerate(groups):
            # one group (the shared layout, or a card without names) keeps every topology
            reached = sorted({c for k in subs for c in diagrams(subprocesses[k]) if c >= 0})
            if len(groups) == 1 or not reached:  # (no diagram with a channel: all of them)
                reached = list(range(n_topologies))
            for t in reached:
                where[j, t] = len(topology)
                topology.append(t)
                group.append(j)
        columns = tuple(tuple(where[member[k], c] if c >= 0 else -1 for c in diagrams(sub))
                        for k, sub in enumerate(subprocesses))
        return cls(tuple(topology), tuple(group), groups, columns)

    @property
    def n_channels(self) -> int:
        return len(self.topology)

    def channels_of(self, group: int) -> tuple[int, ...]:
        """The channels of a group, in order."""
        return tuple(i for i, g in enumerate(self.group) if g == group)
