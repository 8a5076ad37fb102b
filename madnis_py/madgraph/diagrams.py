"""MadGraph diagram structure -> channel topologies, with the standard library alone.

MadGraph describes each tree diagram of a 2 -> n process, for its phase-space channels, by
the s- and t-channel vertices that ``HelasAmplitude.get_s_and_t_channels`` returns (the
same lists madevent writes to ``configs.inc`` as ``IFOREST``/``SPROP``/``TPRID``). Legs are
numbered as MadGraph numbers them: ``1 .. nexternal`` external (1 and 2 incoming), ``-1,
-2, ...`` internal lines in the order they are built:

- s-channel vertices come first, from the final state inwards; each joins two legs into a
  time-like propagator ``-k``;
- then the t-channel chain: the first vertex joins incoming leg 1 with a block into the
  space-like propagator ``-k``, the next joins that with the next block, ..., and the last
  vertex closes the chain on incoming leg 2 (its "propagator" is leg 2 itself, MadGraph
  still writes the incoming particle's id for it). A pure s-channel diagram has no chain
  (or only that closing vertex).

:func:`channel_table` turns one diagram into the ``[[channel]]`` table that
:meth:`madnis_py.phasespace.Topology.from_dict` reads (momentum indices are MadGraph's leg
numbers minus one), and :func:`group_channels` merges diagrams of identical topology
across subprocesses into one channel, as MadGraph's symmetric channels and madnis'
``ChannelGrouping`` do.

This module imports nothing outside the standard library: the MadGraph plugin runs it
inside MadGraph's own Python.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Diagram",
    "DiagramError",
    "Line",
    "Vertex",
    "channel_key",
    "channel_table",
    "group_channels",
    "onshell_lines",
]


class DiagramError(ValueError):
    """A diagram description that is not a tree of 3-point vertices."""


@dataclass(frozen=True)
class Line:
    """The particle of an internal line: PDG id, pole mass and width in GeV, name, and
    MadGraph's ``onshell`` flag: True for a line a decay chain forces on shell (``p p >
    t t~, t > b e+ ve``: madevent's ``gForceBW = 1``), False for one ``$`` forbids on
    shell (``gForceBW = 2``), None otherwise."""

    pdg: int
    mass: float = 0.0
    width: float = 0.0
    name: str = ""
    onshell: bool | None = None


@dataclass(frozen=True)
class Vertex:
    """A vertex joining ``daughters`` (MadGraph leg numbers) into the line ``mother``."""

    daughters: tuple[int, ...]
    mother: int
    line: Line


@dataclass(frozen=True)
class Diagram:
    """One diagram: its s-channel vertices and its t-channel chain, in MadGraph's order.

    ``number`` is MadGraph's diagram number (1-based, the index of its |M_i|^2).
    """

    number: int
    s_channels: tuple[Vertex, ...]
    t_channels: tuple[Vertex, ...] = ()

    def to_json(self) -> dict[str, Any]:
        def vertex(v: Vertex) -> dict[str, Any]:
            return {"daughters": list(v.daughters), "mother": v.mother,
                    "pdg": v.line.pdg, "mass": v.line.mass, "width": v.line.width,
                    "name": v.line.name, "onshell": v.line.onshell}
        return {"number": self.number, "s": [vertex(v) for v in self.s_channels],
                "t": [vertex(v) for v in self.t_channels]}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Diagram:
        def vertex(v: Mapping[str, Any]) -> Vertex:
            onshell = v.get("onshell")
            return Vertex(tuple(int(d) for d in v["daughters"]), int(v["mother"]),
                          Line(int(v["pdg"]), float(v["mass"]), float(v["width"]),
                               str(v.get("name", "")),
                               None if onshell is None else bool(onshell)))
        return Diagram(int(data["number"]), tuple(vertex(v) for v in data["s"]),
                       tuple(vertex(v) for v in data["t"]))


def _propagator(line: Line) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if line.mass > 0:
        out["mass"] = line.mass
    if line.width > 0 and line.mass > 0:
        out["width"] = line.width
    if line.name:
        out["name"] = line.name
    return out


def _leaves(node: Any) -> list[int]:
    if isinstance(node, int):
        return [node]
    return _leaves(node["decay"][0]) + _leaves(node["decay"][1])


def _s_root(diagram: Diagram, chain: Sequence[Vertex], label: str) -> int:
    """The line of a pure s-channel diagram's root: the s-channel line holding every
    final-state leg (``chain``: at most the closing vertex with the incoming legs)."""
    if not diagram.s_channels:
        raise DiagramError(f"{label}: no s-channel vertices and no t-channel chain")
    root = diagram.s_channels[-1]
    # The closing vertex joins the root with the incoming legs.
    if chain and set(chain[0].daughters) - {1, 2, root.mother}:
        raise DiagramError(f"{label}: the closing vertex {chain[0].daughters} "
                           "does not join the incoming legs")
    return root.mother


def _t_chain(chain: Sequence[Vertex], label: str,
             node: Callable[[int], Any]) -> dict[str, Any]:
    """The ``t_channel`` table of a chain of t-channel vertices; ``node(leg)`` gives the
    block of the leg emitted at each vertex."""
    for v in chain:
        if len(v.daughters) != 2:
            raise DiagramError(f"{label}: a t-channel vertex with {len(v.daughters)} "
                               "daughters (only 3-point vertices make a channel)")
    start = chain[0].daughters
    if 1 in start:
        first_incoming, reverse = 1, False
    elif 2 in start:
        first_incoming, reverse = 2, True
    else:
        raise DiagramError(f"{label}: the t-channel chain does not start at an incoming "
                           f"leg (first vertex {start})")
    blocks: list[Any] = []
    props: list[dict[str, Any]] = []
    previous = first_incoming
    for i, v in enumerate(chain):
        if previous not in v.daughters:
            raise DiagramError(f"{label}: t-channel vertex {v.daughters} does not "
                               f"continue the chain from line {previous}")
        other = v.daughters[1] if v.daughters[0] == previous else v.daughters[0]
        blocks.append(node(other))
        if i < len(chain) - 1:
            props.append(_propagator(v.line))
        previous = v.mother
    # The last vertex's remaining leg is the other incoming parton; MadGraph lists it
    # as the vertex's mother. Its other daughter is the last block, already taken.
    if reverse:
        blocks.reverse()
        props.reverse()
    return {"blocks": blocks, "propagators": props}


def channel_table(diagram: Diagram, nexternal: int, *, name: str = "") -> dict[str, Any]:
    """The ``[[channel]]`` table of one diagram (momentum indices = leg numbers - 1).

    Daughters of an s-channel decay are ordered by their smallest momentum index, so that
    the same topology always gives the same table.

    Raises
    ------
    DiagramError
        A vertex with more than two daughters (a 4-point vertex: MadGraph gives such
        diagrams no channel either), a leg used twice or never, or a chain that does not
        run from one incoming leg to the other.
    """
    label = name or f"diagram {diagram.number}"
    final = set(range(3, nexternal + 1))
    s_by_mother: dict[int, Vertex] = {}
    for v in diagram.s_channels:
        if len(v.daughters) != 2:
            raise DiagramError(f"{label}: an s-channel vertex with {len(v.daughters)} "
                               "daughters (only 3-point vertices make a channel)")
        s_by_mother[v.mother] = v
    used: set[int] = set()

    def node(leg: int) -> Any:
        if leg > 0:
            if leg not in final or leg in used:
                raise DiagramError(f"{label}: leg {leg} is not a final-state leg or is "
                                   "used twice")
            used.add(leg)
            return leg - 1
        if leg not in s_by_mother:
            raise DiagramError(f"{label}: line {leg} is not an s-channel propagator")
        v = s_by_mother.pop(leg)
        a, b = node(v.daughters[0]), node(v.daughters[1])
        if min(_leaves(b)) < min(_leaves(a)):
            a, b = b, a
        return {"propagator": _propagator(v.line), "decay": [a, b]}

    chain = list(diagram.t_channels)
    table: dict[str, Any] = {"name": label}
    if len(chain) <= 1:
        table["s_channel"] = node(_s_root(diagram, chain, label))
    else:
        table["t_channel"] = _t_chain(chain, label, node)
    if s_by_mother:
        raise DiagramError(f"{label}: s-channel line(s) {sorted(s_by_mother)} are not part "
                           "of the diagram's tree")
    if used != final:
        raise DiagramError(f"{label}: final-state leg(s) {sorted(final - used)} are missing")
    return table


def onshell_lines(diagram: Diagram) -> list[tuple[tuple[int, ...], Line]]:
    """The s-channel lines of a diagram with MadGraph's ``onshell`` flag set (forced on
    shell by a decay chain, or forbidden by ``$``), each with the momentum indices of
    its final-state decay products (MadGraph leg numbers minus one), sorted."""
    below: dict[int, tuple[int, ...]] = {}
    out = []
    for v in diagram.s_channels:  # daughters come before their mothers
        legs: list[int] = []
        for d in v.daughters:
            legs += [d - 1] if d > 0 else list(below.get(d, ()))
        below[v.mother] = tuple(sorted(legs))
        if v.line.onshell is not None:
            out.append((below[v.mother], v.line))
    return out


def channel_key(table: Mapping[str, Any]) -> str:
    """A key equal for two channel tables of the same topology (names ignored)."""
    def strip(obj: Any) -> Any:
        if isinstance(obj, Mapping):
            return {k: strip(v) for k, v in obj.items() if k != "name"}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj
    return json.dumps(strip(table), sort_keys=True)


def group_channels(tables: Iterable[Sequence[dict[str, Any] | None]]
                   ) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Merge channels of identical topology across subprocesses.

    Parameters
    ----------
    tables : per subprocess, one channel table per diagram (``None`` for a diagram
        without a channel, e.g. one with a 4-point vertex)

    Returns
    -------
    channels : the distinct tables, in order of first appearance
    diagram_channels : per subprocess, the channel index of each diagram (-1 for none)
    """
    channels: list[dict[str, Any]] = []
    index: dict[str, int] = {}
    mapping: list[list[int]] = []
    for per_sub in tables:
        row = []
        for table in per_sub:
            if table is None:
                row.append(-1)
                continue
            key = channel_key(table)
            if key not in index:
                index[key] = len(channels)
                channels.append(table)
            row.append(index[key])
        mapping.append(row)
    return channels, mapping

