"""Import a MadGraph 5 ``run_card.dat`` into a :class:`~madnis_py.cards.RunCard`.

A MadGraph run card is a list of ``value = name ! comment`` lines (``#`` starts a
comment line); names are case-insensitive. :func:`read_madgraph_run_card` reads the raw
fields, keeping each one's line for errors, and :func:`import_madgraph_run_card` maps
the fields madnis-py understands:

========================== ===============================================================
MadGraph field             madnis-py
========================== ===============================================================
``nevents``                ``[run] nevents``
``iseed``                  ``[run] seed``. MadGraph's 0 means "assigned automatically";
                           here it becomes seed 0, a fixed and reproducible seed.
``lpp1``, ``lpp2``         checked only: 1 (proton) or 0 (lepton, no PDF), equal, and,
                           when a process is given, matching its beams. Antiprotons
                           (-1), photons from protons (2) and lepton PDFs (+-3, +-4)
                           are errors.
``ebeam1``, ``ebeam2``     ``[collider] sqrt_s = ebeam1 + ebeam2`` (they must be equal)
``pdlabel``, ``lhaid``     ``[collider] lhaid`` with proton beams: ``lhaid`` when
                           ``pdlabel = lhapdf``, else the LHAPDF id of MadGraph's built-in
                           set (``nn23lo1`` is NNPDF23_lo_as_0130_qed, 247000, the id
                           MadGraph itself writes to the LHE file; the card's ``lhaid``
                           is then unused, by MadGraph as here). The physics layer
                           decides how to open the set (LHAPDF, or a grid on
                           ``LHAPDF_DATA_PATH``); the embedded toy set is ``pdf =
                           "LHToyPDF"``.
``fixed_ren_scale``,       both true: ``[scale] fixed = scale``, and ``dsqrt_q2fact1``
``fixed_fac_scale``,       and ``dsqrt_q2fact2`` must equal it (one scale for muR and
``scale``,                 muF); one fixed and the other not is an error. Both false:
``dsqrt_q2fact1/2``        the dynamical scale below.
``dynamical_scale_choice`` 1-4 as they are. MadGraph's default -1 (the scale of its CKKW
                           clustering) becomes 3, half the sum of the final-state
                           transverse masses (4, sqrt(s-hat), with lepton beams, where
                           the clustering ends there), with a note; 0 (user-defined) is
                           an error. Lepton beams run alpha_s(M_Z) of the param card to
                           the scale at two loops, as madevent does without PDFs.
cut names                  ``[cuts]``: every field whose name is in
                           :data:`madnis_py.phasespace.cuts.SUPPORTED_CUTS`, values that
                           mean "no cut" (``mmll = 0``, ``ptlmax = -1``) included.
``maxjetflavor``           ``[cuts] maxjetflavor`` where it is not 4 (MadGraph writes 5
                           when b quarks are in the proton: they are then cut as jets).
``sde_strategy``           ``[training] channel_prior``: 1 is ``"amplitudes"`` (the
                           channels' |M_i|^2), 2 is ``"propagators"`` (their propagator
                           denominators, which MadGraph writes for processes whose
                           diagrams cancel, such as vector-boson fusion); others are
                           errors.
========================== ===============================================================

Everything else is ignored and listed in :attr:`MadGraphRunCard.ignored`. The ignored
fields that change the physics when they differ from MadGraph's default (other cuts
such as ``ptllmin`` or ``pt_min_pdg``, ``scalefact``, ``xqcut``,
beam polarisation, ``custom_fcts``) and do differ are *unsupported*: the import refuses
them with one error naming each field, its value and its line, unless
``allow_unsupported=True`` (``--allow-unsupported`` on the command line), which imports
without them and lists them in :attr:`MadGraphRunCard.unsupported`.
The training, integration, unweighting and output settings are the run card defaults,
but for ``[training] subprocess_channels = "grouped"``: madevent's channels, one set per
matrix element (:mod:`madnis_py.physics.channels`).

An empty or truncated file is an error too, not a card of defaults: the import needs
every field of :data:`REQUIRED_FIELDS`, those MadGraph 3.5 writes into every LO
``run_card.dat`` whatever the process. The cut fields proper (``ptj``, ``ptl``, ``etaa``,
``drjj``, ``mmll``, ...) are *not* among them, because MadGraph writes only those of the
particle classes in the process's final state (its default card for p p > e+ e- has
``ptl`` but no ``ptj``, ``pta``, ``etaj`` or ``drjj``). The ``*_pdg`` cut dictionaries
are written for every process and lie between them, and ``maxjetflavor`` comes after
the last cut, so a card cut anywhere inside its cut section still misses a required
field. ``lhaid`` is not required: MadGraph only reads it with ``pdlabel = lhapdf``, and
then a missing ``lhaid`` is an error of its own.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from madnis_py.cards.run_card import (
    ColliderSettings,
    RunCard,
    RunCardError,
    RunCardNotFoundError,
    RunSettings,
    ScaleSettings,
    TrainingSettings,
)
from madnis_py.phasespace.cuts import SUPPORTED_CUTS
from madnis_py.physics.channels import ChannelPrior
from madnis_py.physics.process import Process

__all__ = [
    "MADGRAPH_PDF_IDS",
    "REQUIRED_FIELDS",
    "MadGraphFields",
    "MadGraphRunCard",
    "import_madgraph_run_card",
    "madgraph_decay_settings",
    "read_madgraph_run_card",
]

#: LHAPDF ids of MadGraph's built-in PDF labels (those MadGraph 3 still ships grids for),
#: as MadGraph writes them to the LHE ``<init>`` block.
MADGRAPH_PDF_IDS: dict[str, int] = {
    "cteq6_m": 10000,   # cteq6
    "cteq6_l": 10041,   # cteq6ll
    "cteq6l1": 10042,   # cteq6l1
    "nn23lo": 246800,   # NNPDF23_lo_as_0119_qed
    "nn23lo1": 247000,  # NNPDF23_lo_as_0130_qed
    "nn23nlo": 244800,  # NNPDF23_nlo_as_0119_qed
}

# Ignored fields that change the generated physics, with MadGraph 3.5's LO defaults:
# a value other than these is reported in MadGraphRunCard.unsupported.
_PHYSICS_DEFAULTS: dict[str, str] = {
    "polbeam1": "0", "polbeam2": "0", "scalefact": "1",
    "ickkw": "0", "xqcut": "0", "ktdurham": "-1", "custom_fcts": "",
    "dsqrt_shat": "0", "dsqrt_shatmax": "-1", "ptheavy": "0", "cutuse": "0",
    "ej": "0", "eb": "0", "ea": "0", "el": "0",
    "ejmax": "-1", "ebmax": "-1", "eamax": "-1", "elmax": "-1",
    "mmnl": "0", "mmnlmax": "-1", "ptllmin": "0", "ptllmax": "-1",
    "xptj": "0", "xptb": "0", "xpta": "0", "xptl": "0",
    "htjmin": "0", "htjmax": "-1", "ihtmin": "0", "ihtmax": "-1",
    "ht2min": "0", "ht3min": "0", "ht4min": "0",
    "ht2max": "-1", "ht3max": "-1", "ht4max": "-1",
    "ptgmin": "0", "xetamin": "0", "deltaeta": "0", "xmtcentral": "0",
    "pt_min_pdg": "{}", "pt_max_pdg": "{}", "eta_min_pdg": "{}", "eta_max_pdg": "{}",
    "e_min_pdg": "{}", "e_max_pdg": "{}", "mxx_min_pdg": "{}",
    **{f"pt{p}{i}min": "0" for p in "jl" for i in range(1, 5)},
    **{f"pt{p}{i}max": "-1" for p in "jl" for i in range(1, 5)},
}

#: The fields every MadGraph 3.5 LO run_card.dat has, whatever the process, in the
#: card's order: without one of them the card is not complete (empty or truncated) and
#: the import is an error rather than a card of defaults. See the module docstring for
#: why the process-dependent cuts (ptj, ptl, ...) and lhaid are not among them.
REQUIRED_FIELDS: tuple[str, ...] = (
    "nevents", "iseed", "lpp1", "lpp2", "ebeam1", "ebeam2", "pdlabel",
    "fixed_ren_scale", "fixed_fac_scale", "scale", "dsqrt_q2fact1", "dsqrt_q2fact2",
    "dynamical_scale_choice", "scalefact", "dsqrt_shat", "bwcutoff",
    "pt_min_pdg", "pt_max_pdg", "eta_min_pdg", "eta_max_pdg", "mxx_min_pdg",
    "maxjetflavor",
)

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class MadGraphFields(dict[str, str]):
    """The raw fields of a MadGraph run card: lower-case name to value text.

    Attributes
    ----------
    path : Path
        The file, named in errors.
    lines : dict of str to int
        The line of each field.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.lines: dict[str, int] = {}

    def error(self, name: str, message: str) -> RunCardError:
        """An error about a field: ``<file>:<line>: name: message``."""
        line = self.lines.get(name)
        where = f"{self.path}" if line is None else f"{self.path}:{line}"
        return RunCardError(f"{where}: {name}: {message}")


