"""Helicity recycling in ``output madnis_py`` (``madnis_py/madgraph/plugin/recycling.py``).

The guard pass is tested on its own (it is plain text processing); the rest needs a real
MadGraph (``MADNIS_PY_MG5_HOME``): for g g > t t~ g (all 32 helicities contribute) and
e+ e- > mu+ mu- a and p p > e+ e- j (massless fermions: most helicities vanish, and the
standalone filter drops them after 20 calls), the recycled library gives |M|^2 and the per-diagram |M_i|^2 of the
plain standalone helicity loop (``--hel_recycling=False``) bit for bit, before and after
the filter settles, and single helicities (``smatrixhel_`` with ``nhel > 0``) too; split
amplitudes (the default, as madevent's ``hel_splitamp``) agree to rounding.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import numpy as np
import pytest

from madnis_py import _ext
from madnis_py.madgraph import install_plugin
from madnis_py.madgraph.install import run_madgraph
from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import MatrixElement
from madnis_py.physics.process import load_process

MG5 = os.environ.get("MADNIS_PY_MG5_HOME")
F = TypeVar("F", bound=Callable[..., Any])


def mg5(test: F) -> F:
    """A test that runs MadGraph: skipped without ``MADNIS_PY_MG5_HOME``; slow."""
    skip = pytest.mark.skipif(not MG5, reason="set MADNIS_PY_MG5_HOME to a MadGraph 3.5 "
                              "tree (../shared/tools/mg5/setup-mg5.sh)")
    marked: F = pytest.mark.slow(skip(test))
    return marked

PROCESSES = {"ggttg": "g g > t t~ g", "eemumua": "e+ e- > mu+ mu- a",
             "ppeej": "p p > e+ e- j"}
VARIANTS = {"recycled": " --hel_splitamp=False", "plain": " --hel_recycling=False",
            "split": ""}  # split amplitudes are the default, as in madevent


def _recycling() -> ModuleType:
    """The plugin module, loaded from its file (the plugin package imports MadGraph)."""
    path = (Path(__file__).resolve().parents[2] / "madnis_py" / "madgraph" / "plugin"
            / "recycling.py")
    spec = importlib.util.spec_from_file_location("madnis_plugin_recycling", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Two external legs with two helicities each (W1, W2 for leg 1; W3, W4 for leg 2), a
# current of leg 1 alone (W5 from W1) and four amplitudes, one per helicity K.
CALLS = """\
      CALL VXXXXX(P(0,1),ZERO,+1,-1*IC(1),W(1,1))  !  count 2
      CALL VXXXXX(P(0,1),ZERO,-1,-1*IC(1),W(1,2))  !  count 2
      CALL OXXXXX(P(0,2),MDL_MT,+1,+1*IC(2),W(1,3))
      CALL OXXXXX(P(0,2),MDL_MT,-1,+1*IC(2),W(1,4))
      CALL FFV1_1(W(1,3),W(1,1),GC_11,MDL_MT,MDL_WT,W(1,5))
      CALL FFV1_0(W(1,5),W(1,3),W(1,1),GC_11,AMP(1,1))
      CALL FFV1_0(W(1,4),W(1,3),W(1,1),GC_11,
     $ AMP(2,1))
      CALL FFV1_0(W(1,3),W(1,3),W(1,2),GC_11,AMP(3,1))
      CALL FFV1_0(W(1,4),W(1,3),W(1,2),GC_11,AMP(4,1))
"""


def test_guards_follow_the_helicities_each_call_serves() -> None:
    rec = _recycling()
    guarded = rec._guard_helicities(CALLS, 4)
    # W1 serves K = 1, 2 (through W5 and directly); W2 serves K = 3, 4; W3 serves all;
    # W4 serves K = 2, 4; W5 only K = 1; each amplitude its own K.
    lines = guarded.splitlines()

    def guard_of(target: str) -> str:
        i = next(k for k, line in enumerate(lines) if target in line)
        return lines[i - 1].strip() if lines[i - 1].lstrip().startswith("IF (") else ""

    assert guard_of("W(1,1))") == "IF (SEL(1).OR.SEL(2)) THEN"
    assert guard_of("W(1,2))") == "IF (SEL(3).OR.SEL(4)) THEN"
    assert guard_of("W(1,3))") == ""
    assert guard_of("W(1,4))") == "IF (SEL(2).OR.SEL(4)) THEN"
    assert guard_of("W(1,5))") == "IF (SEL(1)) THEN"
    assert guard_of("AMP(3,1)") == "IF (SEL(3)) THEN"
    # The continued amplitude call stays one statement under one guard.
    i = next(k for k, line in enumerate(lines) if "AMP(2,1)" in line)
    assert lines[i - 2].strip() == "IF (SEL(2)) THEN" and lines[i + 1].strip() == "ENDIF"
    assert guarded.count("ENDIF") == guarded.count("THEN") == 8


def test_a_matrix_without_the_standalone_layout_is_refused(tmp_path: Path) -> None:
    rec = _recycling()
    bad = tmp_path / "matrix.f"
    bad.write_text("      SUBROUTINE SOMETHING(P)\n      END\n")
    with pytest.raises(rec.RecyclingError, match=r"matrix\.f.*REAL\*8 FUNCTION M1_MATRIX"):
        rec._split_matrix(bad.read_text(), "M1_", bad)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    assert MG5 is not None
    root = tmp_path_factory.mktemp("mg5_hel")
    install_plugin(MG5)
    commands = ["import model sm"]
    out: dict[str, dict[str, Path]] = {}
    for name, proc in PROCESSES.items():
        commands.append(f"generate {proc}")
        out[name] = {}
        for variant, option in VARIANTS.items():
            out[name][variant] = root / f"{name}_{variant}"
            commands.append(f"output madnis_py {out[name][variant]} -f{option}")
    run_madgraph(Path(MG5), commands, log=root / "mg5.log")
    return out


def _open(out: Path) -> MatrixElement:
    return MatrixElement.from_madgraph(out / "lib" / "libmadnis_me.so",
                                       out / "Cards" / "param_card.dat")


def _pairs(out: Path, n: int) -> list[tuple[np.ndarray, list[int]]]:
    """Per subprocess: RAMBO momenta in the library's order and its PDG list."""
    proc = load_process(out)
    rambo = Rambo(proc.final_masses(), Beams(1000.0))
    p = rambo.map(np.random.default_rng(7).random((n, rambo.dims))).momenta
    return [(np.ascontiguousarray(sub.library_momenta(p)), list(sub.library_pdgs))
            for sub in proc.subprocesses]


