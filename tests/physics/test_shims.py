"""The standalone_cpp and Sherpa shims: built and checked where MadGraph / Sherpa exist."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import MatrixElement, builtin_library, builtin_process_dir
from madnis_py.physics.shims import build_sherpa, build_standalone_cpp

CARD = builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat"


def test_standalone_cpp_builder_rejects_a_directory_that_is_not_madgraph(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no CPPProcess.cc"):
        build_standalone_cpp(tmp_path, [-11, 11, -13, 13])


def test_sherpa_builder_without_sherpa(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no-such-Sherpa-config not found on PATH"):
        build_sherpa(output=tmp_path / "x.so", sherpa_config="no-such-Sherpa-config")


@pytest.mark.skipif("MADNIS_PY_MG5_STANDALONE_CPP" not in os.environ,
                    reason="set MADNIS_PY_MG5_STANDALONE_CPP to a P* directory of "
                           "`output standalone_cpp` for e+ e- > mu+ mu-")
def test_standalone_cpp_ee_mumu_matches_the_builtin(tmp_path: Path) -> None:
    pdir = Path(os.environ["MADNIS_PY_MG5_STANDALONE_CPP"])
    lib = build_standalone_cpp(pdir, [-11, 11, -13, 13], output=tmp_path / "me.so")
    theirs = MatrixElement.from_madgraph(lib, pdir.parent.parent / "Cards" / "param_card.dat")
    ours = MatrixElement.from_madgraph(builtin_library("ee_mumu"), CARD)
    p = Rambo([0.0, 0.0], Beams(500.0)).map(np.random.default_rng(0).random((100, 8))).momenta
    np.testing.assert_allclose(theirs(p, [-11, 11, -13, 13]), ours(p, [-11, 11, -13, 13]),
                               rtol=1e-10)


@pytest.mark.skipif(shutil.which("Sherpa-config") is None, reason="Sherpa is not installed")
def test_sherpa_ee_mumu_runs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "Sherpa.yaml").write_text(
        "BEAMS: [-11, 11]\nBEAM_ENERGIES: 250\nME_GENERATORS: [Comix]\n"
        "PROCESSES:\n- -11 11 -> -13 13:\n    Order: {QCD: 0, EW: 2}\n")
    lib = build_sherpa(output=tmp_path / "sherpa.so")
    me = MatrixElement.from_sherpa(lib, run)
    p = Rambo([0.0, 0.0], Beams(500.0)).map(np.random.default_rng(0).random((10, 8))).momenta
    assert np.all(me(p, [-11, 11, -13, 13]) > 0)
