"""Matrix elements from shared libraries with MadGraph's standalone Fortran ABI.

A MadGraph 5 ``standalone`` output compiled to a shared library, and every built-in
process of ``processes/`` (same ABI, see ``processes/common/madnis_process.h``), are loaded
with cffi: the library is opened, the entry points resolved, and their addresses handed to
the compiled core, whose loop over the events calls them (``csrc/matrix_element.cpp``).

Facts of the ABI handled here: ``setparamlog_(0)`` first, or the library writes
``param.log`` into the working directory; ``initialise_`` takes the param_card path as a
blank-padded ``char[512]`` plus its hidden length, and a missing card makes Fortran
``STOP`` (the whole interpreter dies), so the card is checked here first; ``smatrixhel_``
leaves its answer untouched when no subprocess has the PDG list, which is detected and
raised. Without ``--prefix`` MadGraph names the initialisation ``setpara_`` (or
``initialisemodel_``). The library keeps its state in COMMON blocks: one parameter set
per library per process, calls serialised by a lock; run several processes (Dask) for
parallelism.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from madnis_py._core import ext
from madnis_py.physics.slha import read_slha

__all__ = ["MatrixElement", "MatrixElementError"]

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
int madnis_abi_version_(void);
"""


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


class MatrixElement:
    """|M|^2 of a MadGraph standalone (Fortran ABI) library, batched.

    Use :meth:`from_madgraph`. Calling the object with momenta ``(n, nparticles, 4)`` (E,
    px, py, pz in GeV, incoming first, beam 1 along +z) and the PDG list returns |M|^2
    ``(n,)`` averaged over initial spins and colours, summed over helicities.
    """

    _lock = threading.Lock()

    def __init__(self, library: Path, param_card: Path, lib: Any, ffi: Any, prefix: str) -> None:
        self.library = library
        self.param_card = param_card
        self._lib = lib
        self._ffi = ffi
        self._prefix = prefix
        self._smatrixhel = self._address("smatrixhel_")
        try:
            self._amp2: int | None = self._address("madnis_amp2_")
        except MatrixElementError:
            self._amp2 = None

    @classmethod
    def from_madgraph(cls, library: str | Path, param_card: str | Path, *,
                      prefix: str = "") -> MatrixElement:
        """Open a compiled standalone output and initialise it with an SLHA param_card.

        Parameters
        ----------
        library : path
            The shared library (``.so``) built from MadGraph's standalone output (or a
            built-in process, see :func:`madnis_py.physics.builtin_library`).
        param_card : path
            SLHA parameter card the library reads, as MadGraph's ``initialise_`` does.
        prefix : str
            The ``--prefix`` given to MadGraph's output command, prepended to every symbol.

        Raises
        ------
        FileNotFoundError
            The library or the param_card does not exist.
        SLHAError
            The param_card is malformed (the message names file and line).
        MatrixElementError
            The library cannot be opened or lacks an entry point (named in the message).
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
        return cls._open(library, param_card, prefix)

    @classmethod
    def from_sherpa(cls, library: str | Path, run_dir: str | Path) -> MatrixElement:
        """Open a library built by :func:`madnis_py.physics.shims.build_sherpa`.

        ``run_dir`` is the directory of the Sherpa run card (``Sherpa.yaml``) of one
        process; Sherpa takes its parameters from there.
        """
        library, run_dir = Path(library), Path(run_dir)
        if not library.is_file():
            raise FileNotFoundError(f"matrix-element library {library} does not exist")
        if not (run_dir / "Sherpa.yaml").is_file():
            raise FileNotFoundError(f"{run_dir}: no Sherpa.yaml run card")
        return cls._open(library, run_dir, "")

    @classmethod
    def _open(cls, library: Path, init_path: Path, prefix: str) -> MatrixElement:
        resolved = str(init_path.resolve())
        if len(resolved) > _PATH_LENGTH:
            raise ValueError(f"path {resolved} is longer than the {_PATH_LENGTH} characters "
                             "initialise_ accepts")
        ffi = _ffi()
        try:
            lib = ffi.dlopen(str(library.resolve()))
        except OSError as err:
            raise MatrixElementError(f"cannot open matrix-element library {library}: {err}") \
                from err
        me = cls(library, init_path, lib, ffi, prefix)
        me._initialise(resolved)
        return me

    def _symbol(self, name: str) -> Any:
        full = self._prefix + name
        try:
            return getattr(self._lib, full)
        except (AttributeError, NotImplementedError) as err:
            raise MatrixElementError(f"{self.library}: no symbol {full!r} (is this a MadGraph "
                                     "standalone library, and is the prefix right?)") from err

    def _address(self, name: str) -> int:
        return int(self._ffi.cast("uintptr_t", self._symbol(name)))

    def _initialise(self, path: str) -> None:
        buf = self._ffi.new(f"char[{_PATH_LENGTH}]", path.ljust(_PATH_LENGTH).encode())
        flag = self._ffi.new("int*", 0)
        with self._lock:
            try:
                self._symbol("setparamlog_")(flag)
            except MatrixElementError:
                pass  # older outputs have no switch; they may write param.log
            for name in ("initialise_", "setpara_", "initialisemodel_"):
                try:
                    init = self._symbol(name)
                except MatrixElementError:
                    continue
                init(buf, _PATH_LENGTH)
                return
        raise MatrixElementError(f"{self.library}: none of initialise_, setpara_, "
                                 f"initialisemodel_ (prefix {self._prefix!r}) is exported")

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
        follow alpha_s) are scalars or per-event arrays.
        """
        p, pd, a, s = self._inputs(momenta, pdgs, alpha_s, scale2)
        out = np.empty(p.shape[0])
        with self._lock:
            bad = ext.me_smatrixhel(self._smatrixhel, pd, procid, p, a, s, -1, out)
        if bad >= 0:
            raise MatrixElementError(f"{self.library}: no subprocess has the PDG list "
                                     f"{list(pdgs)} (procid {procid}); smatrixhel_ left its "
                                     "answer untouched")
        if not np.all(np.isfinite(out)):
            first = int(np.nonzero(~np.isfinite(out))[0][0])
            raise MatrixElementError(
                f"{self.library}: |M|^2 is {out[first]} at event {first} of {list(pdgs)} "
                f"(momenta {p[first].tolist()}); a library that could not read its "
                f"param_card {self.param_card} answers NaN: see its message on stderr")
        return out

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
        p, pd, a, s = self._inputs(momenta, pdgs, alpha_s, scale2)
        out = np.zeros((p.shape[0], ext.ME_MAX_AMP2))
        with self._lock:
            count = ext.me_amp2(self._amp2, pd, procid, p, a, s, out)
        if count == -1:
            raise MatrixElementError(f"{self.library}: no subprocess has the PDG list "
                                     f"{list(pdgs)} (madnis_amp2_ wrote nothing)")
        if count == -2:
            raise MatrixElementError(f"{self.library}: madnis_amp2_ changed its number of "
                                     "diagrams between events")
        return out[:, :count]
