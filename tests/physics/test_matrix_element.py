"""The cffi loader of MadGraph-standalone-ABI libraries, exercised on a built-in process."""

from __future__ import annotations

import ctypes.util
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import (
    MatrixElement,
    MatrixElementError,
    builtin_library,
    builtin_process_dir,
)

CARD = builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat"
PDGS = [-11, 11, -13, 13]


@pytest.fixture(scope="module")
def me() -> MatrixElement:
    return MatrixElement.from_madgraph(builtin_library("ee_mumu"), CARD)


def momenta(n: int, sqrt_s: float = 500.0, seed: int = 0) -> np.ndarray:
    rambo = Rambo([0.0, 0.0], Beams(sqrt_s))
    return rambo.map(np.random.default_rng(seed).random((n, 8))).momenta


def test_batched_loop_equals_one_cffi_call_per_event(me: MatrixElement) -> None:
    import cffi

    p = momenta(200)
    batched = me(p, PDGS, alpha_s=0.118)
    ffi = cffi.FFI()
    ffi.cdef("void smatrixhel_(const int*, const int*, const int*, const double*, "
             "const double*, const double*, const int*, double*);"
             "void initialise_(const char*, size_t);")
    # The loader opened a private copy: this handle is initialised here, with the same card.
    lib = ffi.dlopen(str(builtin_library("ee_mumu")))
    lib.initialise_(ffi.new("char[512]", str(CARD.resolve()).ljust(512).encode()), 512)
    pd = ffi.new("int[4]", PDGS)
    one = []
    for ev in p:
        ans = ffi.new("double*")
        lib.smatrixhel_(pd, ffi.new("int*", -1), ffi.new("int*", 4),
                        ffi.cast("double*", ffi.from_buffer(np.ascontiguousarray(ev))),
                        ffi.new("double*", 0.118), ffi.new("double*", 0.0),
                        ffi.new("int*", -1), ans)
        one.append(ans[0])
    np.testing.assert_array_equal(batched, np.array(one))
    assert np.all(batched > 0)


def test_per_event_alpha_s_and_torch_input(me: MatrixElement) -> None:
    import torch

    p = momenta(10)
    a = me(p, PDGS, alpha_s=np.full(10, 0.118))
    b = me(torch.from_numpy(p), PDGS)
    np.testing.assert_array_equal(a, b)


def test_missing_library_and_card() -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.so does not exist"):
        MatrixElement.from_madgraph("/nowhere.so", CARD)
    with pytest.raises(FileNotFoundError, match="param_card /no/card.dat does not exist"):
        MatrixElement.from_madgraph(builtin_library("ee_mumu"), "/no/card.dat")


def test_missing_symbol_and_no_prefix_keyword() -> None:
    libm = ctypes.util.find_library("m")
    assert libm is not None
    path = next(p for p in (Path("/lib/x86_64-linux-gnu") / libm, Path("/usr/lib") / libm,
                            Path("/lib64") / libm) if p.exists())
    with pytest.raises(MatrixElementError, match="no symbol 'smatrixhel_'"):
        MatrixElement.from_madgraph(path, CARD)
    # MadGraph's --prefix renames the per-process routines, never the dispatcher's symbols.
    with pytest.raises(TypeError, match="prefix"):
        MatrixElement.from_madgraph(builtin_library("ee_mumu"), CARD,
                                    prefix="mg5_")  # type: ignore[call-arg]


def test_not_a_library() -> None:
    with pytest.raises(MatrixElementError, match="cannot open matrix-element library"):
        MatrixElement.from_madgraph(CARD, CARD)


def test_pdg_list_matching_no_subprocess_raises(me: MatrixElement) -> None:
    with pytest.raises(MatrixElementError, match=r"no subprocess has the PDG list \[-11, 11, "
                                                 r"-15, 15\]"):
        me(momenta(3), [-11, 11, -15, 15])
    with pytest.raises(ValueError, match=r"momenta: expected shape \(n, 5, 4\)"):
        me(momenta(3), [-11, 11, -13, 13, 22])


