"""Matrix elements from shared libraries with MadGraph's standalone Fortran ABI.

A MadGraph 5 ``standalone`` output compiled to a shared library, and every built-in
process of ``processes/`` (same ABI, see ``processes/common/madnis_process.h``), are loaded
with cffi: the library is opened, the entry points resolved, and their addresses handed to
the compiled core, whose loop over the events calls them (``csrc/matrix_element.cpp``).

Supported libraries. MadGraph must write its output with ``output standalone DIR
--prefix=int``: only then is ``SubProcesses/all_matrix.f`` a dispatcher exporting
``smatrixhel_(pdgs, procid, npdg, p, alphas, scale2, nhel, ans)``, ``initialise_`` and the
subprocess table ``get_pdg_order_``. (``--prefix`` renames the per-process routines,
``M0_SMATRIXHEL`` and so on, never the dispatcher, so symbols are looked up unprefixed.)
Without ``--prefix=int`` the library exports a 3-argument ``smatrixhel_(p, hel, ans)``
that the 8-argument call would corrupt memory with; such a library, or any library that
exports neither ``get_pdg_order_`` (MadGraph ``--prefix=int``) nor
``madnis_abi_version_`` (built-in processes and madnis_py's own MadGraph output), is
refused when it is opened, before any of its functions runs.

Facts of the ABI handled here, all checked before the library is called (a Fortran
``STOP`` ends the whole interpreter, with exit code 0 and no Python error):

* ``setparamlog_(0)`` first, or the library writes ``param.log`` into the working
  directory; ``initialise_`` takes the param_card path as a blank-padded ``char[512]`` plus
  its hidden length; a missing card makes Fortran ``STOP``, so the card is checked here.
* MadGraph's card reader (``Source/MODEL/lha_read.f``) needs ``ident_card.dat``: it tries
  ``./ident_card.dat`` in the working directory, then the param_card's directory (only if
  that path, with its ``/``, is at most 76 characters and has no space: it is kept in a
  ``CHARACTER*90`` with ``ident_card.dat`` appended, cut at the first blank), then
  ``Cards/ident_card.dat`` in the working directory and up to five parents, and stops
  otherwise. The loader therefore looks for ``ident_card.dat`` beside the param_card, then
  in ``Cards/`` of the MadGraph output the library sits in (``<out>/lib/*.so``,
  ``<out>/SubProcesses/*.so``, ``<out>/SubProcesses/P*/*.so``), raises
  :class:`MatrixElementError` if there is none, copies both cards into a short private
  directory (``/tmp/mnp...``) and initialises from there; an ``ident_card.dat`` in the
  working directory that differs from the one found is refused, as MadGraph would prefer it.
* ``smatrixhel_`` leaves its answer untouched when no subprocess has the PDG list, which
  is detected and raised. A MadGraph dispatcher with one multiplicity does not check the
  list's length, so where the library exports its subprocess table
  (:attr:`MatrixElement.subprocesses`) a PDG list not in it is refused before the call.
* The library keeps its state in COMMON blocks (static variables), and opening one path
  twice with dlopen returns the same handle: a second param_card would silently change the
  first object's couplings. Every :class:`MatrixElement` therefore loads a private copy of
  the library (copied into a fresh temporary directory, opened, and the copy's file removed
  at once: the mapping stays valid until the interpreter exits), so objects with different
  cards are independent. The copy privatises what is linked into the library itself; state
  in other shared libraries it depends on (a ``libmodel.so`` of a ``dynamic`` MadGraph
  build, Sherpa's libraries) stays shared: Sherpa's globals allow one Sherpa run per
  process (:meth:`MatrixElement.from_sherpa`). Calls are serialised by one lock; run several
  processes (Dask) for parallelism.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from madnis_py._core import ext
from madnis_py.physics.slha import read_slha

__all__ = ["HostStaging", "MatrixElement", "MatrixElementError"]

#: The device ABI version this loader speaks (processes/common/madnis_process.h).
DEVICE_ABI_VERSION = 1
#: The negative return codes of madnis_smatrix_device_.
_DEVICE_ERRORS = {-1: "no subprocess has the PDG list",
                  -2: "the library read no valid param_card (initialise_ failed)",
                  -3: "the amp2 row length passed is not the number of diagrams"}

_PATH_LENGTH = 512
_CDEF = """
void setparamlog_(const int* flag);
void initialise_(const char* path, size_t len);
void setpara_(const char* path, size_t len);
void initialisemodel_(const char* path, size_t len);
void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans);
void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2);
void madnis_smatrix_amp2_(const int* pdgs, const int* procid, const int* npdg,
                          const double* p, const double* alphas, const double* scale2,
                          double* ans, double* amp2, int* namp2);
