"""``output madnis_py`` with a real MadGraph (``MADNIS_PY_MG5_HOME``; set it up with
``../shared/tools/mg5/setup-mg5.sh``); skipped without it.

For e+ e- > mu+ mu- a, g g > t t~ g and p p > e+ e- j: the plugin's library gives
MadGraph's own standalone |M|^2 (``output standalone --prefix=int``, built as MadGraph
builds it), one channel per diagram with 3-point vertices (as many as madevent's
``configs.inc``), per-diagram |M_i|^2 with a zero column for a 4-point diagram, and
``madnis-py run`` on the written run card, with no edits, gives an event file the LHE
checks accept.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from madnis_py.events import check_lhe
from madnis_py.madgraph import install_plugin
from madnis_py.madgraph.install import run_madgraph
from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import MatrixElement
from madnis_py.physics.process import load_process

MG5 = os.environ.get("MADNIS_PY_MG5_HOME")
pytestmark = [pytest.mark.skipif(not MG5, reason="set MADNIS_PY_MG5_HOME to a MadGraph "
                                 "3.5 tree (../shared/tools/mg5/setup-mg5.sh)"),
              pytest.mark.slow]

PROCESSES = {"eemumua": "e+ e- > mu+ mu- a", "ggttg": "g g > t t~ g",
             "ppeej": "p p > e+ e- j"}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Path]]:
    """Per process: the madnis_py output, MadGraph's standalone output, madevent's."""
    assert MG5 is not None
    root = tmp_path_factory.mktemp("mg5")
    install_plugin(MG5)
    commands = ["import model sm"]
    out = {}
    for name, proc in PROCESSES.items():
        dirs = (root / name, root / f"{name}_sa", root / f"{name}_me")
        commands += [f"generate {proc}", f"output madnis_py {dirs[0]} -f",
                     f"output standalone {dirs[1]} --prefix=int -f",
                     f"output madevent {dirs[2]} -f"]
        out[name] = dirs
    run_madgraph(Path(MG5), commands, log=root / "mg5.log")
    for _, sa, _ in out.values():
        _build_standalone(sa)
    return out


def _build_standalone(sa: Path) -> None:
    """MadGraph's standalone Fortran as MadGraph builds it (its -O0 HELAS and model
    libraries), linked into one shared library."""
    sub = sa / "SubProcesses"
    objs = []
    for f in sorted(sub.glob("P*/matrix.f")):
        obj = f.with_suffix(".o")
        subprocess.run(["gfortran", "-fPIC", "-w", "-ffixed-line-length-132", "-c",
                        "matrix.f", "-o", str(obj)], cwd=f.parent, check=True)
        objs.append(str(obj))
    subprocess.run(["gfortran", "-fPIC", "-w", "-ffixed-line-length-132", "-c",
                    "all_matrix.f"], cwd=sub, check=True)
    subprocess.run(["gfortran", "-shared", "-o", str(sa / "lib" / "libsa.so"), *objs,
                    str(sub / "all_matrix.o"), f"-L{sa / 'lib'}", "-ldhelas", "-lmodel"],
                   check=True)


def _momenta(proc, n: int, seed: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    rambo = Rambo(proc.final_masses(), Beams(1000.0))
    return rambo.map(np.random.default_rng(seed).random((n, rambo.dims))).momenta


@pytest.mark.parametrize("name", list(PROCESSES))
def test_matrix_elements_equal_madgraph_standalone(
        outputs: dict[str, tuple[Path, Path, Path]], name: str) -> None:
    ours_dir, sa, _ = outputs[name]
    proc = load_process(ours_dir)
    ours = proc.matrix_element()
    theirs = MatrixElement.from_madgraph(sa / "lib" / "libsa.so",
                                         sa / "Cards" / "param_card.dat")
    assert ours.subprocesses == theirs.subprocesses
    p = _momenta(proc, 50, 1)
    for sub in proc.subprocesses:
        pl = sub.library_momenta(p)
        a = ours(pl, sub.library_pdgs, alpha_s=0.118)
        b = theirs(pl, sub.library_pdgs, alpha_s=0.118)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=0)
        assert np.all(a > 0)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_one_channel_per_diagram_as_madevent(outputs: dict[str, tuple[Path, Path, Path]],
                                             name: str) -> None:
    ours_dir, _, me = outputs[name]
    info = json.loads((ours_dir / "madgraph.json").read_text())
    ours = sorted(sum(d is not None for d in r["diagrams"]) for r in info["subprocesses"])
    # madevent writes one config per diagram with 3-point vertices (mapconfig(0)).
    theirs = []
    for configs in me.glob("SubProcesses/P*/configs.inc"):
        found = re.search(r"MAPCONFIG\(0\)/\s*(\d+)\s*/", configs.read_text(), re.I)
        assert found is not None
        theirs.append(int(found.group(1)))
    # madevent groups subprocesses (one P directory, one config set, for several of ours).
    assert set(ours) == set(theirs)
    proc = load_process(ours_dir)
    for sub, record_diagrams in zip(proc.subprocesses, _per_subprocess(info), strict=True):
        assert sub.diagram_channels is not None
        assert len(sub.diagram_channels) == len(record_diagrams)
        assert [c >= 0 for c in sub.diagram_channels] == [d is not None
                                                          for d in record_diagrams]


def _per_subprocess(info: dict) -> list[list]:  # type: ignore[type-arg]
    out = []
    for record in info["subprocesses"]:
        for _ in record["processes"]:
            out.append(record["diagrams"])
            if record["mirror"]:
                out.append(record["diagrams"])
    return out


def test_per_diagram_amplitudes(outputs: dict[str, tuple[Path, Path, Path]]) -> None:
    ours_dir = outputs["ggttg"][0]
    proc = load_process(ours_dir)
    me = proc.matrix_element()
    p = _momenta(proc, 20, 2)
    amp2 = me.amp2(p, [21, 21, 6, -6, 21], alpha_s=0.118)
    assert amp2.shape == (20, 16)
    assert np.all(amp2[:, :15] > 0)
    assert np.all(amp2[:, 15] == 0)  # diagram 16 has the 4-gluon vertex: no channel
    assert proc.subprocesses[0].diagram_channels[15] == -1  # type: ignore[index]


def test_more_than_64_diagrams_in_one_subprocess(tmp_path: Path) -> None:
    # g g > t t~ g g (123 diagrams) was refused: the per-diagram row was 64 wide. The
    # library now says its row (madnis_max_amp2_); |M|^2 is still MadGraph's own.
    assert MG5 is not None
    install_plugin(MG5)
    ours_dir, sa = tmp_path / "ggttgg", tmp_path / "ggttgg_sa"
    run_madgraph(Path(MG5), ["import model sm", "generate g g > t t~ g g",
                             f"output madnis_py {ours_dir} -f",
                             f"output standalone {sa} --prefix=int -f"],
                 log=tmp_path / "mg5.log")
    _build_standalone(sa)
    proc = load_process(ours_dir)
    me = proc.matrix_element()
    assert me.amp2_width == 123
    theirs = MatrixElement.from_madgraph(sa / "lib" / "libsa.so",
                                         sa / "Cards" / "param_card.dat")
    p = _momenta(proc, 10, 3)
    pdgs = [21, 21, 6, -6, 21, 21]
    m2, amp2 = me.smatrix_amp2(p, pdgs, alpha_s=0.118)
    np.testing.assert_allclose(m2, theirs(p, pdgs, alpha_s=0.118), rtol=1e-12, atol=0)
    assert amp2.shape == (10, 123)
    channels = np.asarray(proc.subprocesses[0].diagram_channels)
    assert len(channels) == 123
    assert np.all(amp2[:, channels >= 0] > 0)
    assert np.all(amp2[:, channels < 0] == 0)  # the 4-gluon diagrams have no channel
    np.testing.assert_array_equal(me.amp2(p, pdgs, alpha_s=0.118), amp2)


@pytest.mark.parametrize("name", list(PROCESSES))
def test_run_without_edits_writes_valid_events(outputs: dict[str, tuple[Path, Path, Path]],
                                               name: str, tmp_path: Path) -> None:
    from madnis_py.cli import main

    ours_dir = outputs[name][0]
    text = (ours_dir / "run_card.toml").read_text()
    # The written card as it is, made short: fewer steps, points and events.
    small = re.sub(r"(?m)^steps = .*$", "steps = 5", text)
    small = re.sub(r"(?m)^nevents = .*$", "nevents = 200", small)
    small = re.sub(r"(?m)^vegas_points = .*$", "vegas_points = 2000", small)
    small = re.sub(r"(?m)^vegas_iterations = .*$", "vegas_iterations = 3", small)
    small = re.sub(r"(?m)^points = .*$", "points = 20000", small)
    small = re.sub(r"(?m)^output = .*$", f'output = "{tmp_path / "run"}"', small)
    small = re.sub(r"(?m)^plots = .*$", "plots = false", small)
    card = tmp_path / "run_card.toml"
    card.write_text(small)
    assert main(["run", str(card), "--quiet"]) == 0
    lhe = next((tmp_path / "run").glob("events.lhe*"))
    check_lhe(lhe)


@pytest.mark.parametrize("kind", [1, 2])
def test_import_of_standalone_and_madevent_outputs(
        outputs: dict[str, tuple[Path, Path, Path]], kind: int, tmp_path: Path) -> None:
    from madnis_py.madgraph import import_output

    ours_dir = outputs["eemumua"][0]
    done = import_output(outputs["eemumua"][kind], destination=tmp_path / "imported",
                         mg5=MG5, quiet=True)
    assert done.process_card == tmp_path / "imported" / "process.toml"
    ours, imported = load_process(ours_dir), load_process(tmp_path / "imported")
    assert imported.channels == ours.channels
    assert imported.subprocesses == ours.subprocesses


@pytest.mark.parametrize("processes, reason", [
    (["generate t > b w+"], "decays"),
    # one output, two multiplicities: refused once the library is built, naming both
    (["generate e+ e- > mu+ mu-", "add process e+ e- > mu+ mu- a"],
     r"\[-11, 11, -13, 13\] has 2 final-state particles, \[-11, 11, -13, 13, 22\] 3"),
])
def test_unsupported_processes_leave_no_directory(processes: list[str], reason: str,
                                                  tmp_path: Path) -> None:
    from madnis_py.madgraph import MadGraphError

    assert MG5 is not None
    install_plugin(MG5)
    out = tmp_path / "bad"
    with pytest.raises(MadGraphError, match=reason):
        run_madgraph(Path(MG5), ["import model sm", *processes,
                                 f"output madnis_py {out} -f"], log=tmp_path / "mg5.log")
    assert not out.exists()


def test_import_of_a_standalone_cpp_output(tmp_path: Path) -> None:
    from madnis_py.madgraph import import_output

    assert MG5 is not None
    cpp = tmp_path / "ppee_cpp"
    run_madgraph(Path(MG5), ["import model sm", "generate p p > e+ e-",
                             f"output standalone_cpp {cpp} -f"], log=tmp_path / "mg5.log")
    done = import_output(cpp, mg5=MG5, quiet=True)
    proc = load_process(done.process_card)
    assert {s.pdgs[:2] for s in proc.subprocesses} == {(1, -1), (2, -2), (3, -3), (4, -4)}
    assert len(proc.channels) == 2  # photon and Z, shared by all four


def test_one_evaluation_gives_the_amplitude_and_the_diagrams(
        outputs: dict[str, tuple[Path, Path, Path]]) -> None:
    proc = load_process(outputs["ggttg"][0])
    me = proc.matrix_element()
    p = _momenta(proc, 30, 3)
    pdgs = [21, 21, 6, -6, 21]
    m2, amp2 = me.smatrix_amp2(p, pdgs, alpha_s=0.118)
    np.testing.assert_array_equal(m2, me(p, pdgs, alpha_s=0.118))
    np.testing.assert_array_equal(amp2, me.amp2(p, pdgs, alpha_s=0.118))


def test_flavours_of_one_matrix_element_share_its_evaluation(
        outputs: dict[str, tuple[Path, Path, Path]]) -> None:
    """p p > e+ e- j: MadGraph's flavour groups (g u and g c in P1_gu_epemu) become
    ``matrix_element`` in the process card; the integrand is the same bit for bit with
    half the library calls, and each group's flavours do have equal |M|^2."""
    import dataclasses

    from madnis_py.integrand import Integrand

    proc = load_process(outputs["ppeej"][0])
    groups: dict[tuple[str | None, bool], list[int]] = {}
    for k, sub in enumerate(proc.subprocesses):
        groups.setdefault((sub.matrix_element, sub.mirror), []).append(k)
    assert None not in {name for name, _ in groups} and len(groups) == 12
    me = proc.matrix_element()
    p = _momenta(proc, 20, 2)
    for members in groups.values():
        values = [me(proc.subprocesses[k].library_momenta(p),
                     proc.subprocesses[k].library_pdgs, alpha_s=0.118) for k in members]
        assert len(values) == 2 and np.array_equal(values[0], values[1])
    alone = dataclasses.replace(proc, subprocesses=tuple(
        dataclasses.replace(s, matrix_element=None) for s in proc.subprocesses))
    a = Integrand(proc, dynamical_scale_choice=3)
    b = Integrand(alone, dynamical_scale_choice=3)
    x = np.random.default_rng(4).random((2000, a.dims(0)))
    one, two = a(x, 0, details=True), b(x, 0, details=True)
    for field in ("f", "prior", "subprocess_f"):
        np.testing.assert_array_equal(getattr(one, field), getattr(two, field))
    assert a.n_calls > 0 and 2 * a.n_calls == b.n_calls