def test_missing_card_does_not_kill_the_interpreter(tmp_path: Path) -> None:
    # The card check happens before the library sees the path (a Fortran STOP would end
    # the process); run it in a child interpreter to prove it survives.
    code = (f"from madnis_py.physics import MatrixElement\n"
            f"try:\n    MatrixElement.from_madgraph({str(builtin_library('ee_mumu'))!r}, "
            f"{str(tmp_path / 'gone.dat')!r})\n"
            f"except FileNotFoundError:\n    print('alive')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.strip() == "alive", out.stderr


def test_no_param_log_in_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    MatrixElement.from_madgraph(builtin_library("ee_mumu"), CARD)
    assert not (tmp_path / "param.log").exists()


def test_amp2_has_one_column_per_diagram(me: MatrixElement) -> None:
    amp2 = me.amp2(momenta(50), PDGS)
    assert amp2.shape == (50, 2) and np.all(amp2 > 0)
    assert math.isfinite(float(amp2.sum()))


def test_malformed_card_names_file_and_line(tmp_path: Path) -> None:
    from madnis_py.physics.slha import SLHAError

    card = tmp_path / "param_card.dat"
    card.write_text(CARD.read_text().replace("DECAY  23 2.441404e+00", "DECAY  23 Auto"))
    with pytest.raises(SLHAError, match=r"param_card.dat:\d+: cannot read 'DECAY  23 Auto"):
        MatrixElement.from_madgraph(builtin_library("ee_mumu"), card)


def test_incomplete_card_gives_an_error_not_nan(tmp_path: Path) -> None:
    # Syntactically fine, but without MZ: the built-in library cannot derive its
    # parameters and answers NaN, which the loader turns into an error.
    card = tmp_path / "param_card.dat"
    card.write_text("\n".join(line for line in CARD.read_text().splitlines()
                              if "# MZ" not in line))
    # A copy of the library: its parameters are process-global (COMMON blocks / statics),
    # and the shared one must keep its good card for the other tests.
    lib = tmp_path / "ee_mumu_copy.so"
    shutil.copy(builtin_library("ee_mumu"), lib)
    me = MatrixElement.from_madgraph(lib, card)
    with pytest.raises(MatrixElementError, match="answers NaN"):
        me(momenta(2), PDGS)


def test_nan_at_unphysical_momenta_blames_the_momenta(tmp_path: Path) -> None:
    """NaN at a point with a negative energy names the momenta, not the param_card (the
    message sent users to the card when a phase-space map gave a neutrino E < 0)."""
    card = tmp_path / "param_card.dat"
    card.write_text("\n".join(line for line in CARD.read_text().splitlines()
                              if "# MZ" not in line))
    lib = tmp_path / "ee_mumu_copy.so"
    shutil.copy(builtin_library("ee_mumu"), lib)
    me = MatrixElement.from_madgraph(lib, card)  # NaN everywhere
    p = momenta(2)
    p[0, 3, 0] = -p[0, 3, 0]
    with pytest.raises(MatrixElementError, match="momenta are unphysical.*phase-space map"):
        me(p, PDGS)
    with pytest.raises(MatrixElementError, match="answers NaN"):
        me(momenta(2), PDGS)


def test_only_rounding_below_the_light_cone_is_made_light_like() -> None:
    """light_like_again: an energy below its |p| by rounding becomes |p| (MadGraph's
    HELAS can answer NaN there; the loader evaluates such NaN points again, checked
    against real MadGraph output in tests/madgraph); a negative or clearly too small
    energy is left alone, and so is the caller's array."""
    from madnis_py.physics.matrix_element import light_like_again

    p = momenta(40)
    size = np.sqrt((p[..., 1] ** 2 + p[..., 2] ** 2) + p[..., 3] ** 2)
    p[..., 0] = np.maximum(p[..., 0], size * (1 + 1e-12))  # time-like beyond rounding
    assert light_like_again(p) is None
    q = p.copy()
    q[5, 2, 0] = size[5, 2]
    q[5, 2, 1:] *= 1 + 2.0 ** -50  # the mu+ space-like by a few ulps
    q[6, 3, 0] = -q[6, 3, 0]  # a negative energy: the map's fault, named as such
    q[7, 3, 0] *= 0.5
    before = q.copy()
    fixed = light_like_again(q)
    assert fixed is not None
    np.testing.assert_array_equal(q, before)
    assert fixed[5, 2, 0] == np.sqrt((q[5, 2, 1] ** 2 + q[5, 2, 2] ** 2) + q[5, 2, 3] ** 2)
    changed = np.zeros(fixed.shape, dtype=bool)
    changed[5, 2, 0] = True
    np.testing.assert_array_equal(fixed[~changed], q[~changed])
