"""Generator-level cuts with MadGraph ``run_card.dat`` names and semantics.

A :class:`Cuts` object is built once per process from the PDG ids of its external
particles and a mapping of run-card cut names to values; ``cuts.mask(momenta)`` then says,
for a batch of momenta ``(n, nparticles, 4)`` as (E, px, py, pz) in GeV, which events pass
(``True``). Indices 0 and 1 are the incoming partons and are never cut on; the final state
starts at index 2.

Particle classes follow MadGraph's ``setcuts.f``:

==== ====================================================================================
``j`` gluon (21) and quarks with ``1 <= |pdg| <= maxjetflavor`` (default 4: d u s c)
``b`` quarks with ``maxjetflavor < |pdg| <= 5`` (the b quark unless ``maxjetflavor=5``;
      as in MadGraph, ``maxjetflavor=3`` also makes the charm quark class ``b``)
``l`` charged leptons, ``|pdg|`` in 11, 13, 15 (both charges)
``a`` photon, 22
``v`` neutrinos, ``|pdg|`` in 12, 14, 16: only through the missing-pT cuts
==== ====================================================================================

Anything else (top, W, Z, H, BSM particles) is never cut on; MadGraph skips particles
heavier than 20 GeV altogether.

Supported names (:data:`SUPPORTED_CUTS`), ``X`` one of ``j b a l``:

- ``ptX`` / ``ptXmax``: lower / upper bound on the pT of every particle of class X;
- ``misset`` / ``missetmax``: bounds on the missing pT, the length of the vector sum of the
  neutrinos' transverse momenta (only processes with neutrinos);
- ``etaX`` / ``etaXmin``: upper / lower bound on ``|eta|`` of every particle of class X;
- ``yX``: upper bound on ``|y|`` (true rapidity) of every particle of class X. *Not a
  MadGraph name*: added for cuts that should be on rapidity whatever the masses;
- ``drXY`` / ``drXYmax``: bounds on Delta R between every pair of distinct particles, one
  of class X and one of class Y, for the MadGraph pairs ``jj bb ll aa bj aj jl ab bl al``;
- ``mmXX`` / ``mmXXmax``: bounds on the invariant mass of every pair of distinct particles
  of class X, for ``jj bb aa ll``; ``mmll``/``mmllmax`` only on same-flavour
  opposite-sign lepton pairs, as MadGraph.

Besides the run card's names, :class:`Cuts` takes the on-shell windows of a decay chain
(:class:`ResonanceWindow`): MadGraph's ``p p > t t~, t > b e+ ve`` keeps only the events
whose ``b e+ ve`` invariant mass lies within ``bwcutoff`` widths of the top mass,
``|m - M| < bwcutoff * Gamma`` (madevent's forced Breit-Wigner, ``cut_bw`` in
``myamp.f``; ``bwcutoff`` = 15 by default). A window bounds that mass from below for
the mappings (:meth:`Cuts.min_mass`). As with MadGraph's default ``cut_decays = False``,
the run's other cuts do not apply to a window's decay products unless it says so
(``cut_products``), except the missing pT, which sums every neutrino.

"No cut" values follow the run card: a lower bound ``<= 0`` and an upper bound ``< 0``
(MadGraph writes -1) switch the cut off; for ``etaX`` and ``yX`` any value ``<= 0`` is off
(MadGraph's Fortran would read ``etaj = 0`` as ``|y| <= 0`` and reject every event; a
zero-width window is never meant). If both ``mmXX`` and ``mmXXmax`` are on and
``mmXX > mmXXmax``, the pair is vetoed inside ``(mmXXmax, mmXX)`` instead of rejecting
everything, as in MadGraph's ``cuts.f``.

Delta R is ``sqrt(d_eta^2 + d_phi^2)`` with ``d_phi`` wrapped into ``[-pi, pi]``.
MadGraph 3's LO ``cuts.f`` evaluates the ``etaX`` cuts and Delta R with the true rapidity
``y`` (``rap`` in ``Source/kin_functions.f``; older releases used ``eta`` in Delta R);
for massless particles the two agree. The default here is the pseudo-rapidity ``eta``;
``use_rapidity=True`` reproduces MadGraph for massive b quarks and taus.

Not supported (raise as unknown names in :class:`Cuts`, ignored by
:meth:`Cuts.from_run_card`): energy cuts (``ej``, ``el``, ...), ``ptheavy``, the sorted
``ptj1min``.. / ``ptl1min``.. cuts, ``htjmin``/``ihtmin``.., ``xptj``.., ``mmnl``,
``ptllmin``/``ptllmax``, ``xetamin``/``deltaeta``, photon isolation (``ptgmin``), the
``*_pdg`` dictionaries, ``dsqrt_shat``, and MLM matching's changes to ``ptj``, ``mmjj``,
``drjj`` and ``drjl`` when ``xqcut > 0``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations, product
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "Cuts",
    "ResonanceWindow",
    "SUPPORTED_CUTS",
    "delta_phi",
    "delta_r",
    "eta",
    "invariant_mass",
    "particle_class",
    "phi",
    "pt",
    "rapidity",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
ParticleClass = Literal["j", "b", "l", "a", "v"]
Pdgs = Sequence[int] | npt.NDArray[np.integer[Any]]

_CHARGED_LEPTONS: Final = frozenset({11, 13, 15})
_NEUTRINOS: Final = frozenset({12, 14, 16})
_GLUON: Final = 21
_PHOTON: Final = 22


# --------------------------------------------------------------------------- observables

def _four(name: str, p: npt.ArrayLike) -> FloatArray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim == 0 or arr.shape[-1] != 4:
        raise ValueError(f"{name}: expected momenta with a last axis of length 4 "
                         f"(E, px, py, pz), got shape {arr.shape}")
    return arr


def pt(p: npt.ArrayLike) -> FloatArray:
    """Transverse momentum ``sqrt(px^2 + py^2)`` of momenta ``(..., 4)``."""
    q = _four("p", p)
    return np.asarray(np.hypot(q[..., 1], q[..., 2]), dtype=np.float64)


def phi(p: npt.ArrayLike) -> FloatArray:
    """Azimuth ``atan2(py, px)`` in ``[-pi, pi]`` of momenta ``(..., 4)``."""
    q = _four("p", p)
    return np.asarray(np.arctan2(q[..., 2], q[..., 1]), dtype=np.float64)


def eta(p: npt.ArrayLike) -> FloatArray:
    """Pseudo-rapidity ``asinh(pz / pT)`` of momenta ``(..., 4)``.

    A momentum along the beam (``pT = 0``) has ``eta = +inf`` or ``-inf`` by the sign of
    ``pz`` (a zero momentum by the sign of its zero), without warnings.
    """
    q = _four("p", p)
    transverse = np.hypot(q[..., 1], q[..., 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.arcsinh(q[..., 3] / transverse)
    return np.asarray(np.where(transverse == 0, np.copysign(np.inf, q[..., 3]), value),
                      dtype=np.float64)


def rapidity(p: npt.ArrayLike) -> FloatArray:
    """Rapidity ``y = atanh(pz / E) = log((E + pz) / (E - pz)) / 2`` of momenta ``(..., 4)``.

    Massless momenta along the beam give ``+-inf``; unphysical ones (``|pz| > E``) give
    NaN. Neither warns.
    """
    q = _four("p", p)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(np.arctanh(q[..., 3] / q[..., 0]), dtype=np.float64)


def delta_phi(p1: npt.ArrayLike, p2: npt.ArrayLike) -> FloatArray:
    """Azimuthal difference ``phi1 - phi2`` wrapped into ``[-pi, pi]``.

    Computed as the angle between the two transverse vectors, so there is no wrapping
    arithmetic to lose precision near ``+-pi``. Shapes broadcast like ``p1 - p2``.
    """
    a, b = _four("p1", p1), _four("p2", p2)
    cross = a[..., 2] * b[..., 1] - a[..., 1] * b[..., 2]
    dot = a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]
    return np.asarray(np.arctan2(cross, dot), dtype=np.float64)


def delta_r(p1: npt.ArrayLike, p2: npt.ArrayLike, *, use_rapidity: bool = False) -> FloatArray:
    """Distance ``sqrt(d_eta^2 + d_phi^2)`` in the (eta, phi) plane.

    Parameters
    ----------
    p1, p2 : array_like, shape ``(..., 4)``
        Momenta; the leading shapes broadcast.
    use_rapidity : bool
        Use the rapidity ``y`` instead of the pseudo-rapidity ``eta`` (MadGraph 3's
        ``R2`` in ``kin_functions.f``); identical for massless momenta.

    Returns
    -------
    numpy.ndarray
        Delta R; NaN where both momenta lie along the same beam (``inf - inf``).
    """
    longitudinal = rapidity if use_rapidity else eta
    with np.errstate(invalid="ignore"):
        d_long = longitudinal(p1) - longitudinal(p2)
    return np.asarray(np.hypot(d_long, delta_phi(p1, p2)), dtype=np.float64)


def _mass_squared(p1: FloatArray, p2: FloatArray) -> FloatArray:
    s = p1 + p2
    return np.asarray(s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2 - s[..., 3] ** 2,
                      dtype=np.float64)


def invariant_mass(p1: npt.ArrayLike, p2: npt.ArrayLike) -> FloatArray:
    """Invariant mass ``sqrt((p1 + p2)^2)`` of pairs of momenta ``(..., 4)``.

    A slightly negative square from rounding (collinear massless pairs) gives 0; NaN
    inputs stay NaN.
    """
    m2 = _mass_squared(_four("p1", p1), _four("p2", p2))
    return np.asarray(np.sqrt(np.maximum(m2, 0.0)), dtype=np.float64)


# ------------------------------------------------------------------------ particle classes

def _check_maxjetflavor(maxjetflavor: object) -> int:
    if (isinstance(maxjetflavor, bool) or not isinstance(maxjetflavor, numbers.Integral)
            or not 0 <= int(maxjetflavor) <= 6):
        raise ValueError(f"maxjetflavor: expected an integer in 0..6 (MadGraph's range; 4 "
                         f"makes b quarks class 'b', 5 makes them jets), got {maxjetflavor!r}")
    return int(maxjetflavor)


def particle_class(pdg: int, *, maxjetflavor: int = 4) -> ParticleClass | None:
    """MadGraph's cut class of a particle: ``"j"``, ``"b"``, ``"l"``, ``"a"``, ``"v"`` or
    ``None`` (never cut on).

    Parameters
    ----------
    pdg : int
        PDG id; the sign only matters for photons (22).
    maxjetflavor : int
        Heaviest quark flavour counted as a light jet (MadGraph's run-card field).
    """
    flavour = _check_maxjetflavor(maxjetflavor)
    if isinstance(pdg, bool) or not isinstance(pdg, numbers.Integral):
        raise TypeError(f"pdg: expected an integer PDG id, got {pdg!r}")
    code = abs(int(pdg))
    if code == _GLUON:
        return "j"
    if 1 <= code <= 5:
        return "j" if code <= flavour else "b"
    if code in _CHARGED_LEPTONS:
        return "l"
    if int(pdg) == _PHOTON:
        return "a"
    if code in _NEUTRINOS:
        return "v"
    return None


# ----------------------------------------------------------------------- the cut table

Observable = Literal["pt", "abs_eta", "abs_y", "missing_pt", "delta_r", "mass",
                     "window"]


@dataclass(frozen=True)
class ResonanceWindow:
    """A resonance a decay chain forces on shell: the invariant mass of its decay products
    ``legs`` (final-state momentum indices, 2 and above) must lie within ``bwcutoff``
    widths of its pole, ``|m - mass| < bwcutoff * width`` (madevent's forced
    Breit-Wigner for ``p p > t t~, t > b e+ ve``).

    Raises
    ------
    ValueError
        Fewer than two legs, a leg below 2 or twice, or a mass, width or bwcutoff that is
        not a positive finite number.
    """

    legs: tuple[int, ...]
    mass: float
    width: float
    bwcutoff: float = 15.0
    name: str = ""
    #: Whether the run's cuts apply to the decay products (MadGraph's ``cut_decays``,
    #: False by default: ``setcuts.f`` exempts them from every pT, eta, Delta R and
    #: pair-mass cut; the missing pT still counts their neutrinos).
    cut_products: bool = False

    def __post_init__(self) -> None:
        label = f"resonance window {self.name or '?'}"
        legs = tuple(int(leg) for leg in self.legs)
        if len(legs) < 2 or len(set(legs)) != len(legs) or min(legs) < 2:
            raise ValueError(f"{label}: legs must be two or more distinct final-state "
                             f"momentum indices (2 and above), got {list(self.legs)}")
        object.__setattr__(self, "legs", tuple(sorted(legs)))
        if not isinstance(self.cut_products, bool):
            raise ValueError(f"{label}: cut_products must be true or false, got "
                             f"{self.cut_products!r}")
        for what in ("mass", "width", "bwcutoff"):
            value = getattr(self, what)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
                    math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{label}: {what} must be a positive finite number, "
                                 f"got {value!r}")
            object.__setattr__(self, what, float(value))

    @property
    def lower(self) -> float:
        """The smallest invariant mass inside the window (GeV, at least 0)."""
        return max(float(self.mass) - float(self.bwcutoff) * float(self.width), 0.0)

    @property
    def upper(self) -> float:
        """The largest invariant mass inside the window (GeV)."""
        return float(self.mass) + float(self.bwcutoff) * float(self.width)

    def contains(self, momenta: npt.ArrayLike) -> BoolArray:
        """Which events ``(n, particles, 4)`` have the decay products' invariant mass
        strictly inside the window, ``|m - mass| < bwcutoff * width`` (squares compared,
        as the cuts do)."""
        p = np.asarray(momenta, dtype=np.float64)
        q = p[:, list(self.legs)].sum(axis=1)
        m2 = q[:, 0] ** 2 - (q[:, 1:] ** 2).sum(axis=1)
        above = m2 > self.lower ** 2 if self.lower > 0 else np.ones(len(p), dtype=bool)
        return np.asarray(above & (m2 < self.upper ** 2))


@dataclass(frozen=True)
class _Spec:
    """What one run-card name means: an observable, a bound, and the classes it acts on."""

    observable: Observable
    upper: bool
    classes: tuple[str, ...]

    def is_on(self, value: float) -> bool:
        # Lower bounds and the |eta|/|y| windows are off at <= 0; other upper bounds at < 0.
        if self.upper and self.observable not in ("abs_eta", "abs_y"):
            return value >= 0
        return value > 0


def _build_table() -> dict[str, _Spec]:
    table: dict[str, _Spec] = {}
    for c in "jbal":
        table[f"pt{c}"] = _Spec("pt", False, (c,))
        table[f"pt{c}max"] = _Spec("pt", True, (c,))
    table["misset"] = _Spec("missing_pt", False, ("v",))
    table["missetmax"] = _Spec("missing_pt", True, ("v",))
    for c in "jbal":
        table[f"eta{c}"] = _Spec("abs_eta", True, (c,))
        table[f"eta{c}min"] = _Spec("abs_eta", False, (c,))
    for c in "jbal":
        table[f"y{c}"] = _Spec("abs_y", True, (c,))
    for pair in ("jj", "bb", "ll", "aa", "bj", "aj", "jl", "ab", "bl", "al"):
        table[f"dr{pair}"] = _Spec("delta_r", False, (pair[0], pair[1]))
        table[f"dr{pair}max"] = _Spec("delta_r", True, (pair[0], pair[1]))
    for pair in ("jj", "bb", "aa", "ll"):
        table[f"mm{pair}"] = _Spec("mass", False, (pair[0], pair[1]))
        table[f"mm{pair}max"] = _Spec("mass", True, (pair[0], pair[1]))
    return table


_TABLE: Final[dict[str, _Spec]] = _build_table()

#: Every cut name :class:`Cuts` understands, in the order of the module docstring.
SUPPORTED_CUTS: Final[tuple[str, ...]] = tuple(_TABLE)


class _Kinematics:
    """The momenta of one :meth:`Cuts.mask` call with each particle's pT and longitudinal
    variables computed once, for all the checks that use them (element by element the
    values of :func:`pt`, :func:`eta` and :func:`rapidity`)."""

    def __init__(self, momenta: FloatArray, use_rapidity: bool) -> None:
        self.p = momenta
        self.use_rapidity = use_rapidity
        self._cache: dict[str, FloatArray] = {}

    def _of_all(self, name: str, fn: Any) -> FloatArray:
        if name not in self._cache:
            self._cache[name] = fn(self.p)
        return self._cache[name]

    def pt(self) -> FloatArray:
        return self._of_all("pt", pt)

    def rapidity(self) -> FloatArray:
        return self._of_all("rapidity", rapidity)

    def longitudinal(self) -> FloatArray:
        """Rapidity or pseudo-rapidity, as the cuts' ``use_rapidity`` says."""
        return self.rapidity() if self.use_rapidity else self._of_all("eta", eta)


@dataclass(frozen=True)
class _Check:
    """One observable on one set of particles (or pairs), with its active bounds."""

    observable: Observable
    first: npt.NDArray[np.intp]
    second: npt.NDArray[np.intp]
    lower: float | None
    upper: float | None

    def passes(self, kin: _Kinematics) -> BoolArray:
        values = self._values(kin)
        lower = -math.inf if self.lower is None else self.lower
        upper = math.inf if self.upper is None else self.upper
        if self.observable in ("mass", "window"):
            # Compare squares, as MadGraph does: no sqrt of rounding-negative masses.
            lower = math.copysign(lower * lower, lower)
            upper = upper * upper
        # Written as "passes" comparisons (infinite defaults included), so NaN fails.
        above, below = values >= lower, values <= upper
        # "mass" with lower > upper is MadGraph's veto window (mmXX > mmXXmax).
        ok = above | below if self.observable == "mass" and lower > upper else above & below
        return np.asarray(np.all(ok, axis=1), dtype=np.bool_)

    def _values(self, kin: _Kinematics) -> FloatArray:
        p = kin.p
        if self.observable == "pt":
            return kin.pt()[:, self.first]
        if self.observable == "abs_eta":
            return np.abs(kin.longitudinal()[:, self.first])
        if self.observable == "abs_y":
            return np.abs(kin.rapidity()[:, self.first])
        if self.observable == "missing_pt":
            total = p[:, self.first, 1:3].sum(axis=1)
            return np.asarray(np.hypot(total[:, 0], total[:, 1])[:, None], dtype=np.float64)
        if self.observable == "delta_r":  # delta_r's formula on the particles' values
            longitudinal = kin.longitudinal()
            d_long = longitudinal[:, self.first] - longitudinal[:, self.second]
            return np.asarray(np.hypot(d_long, delta_phi(p[:, self.first],
                                                         p[:, self.second])),
                              dtype=np.float64)
        if self.observable == "window":  # the decay products' invariant mass squared
            total = p[:, self.first].sum(axis=1)
            m2 = total[:, 0] ** 2 - (total[:, 1:] ** 2).sum(axis=1)
            return np.asarray(m2[:, None], dtype=np.float64)
        return _mass_squared(p[:, self.first], p[:, self.second])


def _exempt_class(cls: ParticleClass | None, exempt: bool) -> ParticleClass | None:
    """The class a particle is cut as: none for an exempt decay product, except a
    neutrino's (only the missing pT sees it)."""
    return cls if not exempt or cls == "v" else None


def _to_float(what: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what}: expected a real number, got {value!r}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{what}: expected a finite number (use -1 or 0 for 'no cut', as "
                         f"in the run card), got {value!r}")
    return result


def _unknown_name_error(name: object) -> ValueError:
    return ValueError(f"unknown cut name {name!r}; supported names: "
                      f"{', '.join(SUPPORTED_CUTS)}")


# ---------------------------------------------------------------------------- Cuts

class Cuts:
    """Generator-level cuts on a fixed process, with MadGraph run-card names.

    Parameters
    ----------
    pdgs : sequence of int or integer array
        PDG id of every external particle in momentum order, the two incoming first.
    cuts : mapping of str to float
        Run-card names (see :data:`SUPPORTED_CUTS` and the module docstring) to values in
        GeV (pT, masses) or plain numbers (eta, y, Delta R). Values meaning "no cut" are
        accepted and ignored.
    maxjetflavor : int
        Heaviest quark flavour counted as a jet ``j``; 4 (MadGraph's default) keeps b
        quarks in class ``b``, 5 moves them into the jets.
    use_rapidity : bool
        Evaluate the ``etaX`` cuts and Delta R with the rapidity ``y``, as MadGraph 3's LO
        ``cuts.f`` does, instead of the pseudo-rapidity ``eta``.
    windows : sequence of ResonanceWindow
        The on-shell windows of a decay chain: an event passes only inside every one. The
        decay products of a window with ``cut_products=False`` (MadGraph's default
        ``cut_decays = False``) are cut by nothing else but the missing pT.

    Raises
    ------
    ValueError
        An unknown cut name (the message lists the supported ones), a non-finite value,
        fewer than 3 particles, ``maxjetflavor`` outside 0..6, or a window on legs the
        process does not have.
    TypeError
        A value that is not a real number, or a PDG id that is not an integer.

    Examples
    --------
    >>> cuts = Cuts([2, -2, 11, -11], {"ptl": 10.0, "etal": 2.5, "drll": 0.4})
    >>> passed = cuts.mask(momenta)  # doctest: +SKIP
    """

    def __init__(self, pdgs: Pdgs, cuts: Mapping[str, float], *,
                 maxjetflavor: int = 4, use_rapidity: bool = False,
                 windows: Sequence[ResonanceWindow] = ()) -> None:
        self._maxjetflavor = _check_maxjetflavor(maxjetflavor)
        if isinstance(pdgs, np.ndarray):
            pdgs = pdgs.tolist()
        if isinstance(pdgs, (str, bytes)) or not isinstance(pdgs, Sequence) or len(pdgs) < 3:
            raise ValueError(f"pdgs: expected a sequence of at least 3 PDG ids (2 incoming, "
                             f"then the final state), got {pdgs!r}")
        for index, code in enumerate(pdgs):
            if isinstance(code, bool) or not isinstance(code, numbers.Integral):
                raise TypeError(f"pdgs[{index}]: expected an integer PDG id, got {code!r}")
        self._pdgs = tuple(int(code) for code in pdgs)
        self._use_rapidity = bool(use_rapidity)
        self._windows = tuple(windows)
        for window in self._windows:
            if not isinstance(window, ResonanceWindow):
                raise TypeError(f"windows: expected ResonanceWindow entries, got {window!r}")
            if max(window.legs) >= len(self._pdgs):
                raise ValueError(f"resonance window {window.name or '?'}: legs "
                                 f"{list(window.legs)} outside the final state "
                                 f"2..{len(self._pdgs) - 1}")
        # decay products exempt from the cuts (cut_decays = False) keep only the neutrinos'
        # class, which the missing pT sums (MadGraph's is_a_nu ignores do_cuts)
        exempt = {leg for w in self._windows if not w.cut_products for leg in w.legs}
        self._classes: tuple[ParticleClass | None, ...] = (None, None) + tuple(
            _exempt_class(particle_class(code, maxjetflavor=self._maxjetflavor),
                          index in exempt)
            for index, code in enumerate(self._pdgs[2:], start=2))

        if not isinstance(cuts, Mapping):
            raise TypeError(f"cuts: expected a mapping of run-card names to numbers, "
                            f"got {type(cuts).__name__}")
        values: dict[str, float] = {}
        for name, value in cuts.items():
            if name not in _TABLE:
                raise _unknown_name_error(name)
            values[name] = _to_float(f"cut {name!r}", value)

        active: dict[str, float] = {}
        grouped: dict[tuple[Observable, tuple[str, ...]], dict[bool, float]] = {}
        targets: dict[tuple[Observable, tuple[str, ...]], tuple[list[int], list[int]]] = {}
        for name, value in values.items():
            spec = _TABLE[name]
            if not spec.is_on(value):
                continue
            key = (spec.observable, spec.classes)
            if key not in targets:
                targets[key] = self._targets(spec)
            if not targets[key][0]:
                continue
            active[name] = value
            grouped.setdefault(key, {})[spec.upper] = value
        # Keep the table's order so that repr and active read the same whatever the input.
        self._active = {name: active[name] for name in SUPPORTED_CUTS if name in active}
        self._checks = tuple(
            _Check(observable=key[0],
                   first=np.asarray(targets[key][0], dtype=np.intp),
                   second=np.asarray(targets[key][1], dtype=np.intp),
                   lower=bounds.get(False), upper=bounds.get(True))
            for key, bounds in grouped.items()) + tuple(
            _Check(observable="window", first=np.asarray(w.legs, dtype=np.intp),
                   second=np.zeros(0, dtype=np.intp),
                   lower=w.lower if w.lower > 0 else None, upper=w.upper)
            for w in self._windows)

    def _indices(self, cls: str) -> list[int]:
        return [i for i, c in enumerate(self._classes) if c == cls]

    def _targets(self, spec: _Spec) -> tuple[list[int], list[int]]:
        """The particle indices (single cuts) or index pairs (pair cuts) a cut acts on."""
        if spec.observable not in ("delta_r", "mass"):
            return self._indices(spec.classes[0]), []
        first_class, second_class = spec.classes
        if first_class == second_class:
            pairs = list(combinations(self._indices(first_class), 2))
        else:
            pairs = list(product(self._indices(first_class), self._indices(second_class)))
        if spec.observable == "mass" and first_class == "l":
            # mmll: same flavour, opposite sign only (MadGraph's setcuts.f).
            pairs = [(i, j) for i, j in pairs if self._pdgs[i] == -self._pdgs[j]]
        return [i for i, _ in pairs], [j for _, j in pairs]

    @classmethod
    def from_run_card(cls, pdgs: Pdgs, fields: Mapping[str, object], *,
                      maxjetflavor: int | None = None, use_rapidity: bool = False) -> Cuts:
        """Cuts from the fields of a MadGraph run card, ignoring every unrelated field.

        Parameters
        ----------
        pdgs : sequence of int
            As in :class:`Cuts`.
        fields : mapping of str to object
            Run-card fields, name to value (``{"ptj": "20.0", "nevents": "10000", ...}``).
            Names are matched case-insensitively, as MadGraph does; the values of the cut
            fields may be numbers or strings (Fortran ``1d5`` exponents included).
        maxjetflavor : int, optional
            Defaults to the card's ``maxjetflavor`` field, else 4. Giving it as well as a
            card field that says otherwise is an error.
        use_rapidity : bool
            As in :class:`Cuts`.

        Returns
        -------
        Cuts
        """
        if not isinstance(fields, Mapping):
            raise TypeError(f"fields: expected a mapping of run-card names to values, "
                            f"got {type(fields).__name__}")
        cuts: dict[str, float] = {}
        origin: dict[str, str] = {}
        card_flavour: int | None = None
        for key, raw in fields.items():
            name = str(key).strip().lower()
            if name != "maxjetflavor" and name not in _TABLE:
                continue
            if name in origin:
                raise ValueError(f"run-card fields {origin[name]!r} and {key!r} both set "
                                 f"{name!r}")
            origin[name] = str(key)
            if name == "maxjetflavor":
                card_flavour = _parse_int(str(key), raw)
            else:
                cuts[name] = _parse_float(str(key), raw)
        if maxjetflavor is None:
            flavour = 4 if card_flavour is None else card_flavour
        else:
            flavour = _check_maxjetflavor(maxjetflavor)
            if card_flavour is not None and card_flavour != flavour:
                raise ValueError(f"maxjetflavor={maxjetflavor!r} was given, but the run card "
                                 f"says {origin['maxjetflavor']} = {card_flavour}; drop one "
                                 f"or make them agree")
        return cls(pdgs, cuts, maxjetflavor=flavour, use_rapidity=use_rapidity)

    @property
    def pdgs(self) -> tuple[int, ...]:
        """The PDG ids, incoming first."""
        return self._pdgs

    @property
    def maxjetflavor(self) -> int:
        return self._maxjetflavor

    @property
    def windows(self) -> tuple[ResonanceWindow, ...]:
        """The on-shell windows of a decay chain (:class:`ResonanceWindow`)."""
        return self._windows

    @property
    def use_rapidity(self) -> bool:
        return self._use_rapidity

    @property
    def particle_classes(self) -> tuple[ParticleClass | None, ...]:
        """Class of every momentum index (``None`` for the incoming and the uncut)."""
        return self._classes

    @property
    def active(self) -> dict[str, float]:
        """The cuts that do something: switched on and with particles (or pairs) to act on.

        ``Cuts(c.pdgs, c.active, maxjetflavor=c.maxjetflavor)`` cuts the same as ``c``.
        """
        return dict(self._active)

    def _final_masses(self, masses: Sequence[float]) -> list[float]:
        if len(masses) != len(self._pdgs) - 2:
            raise ValueError(f"masses: expected {len(self._pdgs) - 2} final-state masses, "
                             f"got {len(masses)}")
        for i, m in enumerate(masses):
            if not (math.isfinite(float(m)) and float(m) >= 0):
                raise ValueError(f"masses[{i}]: expected a finite mass >= 0 in GeV, got {m!r}")
        return [float(m) for m in masses]

    def _pt_minima(self) -> list[float]:
        """Smallest pT every final-state particle can have in an event that passes."""
        out = []
        neutrinos = self._indices("v")
        for index, cls in enumerate(self._classes[2:], start=2):
            low = 0.0
            if cls in ("j", "b", "a", "l"):
                low = self._active.get(f"pt{cls}", 0.0)
            elif cls == "v" and len(neutrinos) == 1 and index in neutrinos:
                low = self._active.get("misset", 0.0)  # one neutrino: its pT is missing pT
            out.append(max(float(low), 0.0))
        return out

    def min_pt(self, leg: int) -> float:
        """The smallest pT (GeV) of final-state particle ``leg`` (momentum index, 2 and
        above) in an event that passes: its class's ``ptX`` cut (``misset`` for a single
        neutrino), else 0."""
        if not 2 <= int(leg) < len(self._pdgs):
            raise ValueError(f"leg: expected a final-state momentum index in "
                             f"2..{len(self._pdgs) - 1}, got {leg!r}")
        return self._pt_minima()[int(leg) - 2]

    def pair_mass_cuts(self) -> dict[tuple[int, int], tuple[str, float]]:
        """Lower invariant-mass cuts on pairs: ``{(i, j): (name, mmin)}`` with ``i < j``
        momentum indices, for every active ``mmXX`` that is a lower bound (a veto window,
        ``mmXX > mmXXmax``, bounds nothing from below)."""
        out: dict[tuple[int, int], tuple[str, float]] = {}
        for pair in ("jj", "bb", "aa", "ll"):
            low = self._active.get(f"mm{pair}")
            high = self._active.get(f"mm{pair}max")
            if low is None or (high is not None and high < low):
                continue
            first, second = self._targets(_TABLE[f"mm{pair}"])
            for i, j in zip(first, second, strict=True):
                key = (min(i, j), max(i, j))
                if key not in out or out[key][1] < low:
                    out[key] = (f"mm{pair}", float(low))
        return out

    def min_shat(self, masses: Sequence[float]) -> float:
        """A lower bound on the partonic s of the events that pass (GeV^2).

        In the partonic rest frame ``sqrt(s) = sum E_i >= sum sqrt(m_i^2 + pT_i^2)``, with
        each final-state particle's smallest pT allowed by the ``ptX`` cuts (``misset``
        for a single neutrino). The transverse momenta also balance: for every particle
        k the others carry ``sum_j |pT_j| >= |pT_k|``, so by Minkowski's inequality
        ``sqrt(s) >= sqrt(m_k^2 + pT_k^2) + sqrt(M^2 + P^2)`` with M the others' masses
        and ``P = max(pT_k, sum_j pT_j)`` (``ptj > 20`` alone gives ``sqrt(s) >= 40``).
        ``sqrt(s)`` is at least the sum of the invariant masses of disjoint pairs (and
        the other masses), so the pairs' lower mass bounds (:meth:`pair_mass_bounds`)
        bound it too. None of these removes an event the cuts keep. ``masses``: the final-state
        masses.
        """
        m = self._final_masses(masses)
        a = self._pt_minima()
        root = sum(math.hypot(mi, ai) for mi, ai in zip(m, a, strict=True))
        for k in range(len(m)):
            rest_m = sum(m) - m[k]
            rest_pt = max(a[k], sum(a) - a[k])
            root = max(root, math.hypot(m[k], a[k]) + math.hypot(rest_m, rest_pt))
        pairs = self._pairs_bound(range(2, len(m) + 2), m)
        return max(root, pairs) ** 2

    def pair_mass_bounds(self, masses: Sequence[float]) -> dict[tuple[int, int],
                                                              tuple[tuple[str, ...], float]]:
        """Lower bounds on the invariant masses of pairs in every event that passes:
        ``{(i, j): (names, mmin)}`` with ``i < j`` momentum indices and the cuts that give
        the bound.

        A lower ``mmXX`` cut (:meth:`pair_mass_cuts`), and for two massless particles with
        lower pT cuts ``a_i``, ``a_j`` and a lower Delta R cut ``R`` between them
        ``m^2 = 2 pT_i pT_j (cosh(d_eta) - cos(d_phi)) >= 2 a_i a_j (1 - cos(min(R, pi)))``:
        with ``h(x) = 1 - cos(sqrt(x))``, ``h' <= 1/2``, so ``cosh(a) - cos(b) >= 1 - cos(b)
        + a^2/2 >= h(a^2 + b^2)``, which is ``>= 1 - cos(R)`` on ``a^2 + b^2 >= R^2``
        (``|b| <= pi``; where ``|b| > R`` the first form is). MadGraph's ``myamp.f`` starts
        the grid of such a propagator at ``0.8 R^2 a_i a_j``, just below. ``masses``: the
        final-state masses (a massive particle keeps only its mass and the ``mmXX`` cut).
        """
        m = self._final_masses(masses)
        out: dict[tuple[int, int], tuple[tuple[str, ...], float]] = {
            pair: ((name,), low) for pair, (name, low) in self.pair_mass_cuts().items()}
        a = self._pt_minima()
        for pair in ("jj", "bb", "ll", "aa", "bj", "aj", "jl", "ab", "bl", "al"):
            radius = self._active.get(f"dr{pair}")
            if radius is None:
                continue
            first, second = self._targets(_TABLE[f"dr{pair}"])
            for i, j in zip(first, second, strict=True):
                if m[i - 2] > 0 or m[j - 2] > 0 or a[i - 2] <= 0 or a[j - 2] <= 0:
                    continue
                low = math.sqrt(2 * a[i - 2] * a[j - 2] * (1 - math.cos(min(radius, math.pi))))
                key = (min(i, j), max(i, j))
                if key not in out or out[key][1] < low:
                    names = (f"dr{pair}", f"pt{self._classes[i]}", f"pt{self._classes[j]}")
                    out[key] = (tuple(sorted(set(names))), low)
        return out

    def _pairs_bound(self, legs: Sequence[int], m: Sequence[float]) -> float:
        """The sum of the masses of ``legs``, with disjoint pairs under a lower mass bound
        (:meth:`pair_mass_bounds`) counted at their bound: the mass of a set of physical
        momenta is at least the sum of the masses of its parts. The decay products of a
        resonance window (:attr:`windows`) are such a part too, at the window's lower
        edge. Parts are taken greedily by gain, which may miss the best combination but
        never overstates the bound."""
        chosen = set(legs)
        bound = sum(m[leg - 2] for leg in chosen)
        parts: list[tuple[float, tuple[int, ...]]] = [
            (low, (i, j)) for (i, j), (_, low) in self.pair_mass_bounds(m).items()]
        parts += [(w.lower, w.legs) for w in self._windows]
        gains = sorted(((low - sum(m[leg - 2] for leg in part), part)
                        for low, part in parts if chosen.issuperset(part)), reverse=True)
        used: set[int] = set()
        for gain, part in gains:
            if gain > 0 and used.isdisjoint(part):
                bound += gain
                used |= set(part)
        return bound

    def min_mass(self, legs: Sequence[int], masses: Sequence[float]) -> float:
        """A lower bound (GeV) on the invariant mass of the final-state particles ``legs``
        (momentum indices, 2 and above) in every event that passes.

        The sum of their masses, with disjoint pairs among them counted at their lower
        bound (:meth:`pair_mass_bounds`: an ``mmXX`` cut, or pT and Delta R cuts) and the
        decay products of a resonance window at its lower edge (the mass
        of a set of physical momenta is at least the sum of the masses of any split into
        parts); the whole final state is bounded by :meth:`min_shat` too.
        """
        m = self._final_masses(masses)
        chosen = sorted({int(leg) for leg in legs})
        if len(chosen) != len(legs) or not chosen or not all(
                2 <= leg < len(self._pdgs) for leg in chosen):
            raise ValueError(f"legs: expected distinct final-state momentum indices in "
                             f"2..{len(self._pdgs) - 1}, got {list(legs)}")
        bound = self._pairs_bound(chosen, m)
        if len(chosen) == len(m):
            bound = max(bound, math.sqrt(self.min_shat(m)))
        return bound

    def mask(self, momenta: npt.ArrayLike) -> BoolArray:
        """Which events pass every cut.

        Parameters
        ----------
        momenta : array_like, shape ``(n, len(pdgs), 4)``
            (E, px, py, pz) in GeV.

        Returns
        -------
        numpy.ndarray of bool, shape ``(n,)``
            ``True`` where the event passes. Events with any non-finite component (NaN or
            inf, incoming momenta included) fail, without warnings.
        """
        p = np.asarray(momenta, dtype=np.float64)
        expected = len(self._pdgs)
        if p.ndim != 3 or p.shape[1:] != (expected, 4):
            raise ValueError(f"momenta: expected shape (n, {expected}, 4) for {expected} "
                             f"particles, got {p.shape}")
        passed = np.asarray(np.isfinite(p).all(axis=(1, 2)), dtype=np.bool_)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            kin = _Kinematics(p, self._use_rapidity)  # pT, eta, y once per particle
            for check in self._checks:
                passed &= check.passes(kin)
        return passed

    def __call__(self, momenta: npt.ArrayLike) -> BoolArray:
        """Same as :meth:`mask`."""
        return self.mask(momenta)

    @property
    def signature(self) -> tuple[object, ...]:
        """Everything :meth:`mask` depends on besides the momenta (the particle count and
        every active check: observable, particles, bounds): cuts with equal signatures
        give equal masks, e.g. those of ``u u~ > e+ e- g`` and ``g u > e+ e- u``."""
        return (len(self._pdgs), self._use_rapidity,
                tuple((c.observable, tuple(c.first.tolist()), tuple(c.second.tolist()),
                       c.lower, c.upper) for c in self._checks))

    def __repr__(self) -> str:
        options = f"maxjetflavor={self._maxjetflavor}"
        if self._use_rapidity:
            options += ", use_rapidity=True"
        if self._windows:
            options += f", windows={list(self._windows)!r}"
        return f"Cuts({list(self._pdgs)}, {self._active!r}, {options})"


def _parse_float(field: str, raw: object) -> float:
    if isinstance(raw, str):
        text = raw.strip()
        for candidate in (text, text.lower().replace("d", "e")):
            try:
                return float(candidate)
            except ValueError:
                pass
        raise ValueError(f"run-card field {field!r}: expected a number, got {raw!r}")
    if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
        raise ValueError(f"run-card field {field!r}: expected a number, got {raw!r}")
    return float(raw)


def _parse_int(field: str, raw: object) -> int:
    value = _parse_float(field, raw)
    if not value.is_integer():
        raise ValueError(f"run-card field {field!r}: expected an integer, got {raw!r}")
    return int(value)
