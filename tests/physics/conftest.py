"""Shared by the tests of the built-in processes (test_builtin_processes_*.py): the
``open_process`` fixture, which compiles a process library with the command setup.py uses
and calls it through cffi with the loader's signature, the one place to swap for
``MatrixElement.from_madgraph(builtin_library(name), card)``.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

PROCESSES = Path(__file__).resolve().parents[2] / "processes"
SM_CARD = PROCESSES / "common" / "param_card_sm.dat"

ALPHA_S = 0.118

_CDEF = """
void setparamlog_(const int* flag);
void initialise_(const char* path, size_t len);
void smatrixhel_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                 const double* alphas, const double* scale2, const int* nhel, double* ans);
int madnis_abi_version_(void);
void madnis_amp2_(const int* pdgs, const int* procid, const int* npdg, const double* p,
                  const double* alphas, const double* scale2, double* amp2, int* namp2);
"""


class ProcessLibrary:
    """One opened copy of a process library, with the loader's call signature."""

    def __init__(self, path: Path, card: Path) -> None:
        import cffi

        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        self.lib = self.ffi.dlopen(str(path))
        self.lib.setparamlog_(self.ffi.new("int*", 0))
        buf = str(card).ljust(512).encode()
        self.lib.initialise_(self.ffi.new("char[512]", buf), 512)

    def call(self, p: np.ndarray, pdgs: list[int], *, alpha_s: float = ALPHA_S,
             procid: int = -1, nhel: int = -1, fill: float = -7.0) -> float:
        """One smatrixhel_ call for one event; ``fill`` is the answer's prior content."""
        ffi = self.ffi
        ans = ffi.new("double*", fill)
        p = np.ascontiguousarray(p, dtype=np.float64)
        self.lib.smatrixhel_(ffi.new("int[]", pdgs), ffi.new("int*", procid),
                             ffi.new("int*", len(pdgs)),
                             ffi.cast("double*", ffi.from_buffer(p)),
                             ffi.new("double*", alpha_s), ffi.new("double*", 0.0),
                             ffi.new("int*", nhel), ans)
        return float(ans[0])

    def __call__(self, momenta: np.ndarray, pdgs: list[int], *, alpha_s: float = ALPHA_S,
                 nhel: int = -1) -> np.ndarray:
        return np.array([self.call(p, pdgs, alpha_s=alpha_s, nhel=nhel) for p in momenta])

    def amp2_raw(self, p: np.ndarray, pdgs: list[int], *, alpha_s: float = ALPHA_S,
                 procid: int = -1) -> np.ndarray:
        ffi = self.ffi
        out = ffi.new("double[64]")
        count = ffi.new("int*", -5)
        p = np.ascontiguousarray(p, dtype=np.float64)
        self.lib.madnis_amp2_(ffi.new("int[]", pdgs), ffi.new("int*", procid),
                              ffi.new("int*", len(pdgs)),
                              ffi.cast("double*", ffi.from_buffer(p)),
                              ffi.new("double*", alpha_s), ffi.new("double*", 0.0), out, count)
        return np.array([out[i] for i in range(count[0])])

    def amp2(self, momenta: np.ndarray, pdgs: list[int], *, alpha_s: float = ALPHA_S
             ) -> np.ndarray:
        return np.array([self.amp2_raw(p, pdgs, alpha_s=alpha_s) for p in momenta])


OpenProcess = Callable[..., ProcessLibrary]


@pytest.fixture(scope="module")
def open_process(tmp_path_factory: pytest.TempPathFactory) -> OpenProcess:
    """``open_process(name, card)``: the process library, initialised with ``card``.

    Each call opens its own copy of the shared object, so that two param_cards of one
    process coexist (a library keeps its parameters in static storage).
    """
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is needed to build the process libraries")
    root = tmp_path_factory.mktemp("processes")
    built: dict[str, Path] = {}
    copies = itertools.count()

    def _open(name: str, card: Path = SM_CARD) -> ProcessLibrary:
        if name not in built:
            lib = root / f"lib{name}.so"
            sources = sorted((PROCESSES / name).glob("*.c")) + sorted(
                (PROCESSES / "common").glob("*.c"))
            cmd = [gcc, "-O2", "-fPIC", "-shared", "-std=c11", "-Wall", "-Werror",
                   f"-I{PROCESSES / 'common'}", *map(str, sources), "-lm", "-o", str(lib)]
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            built[name] = lib
        copy = root / f"lib{name}_{next(copies)}.so"
        shutil.copyfile(built[name], copy)
        return ProcessLibrary(copy, card)

    return _open


def max_rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a / b - 1)))
