"""Les Houches Event files: write them, check them line by line, read them back.

The format is the Les Houches accord on event files (hep-ph/0609017) in its version 3.0
(arXiv:1405.1067): a ``<LesHouchesEvents version="3.0">`` root, an optional ``<header>``,
an ``<init>`` block (beams, PDFs, weighting strategy, one line per process) and one
``<event>`` block per event (one line for the event, one line of 13 fields per particle).
Both XML parsers (pylhe) and line-based readers (Pythia 8) read such
files, so the writer keeps to what both accept: every record on its own line, tags alone on
their lines, and header text escaped so that no line of it looks like a tag.

Momenta and weights are printed with ``digits`` significant digits (default 17, which gives
back every float64 exactly; MadGraph prints 11). Eleven digits already keep momentum
conservation at a 6.5 TeV beam to about 1e-10 relative; 17 also keep the invariant masses
recomputed from the printed momenta as good as those of the generator.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import re
import secrets
import shutil
import weakref
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from pathlib import Path
from types import TracebackType
from typing import IO, cast
from xml.sax.saxutils import escape, quoteattr, unescape

import numpy as np
import numpy.typing as npt

from madnis_py._core import ext
from madnis_py.events.banner import Banner

__all__ = [
    "LHEError",
    "LHEEvent",
    "LHEInit",
    "LHEParticle",
    "LHEProcessInfo",
    "LHESummary",
    "LHEWriter",
    "check_lhe",
    "idwtup_for",
    "idwtup_of_parts",
    "read_lhe",
]

#: ISTUP values of the accord: incoming, outgoing, intermediate space-like, resonance,
#: documentation-only intermediate, incoming beam.
STATUS_CODES = frozenset({-1, 1, -2, 2, 3, -9})
#: IDWTUP values: the four weighting strategies, each with either sign.
WEIGHTING_STRATEGIES = frozenset({-4, -3, -2, -1, 1, 2, 3, 4})

_INIT_FIELDS = "IDBMUP(1) IDBMUP(2) EBMUP(1) EBMUP(2) PDFGUP(1) PDFGUP(2) PDFSUP(1) " \
               "PDFSUP(2) IDWTUP NPRUP"
_PROCESS_FIELDS = "XSECUP XERRUP XMAXUP LPRUP"
_EVENT_FIELDS = "NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP"
_PARTICLE_NAMES = ("IDUP", "ISTUP", "MOTHUP(1)", "MOTHUP(2)", "ICOLUP(1)", "ICOLUP(2)", "PUP(1)",
                   "PUP(2)", "PUP(3)", "PUP(4)", "PUP(5)", "VTIMUP", "SPINUP")
_INTEGER_NAMES = frozenset(_PARTICLE_NAMES[:6])
_PARTICLE_FIELDS = " ".join(_PARTICLE_NAMES)

_MIN_DIGITS, _MAX_DIGITS = 11, 17
# Events per formatting call in write_batch: bounds the size of the text built at once
# (about 1 kB per event of 5 particles).
_CHUNK = 4096


# --------------------------------------------------------------------------- formats


def _check_digits(digits: int) -> int:
    if int(digits) != digits or not _MIN_DIGITS <= digits <= _MAX_DIGITS:
        raise ValueError(f"digits must be an integer from {_MIN_DIGITS} (MadGraph's precision) "
                         f"to {_MAX_DIGITS} (exact float64), got {digits}")
    return int(digits)


@cache
def _line_formats(digits: int) -> tuple[str, str, str, str]:
    """%-formats of the init, process, event and particle lines (each ending in a newline)."""
    p = digits - 1
    e, se = f"%.{p}e", f"%+.{p}e"
    init = f"%d %d {e} {e} %d %d %d %d %d %d\n"
    process = f"{e} {e} {e} %d\n"
    event = f" %d %d {se} {e} {e} {e}\n"
    # MadGraph's column widths for the integers, so that files read well in a pager.
    particle = f" %8d %2d %4d %4d %4d %4d {se} {se} {se} {e} {e} %.4e %.4e\n"
    return init, process, event, particle


@lru_cache(maxsize=64)
def _event_format(nup: int, digits: int) -> str:
    """%-format of a whole ``<event>`` block with ``nup`` particles."""
    _, _, event, particle = _line_formats(digits)
    return "<event>\n" + event + particle * nup + "</event>\n"


# --------------------------------------------------------------------------- records


@dataclass
class LHEProcessInfo:
    """One process line of ``<init>``: cross section and its error (pb), the largest
    event weight, and the process id ``LPRUP`` that events refer to as ``IDPRUP``."""

    xsecup: float
    xerrup: float
    xmaxup: float
    lprup: int

    def to_lhe(self, *, digits: int = 17) -> str:
        """The process line."""
        return _line_formats(_check_digits(digits))[1] % (
            self.xsecup, self.xerrup, self.xmaxup, self.lprup)


@dataclass
class LHEInit:
    """The ``<init>`` block: beams, PDFs, weighting strategy and processes.

    Attributes
    ----------
    idbmup
        PDG ids of the two beams (2212 2212 for protons, -11 11 for e+ e-).
    ebmup
        Beam energies in GeV.
    idwtup
        Weighting strategy, one of +-1..+-4 (3: unweighted events; 4: weighted events whose
        weights average to the cross section; negative: weights may be negative).
    processes
        One :class:`LHEProcessInfo` per process (``NPRUP`` of them, at least one).
    pdfgup, pdfsup
        PDF author group and set of each beam. MadGraph writes ``0 0`` for the group and
        the LHAPDF id for the set when it uses LHAPDF, and ``0 0`` / ``0 0`` for lepton
        beams (no PDF), the default here.
    comments
        Text of ``#`` comment lines written after the process lines and the ``extra``
        tags (madnis_py names the subprocess of each LPRUP there); read back by
        :func:`read_lhe`.
    """

    idbmup: tuple[int, int]
    ebmup: tuple[float, float]
    idwtup: int
    processes: list[LHEProcessInfo]
    pdfgup: tuple[int, int] = field(default=(0, 0), kw_only=True)
    pdfsup: tuple[int, int] = field(default=(0, 0), kw_only=True)
    comments: tuple[str, ...] = field(default=(), kw_only=True)

    @property
    def xsecup(self) -> list[float]:
        return [p.xsecup for p in self.processes]

    def validate(self) -> None:
        """ValueError naming the first field that breaks the accord."""
        for name in ("idbmup", "ebmup", "pdfgup", "pdfsup"):
            if len(getattr(self, name)) != 2:
                raise ValueError(f"LHEInit.{name} must be a pair (one per beam), got "
                                 f"{getattr(self, name)!r}")
        if not all(np.isfinite(e) and e > 0 for e in self.ebmup):
            raise ValueError(f"LHEInit.ebmup must be positive beam energies in GeV, got "
                             f"{self.ebmup!r}")
        if self.idwtup not in WEIGHTING_STRATEGIES:
            raise ValueError(f"LHEInit.idwtup must be one of +-1, +-2, +-3, +-4, got "
                             f"{self.idwtup!r}")
        if not self.processes:
            raise ValueError("LHEInit.processes is empty: the accord needs NPRUP >= 1 "
                             "process lines")
        lprups = [p.lprup for p in self.processes]
        if len(set(lprups)) != len(lprups):
            raise ValueError(f"LHEInit.processes has repeated LPRUP ids: {lprups}")
        for i, p in enumerate(self.processes):
            if not all(np.isfinite(v) for v in (p.xsecup, p.xerrup, p.xmaxup)):
                raise ValueError(f"LHEInit.processes[{i}] has a non-finite cross section, "
                                 f"error or maximum weight: {p}")
        for i, c in enumerate(self.comments):
            if "\n" in c or "\r" in c:
                raise ValueError(f"LHEInit.comments[{i}] must be one line, got {c!r}")

    def to_lhe(self, *, digits: int = 17, extra: Sequence[str] = ()) -> str:
        """The ``<init>`` block; ``extra`` lines (LHEF v3 tags such as ``<generator>``)
        go after the process lines, where line-based readers skip them, and the
        :attr:`comments` after those (after a tag, XML readers such as pylhe do not take
        them for process lines)."""
        self.validate()
        fmt = _line_formats(_check_digits(digits))[0]
        head = fmt % (*self.idbmup, *self.ebmup, *self.pdfgup, *self.pdfsup, self.idwtup,
                      len(self.processes))
        lines = [p.to_lhe(digits=digits) for p in self.processes]
        tags = "".join(line.rstrip("\n") + "\n" for line in extra)
        notes = "".join(f"# {_escape_text(c)}\n" for c in self.comments)
        return "<init>\n" + head + "".join(lines) + tags + notes + "</init>\n"


@dataclass(slots=True)
class LHEParticle:
    """One particle line of an event.

    ``mothup`` are 1-based positions of the mothers in the event (0: none), ``icolup`` the
    colour and anticolour tags (0: none; MadGraph numbers them from 501), momenta and mass
    in GeV, ``vtimup`` the proper lifetime c*tau in mm, ``spinup`` the helicity (9: unknown
    or unpolarised).
    """

    idup: int
    istup: int
    mothup: tuple[int, int]
    icolup: tuple[int, int]
    px: float
    py: float
    pz: float
    e: float
    m: float
    vtimup: float = 0.0
    spinup: float = 9.0

    @property
    def p4(self) -> tuple[float, float, float, float]:
        """Four-momentum in the package's order (E, px, py, pz)."""
        return (self.e, self.px, self.py, self.pz)

    def values(self) -> tuple[int | float, ...]:
        """The 13 fields in the order of the particle line."""
        return (self.idup, self.istup, *self.mothup, *self.icolup, self.px, self.py, self.pz,
                self.e, self.m, self.vtimup, self.spinup)

    def to_lhe(self, *, digits: int = 17) -> str:
        """The particle line."""
        return _line_formats(_check_digits(digits))[3] % self.values()


