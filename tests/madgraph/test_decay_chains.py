"""Decay chains (``p p > t t~, t > b e+ ve, t~ > b~ e- ve~``) through ``output madnis_py``
with a real MadGraph (``MADNIS_PY_MG5_HOME``); skipped without it.

The decay chain's resonances become on-shell windows (|m - M| < bwcutoff Gamma, madevent's
forced Breit-Wigner) on every subprocess, and the events carry the tops as resonances
inside them; a line ``$`` forbids on shell becomes a forbidden window of the diagrams
that have it. The cross sections against madevent's: ``benchmarks/bench_madgraph.py
--only tt_dilep,tt_nested,zz_4e,ppee_noz``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from madnis_py.cli import main
from madnis_py.madgraph import install_plugin
from madnis_py.madgraph.install import run_madgraph
from madnis_py.phasespace.cuts import ResonanceWindow
from madnis_py.physics.process import load_process

MG5 = os.environ.get("MADNIS_PY_MG5_HOME")
pytestmark = [pytest.mark.skipif(not MG5, reason="set MADNIS_PY_MG5_HOME to a MadGraph "
                                 "3.5 tree (../shared/tools/mg5/setup-mg5.sh)"),
              pytest.mark.slow]

CHAIN = "p p > t t~, t > b e+ ve, t~ > b~ e- ve~"


@pytest.fixture(scope="module")
def tops(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    assert MG5 is not None
    root = tmp_path_factory.mktemp("chains")
    install_plugin(MG5)
    out = {"chain": root / "chain"}
    run_madgraph(Path(MG5), ["import model sm", f"generate {CHAIN}",
                             f"output madnis_py {out['chain']} -f"], log=root / "mg5.log")
    return out


def test_the_tops_become_windows_on_every_subprocess(tops: dict[str, Path]) -> None:
    proc = load_process(tops["chain"])
    card = proc.parameters()
    mt, wt = card.mass(6), card.width(6)
    want = (ResonanceWindow((2, 3, 4), mt, wt, 15.0, "t"),
            ResonanceWindow((5, 6, 7), mt, wt, 15.0, "t~"))
    assert {s.pdgs[:2] for s in proc.subprocesses} >= {(21, 21), (2, -2), (-2, 2)}
    assert all(s.resonance_windows == want for s in proc.subprocesses)
    info = json.loads((tops["chain"] / "madgraph.json").read_text())
    flags = {v["name"]: v["onshell"] for r in info["subprocesses"] for d in r["diagrams"]
             if d for v in d["s"]}
    assert flags["t"] is True and flags["t~"] is True and flags["w+"] is None


def test_every_event_carries_both_tops_inside_their_windows(tops: dict[str, Path],
                                                            tmp_path: Path) -> None:
    """``madnis-py run`` on the written card: the LHE file passes the checks, and every
    event has the two tops as resonances (status 2), each the sum of its decay products
    with a mass inside its window, as madevent writes them."""
    from madnis_py.events import check_lhe, read_lhe

    card = tmp_path / "run_card.toml"
    text = (tops["chain"] / "run_card.toml").read_text()
    text = re.sub(r"(?m)^nevents = .*$", "nevents = 300", text)
    card.write_text(re.sub(r"(?m)^output = .*$", f'output = "{tmp_path / "run"}"', text))
    assert main(["run", str(card), "--quiet"]) == 0
    lhe = next((tmp_path / "run").glob("events.lhe*"))
    check_lhe(lhe)
    (window, _) = load_process(tops["chain"]).subprocesses[0].resonance_windows
    _, events = read_lhe(lhe)
    n = 0
    for event in events:
        tops_ = [p for p in event.particles if abs(p.idup) == 6]
        assert sorted(p.idup for p in tops_) == [-6, 6]
        for top in tops_:
            assert top.istup == 2
            e, px, py, pz = top.p4
            assert window.lower < math.sqrt(max(e * e - px * px - py * py - pz * pz, 0)) \
                < window.upper
        n += 1
    assert n == 300


def test_a_line_forbidden_on_shell_becomes_a_window_of_its_diagrams(tmp_path: Path) -> None:
    assert MG5 is not None
    install_plugin(MG5)
    out = tmp_path / "noz"
    run_madgraph(Path(MG5), ["import model sm", "generate p p > e+ e- $ z",
                             f"output madnis_py {out} -f"], log=tmp_path / "mg5.log")
    proc = load_process(out)
    card = proc.parameters()
    info = json.loads((out / "madgraph.json").read_text())
    z_diagrams = {r["directory"]: [i for i, d in enumerate(r["diagrams"])
                                   if any(v["pdg"] == 23 for v in d["s"])]
                  for r in info["subprocesses"]}
    for sub in proc.subprocesses:
        (fw,) = sub.forbidden_windows
        assert fw.window == ResonanceWindow((2, 3), card.mass(23), card.width(23), 15.0, "z")
        assert list(fw.diagrams) == z_diagrams[sub.matrix_element or ""] != []