def test_a_massless_momentum_space_like_by_rounding_gives_a_finite_amplitude(
        tmp_path: Path) -> None:
    """d d~ > e+ ve mu- vm~ at a point of a survey (p p > e+ ve mu- vm~, seed 3), whose
    e+ of 4.2 TeV came out of the lab-frame boost with m^2 = -3.7e-9 GeV^2: MadGraph's
    HELAS answers NaN for the whole |M|^2 (the run stopped); the loader passes E = |p|
    again for such a NaN point and gets a finite value (|M|^2 of about 2e-15 here, at
    the rounding noise of its cancellations, as in the partonic rest frame)."""
    from madnis_py._core import ext

    assert MG5 is not None
    out = tmp_path / "ww"
    install_plugin(MG5)
    run_madgraph(Path(MG5), ["import model sm", "generate d d~ > e+ ve mu- vm~",
                             f"output madnis_py {out} -f"], log=tmp_path / "mg5.log")
    me = load_process(out).matrix_element()
    p = np.array([[[3163.6320988247617, 0.0, 0.0, 3163.6320988247617],
                   [6477.533261924942, 0.0, 0.0, -6477.533261924942],
                   [4169.98269003378, 1317.328503456623, -3949.402198911569,
                    235.84639152330445],
                   [784.1121713149562, -188.79525844299977, 566.0155222046017,
                    -508.73831801540996],
                   [18.537746984740767, -4.463440833537548, 13.381570090312238,
                    -12.027441170666188],
                   [4668.532752416225, -1124.0698041800858, 3370.005106616655,
                    -3028.9817954374084]]])
    pdgs = [1, -1, -11, 12, 13, -14]
    raw = np.empty(1)
    ext.me_smatrixhel(me._smatrixhel, np.array(pdgs, dtype=np.int32), -1, p,
                      np.array([0.118]), np.array([0.0]), -1, raw)
    assert np.isnan(raw[0])  # MadGraph's own answer at the momenta as they are
    both = np.concatenate([p, _momenta(load_process(out), 3, 1)])
    m2 = me(both, pdgs, alpha_s=0.118)
    m2_amp2, amp2 = me.smatrix_amp2(both, pdgs, alpha_s=0.118)
    assert np.all(np.isfinite(m2)) and 0 < m2[0] < 1e-14
    np.testing.assert_array_equal(m2, m2_amp2)
    assert np.all(np.isfinite(amp2)) and amp2[0].sum() > 0
    np.testing.assert_array_equal(me.amp2(both, pdgs, alpha_s=0.118), amp2)
    # the other events are MadGraph's own answers, bit for bit
    np.testing.assert_array_equal(m2[1:], me(both[1:], pdgs, alpha_s=0.118))