int madnis_abi_version_(void);
int madnis_max_amp2_(void);
int madnis_device_abi_version_(void);
int madnis_smatrix_device_(const int* pdgs, const int* procid, const int* npdg,
                           const double* p, const double* alphas, const double* scale2,
                           const int64_t* n, double* ans, double* amp2, int* namp2,
                           void* stream);
const char* madnis_sherpa_error_(void);
void get_pdg_order_(int* pdg, int* allproc);
void lha_loadcard_(void);  /* looked up, never called: marks MadGraph's card reader */
"""
# MadGraph's get_pdg_order_(PDG(NPROC, NLEGS), ALLPROC(NPROC)) writes arrays whose sizes
# the caller cannot ask for: generous buffers filled with a sentinel, then counted.
_SENTINEL = -(2**31)
_TABLE_PROCS = 1 << 16
_TABLE_PDGS = 1 << 20
_IDENT_CARD = "ident_card.dat"
# lha_read.f: CHARACTER*90 tempname = <param_card directory with '/'> // 'ident_card.dat'
_CARD_DIR_LIMIT = 90 - len(_IDENT_CARD)
_SHOWN_SUBPROCESSES = 20


class MatrixElementError(RuntimeError):
    """A library that cannot be loaded or used; the message names the library."""


def _ffi() -> Any:
    try:
        import cffi
    except ImportError as err:  # pragma: no cover - cffi is a dependency
        raise MatrixElementError("loading matrix-element libraries needs cffi "
                                 "(pip install cffi)") from err
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    return ffi


def _find_ident_card(library: Path, param_card: Path) -> Path:
    """``ident_card.dat`` beside the param_card, else in ``Cards/`` of the library's output."""
    candidates = [param_card.resolve().parent / _IDENT_CARD]
    lib_dir = library.resolve().parent
    candidates += [d / "Cards" / _IDENT_CARD for d in (lib_dir, *lib_dir.parents[:2])]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise MatrixElementError(
        f"{library} is a MadGraph library, whose card reader needs {_IDENT_CARD} (the "
        f"names of the param_card's entries) and stops the interpreter without it; there "
        f"is none beside the param_card {param_card} nor in Cards/ of the MadGraph output "
        f"the library belongs to (looked at {', '.join(str(c) for c in candidates)}). "
        f"Put the output's Cards/{_IDENT_CARD} beside the param_card")


def _stage_cards(param_card: Path, ident_card: Path) -> Path:
    """Copies of both cards in a fresh directory short enough for MadGraph's reader."""
    base = "/tmp" if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else None
    staged = Path(tempfile.mkdtemp(prefix="mnp", dir=base))
    text = str(staged)
    if len(text) + 1 > _CARD_DIR_LIMIT or any(c.isspace() for c in text):
        shutil.rmtree(staged, ignore_errors=True)
        raise MatrixElementError(
            f"cannot stage the param_card {param_card} for MadGraph's card reader: the "
            f"temporary directory {text!r} is longer than {_CARD_DIR_LIMIT - 1} characters "
            "or holds a space (lha_read.f would not find ident_card.dat and stop the "
            "interpreter); set TMPDIR to a short path")
    shutil.copyfile(param_card, staged / "param_card.dat")
    shutil.copyfile(ident_card, staged / _IDENT_CARD)
    return staged


def _check_working_directory(ident_card: Path, library: Path) -> None:
    # lha_read.f opens ./ident_card.dat before the one beside the param_card.
    local = Path.cwd() / _IDENT_CARD
    if local.is_file() and local.read_bytes() != ident_card.read_bytes():
        raise MatrixElementError(
            f"the working directory holds an {_IDENT_CARD} ({local}) that differs from "
            f"{ident_card}: MadGraph's card reader in {library} would read the param_card "
            f"with the working directory's one; run from another directory")


def light_like_again(p: np.ndarray) -> np.ndarray | None:
    """``p`` (events, particles, 4) with every energy that rounding left just below its
    ``|p|`` (by less than 1e-12 of it) raised to ``|p|``; None where no energy is.

    A massless momentum boosted to the lab frame keeps ``E^2 - |p|^2`` only to rounding,
    and often comes out space-like by an ulp. MadGraph 3.5.7's HELAS then answers NaN for
    the whole |M|^2 at rare points (p p > e+ ve mu- vm~: an e+ of 4.2 TeV with ``m^2 =
    -3.7e-9`` GeV^2 stopped a run in its survey); with ``E = |p|`` it is finite. The
    loader evaluates only such NaN points again this way, so that every finite answer
    stays the library's own, bit for bit; a negative energy is left as it is (and
    named)."""
    # summed in Fortran's order, (px^2 + py^2) + pz^2, as HELAS sums it
    size = np.sqrt((p[..., 1] * p[..., 1] + p[..., 2] * p[..., 2]) + p[..., 3] * p[..., 3])
    low = (p[..., 0] < size) & (p[..., 0] >= size * (1 - 1e-12))
    if not low.any():
        return None
    out = p.copy()
    out[..., 0] = np.where(low, size, p[..., 0])
    return out


