"""Processes: a process card (TOML) with its subprocesses, channels, cuts and defaults.

A card ``process.toml`` (built-in ones under ``processes/<name>/``)::

    [process]
    name = "ee_mumu"
    title = "e+ e- -> mu+ mu- (photon and Z exchange)"
    library = "ee_mumu"        # a built-in library name, or a path to a MadGraph
                               # standalone library relative to the card
    beams = "lepton"           # or "proton"
    param_card = "../common/param_card_sm.dat"

    [[subprocess]]
    pdgs = [-11, 11, -13, 13]  # incoming first, MadGraph's order
    colour_flows = [[[0, 0], [0, 0], [0, 0], [0, 0]]]
    # optional: diagram_channels = [0, 1]  channel of each library diagram (-1: none)
    # optional: mirror = true  the library has this subprocess with the incoming partons
    #           swapped (MadGraph's mirror processes, e.g. u g for g u): it is called with
    #           the swapped PDG list and the two incoming momenta swapped
    # optional: matrix_element = "P1_gu_epemu"  subprocesses with the same name (and the
    #           same mirror) share one |M|^2 (MadGraph's flavour grouping, e.g. g u and
    #           g c): it is evaluated once per point for all of them
    # optional: resonance_windows = [{ legs = [2, 3, 4], mass = 173.0, width = 1.4915,
    #           bwcutoff = 15.0, cut_products = false, name = "t" }]  resonances a decay
    #           chain forces on shell (MadGraph's p p > t t~, t > b e+ ve): only events
    #           with |m(legs) - mass| < bwcutoff * width pass, and the run's cuts skip
    #           the legs unless cut_products (MadGraph's cut_decays; the missing pT
    #           still counts their neutrinos) (madnis_py.phasespace.cuts.ResonanceWindow)
    # optional: forbidden_windows = [{ legs = [2, 3], mass = 91.188, width = 2.441404,
    #           bwcutoff = 15.0, diagrams = [1], name = "z" }]  resonances `$` forbids on
    #           shell (MadGraph's p p > e+ e- $ z): inside a window the diagrams listed
    #           (library order, from 0) lose their share of |M|^2, |M_d|^2 / sum |M_i|^2,
    #           as madevent vetoes the window in their channels (ForbiddenWindow)

    [[channel]]                # one per diagram, madnis_py.phasespace topology fields
    name = "Z"
    s_channel = { propagator = { mass = 91.188, width = 2.441404 }, decay = [2, 3] }
    # optional: min_mass (of a decay), min_shat (of the channel): only looser than the
    #           run's cuts, which set both anyway (madnis_py.phasespace.coverage)

    [cuts]                     # MadGraph run_card names
    [defaults]                 # sqrt_s, scale or dynamical_scale_choice, pdf

A Sherpa process (``docs/sherpa.md``): ``library`` is the path of a library built by
:func:`madnis_py.physics.shims.build_sherpa`, and ``[process]`` names the directory of the
Sherpa run card that defines the subprocesses (relative to the card)::

    library = "libme_sherpa.so"
    sherpa_run_card = "sherpa"  # directory holding Sherpa.yaml
    param_card = "../common/param_card_sm.dat"  # still read for the masses

The matrix element is then opened with :meth:`MatrixElement.from_sherpa` (one Sherpa run
per process); Sherpa's parameters should agree with the param_card's.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from madnis_py.phasespace.cuts import ResonanceWindow
from madnis_py.phasespace.topology import Topology, TopologyError
from madnis_py.physics.builtin import builtin_library, builtin_process_dir, builtin_processes
from madnis_py.physics.matrix_element import MatrixElement
from madnis_py.physics.slha import SLHA, read_slha

__all__ = ["ForbiddenWindow", "Process", "ProcessCardError", "ProcessDefaults", "Subprocess",
           "builtin_name", "forbidden_share", "load_process", "looks_like_path"]

_BEAMS = ("lepton", "proton")


class ProcessCardError(ValueError):
    """A process card that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class ForbiddenWindow:
    """A resonance ``$`` forbids on shell (MadGraph's ``p p > e+ e- $ z``): madevent cuts
    the window ``|m(legs) - mass| < bwcutoff * width`` in the channels of the diagrams
    that have the line (``cut_bw``, ``gForceBW = 2``), and keeps it in the others. Its
    multi-channel weights are the diagrams' shares ``|M_d|^2 / sum_i |M_i|^2``, so a
    point inside the window keeps the share of the other diagrams: the integrand there
    is ``f * (1 - sum_{d in diagrams} |M_d|^2 / sum_i |M_i|^2)``, whatever channel drew
    it. As in madevent, a resonance with ``width >= mass / 10`` is never on shell.

    ``diagrams``: the library diagrams (``madnis_amp2_`` order, from 0) with the line.
    """

    window: ResonanceWindow
    diagrams: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.diagrams or min(self.diagrams) < 0:
            raise ValueError(f"forbidden window {self.window.name or '?'}: diagrams must "
                             f"list library diagrams (from 0), got {list(self.diagrams)}")

    def inside(self, momenta: np.ndarray) -> np.ndarray:
        """Which points ``(n, particles, 4)`` lie inside the window (never, for a
        resonance as wide as a tenth of its mass)."""
        w = self.window
        if not w.width < 0.1 * w.mass:
            return np.zeros(len(momenta), dtype=bool)
        return w.contains(momenta)


