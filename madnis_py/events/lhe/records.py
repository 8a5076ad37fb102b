"""The records of a Les Houches Event file: ``<init>`` (:class:`LHEInit`, one
:class:`LHEProcessInfo` per process line), events (:class:`LHEEvent`) and their particle
lines (:class:`LHEParticle`), and the %-formats that print them.

The bottom of :mod:`madnis_py.events.lhe`: the writer and the reader build on these
records; this module imports neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache

import numpy as np
import numpy.typing as npt

__all__ = [
    "STATUS_CODES",
    "WEIGHTING_STRATEGIES",
    "LHEEvent",
    "LHEInit",
    "LHEParticle",
    "LHEProcessInfo",
]

#: ISTUP values of the accord: incoming, outgoing, intermediate space-like, resonance,
#: documentation-only intermediate, incoming beam.
STATUS_CODES = frozenset({-1, 1, -2, 2, 3, -9})
#: IDWTUP values: the four weighting strategies, each with either sign.
WEIGHTING_STRATEGIES = frozenset({-4, -3, -2, -1, 1, 2, 3, 4})

_MIN_DIGITS, _MAX_DIGITS = 11, 17


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


def _escape_text(text: str) -> str:
    """XML-escape what a parser would take for markup (``&``, ``<``); a lone ``>`` is
    legal text and stays readable."""
    return text.replace("&", "&amp;").replace("<", "&lt;")


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
