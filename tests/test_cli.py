"""The madnis-py command: a full run on built-in processes, LHE checks, run-card errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from madnis_py.cli import main
from madnis_py.events import check_lhe, read_lhe
from madnis_py.physics.process import load_process

pylhe = pytest.importorskip("pylhe")

CARD = """
[run]
process = "{process}"
seed = 3
nevents = {nevents}

[training]
target = "steps"
steps = 12
batch = 1024
vegas = {vegas}
vegas_iterations = 4
vegas_points = 4000
warmup = 4

[integration]
points = 30000
iterations = 3

[unweighting]
max_weight = "quantile"
quantile = 0.995

[output]
lhe = "{lhe}"
plots = {plots}
"""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def write_card(tmp_path: Path, *, process: str = "ee_mumu", nevents: int = 2000,
               vegas: bool = False, lhe: str = "events.lhe", plots: bool = False,
               name: str = "card.toml") -> Path:
    path = tmp_path / name
    path.write_text(CARD.format(process=process, nevents=nevents,
                                vegas=str(vegas).lower(), lhe=lhe,
                                plots=str(plots).lower()))
    return path


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, Any]:
    assert main(argv + ["--json", "--quiet"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def momentum_conserved(p: np.ndarray, tol: float = 1e-9) -> bool:
    """Sum of incoming minus outgoing four-momenta, relative to the incoming energy."""
    balance = p[:, :2].sum(axis=1) - p[:, 2:].sum(axis=1)
    return bool(np.all(np.abs(balance) <= tol * p[:, :2, 0].sum(axis=1)[:, None]))


@pytest.mark.parametrize("process,lhe,vegas", [("ee_mumu", "events.lhe", False),
                                               ("drell_yan", "events.lhe.gz", True)])
def test_run_writes_an_lhe_file_readers_accept(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               process: str, lhe: str, vegas: bool) -> None:
    card = write_card(tmp_path, process=process, lhe=lhe, vegas=vegas, plots=True)
    out = tmp_path / "out"
    summary = run_json(capsys, ["run", str(card), "--output", str(out)])
    path = out / lhe
    assert summary["events"] == 2000 and Path(summary["lhe"]) == path
    # the line-based LHEF rules (13 fields per particle, NUP lines, beams, IDWTUP)
    s = check_lhe(path)
    # IDWTUP 3 only for unit weights: kept overweights make the file weighted (4)
    assert s.n_events == 2000 and s.idwtup == (3 if np.ptp(s.weights) == 0 else 4)
    hadronic = process == "drell_yan"
    assert s.idbmup == ((2212, 2212) if hadronic else (-11, 11))
    half = load_process(process).defaults.sqrt_s / 2
    assert s.ebmup == (half, half)
    # the cross section in <init> is the integrator's
    assert sum(s.xsecup) == pytest.approx(summary["sigma_pb"], rel=1e-12)
    # pylhe reads the same events and particles
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lhef = pylhe.LHEFile.fromfile(path)
        events = list(lhef.events)
    assert len(events) == 2000
    # a Z inside its Breit-Wigner window is written as a resonance (status 2)
    assert all(len(e.particles) in (4, 5) for e in events)
    assert lhef.init.initInfo.weightingStrategy == s.idwtup
    # momentum conservation in every written event, on-shell masses
    init, ours = read_lhe(path)
    p = np.array([[x.p4 for x in e.particles if x.istup != 2] for e in ours])
    assert momentum_conserved(p)
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(axis=-1)
    assert np.all(np.abs(m2) < 1e-6 * p[..., 0] ** 2 + 1e-9)
    for name in ("training.png", "weights.png", "kinematics.png", "summary.json",
                 "checkpoint.pt"):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.part"))


def test_generate_from_checkpoint_and_seeds(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    card = write_card(tmp_path, nevents=300)
    first = run_json(capsys, ["run", str(card), "--output", str(tmp_path / "a")])
    again = run_json(capsys, ["run", str(card), "--output", str(tmp_path / "b")])
    # same seed: the same result and the same events, byte for byte (the header's run
    # card differs in the output directory)
    assert first["sigma_pb"] == again["sigma_pb"]

    def body(run: str) -> bytes:
        return (tmp_path / run / "events.lhe").read_bytes().split(b"</header>")[1]

    assert body("a") == body("b") and len(body("a")) > 10_000
    other = run_json(capsys, ["integrate", str(card), "--output", str(tmp_path / "c"),
                              "--seed", "4"])
    assert other["sigma_pb"] != first["sigma_pb"] and "events" not in other
    gen = run_json(capsys, ["generate", str(card), "--checkpoint",
                            str(tmp_path / "a/checkpoint.pt"), "-n", "500",
                            "--output", str(tmp_path / "d")])
    assert gen["events"] == 500 and gen["sigma_pb"] == first["sigma_pb"]
    s = check_lhe(tmp_path / "d/events.lhe")
    assert s.n_events == 500 and sum(s.xsecup) == pytest.approx(first["sigma_pb"], rel=1e-12)


def one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_run_card_errors_are_one_line_and_exit_code_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_error_line(capsys, ["run", str(tmp_path / "missing.toml")])
    assert "missing.toml" in line
    bad = write_card(tmp_path, name="bad.toml")
    bad.write_text(bad.read_text().replace("nevents = 2000", "nevents = -5"))
    line = one_error_line(capsys, ["run", str(bad)])
    assert "bad.toml:5" in line and "nevents" in line
    unknown = write_card(tmp_path, name="unknown.toml")
    unknown.write_text(unknown.read_text().replace("steps = 12", "stepz = 12"))
    line = one_error_line(capsys, ["run", str(unknown)])
    assert "unknown.toml:9" in line and "stepz" in line and "steps" in line
    line = one_error_line(capsys, ["run", str(write_card(tmp_path)), "--seed", "-1"])
    assert "--seed" in line
    assert not list(tmp_path.glob("**/*.lhe*"))


def test_an_interrupted_run_leaves_no_event_file(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from madnis_py.events import lhe

    calls = {"n": 0}
    original = lhe.LHEWriter.write_batch

    def interrupted(self: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        original(self, **kwargs)

    monkeypatch.setattr(lhe.LHEWriter, "write_batch", interrupted)
    card = write_card(tmp_path, nevents=20_000)
    out = tmp_path / "out"
    assert main(["run", str(card), "--output", str(out), "--quiet"]) == 130
    assert calls["n"] == 2
    assert "interrupted" in capsys.readouterr().err
    assert (out / "checkpoint.pt").exists()
    assert sorted(p.name for p in out.iterdir() if "lhe" in p.name) == []


def test_processes_lists_the_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["processes"]) == 0
    out = capsys.readouterr().out
    for name in ("ee_mumu", "drell_yan", "zprime", "ee_qqg", "ttbar", "udx_enug"):
        assert name in out


def test_console_script_and_a_madgraph_run_card(tmp_path: Path) -> None:
    """The installed command runs a card; MadGraph's run_card.dat needs --process."""
    exe = Path(sys.executable).parent / "madnis-py"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "madnis_py.cli"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    card = write_card(tmp_path, nevents=100)
    res = subprocess.run(cmd + ["run", str(card), "--json", "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["events"] == 100 and "sigma_pb" in summary
    assert "cross section" in res.stderr  # the summary table
    shared = Path(__file__).resolve().parents[2] / "shared" / "reference"
    mg_card = shared / "run_card_madgraph_default.dat"
    if not mg_card.exists():
        pytest.skip(f"{mg_card} not found (the shared reference inputs)")
    res = subprocess.run(cmd + ["run", str(mg_card)], capture_output=True, text=True,
                         env=env, timeout=600)
    assert res.returncode == 2 and "--process" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_version_and_processes_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    from madnis_py import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"madnis-py {__version__}"
    assert main(["processes", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_name = {p["name"]: p for p in listed}
    assert {"ee_mumu", "drell_yan", "zprime", "ee_qqg", "ttbar", "udx_enug"} <= set(by_name)
    ee = load_process("ee_mumu")
    assert by_name["ee_mumu"] == {"name": "ee_mumu", "title": ee.title, "beams": "lepton",
                                  "subprocesses": len(ee.subprocesses),
                                  "channels": len(ee.channels), "card": str(ee.card)}


def test_madgraph_card_notes_and_ignored_fields_go_to_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from madnis_py.cli import _load_card, _parser

    shared = Path(__file__).resolve().parents[2] / "shared" / "reference"
    default = shared / "run_card_madgraph_default.dat"
    if not default.exists():
        pytest.skip(f"{default} not found (the shared reference inputs)")
    import re

    text = default.read_text()
    for pattern, new in ((r"^\s*1\s*= lpp1", " 0 = lpp1"), (r"^\s*1\s*= lpp2", " 0 = lpp2"),
                         (r"^\s*0\.0\s*= ptllmin", " 20.0 = ptllmin")):
        text, n = re.subn(pattern, new, text, flags=re.MULTILINE)
        assert n == 1, pattern
    dat = tmp_path / "run_card.dat"
    dat.write_text(text)
    argv = ["run", str(dat), "--process", "ee_mumu", "--allow-unsupported", "--json"]
    card = _load_card(_parser().parse_args(argv))
    assert "ptllmin" not in card.cuts
    out, err = capsys.readouterr()
    assert out == ""  # stdout stays for the one JSON document
    assert f"warning: {dat}: ptllmin is not supported and was ignored" in err
    assert "note:" in err and "iseed = 0" in err
    _load_card(_parser().parse_args([*argv, "--quiet"]))
    out, err = capsys.readouterr()
    assert out == "" and "ptllmin" in err and "note:" not in err  # the warning stays


def test_the_summary_table_never_cuts_the_lhe_path(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from madnis_py.cli import _summary_table
    from madnis_py.run import EventsSummary, RunSummary

    lhe = str(tmp_path / ("a-rather-long-directory-name-" * 3) / "events.lhe.gz")
    summary = RunSummary("ee_mumu", 1, 1.5, 0.01, 0.2, 0.1, 0.3, [1.5], "c.pt", "o",
                         calls=10, timings={"total_s": 1.0},
                         events=EventsSummary(lhe, 10, 2.0, 0.5, 0.0, 0.0, 20))
    monkeypatch.setenv("COLUMNS", "60")
    _summary_table(summary)
    err = capsys.readouterr().err
    assert max(len(line) for line in err.splitlines()) <= 60
    folded = "".join(ch for ch in err if not ch.isspace() and ch not in "│┃║|")
    assert lhe in folded


def test_the_summary_table_says_how_the_draws_were_shared_and_w_max_moved(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The allocation "auto" chose, with the held-out acceptances it chose by, and the
    falls and rises of w_max on the events' own draws with the events they thinned
    away."""
    from madnis_py.cli import _summary_table
    from madnis_py.run import EventsSummary, RunSummary

    events = EventsSummary("e.lhe", 10, 2.0, 0.5, 0.0, 0.0, 20, allocation="sigma",
                           allocation_acceptance={"max_weight": 0.0018, "sigma": 0.0039},
                           w_max_raised=[60123.4, 212204.0], thinned_events=1912,
                           w_max_lowered=[8178.3, 1702.0])
    summary = RunSummary("ppeejj", 1, 1.5, 0.01, 0.2, 0.1, 0.3, [1.5], "c.pt", "o",
                         calls=10, timings={"total_s": 1.0}, events=events)
    monkeypatch.setenv("COLUMNS", "200")
    _summary_table(summary)
    err = capsys.readouterr().err
    assert "sigmas (acceptance held out: maxima 0.0018, sigmas 0.0039)" in err
    assert "6.012e+04 -> 2.122e+05 (1912 held events thinned away)" in err
    assert "w_max lowered on the events' own draws" in err and "8178 -> 1702" in err
    # without a choice or a rise: the allocation alone, no row for rises
    _summary_table(RunSummary("ee_mumu", 1, 1.5, 0.01, 0.2, 0.1, 0.3, [1.5], "c.pt", "o",
                              calls=10, timings={"total_s": 1.0},
                              events=EventsSummary("e.lhe", 10, 2.0, 0.5, 0.0, 0.0, 20,
                                                   allocation="max_weight")))
    err = capsys.readouterr().err
    assert "maxima" in err and "held out" not in err and "w_max raised" not in err
    assert "w_max lowered" not in err