def forbidden_share(windows: Sequence[ForbiddenWindow], momenta: np.ndarray,
                    amp2: np.ndarray) -> np.ndarray:
    """The factor ``1 - sum_{d vetoed} |M_d|^2 / sum_i |M_i|^2`` of every point: the
    diagrams whose forbidden windows ``windows`` hold the point are vetoed. ``amp2``:
    the per-diagram |M_i|^2 ``(n, diagrams)`` at ``momenta``; 1 where they sum to 0."""
    vetoed = np.zeros(amp2.shape, dtype=bool)
    for fw in windows:
        vetoed[:, list(fw.diagrams)] |= fw.inside(momenta)[:, None]
    total = amp2.sum(axis=1)
    kept = np.where(vetoed, 0.0, amp2).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, kept / total, 1.0)


@dataclass(frozen=True)
class Subprocess:
    """One partonic subprocess: PDG ids (incoming first), its colour flows (LHE tags) and
    the channels its diagrams belong to (``madnis_amp2_`` order; ``None``: diagram i is
    channel i, all of them; -1: a diagram without a channel, such as one with a 4-point
    vertex, whose |M_i|^2 the library leaves at zero).

    ``mirror``: the library knows this subprocess only with the incoming partons swapped
    (MadGraph generates ``g u > ...`` and marks ``u g > ...`` as its mirror); the matrix
    element is then called with :attr:`library_pdgs` and the incoming momenta swapped
    (:meth:`library_momenta`), as madevent does.

    ``matrix_element``: subprocesses with the same name and the same ``mirror`` have the
    same |M|^2 and per-diagram |M_i|^2 at the same momenta (MadGraph groups flavours with
    equal couplings into one matrix element, its ``SubProcesses`` directory: ``g u`` and
    ``g c``); None: its own.

    ``resonance_windows``: the resonances a decay chain forces on shell; an event of this
    subprocess passes its cuts only inside every window.

    ``forbidden_windows``: the resonances ``$`` forbids on shell
    (:class:`ForbiddenWindow`)."""

    pdgs: tuple[int, ...]
    colour_flows: tuple[tuple[tuple[int, int], ...], ...] = ()
    diagram_channels: tuple[int, ...] | None = None
    mirror: bool = False
    matrix_element: str | None = None
    resonance_windows: tuple[ResonanceWindow, ...] = ()
    forbidden_windows: tuple[ForbiddenWindow, ...] = ()

    @property
    def library_pdgs(self) -> tuple[int, ...]:
        """The PDG list the matrix-element library is called with."""
        if not self.mirror:
            return self.pdgs
        return (self.pdgs[1], self.pdgs[0], *self.pdgs[2:])

    def library_momenta(self, momenta: np.ndarray) -> np.ndarray:
        """Momenta ``(n, nparticles, 4)`` in the library's order of incoming partons."""
        if not self.mirror:
            return momenta
        return np.ascontiguousarray(momenta[:, [1, 0, *range(2, momenta.shape[1])]])


