"""The device path of the PDF grid reader (madnis_py.physics.pdf.device).

On the CPU, ``DevicePDF`` runs the same torch code a CUDA device runs; it must give the
numpy reader's numbers to rounding everywhere (knots, subgrid edges, inside and outside
the grid). The ``cuda`` tests repeat the comparison on a GPU.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.physics import pdf as pdfmod
from madnis_py.physics.pdf import PDF
from madnis_py.physics.pdf.device import DevicePDF

PIDS = [-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 21, 7]
SETDIR = pdfmod.EMBEDDED_PDFSETS_DIR / "LHToyPDF"


@pytest.fixture(scope="module")
def toy() -> PDF:
    return PDF("LHToyPDF")


def _points(toy: PDF, n: int, *, inside: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    if inside:
        lx = rng.uniform(np.log(toy.x_min), 0.0, n)
        lq = rng.uniform(np.log(toy.q2_min), np.log(toy.q2_max), n)
    else:
        lx = rng.uniform(np.log(toy.x_min) - 3, 0.0, n)
        lq = rng.uniform(np.log(toy.q2_min) - 4, np.log(toy.q2_max) + 3, n)
    x = np.minimum(np.exp(lx), 1.0)
    q2 = np.exp(lq)
    # knots and subgrid edges exactly (the heavy-quark thresholds repeat a Q2 knot)
    grid = toy._backend.grid
    x[:20] = grid.xs[rng.integers(0, grid.xs.size, 20)]
    q2[:40] = grid.q2s[rng.integers(0, grid.q2s.size, 40)]
    return x, q2


def _compare(toy: PDF, dev: DevicePDF, x: np.ndarray, q2: np.ndarray, device: str) -> None:
    xt = torch.as_tensor(x, device=device)
    qt = torch.as_tensor(q2, device=device)
    for pid in PIDS:
        want = toy.xfxQ2(pid, x, q2)
        got = dev.xfxQ2(pid, xt, qt)
        assert got.device == xt.device and got.dtype == torch.float64
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-12, atol=1e-300,
                                   err_msg=f"pid {pid}")


def test_inside_the_grid_matches_the_reader(toy: PDF) -> None:
    x, q2 = _points(toy, 4000, inside=True)
    dev = DevicePDF(toy, "cpu")
    assert dev.on_device
    _compare(toy, dev, x, q2, "cpu")
    assert dev.host_points == 0  # nothing left the device


def test_outside_the_grid_matches_the_reader(toy: PDF) -> None:
    x, q2 = _points(toy, 4000, inside=False)
    dev = DevicePDF(toy, "cpu")
    _compare(toy, dev, x, q2, "cpu")
    outside = ~((x >= toy.x_min) & (q2 >= toy.q2_min) & (q2 <= toy.q2_max))
    # the continuation extrapolator's points (and only those) took the host path
    assert dev.host_points == outside.sum() * (len(PIDS) - 1)  # pid 7 is not in the set


@pytest.mark.parametrize("inside", [True, False])
def test_several_flavours_at_once_are_each_flavours_values(toy: PDF, inside: bool) -> None:
    """xfxQ2_flavours: one knot search for all partons, each column bit for bit xfxQ2
    of its parton (unknown IDs and repeats included), outside the grid too."""
    x, q2 = _points(toy, 3000, inside=inside)
    xt, qt = torch.from_numpy(x), torch.from_numpy(q2)
    pids = [2, -1, 21, 7, 2, 0, 5]
    dev = DevicePDF(toy, "cpu")
    many = dev.xfxQ2_flavours(pids, xt, qt)
    assert many.shape == (len(x), len(pids))
    one = DevicePDF(toy, "cpu")
    for j, pid in enumerate(pids):
        torch.testing.assert_close(many[:, j], one.xfxQ2(pid, xt, qt), rtol=0, atol=0)
    outside = int((~((x >= toy.x_min) & (q2 >= toy.q2_min) & (q2 <= toy.q2_max))).sum())
    # the continuation's points through the host once per known distinct parton
    assert dev.host_points == outside * 4


@pytest.mark.parametrize("inside", [True, False])
def test_both_beams_at_once_are_each_beams_values(toy: PDF, inside: bool) -> None:
    """xfxQ2_beams: each beam's partons at its own x, bit for bit xfxQ2_flavours of that
    beam alone, with one host synchronisation for both beams' outside-the-grid check."""
    from madnis_py.host_syncs import count_host_syncs

    x1, q2 = _points(toy, 2000, inside=inside)
    x2 = np.random.default_rng(4).permutation(x1)
    qt = torch.from_numpy(q2)
    beams = [([2, -1, 21], torch.from_numpy(x1)), ([7, 1, -2, 0], torch.from_numpy(x2))]
    dev = DevicePDF(toy, "cpu")
    with count_host_syncs() as syncs:
        both = dev.xfxQ2_beams(beams, qt)
    looks = sum(k for (op, site), k in syncs.by_site.items()
                if op == "_local_scalar_dense" and site.endswith(" xfxQ2_beams"))
    assert looks == 1, syncs.table()
    if inside:  # outside, the continuation's points are copied to the host too
        assert syncs.total == 1, syncs.table()
    one = DevicePDF(toy, "cpu")
    for (pids, x), got in zip(beams, both, strict=True):
        torch.testing.assert_close(got, one.xfxQ2_flavours(pids, x, qt), rtol=0, atol=0)
    assert dev.host_points == one.host_points
    with pytest.raises(ValueError, match="two 1-d tensors of one length"):
        dev.xfxQ2_beams([([2], torch.from_numpy(x1[:5]))], qt)


