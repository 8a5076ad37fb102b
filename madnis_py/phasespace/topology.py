"""Channel topologies as data, and their compilation into a mapping program.

A channel of a 2 -> n process follows one Feynman-diagram topology (MadGraph builds one
channel per diagram). The topology is described by plain data, Python objects or TOML:

- a leaf is an ``int``: the index of the external particle in the momentum array, so the
  two incoming partons are 0 and 1 and the final state is 2 .. n+1 (MadGraph's leg
  numbering minus one);
- a :class:`Decay` is an s-channel propagator that splits into two daughters;
- a :class:`Topology` is either a single s-channel :class:`Decay` from the incoming pair
  (``s_channel``) or a t-channel chain (``t_channel``): blocks emitted along the chain
  with one space-like propagator between neighbouring blocks.

Every topology becomes a binary tree. A t-channel chain with blocks B1 .. Bk is the nested
tree root -> (B1, X1), X1 -> (B2, X2), ..., X_{k-2} -> (B_{k-1}, B_k): each X is a
"t-node" whose two-body splitting is sampled in the momentum transfer t instead of an
isotropic angle. The tree is then flattened in pre-order into the integer and float
tables that the compiled mapping (``csrc/phasespace_math.h``) and its numpy reference
(:mod:`madnis_py.phasespace.reference`) execute; ``docs/phasespace.md`` states the
algorithm they both follow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping as AbcMapping
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Decay",
    "Node",
    "Program",
    "Propagator",
    "TChannel",
    "Topology",
    "TopologyError",
    "compile_topology",
    "leaves",
    "load_topologies",
    "MAX_FINAL",
    "NODE_LEAF",
    "NODE_S",
    "NODE_T",
    "SAMPLER_NONE",
    "SAMPLER_BREIT_WIGNER",
    "SAMPLER_POWER",
    "SAMPLER_BREIT_WIGNER_TAIL",
    "TAIL_CUTOFF",
    "ROOT_NU",
    "ROOT_NU_RESONANT",
]

#: Largest final-state multiplicity the compiled mappings accept (fixed-size event state).
MAX_FINAL = 16

NODE_LEAF, NODE_S, NODE_T = 0, 1, 2
SAMPLER_NONE, SAMPLER_BREIT_WIGNER, SAMPLER_POWER, SAMPLER_BREIT_WIGNER_TAIL = 0, 1, 2, 3

#: The Breit-Wigner-with-tail sampler (``SAMPLER_BREIT_WIGNER_TAIL``) follows the
#: Breit-Wigner up to ``(M + TAIL_CUTOFF Gamma)^2`` and ``1/s`` above, continuously
#: (MadGraph's default ``bwcutoff``: its on-shell window). It is used for every massive
#: s-channel propagator whose lower limit lies below its window, ``M - TAIL_CUTOFF
#: Gamma``, but the partonic energy of hadron beams; the others keep the plain one.
TAIL_CUTOFF = 15.0

# Columns of Program.int_table and Program.float_table (see docs/phasespace.md).
I_KIND, I_CHILD1, I_CHILD2, I_LEG, I_SAMPLER = range(5)
F_MASS, F_MIN_MASS, F_A, F_B, F_T_NU, F_T_M2 = range(6)

#: Default power nu of the 1/x^nu samplers of massless propagators (s and t channel).
DEFAULT_NU = 0.8

#: Power nu of the 1/shat^nu sampler of the partonic energy (hadron beams) of a t-channel
#: chain and of a massless s-channel above a cut, without a resonance below it (see
#: ``_set_root_sampler``). MadGraph starts from 1/shat; with the parton luminosity steeper
#: than that, 1.5 left VEGAS the least to correct (p p > e+ e- j, photon channels).
ROOT_NU = 1.5
#: The same with a massive propagator (Breit-Wigner) below the root: 1/shat, as MadGraph.
ROOT_NU_RESONANT = 1.0


class TopologyError(ValueError):
    """A topology that does not describe a valid channel; the message names the channel."""


@dataclass(frozen=True)
class Propagator:
    """An internal line of a diagram.

    Parameters
    ----------
    mass, width : float
        Pole mass and width in GeV. An s-channel propagator with ``mass > 0`` and
        ``width > 0`` is sampled with a Breit-Wigner in its invariant mass squared (with a
        ``1/s`` tail above ``(mass + TAIL_CUTOFF width)^2``, see ``docs/phasespace.md``); any
        other propagator with a power law ``1 / (x + m0^2)^nu`` (x = s, or x = -t).
    nu : float
        Power of the power-law sampler (0 is flat). ``nu >= 1`` needs the sampled range to
        stay away from zero: a mass, or a lower invariant-mass cut for s-channels.
    name : str
        Label used in error messages (``"Z"``, ``"t~"``, ...).
    """

    mass: float = 0.0
    width: float = 0.0
    nu: float = DEFAULT_NU
    name: str = ""

    def __post_init__(self) -> None:
        for what, value in (("mass", self.mass), ("width", self.width), ("nu", self.nu)):
            if not (math.isfinite(value) and value >= 0):
                raise TopologyError(f"propagator {self.name or '?'}: {what} must be a finite "
                                    f"number >= 0, got {value!r}")

    @property
    def breit_wigner(self) -> bool:
        return self.mass > 0 and self.width > 0


@dataclass(frozen=True)
class Decay:
    """An s-channel propagator splitting into two daughters (leaves or further decays).

    ``min_mass`` is an optional lower cut on the invariant mass of the daughters in GeV
    (MadGraph's ``mmjj``/``mmll`` for this pair); the kinematic threshold is added anyway.
    The integrand raises it to the bound the run's cuts imply and refuses a value above
    that bound (:func:`madnis_py.phasespace.coverage.fit_to_cuts`).
    """

    propagator: Propagator
    daughters: tuple[Node, Node]
    min_mass: float = 0.0


@dataclass(frozen=True)
class TChannel:
    """A multi-peripheral chain: ``blocks`` emitted in order from beam 1 towards beam 2,
    with ``propagators[i]`` the space-like line between block i and block i+1.

    ``scales[i]`` (GeV^2, empty: all 0) is where the power law ``1 / (|t| + c)^nu`` of
    line i turns flat: ``c`` is the larger of it and the line's mass squared. A pT cut
    keeps ``|t|`` of a massless line above about pT^2 (``|t| >= pT^2`` for the first line
    and a massless block), so a law that starts at 0 wastes its points where the cuts
    remove them, and at a range that moves with the partonic energy; the integrand sets
    the scales from the run's cuts (:func:`madnis_py.phasespace.coverage.fit_to_cuts`,
    MadGraph's ``myamp.f`` starts its 1/t grid there). A scale is a shape, not a bound:
    any value >= 0 gives a correct map.
    """

    blocks: tuple[Node, ...]
    propagators: tuple[Propagator, ...]
    scales: tuple[float, ...] = ()

    def scale(self, i: int) -> float:
        """The scale of line ``i`` (0 without scales)."""
        return float(self.scales[i]) if self.scales else 0.0


Node = int | Decay


def leaves(node: Node) -> list[int]:
    """The final-state legs below ``node``, left to right (a leg is its own leaf)."""
    if isinstance(node, Decay):
        return leaves(node.daughters[0]) + leaves(node.daughters[1])
    return [int(node)]


@dataclass(frozen=True)
class Topology:
    """One channel's topology: exactly one of ``s_channel`` and ``t_channel``.

    ``min_shat`` is a lower cut on the partonic invariant mass squared in GeV^2 (hadron
    beams); the threshold of the final-state masses applies anyway. Like ``min_mass`` it
    follows the run's cuts in the integrand and may only be looser than they are.

    ``products_mass`` (GeV, 0: unknown) is the mass the decay products of an s-channel
    root take in the bulk of the cross section: their resonances at their poles, their
    other particles at the pT the cuts demand (:func:`products_mass`; MadGraph tests
    whether an s-channel propagator can be on shell the same way). Like the t-channel
    scales it is a shape, not a bound: with hadron beams, a massive root whose on-shell
    window ends below it (``M + TAIL_CUTOFF G``) keeps the ``1/s`` tail above the window
    that every other massive s-channel propagator has, instead of a plain Breit-Wigner
    that would put nearly every point below what its products need
    (``docs/phasespace.md``).
    """

    s_channel: Decay | None = None
    t_channel: TChannel | None = None
    name: str = ""
    min_shat: float = 0.0
    products_mass: float = 0.0

    def __post_init__(self) -> None:
        if (self.s_channel is None) == (self.t_channel is None):
            raise TopologyError(f"channel {self.name or '?'}: give exactly one of s_channel "
                                "and t_channel")

    @staticmethod
    def from_dict(data: AbcMapping[str, Any], *, name: str = "") -> Topology:
        """Build a topology from plain data (the TOML layout of :func:`load_topologies`)."""
        label = str(data.get("name", name))
        known = {"name", "s_channel", "t_channel", "min_shat", "products_mass"}
        unknown = set(data) - known
        if unknown:
            raise TopologyError(f"channel {label or '?'}: unknown field(s) {sorted(unknown)}; "
                                f"expected {sorted(known)}")
        s = data.get("s_channel")
        t = data.get("t_channel")
        return Topology(
            s_channel=None if s is None else _decay_from_dict(s, label, "s_channel"),
            t_channel=None if t is None else _tchannel_from_dict(t, label),
            name=label,
            min_shat=float(data.get("min_shat", 0.0)),
            products_mass=float(data.get("products_mass", 0.0)),
        )


def _propagator_from_dict(data: Any, label: str, where: str) -> Propagator:
    if not isinstance(data, AbcMapping):
        raise TopologyError(f"channel {label}: {where} must be a table with mass/width/nu/name")
    unknown = set(data) - {"mass", "width", "nu", "name"}
    if unknown:
        raise TopologyError(f"channel {label}: {where} has unknown field(s) {sorted(unknown)}")
    try:
        return Propagator(mass=float(data.get("mass", 0.0)), width=float(data.get("width", 0.0)),
                          nu=float(data.get("nu", DEFAULT_NU)), name=str(data.get("name", "")))
    except (TypeError, ValueError) as err:
        raise TopologyError(f"channel {label}: {where}: {err}") from err


def _node_from_data(data: Any, label: str, where: str) -> Node:
    if isinstance(data, bool):
        raise TopologyError(f"channel {label}: {where} must be a leg index or a decay table")
    if isinstance(data, int):
        return data
    return _decay_from_dict(data, label, where)


def _decay_from_dict(data: Any, label: str, where: str) -> Decay:
    if not isinstance(data, AbcMapping) or "decay" not in data:
        raise TopologyError(f"channel {label}: {where} must be a table with 'decay' (two "
                            "daughters) and optionally 'propagator' and 'min_mass'")
    unknown = set(data) - {"propagator", "decay", "min_mass"}
    if unknown:
        raise TopologyError(f"channel {label}: {where} has unknown field(s) {sorted(unknown)}")
    daughters = data["decay"]
    if not isinstance(daughters, Sequence) or len(daughters) != 2:
        raise TopologyError(f"channel {label}: {where}.decay must list exactly two daughters "
                            "(insert an intermediate decay for a vertex with more legs)")
    prop = _propagator_from_dict(data.get("propagator", {}), label, f"{where}.propagator")
    return Decay(prop,
                 (_node_from_data(daughters[0], label, f"{where}.decay[0]"),
                  _node_from_data(daughters[1], label, f"{where}.decay[1]")),
                 float(data.get("min_mass", 0.0)))


def _tchannel_from_dict(data: Any, label: str) -> TChannel:
    if not isinstance(data, AbcMapping) or "blocks" not in data:
        raise TopologyError(f"channel {label}: t_channel must be a table with 'blocks' and "
                            "'propagators'")
    unknown = set(data) - {"blocks", "propagators"}
    if unknown:
        raise TopologyError(f"channel {label}: t_channel has unknown field(s) {sorted(unknown)}")
    blocks = tuple(_node_from_data(b, label, f"t_channel.blocks[{i}]")
                   for i, b in enumerate(data["blocks"]))
    props = tuple(_propagator_from_dict(p, label, f"t_channel.propagators[{i}]")
                  for i, p in enumerate(data.get("propagators", [{}] * (len(blocks) - 1))))
    return TChannel(blocks, props)


def load_topologies(path: str | Path) -> list[Topology]:
    """Read ``[[channel]]`` tables from a TOML file (one topology per channel)."""
    import tomllib

    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise TopologyError(f"{path}: {err}") from err
    channels = data.get("channel")
    if not isinstance(channels, list) or not channels:
        raise TopologyError(f"{path}: no [[channel]] tables found")
    out = []
    for i, ch in enumerate(channels):
        try:
            out.append(Topology.from_dict(ch, name=f"#{i}"))
        except TopologyError as err:
            raise TopologyError(f"{path}: [[channel]] #{i}: {err}") from err
    return out


@dataclass(frozen=True)
class Program:
    """A topology flattened for the compiled mapping (pre-order nodes, root first).

    ``int_table[k]`` = (kind, child1, child2, leg, sampler) and ``float_table[k]`` =
    (leaf mass, minimum mass, sampler a, sampler b, t-sampler nu, t-sampler m0^2); see
    ``docs/phasespace.md``. ``dims`` is 3 n - 4 (+ 2 with hadron beams).
    """

    name: str
    n_final: int
    int_table: np.ndarray = field(repr=False)
    float_table: np.ndarray = field(repr=False)
    masses: tuple[float, ...]

    @property
    def n_nodes(self) -> int:
        return int(self.int_table.shape[0])


def compile_topology(topology: Topology, masses: Sequence[float], *,
                     hadronic: bool = False) -> Program:
    """Check a topology against the final-state masses and flatten it into a Program.

    Parameters
    ----------
    topology : Topology
    masses : sequence of float
        Final-state masses in GeV, ``masses[i]`` for momentum index ``i + 2``.
    hadronic : bool
        Whether the partonic energy is sampled (then the root's sampler is used).
    """
    label = topology.name or "?"
    n = len(masses)
    _check_masses(label, masses)

    ints: list[list[int]] = []
    floats: list[list[float]] = []
    seen: list[int] = []

    def add_leaf(leg: int, where: str) -> int:
        if not 2 <= leg < n + 2:
            raise TopologyError(f"channel {label}: {where} refers to particle {leg}, but the "
                                f"final state is particles 2..{n + 1}")
        if leg in seen:
            raise TopologyError(f"channel {label}: particle {leg} appears twice")
        seen.append(leg)
        ints.append([NODE_LEAF, -1, -1, leg, SAMPLER_NONE])
        floats.append([float(masses[leg - 2]), float(masses[leg - 2]), 0.0, 0.0, 0.0, 0.0])
        return len(ints) - 1

    def s_sampler(prop: Propagator) -> tuple[int, float, float]:
        if prop.breit_wigner:
            # Far above the pole a diagram's propagator can still carry much of the
            # integrand (an off-shell Z* next to a photon): a pure Breit-Wigner leaves
            # that region almost no share of r, so its weights are huge.
            return SAMPLER_BREIT_WIGNER_TAIL, prop.mass, prop.width
        return SAMPLER_POWER, prop.nu, 0.0

    def add_node(node: Node, where: str) -> int:
        if isinstance(node, int) and not isinstance(node, bool):
            return add_leaf(node, where)
        if not isinstance(node, Decay):
            raise TopologyError(f"channel {label}: {where} is neither a leg index nor a Decay")
        k = len(ints)
        kind, a, b = s_sampler(node.propagator)
        ints.append([NODE_S, -1, -1, -1, kind])
        floats.append([0.0, 0.0, a, b, 0.0, 0.0])
        c1 = add_node(node.daughters[0], f"{where}.decay[0]")
        c2 = add_node(node.daughters[1], f"{where}.decay[1]")
        finish(k, c1, c2, max(node.min_mass, 0.0), node.propagator, where)
        return k

    def finish(k: int, c1: int, c2: int, cut: float, prop: Propagator | None,
               where: str) -> None:
        ints[k][I_CHILD1], ints[k][I_CHILD2] = c1, c2
        threshold = floats[c1][F_MIN_MASS] + floats[c2][F_MIN_MASS]
        floats[k][F_MIN_MASS] = max(threshold, cut)
        if (prop is not None and ints[k][I_SAMPLER] == SAMPLER_BREIT_WIGNER_TAIL
                and floats[k][F_MIN_MASS] >= prop.mass - TAIL_CUTOFF * prop.width):
            # the pole at (or below) the lower limit: a massive line radiating (t* -> t g),
            # whose integrand falls from the threshold like the emission; the Breit-Wigner
            # piles up there, and a tail share cost g g > t t~ g a quarter of its eps_uw
            ints[k][I_SAMPLER] = SAMPLER_BREIT_WIGNER
        if (prop is not None and ints[k][I_SAMPLER] == SAMPLER_POWER and prop.nu >= 1
                and floats[k][F_MIN_MASS] == 0 and k != 0):
            raise TopologyError(
                f"channel {label}: s-channel propagator {prop.name or where} is massless with "
                f"nu = {prop.nu} >= 1 and nothing keeps its invariant mass away from zero: "
                "give it a min_mass cut (in a run, a lower mmXX cut on its daughters sets "
                "it) or nu < 1")

    def add_chain(blocks: Sequence[Node], props: Sequence[Propagator], scales: Sequence[float],
                  first: int) -> int:
        # root -> (B1, X1), X1 -> (B2, X2), ..., X_{k-2} -> (B_{k-1}, B_k)
        prop = props[0]
        offset = max(prop.mass ** 2, scales[0])
        if offset == 0 and prop.nu >= 1:
            raise TopologyError(
                f"channel {label}: t-channel propagator {prop.name or f'#{first}'} is massless with "
                f"nu = {prop.nu} >= 1, which is not integrable at t = 0: use nu < 1 (or give "
                "the line a scale; in a run, a pT cut on the blocks it joins sets one)")
        k = len(ints)
        # t-nodes below the root have their own mass sampled flat in s.
        ints.append([NODE_T, -1, -1, -1, SAMPLER_POWER])
        floats.append([0.0, 0.0, 0.0, 0.0, prop.nu, offset])
        c1 = add_node(blocks[0], f"t_channel.blocks[{first}]")
        if len(blocks) == 2:
            c2 = add_node(blocks[1], f"t_channel.blocks[{first + 1}]")
        else:
            c2 = add_chain(blocks[1:], props[1:], scales[1:], first + 1)
        finish(k, c1, c2, 0.0, None, "t_channel")
        return k

    if topology.s_channel is not None:
        root = add_node(topology.s_channel, "s_channel")
    else:
        tc = topology.t_channel
        assert tc is not None
        _check_chain(label, tc)
        root = add_chain(tc.blocks, tc.propagators,
                         [tc.scale(i) for i in range(len(tc.propagators))], 0)
    assert root == 0
    missing = sorted(set(range(2, n + 2)) - set(seen))
    if missing:
        raise TopologyError(f"channel {label}: the topology does not close: particle(s) "
                            f"{missing} of the final state are not attached")

    resonant = any(row[I_SAMPLER] in (SAMPLER_BREIT_WIGNER, SAMPLER_BREIT_WIGNER_TAIL)
                   for row in ints[1:])
    _set_root_sampler(ints[0], floats[0], label, topology.min_shat, hadronic=hadronic,
                      resonant=resonant, products_mass=topology.products_mass)
    return Program(label, n, np.ascontiguousarray(ints, dtype=np.int32),
                   np.ascontiguousarray(floats, dtype=np.float64),
                   tuple(float(m) for m in masses))


def _check_masses(label: str, masses: Sequence[float]) -> None:
    """Refuse a final state outside [2, MAX_FINAL] particles or a mass not finite and >= 0."""
    n = len(masses)
    if not 2 <= n <= MAX_FINAL:
        raise TopologyError(f"channel {label}: final-state multiplicity must be in "
                            f"[2, {MAX_FINAL}], got {n}")
    for i, m in enumerate(masses):
        if not (math.isfinite(m) and m >= 0):
            raise TopologyError(f"channel {label}: mass of particle {i + 2} must be finite "
                                f"and >= 0, got {m!r}")


def _check_chain(label: str, tc: TChannel) -> None:
    """Refuse a t-channel chain of fewer than two blocks or without one propagator
    between each pair of neighbouring blocks."""
    n_blocks = len(tc.blocks)
    if n_blocks < 2:
        raise TopologyError(f"channel {label}: a t-channel chain needs at least two blocks")
    if len(tc.propagators) != n_blocks - 1:
        raise TopologyError(f"channel {label}: a t-channel chain of {n_blocks} blocks needs "
                            f"{n_blocks - 1} propagators, got {len(tc.propagators)}")
    if tc.scales and len(tc.scales) != n_blocks - 1:
        raise TopologyError(f"channel {label}: a t-channel chain of {n_blocks} blocks needs "
                            f"{n_blocks - 1} scales (or none), got {len(tc.scales)}")
    for i, value in enumerate(tc.scales):
        if not (math.isfinite(value) and value >= 0):
            raise TopologyError(f"channel {label}: t_channel scale {i} must be a finite "
                                f"number >= 0 (GeV^2), got {value!r}")


def _set_root_sampler(root_ints: list[int], root_floats: list[float], label: str,
                      min_shat: float, *, hadronic: bool, resonant: bool,
                      products_mass: float = 0.0) -> None:
    """Set how the root's energy is sampled: not at all with lepton beams; with hadron
    beams the partonic energy, above ``min_shat`` (a massive propagator with the plain
    Breit-Wigner, no 1/shat tail, unless its products need more than its on-shell window
    holds; otherwise 1/shat where there is a cut), refusing a massless final state whose
    1/shat^nu (nu >= 1) sampler has no lower cut."""
    if not hadronic:
        root_ints[I_SAMPLER] = SAMPLER_NONE
        return
    root_floats[F_MIN_MASS] = max(root_floats[F_MIN_MASS], math.sqrt(max(min_shat, 0.0)))
    if root_ints[I_SAMPLER] in (SAMPLER_BREIT_WIGNER, SAMPLER_BREIT_WIGNER_TAIL):
        if (root_floats[F_MIN_MASS] < root_floats[F_A] + TAIL_CUTOFF * root_floats[F_B]
                <= products_mass):
            # The products need more than the whole on-shell window: u d~ > W+* > Z W+
            # (the Z and the W at their poles, 171 GeV) or u u~ > Z* > (u~* > Z u~) u (the
            # Z and two jets of 20 GeV, 131 GeV) of p p > e+ e- j j QCD=0. The plain
            # Breit-Wigner put 99.7 % of the points below that, the channel's largest
            # weights 10^4 times its mean; the tail gives the far off-shell region a
            # share (a 1/shat law from the cut instead starved the pole, where 1 to 9 %
            # of these channels' cross section lies: largest weights up to 5500 times the
            # mean, against 1100 to 3000 with the tail; docs/phasespace.md).
            root_ints[I_SAMPLER] = SAMPLER_BREIT_WIGNER_TAIL
        else:
            # Above the pole the parton luminosity makes d sigma / d shat fall faster
            # than the Breit-Wigner: a 1/shat tail there would only waste points (DY +
            # Z': 30 % more variance after the survey).
            root_ints[I_SAMPLER] = SAMPLER_BREIT_WIGNER
    if root_ints[I_KIND] == NODE_T or (root_ints[I_SAMPLER] == SAMPLER_POWER
                                       and root_floats[F_MIN_MASS] > 0):
        # The partonic energy of a t-channel topology, or of a massless s-channel above a
        # cut, is sampled as 1/shat^ROOT_NU: the parton luminosity falls much faster
        # than the propagator's 1/shat^nu, and the cross section lies near the threshold
        # the cuts set. A resonance below the root moves it up to about its mass, far
        # above a threshold set by pT cuts (u d~ > e+ ve g, ptj 10: 20 GeV against m_W);
        # there the steeper law starves the resonance (the quadrature test's error
        # 1.2 % -> 2.0 %) and 1/shat stays.
        root_ints[I_SAMPLER] = SAMPLER_POWER
        root_floats[F_A], root_floats[F_B] = (ROOT_NU_RESONANT if resonant else ROOT_NU), 0.0
    nu_root = root_floats[F_A] if root_ints[I_SAMPLER] == SAMPLER_POWER else 0.0
    if nu_root >= 1 and root_floats[F_MIN_MASS] == 0:
        raise TopologyError(
            f"channel {label}: massless final state at a hadron collider: the partonic "
            "energy needs a lower cut (min_shat, or min_mass of the s-channel; in a run, "
            "a pT or mmXX cut of the final state sets it)")
