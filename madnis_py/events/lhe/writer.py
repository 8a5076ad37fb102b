"""Write Les Houches Event files: :class:`LHEWriter` (atomic, optionally gzipped), the
IDWTUP that fits the written weights (:func:`idwtup_for`, :func:`idwtup_of_parts`), and
the merging of part files (:meth:`LHEWriter.merge_parts`), whose heads are checked with
the reader of :mod:`madnis_py.events.lhe.reader`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import secrets
import shutil
import weakref
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import IO, cast
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import numpy.typing as npt

from madnis_py._core import ext
from madnis_py.events.banner import Banner
from madnis_py.events.lhe.reader import LHEError, _LineReader, _records
from madnis_py.events.lhe.records import STATUS_CODES, LHEEvent, LHEInit, _check_digits

__all__ = [
    "LHEWriter",
    "idwtup_for",
    "idwtup_of_parts",
]

# Events per formatting call in write_batch: bounds the size of the text built at once
# (about 1 kB per event of 5 particles).
_CHUNK = 4096


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
