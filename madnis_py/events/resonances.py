"""Intermediate resonances in the event record, as madevent writes them.

A resonance-aware parton shower (Pythia 8, Herwig 7) keeps the invariant mass of a
decaying W, Z, Z' or top fixed while it showers the decay products, but only when the
event record says that they come from that resonance. madevent therefore writes, for the
diagram (channel) that produced an event, every s-channel propagator whose invariant mass
lies inside its Breit-Wigner window,

    |m - M| < bwcutoff * Gamma      (bwcutoff = 15 by default, MadGraph's run card),

as a line of its own: status 2, the pole's PDG id, momentum = the sum of its decay
products, mass = their invariant mass, mothers (1, 2) or the enclosing resonance; the
decay products' mothers point at it (``addmothers.f``). Propagators outside the window,
massless ones and t-channel lines are not written, and the products of such a line point
at the nearest written ancestor or at the incoming partons.

This module does the same from the channel topologies of the process card
(:mod:`madnis_py.phasespace.topology`): :func:`channel_resonances` lists a channel's
Breit-Wigner propagators with their PDG ids (the propagator's name, else the param_card
particle with its mass and width), and :func:`add_resonances` is the pure function that
turns a batch of events (channel, momenta and the LHE particle columns) into the columns
with the resonance rows inserted after the incoming partons, the mothers renumbered and
a ``present`` mask saying which rows an event has (:meth:`LHEWriter.write_batch
<madnis_py.events.lhe.LHEWriter.write_batch>` leaves the others out). A charged
resonance takes its sign from the charge of its decay products (W+ or W-, t or t~), and
a coloured one (top) the colour tags of its products that are not contracted among
themselves (t -> b W+: the b's colour). Where the event's colour flow cannot be
attributed to the resonance (a colour-singlet resonance whose products are colour
connected to the beams; madevent only picks flows compatible with the diagram), that
resonance is not written for that event.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from madnis_py.phasespace.topology import Decay, Topology, leaves

if TYPE_CHECKING:  # pragma: no cover
    from madnis_py.physics.process import Process
    from madnis_py.physics.slha import SLHA

__all__ = [
    "DEFAULT_BWCUTOFF",
    "Resonance",
    "ResonanceError",
    "ResonanceTable",
    "add_resonances",
    "channel_resonances",
    "madgraph_bwcutoff",
]

#: madevent's default ``bwcutoff``: a propagator is a resonance within 15 widths of its pole.
DEFAULT_BWCUTOFF = 15.0

# Names of s-channel particles in our process cards and in MadGraph's SM UFO model.
_NAMES: dict[str, int] = {
    "z": 23, "z0": 23, "w+": 24, "w-": -24, "t": 6, "t~": -6, "tbar": -6, "h": 25,
    "h0": 25, "z'": 32, "zp": 32, "h+": 37, "h-": -37, "a": 22, "g": 21,
}

# Three times the electric charge of SM particles (positive PDG ids).
_CHARGE3: dict[int, int] = {1: -1, 2: 2, 3: -1, 4: 2, 5: -1, 6: 2, 11: -3, 12: 0, 13: -3,
                            14: 0, 15: -3, 16: 0, 21: 0, 22: 0, 23: 0, 24: 3, 25: 0,
                            32: 0, 37: 3}
# Colour representation of SM particles (3: triplet, -3: anti-triplet of the antiparticle,
# 8: octet, 1: singlet); particles not listed take whatever their products carry.
_COLOUR: dict[int, int] = {**{q: 3 for q in range(1, 7)}, 21: 8,
                           **{p: 1 for p in (11, 12, 13, 14, 15, 16, 22, 23, 24, 25, 32, 37)}}


class ResonanceError(ValueError):
    """Resonance data that cannot describe the events; the message names the channel."""


@dataclass(frozen=True)
class Resonance:
    """One Breit-Wigner s-channel propagator of a channel.

    Attributes
    ----------
    pdg
        PDG id; a charged resonance gets, per event, the sign that matches the charge of
        its decay products.
    mass, width
        Pole mass and width in GeV (``width > 0``).
    legs
        Momentum indices (2, 3, ...) of the final-state particles it decays into, at any
        depth.
    parent
        Index, in the channel's tuple, of the nearest enclosing resonance; -1 for none.
        Resonances are listed outer first (a parent before its children).
    name
        The propagator's name, for messages.
    """

    pdg: int
    mass: float
    width: float
    legs: tuple[int, ...]
    parent: int = -1
    name: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mass) and math.isfinite(self.width)
                and self.mass > 0 and self.width > 0):
            raise ResonanceError(f"resonance {self.name or self.pdg}: mass and width must be "
                                 f"positive, got {self.mass}, {self.width}")
        if len(self.legs) < 2 or min(self.legs) < 2 or len(set(self.legs)) != len(self.legs):
            raise ResonanceError(f"resonance {self.name or self.pdg}: legs must be two or "
                                 f"more distinct final-state indices (>= 2), got {self.legs}")


# --------------------------------------------------------------------------- PDG ids


def _charge3(pdg: int) -> int | None:
    q = _CHARGE3.get(abs(pdg))
    return None if q is None else (q if pdg > 0 else -q)


def _colour_rep(pdg: int) -> int | None:
    rep = _COLOUR.get(abs(pdg))
    if rep == 3 and pdg < 0:
        return -3
    return rep


def resolve_pdg(name: str, mass: float, width: float, card: SLHA | None) -> int | None:
    """The PDG id of an s-channel propagator: the param_card particle with its mass and
    width (unique), else the one its name designates; None if neither says.

    MadGraph's and our cards name the propagators (``"Z"``, ``"w+"``, ``"t~"``); the
    param_card match covers models whose names are not in the built-in table.
    """
    by_name = _NAMES.get(name.strip().lower())
    candidates: list[int] = []
    if card is not None:
        for key, m in card.blocks.get("mass", {}).items():
            if len(key) == 1 and math.isclose(abs(m), mass, rel_tol=1e-6) and math.isclose(
                    card.width(key[0]), width, rel_tol=1e-6):
                candidates.append(abs(key[0]))
    if by_name is not None and (not candidates or abs(by_name) in candidates):
        return by_name
    if len(candidates) == 1:
        return candidates[0]
    return by_name


def channel_resonances(topology: Topology, *, card: SLHA | None = None,
                       pdgs: Sequence[int] | None = None) -> tuple[Resonance, ...]:
    """The Breit-Wigner s-channel propagators of one channel, outer first.

    Parameters
    ----------
    topology
        The channel (an s-channel tree, or a t-channel chain whose blocks may decay).
    card
        The param_card, to identify propagators by mass and width.
    pdgs
        A subprocess's PDG list (incoming first): when given, a resonance's charge must
        match that of its decay products, and its sign is set from them.

    Warns
    -----
    UserWarning
        For a Breit-Wigner propagator whose PDG id neither its name nor the param_card
        tells, or whose charge cannot match its decay products in ``pdgs``; it is not
        written (a wrong label must not cost a trained run its events).
    """
    label = topology.name or "?"
    out: list[Resonance] = []

    def visit(node: Any, parent: int) -> None:
        if not isinstance(node, Decay):
            return
        prop = node.propagator
        here = parent
        if prop.breit_wigner:
            pdg = resolve_pdg(prop.name, prop.mass, prop.width, card)
            legs = tuple(leaves(node))
            if pdg is None:
                warnings.warn(f"channel {label}: s-channel propagator {prop.name or '?'} "
                              f"(mass {prop.mass}, width {prop.width}) is neither a known name "
                              "nor a param_card particle: it is not written as a resonance",
                              stacklevel=3)
            else:
                try:
                    if pdgs is not None:
                        pdg = _signed(pdg, [int(pdgs[i]) for i in legs], label, prop.name)
                except ResonanceError as err:
                    warnings.warn(f"{err}: it is not written as a resonance", stacklevel=3)
                else:
                    out.append(Resonance(pdg, prop.mass, prop.width, legs, parent,
                                         prop.name))
                    here = len(out) - 1
        visit(node.daughters[0], here)
        visit(node.daughters[1], here)

    if topology.s_channel is not None:
        visit(topology.s_channel, -1)
    else:
        assert topology.t_channel is not None
        for block in topology.t_channel.blocks:
            visit(block, -1)
    return tuple(out)


def _signed(pdg: int, daughters: Sequence[int], label: str, name: str) -> int:
    q = _charge3(abs(pdg))
    qs = [_charge3(p) for p in daughters]
    if q is None or any(x is None for x in qs):
        return pdg
    total = sum(x for x in qs if x is not None)
    if q == 0 and total == 0:
        return pdg
    if total == q:
        return abs(pdg)
    if total == -q:
        return -abs(pdg)
    raise ResonanceError(f"channel {label}: propagator {name or pdg} (PDG {abs(pdg)}, charge "
                         f"{q}/3) cannot decay into {list(daughters)} (charge {total}/3)")


# --------------------------------------------------------------------------- the rows


def add_resonances(*, channel: npt.ArrayLike, momenta: npt.ArrayLike, idup: npt.ArrayLike,
                   istup: npt.ArrayLike, mothup: npt.ArrayLike, icolup: npt.ArrayLike,
                   masses: npt.ArrayLike, resonances: Sequence[Sequence[Resonance]],
                   bwcutoff: float = DEFAULT_BWCUTOFF) -> dict[str, np.ndarray]:
    """Insert the on-shell resonances of each event's channel into its particle columns.

    Parameters
    ----------
    channel
        ``(n,)`` the channel of each event, an index into ``resonances``; -1 for an event
        without resonances (a subprocess that lacks the channel's diagram).
    momenta
        ``(n, np, 4)`` as (E, px, py, pz), incoming partons first.
    idup, istup, masses
        ``(n, np)`` or ``(np,)``: PDG ids, status codes, masses of the ``np`` particles.
    mothup, icolup
        ``(n, np, 2)`` or ``(np, 2)``: mothers (1-based) and colour tags.
    resonances
        Per channel, its :class:`Resonance` tuple (:func:`channel_resonances`).
    bwcutoff
        Written when ``|m - M| < bwcutoff * Gamma``, ``m`` the invariant mass of the
        resonance's decay products.

    Returns
    -------
    dict
        ``idup``, ``istup``, ``mothup``, ``icolup``, ``momenta``, ``masses`` with
        ``np + R`` rows (``R`` the most resonances of any channel): the two incoming
        partons, then ``R`` resonance slots, then the final state; and ``present``
        ``(n, np + R)`` bool, False for the slots an event does not use. Mothers are
        positions among the present rows of the event, as in the written record.
    """
    p = np.asarray(momenta, dtype=np.float64)
    if p.ndim != 3 or p.shape[2] != 4 or p.shape[1] < 3:
        raise ValueError(f"momenta must have shape (n, np, 4) with np >= 3, got {p.shape}")
    n, npart = p.shape[:2]
    ch = np.asarray(channel)
    if ch.shape != (n,) or not np.issubdtype(ch.dtype, np.integer):
        raise ValueError(f"channel must be ({n},) integers, got shape {ch.shape}, dtype "
                         f"{ch.dtype}")
    if ((ch < -1) | (ch >= len(resonances))).any():
        raise ValueError(f"channel has entries outside -1..{len(resonances) - 1}")
    if not bwcutoff > 0:
        raise ValueError(f"bwcutoff must be positive, got {bwcutoff}")
    for c, rs in enumerate(resonances):
        for r in rs:
            if max(r.legs) >= npart:
                raise ResonanceError(f"channel {c}: resonance {r.name or r.pdg} decays into "
                                     f"particle {max(r.legs)}, but events have {npart}")
    ids = np.broadcast_to(np.asarray(idup), (n, npart)).astype(np.int64)
    status = np.broadcast_to(np.asarray(istup), (n, npart)).astype(np.int64)
    moth = np.broadcast_to(np.asarray(mothup), (n, npart, 2)).astype(np.int64)
    col = np.broadcast_to(np.asarray(icolup), (n, npart, 2)).astype(np.int64)
    mass = np.broadcast_to(np.asarray(masses, dtype=np.float64), (n, npart))

    n_res = max((len(rs) for rs in resonances), default=0)
    rows = npart + n_res
    slot = np.arange(2, 2 + n_res)
    fin = np.r_[0, 1, np.arange(2 + n_res, rows)]  # rows of the original particles
    out_ids = np.zeros((n, rows), np.int64)
    out_status = np.full((n, rows), 2, np.int64)
    out_moth = np.zeros((n, rows, 2), np.int64)
    out_col = np.zeros((n, rows, 2), np.int64)
    out_p = np.zeros((n, rows, 4))
    out_mass = np.zeros((n, rows))
    present = np.ones((n, rows), bool)
    present[:, slot] = False
    out_ids[:, fin], out_status[:, fin], out_col[:, fin] = ids, status, col
    out_p[:, fin], out_mass[:, fin] = p, mass
    # Nearest present resonance of every original particle / slot (-1: none).
    owner = np.full((n, npart), -1, np.int64)
    res_owner = np.full((n, max(n_res, 1)), -1, np.int64)

    for c in np.unique(ch[ch >= 0]):
        rs = resonances[int(c)]
        if not rs:
            continue
        idx = np.flatnonzero(ch == c)
        for j, r in enumerate(rs):
            legs = list(r.legs)
            q = p[idx][:, legs].sum(axis=1)
            m2 = q[:, 0] ** 2 - np.sum(q[:, 1:] ** 2, axis=1)
            m = np.sqrt(np.maximum(m2, 0.0))
            on = np.abs(m - r.mass) < bwcutoff * r.width
            pdg, ok = _event_pdg(r, ids[idx][:, legs])
            colour, ok_col = _resonance_colour(pdg, col[idx][:, legs])
            on &= ok & ok_col
            rows_j = idx[on]
            out_ids[rows_j, 2 + j] = pdg[on]
            out_p[rows_j, 2 + j] = q[on]
            out_mass[rows_j, 2 + j] = m[on]
            out_col[rows_j, 2 + j] = colour[on]
            present[rows_j, 2 + j] = True
            # Outer first: an inner resonance overwrites its parent as owner.
            owner[np.ix_(rows_j, legs)] = j
            k = r.parent
            while k >= 0:  # nearest present ancestor of this resonance
                take = (res_owner[rows_j, j] < 0) & present[rows_j, 2 + k]
                res_owner[rows_j[take], j] = k
                k = rs[k].parent

    # 1-based positions of the present slots: incoming 1 and 2, then the resonances.
    position = np.zeros((n, max(n_res, 1)), np.int64)
    if n_res:
        position[:, :n_res] = 2 + np.cumsum(present[:, slot], axis=1)
    n_present = present[:, slot].sum(axis=1) if n_res else np.zeros(n, np.int64)
    ev = np.arange(n)[:, None]
    # Original mothers (positions among the original particles) shift with the inserted
    # rows when they point at final-state particles.
    shifted = np.where(moth > 2, moth + n_present[:, None, None], moth)
    from_owner = position[ev, np.maximum(owner, 0)]
    out_moth[:, fin] = np.where((owner >= 0)[..., None], from_owner[..., None], shifted)
    if n_res:
        res_pos = position[ev, np.maximum(res_owner[:, :n_res], 0)]
        has = res_owner[:, :n_res] >= 0
        out_moth[:, slot, 0] = np.where(has, res_pos, 1)
        out_moth[:, slot, 1] = np.where(has, res_pos, 2)
        out_moth[:, slot] *= present[:, slot, None]
    return {"idup": out_ids, "istup": out_status, "mothup": out_moth, "icolup": out_col,
            "momenta": out_p, "masses": out_mass, "present": present}


def _event_pdg(r: Resonance, daughters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per event the resonance's PDG id, its sign from the charge of its products, and
    whether that charge fits at all (always, for products of unknown charge)."""
    n = daughters.shape[0]
    uniq, inverse = np.unique(daughters, return_inverse=True)
    charge = [_charge3(int(u)) for u in uniq]
    charges = np.array([0 if x is None else x for x in charge])[inverse].reshape(
        daughters.shape)
    known = np.array([x is not None for x in charge])[inverse].reshape(
        daughters.shape).all(axis=1)
    total = charges.sum(axis=1)
    q = _charge3(abs(r.pdg))
    if q is None:
        return np.full(n, r.pdg, np.int64), np.ones(n, bool)
    if q == 0:
        return np.full(n, r.pdg, np.int64), ~known | (total == 0)
    pdg = np.where(known & (total == -q), -abs(r.pdg),
                   np.where(known & (total == q), abs(r.pdg), r.pdg))
    return pdg.astype(np.int64), ~known | (np.abs(total) == abs(q))


def _resonance_colour(pdg: np.ndarray, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The colour tags a resonance carries: its products' tags that are not contracted
    among themselves; ok is False where these do not fit its colour representation."""
    c, a = colours[..., 0], colours[..., 1]
    contracted = (c[:, :, None] == a[:, None, :]) & (c[:, :, None] > 0)
    free_c = np.where((c > 0) & ~contracted.any(axis=2), c, 0)
    free_a = np.where((a > 0) & ~contracted.any(axis=1), a, 0)
    n_c, n_a = (free_c > 0).sum(axis=1), (free_a > 0).sum(axis=1)
    out = np.stack([free_c.max(axis=1, initial=0), free_a.max(axis=1, initial=0)], axis=1)
    ok = (n_c <= 1) & (n_a <= 1)
    reps = np.array([_colour_rep(int(x)) or 0 for x in pdg])
    want_c = np.select([reps == 1, reps == 3, reps == -3, reps == 8], [0, 1, 0, 1], -1)
    want_a = np.select([reps == 1, reps == 3, reps == -3, reps == 8], [0, 0, 1, 1], -1)
    ok &= ((want_c < 0) | (n_c == want_c)) & ((want_a < 0) | (n_a == want_a))
    return out, ok


# --------------------------------------------------------------------------- processes


def madgraph_bwcutoff(process_dir: str | Path) -> float | None:
    """``bwcutoff`` of the MadGraph run card ``Cards/run_card.dat`` of a process directory
    (``output madnis_py``), or None when there is none."""
    path = Path(process_dir) / "Cards" / "run_card.dat"
    if not path.is_file():
        return None
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        m = re.match(r"\s*([^#!=\s]+)\s*=\s*bwcutoff\b", line, re.IGNORECASE)
        if m:
            try:
                value = float(m.group(1).lower().replace("d", "e"))
            except ValueError:
                raise ResonanceError(f"{path}:{lineno}: bwcutoff = {m.group(1)!r} is not a "
                                     "number") from None
            if not value > 0:
                raise ResonanceError(f"{path}:{lineno}: bwcutoff = {value} must be positive")
            return value
    return None


@dataclass(frozen=True)
class ResonanceTable:
    """The resonances of every (subprocess, channel) pair of a process.

    ``table[k][c]`` are the resonances of channel ``c`` for subprocess ``k``: empty where
    the subprocess has no diagram in that channel (its ``diagram_channels``).
    """

    table: tuple[tuple[tuple[Resonance, ...], ...], ...]
    bwcutoff: float = DEFAULT_BWCUTOFF

    @classmethod
    def from_process(cls, process: Process, *,
                     bwcutoff: float | None = None) -> ResonanceTable:
        """Resonances from the process card's channels and param_card; ``bwcutoff`` by
        default from MadGraph's run card beside the process card, else 15."""
        if bwcutoff is None:
            bwcutoff = madgraph_bwcutoff(process.card.parent) or DEFAULT_BWCUTOFF
        card = process.parameters()
        rows = []
        for sub in process.subprocesses:
            allowed = (None if sub.diagram_channels is None
                       else {c for c in sub.diagram_channels if c >= 0})
            rows.append(tuple(
                channel_resonances(t, card=card, pdgs=sub.pdgs)
                if allowed is None or c in allowed else ()
                for c, t in enumerate(process.channels)))
        return cls(tuple(rows), float(bwcutoff))

    @property
    def empty(self) -> bool:
        return not any(rs for row in self.table for rs in row)

    def add(self, channel: npt.ArrayLike, subprocess: npt.ArrayLike,
            **columns: Any) -> dict[str, Any]:
        """:meth:`LHEWriter.write_batch` arguments with the resonances inserted.

        ``columns`` are write_batch's arguments; the particle columns (``idup``,
        ``istup``, ``mothup``, ``icolup``, ``momenta``, ``masses``) get the resonance
        rows, the others (weights, scales, ...) pass through.
        """
        if self.empty:
            return columns
        ch = np.asarray(channel, dtype=np.int64)
        sub = np.asarray(subprocess, dtype=np.int64)
        n_ch = len(self.table[0])
        # One flat index per (subprocess, channel), so the pure function sees channels.
        flat = [rs for row in self.table for rs in row]
        key = np.where(ch >= 0, sub * n_ch + ch, -1)
        particle = {k: columns.pop(k) for k in
                    ("idup", "istup", "mothup", "icolup", "momenta", "masses")}
        out = add_resonances(channel=key, resonances=flat, bwcutoff=self.bwcutoff,
                             **particle)
        for name in ("vtimup", "spinup"):
            if name in columns and np.ndim(columns[name]) >= 1:
                raise ValueError(f"{name} per particle cannot be combined with resonances")
        return {**columns, **out}

