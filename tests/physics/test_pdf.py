"""LHAPDF6 grid reader and the embedded LHToyPDF set (madnis_py.physics.pdf).

The reference table was written by scripts/make_toy_pdf.py straight from hoppet, at
random points off the grid knots, so these tests need no hoppet.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.integrate import quad_vec

from madnis_py.physics import pdf as pdfmod
from madnis_py.physics.pdf import (
    PDF,
    AlphaSAnalytic,
    AlphaSIpol,
    PDFGridFormatError,
    PDFSetNotFoundError,
    pdf_search_paths,
    read_info,
)
from madnis_py.physics.pdf import backends as pdf_backends
from madnis_py.physics.pdf.grid import GridData
from madnis_py.physics.pdf.interpolation import LogBicubicGrid

DATA = Path(__file__).parent / "data" / "lhtoy_hoppet_reference.npz"
SETDIR = pdfmod.EMBEDDED_PDFSETS_DIR / "LHToyPDF"
ALL_PIDS = [-6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 21]


@pytest.fixture(scope="module")
def toy() -> PDF:
    return PDF("LHToyPDF")


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture
def no_lhapdf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdf_backends, "import_lhapdf", lambda: None)


def _copy_set(tmp_path: Path) -> Path:
    dst = tmp_path / "LHToyPDF"
    shutil.copytree(SETDIR, dst)
    return dst


def _knot_blocks(path: Path) -> list[tuple[np.ndarray, np.ndarray, list[int], np.ndarray]]:
    """Independent parse of an lhagrid1 file: (x, Q, pids, values[ix, iq, flav])."""
    blocks = path.read_text().split("\n---\n")[1:]
    out = []
    for b in blocks:
        lines = [ln for ln in b.strip().splitlines() if ln.strip() and ln.strip() != "---"]
        if not lines:
            continue
        xs = np.array(lines[0].split(), float)
        qs = np.array(lines[1].split(), float)
        pids = [int(t) for t in lines[2].split()]
        vals = np.array([ln.split() for ln in lines[3:]], float)
        out.append((xs, qs, pids, vals.reshape(xs.size, qs.size, len(pids))))
    return out


# -- the embedded set -----------------------------------------------------------------

def test_embedded_set_metadata(toy: PDF) -> None:
    assert toy.name == "LHToyPDF" and toy.member == 0 and toy.backend == "grid"
    assert toy.flavours == sorted(ALL_PIDS)
    assert toy.x_min == pytest.approx(1e-7) and toy.x_max == 1.0
    assert toy.q_min == pytest.approx(math.sqrt(2)) and toy.q_max == pytest.approx(1e4)
    assert toy.q2_min == pytest.approx(2.0)
    assert toy.info["AlphaS_Type"] == "ipol" and toy.info["Format"] == "lhagrid1"
    assert toy.order_qcd == 0
    assert SETDIR.joinpath("LHToyPDF_0000.dat").stat().st_size < 800_000


def test_agrees_with_hoppet(toy: PDF, reference: dict[str, np.ndarray]) -> None:
    x, Q, xf = reference["x"], reference["Q"], reference["xf"].astype(np.float64)
    pids = reference["pids"]
    assert list(pids) == ALL_PIDS
    got = toy.xfxQ2(pids[None, :], x[:, None], (Q * Q)[:, None])
    scale = np.abs(xf).max(axis=1, keepdims=True)
    # "Not tiny": at least 1e-3 of the largest parton density at that (x, Q).
    relevant = np.abs(xf) >= 1e-3 * scale
    rel = np.abs(got - xf) / np.where(relevant, np.abs(xf), 1.0)
    assert relevant.sum() > 30_000
    assert rel[relevant].max() < 1e-3
    # Light partons and the gluon, which carry the cross sections, are well inside that.
    light = np.isin(pids, [-3, -2, -1, 1, 2, 3, 21])[None, :] & relevant
    assert rel[light].max() < 7.5e-4
    # The tiny values (heavy quarks just above threshold, sea at large x) are accurate
    # in absolute terms.
    bound = 2e-6 * np.broadcast_to(scale, xf.shape)
    assert np.all(np.abs(got - xf)[~relevant] <= bound[~relevant])


def test_alphas_agrees_with_hoppet(toy: PDF, reference: dict[str, np.ndarray]) -> None:
    Q, ref = reference["Q"], reference["alphas"]
    got = toy.alphasQ2(Q * Q)
    assert np.max(np.abs(got / ref - 1)) < 1e-4
    assert toy.alphasQ2(2.0) == pytest.approx(0.35, rel=1e-12)
    assert toy.alphasQ(math.sqrt(2.0)) == pytest.approx(0.35, rel=1e-12)


def test_input_distributions_at_q0(toy: PDF) -> None:
    """At Q0 the grid holds the Les Houches toy input itself (hep-ph/0204316)."""
    x = np.array([1e-5, 1e-3, 0.05, 0.3, 0.7])
    q2 = 2.0
    uv = 5.1072 * x ** 0.8 * (1 - x) ** 3
    dv = 3.06432 * x ** 0.8 * (1 - x) ** 4
    g = 1.7 * x ** -0.1 * (1 - x) ** 5
    dbar = 0.1939875 * x ** -0.1 * (1 - x) ** 6
    ubar = (1 - x) * dbar
    s = 0.2 * (ubar + dbar)
    for pid, want in ((21, g), (-1, dbar), (-2, ubar), (1, dv + dbar), (2, uv + ubar),
                      (3, s), (-3, s)):
        np.testing.assert_allclose(toy.xfxQ2(pid, x, q2), want, rtol=1e-3)
    for pid in (4, -4, 5, -5, 6, -6):
        np.testing.assert_array_equal(toy.xfxQ2(pid, x, q2), 0.0)


def test_sum_rules(toy: PDF) -> None:
    """Momentum and valence sum rules by adaptive quadrature in ln x over the grid."""
    pids = np.array(toy.flavours)

    def integrand(lnx: float, q2: float) -> np.ndarray:
        x = math.exp(lnx)
        f = toy.xfxQ2(pids, x, q2)
        by = dict(zip(pids.tolist(), f, strict=True))
        return np.array([f.sum() * x, by[2] - by[-2], by[1] - by[-1], by[3] - by[-3]])

    for Q in (2.0, 100.0, 5000.0):
        res, _ = quad_vec(integrand, math.log(toy.x_min), 0.0, args=(Q * Q,), epsabs=1e-7,
                          epsrel=1e-7, limit=400)
        momentum, u_v, d_v, s_v = res
        # Below x_min = 1e-7 the momentum integral loses < 1e-3 even at 5 TeV.
        assert momentum == pytest.approx(1.0, abs=1e-3)
        assert u_v == pytest.approx(2.0, abs=5e-4)
        assert d_v == pytest.approx(1.0, abs=5e-4)
        assert s_v == pytest.approx(0.0, abs=1e-12)


def test_interpolation_exact_at_knots(toy: PDF) -> None:
    blocks = _knot_blocks(SETDIR / "LHToyPDF_0000.dat")
    assert len(blocks) == 3  # subgrids split at mb and mt
    for i, (xs, qs, pids, vals) in enumerate(blocks):
        # At a shared threshold knot the upper subgrid is used (as LHAPDF does).
        qk = qs if i == len(blocks) - 1 else qs[:-1]
        X, QQ = np.meshgrid(xs, qk, indexing="ij")
        for j, pid in enumerate(pids):
            got = toy.xfxQ2(pid, X, QQ * QQ)
            np.testing.assert_allclose(got, vals[:, : qk.size, j], rtol=1e-13, atol=1e-300)


def test_subgrid_boundaries_at_thresholds(toy: PDF) -> None:
    x = np.array([1e-4, 0.01, 0.2])
    for m, pid in ((4.5, 5), (175.0, 6)):
        below = toy.xfxQ2(pid, x, (m * (1 - 1e-9)) ** 2)
        at = toy.xfxQ2(pid, x, m * m)
        above = toy.xfxQ2(pid, x, (m * 1.001) ** 2)
        np.testing.assert_array_equal(below, 0.0)
        np.testing.assert_array_equal(at, 0.0)
        assert np.all(above > 0)
        # The gluon is continuous across the threshold.
        g_lo = toy.xfxQ2(21, x, (m * (1 - 1e-9)) ** 2)
        g_hi = toy.xfxQ2(21, x, (m * (1 + 1e-9)) ** 2)
        np.testing.assert_allclose(g_lo, g_hi, rtol=1e-7)


# -- extrapolation ----------------------------------------------------------------------

def test_continuation_extrapolation(toy: PDF) -> None:
    # Continuous onto the grid edges.
    x = np.array([1e-3, 0.1])
    edge = toy.xfxQ2(21, x, toy.q2_min)
    np.testing.assert_allclose(toy.xfxQ2(21, x, toy.q2_min * (1 - 1e-10)), edge, rtol=1e-8)
    top = toy.xfxQ2(21, x, toy.q2_max)
    np.testing.assert_allclose(toy.xfxQ2(21, x, toy.q2_max * (1 + 1e-10)), top, rtol=1e-8)
    xe = toy.xfxQ2(21, toy.x_min, 100.0)
    assert toy.xfxQ2(21, toy.x_min * (1 - 1e-10), 100.0) == pytest.approx(xe, rel=1e-8)
    # Small x: a power law in x through the two lowest knots.
    x0, x1 = toy.x_min, 1.51531793e-07
    f0, f1 = toy.xfxQ2(21, x0, 100.0), toy.xfxQ2(21, x1, 100.0)
    want = f0 * (f1 / f0) ** (math.log(1e-9 / x0) / math.log(x1 / x0))
    assert toy.xfxQ2(21, 1e-9, 100.0) == pytest.approx(want, rel=1e-12)
    # Low Q: PDFs vanish smoothly as Q2 -> 0; everything finite in all corners.
    low = toy.xfxQ2(21, 0.01, np.array([1.0, 0.1, 1e-4]))
    assert np.all(np.isfinite(low)) and np.all(np.diff(low) < 0)
    corners = toy.xfxQ2(np.array(ALL_PIDS)[:, None], np.array([1e-9, 0.5]),
                        np.array([0.5, 1e10])[:, None, None])
    assert corners.shape == (2, 13, 2) and np.all(np.isfinite(corners))


def test_nearest_and_error_extrapolators(tmp_path: Path) -> None:
    setdir = _copy_set(tmp_path)
    info = setdir / "LHToyPDF.info"
    text = info.read_text()
    info.write_text(text.replace("Extrapolator: continuation", "Extrapolator: nearest"))
    near = PDF(setdir)
    assert near.xfxQ2(21, 1e-9, 1e9) == near.xfxQ2(21, near.x_min, near.q2_max)
    assert near.xfxQ2(2, 0.3, 0.5) == near.xfxQ2(2, 0.3, near.q2_min)
    info.write_text(text.replace("Extrapolator: continuation", "Extrapolator: error"))
    with pytest.raises(ValueError, match="outside the grid"):
        PDF(setdir).xfxQ2(21, 1e-9, 100.0)


# -- API: shapes, pids, inputs -----------------------------------------------------------

def test_batching_shapes(toy: PDF) -> None:
    x = np.full((4, 3), 0.1)
    assert toy.xfxQ2(21, x, 100.0).shape == (4, 3)
    assert toy.xfxQ2(np.array(ALL_PIDS)[:, None], np.linspace(0.1, 0.5, 5), 100.0).shape == (13, 5)
    scalar = toy.xfxQ2(2, 0.1, 100.0)
    assert np.shape(scalar) == ()
    batch = toy.xfxQ2(2, np.array([0.1, 0.2]), np.array([100.0, 100.0]))
    assert batch[0] == scalar
    assert toy.xfxQ2(21, np.empty(0), 100.0).shape == (0,)
    assert toy.alphasQ2(np.full((2, 2), 100.0)).shape == (2, 2)
    np.testing.assert_allclose(toy.xfxQ(21, [0.1, 0.2], [10.0, 10.0]),
                               toy.xfxQ2(21, [0.1, 0.2], 100.0), rtol=1e-15)


def test_torch_in_torch_out(toy: PDF) -> None:
    x = torch.tensor([0.01, 0.1], dtype=torch.float32)
    out = toy.xfxQ2(21, x, torch.tensor(100.0))
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), toy.xfxQ2(21, x.double().numpy(), 100.0), rtol=1e-6)
    a = toy.alphasQ2(torch.tensor([100.0], dtype=torch.float64))
    assert isinstance(a, torch.Tensor) and a.dtype == torch.float64


def test_gluon_pid_zero_and_unknown_pids(toy: PDF) -> None:
    x = np.geomspace(1e-5, 0.8, 7)
    np.testing.assert_array_equal(toy.xfxQ2(0, x, 50.0), toy.xfxQ2(21, x, 50.0))
    mixed = toy.xfxQ2(np.array([0, 21, 22, 7, 2]), 0.1, 50.0)
    assert mixed[0] == mixed[1] and mixed[2] == 0 and mixed[3] == 0 and mixed[4] > 0


def test_every_flavour_at_once_is_each_flavour(toy: PDF) -> None:
    # in the grid, on knots and subgrid thresholds, and each extrapolation region
    rng = np.random.default_rng(3)
    knots = toy._backend.grid
    x = np.concatenate([10 ** rng.uniform(-6.9, -0.01, 300), knots.xs[::7][:6],
                        [1e-9, 3e-8, 0.2, 0.5, 1e-9, 0.3]])
    q2 = np.concatenate([10 ** rng.uniform(0.4, 7.9, 300), knots.q2s[::7][:6],
                         [1.0, 1.5, 1e9, 1e9, 1e9, 1.2]])
    pids = [21, 2, -2, 0, 7, 1, -3, 5, 6]  # 7: not in the set
    every = toy.xfxQ2_flavours(pids, x, q2)
    assert every.shape == (x.size, len(pids))
    for j, pid in enumerate(pids):
        np.testing.assert_array_equal(every[:, j], toy.xfxQ2(pid, x, q2))
    assert np.all(every[:, 4] == 0)
    with pytest.raises(ValueError, match="x must lie in"):
        toy.xfxQ2_flavours([21], np.array([1.5]), np.array([100.0]))
    with pytest.raises(ValueError, match="1-d of one length"):
        toy.xfxQ2_flavours([21], np.array([0.1, 0.2]), np.array([100.0]))
    with pytest.raises(ValueError, match="integer PDG codes"):
        toy.xfxQ2_flavours([2.5], np.array([0.1]), np.array([100.0]))


def test_every_flavour_at_once_on_a_two_knot_subgrid() -> None:
    # LHAPDF's bilinear fallback: a subgrid of two Q2 knots between two cubic ones
    xs = np.geomspace(1e-4, 1.0, 8)
    q2s = np.array([2.0, 4.0, 8.0, 8.0, 9.0, 9.0, 20.0, 50.0, 100.0])
    values = np.random.default_rng(1).uniform(0.1, 2.0, (xs.size, q2s.size, 3))
    grid = LogBicubicGrid(GridData(xs, q2s, [1, 2, 21], values), "continuation", Path("t"))
    assert np.any(grid._q_lower & grid._q_upper)
    x = 10 ** np.random.default_rng(2).uniform(-4, 0, 400)
    q2 = np.random.default_rng(4).uniform(2.0, 100.0, 400)
    cols = np.array([2, 0, 1, 2])
    every = grid.evaluate_columns(cols, x, q2)
    for j, c in enumerate(cols):
        np.testing.assert_array_equal(every[:, j], grid.evaluate(np.full(x.size, c), x, q2))


@pytest.mark.parametrize("grid_of", ["toy", "two_knot_subgrid"])
def test_the_compiled_interpolation_is_the_numpy_one(toy: PDF, grid_of: str) -> None:
    # csrc/pdf_cpu.cpp against LogBicubicGrid.interpolate_reference, bit for bit: in the
    # grid, on its knots and thresholds, per point and as a block of columns
    rng = np.random.default_rng(7)
    if grid_of == "toy":
        grid = toy._backend.grid
    else:
        xs = np.geomspace(1e-4, 1.0, 8)
        q2s = np.array([2.0, 4.0, 8.0, 8.0, 9.0, 9.0, 20.0, 50.0, 100.0])
        values = rng.uniform(0.1, 2.0, (xs.size, q2s.size, 3))
        grid = LogBicubicGrid(GridData(xs, q2s, [1, 2, 21], values), "continuation",
                              Path("t"))
    n = 20_000
    x = np.exp(rng.uniform(np.log(grid.xs[0]), np.log(grid.xs[-1]), n))
    q2 = np.exp(rng.uniform(np.log(grid.q2s[0]), np.log(grid.q2s[-1]), n))
    x[:grid.xs.size] = grid.xs
    q2[:grid.q2s.size] = grid.q2s
    flavours = grid.values.shape[2]
    col = rng.integers(0, flavours, n)
    np.testing.assert_array_equal(grid.interpolate(col, x, q2),
                                  grid.interpolate_reference(col, x, q2))
    block = np.array([[flavours - 1, 0, flavours // 2]])
    np.testing.assert_array_equal(grid.interpolate(block, x, q2),
                                  grid.interpolate_reference(block, x, q2))
    assert grid.interpolate(col[:0], x[:0], q2[:0]).shape == (0,)


def test_invalid_inputs(toy: PDF) -> None:
    with pytest.raises(ValueError, match="x must lie in"):
        toy.xfxQ2(21, 1.5, 100.0)
    with pytest.raises(ValueError, match="Q2 must be"):
        toy.xfxQ2(21, 0.1, -1.0)
    with pytest.raises(ValueError, match="pid"):
        toy.xfxQ2(2.5, 0.1, 100.0)
    with pytest.raises(ValueError, match="backend"):
        PDF("LHToyPDF", backend="nope")


# -- finding sets and reporting errors -------------------------------------------------

def test_missing_set_names_set_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         no_lhapdf: None) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    monkeypatch.setenv("LHAPDF_DATA_PATH", f"{a}:{b}")
    monkeypatch.setenv("LHAPDF_DATA_PREFIX", str(tmp_path / "prefix"))
    with pytest.raises(PDFSetNotFoundError) as err:
        PDF("NoSuchSet42")
    msg = str(err.value)
    assert "NoSuchSet42" in msg
    for p in pdf_search_paths():
        assert str(p) in msg
    assert str(a) in msg and str(b) in msg and str(pdfmod.EMBEDDED_PDFSETS_DIR) in msg
    with pytest.raises(PDFSetNotFoundError, match="member 3"):
        PDF("LHToyPDF", 3)


def test_lookup_by_path_name_and_lhaid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       no_lhapdf: None) -> None:
    setdir = _copy_set(tmp_path)
    (tmp_path / "pdfsets.index").write_text("# id name version\n90000 LHToyPDF 1\n")
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    ref = PDF("LHToyPDF").xfxQ2(21, 0.1, 100.0)
    for spec in (setdir, str(setdir), setdir / "LHToyPDF.info", setdir / "LHToyPDF_0000.dat",
                 "LHToyPDF/0", 90000):
        p = PDF(spec, backend="grid")
        assert p.name == "LHToyPDF" and p.member == 0
        assert p.xfxQ2(21, 0.1, 100.0) == ref
    with pytest.raises(PDFSetNotFoundError, match="member 1"):
        PDF(90001, backend="grid")
    with pytest.raises(PDFSetNotFoundError, match="LHAPDF ID 5"):
        PDF(5, backend="grid")


def test_malformed_grid_names_file_and_line(tmp_path: Path) -> None:
    setdir = _copy_set(tmp_path)
    dat = setdir / "LHToyPDF_0000.dat"
    lines = dat.read_text().splitlines()
    lines[10] = "1.0 2.0 oops " + " ".join(["0"] * 10)  # a value line, 1-based line 11
    dat.write_text("\n".join(lines) + "\n")
    with pytest.raises(PDFGridFormatError) as err:
        PDF(setdir)
    assert err.value.line == 11 and err.value.path == str(dat)
    assert f"{dat}, line 11" in str(err.value) and "oops" in str(err.value)

    lines[10] = "1.0 2.0"  # too few flavour columns
    dat.write_text("\n".join(lines) + "\n")
    with pytest.raises(PDFGridFormatError, match=r"line 11: 2 values on a line, expected"):
        PDF(setdir)

    del lines[10]  # one value line short in the first subgrid
    dat.write_text("\n".join(lines) + "\n")
    with pytest.raises(PDFGridFormatError, match="value lines, expected"):
        PDF(setdir)


def test_malformed_info_names_file_and_line(tmp_path: Path) -> None:
    setdir = _copy_set(tmp_path)
    info = setdir / "LHToyPDF.info"
    lines = info.read_text().splitlines()
    lines.insert(3, "this line is not metadata")
    info.write_text("\n".join(lines) + "\n")
    with pytest.raises(PDFGridFormatError) as err:
        PDF(setdir)
    assert err.value.line == 4 and str(info) in str(err.value)


def test_info_parser(tmp_path: Path) -> None:
    f = tmp_path / "x.info"
    f.write_text("# comment\nSetDesc: \"a: b # not a comment\"\nNumMembers: 3  # trailing\n"
                 "Flavors: [-1, 1,\n   21]\nXMin: 1e-9\nFlag: true\n"
                 "Ref: |\n  line one\n  line two\n"
                 "Name: plain\n")
    info = read_info(f)
    assert info == {"SetDesc": "a: b # not a comment", "NumMembers": 3, "Flavors": [-1, 1, 21],
                    "XMin": 1e-9, "Flag": True, "Ref": "line one\nline two", "Name": "plain"}


# -- alpha_s ---------------------------------------------------------------------------

def test_alphas_ipol_edges() -> None:
    qs = [1.0, 2.0, 3.0, 4.0, 4.0, 5.0, 6.0, 7.0]
    vals = [0.4, 0.3, 0.26, 0.24, 0.24, 0.22, 0.21, 0.2]
    a = AlphaSIpol(qs, vals)
    np.testing.assert_allclose(a(np.square(qs)), vals, rtol=1e-15)
    assert a(np.array([100.0]))[0] == 0.2  # frozen above the table
    slope = math.log10(0.3 / 0.4) / math.log10(4.0)
    assert a(np.array([0.25]))[0] == pytest.approx(0.4 * 0.25 ** slope, rel=1e-14)


def test_alphas_analytic() -> None:
    lam = {4: 0.2, 5: 0.15}
    lo = AlphaSAnalytic(lam, 1, {4: 1.5, 5: 4.5, 6: 175.0}, fixed_nf=5)
    q2 = np.array([10.0, 100.0, 1e4])
    nf = np.array([4, 5, 5])
    b0 = (33 - 2 * nf) / (12 * math.pi)
    lams = np.where(nf == 4, 0.2, 0.15)
    np.testing.assert_allclose(lo(q2), 1 / (b0 * np.log(q2 / lams ** 2)), rtol=1e-14)
    # From alpha_s(MZ): reproduces it, and is continuous at the b threshold.
    nlo = AlphaSAnalytic.from_alphas_mz(0.118, 91.1876, 2, {4: 1.3, 5: 4.75, 6: 172.5})
    assert nlo(np.array([91.1876 ** 2]))[0] == pytest.approx(0.118, rel=1e-9)
    below, above = nlo(np.array([(4.75 * (1 - 1e-9)) ** 2, (4.75 * (1 + 1e-9)) ** 2]))
    assert below == pytest.approx(above, rel=1e-6)


# -- the LHAPDF backend (runs where LHAPDF is installed) ----------------------------------

def test_lhapdf_backend_agrees_with_the_grid_reader(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    lhapdf = pytest.importorskip("lhapdf", reason="LHAPDF is not installed here")
    shutil.copytree(SETDIR, tmp_path / "LHToyPDF")
    lhapdf.pathsPrepend(str(tmp_path))
    theirs = PDF("LHToyPDF", backend="lhapdf")
    ours = PDF("LHToyPDF", backend="grid")
    assert theirs.backend == "lhapdf" and ours.backend == "grid"
    rng = np.random.default_rng(5)
    x = 10 ** rng.uniform(-6, -0.05, 500)
    q2 = 10 ** rng.uniform(0.7, 7, 500)
    for pid in (-4, -2, -1, 1, 2, 3, 21):
        np.testing.assert_allclose(ours.xfxQ2(pid, x, q2), theirs.xfxQ2(pid, x, q2),
                                   rtol=1e-10, atol=1e-14)
    every = theirs.xfxQ2_flavours([21, 2, -1], x, q2)
    for j, pid in enumerate((21, 2, -1)):
        np.testing.assert_array_equal(every[:, j], theirs.xfxQ2(pid, x, q2))
    np.testing.assert_allclose(ours.alphasQ2(q2), theirs.alphasQ2(q2), rtol=1e-10)


def test_lhapdf_backend_without_lhapdf_is_a_clear_error(no_lhapdf: None) -> None:
    with pytest.raises(ImportError, match="needs the LHAPDF Python module"):
        PDF("LHToyPDF", backend="lhapdf")