@dataclass(frozen=True)
class ProcessDefaults:
    """Run settings a card suggests: collider energy, scale choice, PDF set."""

    sqrt_s: float | None = None
    scale: float | None = None
    dynamical_scale_choice: int | None = None
    pdf: str | None = None


@dataclass(frozen=True)
class Process:
    """A process: what the integrand needs besides run settings."""

    name: str
    title: str
    card: Path
    library: Path
    beams: str
    param_card: Path
    subprocesses: tuple[Subprocess, ...]
    channels: tuple[Topology, ...]
    cuts: dict[str, float] = field(default_factory=dict)
    defaults: ProcessDefaults = ProcessDefaults()
    sherpa_run_dir: Path | None = None

    @property
    def hadronic(self) -> bool:
        return self.beams == "proton"

    @property
    def n_particles(self) -> int:
        return len(self.subprocesses[0].pdgs)

    def parameters(self) -> SLHA:
        """The param_card, read."""
        return read_slha(self.param_card)

    def final_masses(self) -> list[float]:
        """Final-state masses (GeV) from the param_card's MASS block."""
        card = self.parameters()
        return [card.mass(p) for p in self.subprocesses[0].pdgs[2:]]

    def matrix_element(self) -> MatrixElement:
        """Open the process library with its param_card (a Sherpa library with its run
        card's directory, :attr:`sherpa_run_dir`)."""
        if self.sherpa_run_dir is not None:
            return MatrixElement.from_sherpa(self.library, self.sherpa_run_dir)
        return MatrixElement.from_madgraph(self.library, self.param_card)


def _table(data: Mapping[str, Any], key: str, path: Path) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ProcessCardError(f"{path}: [{key}] must be a table")
    return value


def _read_card(path: Path) -> Process:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ProcessCardError(f"{path}: {err}") from err
    head = _table(data, "process", path)
    for key in ("name", "library", "beams"):
        if key not in head:
            raise ProcessCardError(f"{path}: [process] needs the field {key!r}")
    beams = str(head["beams"])
    if beams not in _BEAMS:
        raise ProcessCardError(f"{path}: [process] beams = {beams!r}; expected one of {_BEAMS}")
    library, sherpa_run_dir = _read_library(head, path)
    param_card = (path.parent / str(head.get("param_card", "param_card.dat"))).resolve()
    subs = [_read_subprocess(sub, i, path) for i, sub in enumerate(data.get("subprocess", []))]
    if not subs:
        raise ProcessCardError(f"{path}: no [[subprocess]] tables")
    if len({len(s.pdgs) for s in subs}) != 1:
        raise ProcessCardError(f"{path}: subprocesses with different multiplicities")
    channels = _read_channels(data, subs, path)
    cuts = {str(k): _number(v, f"[cuts] {k}", path)
            for k, v in _table(data, "cuts", path).items()}
    defaults = _read_defaults(data, path)
    return Process(name=str(head["name"]), title=str(head.get("title", head["name"])),
                   card=path, library=library, beams=beams, param_card=param_card,
                   subprocesses=tuple(subs), channels=tuple(channels), cuts=cuts,
                   defaults=defaults, sherpa_run_dir=sherpa_run_dir)