@dataclass
class LHEEvent:
    """One event: process id, weight (pb), scale (GeV), couplings and particles."""

    idprup: int
    xwgtup: float
    scalup: float
    aqedup: float
    aqcdup: float
    particles: list[LHEParticle]

    @property
    def nup(self) -> int:
        return len(self.particles)

    def momenta(self) -> npt.NDArray[np.float64]:
        """Momenta as an ``(nup, 4)`` array of (E, px, py, pz)."""
        return np.array([p.p4 for p in self.particles], dtype=np.float64).reshape(-1, 4)

    def to_lhe(self, *, digits: int = 17) -> str:
        """The ``<event>`` block, character for character what :class:`LHEWriter` writes."""
        values: list[int | float] = [self.nup, self.idprup, self.xwgtup, self.scalup,
                                     self.aqedup, self.aqcdup]
        for p in self.particles:
            values.extend(p.values())
        return _event_format(self.nup, _check_digits(digits)) % tuple(values)


# --------------------------------------------------------------------------- writer


def idwtup_for(requested: int, w_min: float, w_max: float, abs_min: float,
               abs_max: float) -> int:
    """The IDWTUP to write for events whose weights span ``w_min .. w_max`` (magnitudes
    ``abs_min .. abs_max``) when ``requested`` was asked for.

    +-3 says that all events have one weight (up to sign), +-4 that they are weighted
    with a mean equal to the cross section; the negative sign that weights may be
    negative. A requested +-3 for weights that differ in magnitude becomes +-4, and a
    positive strategy for negative weights the negative one; +-1 and +-2 (weights
    relative to the process's XMAXUP, which the writer cannot check) and strategies
    that fit are kept.
    """
    out = requested
    if abs(out) == 3 and abs_max > abs_min:
        out = 4 if out > 0 else -4
    if out > 0 and w_min < 0:
        out = -out
    return out