def test_nearest_extrapolator_stays_on_the_device(tmp_path: Path, toy: PDF) -> None:
    setdir = tmp_path / "LHToyPDF"
    shutil.copytree(SETDIR, setdir)
    info = setdir / "LHToyPDF.info"
    info.write_text(info.read_text().replace("Extrapolator: continuation",
                                             "Extrapolator: nearest"))
    near = PDF(setdir)
    dev = DevicePDF(near, "cpu")
    x, q2 = _points(near, 2000, inside=False)
    _compare(near, dev, x, q2, "cpu")
    assert dev.host_points == 0


def test_alphas_matches_the_reader(toy: PDF) -> None:
    """The ipol alpha_s on the device: inside the table (thresholds included), below it
    (the power law) and above it (frozen)."""
    dev = DevicePDF(toy, "cpu")
    rng = np.random.default_rng(9)
    q2 = np.exp(rng.uniform(np.log(toy.q2_min) - 3, np.log(toy.q2_max) + 2, 5000))
    knots = np.asarray(toy.info["AlphaS_Qs"], dtype=np.float64) ** 2
    q2[:len(knots)] = knots
    q2[-1] = 0.0
    got = dev.alphasQ2(torch.from_numpy(q2)).numpy()
    np.testing.assert_allclose(got, toy.alphasQ2(q2), rtol=1e-13, atol=0)
    assert dev.host_points == 0


def test_alphas_and_shapes(toy: PDF) -> None:
    dev = DevicePDF(toy, "cpu")
    q2 = torch.tensor([2.0, 91.188 ** 2, 1e6], dtype=torch.float64)
    np.testing.assert_allclose(dev.alphasQ2(q2).numpy(), toy.alphasQ2(q2.numpy()), rtol=1e-14)
    with pytest.raises(ValueError, match="1-d tensors"):
        dev.xfxQ2(21, q2[:, None], q2[:, None])


@pytest.mark.parametrize("variant", [
    {"AlphaS_OrderQCD": "2"},  # Lambdas from alpha_s(MZ), variable flavours, nf <= 6
    {"AlphaS_OrderQCD": "4", "AlphaS_Lambda3": "0.339", "AlphaS_Lambda4": "0.296",
     "AlphaS_Lambda5": "0.213"},
    {"AlphaS_OrderQCD": "3", "AlphaS_Lambda4": "0.3", "AlphaS_Lambda5": "0.22",
     "NumFlavors": "4"},  # nf capped at 4
    {"AlphaS_OrderQCD": "1", "AlphaS_Lambda4": "0.25", "FlavorScheme": "fixed",
     "NumFlavors": "4"},
    {"AlphaS_OrderQCD": "0"},
])
def test_analytic_alphas_stays_on_the_device(tmp_path: Path, variant: dict[str, str]) -> None:
    """An ``analytic`` alpha_s on the device: the reader's values to rounding at every
    order, flavour scheme and cap, at and around the thresholds and below Lambda^2."""
    setdir = tmp_path / "LHToyPDF"
    shutil.copytree(SETDIR, setdir)
    info = setdir / "LHToyPDF.info"
    lines = [line for line in info.read_text().splitlines()
             if line.split(":")[0] not in variant and not line.startswith("AlphaS_Type")]
    info.write_text("\n".join([*lines, "AlphaS_Type: analytic",
                                *(f"{k}: {v}" for k, v in variant.items())]) + "\n")
    member = PDF(setdir)
    dev = DevicePDF(member, "cpu")
    rng = np.random.default_rng(4)
    q2 = np.exp(rng.uniform(np.log(1e-3), np.log(1e8), 5000))
    masses = np.array([1.4142135623730951, 4.5, 175.0])
    q2[:9] = np.concatenate([masses * (1 - 1e-12), masses, masses * (1 + 1e-12)]) ** 2
    q2[9:12] = [0.0, 0.04, 0.0625]  # at and below Lambda^2
    want = member.alphasQ2(q2)
    got = dev.alphasQ2(torch.from_numpy(q2))
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=0)
    assert dev.host_points == 0
    if variant["AlphaS_OrderQCD"] != "0":
        assert np.unique(np.round(want[want < 1], 6)).size > 100  # it runs


