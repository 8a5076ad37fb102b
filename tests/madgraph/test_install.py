"""``madnis-py madgraph install`` and ``import`` on trees and outputs written here (no
MadGraph needed); the real MadGraph path is tests/madgraph/test_with_madgraph.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from madnis_py.cli import main
from madnis_py.madgraph import MadGraphError, import_output, install_plugin
from madnis_py.madgraph.install import _process_lines


def fake_mg5(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "mg5_aMC").write_text("#!/usr/bin/env python3\n")
    (root / "madgraph").mkdir()
    (root / "PLUGIN").mkdir()
    return root


def test_install_links_the_plugin_and_records_the_python(tmp_path: Path) -> None:
    mg5 = fake_mg5(tmp_path / "MG5")
    target = install_plugin(mg5)
    assert target == mg5 / "PLUGIN" / "madnis_py"
    init = target / "__init__.py"
    assert init.is_symlink() and "new_output" in init.read_text()
    assert (target / "exporter.py").resolve().name == "exporter.py"
    assert (target / "python.txt").read_text().strip() == sys.executable
    install_plugin(mg5, python="/opt/py/bin/python3")  # a reinstall replaces it
    assert (target / "python.txt").read_text().strip() == "/opt/py/bin/python3"
    assert [p.name for p in (mg5 / "PLUGIN").iterdir()] == ["madnis_py"]


def test_concurrent_installs_all_succeed_and_leave_one_plugin(tmp_path: Path) -> None:
    # Two benchmark drivers started together both install: each must succeed and the
    # tree must hold one complete plugin, no staging or old directories.
    mg5 = fake_mg5(tmp_path / "MG5")
    install_plugin(mg5)
    code = "import sys; from madnis_py.madgraph import install_plugin; install_plugin(sys.argv[1])"
    for _ in range(2):
        cache = mg5 / "PLUGIN" / "madnis_py" / "__pycache__"  # as MadGraph leaves it
        cache.mkdir()
        for i in range(2000):
            (cache / f"m{i}.pyc").write_bytes(b"")
        procs = [subprocess.Popen([sys.executable, "-c", code, str(mg5)]) for _ in range(4)]
        assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
        assert [p.name for p in (mg5 / "PLUGIN").iterdir()] == ["madnis_py"]
        assert (mg5 / "PLUGIN" / "madnis_py" / "python.txt").is_file()


def test_install_refuses_what_is_not_its_own(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MadGraphError, match="not a MadGraph5_aMC@NLO tree"):
        install_plugin(tmp_path)
    mg5 = fake_mg5(tmp_path / "MG5")
    (mg5 / "PLUGIN" / "madnis_py").mkdir()
    (mg5 / "PLUGIN" / "madnis_py" / "__init__.py").write_text("# someone else's\n")
    with pytest.raises(MadGraphError, match="was not made by"):
        install_plugin(mg5)
    assert (mg5 / "PLUGIN" / "madnis_py" / "__init__.py").read_text() == "# someone else's\n"
    assert main(["madgraph", "install", str(mg5)]) == 2
    assert "was not made by" in capsys.readouterr().err


def test_import_needs_a_madgraph_output_and_madgraph(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MADNIS_PY_MG5_HOME", raising=False)
    with pytest.raises(MadGraphError, match="not a MadGraph output directory"):
        import_output(tmp_path)
    out = tmp_path / "ee"
    (out / "Cards").mkdir(parents=True)
    (out / "SubProcesses").mkdir()
    (out / "Cards" / "proc_card_mg5.dat").write_text(
        "import model sm\ngenerate e+ e- > mu+ mu-\noutput standalone ee --prefix=int\n")
    with pytest.raises(MadGraphError, match="MadGraph not found"):
        import_output(out)
    assert not (tmp_path / "ee_madnis").exists()


def test_process_lines_keep_the_definition_only(tmp_path: Path) -> None:
    card = tmp_path / "proc_card_mg5.dat"
    card.write_text("#************\n# comment\nset group_subprocesses Auto\nimport model sm\n"
                    "define p = g u d u~ d~\ngenerate p p > e+ e- j\nadd process p p > mu+ "
                    "mu- j\noutput madevent PROC -f\nlaunch\n")
    assert _process_lines(card) == ["set group_subprocesses Auto", "import model sm",
                                    "define p = g u d u~ d~", "generate p p > e+ e- j",
                                    "add process p p > mu+ mu- j"]
    card.write_text("import model sm\n")
    with pytest.raises(MadGraphError, match="no generate"):
        _process_lines(card)


def test_process_lines_of_a_standalone_cpp_output(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from madnis_py.madgraph.install import _process_lines_from_code

    for name, procs in (("P1_Sigma_sm_uux_epem", ["u u~", "c c~"]),
                        ("P1_Sigma_sm_ddx_epem", ["d d~"])):
        pdir = tmp_path / "SubProcesses" / name
        pdir.mkdir(parents=True)
        (pdir / "CPPProcess.cc").write_text("".join(
            f"// Process: {p} > e+ e- WEIGHTED<=4 @1\n" for p in procs) + "int x;\n")
        (pdir / "CPPProcess.h").write_text(f"// Process: {procs[0]} > e+ e- WEIGHTED<=4 @1\n")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "Parameters_sm.h").write_text("\n")
    assert _process_lines_from_code(tmp_path) == [
        "import model sm", "generate d d~ > e+ e-", "add process u u~ > e+ e-",
        "add process c c~ > e+ e-"]
    assert "without MadGraph's mirror processes" in capsys.readouterr().err


def test_process_lines_of_a_decay_chain_from_its_code(tmp_path: Path) -> None:
    """MadGraph writes a decay chain's decays under its ``Process:`` line, a decay of a
    decay product indented deeper; they come back in ``generate`` syntax."""
    from madnis_py.madgraph.install import _process_lines_from_code

    pdir = tmp_path / "SubProcesses" / "P1_gg_ttx_t_bwp_wp_epve_tx_bxemvex"
    pdir.mkdir(parents=True)
    (pdir / "matrix.f").write_text(
        "C     Process: g g > t t~ WEIGHTED<=2 @1\n"
        "C     *   Decay: t > b w+ WEIGHTED<=2\n"
        "C     *     Decay: w+ > e+ ve WEIGHTED<=2\n"
        "C     *   Decay: t~ > b~ e- ve~ WEIGHTED<=4\n"
        "C     \n      SUBROUTINE SMATRIX(P, ANS)\n")
    assert _process_lines_from_code(tmp_path)[1:] == [
        "generate g g > t t~, (t > b w+, w+ > e+ ve), t~ > b~ e- ve~"]


def test_the_error_of_a_madgraph_log_is_its_report_not_the_progress() -> None:
    from madnis_py.madgraph.install import _mg5_error

    log = ("INFO: madnis_py: P1_uux_epem: helicities recycled (amplitudes split), 32 HELAS "
           "calls for all helicities instead of 128 \n"
           "INFO: madnis_py: error: /x/madgraph.json: u u~ > e+ e- $ z: `$ z` forbids a "
           "propagator on shell \n"
           "\x1b[1;31mError detected in sub-command output madnis_py /x -f\n"
           "write debug file MG5_debug \n"
           "str : madnis_py: writing the process card failed: `$ z` forbids a propagator "
           "on shell\x1b[0m\nquit\n")
    assert _mg5_error(log).startswith("madnis_py: writing the process card failed: `$ z`")
    assert _mg5_error(log.split("\x1b[1;31m")[0]).startswith("madnis_py: error: /x/")
