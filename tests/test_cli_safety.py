"""Runs that never lie: checkpoints bound to their physics, safe output directories,
SIGTERM, resume, and errors before training; one regression test per case (a child
process where the case kills or signals the run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from madnis_py.cli import main
from madnis_py.output_dir import RunDirectory

CARD = """
[run]
process = "{process}"
seed = 3
nevents = {nevents}
{collider}
[training]
steps = {steps}
target = "{target}"
batch = 512
vegas = false
warmup = 2

[integration]
points = 8000
iterations = 2

[output]
lhe = "events.lhe"
plots = false
"""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def card(tmp_path: Path, name: str = "card.toml", *, process: str = "ee_mumu",
         nevents: int = 200, steps: int = 4, collider: str = "",
         target: str = "events") -> Path:
    path = tmp_path / name
    path.write_text(CARD.format(process=process, nevents=nevents, steps=steps,
                                collider=collider, target=target))
    return path


def one_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def leftovers(directory: Path) -> list[str]:
    """Temporary files a run may leave: hidden outputs, .tmp, .part."""
    return sorted(p.name for p in directory.iterdir()
                  if (p.name.startswith(".") and p.name != ".madnis-py.lock")
                  or p.suffix in (".tmp", ".part"))


def test_checkpoint_of_other_physics_is_refused(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run500"
    assert main(["run", str(card(tmp_path)), "--output", str(out), "--quiet"]) == 0
    other = card(tmp_path, "card1000.toml", collider="[collider]\nsqrt_s = 1000.0\n")
    line = one_error(capsys, ["generate", str(other), "--checkpoint",
                              str(out / "checkpoint.pt"), "-n", "10",
                              "--output", str(tmp_path / "g")])
    assert "sqrt_s" in line and "checkpoint.pt" in line
    cuts = tmp_path / "cuts.toml"
    cuts.write_text(card(tmp_path).read_text() + "\n[cuts]\nptl = 200.0\n")
    line = one_error(capsys, ["generate", str(cuts), "--checkpoint",
                              str(out / "checkpoint.pt"), "-n", "10",
                              "--output", str(tmp_path / "g")])
    assert "cuts" in line
    dy = card(tmp_path, "dy.toml", process="drell_yan")
    line = one_error(capsys, ["generate", str(dy), "--checkpoint", str(out / "checkpoint.pt"),
                              "-n", "10", "--output", str(tmp_path / "g")])
    assert "checkpoint.pt" in line
    assert not (tmp_path / "g").exists()  # a failed run leaves no empty directory


def test_corrupt_checkpoints_are_one_line(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    c = card(tmp_path)
    for i, content in enumerate([b"", b"PK\x03\x04 truncated", b"\x83" * 100,
                                 b"just text\n"]):
        bad = tmp_path / f"bad{i}.pt"
        bad.write_bytes(content)
        line = one_error(capsys, ["generate", str(c), "--checkpoint", str(bad), "-n", "10",
                                  "--output", str(tmp_path / f"g{i}")])
        assert f"bad{i}.pt" in line


def test_planted_symlinks_at_temporary_names_are_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("summary.json.tmp", "checkpoint.pt.tmp", "history.json.tmp",
                 "events.lhe.part", ".events.lhe.part"):
        (out / name).symlink_to(victim)
    assert main(["run", str(card(tmp_path)), "--output", str(out), "--quiet"]) == 0
    assert victim.read_text() == "precious\n"
    assert json.loads((out / "summary.json").read_text())["events"] == 200


def test_a_finished_run_is_refused_unless_forced(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    c = card(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(c), "--output", str(out), "--quiet"]) == 0
    first = (out / "summary.json").read_text()
    line = one_error(capsys, ["run", str(c), "--output", str(out)])
    assert "finished run" in line and "--force" in line
    assert (out / "summary.json").read_text() == first
    assert main(["run", str(c), "--output", str(out), "--quiet", "--force",
                 "--seed", "5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 5 and "events.lhe" in summary["files"]
    assert "checkpoint.pt" in summary["files"]


def test_a_second_run_on_a_locked_directory_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    with RunDirectory(out, ["events.lhe"]):
        line = one_error(capsys, ["run", str(card(tmp_path)), "--output", str(out)])
    assert "in use by another madnis-py run" in line
    assert not (out / "summary.json").exists()


def test_output_problems_are_found_before_training(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    (out / "events.lhe").mkdir(parents=True)
    t0 = time.perf_counter()
    line = one_error(capsys, ["run", str(card(tmp_path, steps=500)), "--output", str(out)])
    assert "is a directory" in line and time.perf_counter() - t0 < 20
    line = one_error(capsys, ["run", str(card(tmp_path)), "--output",
                              str(tmp_path / "bad\udcff")])
    assert "UTF-8" in line
    (tmp_path / "file").write_text("")
    line = one_error(capsys, ["run", str(card(tmp_path)), "--output", str(tmp_path / "file")])
    assert "is a file" in line


@pytest.mark.parametrize("argv, words", [
    (["--seed", str(2 ** 63)], "--seed"),
    (["--shards", "100000"], "--shards"),
    (["--scheduler", "notanaddress"], "notanaddress"),
])
def test_bad_options_fail_before_training(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          argv: list[str], words: str) -> None:
    t0 = time.perf_counter()
    line = one_error(capsys, ["run", str(card(tmp_path, nevents=10, steps=500)),
                              "--output", str(tmp_path / "o"), *argv])
    assert words in line and time.perf_counter() - t0 < 20
    assert not (tmp_path / "o").exists()


def test_physics_errors_are_one_line(tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    # every event cut away: a zero cross section
    cut = tmp_path / "cut.toml"
    cut.write_text(card(tmp_path).read_text() + "\n[cuts]\nptl = 400.0\n")
    line = one_error(capsys, ["integrate", str(cut), "--output", str(tmp_path / "a")])
    assert "zero" in line
    # below threshold: t t~ at a collider energy under 2 m_t
    low = card(tmp_path, "low.toml", process="ttbar",
               collider="[collider]\nsqrt_s = 300.0\n")
    line = one_error(capsys, ["integrate", str(low), "--output", str(tmp_path / "b")])
    assert "ttbar" in line or "threshold" in line
    # a malformed param card: the process card's directory copied with a bad line
    from madnis_py.physics import builtin_process_dir

    proc = tmp_path / "proc"
    proc.mkdir()
    src = builtin_process_dir("ee_mumu")
    text = (src / "process.toml").read_text().replace(
        'param_card = "../common/param_card_sm.dat"', 'param_card = "param_card.dat"')
    text = text.replace('library = "ee_mumu"', 'library = "ee_mumu"')
    (proc / "process.toml").write_text(text)
    sm = (src.parent / "common" / "param_card_sm.dat").read_text()
    (proc / "param_card.dat").write_text(sm.replace("DECAY  23 2.441404e+00",
                                                    "DECAY  23 Auto"))
    bad = card(tmp_path, "bad.toml", process=str(proc))
    line = one_error(capsys, ["integrate", str(bad), "--output", str(tmp_path / "c")])
    assert "param_card.dat" in line


def _child(argv: list[str], tmp_path: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    code = "import sys; from madnis_py.cli import main; raise SystemExit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code, *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 120) -> None:
    t0 = time.perf_counter()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.perf_counter() - t0 < timeout, f"{path} never appeared"
        time.sleep(0.05)


def test_sigterm_in_training_exits_143_and_leaves_no_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # all the steps: with the time-to-events target 200 events are not worth a probe
    path = card(tmp_path, steps=100_000, target="steps")
    proc = _child(["run", str(path), "--output", str(out),
                   "--quiet", "--checkpoint-every", "5"], tmp_path)
    _wait_for(out / "checkpoint.pt", proc)  # training is under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and len(err.strip().splitlines()) == 1
    assert leftovers(out) == [] and not (out / "summary.json").exists()


def test_sigterm_in_generation_exits_143_and_leaves_no_temporaries(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _child(["run", str(card(tmp_path, nevents=5_000_000, steps=2)), "--output",
                   str(out), "--quiet"], tmp_path)
    _wait_for(out / "checkpoint.pt", proc)  # the final checkpoint: generation follows
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert leftovers(out) == [] and not (out / "events.lhe").exists()


def test_resume_after_sigkill_in_training(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    c = card(tmp_path, steps=60, target="steps")  # 200 events: no probe with "events"
    proc = _child(["run", str(c), "--output", str(out), "--quiet", "--checkpoint-every",
                   "3"], tmp_path)
    _wait_for(out / "checkpoint.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (out / "summary.json").exists()
    assert main(["run", str(c), "--output", str(out), "--quiet", "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == 200
    # e+ e- -> mu+ mu- at 500 GeV without cuts: tests/test_integrand.py's formula
    from tests.test_integrand import ee_mumu_sigma

    exact = ee_mumu_sigma(500.0)
    assert abs(summary["sigma_pb"] - exact) < 4 * summary["error_pb"]
    assert leftovers(out) == []


def test_disk_full_at_the_checkpoint_is_one_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    real_fsync = os.fsync

    def full(fd: int) -> None:
        out = tmp_path / "o"
        if out.is_dir() and any(p.name.startswith(".checkpoint.pt.") for p in out.iterdir()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    line = one_error(capsys, ["integrate", str(card(tmp_path)), "--output",
                              str(tmp_path / "o")])
    assert "checkpoint.pt" in line and "No space left on device" in line
    # no temporary left; the directory itself is gone when the run wrote nothing else
    assert not (tmp_path / "o").exists() or leftovers(tmp_path / "o") == []


def test_sigterm_in_the_final_assembly_leaves_no_temporaries(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SIGTERM arriving while the LHE file is assembled (header + events copied into the
    # hidden final name): the handler's exception is raised there.
    import shutil

    from madnis_py import cli

    real = shutil.copyfileobj

    def terminated(*args: object, **kwargs: object) -> None:
        real(*args, **kwargs)  # type: ignore[arg-type]
        cli._on_sigterm(signal.SIGTERM, None)

    monkeypatch.setattr(shutil, "copyfileobj", terminated)
    out = tmp_path / "out"
    assert main(["run", str(card(tmp_path)), "--output", str(out), "--quiet"]) == 143
    assert "SIGTERM" in capsys.readouterr().err
    assert leftovers(out) == [] and not (out / "events.lhe").exists()
