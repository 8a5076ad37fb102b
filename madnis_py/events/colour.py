"""Colour flows of events: LHE colour tags (ICOLUP) for every particle.

Built-in process cards list their colour flows per subprocess (``colour_flows``); an event
takes one of them. A matrix element from elsewhere (MadGraph standalone output, Sherpa)
gives no colour information through our ABI, so its events get a *leading-colour* flow
built from the particle content alone:

1. Cross every incoming particle to the final state (a quark becomes an outgoing
   antiquark; a gluon stays a gluon), so that every colour tag must appear once as a
   colour and once as an anticolour.
2. Pair the quarks (colour triplets: 1-6) with the antiquarks; each pair opens a colour
   line at the quark and closes it at its antiquark.
3. Thread the gluons (octets) into the first line, in a chosen order: quark -> g -> g ->
   ... -> antiquark, each gluon closing the previous link with its anticolour and opening
   the next with its colour. Without quarks, the gluons form one closed loop.
4. Cross the incoming particles back (swap colour and anticolour).

Every pairing and gluon ordering is a leading-colour (large-N_c) flow, and the events
choose uniformly among them (:func:`leading_colour_flows` returns them up to a cap). That
is what a parton shower needs to set its dipoles; it does not weight flows by their
partial amplitudes, which would need the colour-ordered amplitudes (MadGraph's ``jamp2``)
that our ABI does not carry. With two or more quark lines this matters: q q~ -> t t~ by
gluon exchange connects q to t, by a photon q to q~, and both flows come out with equal
probability. Cards of built-in processes list the right flows. Tags start at 501, as
MadGraph writes them.
Colour flows are checked by :func:`check_colour_flow`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

__all__ = ["ColourFlowError", "check_colour_flow", "colour_charge", "leading_colour_flows"]

Flow = tuple[tuple[int, int], ...]


class ColourFlowError(ValueError):
    """A colour flow that cannot exist for the given particles."""


def colour_charge(pdg: int) -> int:
    """3 for a quark, -3 for an antiquark, 8 for a gluon, 1 otherwise (SM particles)."""
    if pdg == 21:
        return 8
    if 1 <= abs(pdg) <= 6:
        return 3 if pdg > 0 else -3
    return 1


def _crossed(pdgs: Sequence[int], n_in: int) -> list[int]:
    """Charges with the incoming particles crossed to the final state."""
    charges = [colour_charge(p) for p in pdgs]
    return [(-c if c in (3, -3) else c) if i < n_in else c for i, c in enumerate(charges)]


def leading_colour_flows(pdgs: Sequence[int], *, n_in: int = 2,
                         max_flows: int = 24) -> list[Flow]:
    """Leading-colour flows of a subprocess, one per quark pairing and gluon ordering.

    Parameters
    ----------
    pdgs : sequence of int
        PDG ids, incoming first.
    n_in : int
        Number of incoming particles.
    max_flows : int
        At most this many flows (the first ones in lexicographic order).

    Returns
    -------
    list of flows, each a tuple of (colour, anticolour) per particle, 0 for none.
    """
    charges = _crossed(pdgs, n_in)
    quarks = [i for i, c in enumerate(charges) if c == 3]
    antiquarks = [i for i, c in enumerate(charges) if c == -3]
    gluons = [i for i, c in enumerate(charges) if c == 8]
    if len(quarks) != len(antiquarks):
        raise ColourFlowError(f"particles {list(pdgs)}: {len(quarks)} colour triplets and "
                              f"{len(antiquarks)} antitriplets (incoming crossed) cannot "
                              "form a colour singlet")
    if not quarks and len(gluons) == 1:
        raise ColourFlowError(f"particles {list(pdgs)}: a single gluon cannot be a colour "
                              "singlet")
    flows: list[Flow] = []
    # a closed gluon loop is the same flow under rotations: fix its first gluon
    orders = (itertools.permutations(gluons) if quarks or not gluons else
              ((gluons[0],) + rest for rest in itertools.permutations(gluons[1:])))
    choices = itertools.product(itertools.permutations(antiquarks), orders)
    for pairing, order in itertools.islice(choices, max_flows):
        colour = [0] * len(pdgs)
        anti = [0] * len(pdgs)
        tag = 500
        for k, (q, qbar) in enumerate(zip(quarks, pairing, strict=True)):
            tag += 1
            colour[q] = tag
            for g in (order if k == 0 else ()):
                anti[g] = tag
                tag += 1
                colour[g] = tag
            anti[qbar] = tag
        if not quarks and order:
            first = tag + 1
            for g in order:
                tag += 1
                anti[g] = tag
                colour[g] = tag + 1
            colour[order[-1]] = first
        flow = tuple((anti[i], colour[i]) if i < n_in else (colour[i], anti[i])
                     for i in range(len(pdgs)))
        check_colour_flow(pdgs, flow, n_in=n_in)
        flows.append(flow)
    return flows


def check_colour_flow(pdgs: Sequence[int], flow: Sequence[Sequence[int]], *,
                      n_in: int = 2) -> None:
    """Raise :class:`ColourFlowError` unless ``flow`` conserves colour for ``pdgs``.

    Each particle carries the tags its representation allows (quark: colour only,
    antiquark: anticolour only, gluon: both, distinct; colourless: none) and, with the
    incoming particles crossed, every tag appears exactly once as a colour and once as an
    anticolour.
    """
    if len(flow) != len(pdgs):
        raise ColourFlowError(f"particles {list(pdgs)}: {len(flow)} colour pairs for "
                              f"{len(pdgs)} particles")
    colours: list[int] = []
    antis: list[int] = []
    for i, (pdg, pair) in enumerate(zip(pdgs, flow, strict=True)):
        c, a = (int(pair[0]), int(pair[1]))
        charge = colour_charge(pdg)
        need = {3: (True, False), -3: (False, True), 8: (True, True), 1: (False, False)}
        has_c, has_a = need[charge]
        if (c != 0) != has_c or (a != 0) != has_a or (charge == 8 and c == a):
            raise ColourFlowError(f"particles {list(pdgs)}: particle {i} (pdg {pdg}) has "
                                  f"colour tags ({c}, {a}), not those of its "
                                  "representation")
        if i < n_in:
            c, a = a, c
        if c:
            colours.append(c)
        if a:
            antis.append(a)
    if sorted(colours) != sorted(antis) or len(set(colours)) != len(colours):
        raise ColourFlowError(f"particles {list(pdgs)}: colour flow {[list(p) for p in flow]} "
                              "does not conserve colour (each tag once as colour and once "
                              "as anticolour, incoming crossed)")