class MatrixElement:
    """|M|^2 of a MadGraph standalone (Fortran ABI) library, batched.

    Use :meth:`from_madgraph`. Calling the object with momenta ``(n, nparticles, 4)`` (E,
    px, py, pz in GeV, incoming first, beam 1 along +z) and the PDG list returns |M|^2
    ``(n,)`` averaged over initial spins and colours, summed over helicities.

    Every object holds a private copy of the library (see the module's docstring), so
    objects opened from one library with different param_cards are independent.
    """

    _lock = threading.Lock()

    def __init__(self, library: Path, param_card: Path, lib: Any, ffi: Any) -> None:
        self.library = library
        self.param_card = param_card
        self._lib = lib
        self._ffi = ffi
        self._table: tuple[tuple[int, tuple[int, ...]], ...] | None = None
        self._smatrixhel = self._address("smatrixhel_")
        try:
            self._amp2: int | None = self._address("madnis_amp2_")
        except MatrixElementError:
            self._amp2 = None
        try:  # |M|^2 and |M_i|^2 from one helicity sum (madnis_py's MadGraph output)
            self._both: int | None = self._address("madnis_smatrix_amp2_")
        except MatrixElementError:
            self._both = None
        self.amp2_width = self._amp2_width()
        self._device_entry: Any = None  # madnis_smatrix_device_ (a CUDA build)
        if self._has("madnis_smatrix_device_") and self._has("madnis_device_abi_version_"):
            version = int(self._symbol("madnis_device_abi_version_")())
            if version == DEVICE_ABI_VERSION:
                self._device_entry = self._symbol("madnis_smatrix_device_")
        self._staging = HostStaging()

    @classmethod
    def from_madgraph(cls, library: str | Path, param_card: str | Path) -> MatrixElement:
        """Open a compiled standalone output and initialise it with an SLHA param_card.

        Parameters
        ----------
        library : path
            The shared library (``.so``) built from MadGraph's ``output standalone DIR
            --prefix=int`` (its ``SubProcesses/all_matrix.f`` with the ``P*/matrix.f``,
            ``lib/libdhelas.a`` and ``lib/libmodel.a`` linked in), or a built-in process
            (see :func:`madnis_py.physics.builtin_library`).
        param_card : path
            SLHA parameter card the library reads, as MadGraph's ``initialise_`` does. For
            a MadGraph library, ``ident_card.dat`` must lie beside it or in ``Cards/`` of
            the output the library sits in.

        Raises
        ------
        FileNotFoundError
            The library or the param_card does not exist.
        SLHAError
            The param_card is malformed (the message names file and line).
        MatrixElementError
            The library cannot be opened, lacks an entry point (named in the message), has
            the wrong ABI (a MadGraph output without ``--prefix=int``), or is a MadGraph
            library without an ``ident_card.dat`` to go with the param_card.
        """
        library = Path(library)
        param_card = Path(param_card)
        if not library.is_file():
            raise FileNotFoundError(f"matrix-element library {library} does not exist")
        if not param_card.is_file():
            raise FileNotFoundError(
                f"param_card {param_card} does not exist (checked before calling the "
                f"library: its Fortran initialisation would STOP the interpreter)")
        # Syntax errors are reported here with file and line; MadGraph's Fortran reader
        # would stop the interpreter or silently use defaults.
        read_slha(param_card)
        return cls._open(library, param_card, madgraph_abi=True)

    @classmethod
    def from_sherpa(cls, library: str | Path, run_dir: str | Path) -> MatrixElement:
        """Open a library built by :func:`madnis_py.physics.shims.build_sherpa`.

        ``run_dir`` is the directory of a Sherpa 3 run card (``Sherpa.yaml``) whose
        processes are evaluated (any PDG list the card's partonic processes have, either
        order of the incoming particles); Sherpa takes its parameters from there (see
        :func:`madnis_py.physics.shims.write_sherpa_run_card`), initialises in that
        directory (it writes ``Process/`` and its log ``sherpa.log`` there, nothing onto
        stdout) and ignores the ``alpha_s`` and ``scale2`` arguments of calls. |M|^2 follows
        MadGraph's convention.

        Sherpa keeps its state in process-wide globals: one Sherpa run per process. A second
        ``from_sherpa`` in a process that already opened one (or failed to) raises; open
        further runs in other processes. Sherpa ends the process itself on some run-card
        errors (``exit``, or a crash), saying so on stderr. See ``docs/sherpa.md``.

        Raises
        ------
        FileNotFoundError
            The library or ``run_dir/Sherpa.yaml`` does not exist.
        MatrixElementError
            Sherpa failed to initialise the run (the message has Sherpa's error; its log is
            ``run_dir/sherpa.log``), or Sherpa already runs in this process.
        """
        library, run_dir = Path(library), Path(run_dir)
        if not library.is_file():
            raise FileNotFoundError(f"matrix-element library {library} does not exist")
        if not (run_dir / "Sherpa.yaml").is_file():
            raise FileNotFoundError(f"{run_dir}: no Sherpa.yaml run card")
        # The shim exports madnis_abi_version_ but no card reader: initialise_ gets the run
        # directory, and reports failures through madnis_sherpa_error_.
        me = cls._open(library, run_dir, madgraph_abi=False)
        error = me._library_error()
        if error:
            raise MatrixElementError(f"{library}: {error}")
        return me

    @classmethod
    def _open(cls, library: Path, init_path: Path, *, madgraph_abi: bool) -> MatrixElement:
        resolved = str(init_path.resolve())
        if len(resolved) > _PATH_LENGTH:
            raise ValueError(f"path {resolved} is longer than the {_PATH_LENGTH} characters "
                             "initialise_ accepts")
        ffi = _ffi()
        lib = cls._dlopen_private_copy(ffi, library)
        me = cls(library, init_path, lib, ffi)
        if madgraph_abi:
            me._check_abi()
        if madgraph_abi and (me._has("get_pdg_order_") or me._has("lha_loadcard_")):
            # MadGraph's card reader: every check before the library's first call.
            ident_card = _find_ident_card(library, init_path)
            _check_working_directory(ident_card, library)
            staged = _stage_cards(init_path, ident_card)
            try:
                if me._has("get_pdg_order_"):
                    me._table = me._read_table()
                me._initialise(str(staged / "param_card.dat"))
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        else:
            me._initialise(resolved)
        return me

    @staticmethod
    def _dlopen_private_copy(ffi: Any, library: Path) -> Any:
        # dlopen returns the handle already open for a path (or for the same file), and
        # with it the COMMON blocks of every other object: open a copy of our own. Its
        # file is removed right away; the mapping lives on (nothing is left behind when
        # the process is killed).
        private = Path(tempfile.mkdtemp(prefix="madnis_me_"))
        try:
            copy = private / library.name
            shutil.copyfile(library, copy)
            os.chmod(copy, 0o700)
            try:
                return ffi.dlopen(str(copy))
            except OSError as err:
                raise MatrixElementError(
                    f"cannot open matrix-element library {library} (from its private copy "
                    f"in {private}; if the temporary directory is mounted noexec, set "
                    f"TMPDIR to another): {err}") from err
        finally:
            shutil.rmtree(private, ignore_errors=True)

    def _amp2_width(self) -> int:
        """The row of per-diagram |M_i|^2 the library may write: its own
        ``madnis_max_amp2_()`` (the most diagrams of any of its subprocesses), else
        ``MADNIS_MAX_AMP2`` = 64, the bound every library without it keeps."""
        if not self._has("madnis_max_amp2_"):
            return int(ext.ME_MAX_AMP2)
        width = int(self._symbol("madnis_max_amp2_")())
        if not 1 <= width <= 1 << 20:
            raise MatrixElementError(f"{self.library}: madnis_max_amp2_() returned {width}, "
                                     "not a number of diagrams (1 to 2^20)")
        return width

    def _has(self, name: str) -> bool:
        try:
            self._symbol(name)
        except MatrixElementError:
            return False
        return True

    def _check_abi(self) -> None:
        if self._has("madnis_abi_version_") or self._has("get_pdg_order_"):
            return
        madgraph = self._has("lha_loadcard_")
        what = ("is a MadGraph standalone output built without --prefix=int" if madgraph
                else "looks like a MadGraph standalone output built without --prefix=int "
                     "(or is not a MadGraph library at all)")
        raise MatrixElementError(
            f"{self.library} {what}: it exports neither get_pdg_order_ nor "
            "madnis_abi_version_, and its smatrixhel_ then takes 3 arguments (P, HEL, ANS), "
            "not the 8 madnis_py passes. Supported are the libraries of MadGraph's `output "
            "standalone DIR --prefix=int` (or madnis_py's MadGraph output mode) and the "
            "built-in processes; nothing of this library was called")

    def _read_table(self) -> tuple[tuple[int, tuple[int, ...]], ...]:
        pdg = np.full(_TABLE_PDGS, _SENTINEL, dtype=np.int32)
        procs = np.full(_TABLE_PROCS, _SENTINEL, dtype=np.int32)
        with self._lock:
            self._symbol("get_pdg_order_")(self._ffi.cast("int*", self._ffi.from_buffer(pdg)),
                                           self._ffi.cast("int*",
                                                          self._ffi.from_buffer(procs)))
        nproc = int(np.argmax(procs == _SENTINEL)) if procs[-1] == _SENTINEL else -1
        written = int(np.argmax(pdg == _SENTINEL)) if pdg[-1] == _SENTINEL else -1
        if (nproc <= 0 or written <= 0 or written % nproc != 0
                or np.any(procs[nproc:] != _SENTINEL) or np.any(pdg[written:] != _SENTINEL)):
            raise MatrixElementError(f"{self.library}: get_pdg_order_ returned no readable "
                                     f"subprocess table ({nproc} process ids, {written} "
                                     "PDG codes)")
        nlegs = written // nproc
        # Fortran PDG(NPROC, NLEGS), column-major; shorter subprocesses padded with 0.
        table = pdg[:written].reshape(nlegs, nproc).T
        rows = []
        for pid, row in zip(procs[:nproc].tolist(), table.tolist(), strict=True):
            while row and row[-1] == 0:
                row.pop()
            rows.append((int(pid), tuple(int(x) for x in row)))
        return tuple(rows)

    @property
    def subprocesses(self) -> tuple[tuple[int, ...], ...] | None:
        """The PDG lists (incoming first) the library answers, in its order.

        Read from MadGraph's ``get_pdg_order_``; ``None`` for a library without this table
        (the built-in processes), whose unknown PDG lists are detected by the untouched
        answer instead.
        """
        return None if self._table is None else tuple(row for _, row in self._table)

    def _check_pdgs(self, pdgs: Sequence[int], procid: int) -> None:
        if self._table is None:
            return
        key = tuple(int(x) for x in pdgs)
        ids = [pid for pid, row in self._table if row == key]
        if ids and (procid <= 0 or procid in ids):
            return
        shown = [f"{list(row)} (procid {pid})"
                 for pid, row in self._table[:_SHOWN_SUBPROCESSES]]
        if len(self._table) > _SHOWN_SUBPROCESSES:
            shown.append(f"... ({len(self._table)} in all)")
        which = (f"the PDG list {list(pdgs)}" if not ids or procid <= 0
                 else f"the PDG list {list(pdgs)} with procid {procid}")
        raise MatrixElementError(f"{self.library}: no subprocess has {which}; the library "
                                 f"has {', '.join(shown)}")

    def _symbol(self, name: str) -> Any:
        try:
            return getattr(self._lib, name)
        except (AttributeError, NotImplementedError) as err:
            raise MatrixElementError(f"{self.library}: no symbol {name!r} (is this a MadGraph "
                                     "standalone library, output with --prefix=int?)") from err

    def _library_error(self) -> str:
        """The last error a Sherpa shim recorded ("" for other libraries)."""
        if not self._has("madnis_sherpa_error_"):
            return ""
        with self._lock:
            return str(self._ffi.string(self._symbol("madnis_sherpa_error_")()).decode(
                errors="replace"))

    def _address(self, name: str) -> int:
        return int(self._ffi.cast("uintptr_t", self._symbol(name)))

    def _initialise(self, path: str) -> None:
        buf = self._ffi.new(f"char[{_PATH_LENGTH}]", path.ljust(_PATH_LENGTH).encode())
        flag = self._ffi.new("int*", 0)
        with self._lock:
            # Older outputs have no switch; they may write param.log.
            with contextlib.suppress(MatrixElementError):
                self._symbol("setparamlog_")(flag)
            for name in ("initialise_", "setpara_", "initialisemodel_"):
                try:
                    init = self._symbol(name)
                except MatrixElementError:
                    continue
                init(buf, _PATH_LENGTH)
                return
        raise MatrixElementError(f"{self.library}: none of initialise_, setpara_, "
                                 "initialisemodel_ is exported")

    @property
    def has_amp2(self) -> bool:
        """Whether the library exports per-diagram |M_i|^2 (``madnis_amp2_``)."""
        return self._amp2 is not None

    def __repr__(self) -> str:
        return f"MatrixElement({str(self.library)!r}, param_card={str(self.param_card)!r})"

    @staticmethod
    def _inputs(momenta: Any, pdgs: Sequence[int], alpha_s: Any,
                scale2: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        p = momenta.detach().cpu().numpy() if isinstance(momenta, torch.Tensor) else momenta
        p = np.ascontiguousarray(p, dtype=np.float64)
        pd = np.ascontiguousarray(pdgs, dtype=np.int32)
        if p.ndim != 3 or p.shape[1:] != (pd.size, 4):
            raise ValueError(f"momenta: expected shape (n, {pd.size}, 4) for PDG list "
                             f"{list(pdgs)}, got {p.shape}")
        n = p.shape[0]
        a = np.ascontiguousarray(np.broadcast_to(np.asarray(alpha_s, dtype=np.float64),
                                                 (n,) if np.ndim(alpha_s) else (1,)))
        s = np.ascontiguousarray(np.broadcast_to(np.asarray(scale2, dtype=np.float64),
                                                 a.shape))
        if a.shape[0] not in (1, n):
            raise ValueError(f"alpha_s: expected a scalar or {n} values, got {a.shape}")
        return p, pd, a, s

    def __call__(self, momenta: Any, pdgs: Sequence[int], *, alpha_s: Any = 0.118,
                 scale2: Any = 0.0, procid: int = -1) -> np.ndarray:
        """|M|^2 ``(n,)`` for momenta ``(n, nparticles, 4)`` of the subprocess ``pdgs``.

        ``alpha_s`` and ``scale2`` (the renormalisation scale squared; 0 lets the couplings
        follow alpha_s) are scalars or per-event arrays. A PDG list the library's
        subprocess table (:attr:`subprocesses`) lacks raises before the library is called.
        """
        self._check_pdgs(pdgs, procid)
        p, pd, a, s = self._inputs(momenta, pdgs, alpha_s, scale2)
        out = np.empty(p.shape[0])
        with self._lock:
            bad = ext.me_smatrixhel(self._smatrixhel, pd, procid, p, a, s, -1, out)
        if bad >= 0:
            raise MatrixElementError(f"{self.library}: no subprocess has the PDG list "
                                     f"{list(pdgs)} (procid {procid}); smatrixhel_ left its "
                                     "answer untouched")
        self._again_light_like(
            lambda q, a_q, s_q, m2: ext.me_smatrixhel(self._smatrixhel, pd, procid, q, a_q,
                                                      s_q, -1, m2),
            p, a, s, ~np.isfinite(out), out)
        self._check_finite(out, p, pdgs)
        return out

    def _again_light_like(self, evaluate: Callable[..., object], p: np.ndarray,
                          alpha_s: np.ndarray, scale2: np.ndarray, nan: np.ndarray,
                          *outputs: np.ndarray) -> None:
        """Evaluate the events ``nan`` (a mask) again at their momenta made light-like
        where rounding left them space-like (:func:`light_like_again`), into their rows
        of ``outputs``: ``evaluate(momenta, alpha_s, scale2, *outputs)`` is the library
        call. Nothing where no such momentum is."""
        again = light_like_again(p[nan]) if nan.any() else None
        if again is None:
            return
        if alpha_s.shape[0] > 1:  # per-event couplings: those of the events again
            alpha_s = np.ascontiguousarray(alpha_s[nan])
            scale2 = np.ascontiguousarray(scale2[nan])
        parts = [np.zeros((len(again), *out.shape[1:])) for out in outputs]
        with self._lock:
            evaluate(again, alpha_s, scale2, *parts)
        for out, part in zip(outputs, parts, strict=True):
            out[nan] = part

    def _check_finite(self, m2: np.ndarray, p: np.ndarray, pdgs: Sequence[int]) -> None:
        """A non-finite |M|^2 is an error naming the event (and the library's own error)."""
        if np.all(np.isfinite(m2)):
            return
        first = int(np.nonzero(~np.isfinite(m2))[0][0])
        detail = self._library_error()
        if detail:
            raise MatrixElementError(f"{self.library}: |M|^2 is {m2[first]} at event "
                                     f"{first} of {list(pdgs)}: {detail}")
        event = p[first]
        if not (np.all(np.isfinite(event)) and np.all(event[:, 0] >= 0)):
            raise MatrixElementError(
                f"{self.library}: |M|^2 is {m2[first]} at event {first} of {list(pdgs)}, "
                f"whose momenta are unphysical ({event.tolist()}: a negative or non-finite "
                "energy or component): the phase-space map, not the library, is at fault")
        raise MatrixElementError(
            f"{self.library}: |M|^2 is {m2[first]} at event {first} of {list(pdgs)} "
            f"(momenta {event.tolist()}); a library that could not read its "
            f"param_card {self.param_card} answers NaN: see its message on stderr")

    def amp2(self, momenta: Any, pdgs: Sequence[int], *, alpha_s: Any = 0.118,
             scale2: Any = 0.0, procid: int = -1) -> np.ndarray:
        """Per-diagram |M_i|^2 ``(n, n_diagrams)`` (the channel prior of MadGraph).

        Raises
        ------
        MatrixElementError
            The library does not export ``madnis_amp2_`` (MadGraph's standalone output
            does not; the integrand then builds the prior from propagator denominators),
            or no subprocess matches.
        """
        if self._amp2 is None:
            raise MatrixElementError(f"{self.library} exports no per-diagram |M_i|^2 "
                                     "(madnis_amp2_)")
        self._check_pdgs(pdgs, procid)
        p, pd, a, s = self._inputs(momenta, pdgs, alpha_s, scale2)
        out = np.zeros((p.shape[0], self.amp2_width))
        with self._lock:
            count = ext.me_amp2(self._amp2, pd, procid, p, a, s, out)
        self._check_count(count, "madnis_amp2_", pdgs)
        self._again_light_like(
            lambda q, a_q, s_q, amp2: ext.me_amp2(self._amp2, pd, procid, q, a_q, s_q, amp2),
            p, a, s, ~np.all(np.isfinite(out), axis=1), out)
        return out[:, :count]

    def _check_count(self, count: int, symbol: str, pdgs: Sequence[int]) -> None:
        """The errors of the batched per-diagram calls (-1, -2 and -3)."""
        if count == -1:
            raise MatrixElementError(f"{self.library}: no subprocess has the PDG list "
                                     f"{list(pdgs)} ({symbol} wrote nothing)")
        if count == -2:
            raise MatrixElementError(f"{self.library}: {symbol} changed its number of "
                                     "diagrams between events")
        if count == -3:
            raise MatrixElementError(
                f"{self.library}: {symbol} wrote more diagrams for {list(pdgs)} than the "
                f"row of {self.amp2_width} it was given (madnis_max_amp2_, or 64 without "
                "it): the library is inconsistent; rebuild it with `output madnis_py`")

    def smatrix_amp2(self, momenta: Any, pdgs: Sequence[int], *, alpha_s: Any = 0.118,
                     scale2: Any = 0.0, procid: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """|M|^2 ``(n,)`` and the per-diagram |M_i|^2 ``(n, n_diagrams)`` together: from
        one evaluation where the library exports ``madnis_smatrix_amp2_`` (the output of
        ``output madnis_py``), else from :meth:`__call__` and :meth:`amp2` (two)."""
        if self._both is None:
            return (self(momenta, pdgs, alpha_s=alpha_s, scale2=scale2, procid=procid),
                    self.amp2(momenta, pdgs, alpha_s=alpha_s, scale2=scale2, procid=procid))
        self._check_pdgs(pdgs, procid)
        p, pd, a, s = self._inputs(momenta, pdgs, alpha_s, scale2)
        ans = np.empty(p.shape[0])
        out = np.zeros((p.shape[0], self.amp2_width))
        with self._lock:
            count = ext.me_smatrix_amp2(self._both, pd, procid, p, a, s, ans, out)
        self._check_count(count, "madnis_smatrix_amp2_", pdgs)
        self._again_light_like(
            lambda q, a_q, s_q, m2, amp2: ext.me_smatrix_amp2(self._both, pd, procid, q, a_q,
                                                              s_q, m2, amp2),
            p, a, s, ~np.isfinite(ans), ans, out)
        self._check_finite(ans, p, pdgs)
        return ans, out[:, :count]

    # -- torch tensors on any device ---------------------------------------------------

    @property
    def has_device_entry(self) -> bool:
        """Whether the library has device entry points (``madnis_smatrix_device_``, a
        built-in compiled with nvcc): CUDA momenta are then evaluated without a copy."""
        return self._device_entry is not None

    def evaluate(self, momenta: torch.Tensor, pdgs: Sequence[int], *,
                 alpha_s: torch.Tensor | float = 0.118, scale2: torch.Tensor | float = 0.0,
                 procid: int = -1, amp2: bool = False
                 ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """|M|^2 ``(n,)`` (and with ``amp2`` the per-diagram |M_i|^2 ``(n, n_diagrams)``)
        of torch momenta ``(n, nparticles, 4)``, returned as float64 tensors on their
        device.

        CPU tensors go to the library as numpy views. CUDA tensors go to the library's
        device entry points (:attr:`has_device_entry`) on torch's current stream, with
        no copy; a host library gets them through :class:`HostStaging`: momenta, alpha_s
        and scale2 packed into one page-locked buffer (one copy to the host), the
        answers into another (one copy back).
        """
        pd = [int(x) for x in pdgs]
        n = int(momenta.shape[0])
        if momenta.dim() != 3 or tuple(momenta.shape[1:]) != (len(pd), 4):
            raise ValueError(f"momenta: expected shape (n, {len(pd)}, 4) for PDG list "
                             f"{pd}, got {tuple(momenta.shape)}")
        dev = momenta.device
        p = momenta.detach().to(torch.float64).contiguous()
        a = torch.as_tensor(alpha_s, dtype=torch.float64, device=dev).expand(n).contiguous()
        s2 = torch.as_tensor(scale2, dtype=torch.float64, device=dev).expand(n).contiguous()
        if dev.type == "cuda" and self._device_entry is not None:
            return self._evaluate_device(p, pd, a, s2, procid, amp2)
        if dev.type == "cpu":
            pn, an, sn = p.numpy(), a.numpy(), s2.numpy()
            if amp2:
                m2, d2 = self.smatrix_amp2(pn, pd, alpha_s=an, scale2=sn, procid=procid)
                return torch.from_numpy(m2), torch.from_numpy(np.ascontiguousarray(d2))
            return torch.from_numpy(self(pn, pd, alpha_s=an, scale2=sn, procid=procid))
        # a host library and device tensors: one copy each way
        packed = torch.cat([p.reshape(n, -1), a[:, None], s2[:, None]], dim=1)
        host = self._staging.to_host("me_in", packed)
        k = 4 * len(pd)
        ph = np.ascontiguousarray(host[:, :k]).reshape(n, len(pd), 4)
        ah, sh = np.ascontiguousarray(host[:, k]), np.ascontiguousarray(host[:, k + 1])
        if amp2:
            m2, d2 = self.smatrix_amp2(ph, pd, alpha_s=ah, scale2=sh, procid=procid)
            out = self._staging.to_device("me_out", np.concatenate([m2[:, None], d2], axis=1),
                                          dev)
            return out[:, 0], out[:, 1:]
        return self._staging.to_device("me_out", self(ph, pd, alpha_s=ah, scale2=sh,
                                                      procid=procid), dev)

    def _evaluate_device(self, p: torch.Tensor, pdgs: list[int], a: torch.Tensor,
                         s2: torch.Tensor, procid: int,
                         amp2: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The device entry point on CUDA tensors, torch's current stream."""
        self._check_pdgs(pdgs, procid)
        ffi = self._ffi
        n = int(p.shape[0])
        c_pdgs = ffi.new("int[]", pdgs)
        c_procid = ffi.new("int*", procid)
        c_npdg = ffi.new("int*", len(pdgs))
        c_n = ffi.new("int64_t*", n)
        c_namp2 = ffi.new("int*", 0)
        stream = ffi.cast("void*", torch.cuda.current_stream(p.device).cuda_stream)

        def ptr(t: torch.Tensor | None) -> Any:
            return ffi.NULL if t is None else ffi.cast("double*", t.data_ptr())

        ans = torch.empty(n, dtype=torch.float64, device=p.device)
        diagrams = None
        if amp2:  # the diagram count first (n = 0 launches nothing)
            zero = ffi.new("int64_t*", 0)
            self._device_status(self._device_entry(c_pdgs, c_procid, c_npdg, ptr(p), ptr(a),
                                                   ptr(s2), zero, ptr(ans), ffi.NULL,
                                                   c_namp2, stream), pdgs)
            diagrams = torch.empty(n, int(c_namp2[0]), dtype=torch.float64, device=p.device)
        with torch.cuda.device(p.device):
            rc = self._device_entry(c_pdgs, c_procid, c_npdg, ptr(p), ptr(a), ptr(s2), c_n,
                                    ptr(ans), ptr(diagrams), c_namp2, stream)
        self._device_status(rc, pdgs)
        if not bool(torch.isfinite(ans).all()):
            first = int(torch.nonzero(~torch.isfinite(ans))[0, 0])
            raise MatrixElementError(f"{self.library}: |M|^2 is {float(ans[first])} at event "
                                     f"{first} of {pdgs} (device entry point)")
        return ans if diagrams is None else (ans, diagrams)

    def _device_status(self, rc: int, pdgs: Sequence[int]) -> None:
        if rc == 0:
            return
        why = _DEVICE_ERRORS.get(int(rc), f"CUDA error {int(rc)} launching the kernel")
        raise MatrixElementError(f"{self.library}: madnis_smatrix_device_ for {list(pdgs)}: "
                                 f"{why}")


class HostStaging:
    """Reusable host buffers for a host round trip of device tensors: page-locked when
    CUDA is available (so the copies are DMA transfers), grown, never shrunk.

    Each key is one buffer: :meth:`to_host` copies a tensor into it and waits for the
    copy; :meth:`to_device` copies an array back asynchronously on torch's current
    stream. A key's buffer is only rewritten after the next :meth:`to_host` has waited on
    that stream, which orders it after the previous copy back.
    """

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}
        self.copies = 0  # copies made, either way (the benchmark reports it)

    def _buffer(self, key: str, shape: tuple[int, ...]) -> torch.Tensor:
        size = int(np.prod(shape))
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < size:
            buf = torch.empty(max(size, 1), dtype=torch.float64,
                              pin_memory=torch.cuda.is_available())
            self._buffers[key] = buf
        return buf[:size].view(shape)

    def to_host(self, key: str, t: torch.Tensor) -> np.ndarray:
        """``t`` as a numpy array on the host (a view for a CPU tensor)."""
        t = t.detach().to(torch.float64)
        if t.device.type == "cpu":
            return t.contiguous().numpy()
        buf = self._buffer(key, tuple(t.shape))
        buf.copy_(t, non_blocking=True)
        torch.cuda.current_stream(t.device).synchronize()
        self.copies += 1
        return buf.numpy()

    def to_device(self, key: str, a: np.ndarray, device: torch.device) -> torch.Tensor:
        """``a`` as a float64 tensor on ``device``."""
        a = np.asarray(a, dtype=np.float64)
        if device.type == "cpu":
            return torch.from_numpy(np.ascontiguousarray(a))
        buf = self._buffer(key, a.shape)
        buf.numpy()[...] = a
        self.copies += 1
        return buf.to(device, non_blocking=True)
