"""From what the MadGraph plugin writes (``madgraph.json``, a library, MadGraph's cards) to
the process and run cards, on an output written here around the built-in Drell-Yan
library: mirrors, grouping, the cut-derived partonic threshold, the translated run card,
and the cross section against the quadrature of tests/test_integrand.py."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from madnis_py.cards import load_run_card
from madnis_py.integrand import Integrand
from madnis_py.madgraph import AssembleError, assemble
from madnis_py.phasespace.cuts import ResonanceWindow
from madnis_py.physics import builtin_library, builtin_process_dir
from madnis_py.physics.channels import ChannelLayout
from madnis_py.physics.process import load_process
from tests.test_integrand import drell_yan_quadrature

SM_CARD = builtin_process_dir("drell_yan").parent / "common" / "param_card_sm.dat"

# The part of a MadGraph 3.5.7 run_card.dat the import reads, with Drell-Yan settings.
RUN_CARD = """\
  10000 = nevents ! Number of unweighted events requested
  7     = iseed   ! rnd seed (0=assigned automatically=default))
     1        = lpp1    ! beam 1 type
     1        = lpp2    ! beam 2 type
     6500.0     = ebeam1  ! beam 1 total energy in GeV
     6500.0     = ebeam2  ! beam 2 total energy in GeV
     nn23lo1    = pdlabel     ! PDF set
     230000    = lhaid     ! if pdlabel=lhapdf, this is the lhapdf number
 False = fixed_ren_scale  ! if .true. use fixed ren scale
 False        = fixed_fac_scale  ! if .true. use fixed fac scale
 91.188  = scale            ! fixed ren scale
 91.188  = dsqrt_q2fact1    ! fixed fact scale for pdf1
 91.188  = dsqrt_q2fact2    ! fixed fact scale for pdf2
 4 = dynamical_scale_choice ! Choose one of the preselected dynamical choices
 0.0  = ptl       ! minimum pt for the charged leptons
 -1.0  = etal    ! max rap for the charged leptons
 50.0   = mmll    ! min invariant mass of l+l- (same flavour) lepton pair
 1.0  = scalefact
 0.0  = dsqrt_shat
 15.0  = bwcutoff
 {} = pt_min_pdg
 {} = pt_max_pdg
 {} = eta_min_pdg
 {} = eta_max_pdg
 {} = mxx_min_pdg
 4 = maxjetflavor
"""


def _vertex(daughters: list[int], mother: int, pdg: int, mass: float = 0.0,
            width: float = 0.0, name: str = "") -> dict[str, object]:
    return {"daughters": daughters, "mother": mother, "pdg": pdg, "mass": mass,
            "width": width, "name": name}


def _record(prefix: str, quarks: list[int]) -> dict[str, object]:
    """q q~ > e+ e- through photon and Z, as the plugin describes one P directory."""
    diagrams = [{"number": 1, "s": [_vertex([4, 3], -1, 22, name="a")],
                 "t": [_vertex([1, -1], -2, -quarks[0])]},
                {"number": 2, "s": [_vertex([4, 3], -1, 23, 91.188, 2.441404, "z")],
                 "t": [_vertex([1, -1], -2, -quarks[0])]}]
    return {"directory": f"P1_{prefix}", "prefix": prefix, "mirror": True,
            "identical_particle_factor": 1, "nexternal": 4, "ndiagrams": 2,
            "processes": [{"pdgs": [q, -q, -11, 11], "id": 1,
                           "description": f"q{q} q{q}~ > e+ e- WEIGHTED<=4 @1"}
                          for q in quarks],
            "colour_flows": [[[501, 0], [0, 501], [0, 0], [0, 0]]],
            "diagrams": diagrams}


def write_output(root: Path, quarks: tuple[list[int], ...] = ([2, 4], [1, 3])) -> Path:
    """An ``output madnis_py`` directory around the built-in Drell-Yan library, one P
    directory per list of ``quarks``."""
    (root / "lib").mkdir(parents=True)
    (root / "Cards").mkdir()
    shutil.copyfile(builtin_library("drell_yan"), root / "lib" / "libmadnis_me.so")
    shutil.copyfile(SM_CARD, root / "Cards" / "param_card.dat")
    (root / "Cards" / "run_card.dat").write_text(RUN_CARD)
    info = {"generator": "MadGraph5_aMC@NLO", "madgraph_version": "3.5.7", "model": "sm",
            "library": "lib/libmadnis_me.so", "param_card": "Cards/param_card.dat",
            "run_card": "Cards/run_card.dat",
            "subprocesses": [_record(f"M{k}_", q) for k, q in enumerate(quarks)]}
    (root / "madgraph.json").write_text(json.dumps(info))
    return root


@pytest.fixture(scope="module")
def dy_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_output(tmp_path_factory.mktemp("mg") / "dy")
    done = assemble(root, quiet=True)
    assert done.n_channels == 2 and done.n_subprocesses == 8
    return root


def test_cards_read_back_with_mirrors_and_grouped_channels(dy_output: Path) -> None:
    proc = load_process(dy_output)
    assert proc.beams == "proton" and len(proc.channels) == 2
    pdgs = [s.pdgs for s in proc.subprocesses]
    assert pdgs[:2] == [(2, -2, -11, 11), (-2, 2, -11, 11)]
    mirror = proc.subprocesses[1]
    assert mirror.mirror and mirror.library_pdgs == (2, -2, -11, 11)
    assert mirror.colour_flows == (((0, 501), (501, 0), (0, 0), (0, 0)),)
    assert all(s.diagram_channels == (0, 1) for s in proc.subprocesses)
    assert proc.channels[1].s_channel is not None
    assert proc.channels[1].s_channel.propagator.mass == 91.188
    card = load_run_card(dy_output / "run_card.toml")
    assert card.run.process == dy_output and card.run.seed == 7
    assert card.collider.sqrt_s == 13000.0 and card.scale.dynamical_scale_choice == 4
    assert card.cuts is not None and card.cuts["mmll"] == 50.0
    assert card.training.subprocess_channels == "grouped"  # madevent's channels
    # nn23lo1 (LHAPDF 247000) is not installed on the test machines: the embedded set,
    # said in the card.
    text = (dy_output / "run_card.toml").read_text()
    if card.collider.lhaid is None:
        assert card.collider.pdf == "LHToyPDF" and "# NOTE run_card.dat: the PDF set" in text


def test_every_p_directory_is_its_own_channel_group(tmp_path: Path) -> None:
    """A P directory of one process names its matrix element like the others: unnamed
    subprocesses would form one group together, unrelated matrix elements evaluated at
    every point of each other's channels (VBF Z: 8 of them in one group)."""
    root = write_output(tmp_path / "single", ([2], [1]))
    assemble(root, quiet=True)
    proc = load_process(root)
    assert [(s.pdgs[:2], s.matrix_element) for s in proc.subprocesses] == [
        ((2, -2), "P1_M0_"), ((-2, 2), "P1_M0_"), ((1, -1), "P1_M1_"), ((-1, 1), "P1_M1_")]
    layout = ChannelLayout.of(proc.subprocesses, len(proc.channels), "grouped")
    assert layout.groups == ((0,), (1,), (2,), (3,)) and layout.n_channels == 8


