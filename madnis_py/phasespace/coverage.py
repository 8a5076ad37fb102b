"""Mapping limits from the run's cuts: a channel starts where the cuts allow, never later.

A channel's mapping samples every s-channel invariant mass from its ``min_mass`` upwards
and, with hadron beams, the partonic energy from ``min_shat`` upwards; whatever lies
below is never generated. Those limits therefore follow the cuts of the run
(:meth:`Cuts.min_mass <madnis_py.phasespace.cuts.Cuts.min_mass>` and
:meth:`Cuts.min_shat <madnis_py.phasespace.cuts.Cuts.min_shat>`, lower bounds that no
event passing the cuts violates): :func:`fit_to_cuts` raises each limit to the bound the
cuts give. A limit written in a process card may be looser than the cuts (it is then
raised), never tighter: events the cuts keep would be lost without a trace, so that is a
:class:`CutCoverageError` naming the channel, the field and the cuts, raised when the
integrand is built, before anything is sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from madnis_py.phasespace.cuts import Cuts
from madnis_py.phasespace.topology import Decay, Node, TChannel, Topology, leaves

__all__ = ["CutCoverageError", "fit_to_cuts", "products_mass", "t_channel_scales"]

# Card values are written as decimals; a bound equal to them up to rounding is not tighter.
_RTOL = 1e-9


class CutCoverageError(ValueError):
    """A channel whose mapping cannot reach events the cuts allow; names channel and cuts."""


def _describe(cuts: Cuts, names: set[str]) -> str:
    """``"cuts mmll = 10, ptl = 10"``: the active cuts among ``names``, or a sentence
    saying that none is active."""
    values = {name: value for name, value in cuts.active.items() if name in names}
    if not values:
        return "no cut bounds it from below"
    return "cuts " + ", ".join(f"{name} = {value:g}" for name, value in sorted(values.items()))


def _mass_cut_names(cuts: Cuts, legs: Sequence[int], whole: bool,
                    masses: Sequence[float]) -> set[str]:
    names = {name for (i, j), (found, _) in cuts.pair_mass_bounds(masses).items()
             if i in legs and j in legs for name in found}
    if whole:
        names |= _shat_cut_names(cuts)
    return names


def _shat_cut_names(cuts: Cuts) -> set[str]:
    names = {name for name in cuts.active if name.startswith("pt") and not name.endswith("max")}
    return names | {"misset"} | {name for name, _ in cuts.pair_mass_cuts().values()}


def _too_tight(limit: float, bound: float) -> bool:
    return limit > bound * (1 + _RTOL) + 1e-12


def t_channel_scales(blocks: Sequence[Node], cuts: Sequence[Cuts]) -> tuple[float, ...]:
    """The scale of each line of a t-channel chain (:class:`TChannel`), in GeV^2, as
    MadGraph's ``myamp.f`` sets its 1/t grids: line i joins blocks i and i+1, each with
    the transverse energy its cuts demand at least (the sum of its particles' pT
    minima, :meth:`Cuts.min_pt`), and its scale is the smaller of the two, squared; the
    loosest of the subprocesses' cuts counts. For the first line and a massless block
    with a pT cut, ``|t| >= pT^2`` holds exactly (``|t| = sqrt(shat) pT e^(-y)`` with
    ``pT e^y <= sqrt(shat)``); elsewhere the scale is a shape, not a bound."""
    def demand(block: Node, c: Cuts) -> float:
        return sum(c.min_pt(leg) for leg in leaves(block))

    return tuple(min(min(demand(a, c), demand(b, c)) for c in cuts) ** 2
                 for a, b in zip(blocks[:-1], blocks[1:], strict=True))


def products_mass(root: Decay, cuts: Sequence[Cuts], masses: Sequence[float]) -> float:
    """The mass (GeV) the decay products of an s-channel root take in the bulk of the
    cross section (:attr:`Topology.products_mass
    <madnis_py.phasespace.topology.Topology.products_mass>`): the sum over its daughters
    of a resonance's pole mass (or its products', if larger), another decay's products'
    (at least its ``min_mass``), a particle's transverse mass at the pT its cuts demand
    (:meth:`Cuts.min_pt`); the loosest of the subprocesses' cuts counts. MadGraph's
    madevent decides whether an s-channel propagator can be on shell from the same sums
    of masses and pT minima. A shape, not a bound: a pair of jets can be lighter than
    the sum of their pT minima."""
    def bulk(node: Node, c: Cuts) -> float:
        if not isinstance(node, Decay):
            return float(math.hypot(masses[node - 2], c.min_pt(node)))
        below = sum(bulk(d, c) for d in node.daughters)
        prop = node.propagator
        return max(prop.mass if prop.breit_wigner else node.min_mass, below)

    return min(sum(bulk(d, c) for d in root.daughters) for c in cuts)


def fit_to_cuts(topologies: Sequence[Topology], cuts: Sequence[Cuts],
                masses: Sequence[float], *, hadronic: bool,
                card: object = None) -> list[Topology]:
    """The topologies with every mapping limit set to where the cuts allow.

    Parameters
    ----------
    topologies : sequence of Topology
        The channels, with the limits of their card (``min_mass`` of each s-channel
        decay, ``min_shat`` of the channel).
    cuts : sequence of Cuts
        The cuts of every subprocess: an event counts if it passes those of any of them,
        so each limit follows the loosest.
    masses : sequence of float
        Final-state masses in GeV.
    hadronic : bool
        Hadron beams: the partonic energy is sampled, so ``min_shat`` and the root's
        ``min_mass`` are limits. With lepton beams the root's mass is ``sqrt(s)`` and
        neither is touched.
    card : str or Path, optional
        Where the topologies come from, for the error message.

    Returns
    -------
    list of Topology
        Same channels; ``min_mass`` and ``min_shat`` raised to the cuts' bounds, the
        lines of t-channel chains without scales given the scales of the cuts
        (:func:`t_channel_scales`), and with hadron beams s-channel roots without a
        ``products_mass`` given the one of the cuts (:func:`products_mass`).

    Raises
    ------
    CutCoverageError
        A card limit above the bound the cuts give: the channel would miss events the
        cuts keep. The message names the channel, the field, both values and the cuts.
    """
    if not cuts:
        raise ValueError("cuts: expected the Cuts of at least one subprocess")
    n_final = len(masses)
    where = f"{card}: " if card is not None else ""

    def fail(label: str, field: str, value: str, what: str, bound: str,
             loosest: Cuts, names: set[str], several: bool) -> None:
        source = _describe(loosest, names)
        if several:  # the subprocesses' cuts bound it differently: name the loosest
            source += f" in subprocess {list(loosest.pdgs)}"
        raise CutCoverageError(
            f"{where}channel {label!r}: {field} = {value} is above what the run's cuts "
            f"allow: {what} down to {bound} ({source}). The channel would never generate "
            f"the events in between and their cross section would be lost; lower or drop "
            f"{field} in the process card (the mapping follows the cuts by itself), or "
            f"tighten the cut to match")

    def fit_node(node: Node, label: str, field: str) -> Node:
        return fit_decay(node, label, field, False) if isinstance(node, Decay) else node

    def fit_decay(node: Decay, label: str, field: str, is_root: bool) -> Decay:
        legs = sorted(leaves(node))
        d0 = fit_node(node.daughters[0], label, f"{field}.decay[0]")
        d1 = fit_node(node.daughters[1], label, f"{field}.decay[1]")
        if is_root and not hadronic:
            return Decay(node.propagator, (d0, d1), node.min_mass)
        bounds = [c.min_mass(legs, masses) for c in cuts]
        bound = min(bounds)
        if _too_tight(node.min_mass, bound):
            name = node.propagator.name or "?"
            loosest = cuts[bounds.index(bound)]
            fail(label, f"{field}.min_mass", f"{node.min_mass:g} GeV",
                 f"m({', '.join(map(str, legs))}) of propagator {name}", f"{bound:g} GeV",
                 loosest, _mass_cut_names(loosest, legs, len(legs) == n_final, masses),
                 len(set(bounds)) > 1)
        return Decay(node.propagator, (d0, d1), max(node.min_mass, bound))

    out = []
    for i, topo in enumerate(topologies):
        label = topo.name or f"channel {i}"
        if topo.s_channel is not None:
            root = fit_decay(topo.s_channel, label, "s_channel", True)
            fitted = replace(topo, s_channel=root)
            if hadronic and not topo.products_mass:
                fitted = replace(fitted, products_mass=products_mass(root, cuts, masses))
        else:
            assert topo.t_channel is not None
            blocks = tuple(fit_node(b, label, f"t_channel.blocks[{k}]")
                           for k, b in enumerate(topo.t_channel.blocks))
            tc = topo.t_channel
            scales = tc.scales or t_channel_scales(blocks, cuts)
            fitted = replace(topo, t_channel=TChannel(blocks, tc.propagators, scales))
        if hadronic:
            shats = [c.min_shat(masses) for c in cuts]
            shat = min(shats)
            if _too_tight(topo.min_shat, shat):
                loosest = cuts[shats.index(shat)]
                fail(label, "min_shat", f"{topo.min_shat:g} GeV^2", "the partonic s",
                     f"{shat:g} GeV^2", loosest, _shat_cut_names(loosest), len(set(shats)) > 1)
            fitted = replace(fitted, min_shat=max(topo.min_shat, shat))
        out.append(fitted)
    return out
