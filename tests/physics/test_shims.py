"""The standalone_cpp and Sherpa shims: built and checked where MadGraph / Sherpa exist."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from madnis_py.integrand import Integrand
from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import MatrixElement, builtin_library, builtin_process_dir
from madnis_py.physics.shims import (
    build_amegic_libraries,
    build_sherpa,
    build_standalone_cpp,
    write_sherpa_run_card,
)

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


# --- Sherpa 3 (docs/sherpa.md) -------------------------------------------------------------
# Sherpa is found from MADNIS_PY_SHERPA_PREFIX (its bin/Sherpa-config) or Sherpa-config on
# PATH. Sherpa allows one run per process (process-wide globals), so every Sherpa
# evaluation runs in a child interpreter (_in_child).


def _sherpa_config() -> str | None:
    prefix = os.environ.get("MADNIS_PY_SHERPA_PREFIX")
    if prefix:
        config = Path(prefix) / "bin" / "Sherpa-config"
        return str(config) if config.is_file() else None
    return shutil.which("Sherpa-config")


needs_sherpa = pytest.mark.skipif(
    _sherpa_config() is None,
    reason="Sherpa 3 not found: set MADNIS_PY_SHERPA_PREFIX or put Sherpa-config on PATH")


def _run_card(run: Path, processes: list[str], *, hadronic: bool, generator: str = "Comix",
              orders: dict[str, int] | None = None) -> Path:
    """Sherpa.yaml with MadGraph's SM of CARD; the top width 0 as in the built-in ttbar
    (Sherpa would keep it in the t-channel propagators: 1.3 % on g g -> t t~, and it warns
    about the width of an external particle)."""
    return write_sherpa_run_card(run, processes, param_card=CARD, hadronic=hadronic,
                                 sqrt_s=13000.0 if hadronic else 500.0, generator=generator,
                                 orders=orders, zero_widths=(6,))


_CHILD = r"""
import json, sys
import numpy as np
from madnis_py.physics import MatrixElement
job = json.loads(sys.argv[1])
me = MatrixElement.from_sherpa(job["library"], job["run"])
out = {}
for i, (pdgs, path) in enumerate(zip(job["pdgs"], job["inputs"])):
    out[f"me{i}"] = me(np.load(path), pdgs)