def idwtup_of_parts(init: LHEInit, parts: Sequence[str | os.PathLike[str]]) -> LHEInit:
    """``init`` with the IDWTUP of a file made of the events of ``parts``.

    ``parts`` are LHE files written by :class:`LHEWriter` with at least one event each,
    so each one's IDWTUP already follows its own weights (only their heads are read): one
    weighted part, or unit-weight parts of different weights (their XMAXUP), make the
    whole weighted; one part with negative weights makes the strategy negative.
    """
    out = init.idwtup
    magnitudes: set[float] = set()
    for part in parts:
        records = _records(Path(part))
        try:
            head = next(records)
        finally:
            records.close()
        assert isinstance(head, LHEInit)
        if abs(head.idwtup) == 4 and abs(out) == 3:
            out = 4 if out > 0 else -4
        if head.idwtup < 0 < out:
            out = -out
        if abs(head.idwtup) == 3:
            magnitudes.update(abs(p.xmaxup) for p in head.processes)
    if abs(out) == 3 and len(magnitudes) > 1:
        out = 4 if out > 0 else -4
    return replace(init, idwtup=out)


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("madnis_py")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return ""


def _escape_text(text: str) -> str:
    """XML-escape what a parser would take for markup (``&``, ``<``); a lone ``>`` is
    legal text and stays readable."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


def _header_block(header: str | Banner | None) -> str:
    if header is None:
        return ""
    if isinstance(header, Banner):
        return header.to_lhe()
    # Escaped rather than wrapped in CDATA: XML parsers give the text back unchanged,
    # and no line of a card can look like </header> or <init> to a line-based reader.
    text = escape(header.strip("\n"))
    return f"<header>\n<MadNISRunCard>\n{text}\n</MadNISRunCard>\n</header>\n"


def _broadcast(name: str, value: npt.ArrayLike, shape: tuple[int, ...], what: str, *,
               integer: bool) -> npt.NDArray[np.float64]:
    """``value`` broadcast to ``shape`` as float64 (integers are exact in float64, and one
    dtype lets a whole event be formatted in one call); ValueError naming ``name``."""
    try:
        arr = np.asarray(value)
        out = np.broadcast_to(arr, shape).astype(np.float64)
    except ValueError:
        raise ValueError(f"{name} has shape {np.shape(value)}, expected {what} = {shape} or "
                         f"a shape that broadcasts to it") from None
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has non-finite entries")
    if integer and not (np.issubdtype(arr.dtype, np.integer) or (out == np.rint(out)).all()):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype} with fractional "
                         f"entries")
    return out


class LHEWriter:
    """Write an LHE file, all at once at the end so that a failed run leaves no file.

    Events are streamed to a temporary file next to ``path``; :meth:`close` (or leaving
    the ``with`` block normally) writes the final file, ``<LesHouchesEvents>``, header,
    ``<init>``, events, under another temporary name and renames it onto ``path`` in one
    step. An exception inside the ``with`` block, or :meth:`abort`, removes the temporary
    files and leaves ``path`` as it was (absent, or the old file). Because the file is put
    together at the end, the ``<init>`` block, whose cross sections are usually only known
    once all events are generated, may be given at construction, with :meth:`set_init`, or
    as ``close(init=...)``.

    IDWTUP follows the weights written: an ``<init>`` that says +-3 (all events of one
    weight) for events whose weights differ is written with +-4, and a positive
    strategy for events with negative weights with the negative one (:func:`idwtup_for`);
    a strategy that already fits is kept.

    A ``path`` ending in ``.gz`` is written gzip-compressed, as three concatenated gzip
    members (head, events, tail) so that the events need not be compressed twice; gzip,
    Python's gzip module (pylhe) and zlib's gzread (Pythia) read them as one stream.

    Parameters
    ----------
    path
        The file to write.
    init
        The ``<init>`` block, or None to give it later.
    header
        Free text (typically the run card) stored in the header as
        ``<MadNISRunCard>`` with XML special characters escaped, or a
        :class:`~madnis_py.events.banner.Banner` (MadGraph's cards, and ``#`` comments
        naming the subprocess of each LPRUP added to ``<init>`` at close); no header if
        None.
    generator
        Name written in the LHEF v3 ``<generator>`` tag of ``<init>``; its version is the
        package version when the name is ``"madnis_py"``, empty otherwise.
    digits
        Significant digits of weights, momenta and masses, 11 to 17.
    compresslevel
        zlib level for ``.gz`` files (1 fastest, 9 smallest). The mantissas of momenta
        compress poorly: level 6 takes about twice as long as 1 for files ~12% smaller.

    Examples
    --------
    >>> with LHEWriter("events.lhe.gz", init) as writer:       # doctest: +SKIP
    ...     writer.write_batch(idup=..., momenta=..., ...)
    """

    def __init__(self, path: str | os.PathLike[str], init: LHEInit | None = None, *,
                 header: str | Banner | None = None, generator: str = "madnis_py",
                 digits: int = 17,
                 compresslevel: int = 1) -> None:
        self._path = Path(path)
        self._digits = _check_digits(digits)
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be from 0 to 9, got {compresslevel}")
        if not self._path.parent.is_dir():
            raise FileNotFoundError(f"cannot write {self._path}: directory "
                                    f"{self._path.parent} does not exist")
        self._gzip = self._path.name.endswith(".gz")
        self._compresslevel = compresslevel
        self._header = _header_block(header)
        self._banner = header if isinstance(header, Banner) else None
        # Range of the written weights and of their magnitudes, for IDWTUP at close.
        self._weight_range = [math.inf, -math.inf]
        self._abs_range = [math.inf, -math.inf]
        version = _package_version() if generator == "madnis_py" else ""
        self._generator = (f"<generator name={quoteattr(generator)} "
                           f"version={quoteattr(version)}></generator>")
        self._init: LHEInit | None = None
        self._idprups: set[int] = set()
        self._n_events = 0
        self._closed = False
        self._aborted = False
        if init is not None:
            self.set_init(init)
        # Hidden, unique names in the target's directory so that the final rename stays on
        # one file system; "x" mode gives them the usual permissions (umask), unlike mkstemp.
        stem = f".{self._path.name}.{secrets.token_hex(4)}"
        self._body_path = self._path.with_name(stem + ".events.part")
        self._final_path = self._path.with_name(stem + ".part")
        # The writer owns this file until close() or abort(): no `with` can span its life.
        self._raw = open(self._body_path, "xb")  # noqa: SIM115
        self._body: io.BufferedIOBase = self._raw
        if self._gzip:
            # filename="" and mtime=0: no temporary name or date in the output, so the same
            # events give the same bytes.
            self._body = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw,
                                       compresslevel=compresslevel, mtime=0)
        # A writer dropped without close() or abort() does not leave its temporaries.
        self._cleanup = weakref.finalize(self, _remove, self._body_path, self._final_path)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def n_events(self) -> int:
        """Events written so far."""
        return self._n_events

    @property
    def init(self) -> LHEInit | None:
        return self._init

    def set_init(self, init: LHEInit) -> None:
        """Give or replace the ``<init>`` block (checked now, written at :meth:`close`)."""
        self._check_open()
        init.validate()
        self._check_idprup(init, self._idprups)
        self._init = init

    def _check_open(self) -> None:
        if self._closed:
            state = "aborted" if self._aborted else "closed"
            raise ValueError(f"LHEWriter for {self._path} is {state}")

    @staticmethod
    def _check_idprup(init: LHEInit, idprups: set[int]) -> None:
        missing = idprups - {p.lprup for p in init.processes}
        if missing:
            raise ValueError(f"events were written with IDPRUP {sorted(missing)} but the "
                             f"<init> block only has LPRUP {[p.lprup for p in init.processes]}")

    def write(self, event: LHEEvent) -> None:
        """Write one event (through :meth:`write_batch`, so with the same checks and text)."""
        if not event.particles:
            raise ValueError("event has no particles (NUP must be at least 1)")
        ps = event.particles
        self.write_batch(
            idup=[[p.idup for p in ps]], istup=[[p.istup for p in ps]],
            mothup=[[p.mothup for p in ps]], icolup=[[p.icolup for p in ps]],
            momenta=[[p.p4 for p in ps]], masses=[[p.m for p in ps]],
            weights=[event.xwgtup], scales=[event.scalup], aqed=[event.aqedup],
            aqcd=[event.aqcdup], idprup=[event.idprup], vtimup=[[p.vtimup for p in ps]],
            spinup=[[p.spinup for p in ps]])

    def write_batch(self, *, idup: npt.ArrayLike, istup: npt.ArrayLike,
                    mothup: npt.ArrayLike, icolup: npt.ArrayLike, momenta: npt.ArrayLike,
                    masses: npt.ArrayLike, weights: npt.ArrayLike, scales: npt.ArrayLike,
                    aqed: npt.ArrayLike, aqcd: npt.ArrayLike, idprup: npt.ArrayLike = 1,
                    vtimup: npt.ArrayLike = 0.0, spinup: npt.ArrayLike = 9.0,
                    present: npt.ArrayLike | None = None) -> None:
        """Write ``n`` events of ``np`` particles each (or fewer, with ``present``).

        Per-particle inputs may be given per event, ``(n, np)``, or once for all events,
        ``(np,)``; per-event inputs as ``(n,)`` or a scalar (anything that broadcasts).

        Parameters
        ----------
        idup, istup
            PDG ids and status codes (-1 incoming, 1 outgoing, 2 resonance, ...), ``(n, np)``.
        mothup, icolup
            Mother positions (1-based, 0: none) and colour tags, ``(n, np, 2)``.
        momenta
            ``(n, np, 4)`` as (E, px, py, pz) in GeV, the package's order; written in the
            accord's order px py pz E.
        masses
            Generated masses in GeV, ``(n, np)``.
        weights, scales, aqed, aqcd
            Event weight (pb), scale (GeV), alpha_QED, alpha_s, ``(n,)``.
        idprup
            Process id of each event, one of the ``LPRUP`` of ``<init>``.
        vtimup, spinup
            Lifetime c*tau in mm and helicity (9: unknown), ``(n, np)``.
        present
            ``(n, np)`` bool: the rows each event has (default all). Events then differ
            in ``NUP``, e.g. resonances written only when on their Breit-Wigner peak
            (:func:`madnis_py.events.resonances.add_resonances`); ``mothup`` are positions
            among the present rows, and absent rows are not checked.

        Raises
        ------
        ValueError
            Naming the input of the wrong shape, a non-finite or non-integer entry, a
            status code outside the accord, a mother position outside 0..NUP, a negative
            colour tag, or a process id missing from ``<init>``.
        """
        self._check_open()
        p = np.asarray(momenta, dtype=np.float64)
        if p.ndim != 3 or p.shape[2] != 4:
            raise ValueError(f"momenta must have shape (n, np, 4) as (E, px, py, pz), got "
                             f"{p.shape}")
        n, npart = p.shape[0], p.shape[1]
        if n == 0:
            return
        if npart == 0:
            raise ValueError("momenta has no particles (np = 0); NUP must be at least 1")
        keep = np.ones((n, npart), bool)
        if present is not None:
            try:
                keep = np.broadcast_to(np.asarray(present, dtype=bool), (n, npart))
            except ValueError:
                raise ValueError(f"present has shape {np.shape(present)}, expected (n, np) = "
                                 f"{(n, npart)}") from None
        nup = keep.sum(axis=1)
        if (nup == 0).any():
            raise ValueError("present leaves an event without particles (NUP must be at "
                             "least 1)")
        if not np.isfinite(p[keep]).all():
            raise ValueError("momenta has non-finite entries")
        shp, shp2 = (n, npart), (n, npart, 2)
        ev = (n,)
        ids = _broadcast("idup", idup, shp, "(n, np)", integer=True)
        status = _broadcast("istup", istup, shp, "(n, np)", integer=True)
        moth = _broadcast("mothup", mothup, shp2, "(n, np, 2)", integer=True)
        col = _broadcast("icolup", icolup, shp2, "(n, np, 2)", integer=True)
        mass = _broadcast("masses", masses, shp, "(n, np)", integer=False)
        vtim = _broadcast("vtimup", vtimup, shp, "(n, np)", integer=False)
        spin = _broadcast("spinup", spinup, shp, "(n, np)", integer=False)
        proc = _broadcast("idprup", idprup, ev, "(n,)", integer=True)
        event_values = [proc,
                        _broadcast("weights", weights, ev, "(n,)", integer=False),
                        _broadcast("scales", scales, ev, "(n,)", integer=False),
                        _broadcast("aqed", aqed, ev, "(n,)", integer=False),
                        _broadcast("aqcd", aqcd, ev, "(n,)", integer=False)]
        bad = ~np.isin(status, list(STATUS_CODES)) & keep
        if bad.any():
            codes = sorted(set(status[bad].astype(int).tolist()))
            raise ValueError(f"istup has status codes {codes} outside the accord's "
                             f"{sorted(STATUS_CODES)}")
        limit = nup[:, None, None]
        if (((moth < 0) | (moth > limit)) & keep[..., None]).any():
            upto = npart if present is None else "NUP (the present rows)"
            raise ValueError(f"mothup must be 1-based positions in the event, 0..{upto} "
                             f"(0: no mother), got values from {int(moth.min())} to "
                             f"{int(moth.max())}")
        if (col < 0).any():
            raise ValueError(f"icolup must be non-negative colour tags, got {int(col.min())}")
        new = {int(i) for i in np.unique(proc)}
        if self._init is not None:
            self._check_idprup(self._init, new)

        # One float64 row per event in the order of the event block: the whole chunk is
        # then formatted by a single %-operation, about 20 times faster than per line.
        table = np.empty((n, 6 + 13 * npart))
        table[:, 0] = npart
        table[:, 1:6] = np.stack(event_values, axis=1)
        part = table[:, 6:].reshape(n, npart, 13)
        part[..., 0] = ids
        part[..., 1] = status
        part[..., 2:4] = moth
        part[..., 4:6] = col
        part[..., 6:9] = p[..., 1:4]
        part[..., 9] = p[..., 0]
        part[..., 10] = mass
        part[..., 11] = vtim
        part[..., 12] = spin
        # The text of the formats of _line_formats, compiled (csrc/lhe_cpu.cpp: the same
        # bytes as the %-operator, tests/events/test_lhe.py; 5x faster); the rows of
        # absent particles are left out and NUP counts the present ones.
        rows_on = np.ascontiguousarray(keep, dtype=np.int64)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            self._body.write(ext.lhe_format_events(table[start:stop], rows_on[start:stop],
                                                   npart, self._digits))
        w = event_values[1]
        self._weight_range = [min(self._weight_range[0], float(w.min())),
                              max(self._weight_range[1], float(w.max()))]
        self._abs_range = [min(self._abs_range[0], float(np.abs(w).min())),
                           max(self._abs_range[1], float(np.abs(w).max()))]
        self._idprups |= new
        self._n_events += n

    def close(self, *, init: LHEInit | None = None) -> Path:
        """Finish the file and move it onto :attr:`path`; returns the path.

        ``init`` replaces the ``<init>`` block given so far. Without any ``<init>``, or with
        one that lacks the process ids of written events, a ValueError is raised and the
        writer stays open (give a valid one and close again). Closing twice does nothing;
        closing an aborted writer is a ValueError.
        """
        if self._closed and not self._aborted:
            return self._path
        self._check_open()
        if init is not None:
            self.set_init(init)
        if self._init is None:
            raise ValueError(f"no <init> block for {self._path}: give it to LHEWriter(), "
                             f"set_init() or close(init=...)")
        init = self._init
        if self._n_events:
            init = replace(init, idwtup=idwtup_for(init.idwtup, *self._weight_range,
                                                   *self._abs_range))
        if self._banner is not None and not init.comments:
            init = replace(init, comments=tuple(
                self._banner.init_comments([p.lprup for p in init.processes])))
        head = ('<LesHouchesEvents version="3.0">\n' + self._header
                + init.to_lhe(digits=self._digits, extra=[self._generator]))
        tail = "</LesHouchesEvents>\n"
        try:
            self._body.close()
            self._raw.close()
            with open(self._final_path, "xb") as out:
                out.write(self._encode(head))
                with open(self._body_path, "rb") as body:
                    shutil.copyfileobj(body, out, 1 << 24)
                out.write(self._encode(tail))
                out.flush()
                # On disk before the rename, so a crash cannot leave a truncated file
                # under the final name.
                os.fsync(out.fileno())
            os.replace(self._final_path, self._path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._cleanup()
        return self._path

    def _write_event_text(self, data: bytes, n_events: int, idprups: set[int]) -> None:
        """Append ``<event>`` blocks that are already LHE text (used by :meth:`merge_parts`);
        ``idprups`` are the process ids they may carry, checked against ``<init>``."""
        self._check_open()
        if self._init is not None:
            self._check_idprup(self._init, idprups)
        self._body.write(data)
        self._idprups |= idprups
        self._n_events += n_events

    @classmethod
    def merge_parts(cls, parts: Sequence[str | os.PathLike[str]],
                    path: str | os.PathLike[str], init: LHEInit, *,
                    header: str | Banner | None = None, generator: str = "madnis_py",
                    digits: int = 17, compresslevel: int = 1) -> Path:
        """One LHE file from part files, their events in the given order, under a new
        header and ``<init>`` block.

        The merged file is written by a writer of its own (same options as
        :class:`LHEWriter`), so its head, tail and compression are whatever the writer
        writes, and the result equals what one writer given all the events would have
        produced. A part may be plain or gzip-compressed (by its content, not its name);
        its head is checked as by :func:`check_lhe` up to ``</init>``, its ``<event>``
        blocks are copied as text, never re-formatted, and it must end with
        ``</LesHouchesEvents>``. The process ids a part's events may carry are the
        ``LPRUP`` of its own ``<init>`` (the accord requires it, :class:`LHEWriter`
        enforces it); each must be in ``init``. The merged IDWTUP follows the parts that
        carry events (:func:`idwtup_of_parts`). A part that fails a check leaves ``path``
        as it was.

        Parameters
        ----------
        parts
            The LHE files to merge.
        path
            The merged file (``.gz``: compressed, as for :class:`LHEWriter`).
        init
            The merged ``<init>`` block (cross sections of the whole sample).
        header, generator, digits, compresslevel
            As for :class:`LHEWriter` (``digits`` applies to ``<init>``; the events keep
            the digits of their parts).

        Raises
        ------
        LHEError
            A part that is not a complete LHE file (names the file, and the line where
            its head breaks the accord).
        ValueError
            A part's process id missing from ``init``.
        """
        with cls(path, init, header=header, generator=generator, digits=digits,
                 compresslevel=compresslevel) as writer:
            with_events = [Path(part) for part in parts if _copy_events(Path(part), writer)]
            writer.set_init(idwtup_of_parts(init, with_events))
        return writer.path

    def _encode(self, text: str) -> bytes:
        data = text.encode("utf-8")
        if self._gzip:
            return gzip.compress(data, compresslevel=self._compresslevel, mtime=0)
        return data

    def abort(self) -> None:
        """Drop everything written; :attr:`path` is left as it was."""
        if self._closed:
            return
        self._closed = self._aborted = True
        for f in (self._body, self._raw):
            with contextlib.suppress(OSError):
                f.close()
        self._cleanup()

    def __enter__(self) -> LHEWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is not None:
            self.abort()
            return
        try:
            self.close()
        except BaseException:
            self.abort()
            raise


_EVENT_END = b"</event>"  # closes every event (and no other LHEF v3 tag)
_ROOT_END = b"</LesHouchesEvents>"


def _open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":  # gzip, whatever the name says
        return cast(IO[bytes], gzip.open(path, "rb"))
    return open(path, "rb")


def _copy_events(part: Path, writer: LHEWriter) -> int:
    """Append the ``<event>`` blocks of ``part`` to ``writer`` (see
    :meth:`LHEWriter.merge_parts`); returns how many."""
    n = 0
    with _open_binary(part) as src:
        head: list[bytes] = []
        while True:
            line = src.readline()
            head.append(line)
            if not line or line.strip().startswith(b"</init"):
                break
        text = b"".join(head).decode("utf-8", errors="replace")
        lprups = {p.lprup for p in _LineReader(part, io.StringIO(text)).read_head().processes}
        pending = b""
        while True:
            chunk = src.read(1 << 22)
            if not chunk:
                break
            pending += chunk
            # Hand on whole lines only (so no </event> tag is split between two counts),
            # and keep back the last line, which must be the closing tag.
            cut = pending.rfind(b"\n", 0, max(len(pending.rstrip()) - len(_ROOT_END), 0))
            if cut >= 0:
                block = pending[:cut + 1]
                count = block.count(_EVENT_END)
                n += count
                writer._write_event_text(block, count, lprups)
                pending = pending[cut + 1:]
    body, tag, rest = pending.rpartition(_ROOT_END)
    if not tag or rest.strip() or (body.strip() and not body.endswith(b"\n")):
        raise LHEError(f"{part}: does not end with {_ROOT_END.decode()} on a line of its "
                       "own: not a complete LHE file")
    if body:
        count = body.count(_EVENT_END)
        n += count
        writer._write_event_text(body, count, lprups)
    return n


# --------------------------------------------------------------------------- reader


class LHEError(ValueError):
    """A file that breaks the Les Houches accord; the message names the file and line."""


_ROOT = re.compile(r"""<LesHouchesEvents\s+version\s*=\s*["']([^"']*)["']\s*>$""")
_VERSIONS = ("1.0", "2.0", "3.0")


def _is_tag(s: str, name: str) -> bool:
    """Whether stripped line ``s`` opens tag ``name`` (``<name>``, ``<name attr=..>``)."""
    n = len(name) + 1
    return s.startswith("<" + name) and (len(s) == n or s[n] in "> \t/")


def _open_text(path: Path) -> IO[str]:
    with open(path, "rb") as f:
        magic = f.read(2)
    if magic == b"\x1f\x8b":  # gzip, whatever the name says
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return open(path, encoding="utf-8")


class _LineReader:
    """Reads an LHE file line by line, as Pythia's reader does, and raises LHEError at the
    first line that breaks the accord."""

    def __init__(self, path: Path, stream: IO[str]) -> None:
        self.path = path
        self.version = ""
        self._lines = iter(stream)
        self.lineno = 0

    def error(self, message: str) -> LHEError:
        return LHEError(f"{self.path}:{self.lineno}: {message}")

    def next(self, expecting: str) -> str:
        line = next(self._lines, None)
        if line is None:
            self.lineno += 1
            raise self.error(f"end of file while expecting {expecting}")
        self.lineno += 1
        return line

    def fields(self, line: str, count: int, names: str) -> list[str]:
        f = line.split()
        if len(f) != count:
            raise self.error(f"{len(f)} fields where {count} are expected ({names}): "
                             f"{line.strip()[:100]!r}")
        return f

    def integer(self, token: str, name: str) -> int:
        try:
            return int(token)
        except ValueError:
            raise self.error(f"{name} = {token!r} is not an integer") from None

    def number(self, token: str, name: str) -> float:
        try:
            x = float(token)
        except ValueError:
            raise self.error(f"{name} = {token!r} is not a number") from None
        if not math.isfinite(x):
            raise self.error(f"{name} = {token!r} is not finite")
        return x

    def skip_comment(self, s: str) -> None:
        """Skip an XML comment starting on stripped line ``s``."""
        start = self.lineno
        while "-->" not in s:
            s = self.next(f"the end '-->' of the comment opened at line {start}")

    def optional_line(self, s: str, stack: list[str], what: str) -> None:
        """A line after the fixed records of a block: blank, '#' comments, tags and text
        inside tags are allowed; loose text means a record too many."""
        if not s or s.startswith("#"):
            return
        if s.startswith("<!--"):
            self.skip_comment(s)
        elif s.startswith("</"):
            if stack:
                stack.pop()
        elif s.startswith("<"):
            name = re.split(r"[\s/>]", s[1:], maxsplit=1)[0]
            if not (s.endswith("/>") or f"</{name}" in s):
                stack.append(name)
        elif not stack:
            raise self.error(f"{what}: {s[:100]!r}")

    def read_head(self) -> LHEInit:
        """Check and read everything up to ``</init>``."""
        s = self.next('<LesHouchesEvents version="...">').strip()
        root = _ROOT.match(s)
        if root is None:
            raise self.error(f'the first line must be <LesHouchesEvents version="3.0">, got '
                             f"{s[:100]!r}")
        self.version = root.group(1)
        if self.version not in _VERSIONS:
            raise self.error(f"version {self.version!r} is not one of {_VERSIONS}")
        header_at = 0
        while True:
            expecting = (f"</header> closing the header opened at line {header_at}"
                         if header_at else "<init>")
            s = self.next(expecting).strip()
            if header_at:
                if "</header>" in s:
                    header_at = 0
            elif not s:
                continue
            elif _is_tag(s, "header"):
                if "</header>" not in s:
                    header_at = self.lineno
            elif _is_tag(s, "init"):
                break
            elif _is_tag(s, "event"):
                raise self.error("<event> before the <init> block")
            elif s.startswith("<!--"):
                self.skip_comment(s)
            elif not s.startswith("<"):
                raise self.error(f"text outside any block before <init>: {s[:100]!r}")
        if not s.endswith(">"):
            raise self.error(f"the <init> tag must be alone on its line: {s[:100]!r}")
        start = self.lineno
        f = self.fields(self.next("the first line of <init>"), 10, _INIT_FIELDS)
        ints = [self.integer(f[i], name) for i, name in
                ((0, "IDBMUP(1)"), (1, "IDBMUP(2)"), (4, "PDFGUP(1)"), (5, "PDFGUP(2)"),
                 (6, "PDFSUP(1)"), (7, "PDFSUP(2)"), (8, "IDWTUP"), (9, "NPRUP"))]
        ebmup = (self.number(f[2], "EBMUP(1)"), self.number(f[3], "EBMUP(2)"))
        idwtup, nprup = ints[6], ints[7]
        if idwtup not in WEIGHTING_STRATEGIES:
            raise self.error(f"IDWTUP = {idwtup} is not one of +-1, +-2, +-3, +-4")
        if nprup < 1:
            raise self.error(f"NPRUP = {nprup}: at least one process is needed")
        processes = []
        for i in range(nprup):
            s = self.next(f"process line {i + 1} of NPRUP = {nprup} in the <init> opened at "
                          f"line {start}")
            if s.strip().startswith("<"):
                raise self.error(f"<init> opened at line {start} declares NPRUP = {nprup} but "
                                 f"has {i} process lines")
            g = self.fields(s, 4, _PROCESS_FIELDS)
            processes.append(LHEProcessInfo(
                self.number(g[0], "XSECUP"), self.number(g[1], "XERRUP"),
                self.number(g[2], "XMAXUP"), self.integer(g[3], "LPRUP")))
        return LHEInit((ints[0], ints[1]), ebmup, idwtup, processes,
                       pdfgup=(ints[2], ints[3]), pdfsup=(ints[4], ints[5]),
                       comments=self.init_tail(start, nprup))

    def init_tail(self, start: int, nprup: int) -> tuple[str, ...]:
        """Check the lines after the process lines up to ``</init>``; the text of its
        ``#`` comments (outside tags)."""
        stack: list[str] = []
        comments: list[str] = []
        while True:
            s = self.next(f"</init> closing the <init> opened at line {start}").strip()
            if s.startswith("</init"):
                return tuple(comments)
            if _is_tag(s, "event"):
                raise self.error(f"<event> before </init> closing the <init> opened at "
                                 f"line {start}")
            if s.startswith("#") and not stack:
                comments.append(unescape(s[1:].strip()))
            self.optional_line(s, stack, f"a line after the NPRUP = {nprup} process lines")

    def read_events(self, init: LHEInit) -> Iterator[LHEEvent]:
        """Check and yield the events, then check the end of the file."""
        lprups = {p.lprup for p in init.processes}
        while True:
            s = self.next("<event> or </LesHouchesEvents>").strip()
            if not s:
                continue
            if _is_tag(s, "event"):
                yield self.read_event(lprups)
            elif s.startswith("</LesHouchesEvents"):
                break
            elif s.startswith("<!--"):
                self.skip_comment(s)
            else:
                raise self.error(f"expected <event> or </LesHouchesEvents>, got {s[:100]!r}")
        for line in self._lines:
            self.lineno += 1
            if line.strip():
                raise self.error(f"text after </LesHouchesEvents>: {line.strip()[:100]!r}")

    def particle(self, line: str, nup: int) -> LHEParticle:
        """One particle line; the fast path converts all fields at once and only looks for
        the culprit when something is wrong."""
        g = line.split()
        if len(g) != 13:
            self.fields(line, 13, _PARTICLE_FIELDS)
        try:
            idup, istup, m1, m2, c1, c2 = map(int, g[:6])
            px, py, pz, e, mass, vtim, spin = map(float, g[6:])
        except ValueError:
            for token, name in zip(g, _PARTICLE_NAMES, strict=True):
                (self.integer if name in _INTEGER_NAMES else self.number)(token, name)
            raise
        if not math.isfinite(px + py + pz + e + mass + vtim + spin):
            for token, name in zip(g[6:], _PARTICLE_NAMES[6:], strict=True):
                self.number(token, name)  # raises, unless only the sum overflowed
        if istup not in STATUS_CODES:
            raise self.error(f"ISTUP = {istup} is not one of {sorted(STATUS_CODES)}")
        if not (0 <= m1 <= nup and 0 <= m2 <= nup):
            raise self.error(f"MOTHUP = ({m1}, {m2}) outside 0..NUP = 0..{nup}")
        if c1 < 0 or c2 < 0:
            raise self.error(f"ICOLUP = ({c1}, {c2}): colour tags must be non-negative")
        return LHEParticle(idup, istup, (m1, m2), (c1, c2), px, py, pz, e, mass, vtim, spin)

    def read_event(self, lprups: set[int]) -> LHEEvent:
        start = self.lineno
        f = self.fields(self.next(f"the first line of the event opened at line {start}"), 6,
                        _EVENT_FIELDS)
        nup = self.integer(f[0], "NUP")
        idprup = self.integer(f[1], "IDPRUP")
        if nup < 1:
            raise self.error(f"NUP = {nup}: an event needs at least one particle")
        if idprup not in lprups:
            raise self.error(f"IDPRUP = {idprup} is not one of the LPRUP of <init>: "
                             f"{sorted(lprups)}")
        particles = []
        for i in range(nup):
            line = next(self._lines, None)
            self.lineno += 1
            if line is None:
                raise self.error(f"end of file in the event opened at line {start}")
            s = line.lstrip()
            if s.startswith("<") or s.startswith("#"):
                raise self.error(f"event opened at line {start} declares NUP = {nup} but has "
                                 f"{i} particle lines")
            particles.append(self.particle(line, nup))
        stack: list[str] = []
        while True:
            s = self.next(f"</event> closing the event opened at line {start}").strip()
            if s.startswith("</event"):
                break
            if _is_tag(s, "event") or s.startswith("</LesHouchesEvents"):
                raise self.error(f"missing </event> for the event opened at line {start}")
            self.optional_line(s, stack, f"a particle line after the NUP = {nup} of the "
                                         f"event opened at line {start}")
        return LHEEvent(idprup, self.number(f[2], "XWGTUP"), self.number(f[3], "SCALUP"),
                        self.number(f[4], "AQEDUP"), self.number(f[5], "AQCDUP"), particles)


