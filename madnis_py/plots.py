"""Pictures of a run: the training history, the weight distribution, and the kinematics
of the unweighted events over those of a weighted sample.

Every function draws on its own :class:`matplotlib.figure.Figure` (no pyplot state, no
backend switch), writes it as a PNG atomically (temporary name, then rename) and returns
it, so that tests and notebooks can read the panels back.

Kinematics are chosen by process class, from the particles' PDG ids
(:func:`observables`): two opposite-sign leptons (Drell-Yan-like: m_ll, pT_ll, y_ll,
cos theta* in the Collins-Soper frame, Phys. Rev. D 16 (1977) 2219), partons from a lepton collider (thrust, energy fractions,
parton-pair masses), top pairs (m_tt, pT_t, y_t, y_tt), and a generic set otherwise
(pT and eta of every particle, the masses of the resonances' decay products, missing
pT). The histogram ranges come from the cuts, the collision energy and the resonances'
masses and widths of the process card, never from the sample, so that cut edges and
peaks are always inside the frame.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from madnis_py.phasespace.cuts import eta, particle_class, pt, rapidity
from madnis_py.phasespace.topology import Decay, Topology

__all__ = [
    "Observable",
    "Resonance",
    "collins_soper_cos_theta",
    "final_state_names",
    "kinematics",
    "observables",
    "particle_name",
    "plot_history",
    "plot_kinematics",
    "plot_weights",
    "resonances",
    "thrust",
]

Momenta = np.ndarray
_QUARKS = frozenset(range(1, 7))
_CHARGED_LEPTONS = frozenset({11, 13, 15})
_NEUTRINOS = frozenset({12, 14, 16})
# MadGraph's particle names (the ones its proc cards use)
_NAMES = {1: "d", 2: "u", 3: "s", 4: "c", 5: "b", 6: "t", 11: "e", 12: "ve", 13: "mu",
          14: "vm", 15: "ta", 16: "vt", 21: "g", 22: "a", 23: "Z", 24: "W", 25: "h"}


# ------------------------------------------------------------------------------ names


def particle_name(pdg: int) -> str:
    """MadGraph's name of a particle: ``e-``, ``e+``, ``u~``, ``g``, ``t``, ``W+``, ...
    (``pdg<id>`` for ids outside the Standard Model)."""
    code = abs(int(pdg))
    if code not in _NAMES:
        return f"pdg{int(pdg)}"
    base = _NAMES[code]
    if code in _CHARGED_LEPTONS:
        return base + ("-" if pdg > 0 else "+")
    if code == 24:
        return base + ("+" if pdg > 0 else "-")
    if pdg < 0 and (code in _QUARKS or code in _NEUTRINOS):
        return base + "~"
    return base


def final_state_names(pdgs: Sequence[Sequence[int]]) -> list[str]:
    """A name per final-state position, shared by every subprocess of a process.

    Positions where the subprocesses differ get the class name: ``q``/``q~`` for quarks
    of one sign, ``l-``/``l+`` for charged leptons of one sign, ``j`` for quarks and
    gluons, else ``p<position>`` (1-based, as in the LHE record). Repeated names are
    numbered (``g1``, ``g2``).
    """
    if not pdgs or any(len(p) != len(pdgs[0]) for p in pdgs):
        raise ValueError(f"pdgs: expected one PDG list per subprocess, all of one length, "
                         f"got {list(map(list, pdgs))}")
    names = []
    for i, column in enumerate(zip(*(p[2:] for p in pdgs), strict=True)):
        ids = set(column)
        signs = {p > 0 for p in ids}
        if len(ids) == 1:
            names.append(particle_name(column[0]))
        elif all(abs(p) in _QUARKS for p in ids) and len(signs) == 1:
            names.append("q" if signs == {True} else "q~")
        elif all(abs(p) in _CHARGED_LEPTONS for p in ids) and len(signs) == 1:
            names.append("l-" if signs == {True} else "l+")
        elif all(abs(p) in _QUARKS or p == 21 for p in ids):
            names.append("j")
        else:
            names.append(f"p{i + 3}")
    counts = {n: names.count(n) for n in names}
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(f"{n}{seen[n]}" if counts[n] > 1 else n)
    return out


# ------------------------------------------------------------------------- resonances


@dataclass(frozen=True)
class Resonance:
    """A massive s-channel propagator of a channel and the final-state legs it decays
    into (indices into the momenta, 2 = first final-state particle)."""

    name: str
    mass: float
    width: float
    legs: tuple[int, ...]


def _legs(node: int | Decay) -> tuple[int, ...]:
    if isinstance(node, Decay):
        return tuple(sorted(_legs(node.daughters[0]) + _legs(node.daughters[1])))
    return (int(node),)


def _decays(node: int | Decay) -> list[Decay]:
    if not isinstance(node, Decay):
        return []
    return [node] + _decays(node.daughters[0]) + _decays(node.daughters[1])


def resonances(channels: Sequence[Topology]) -> list[Resonance]:
    """The massive s-channel propagators of the channels (each once), lightest first."""
    found: dict[tuple[str, float, tuple[int, ...]], Resonance] = {}
    for topo in channels:
        roots: list[int | Decay] = []
        if topo.s_channel is not None:
            roots.append(topo.s_channel)
        if topo.t_channel is not None:
            roots.extend(topo.t_channel.blocks)
        for decay in itertools.chain.from_iterable(_decays(r) for r in roots):
            prop = decay.propagator
            if prop.mass > 0:
                res = Resonance(prop.name or f"M={prop.mass:g}", prop.mass, prop.width,
                                _legs(decay))
                found.setdefault((res.name, res.mass, res.legs), res)
    return sorted(found.values(), key=lambda r: (r.mass, r.legs))


# ------------------------------------------------------------------------ observables


def collins_soper_cos_theta(lepton: Momenta, antilepton: Momenta) -> np.ndarray:
    """cos theta* of the lepton in the Collins-Soper frame of the pair (arrays (n, 4)):

    ``cos = sign(q_z) 2 (l+ a- - l- a+) / (Q sqrt(Q^2 + qT^2))`` with ``p+- = (E +- p_z)
    / sqrt(2)``, q = l + a. The sign of the pair's longitudinal momentum orients the axis
    along the quark direction on average at a pp collider (``q_z = 0`` counts as +).
    """
    lep, anti = np.asarray(lepton, dtype=np.float64), np.asarray(antilepton, np.float64)
    q = lep + anti
    q2 = q[..., 0] ** 2 - (q[..., 1:] ** 2).sum(axis=-1)
    qt2 = q[..., 1] ** 2 + q[..., 2] ** 2
    lp, lm = lep[..., 0] + lep[..., 3], lep[..., 0] - lep[..., 3]
    ap, am = anti[..., 0] + anti[..., 3], anti[..., 0] - anti[..., 3]
    sign = np.where(q[..., 3] >= 0, 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        # the 1/sqrt(2)^2 of the light-cone components cancels the factor 2
        return np.asarray(sign * (lp * am - lm * ap) / np.sqrt(q2 * (q2 + qt2)))


def thrust(momenta: Momenta) -> np.ndarray:
    """Thrust ``T = max_n sum |p_i . n| / sum |p_i|`` of the final states (n, k, 4), exact:
    the maximum over the 2^(k-1) splittings into two hemispheres of
    ``2 |sum_hemisphere p| / sum |p|`` (k <= 12)."""
    p3 = np.asarray(momenta, dtype=np.float64)[..., 1:]
    k = p3.shape[1]
    if not 2 <= k <= 12:
        raise ValueError(f"thrust: expected 2 to 12 particles per event, got {k}")
    total = np.linalg.norm(p3, axis=-1).sum(axis=1)
    best = np.zeros(len(p3))
    for mask in range(1, 2 ** (k - 1)):
        sel = [(mask >> i) & 1 for i in range(k)]
        side = p3[:, np.array(sel, dtype=bool)].sum(axis=1)
        best = np.maximum(best, np.linalg.norm(side, axis=-1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(2 * best / total)


@dataclass(frozen=True)
class Observable:
    """One histogram panel: what is measured, in which range and how it is drawn.

    ``values`` maps momenta (n, particles, 4) in GeV to one number per event; ``marks``
    are positions drawn as vertical lines (cut edges and resonance masses) with their
    legend text.
    """

    label: str
    symbol: str
    unit: str
    values: Callable[[Momenta], np.ndarray]
    lo: float
    hi: float
    log_x: bool = False
    log_y: bool = False
    marks: tuple[tuple[float, str], ...] = field(default=())

    @property
    def xlabel(self) -> str:
        return f"{self.label} [{self.unit}]" if self.unit else self.label

    @property
    def ylabel(self) -> str:
        per = f" [1/{self.unit}]" if self.unit else ""
        return f"1/N dN/d{self.symbol}{per}"

    def edges(self, bins: int) -> np.ndarray:
        if self.log_x:
            return np.geomspace(self.lo, self.hi, bins + 1)
        return np.linspace(self.lo, self.hi, bins + 1)


def _cut(cuts: Mapping[str, float], name: str) -> float | None:
    value = cuts.get(name)
    return float(value) if value is not None and value > 0 else None


def _of(f: Callable[[np.ndarray], np.ndarray], legs: Sequence[int]
        ) -> Callable[[Momenta], np.ndarray]:
    """``f`` of the summed four-momenta of ``legs``, as a function of the event momenta."""
    ls = [int(i) for i in legs]
    return lambda m: f(m[:, ls].sum(axis=1))


def _mass(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(np.maximum(p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(axis=1), 0.0)))


def _cos_beam(p: np.ndarray) -> np.ndarray:
    """cos of the angle to +z (beam 1)."""
    return np.asarray(p[:, 3] / np.linalg.norm(p[:, 1:], axis=1))


@dataclass(frozen=True)
class _Setup:
    names: list[str]          # per momentum index (incoming ones included)
    pdgs: tuple[int, ...]     # of the first subprocess, per momentum index
    hadronic: bool
    sqrt_s: float
    cuts: Mapping[str, float]
    res: list[Resonance]
    masses: tuple[float, ...]  # final state
    min_mass: float = 0.0      # sqrt of the smallest min_shat of the channels

    def cls(self, leg: int) -> str | None:
        flavour = int(self.cuts.get("maxjetflavor", 4))  # the cuts' classes (b as jets)
        return particle_class(self.pdgs[leg], maxjetflavor=flavour)

    def mass_hi(self) -> float:
        """Upper end of mass axes: twice the heaviest resonance or four times the lowest
        mass the cuts and masses allow, at most sqrt(s)."""
        if not self.hadronic:
            return self.sqrt_s
        heavy = max((r.mass + 5 * r.width for r in self.res), default=0.0)
        pt_cuts = sum(_cut(self.cuts, f"pt{self.cls(i)}") or 0.0
                      for i in range(2, len(self.pdgs)))
        threshold = max(sum(self.masses), pt_cuts, self.min_mass, 10.0,
                        *(v for k in ("mmll", "mmjj", "mmaa", "mmbb")
                          if (v := _cut(self.cuts, k)) is not None))
        return min(self.sqrt_s, max(2 * heavy, 4 * threshold))

    def pt_axis(self, legs: Sequence[int], label: str) -> Observable:
        """pT of one leg or of the sum of several."""
        cut = _cut(self.cuts, f"pt{self.cls(legs[0])}") if len(legs) == 1 else None
        hi = max(self.mass_hi() / 2, 4 * (cut or 0.0))
        f = _of(pt, legs)
        if cut is not None:
            return Observable(label, "pT", "GeV", f, cut / 2, hi, log_x=hi / cut > 8,
                              log_y=True, marks=((cut, f"cut pT > {cut:g}"),))
        return Observable(label, "pT", "GeV", f, 0.0, hi, log_y=True)

    def angle_axis(self, leg: int, name: str) -> Observable:
        """eta at a hadron collider (range from the eta cut), cos theta at a lepton one."""
        if not self.hadronic:
            return Observable(f"cos theta({name})", "cos theta", "", _of(_cos_beam, [leg]),
                              -1.0, 1.0)
        cut = _cut(self.cuts, f"eta{self.cls(leg)}")
        ymax = 1.15 * cut if cut is not None else 5.0
        marks = ((-cut, f"cut |eta| < {cut:g}"), (cut, "")) if cut is not None else ()
        return Observable(f"eta({name})", "eta", "", _of(eta, [leg]), -ymax, ymax,
                          marks=marks)

    def mass_axis(self, legs: Sequence[int], label: str, *,
                  window: Resonance | None = None) -> Observable:
        """Invariant mass of legs: the full range (from the cut, or the threshold) up to
        :meth:`mass_hi`, or a window of +-max(15 widths, M/4) around one resonance; the
        resonances decaying into exactly these legs are marked."""
        ls = tuple(legs)
        f = _of(_mass, ls)
        kind = self.cls(ls[0])
        same = len(ls) == 2 and kind is not None and self.cls(ls[1]) == kind and (
            kind != "l" or self.pdgs[ls[0]] == -self.pdgs[ls[1]])  # mmll: opposite sign
        cut = _cut(self.cuts, f"mm{kind}{kind}") if same else None
        marks: list[tuple[float, str]] = []
        if cut is not None:
            marks.append((cut, f"cut m > {cut:g}"))
        for r in self.res:
            if r.legs == tuple(sorted(ls)):
                marks.append((r.mass, f"{r.name} {r.mass:g} GeV"))
        threshold = sum(self.masses[i - 2] for i in ls)
        if cut is None and threshold > 0:
            marks.append((threshold, f"threshold {threshold:g} GeV"))
        if window is not None:
            half = max(15 * window.width, window.mass / 4)
            lo, hi = max(window.mass - half, threshold, cut or 0.0), window.mass + half
        if window is None or lo >= hi:  # no window, or a cut above it: the full range
            hi = max(self.mass_hi(), 4 * (cut or 0.0))
            lo = cut * 0.8 if cut is not None else (0.95 * threshold if threshold > 0
                                                     else hi / 1000)
        if not self.hadronic and len(ls) == len(self.masses):
            lo, hi = 0.0, self.sqrt_s  # fixed by the beams: dropped as degenerate
        return Observable(label, "m", "GeV", f, lo, hi, log_x=lo > 0 and hi / lo > 8,
                          log_y=True, marks=tuple(marks))


def _join(names: Iterable[str]) -> str:
    return " ".join(names)


def _two_leptons(s: _Setup, legs: list[int]) -> list[Observable]:
    minus, plus = sorted(legs, key=lambda i: -s.pdgs[i])  # the lepton has pdg > 0
    nm = s.names[minus]
    pair = _join([s.names[i] for i in legs])
    out = [s.mass_axis(legs, f"m({pair})")]
    out.append(s.pt_axis(legs, f"pT({pair})"))
    if s.hadronic:
        cut = _cut(s.cuts, "etal")
        ymax = 1.15 * cut if cut is not None else 5.0
        out.append(Observable(f"y({pair})", "y", "", _of(rapidity, legs),
                              -ymax, ymax))
        out.append(Observable(f"cos theta*_CS({nm})", "cos theta*", "",
                              lambda m: collins_soper_cos_theta(m[:, minus], m[:, plus]),
                              -1.0, 1.0))
    else:
        # the angle of the lepton to the incoming lepton (beam 1 along +z)
        sign = 1.0 if s.pdgs[0] > 0 else -1.0
        beam = particle_name(s.pdgs[0] if sign > 0 else s.pdgs[1])
        out.append(Observable(f"cos theta({nm}, {beam} beam)", "cos theta", "",
                              _of(lambda p: sign * _cos_beam(p), [minus]), -1.0, 1.0))
    for i in (minus, plus):
        out.append(s.pt_axis([i], f"pT({s.names[i]})"))
    if s.hadronic:
        out.extend(s.angle_axis(i, s.names[i]) for i in (minus, plus))
    return out


def _lepton_collider_partons(s: _Setup, legs: list[int]) -> list[Observable]:
    ymin = (_cut(s.cuts, "mmjj") or 0.0) ** 2 / s.sqrt_s ** 2
    edge = ((1 - ymin, f"cut: 1 - y_min = {1 - ymin:.3g}"),) if ymin > 0 else ()
    t_lo = 2 / 3 if len(legs) == 3 and all(s.masses[i - 2] == 0 for i in legs) else 0.5
    out = [Observable("thrust T", "T", "", lambda m: thrust(m[:, legs]), t_lo - 0.02, 1.0,
                      log_y=True, marks=edge)]
    def fraction(p: np.ndarray) -> np.ndarray:
        return np.asarray(2 * p[:, 0] / s.sqrt_s)

    for i in legs:
        out.append(Observable(f"x({s.names[i]}) = 2E/sqrt(s)", "x", "", _of(fraction, [i]),
                              0.0, 1.0, marks=edge))
    for i, j in itertools.combinations(legs, 2):
        out.append(s.mass_axis([i, j], f"m({s.names[i]} {s.names[j]})"))
    return out


def _top_pair(s: _Setup, top: int, anti: int) -> list[Observable]:
    nt, na = s.names[top], s.names[anti]
    return [s.mass_axis([top, anti], f"m({nt} {na})"),
            s.pt_axis([top], f"pT({nt})"),
            s.pt_axis([anti], f"pT({na})"),
            Observable(f"y({nt})", "y", "", _of(rapidity, [top]), -4.0, 4.0),
            Observable(f"y({nt} {na})", "y", "", _of(rapidity, [top, anti]),
                       -4.0, 4.0),
            s.pt_axis([top, anti], f"pT({nt} {na})")]


def _generic(s: _Setup) -> list[Observable]:
    legs = list(range(2, len(s.pdgs)))
    visible = [i for i in legs if abs(s.pdgs[i]) not in _NEUTRINOS]
    out = []
    for i in visible[:4]:
        out.append(s.pt_axis([i], f"pT({s.names[i]})"))
        out.append(s.angle_axis(i, s.names[i]))
    if len(visible) < len(legs):
        nus = [i for i in legs if i not in visible]
        miss = _cut(s.cuts, "misset")
        hi = s.mass_hi() / 2
        out.append(Observable("missing pT", "pT", "GeV",
                              _of(pt, nus), 0.0, hi, log_y=True,
                              marks=((miss, f"cut > {miss:g}"),) if miss else ()))
    for r in s.res:
        if len(r.legs) >= 2:
            out.append(s.mass_axis(r.legs, f"m({_join(s.names[i] for i in r.legs)})",
                                   window=r))
    if s.hadronic and len(legs) > 2:
        full = s.mass_axis(legs, "m(final state)")
        lo = 0.8 * s.min_mass if s.min_mass > 0 else full.lo
        hi = min(s.sqrt_s, 3 * full.hi)
        marks = full.marks + (((s.min_mass, f"channels' min sqrt(shat) {s.min_mass:g}"),)
                              if s.min_mass > 0 else ())
        out.append(Observable(full.label, full.symbol, full.unit, full.values, lo, hi,
                              log_x=lo > 0 and hi / lo > 8, log_y=True, marks=marks))
    return out


def observables(pdgs: Sequence[Sequence[int]], *, hadronic: bool, sqrt_s: float,
                cuts: Mapping[str, float] | None = None,
                channels: Sequence[Topology] = (),
                masses: Sequence[float] | None = None) -> list[Observable]:
    """The panels physicists check for a process, with ranges from its cuts, collision
    energy and resonances.

    Parameters
    ----------
    pdgs : sequence of PDG lists
        One per subprocess (incoming partons first), all of one length.
    hadronic : bool
        Proton beams (eta, rapidities and the Collins-Soper angle) or lepton beams
        (angles to the beam, energy fractions, thrust).
    sqrt_s : float
        Collision energy in GeV.
    cuts : mapping, optional
        Run-card cuts (``ptl``, ``etal``, ``mmll``, ``mmjj``, ...): their edges are marked
        and inside every range.
    channels : sequence of Topology
        The process's channels: their massive s-channel propagators are the resonances
        whose masses are marked and inside every mass range.
    masses : sequence of float, optional
        Final-state masses in GeV (thresholds of the mass ranges); default massless.
    """
    if not sqrt_s > 0:
        raise ValueError(f"sqrt_s: expected a positive collision energy in GeV, got {sqrt_s!r}")
    first = tuple(int(p) for p in pdgs[0])
    n_final = len(first) - 2
    masses = tuple(float(m) for m in masses) if masses is not None else (0.0,) * n_final
    if len(masses) != n_final:
        raise ValueError(f"masses: expected {n_final} final-state masses, got {len(masses)}")
    min_mass = math.sqrt(min((t.min_shat for t in channels), default=0.0))
    s = _Setup(["beam1", "beam2"] + final_state_names(pdgs), first, hadronic, float(sqrt_s),
               dict(cuts or {}), resonances(channels), masses, min_mass)
    legs = list(range(2, len(first)))
    columns = [{int(p[i]) for p in pdgs} for i in range(len(first))]
    leptons = [i for i in legs if all(abs(p) in _CHARGED_LEPTONS for p in columns[i])
               and len({p > 0 for p in columns[i]}) == 1]
    if len(leptons) == 2 and s.pdgs[leptons[0]] * s.pdgs[leptons[1]] < 0:
        out = _two_leptons(s, leptons)
        if len(legs) > 2:
            out += [o for i in legs if i not in leptons
                    for o in (s.pt_axis([i], f"pT({s.names[i]})"),
                              s.angle_axis(i, s.names[i]))]
        return out
    partons = all(all(abs(p) in _QUARKS - {6} or p == 21 for p in columns[i]) for i in legs)
    if not hadronic and partons and len(legs) >= 3:
        return _lepton_collider_partons(s, legs)
    tops = [i for i in legs if columns[i] == {6}], [i for i in legs if columns[i] == {-6}]
    if len(tops[0]) == 1 and len(tops[1]) == 1:
        return _top_pair(s, tops[0][0], tops[1][0])
    return _generic(s)


def _process_observables(process: Any, cuts: Mapping[str, float] | None,
                         sqrt_s: float | None) -> list[Observable]:
    energy = sqrt_s if sqrt_s is not None else process.defaults.sqrt_s
    if energy is None:
        raise ValueError(f"process {process.name}: no collision energy (pass sqrt_s)")
    masses = process.final_masses()
    return observables([sub.pdgs for sub in process.subprocesses], hadronic=process.hadronic,
                       sqrt_s=energy, cuts=process.cuts if cuts is None else cuts,
                       channels=process.channels, masses=masses)


def _fallback_observables(momenta: Momenta) -> list[Observable]:
    """Without a process: pT and rapidity of the first three final-state particles and
    the final state's mass, over the sample's own range."""
    fin = momenta.shape[1] - 2
    out = []
    for i in range(2, 2 + min(fin, 3)):
        out.append(Observable(f"pT(p{i + 1})", "pT", "GeV", _of(pt, [i]), 0.0, 1.0,
                              log_y=True))
        out.append(Observable(f"y(p{i + 1})", "y", "", _of(rapidity, [i]), -1.0, 1.0))
    out.append(Observable("m(final state)", "m", "GeV",
                          _of(_mass, range(2, momenta.shape[1])), 0.0, 1.0, log_y=True))
    return out


def kinematics(momenta: Momenta, panels: Sequence[Observable] | None = None
               ) -> dict[str, np.ndarray]:
    """Every observable of every event, keyed by its axis label, from (n, np, 4) momenta
    (the default panels: pT and rapidity of the first three final-state particles and
    the final state's mass)."""
    m = np.asarray(momenta, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {o.xlabel: np.asarray(o.values(m), dtype=np.float64)
                for o in (panels if panels is not None else _fallback_observables(m))}


# ------------------------------------------------------------------------------ figures


def _figure(rows: int, cols: int, width: float, height: float) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * cols, height * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def _layout(fig: Any, *, title: bool = False) -> None:
    """Fixed margins in inches for the panels of :func:`_figure` (room for tick labels,
    axis labels, panel titles and a figure title): matplotlib's tight_layout measures
    every text first, about 1 s of CPU per figure of twelve panels, the largest part of
    a short run's plots."""
    width, height = fig.get_size_inches()
    top = 0.75 if title else 0.4
    fig.subplots_adjust(left=0.95 / width, right=1 - 0.15 / width, bottom=0.55 / height,
                        top=1 - top / height, wspace=0.45, hspace=0.6)


def _save(fig: Any, path: Path) -> None:
    """The figure as a PNG, written atomically (exclusive random temporary, then rename)."""
    from madnis_py._atomic import write_bytes_atomic

    buf = io.BytesIO()
    fig.savefig(buf, dpi=90, format=path.suffix.lstrip(".") or "png")
    write_bytes_atomic(path, buf.getvalue())


def _log_x(ax: Any) -> None:
    """A log x axis labelled at 1, 2, 5 x 10^k in plain numbers (GeV read better so)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def plot_weights(weights: np.ndarray, w_max: float, path: str | Path) -> Any:
    """Histogram of log10(w / <w>) with the unweighting's ``w_max`` marked; returns the
    Figure."""
    w = np.asarray(weights, dtype=np.float64)
    if w.size == 0 or not np.any(w > 0):
        raise ValueError("plot_weights: no positive weight to histogram")
    mean = w.mean()
    pos = w[w > 0] / mean
    fig, axes = _figure(1, 1, 6, 4)
    ax = axes[0, 0]
    ax.hist(np.log10(pos), bins=100, histtype="step", label="weighted points")
    ax.axvline(np.log10(w_max / mean), color="C3", ls="--",
               label=f"w_max = {w_max / mean:.3g} <w>")
    ax.set(xlabel="log10(w / <w>)", ylabel="points per bin", yscale="log",
           title=f"{len(w)} weighted points, {np.mean(w <= 0):.1%} zero")
    ax.legend(fontsize=8)
    _layout(fig)
    _save(fig, Path(path))
    return fig


def plot_kinematics(unweighted: np.ndarray, weighted: np.ndarray, weights: np.ndarray,
                    path: str | Path, *, event_weights: np.ndarray | None = None,
                    bins: int = 40, process: Any = None,
                    cuts: Mapping[str, float] | None = None,
                    sqrt_s: float | None = None) -> Any:
    """Distributions of the unweighted events (points with Poisson errors, weighted by
    ``event_weights`` when overweight events carry more than the others) over those of a
    weighted sample of the same run (line); returns the Figure.

    With ``process`` (a :class:`madnis_py.physics.Process`; ``cuts`` and ``sqrt_s``
    default to its card's), the panels are those of its class (:func:`observables`), in
    ranges from the cuts and resonances, each normalised to the whole sample (the share
    outside the range is in the title). Without, pT and rapidity of the first three
    final-state particles over the sample's range.
    """
    ku_m = np.asarray(unweighted, dtype=np.float64)
    kw_m = np.asarray(weighted, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(kw_m):
        raise ValueError(f"weights: {len(w)} values for {len(kw_m)} weighted events")
    ok_w = w > 0
    if not ok_w.any():
        raise ValueError("plot_kinematics: the weighted sample has no positive weight")
    ew = (np.ones(len(ku_m)) if event_weights is None
          else np.asarray(event_weights, dtype=np.float64))
    panels = (_process_observables(process, cuts, sqrt_s) if process is not None
              else _fallback_observables(kw_m))
    drawn = []
    for o in panels:
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.asarray(o.values(ku_m), dtype=np.float64)
            b = np.asarray(o.values(kw_m), dtype=np.float64)
        good = ok_w & np.isfinite(b)
        if not good.any():
            continue
        bv = b[good]
        # observables fixed by the kinematics (pT_ll at LO, m(final) with lepton beams)
        if np.ptp(bv) <= 1e-9 * max(np.abs(bv).max(), 1e-300):
            continue
        if process is None:  # no cuts or resonances known: the sample's full range
            o = Observable(o.label, o.symbol, o.unit, o.values, float(bv.min()),
                           float(bv.max()), log_y=o.log_y)
        edges = o.edges(bins)
        inside = good & (b >= edges[0]) & (b <= edges[-1])
        if not inside.any():
            continue
        drawn.append((o, edges, a, b, good))
    if not drawn:
        raise ValueError("plot_kinematics: no observable varies over the weighted sample")
    cols = min(len(drawn), 4)
    rows = -(-len(drawn) // cols)
    fig, axes = _figure(rows, cols, 4.2, 3.4)
    # The grid may have spare axes after the last plot: they are deleted below.
    for ax, (o, edges, a, b, good) in zip(axes.flat, drawn, strict=False):
        width = np.diff(edges)
        mid = np.sqrt(edges[1:] * edges[:-1]) if o.log_x else 0.5 * (edges[1:] + edges[:-1])
        hw, _ = np.histogram(b[good], edges, weights=w[good])
        norm_w = w[good].sum()
        fin = np.isfinite(a)
        hu, _ = np.histogram(a[fin], edges, weights=ew[fin])
        hu2, _ = np.histogram(a[fin], edges, weights=ew[fin] ** 2)
        norm_u = max(ew.sum(), 1e-300)
        ax.stairs(hw / norm_w / width, edges, label="weighted")
        ax.errorbar(mid, hu / norm_u / width, np.sqrt(hu2) / norm_u / width, fmt=".",
                    ms=3, label="unweighted")
        for x, what in o.marks:
            resonance = "GeV" in what and not what.startswith(("threshold", "channels"))
            style = (":", "C2") if resonance else ("--", "0.4")
            ax.axvline(x, ls=style[0], color=style[1], lw=1, label=what or None)
        outside = 1 - hw.sum() / norm_w
        ax.set(xlabel=o.xlabel, ylabel=o.ylabel, xlim=(edges[0], edges[-1]),
               title=f"{outside:.1%} outside" if outside > 5e-4 else "")
        if o.log_x:
            _log_x(ax)
        if o.log_y and np.count_nonzero(hw) > 1:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(drawn):]:
        fig.delaxes(ax)
    if process is not None:
        fig.suptitle(getattr(process, "title", "") or process.name, fontsize=10)
    _layout(fig, title=process is not None)
    _save(fig, Path(path))
    return fig


def _history_series(history: Any, key: str) -> list[Any]:
    if isinstance(history, Mapping):
        return list(history.get(key, []))
    return list(getattr(history, key, []))


_STYLES = ["-", "--", "-.", ":"]
_MARKERS = ["o", "s", "^", "v", "D", "x", "+", "*"]


def _log_y_if_spread(ax: Any, values: np.ndarray) -> None:
    """Log y where the positive values span at least a factor 5 (falling curves)."""
    v = values[np.isfinite(values)]
    if v.size and np.all(v > 0) and v.max() >= 5 * v.min():
        ax.set_yscale("log")


def plot_history(history: Any, path: str | Path, channel_names: Sequence[str] | None = None,
                 *, unit: str = "pb") -> Any:
    """The training history, one panel per quantity against the training step: loss,
    the integral of each batch (in ``unit``) with its running mean, the stratified
    relative standard deviation, the unweighting efficiency of the batch, and each
    channel's share of the batch (distinct line styles, log scale); returns the Figure.

    ``history`` is the integrator's (``Integrator.history``) or the mapping of
    ``history.json``; ``channel_names`` label the channels (default ``channel i``).
    """
    loss = np.asarray(_history_series(history, "loss"), dtype=np.float64)
    value = np.asarray(_history_series(history, "value"), dtype=np.float64)
    rel_std = np.asarray(_history_series(history, "rel_std"), dtype=np.float64)
    eps_uw = np.asarray(_history_series(history, "eps_uw"), dtype=np.float64)
    fractions = np.asarray(_history_series(history, "fractions"), dtype=np.float64)
    if len(loss) == 0:  # VEGAS only (steps = 0): say so rather than draw empty axes
        fig, axes = _figure(1, 1, 6, 2)
        axes[0, 0].text(0.5, 0.5, "no flow training steps (VEGAS only)", ha="center",
                        va="center")
        axes[0, 0].set_axis_off()
        _save(fig, Path(path))
        return fig
    steps = np.arange(1, len(loss) + 1)
    n_panels = 5 if fractions.size else 4
    fig, axes = _figure(1, n_panels, 4.2, 3.4)
    ax = axes[0]
    ax[0].plot(steps, loss)
    ax[0].set(xlabel="training step", ylabel="loss", title="loss")
    _log_y_if_spread(ax[0], loss)
    ax[1].plot(steps, value, lw=0.8, alpha=0.6, label="batch")
    running = np.cumsum(value) / steps
    ax[1].plot(steps, running, color="C3", label="running mean")
    ax[1].set(xlabel="training step", ylabel=f"integral [{unit}]" if unit else "integral",
              title="integral of the batch")
    ax[1].legend(fontsize=7)
    ax[2].plot(steps, rel_std)
    ax[2].set(xlabel="training step", ylabel="rel. std (stratified)", title="relative std")
    _log_y_if_spread(ax[2], rel_std)
    ax[3].plot(steps, eps_uw)
    ax[3].set(xlabel="training step", ylabel="eps_uw", title="unweighting efficiency")
    _log_y_if_spread(ax[3], eps_uw)
    if fractions.size:
        names = list(channel_names) if channel_names is not None else []
        k = fractions.shape[1]
        if names and len(names) != k:
            raise ValueError(f"channel_names: {len(names)} names for {k} channels")
        every = max(len(steps) // 10, k, 1)
        for i in range(k):
            frac = np.where(fractions[:, i] > 0, fractions[:, i], np.nan)  # dropped: gap
            # markers shifted per channel, so that equal shares stay distinguishable
            ax[4].plot(steps, frac, ls=_STYLES[i % len(_STYLES)],
                       marker=_MARKERS[i % len(_MARKERS)],
                       markevery=(i * every // k, every), ms=4, color=f"C{i % 10}",
                       label=names[i] if names else f"channel {i}")
        ax[4].set(xlabel="training step", ylabel="fraction of the batch",
                  title="channel shares")
        _log_y_if_spread(ax[4], np.where(fractions > 0, fractions, np.nan))
        ax[4].legend(fontsize=7, ncol=1 + k // 8)
    _layout(fig)
    _save(fig, Path(path))
    return fig