def _read_library(head: Mapping[str, Any], path: Path) -> tuple[Path, Path | None]:
    """The ``[process]`` library (a built-in name or a path next to the card) and the
    Sherpa run directory (``sherpa_run_card``, only with a library path)."""
    lib_field = str(head["library"])
    lib_is_path = "/" in lib_field or lib_field.endswith((".so", ".dylib"))
    sherpa_run_dir = None
    if "sherpa_run_card" in head:
        if not lib_is_path:
            raise ProcessCardError(f"{path}: [process] sherpa_run_card needs library = the "
                                   f"path of a Sherpa shim library (built by madnis_py."
                                   f"physics.shims.build_sherpa), not {lib_field!r}")
        sherpa_run_dir = (path.parent / str(head["sherpa_run_card"])).resolve()
    if lib_is_path:
        return (path.parent / lib_field).resolve(), sherpa_run_dir
    if lib_field not in builtin_processes():
        raise ProcessCardError(f"{path}: [process] library = {lib_field!r} is neither a "
                               f"built-in process ({', '.join(builtin_processes())}) nor a "
                               f"library path (with a '/' or ending in .so)")
    try:
        return builtin_library(lib_field), sherpa_run_dir
    except FileNotFoundError as err:  # a built-in whose library was never compiled
        raise ProcessCardError(f"{path}: [process] library = {lib_field!r}: {err}") from err


