"""The LHAPDF backend of madnis_py.physics.pdf (skipped where LHAPDF does not import).

Batches must give exactly LHAPDF's point-by-point numbers, the metadata must be the set's
own, and LHAPDF must print nothing on standard output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from madnis_py.physics.pdf import EMBEDDED_PDFSETS_DIR, PDF, PDFSetNotFoundError

lhapdf = pytest.importorskip("lhapdf", reason="LHAPDF is not installed here")

SETDIR = EMBEDDED_PDFSETS_DIR / "LHToyPDF"
TOY_ID = 99000  # the toy set's ID in LHAPDF's pdfsets.index


@pytest.fixture
def toy_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory with the toy set and its pdfsets.index, first in LHAPDF's paths."""
    shutil.copytree(SETDIR, tmp_path / "LHToyPDF")
    with open(tmp_path / "LHToyPDF" / "LHToyPDF.info", "a") as fh:
        fh.write(f"SetIndex: {TOY_ID}\n")
    (tmp_path / "pdfsets.index").write_text(f"{TOY_ID} LHToyPDF 1\n")
    before = [str(p) for p in lhapdf.paths()]
    lhapdf.pathsPrepend(str(tmp_path))
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    yield tmp_path
    lhapdf.setPaths(before)


def _lhapdf_point_by_point(pdf: Any, pid: np.ndarray, x: np.ndarray,
                           q2: np.ndarray) -> np.ndarray:
    return np.array([pdf.xfxQ2(int(p), float(a), float(b))
                     for p, a, b in zip(pid, x, q2, strict=True)])


def test_a_batch_equals_lhapdf_point_by_point(toy_data: Path) -> None:
    ours = PDF("LHToyPDF", backend="lhapdf")
    theirs = lhapdf.mkPDF("LHToyPDF", 0)
    rng = np.random.default_rng(11)
    n = 600
    # mixed parton IDs in one batch: sea, valence, the gluon as 0 and 21, and 22 (not in
    # the set: 0); points inside the grid and below x_min, Q2_min and above Q2_max.
    pid = rng.choice([-3, -1, 0, 1, 2, 5, 21, 22], n)
    x = 10 ** rng.uniform(-8.5, -0.01, n)
    q2 = 10 ** rng.uniform(-0.5, 8.5, n)
    got = ours.xfxQ2(pid, x, q2)
    np.testing.assert_array_equal(got, _lhapdf_point_by_point(theirs, pid, x, q2))
    assert np.all(got[pid == 22] == 0) and np.any(got != 0)
    # one parton ID broadcast over a 2-d batch
    xs, qs = x.reshape(20, 30), q2.reshape(20, 30)
    np.testing.assert_array_equal(
        ours.xfxQ2(2, xs, qs), _lhapdf_point_by_point(theirs, np.full(n, 2), x, q2)
        .reshape(20, 30))
    np.testing.assert_array_equal(ours.alphasQ2(q2),
                                  np.array([theirs.alphasQ2(float(v)) for v in q2]))
    assert ours.xfxQ2(21, np.empty(0), np.empty(0)).shape == (0,)


def test_metadata_is_the_sets_own(toy_data: Path) -> None:
    ours = PDF(TOY_ID, backend="lhapdf")
    grid = PDF(toy_data / "LHToyPDF", backend="grid")
    assert ours.backend == "lhapdf" and (ours.name, ours.member) == ("LHToyPDF", 0)
    assert ours.info == grid.info and ours.info["SetIndex"] == TOY_ID
    assert ours.path == grid.path == toy_data / "LHToyPDF" / "LHToyPDF_0000.dat"
    assert ours.order_qcd == 0 and ours.flavours == grid.flavours
    assert (ours.x_min, ours.q2_max) == (grid.x_min, grid.q2_max)


def test_a_missing_set_says_how_to_install_it(toy_data: Path) -> None:
    with pytest.raises(PDFSetNotFoundError) as err:
        PDF("NoSuchSet42", backend="lhapdf")
    msg = str(err.value)
    assert "NoSuchSet42" in msg and str(toy_data) in msg
    assert "lhapdf install NoSuchSet42" in msg and "LHAPDF_DATA_PATH" in msg
    # an ID in LHAPDF's index whose set is not installed: the set to install is named
    with open(toy_data / "pdfsets.index", "a") as fh:
        fh.write("247000 NNPDF23_lo_as_0130_qed 1\n")
    with pytest.raises(PDFSetNotFoundError) as err:
        PDF(247000, backend="lhapdf")
    assert "LHAPDF ID 247000" in str(err.value)
    assert "lhapdf install NNPDF23_lo_as_0130_qed" in str(err.value)


def test_lhapdf_prints_nothing_on_stdout(toy_data: Path) -> None:
    code = ("import numpy as np\n"
            "from madnis_py.physics.pdf import PDF\n"
            f"p = PDF({TOY_ID})\n"
            "assert p.backend == 'lhapdf'\n"
            "p.xfxQ2(21, np.array([1e-3, 0.2]), np.array([10.0, 1e4]))\n"
            "p.alphasQ2(np.array([100.0]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ), timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""
