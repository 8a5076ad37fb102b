"""Matrix elements of torch tensors on any device (MatrixElement.evaluate, HostStaging)
and the device ABI of a built-in compiled with nvcc (processes/common/madnis_process.h).

Without a GPU: ``evaluate`` on CPU tensors gives exactly the numpy calls; the host-side
logic of ``madnis_smatrix_device_`` (subprocess lookup, diagram count, error codes) is
called through cffi where the ee_mumu and drell_yan libraries were built with CUDA. The ``cuda`` tests
compare the CUDA kernel with the C library and count the host round trip's copies.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import load_process
from madnis_py.physics.matrix_element import HostStaging, MatrixElement, MatrixElementError

EE = [-11, 11, -13, 13]
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _momenta(n: int, sqrt_s: float = 500.0, seed: int = 1) -> torch.Tensor:
    r = torch.rand(n, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    batch = Rambo([0.0, 0.0], Beams(sqrt_s, False)).map(r)
    return batch.momenta


@pytest.fixture(scope="module")
def ee_mumu() -> MatrixElement:
    return load_process("ee_mumu").matrix_element()


def test_evaluate_on_cpu_is_the_numpy_call(ee_mumu: MatrixElement) -> None:
    p = _momenta(2000)
    want = ee_mumu(p.numpy(), EE)
    got = ee_mumu.evaluate(p, EE)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), want)
    m2, amp2 = ee_mumu.evaluate(p, EE, alpha_s=torch.full((2000,), 0.12), amp2=True)
    want_m2, want_amp2 = ee_mumu.smatrix_amp2(p.numpy(), EE, alpha_s=0.12)
    np.testing.assert_array_equal(m2.numpy(), want_m2)
    np.testing.assert_array_equal(amp2.numpy(), want_amp2)
    with pytest.raises(ValueError, match=r"expected shape \(n, 4, 4\)"):
        ee_mumu.evaluate(p[:, :3], EE)


def test_host_staging_on_the_cpu_makes_no_copies() -> None:
    staging = HostStaging()
    t = torch.arange(12, dtype=torch.float64).reshape(3, 4)
    host = staging.to_host("a", t)
    assert np.shares_memory(host, t.numpy())
    back = staging.to_device("b", host * 2, torch.device("cpu"))
    np.testing.assert_array_equal(back.numpy(), 2 * t.numpy())
    assert staging.copies == 0


def _device_abi(me: MatrixElement) -> None:
    if not me.has_device_entry:
        pytest.skip(f"{me.library.name} was built without CUDA (no nvcc at build time)")


def test_device_abi_host_side(ee_mumu: MatrixElement) -> None:
    """n = 0 launches nothing (no GPU needed): the diagram count and the error codes."""
    _device_abi(ee_mumu)
    ffi, entry = ee_mumu._ffi, ee_mumu._device_entry

    def call(pdgs: list[int], namp2: int, with_amp2: bool) -> tuple[int, int]:
        n = ffi.new("int64_t*", 0)
        count = ffi.new("int*", namp2)
        dummy = ffi.new("double[1]")
        rc = entry(ffi.new("int[]", pdgs), ffi.new("int*", -1), ffi.new("int*", len(pdgs)),
                   ffi.NULL, ffi.NULL, ffi.NULL, n, dummy, dummy if with_amp2 else ffi.NULL,
                   count, ffi.NULL)
        return int(rc), int(count[0])

    assert call(EE, 0, False) == (0, 2)  # photon and Z
    assert call(EE, 2, True) == (0, 2)
    assert call(EE, 3, True)[0] == -3  # the amp2 row length is not the diagram count
    assert call([-11, 11, 13, -13], 0, False)[0] == -1  # no such subprocess
    with pytest.raises(MatrixElementError, match="no subprocess has the PDG list"):
        ee_mumu._device_status(-1, EE)


@pytest.mark.cuda
@needs_gpu
def test_cuda_kernel_matches_the_c_library(ee_mumu: MatrixElement) -> None:
    _device_abi(ee_mumu)
    p = _momenta(100_000)
    want_m2, want_amp2 = ee_mumu.smatrix_amp2(p.numpy(), EE)
    m2 = ee_mumu.evaluate(p.cuda(), EE)
    np.testing.assert_allclose(m2.cpu().numpy(), want_m2, rtol=1e-12)
    m2, amp2 = ee_mumu.evaluate(p.cuda(), EE, amp2=True)
    np.testing.assert_allclose(m2.cpu().numpy(), want_m2, rtol=1e-12)
    np.testing.assert_allclose(amp2.cpu().numpy(), want_amp2, rtol=1e-12)
    assert ee_mumu._staging.copies == 0  # no host round trip
    with pytest.raises(MatrixElementError, match="no subprocess"):
        ee_mumu.evaluate(p.cuda(), [-11, 11, 13, -13])


@pytest.mark.cuda
@needs_gpu
def test_cuda_host_round_trip_is_one_copy_each_way() -> None:
    me = load_process("ee_qqg").matrix_element()
    r = torch.rand(5000, 12, dtype=torch.float64)
    p = Rambo([0.0, 0.0, 0.0], Beams(500.0, False)).map(r).momenta
    pdgs = [-11, 11, 1, -1, 21]
    want = me(p.numpy(), pdgs)
    got = me.evaluate(p.cuda(), pdgs)
    assert got.is_cuda
    np.testing.assert_array_equal(got.cpu().numpy(), want)
    assert me._staging.copies == 2


@pytest.mark.parametrize("name", ["ee_mumu", "drell_yan"])
def test_gets_a_cuda_matrix_element_when_nvcc_is_found(name: str) -> None:
    import os
    import shutil
    from pathlib import Path

    if os.environ.get("MADNIS_PY_CUDA", "auto") == "0" or shutil.which("nvcc") is None:
        pytest.skip("nvcc not on PATH (or MADNIS_PY_CUDA=0): CPU-only build expected")
    me = load_process(name).matrix_element()
    root = Path(__file__).resolve().parents[2] / "processes"
    for source in (root / "common/neutral_current_cuda.cu", root / name / f"{name}.c"):
        if source.is_file() and me.library.stat().st_mtime < source.stat().st_mtime:
            pytest.skip(f"{me.library} predates {source.name}: rebuild (pip install -e .)")
    assert me.has_device_entry, (f"nvcc is on PATH but {me.library} was built without "
                                 "the device entry points")


def test_drell_yan_device_abi_host_side() -> None:
    """drell_yan's device entry points (the neutral-current macro ee_mumu uses): the
    diagram count and the subprocess look-up, called through cffi without a GPU."""
    me = load_process("drell_yan").matrix_element()
    _device_abi(me)
    ffi, entry = me._ffi, me._device_entry
    n = ffi.new("int64_t *", 0)
    namp2 = ffi.new("int *", 0)
    for pdgs, ok in (([2, -2, -11, 11], True), ([-1, 1, -11, 11], True),
                     ([21, 21, -11, 11], False)):
        pdg = ffi.new("int[]", pdgs)
        rc = entry(pdg, ffi.new("int *", -1), ffi.new("int *", 4), ffi.NULL, ffi.NULL,
                   ffi.NULL, n, ffi.NULL, ffi.NULL, namp2, ffi.NULL)
        assert (rc == 0) == ok, (pdgs, rc)
        if ok:
            assert namp2[0] == 2  # photon and Z


@pytest.mark.cuda
@needs_gpu
def test_cuda_drell_yan_kernel_matches_the_c_library() -> None:
    me = load_process("drell_yan").matrix_element()
    _device_abi(me)
    p = _momenta(50_000, sqrt_s=200.0)
    for pdgs in ([2, -2, -11, 11], [-1, 1, -11, 11], [3, -3, -11, 11]):
        want_m2, want_amp2 = me.smatrix_amp2(p.numpy(), pdgs)
        m2, amp2 = me.evaluate(p.cuda(), pdgs, amp2=True)
        np.testing.assert_allclose(m2.cpu().numpy(), want_m2, rtol=1e-12)
        np.testing.assert_allclose(amp2.cpu().numpy(), want_amp2, rtol=1e-12)
    assert me._staging.copies == 0