def read_madgraph_run_card(path: str | os.PathLike[str]) -> MadGraphFields:
    """The ``value = name ! comment`` fields of a MadGraph run card.

    Lines that are blank or comments (``#`` first, or only a ``!`` comment) are skipped;
    the value is everything left of the last ``=`` before the comment, stripped.

    Raises
    ------
    RunCardNotFoundError
        No such file.
    RunCardError
        A line without ``=``, a field name that is not a name, or a field given twice,
        naming the file and line.
    """
    p = Path(path)
    if not p.is_file():
        raise RunCardNotFoundError(f"{p}: no such MadGraph run card")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        text = p.read_text(encoding="latin-1")
    out = MadGraphFields(p)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("!", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise RunCardError(f"{p}:{number}: expected 'value = name', got {line!r}")
        value, name = (part.strip() for part in line.rsplit("=", 1))
        if not _NAME.fullmatch(name):
            raise RunCardError(f"{p}:{number}: {name!r} is not a field name (expected "
                               "'value = name ! comment')")
        key = name.lower()
        if key in out:
            raise RunCardError(f"{p}:{number}: {key}: given twice (first at line "
                               f"{out.lines[key]}; expected each field once)")
        out[key] = value
        out.lines[key] = number
    return out


@dataclass(frozen=True)
class MadGraphRunCard(RunCard):
    """A :class:`RunCard` imported from MadGraph, with what the import left out.

    Attributes
    ----------
    ignored : tuple of str
        Every field that was not mapped, in the card's order.
    unsupported : tuple of str
        The ignored fields that change the physics and differ from MadGraph's default
        (only ever non-empty when imported with ``allow_unsupported=True``).
    notes : tuple of str
        Choices the import made (such as ``dynamical_scale_choice = -1`` becoming 3).

    Comparisons ignore these three, but not the class: compare :attr:`card` (the plain
    :class:`RunCard`) with a card read from TOML.
    """

    ignored: tuple[str, ...] = field(default=(), compare=False)
    unsupported: tuple[str, ...] = field(default=(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    def as_run_card(self) -> RunCard:
        """The plain :class:`RunCard`."""
        return RunCard(**{f.name: getattr(self, f.name) for f in fields(RunCard)})

    @property
    def card(self) -> RunCard:
        """The plain :class:`RunCard` (same as :meth:`as_run_card`)."""
        return self.as_run_card()


# ---------------------------------------------------------------- field parsers

def _float(fields_: MadGraphFields, name: str) -> float:
    text = fields_[name]
    for candidate in (text, text.lower().replace("d", "e")):
        try:
            value = float(candidate)
        except ValueError:
            continue
        if math.isfinite(value):
            return value
    raise fields_.error(name, f"{text!r} is not a number (expected a real number, "
                        "Fortran 1d3 exponents allowed)")


def _int(fields_: MadGraphFields, name: str) -> int:
    value = _float(fields_, name)
    if not value.is_integer():
        raise fields_.error(name, f"{fields_[name]!r} is not an integer (expected an "
                            "integer)")
    return int(value)


def _bool(fields_: MadGraphFields, name: str, default: bool) -> bool:
    if name not in fields_:
        return default
    text = fields_[name].strip().lower().strip(".")
    if text in ("t", "true", "1", "on", "yes", "y"):
        return True
    if text in ("f", "false", "0", "off", "no", "n"):
        return False
    raise fields_.error(name, f"{fields_[name]!r} is not a boolean (expected True or False, "
                        "T or F, .true. or .false.)")


def madgraph_decay_settings(path: str | os.PathLike[str]) -> tuple[float, bool]:
    """``bwcutoff`` (the half-width of a decay chain's on-shell windows, in widths) and
    ``cut_decays`` (whether the cuts apply to the decay products) of a MadGraph run
    card; MadGraph's defaults, 15 and False, where the card lacks them.

    Raises
    ------
    RunCardError
        A value that is not a positive number or not a boolean, naming file and line.
    """
    f = read_madgraph_run_card(path)
    bwcutoff = _float(f, "bwcutoff") if "bwcutoff" in f else 15.0
    if not bwcutoff > 0:
        raise f.error("bwcutoff", f"{f['bwcutoff']!r} is not a positive number")
    return bwcutoff, _bool(f, "cut_decays", False)


def _same(value: str, default: str) -> bool:
    try:
        return float(value.lower().replace("d", "e")) == float(default)
    except ValueError:
        return re.sub(r"\s+", "", value.lower()) == re.sub(r"\s+", "", default.lower())


_LPP = {1: "proton", 0: "lepton (no PDF)", -1: "antiproton", 2: "photon from a proton",
        3: "electron PDF", -3: "positron PDF", 4: "muon PDF", -4: "antimuon PDF"}


def _beams(f: MadGraphFields, process: Process | None) -> bool | None:
    """Whether the beams are protons (``None``: the card does not say)."""
    lpp: dict[str, int] = {}
    for name in ("lpp1", "lpp2"):
        if name not in f:
            continue
        value = _int(f, name)
        if value not in (0, 1):
            what = _LPP.get(value, "unknown")
            raise f.error(name, f"{value} ({what}) is not supported (expected 1, proton, "
                          "or 0, a lepton without PDF)")
        lpp[name] = value
    if len(set(lpp.values())) > 1:
        raise f.error("lpp2", f"{lpp['lpp2']} differs from lpp1 = {lpp['lpp1']} (expected "
                      "two proton or two lepton beams)")
    if not lpp:
        return None if process is None else process.hadronic
    name, value = next(iter(lpp.items()))
    if process is not None and process.hadronic != (value == 1):
        raise f.error(name, f"{value} ({_LPP[value]}) but process {process.name} has "
                      f"{process.beams} beams (expected {1 if process.hadronic else 0})")
    return value == 1


def _sqrt_s(f: MadGraphFields) -> float | None:
    given = [n for n in ("ebeam1", "ebeam2") if n in f]
    if not given:
        return None
    if len(given) == 1:
        missing = "ebeam2" if given[0] == "ebeam1" else "ebeam1"
        raise f.error(given[0], f"given without {missing} (expected both beam energies)")
    e1, e2 = _float(f, "ebeam1"), _float(f, "ebeam2")
    for name, value in (("ebeam1", e1), ("ebeam2", e2)):
        if value <= 0:
            raise f.error(name, f"{value} is out of range (expected a beam energy > 0 GeV)")
    if e1 != e2:
        raise f.error("ebeam2", f"{e2} differs from ebeam1 = {e1} (expected symmetric "
                      "beams)")
    return e1 + e2


def _lhaid(f: MadGraphFields, proton: bool | None, used: set[str]) -> int | None:
    if proton is False or "pdlabel" not in f:
        return None
    used.add("pdlabel")
    label = f["pdlabel"].strip().lower()
    if label == "lhapdf":
        if "lhaid" not in f:
            raise f.error("pdlabel", "lhapdf needs an lhaid field (expected "
                          "'<id> = lhaid')")
        used.add("lhaid")
        lhaid = _int(f, "lhaid")
        if lhaid < 0:
            raise f.error("lhaid", f"{lhaid} is out of range (expected an LHAPDF id >= 0)")
        return lhaid
    if label in MADGRAPH_PDF_IDS:
        return MADGRAPH_PDF_IDS[label]
    if label == "none":
        if proton:
            raise f.error("pdlabel", "none means no PDF, but the beams are protons "
                          "(expected a PDF set with lpp1 = lpp2 = 1)")
        return None
    known = ", ".join(["lhapdf", *MADGRAPH_PDF_IDS])
    raise f.error("pdlabel", f"{f['pdlabel']!r} has no LHAPDF id known to madnis-py "
                  f"(expected one of {known})")


def _scale(f: MadGraphFields, used: set[str], notes: list[str],
           proton: bool | None = None) -> ScaleSettings:
    ren = _bool(f, "fixed_ren_scale", False)
    fac = _bool(f, "fixed_fac_scale", False)
    used.update(n for n in ("fixed_ren_scale", "fixed_fac_scale") if n in f)
    if ren != fac:
        raise f.error("fixed_fac_scale", f"{f.get('fixed_fac_scale', 'False')} but "
                      f"fixed_ren_scale = {f.get('fixed_ren_scale', 'False')} (expected both "
                      "fixed or both dynamical: madnis-py uses one scale for muR and muF)")
    if ren:
        scale = _float(f, "scale") if "scale" in f else 91.188
        if scale <= 0:
            raise f.error("scale", f"{scale} is out of range (expected a scale > 0 GeV)")
        for name in ("scale", "dsqrt_q2fact1", "dsqrt_q2fact2"):
            if name not in f:
                continue
            used.add(name)
            value = _float(f, name)
            if value != scale:
                raise f.error(name, f"{value} differs from scale = {scale} (expected "
                              "muF = muR: madnis-py uses one fixed scale)")
        return ScaleSettings(fixed=scale)
    choice = _int(f, "dynamical_scale_choice") if "dynamical_scale_choice" in f else -1
    if "dynamical_scale_choice" in f:
        used.add("dynamical_scale_choice")
    if choice == -1 and proton is False:
        # madevent's clustering ends at the 2 -> 2 core, whose scale with lepton beams is
        # the collision energy (every event of e+ e- > j j g at 1 TeV has scale 1000)
        notes.append("dynamical_scale_choice = -1 (MadGraph's CKKW clustering scale) "
                     "became 4 (sqrt(s-hat), what madevent's clustering gives with lepton "
                     "beams)")
        choice = 4
    elif choice == -1:
        notes.append("dynamical_scale_choice = -1 (MadGraph's CKKW clustering scale) "
                     "became 3 (half the sum of the final-state transverse masses)")
        choice = 3
    elif choice not in (1, 2, 3, 4):
        why = ("is MadGraph's user-defined scale (setscales.f), which madnis-py cannot "
               "read" if choice == 0 else "is not a MadGraph scale choice")
        raise f.error("dynamical_scale_choice", f"{choice} {why} (expected -1, 1, 2, 3 "
                      "or 4)")
    return ScaleSettings(dynamical_scale_choice=choice)


def _process(process: str | os.PathLike[str] | Process | None) -> tuple[
        str | Path | None, Process | None]:
    """The card's process entry (a built-in name or a path) and the process."""
    from madnis_py.physics.builtin import builtin_process_dir, builtin_processes
    from madnis_py.physics.process import builtin_name, load_process

    if process is None:
        return None, None
    if isinstance(process, Process):
        loaded = process
    elif isinstance(process, str) and builtin_name(process) is not None:
        return process, load_process(process)
    else:
        loaded = load_process(Path(process))
    name = loaded.name
    if name in builtin_processes() and builtin_process_dir(name).resolve() == \
            loaded.card.resolve().parent:
        return name, loaded
    return loaded.card.resolve().parent, loaded


#: Fields MadGraph 3.5 writes per beam (``pdlabel1``/``pdlabel2``, ...) where older
#: cards have one; madnis-py needs them equal and reads them as the one field.
_PER_BEAM = ("pdlabel", "fixed_fac_scale")


def _merge_per_beam(f: MadGraphFields) -> None:
    """``pdlabel1``/``pdlabel2`` (MadGraph 3.5's cards) as ``pdlabel``, and so on."""
    for name in _PER_BEAM:
        first, second = f"{name}1", f"{name}2"
        if name in f or first not in f or second not in f:
            continue
        if f[first].strip().lower() != f[second].strip().lower():
            raise f.error(second, f"{f[second]!r} differs from {first} = {f[first]!r} "
                          "(expected the same for both beams)")
        f[name] = f[first]
        f.lines[name] = f.lines[first]
        del f[first], f[second]


def _check_complete(f: MadGraphFields) -> None:
    """One error listing every missing field of :data:`REQUIRED_FIELDS`."""
    missing = [name for name in REQUIRED_FIELDS if name not in f]
    if not missing:
        return
    if f.lines:
        last = max(f.lines, key=lambda name: f.lines[name])
        seen = f"its last field is {last} at line {f.lines[last]}"
    else:
        seen = "it has no 'value = name' line at all"
    raise RunCardError(f"{f.path}: not a complete MadGraph run card: missing "
                       f"{', '.join(missing)} (empty or truncated? {seen}; expected every "
                       "field MadGraph writes into a run_card.dat)")


def _refuse_unsupported(f: MadGraphFields, unsupported: Sequence[str]) -> None:
    """One error naming every unsupported field with its value and line."""
    if not unsupported:
        return
    how = ("madnis-py cannot reproduce them: set them to MadGraph's default, or pass "
           "--allow-unsupported (allow_unsupported=True) to run without them")
    if len(unsupported) == 1:
        name = unsupported[0]
        raise f.error(name, f"{f[name]!r} is not supported (MadGraph's default is "
                      f"{_PHYSICS_DEFAULTS[name]!r}; {how.replace('them', 'it')})")
    listed = ", ".join(f"{name} = {f[name]!r} (line {f.lines[name]}, default "
                       f"{_PHYSICS_DEFAULTS[name]!r})" for name in unsupported)
    raise RunCardError(f"{f.path}: {len(unsupported)} unsupported fields that change the "
                       f"physics: {listed} ({how})")


# ---------------------------------------------------------------------- import

def import_madgraph_run_card(path: str | os.PathLike[str], *,
                             process: str | os.PathLike[str] | Process | None = None,
                             output: str | os.PathLike[str] | None = None,
                             allow_unsupported: bool = False) -> MadGraphRunCard:
    """A run card from a MadGraph ``run_card.dat`` (see the module docstring).

    Parameters
    ----------
    path : str or path
        The MadGraph run card.
    process : str, path or Process, optional
        The process (a MadGraph run card does not name it): a built-in name, a process
        directory or card, or a loaded :class:`~madnis_py.physics.process.Process`. With
        it the beams are checked against the card's ``lpp1``/``lpp2``; without it the
        result has ``run.process = None`` and must be completed before it can run.
    output : str or path, optional
        The output directory (default ``"<process>_run"`` in the working directory).
    allow_unsupported : bool
        Import a card whose unsupported fields (see the module docstring) differ from
        MadGraph's defaults, without them; they are listed in
        :attr:`MadGraphRunCard.unsupported`. Default: refuse such a card.

    Returns
    -------
    MadGraphRunCard
        A :class:`RunCard` with the lists of ignored and unsupported fields.

    Raises
    ------
    RunCardError
        An empty or truncated card (the missing fields of :data:`REQUIRED_FIELDS`, all
        in one message); an unreadable line or value, or a setting madnis-py cannot
        reproduce, naming the file, the line and the field; unsupported fields that
        differ from MadGraph's defaults, each with its value and line, unless
        ``allow_unsupported``.
    """
    f = read_madgraph_run_card(path)
    _merge_per_beam(f)
    _check_complete(f)
    entry, loaded = _process(process)
    used: set[str] = set()
    notes: list[str] = []

    seed = 1
    if "iseed" in f:
        seed = _int(f, "iseed")
        if seed < 0:
            raise f.error("iseed", f"{seed} is out of range (expected a seed >= 0)")
        if seed == 0:
            notes.append("iseed = 0 (MadGraph: assigned automatically) became the fixed "
                         "seed 0")
    nevents = 10_000
    if "nevents" in f:
        nevents = _int(f, "nevents")
        if nevents < 0:
            raise f.error("nevents", f"{nevents} is out of range (expected an integer "
                          ">= 0)")
    used.update(n for n in ("iseed", "nevents", "lpp1", "lpp2", "ebeam1", "ebeam2")
                if n in f)
    proton = _beams(f, loaded)
    sqrt_s = _sqrt_s(f)
    lhaid = _lhaid(f, proton, used)
    scale = _scale(f, used, notes, proton)

    cuts = {name: _float(f, name) for name in f if name in SUPPORTED_CUTS}
    used.update(cuts)
    if "maxjetflavor" in f:
        used.add("maxjetflavor")
        flavour = _int(f, "maxjetflavor")
        if not 0 <= flavour <= 6:
            raise f.error("maxjetflavor", f"{flavour} is out of range (expected 0..6)")
        if flavour != 4:  # MadGraph's default, the cuts' too
            cuts["maxjetflavor"] = float(flavour)
    if loaded is not None:
        for name, value in loaded.cuts.items():
            if cuts.get(name, value) != value:
                notes.append(f"{name} = {cuts[name]:g} replaces the process card's "
                             f"{value:g}")

    prior: ChannelPrior = "amplitudes"
    if "sde_strategy" in f:
        used.add("sde_strategy")
        strategy = _int(f, "sde_strategy")
        if strategy not in (1, 2):
            raise f.error("sde_strategy", f"{strategy} is not supported (expected 1, the "
                          "diagrams' |M_i|^2, or 2, the propagator denominators)")
        prior = "amplitudes" if strategy == 1 else "propagators"

    stem = "madnis" if loaded is None else loaded.name
    out_dir = Path(output) if output is not None else Path(f"{stem}_run")
    ignored = tuple(name for name in f if name not in used)
    unsupported = tuple(name for name in ignored if name in _PHYSICS_DEFAULTS
                        and not _same(f[name], _PHYSICS_DEFAULTS[name]))
    if not allow_unsupported:
        _refuse_unsupported(f, unsupported)
    return MadGraphRunCard(
        run=RunSettings(process=entry, seed=seed, nevents=nevents,
                        output=out_dir.expanduser().resolve()),
        collider=ColliderSettings(sqrt_s=sqrt_s, lhaid=lhaid),
        scale=scale,
        cuts=cuts,
        training=TrainingSettings(subprocess_channels="grouped",
                                  channel_prior=prior),
        source=f.path.resolve(),
        ignored=ignored, unsupported=unsupported, notes=tuple(notes))