def _number(value: Any, field: str, path: Path) -> float:
    """A card value that must be a number (TOML int or float), or the error naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProcessCardError(f"{path}: {field} = {value!r} is not a number")
    return float(value)


def _read_subprocess(sub: Mapping[str, Any], i: int, path: Path) -> Subprocess:
    """The ``i``-th ``[[subprocess]]`` table, its fields checked."""
    try:
        pdgs = tuple(int(p) for p in sub["pdgs"])
        flows = tuple(tuple((int(c), int(a)) for c, a in flow)
                      for flow in sub.get("colour_flows", []))
        diagrams = (tuple(int(c) for c in sub["diagram_channels"])
                    if "diagram_channels" in sub else None)
        mirror = sub.get("mirror", False)
        if not isinstance(mirror, bool):
            raise TypeError(f"mirror = {mirror!r} is not true or false")
        matrix_element = sub.get("matrix_element")
        if matrix_element is not None and not isinstance(matrix_element, str):
            raise TypeError(f"matrix_element = {matrix_element!r} is not a string")
    except (KeyError, TypeError, ValueError) as err:
        raise ProcessCardError(f"{path}: [[subprocess]] #{i}: needs pdgs = [..] (ints), "
                               f"colour_flows of (colour, anticolour) pairs, "
                               f"diagram_channels of channel indices, mirror = "
                               f"true/false and matrix_element = \"name\": {err}") from err
    unknown_sub = set(sub) - {"pdgs", "colour_flows", "diagram_channels", "mirror",
                              "matrix_element", "resonance_windows", "forbidden_windows"}
    if unknown_sub:
        raise ProcessCardError(f"{path}: [[subprocess]] #{i}: unknown field(s) "
                               f"{sorted(unknown_sub)}")
    windows = _read_windows(sub.get("resonance_windows", []), f"[[subprocess]] #{i}", path)
    forbidden = _read_forbidden(sub.get("forbidden_windows", []), f"[[subprocess]] #{i}",
                                path)
    if len(pdgs) < 4:
        raise ProcessCardError(f"{path}: [[subprocess]] #{i}: a 2 -> n process has at "
                               f"least 4 particles, got pdgs {list(pdgs)}")
    if any(len(flow) != len(pdgs) for flow in flows):
        raise ProcessCardError(f"{path}: [[subprocess]] #{i}: every colour flow needs one "
                               f"(colour, anticolour) pair per particle ({len(pdgs)})")
    if any(max(w.legs) >= len(pdgs) for w in (*windows, *(f.window for f in forbidden))):
        raise ProcessCardError(f"{path}: [[subprocess]] #{i}: resonance_windows or "
                               f"forbidden_windows legs outside the final state "
                               f"2..{len(pdgs) - 1}")
    return Subprocess(pdgs, flows, diagrams, mirror, matrix_element, windows, forbidden)


def _read_forbidden(raw: Any, where: str, path: Path) -> tuple[ForbiddenWindow, ...]:
    """``forbidden_windows``: resonance windows with the ``diagrams`` that have them."""
    if not isinstance(raw, list) or not all(isinstance(t, Mapping) for t in raw):
        raise ProcessCardError(f"{path}: {where}: forbidden_windows must be a list of "
                               "tables { legs, mass, width, bwcutoff, diagrams, name }")
    out = []
    for j, table in enumerate(raw):
        label = f"{path}: {where}: forbidden_windows[{j}]"
        diagrams = table.get("diagrams")
        if not isinstance(diagrams, list) or not all(
                isinstance(d, int) and not isinstance(d, bool) for d in diagrams):
            raise ProcessCardError(f"{label}: diagrams = {diagrams!r} is not a list of "
                                   "integers")
        rest = {k: v for k, v in table.items() if k != "diagrams"}
        if "cut_products" in rest:
            raise ProcessCardError(f"{label}: unknown field(s) ['cut_products']")
        (window,) = _read_windows([rest], where, path, "forbidden_windows", j)
        try:
            out.append(ForbiddenWindow(window, tuple(diagrams)))
        except ValueError as err:
            raise ProcessCardError(f"{label}: {err}") from err
    return tuple(out)


def _read_windows(raw: Any, where: str, path: Path, key: str = "resonance_windows",
                  offset: int = 0) -> tuple[ResonanceWindow, ...]:
    """``resonance_windows``: a list of tables with legs, mass, width and optionally
    bwcutoff (default 15) and name (``key`` and ``offset``: what the messages call the
    list and its first table)."""
    fields = {"legs", "mass", "width", "bwcutoff", "name", "cut_products"}
    if not isinstance(raw, list):
        raise ProcessCardError(f"{path}: {where}: {key} must be a list of "
                               "tables { legs, mass, width, bwcutoff, name }")
    out = []
    for j, table in enumerate(raw, start=offset):
        label = f"{path}: {where}: {key}[{j}]"
        if not isinstance(table, Mapping) or not {"legs", "mass", "width"} <= set(table):
            raise ProcessCardError(f"{label}: needs legs, mass and width")
        unknown = set(table) - fields
        if unknown:
            raise ProcessCardError(f"{label}: unknown field(s) {sorted(unknown)}")
        legs = table["legs"]
        if not isinstance(legs, list) or not all(
                isinstance(leg, int) and not isinstance(leg, bool) for leg in legs):
            raise ProcessCardError(f"{label}: legs = {legs!r} is not a list of integers")
        try:
            out.append(ResonanceWindow(
                tuple(legs), _number(table["mass"], f"{where} mass", path),
                _number(table["width"], f"{where} width", path),
                _number(table.get("bwcutoff", 15.0), f"{where} bwcutoff", path),
                str(table.get("name", "")), table.get("cut_products", False)))
        except ValueError as err:
            raise ProcessCardError(f"{label}: {err}") from err
    return tuple(out)


def _read_channels(data: Mapping[str, Any], subs: Sequence[Subprocess],
                   path: Path) -> list[Topology]:
    """The ``[[channel]]`` topologies, with every subprocess's ``diagram_channels``
    checked against their number."""
    channels = []
    for i, ch in enumerate(data.get("channel", [])):
        try:
            channels.append(Topology.from_dict(ch, name=f"#{i}"))
        except TopologyError as err:
            raise ProcessCardError(f"{path}: [[channel]] #{i}: {err}") from err
    if not channels:
        raise ProcessCardError(f"{path}: no [[channel]] tables (one per diagram)")
    for i, sub in enumerate(subs):
        if sub.diagram_channels is not None and not all(
                -1 <= c < len(channels) for c in sub.diagram_channels):
            raise ProcessCardError(f"{path}: [[subprocess]] #{i}: diagram_channels "
                                   f"{list(sub.diagram_channels)} outside the "
                                   f"{len(channels)} channels")
        n_diagrams = (len(channels) if sub.diagram_channels is None
                      else len(sub.diagram_channels))
        for j, fw in enumerate(sub.forbidden_windows):
            if max(fw.diagrams) >= n_diagrams:
                raise ProcessCardError(f"{path}: [[subprocess]] #{i}: forbidden_windows[{j}] "
                                       f"diagrams {list(fw.diagrams)} outside its "
                                       f"{n_diagrams} diagrams")
    return channels


def _read_defaults(data: Mapping[str, Any], path: Path) -> ProcessDefaults:
    """The ``[defaults]`` table (collider energy, scale, PDF), unknown fields refused."""
    d = _table(data, "defaults", path)
    unknown = set(d) - {"sqrt_s", "scale", "dynamical_scale_choice", "pdf"}
    if unknown:
        raise ProcessCardError(f"{path}: [defaults] has unknown field(s) {sorted(unknown)}")
    choice = d.get("dynamical_scale_choice")
    if choice is not None and (isinstance(choice, bool) or not isinstance(choice, int)):
        raise ProcessCardError(f"{path}: [defaults] dynamical_scale_choice = {choice!r} is "
                               "not an integer")
    return ProcessDefaults(
        sqrt_s=_number(d["sqrt_s"], "[defaults] sqrt_s", path) if "sqrt_s" in d else None,
        scale=_number(d["scale"], "[defaults] scale", path) if "scale" in d else None,
        dynamical_scale_choice=choice,
        pdf=str(d["pdf"]) if "pdf" in d else None)


def looks_like_path(name_or_path: str | os.PathLike[str]) -> bool:
    """Whether a process argument is an explicit path under :func:`load_process`'s rule:
    a path object, or a string with a path separator (``/`` or ``\\``), ending in
    ``.toml``, or starting with ``.`` or ``~`` (``./ee_mumu``, ``~/procs/zz``)."""
    if not isinstance(name_or_path, str):
        return True
    s = name_or_path
    seps = [sep for sep in ("/", "\\", os.sep, os.altsep) if sep]
    return any(sep in s for sep in seps) or s.endswith(".toml") or s.startswith((".", "~"))


def builtin_name(name_or_path: str | os.PathLike[str]) -> str | None:
    """The built-in process that ``name_or_path`` names under :func:`load_process`'s
    rule, or None when it is to be read as a path."""
    if looks_like_path(name_or_path):
        return None
    assert isinstance(name_or_path, str)
    return name_or_path if name_or_path in builtin_processes() else None


def load_process(name_or_dir: str | os.PathLike[str]) -> Process:
    """A process: a built-in one by name (``"ee_mumu"``), or a directory or card file.

    The one rule for process names, used everywhere one is resolved (the command line, run
    cards, MadGraph run-card imports, Dask workers):

    1. An explicit path is a path: a path object, or a string containing a path
       separator, ending in ``.toml``, or starting with ``.`` or ``~`` (``./ee_mumu``,
       ``procs/zz``, ``zz/process.toml``). A directory means its ``process.toml``.
    2. Any other string is the built-in process of that name if there is one, even when
       the working directory has a file or directory of the same name (so
       ``madnis-py run ee_mumu`` after ``--output ee_mumu`` still runs the built-in; write
       ``./ee_mumu`` for the directory).
    3. Otherwise it is a directory or card relative to the working directory.

    Raises
    ------
    KeyError
        A bare name that is neither a built-in process nor an existing path (the message
        lists the built-in processes).
    FileNotFoundError
        An explicit path that does not exist, or a directory without ``process.toml``.
    ProcessCardError
        A card that cannot be used (names the file and field).
    """
    name = builtin_name(name_or_dir)
    if name is not None:
        card = builtin_process_dir(name) / "process.toml"
    else:
        p = Path(name_or_dir).expanduser()
        if p.is_dir():
            card = p / "process.toml"
        elif p.is_file():
            card = p
        elif not looks_like_path(name_or_dir):
            raise KeyError(f"no built-in process {name_or_dir!r} and no such directory; "
                           f"built-in: {builtin_processes()}")
        else:
            raise FileNotFoundError(f"process {name_or_dir}: no such directory or card")
    if not card.is_file():
        raise FileNotFoundError(f"{card}: no process card")
    return _read_card(card.resolve())