@dataclass(frozen=True)
class LHESummary:
    """What :func:`check_lhe` found in a valid file.

    Attributes
    ----------
    path, version
        The file and its ``LesHouchesEvents`` version.
    init
        The ``<init>`` block; ``idbmup``, ``ebmup``, ``idwtup``, ``processes`` and
        ``xsecup`` are shortcuts to it.
    n_events
        Number of events.
    n_particles, weights
        ``NUP`` and ``XWGTUP`` of each event, ``(n_events,)``.
    """

    path: Path
    version: str
    init: LHEInit
    n_events: int
    n_particles: npt.NDArray[np.int64]
    weights: npt.NDArray[np.float64]

    @property
    def idbmup(self) -> tuple[int, int]:
        return self.init.idbmup

    @property
    def ebmup(self) -> tuple[float, float]:
        return self.init.ebmup

    @property
    def idwtup(self) -> int:
        return self.init.idwtup

    @property
    def processes(self) -> list[LHEProcessInfo]:
        return self.init.processes

    @property
    def xsecup(self) -> list[float]:
        return self.init.xsecup


def check_lhe(path: str | os.PathLike[str]) -> LHESummary:
    """Check a (possibly gzipped) LHE file line by line against the accord.

    The checks are those a line-based reader such as Pythia 8's relies on: the first line
    is ``<LesHouchesEvents version="...">``; a header, if any, is closed; ``<init>`` has a
    first line of 10 fields and then ``NPRUP`` process lines of 4 fields; every
    ``<event>`` has a first line of 6 fields, then exactly ``NUP`` particle lines of exactly
    13 fields with integer ids, status codes among -1, 1, -2, 2, 3, -9, mother positions in
    0..NUP, non-negative colour tags and finite numbers, and ``IDPRUP`` among the
    ``LPRUP`` of ``<init>``; every block is closed and the file ends with
    ``</LesHouchesEvents>``. Tags, ``#`` comments and text inside tags may follow the
    records of a block (LHEF v3 weights, scales, generator tags).

    Raises
    ------
    LHEError
        At the first violation, naming the file and the line number.
    """
    p = Path(path)
    with _open_text(p) as stream:
        reader = _LineReader(p, stream)
        init = reader.read_head()
        nup: list[int] = []
        weights: list[float] = []
        for event in reader.read_events(init):
            nup.append(event.nup)
            weights.append(event.xwgtup)
    return LHESummary(p, reader.version, init, len(nup), np.array(nup, dtype=np.int64),
                      np.array(weights, dtype=np.float64))


def _records(path: Path) -> Generator[LHEInit | LHEEvent, None, None]:
    with _open_text(path) as stream:
        reader = _LineReader(path, stream)
        init = reader.read_head()
        yield init
        yield from reader.read_events(init)


def read_lhe(path: str | os.PathLike[str]) -> tuple[LHEInit, Iterator[LHEEvent]]:
    """The ``<init>`` block and an iterator over the events of an LHE file.

    The file is checked as by :func:`check_lhe` while it is read, so the iterator raises
    :class:`LHEError` when it reaches a bad line. It holds the file open until it is
    exhausted or dropped.
    """
    records = _records(Path(path))
    init = next(records)
    assert isinstance(init, LHEInit)
    return init, cast(Iterator[LHEEvent], records)
