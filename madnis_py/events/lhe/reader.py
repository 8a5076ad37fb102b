"""Check and read Les Houches Event files line by line, as Pythia 8's reader does:
:func:`check_lhe` (a :class:`LHESummary` of a valid file), :func:`read_lhe` (the
``<init>`` block and an iterator over the events), and :class:`LHEError` naming the file
and line of the first violation.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast
from xml.sax.saxutils import unescape

import numpy as np
import numpy.typing as npt

from madnis_py.events.lhe.records import (
    STATUS_CODES,
    WEIGHTING_STRATEGIES,
    LHEEvent,
    LHEInit,
    LHEParticle,
    LHEProcessInfo,
)

__all__ = [
    "LHEError",
    "LHESummary",
    "check_lhe",
    "read_lhe",
]

_INIT_FIELDS = "IDBMUP(1) IDBMUP(2) EBMUP(1) EBMUP(2) PDFGUP(1) PDFGUP(2) PDFSUP(1) " \
               "PDFSUP(2) IDWTUP NPRUP"
_PROCESS_FIELDS = "XSECUP XERRUP XMAXUP LPRUP"
_EVENT_FIELDS = "NUP IDPRUP XWGTUP SCALUP AQEDUP AQCDUP"
_PARTICLE_NAMES = ("IDUP", "ISTUP", "MOTHUP(1)", "MOTHUP(2)", "ICOLUP(1)", "ICOLUP(2)", "PUP(1)",
                   "PUP(2)", "PUP(3)", "PUP(4)", "PUP(5)", "VTIMUP", "SPINUP")
_INTEGER_NAMES = frozenset(_PARTICLE_NAMES[:6])
_PARTICLE_FIELDS = " ".join(_PARTICLE_NAMES)


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