def test_mirrored_subprocess_equals_its_library_order(dy_output: Path) -> None:
    proc = load_process(dy_output)
    me = proc.matrix_element()
    rng = np.random.default_rng(1)
    # Back-to-back momenta along z with the incoming partons in either order.
    e = 40 + 60 * rng.random(50)
    cos, phi = 2 * rng.random(50) - 1, 2 * math.pi * rng.random(50)
    sin = np.sqrt(1 - cos ** 2)
    p = np.zeros((50, 4, 4))
    p[:, 0] = np.stack([e, 0 * e, 0 * e, e], 1)
    p[:, 1] = np.stack([e, 0 * e, 0 * e, -e], 1)
    k = np.stack([e, e * sin * np.cos(phi), e * sin * np.sin(phi), e * cos], 1)
    p[:, 2], p[:, 3] = k, k * np.array([1, -1, -1, -1])
    mirror = proc.subprocesses[1]
    direct = me(p, [-2, 2, -11, 11])  # the built-in library has both orders
    via_mirror = me(mirror.library_momenta(p), mirror.library_pdgs)
    np.testing.assert_allclose(via_mirror, direct, rtol=1e-12)


def test_cross_section_against_quadrature(dy_output: Path) -> None:
    integrand = Integrand(load_process(dy_output), sqrt_s=13000.0, dynamical_scale_choice=4,
                          cuts={"mmll": 50.0}, pdf="LHToyPDF")
    # The channels carry no mass cut: their partonic threshold comes from mmll.
    assert all(m.topology.min_shat == 2500.0 for m in integrand.mappings)
    exact = drell_yan_quadrature(13000.0, 50.0, integrand.pdf)
    z = 1
    f = integrand(np.random.default_rng(5).random((400_000, integrand.dims(z))), z,
                  prior=False).f
    mean, err = f.mean(), f.std() / math.sqrt(len(f))
    assert err < 5e-3 * mean
    assert abs(mean - exact) < 3 * err, (mean / exact - 1, err / mean)


def test_without_a_run_card_the_defaults_with_madevents_channels(tmp_path: Path) -> None:
    root = write_output(tmp_path / "norc")
    (root / "Cards" / "run_card.dat").unlink()
    assemble(root, quiet=True)
    card = load_run_card(root / "run_card.toml")
    assert card.run.process == root and card.run.seed == 1  # madnis-py's defaults
    assert card.training.subprocess_channels == "grouped"
    assert "# NOTE" in (root / "run_card.toml").read_text()


def test_not_an_output_and_no_library(tmp_path: Path) -> None:
    with pytest.raises(AssembleError, match="no madgraph.json"):
        assemble(tmp_path)
    root = write_output(tmp_path / "x")
    (root / "lib" / "libmadnis_me.so").unlink()
    with pytest.raises(AssembleError, match="library was not built"):
        assemble(root)
    assert not (root / "process.toml").exists()