def _side_by_side(dirs: dict[str, Path], variant: str, n: int
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """|M|^2 and |M_i|^2 of ``variant`` and of the plain loop at the same points, each
    subprocess twice: the first 20 calls evaluate every helicity, later ones those found
    nonzero."""
    lib, plain = _open(dirs[variant]), _open(dirs["plain"])
    for p, pdgs in _pairs(dirs["plain"], n):
        for _ in range(2):
            yield (*lib.smatrix_amp2(p, pdgs, alpha_s=0.118),
                   *plain.smatrix_amp2(p, pdgs, alpha_s=0.118))


@mg5
@pytest.mark.parametrize("name", list(PROCESSES))
def test_recycled_equals_the_plain_helicity_loop(
        outputs: dict[str, dict[str, Path]], name: str) -> None:
    dirs = outputs[name]
    for m_rec, a_rec, m_plain, a_plain in _side_by_side(dirs, "recycled", 60):
        np.testing.assert_array_equal(m_rec, m_plain)
        np.testing.assert_array_equal(a_rec, a_plain)
        assert np.all(m_rec > 0) and np.all(a_rec.sum(axis=1) > 0)
    info = json.loads((dirs["recycled"] / "madgraph.json").read_text())
    assert info["helicity_recycling"] and not info["split_amplitudes"]
    for matrix in (dirs["recycled"] / "SubProcesses").glob("P*/matrix.f"):
        assert "MATRIX_HELSUM" in matrix.read_text()
    plain_info = json.loads((dirs["plain"] / "madgraph.json").read_text())
    assert not plain_info["helicity_recycling"]


@mg5
@pytest.mark.parametrize("name", ["ggttg", "eemumua"])
def test_single_helicities_are_unchanged(outputs: dict[str, dict[str, Path]],
                                         name: str) -> None:
    dirs = outputs[name]
    rec, plain = _open(dirs["recycled"]), _open(dirs["plain"])
    ((p, pdg_list),) = _pairs(dirs["plain"], 10)
    pdgs = np.asarray(pdg_list, dtype=np.int32)
    a = np.full(p.shape[0], 0.118)
    s = np.zeros(p.shape[0])
    total = rec(p, pdg_list, alpha_s=0.118)
    per_hel = np.zeros(p.shape[0])
    call = _ext.me_smatrixhel  # type: ignore[attr-defined]
    for h in range(1, 33):  # 2^5 helicity combinations
        one, two = np.empty(p.shape[0]), np.empty(p.shape[0])
        call(rec._smatrixhel, pdgs, -1, p, a, s, h, one)
        call(plain._smatrixhel, pdgs, -1, p, a, s, h, two)
        np.testing.assert_array_equal(one, two)
        per_hel += one
    # One helicity comes with the initial-state helicity average undone (times 4).
    np.testing.assert_allclose(per_hel / 4, total, rtol=1e-12)


@mg5
@pytest.mark.parametrize("name", list(PROCESSES))
def test_split_amplitudes_agree_to_rounding(outputs: dict[str, dict[str, Path]],
                                            name: str) -> None:
    dirs = outputs[name]
    for m_split, a_split, m_plain, a_plain in _side_by_side(dirs, "split", 60):
        np.testing.assert_allclose(m_split, m_plain, rtol=1e-12, atol=0)
        # A diagram far below the others can lose a few more digits (seen: 2e-12
        # relative for one 1e-8 of the sum); relative to the sum, rounding only.
        bound = 1e-10 * np.abs(a_plain) + 1e-14 * a_plain.sum(axis=1, keepdims=True)
        assert np.all(np.abs(a_split - a_plain) <= bound)
    assert json.loads((dirs["split"] / "madgraph.json").read_text())["split_amplitudes"]


@mg5
def test_a_bad_option_value_is_named(tmp_path: Path) -> None:
    from madnis_py.madgraph import MadGraphError

    assert MG5 is not None
    install_plugin(MG5)
    with pytest.raises(MadGraphError, match="hel_recycling=maybe"):
        run_madgraph(Path(MG5), ["import model sm", "generate e+ e- > mu+ mu-",
                                 f"output madnis_py {tmp_path / 'x'} -f "
                                 "--hel_recycling=maybe"], log=tmp_path / "mg5.log")