np.savez(job["output"], **out)
print("child done")
"""


def _in_child(code: str, job: dict[str, object], tmp: Path,
              timeout: float = 600) -> subprocess.CompletedProcess[str]:
    res = subprocess.run([sys.executable, "-c", code, json.dumps(job)], capture_output=True,
                         text=True, timeout=timeout, cwd=tmp, check=False)
    assert res.returncode == 0, res.stderr[-4000:]
    return res


def _sherpa_me(lib: Path, run: Path, calls: list[tuple[list[int], np.ndarray]],
               tmp: Path) -> list[np.ndarray]:
    inputs = []
    for i, (_, p) in enumerate(calls):
        inputs.append(str(tmp / f"p{i}.npy"))
        np.save(inputs[-1], p)
    res = _in_child(_CHILD, {"library": str(lib), "run": str(run), "inputs": inputs,
                             "output": str(tmp / "out.npz"),
                             "pdgs": [pdgs for pdgs, _ in calls]}, tmp)
    # Sherpa's banner and log went to run/sherpa.log, not onto stdout
    assert res.stdout == "child done\n"
    out = np.load(tmp / "out.npz")
    return [out[f"me{i}"] for i in range(len(calls))]


@pytest.fixture(scope="module")
def sherpa_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = _sherpa_config()
    assert config is not None
    return build_sherpa(output=tmp_path_factory.mktemp("sherpa") / "libme_sherpa.so",
                        sherpa_config=config)


def _points(masses: list[float], beams: Beams, n: int, seed: int,
            min_shat: float = 0.0) -> np.ndarray:
    rambo = Rambo(masses, beams, min_shat=min_shat)
    batch = rambo.map(np.random.default_rng(seed).random((n, rambo.dims)))
    return np.asarray(batch.momenta)[np.asarray(batch.weight) > 0]


# built-in library: (Sherpa processes (Sherpa's order of the initial state), coupling
# orders, hadron beams, PDG lists to compare (MadGraph's order), final-state masses). The
# built-in ttbar is pure QCD; Sherpa would add the photon and Z in q q~ -> t t~.
_EW = {"QCD": 0, "EW": 2}
_CASES: dict[str, tuple[list[str], dict[str, int], bool, list[list[int]], list[float]]] = {
    "ee_mumu": (["11 -11 -> -13 13"], _EW, False, [[-11, 11, -13, 13]], [0.0, 0.0]),
    "drell_yan": (["93 93 -> -11 11"], _EW, True,
                  [[2, -2, -11, 11], [-2, 2, -11, 11], [1, -1, -11, 11], [3, -3, -11, 11],
                   [-4, 4, -11, 11]], [0.0, 0.0]),
    "ttbar": (["21 21 -> 6 -6", "93 93 -> 6 -6"], {"QCD": 2, "EW": 0}, True,
              [[21, 21, 6, -6], [2, -2, 6, -6], [-1, 1, 6, -6]], [173.0, 173.0]),
}


@needs_sherpa
@pytest.mark.parametrize("generator", ["Comix", "Amegic"])
@pytest.mark.parametrize("case", sorted(_CASES))
def test_sherpa_matches_the_builtin(case: str, generator: str, sherpa_lib: Path,
                                    tmp_path: Path) -> None:
    """|M|^2 of Sherpa (Comix, Amegic) equals the built-in process's at RAMBO points (boosted
    with hadron beams), to 1e-10: Sherpa's CSMatrixElement is MadGraph's convention."""
    processes, orders, hadronic, pdg_lists, masses = _CASES[case]
    run = _run_card(tmp_path / "run", processes, hadronic=hadronic, generator=generator,
                    orders=orders)
    if generator == "Amegic":
        config = _sherpa_config()
        assert config is not None
        build_amegic_libraries(run, sherpa_config=config)
    beams = Beams(13000.0, hadronic=True) if hadronic else Beams(500.0)
    p = _points(masses, beams, 200, seed=7, min_shat=(50.0**2 if hadronic else 0.0))
    assert len(p) > 100
    theirs = _sherpa_me(sherpa_lib, run, [(pdgs, p) for pdgs in pdg_lists], tmp_path)
    ours = MatrixElement.from_madgraph(builtin_library(case), CARD)
    for pdgs, value in zip(pdg_lists, theirs, strict=True):
        expected = ours(p, pdgs, alpha_s=0.118)
        assert np.all(expected > 0)
        np.testing.assert_allclose(value, expected, rtol=1e-10, err_msg=str(pdgs))


@needs_sherpa
def test_sherpa_identical_final_states_against_ufoamp(sherpa_lib: Path, tmp_path: Path) -> None:
    """With identical final-state particles Sherpa's |M|^2 carries 1/n!, as MadGraph's
    (ufoamp's does not: multiplied here); g g -> g g also has identical incoming partons
    from identical beams (Sherpa's initial-state swap factor, divided out by the shim)."""
    ufo_sm = pytest.importorskip("ufo_sm")
    analysis = pytest.importorskip("ufoamp.analysis")
    cases = {"ee": (["11 -11 -> 22 22"], _EW, False, [[-11, 11, 22, 22]]),
             "qcd": (["2 -2 -> 21 21", "21 21 -> 21 21"], {"QCD": 2, "EW": 0}, True,
                     [[2, -2, 21, 21], [-2, 2, 21, 21], [21, 21, 21, 21]])}
    rambo = Rambo([0.0, 0.0], Beams(500.0))
    p = np.asarray(rambo.map(np.random.default_rng(5).random((20, rambo.dims))).momenta)
    for name, (processes, orders, hadronic, pdg_lists) in cases.items():
        run = _run_card(tmp_path / name, processes, hadronic=hadronic, orders=orders)
        theirs = _sherpa_me(sherpa_lib, run, [(pdgs, p) for pdgs in pdg_lists], tmp_path)
        for pdgs, value in zip(pdg_lists, theirs, strict=True):
            ref = analysis.MatrixElement(str(Path(ufo_sm.__file__).parent),
                                         (pdgs[:2], pdgs[2:]), param_card=str(CARD),
                                         gauge="unitary", couplings={"aS": 0.118})
            expected = np.asarray(ref.m2_events(p, prune=False), dtype=np.float64) / 2
            np.testing.assert_allclose(value, expected, rtol=1e-10, err_msg=str(pdgs))


_PROCESS_CARD = """
[process]
name = "drell_yan_sherpa"
library = "{library}"
sherpa_run_card = "run"
beams = "proton"
param_card = "{param_card}"
"""

def _drell_yan_card(sherpa_lib: Path, card_dir: Path) -> Path:
    """The built-in Drell-Yan process card with the Sherpa library (one run card for all
    eight subprocesses) in ``card_dir``."""
    builtin = (builtin_process_dir("drell_yan") / "process.toml").read_text()
    body = builtin[builtin.index("[[subprocess]]"):]
    _run_card(card_dir / "run", ["93 93 -> -11 11"], hadronic=True, orders=_EW)
    (card_dir / "process.toml").write_text(
        _PROCESS_CARD.format(library=sherpa_lib, param_card=CARD.resolve()) + body)
    return card_dir


_INTEGRAL = r"""
import json, math, sys
import numpy as np
from madnis_py.integrand import Integrand
from madnis_py.physics import load_process
job = json.loads(sys.argv[1])
integrand = Integrand(load_process(job["process"]), sqrt_s=13000.0, dynamical_scale_choice=4,
                      cuts={"mmll": 50.0}, pdf="LHToyPDF")
z = integrand.channel_names().index("Z")
x = np.random.default_rng(job["seed"]).random((job["n"], integrand.dims(z)))
np.save(job["output"], integrand(x, z, prior=False).f)
"""


@needs_sherpa
def test_sherpa_drell_yan_cross_section(sherpa_lib: Path, tmp_path: Path) -> None:
    """p p -> e+ e- (u c d s, both orientations) through a process card with the Sherpa
    library gives the built-in's cross section: plain MC over the same uniform points of
    the Z channel, within 3 sigma (in fact to 1e-9: the |M|^2 agree point by point)."""
    card_dir = _drell_yan_card(sherpa_lib, tmp_path / "card")
    n, seed = 200_000, 11
    _in_child(_INTEGRAL, {"process": str(card_dir), "seed": seed, "n": n,
                          "output": str(tmp_path / "f.npy")}, tmp_path)
    f_sherpa = np.load(tmp_path / "f.npy")
    integrand = Integrand("drell_yan", sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0}, pdf="LHToyPDF")
    z = integrand.channel_names().index("Z")
    x = np.random.default_rng(seed).random((n, integrand.dims(z)))
    f_builtin = integrand(x, z, prior=False).f
    mean, err = f_builtin.mean(), f_builtin.std() / math.sqrt(n)
    mean_sherpa, err_sherpa = f_sherpa.mean(), f_sherpa.std() / math.sqrt(n)
    assert err < 1e-2 * mean
    assert abs(mean_sherpa - mean) < 3 * math.hypot(err, err_sherpa)
    np.testing.assert_allclose(f_sherpa, f_builtin, rtol=1e-9, atol=0)


_REFUSALS = r"""
import json, os, signal, sys
import numpy as np
from madnis_py.physics import MatrixElement, MatrixElementError
job = json.loads(sys.argv[1])
me = MatrixElement.from_sherpa(job["library"], job["run"])
p = np.load(job["input"])
assert me(p, [-11, 11, -13, 13]).shape == (len(p),)
# a PDG list the run card has no process for: refused like MadGraph's dispatcher
try:
    me(p, [-11, 11, -15, 15])
except MatrixElementError as err:
    assert "no subprocess has the PDG list" in str(err), err
else:
    raise AssertionError("unknown PDG list accepted")
# one Sherpa run per process
try:
    MatrixElement.from_sherpa(job["library"], job["run"])
except MatrixElementError as err:
    assert "already running in this process" in str(err), err
else:
    raise AssertionError("a second Sherpa run was opened")
# Sherpa's signal handlers are gone: SIGINT is Python's KeyboardInterrupt again
try:
    os.kill(os.getpid(), signal.SIGINT)
    import time; time.sleep(1)
except KeyboardInterrupt:
    print("interrupted")
"""


@needs_sherpa
def test_sherpa_refusals_and_process_state(sherpa_lib: Path, tmp_path: Path) -> None:
    run = _run_card(tmp_path / "run", ["11 -11 -> -13 13"], hadronic=False, orders=_EW)
    np.save(tmp_path / "p.npy", _points([0.0, 0.0], Beams(500.0), 10, seed=1))
    res = _in_child(_REFUSALS, {"library": str(sherpa_lib), "run": str(run),
                                "input": str(tmp_path / "p.npy")}, tmp_path)
    assert res.stdout == "interrupted\n"
    assert (run / "sherpa.log").is_file()
    assert "Sherpa" in (run / "sherpa.log").read_text()


_BAD = r"""
import json, sys
from madnis_py.physics import MatrixElement, MatrixElementError
job = json.loads(sys.argv[1])
try:
    MatrixElement.from_sherpa(job["library"], job["run"])
except MatrixElementError as err:
    print(err)
"""


@needs_sherpa
def test_sherpa_run_card_errors_are_raised(sherpa_lib: Path, tmp_path: Path) -> None:
    """Sherpa's exceptions during the initialisation become a MatrixElementError with its
    message (here: a process without diagrams). Not every run-card error is one: Sherpa
    exits or crashes on some (docs/sherpa.md)."""
    run = _run_card(tmp_path / "run", ["11 -11 -> 6 6"], hadronic=False, orders=_EW)
    res = _in_child(_BAD, {"library": str(sherpa_lib), "run": str(run)}, tmp_path)
    assert "Sherpa failed to initialise the run" in res.stdout, res.stdout
    assert "No hard process found" in res.stdout, res.stdout


@needs_sherpa
def test_sherpa_process_runs_end_to_end(sherpa_lib: Path, tmp_path: Path) -> None:
    """`madnis-py run` on a Drell-Yan process card with the Sherpa library: a valid LHE
    file and the cross section of the built-in on the same card (it is the same |M|^2)."""
    from madnis_py.events import check_lhe

    card_dir = _drell_yan_card(sherpa_lib, tmp_path / "card")
    runs = {}
    for name, process in (("sherpa", str(card_dir)), ("builtin", "drell_yan")):
        card = tmp_path / f"{name}.toml"
        card.write_text(f'[run]\nprocess = "{process}"\nseed = 2\nnevents = 300\n'
                        f'output = "{tmp_path / name}"\n[training]\nsteps = 3\n'
                        'batch = 1024\nvegas = false\n[integration]\npoints = 20000\n'
                        'iterations = 2\n[output]\nplots = false\n')
        code = ("import sys; from madnis_py.cli import main; "
                "raise SystemExit(main(sys.argv[1:]))")
        res = subprocess.run([sys.executable, "-c", code, "run", str(card), "--json",
                              "--quiet"], capture_output=True, text=True, timeout=600,
                             env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        runs[name] = json.loads(res.stdout.strip().splitlines()[-1])
        assert check_lhe(runs[name]["lhe"]).n_events == 300
    # The same |M|^2 to 1e-10, but training amplifies any difference: compare within errors.
    a, b = runs["sherpa"], runs["builtin"]
    assert abs(a["sigma_pb"] - b["sigma_pb"]) < 3 * math.hypot(a["error_pb"], b["error_pb"])