def test_another_final_state_multiplicity_is_refused_with_its_counts(tmp_path: Path) -> None:
    """``generate p p > e+ e-`` then ``add process p p > e+ e- j``: one phase space
    cannot hold both; the error names the two multiplicities before anything is
    written."""
    root = write_output(tmp_path / "multi")
    info = json.loads((root / "madgraph.json").read_text())
    for proc in info["subprocesses"][1]["processes"]:
        proc["pdgs"] = [*proc["pdgs"], 21]
    (root / "madgraph.json").write_text(json.dumps(info))
    with pytest.raises(AssembleError, match=r"has 3 final-state particles, \[2, -2, -11, "
                                            r"11\] 2: .*output each multiplicity"):
        assemble(root, quiet=True)
    assert not (root / "process.toml").exists()


def _with_onshell(root: Path, flags: tuple[bool | None, bool | None],
                  bwcutoff: str | None = None, z_only: bool = False) -> Path:
    """``write_output`` with MadGraph's ``onshell`` flag on the photon and the Z line of
    every record (True: forced on shell by a decay chain, False: forbidden by ``$``);
    ``z_only``: both diagrams through the Z, as in a decay chain every diagram has the
    forced line."""
    write_output(root)
    info = json.loads((root / "madgraph.json").read_text())
    for record in info["subprocesses"]:
        if z_only:
            record["diagrams"][0]["s"] = [dict(record["diagrams"][1]["s"][0])]
        for diagram, flag in zip(record["diagrams"], flags, strict=True):
            diagram["s"][0]["onshell"] = flag
    (root / "madgraph.json").write_text(json.dumps(info))
    if bwcutoff is not None:
        card = root / "Cards" / "run_card.dat"
        card.write_text(card.read_text().replace("15.0  = bwcutoff", f"{bwcutoff} = bwcutoff"))
    return root


def test_a_decay_chains_resonance_becomes_a_window_on_every_subprocess(
        tmp_path: Path) -> None:
    # both diagrams' line forced on shell, as every diagram of p p > t t~, t > b e+ ve
    root = _with_onshell(tmp_path / "chain", (True, True), bwcutoff="10.0d0", z_only=True)
    assemble(root, quiet=True)
    proc = load_process(root)
    assert len(proc.subprocesses) == 8
    for sub in proc.subprocesses:  # mirrors included: the legs are final-state ones
        assert sub.resonance_windows == (ResonanceWindow((2, 3), 91.188, 2.441404, 10.0, "z"),)
    integrand = Integrand(proc, sqrt_s=13000.0, dynamical_scale_choice=4, pdf="LHToyPDF")
    lower = proc.subprocesses[0].resonance_windows[0].lower
    assert all(m.topology.min_shat == pytest.approx(lower ** 2) for m in integrand.mappings)


def test_forced_lines_that_differ_between_diagrams_are_refused(tmp_path: Path) -> None:
    root = _with_onshell(tmp_path / "mixed", (None, True))
    with pytest.raises(AssembleError, match="different particles in different diagrams"):
        assemble(root, quiet=True)
    assert not (root / "process.toml").exists()


def test_a_line_forbidden_on_shell_becomes_a_window_of_its_diagrams(tmp_path: Path) -> None:
    # p p > e+ e- $ z: the Z line of diagram 2 (index 1) forbidden on shell
    root = _with_onshell(tmp_path / "dollar", (None, False))
    assemble(root, quiet=True)
    proc = load_process(root)
    for sub in proc.subprocesses:
        assert sub.resonance_windows == ()
        (fw,) = sub.forbidden_windows
        assert fw.window == ResonanceWindow((2, 3), 91.188, 2.441404, 15.0, "z")
        assert fw.diagrams == (1,)
    Integrand(proc, sqrt_s=13000.0, dynamical_scale_choice=4, pdf="LHToyPDF")


def test_sde_strategy_two_becomes_the_propagator_prior_and_notes_a_veto(
        tmp_path: Path) -> None:
    """MadGraph's sde_strategy = 2 reaches the run card as channel_prior; with `$` the
    run card says that madevent's veto then differs from ours."""
    root = write_output(tmp_path / "sde2")
    card = root / "Cards" / "run_card.dat"
    card.write_text(card.read_text() + " 2 = sde_strategy ! default integration strategy\n")
    done = assemble(root, quiet=True)
    assert load_run_card(root / "run_card.toml").training.channel_prior == "propagators"
    assert not any("sde_strategy" in m for m in done.messages)
    root = _with_onshell(tmp_path / "sde2_dollar", (None, False))
    card = root / "Cards" / "run_card.dat"
    card.write_text(card.read_text() + " 2 = sde_strategy ! default integration strategy\n")
    done = assemble(root, quiet=True)
    (note,) = [m for m in done.messages if "sde_strategy" in m]
    assert "propagator shares" in note and "|M_i|^2 shares" in note
    assert f"# NOTE {note}" in (root / "run_card.toml").read_text()