@pytest.mark.cuda
def test_cuda_matches_the_reader(toy: PDF) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    dev = DevicePDF(toy, "cuda")
    x, q2 = _points(toy, 20000, inside=True)
    _compare(toy, dev, x, q2, "cuda")
    assert dev.host_points == 0
    x, q2 = _points(toy, 4000, inside=False)
    _compare(toy, dev, x, q2, "cuda")
    got = dev.alphasQ2(torch.as_tensor(q2, device="cuda"))
    assert got.is_cuda
    np.testing.assert_allclose(got.cpu().numpy(), toy.alphasQ2(q2), rtol=1e-13, atol=0)
    # points of another device get their results there
    assert dev.xfxQ2(2, torch.as_tensor(x), torch.as_tensor(q2)).device.type == "cpu"
    assert dev.alphasQ2(torch.as_tensor(q2)).device.type == "cpu"


def test_pdf_kernel_built_for_cuda_when_nvcc_present() -> None:
    """With nvcc the extension carries the PDF interpolation kernel (its maths, in
    csrc/pdf_math.h, is the CPU kernel's, which the reader tests check against numpy)."""
    import os

    from madnis_py import _ext

    if os.environ.get("MADNIS_PY_CUDA", "auto") == "0" or shutil.which("nvcc") is None:
        pytest.skip("nvcc not on PATH (or MADNIS_PY_CUDA=0): CPU-only build expected")
    assert _ext.WITH_CUDA and hasattr(_ext, "pdf_logbicubic_cuda")
    assert not DevicePDF(PDF("LHToyPDF"), "cpu").use_kernel  # the torch path on the CPU


@pytest.mark.cuda
def test_cuda_kernel_matches_the_torch_path_and_the_reader(toy: PDF) -> None:
    """On a GPU the compiled interpolation (one launch) gives the torch operations'
    values and the reader's, inside and outside the grid, several partons at once."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    kernel, ops = DevicePDF(toy, "cuda"), DevicePDF(toy, "cuda")
    assert kernel.use_kernel
    ops.use_kernel = False
    pids = [2, -1, 21, 7, 0, 5]
    for inside in (True, False):
        x, q2 = _points(toy, 20000, inside=inside)
        xt, qt = torch.as_tensor(x, device="cuda"), torch.as_tensor(q2, device="cuda")
        a = kernel.xfxQ2_flavours(pids, xt, qt)
        b = ops.xfxQ2_flavours(pids, xt, qt)
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
        want = toy.xfxQ2_flavours(pids, x, q2)
        np.testing.assert_allclose(a.cpu().numpy(), want, rtol=1e-12, atol=1e-14)


@pytest.mark.cuda
def test_cuda_analytic_alphas(tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    setdir = tmp_path / "LHToyPDF"
    shutil.copytree(SETDIR, setdir)
    info = setdir / "LHToyPDF.info"
    info.write_text(info.read_text().replace("AlphaS_Type: ipol", "AlphaS_Type: analytic")
                    .replace("AlphaS_OrderQCD: 0", "AlphaS_OrderQCD: 3"))
    member = PDF(setdir)
    dev = DevicePDF(member, "cuda")
    q2 = np.exp(np.random.default_rng(3).uniform(np.log(1.0), np.log(1e8), 20000))
    got = dev.alphasQ2(torch.as_tensor(q2, device="cuda"))
    assert got.is_cuda and dev.host_points == 0
    np.testing.assert_allclose(got.cpu().numpy(), member.alphasQ2(q2), rtol=1e-13, atol=0)


def test_a_member_without_grid_tables_goes_through_the_host(toy: PDF) -> None:
    """A member the device cannot interpolate (LHAPDF's backend: no grid tables here)
    is asked on the host, all partons in one ``xfxQ2_flavours`` call per batch."""

    class HostOnly:  # the real reader, seen without its grid backend
        xfxQ2_flavours = staticmethod(toy.xfxQ2_flavours)

    dev = DevicePDF(HostOnly(), "cpu")
    assert not dev.on_device
    x, q2 = _points(toy, 1000, inside=True)
    got = dev.xfxQ2_flavours([2, -1, 21], torch.from_numpy(x), torch.from_numpy(q2))
    np.testing.assert_array_equal(got.numpy(), toy.xfxQ2_flavours([2, -1, 21], x, q2))
    assert dev.host_points == 3 * len(x)
