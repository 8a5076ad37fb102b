"""The run's output directory: lock, finished runs, temporaries of dead runs, cleanup."""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_py.output_dir import LOCK_NAME, OutputDirectoryError, RunDirectory


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with RunDirectory(out, ["events.lhe"]) as run:
        assert run.created and (out / LOCK_NAME).exists()
        with (pytest.raises(OutputDirectoryError, match="in use by another"),
              RunDirectory(out, ["events.lhe"])):
            pass
        (out / "events.lhe").write_text("x")
    with RunDirectory(out, ["events.lhe"]) as again:  # released: usable again
        assert not again.created


def test_finished_run_refused_then_forced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    with (pytest.raises(OutputDirectoryError, match="holds a finished run"),
          RunDirectory(out, ["events.lhe"])):
        pass
    assert (out / "summary.json").exists()
    with RunDirectory(out, ["events.lhe"], force=True):
        assert not (out / "summary.json").exists()  # removed before anything is written


def test_temporaries_of_a_dead_run_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = [out / ".events.lhe.1a2b3c4d.events.part", out / ".checkpoint.pt.x7y8z9",
            out / ".summary.json.abc"]
    for p in dead:
        p.write_text("partial")
    keep = [out / ".hidden_by_the_user", out / "notes.txt"]
    for p in keep:
        p.write_text("mine")
    with RunDirectory(out, ["events.lhe", "checkpoint.pt"]) as run:
        assert sorted(run.removed_temporaries) == sorted(dead)
    assert all(not p.exists() for p in dead) and all(p.exists() for p in keep)


def test_a_failed_run_leaves_no_empty_directory(tmp_path: Path) -> None:
    out = tmp_path / "new" / "out"
    with pytest.raises(RuntimeError), RunDirectory(out, ["events.lhe"]):
        raise RuntimeError("training failed")
    assert not out.exists()
    with pytest.raises(RuntimeError), RunDirectory(out, ["events.lhe"]):
        (out / "checkpoint.pt").write_text("kept: the run wrote something")
        raise RuntimeError("generation failed")
    assert (out / "checkpoint.pt").exists()


def test_names_that_cannot_be_used(tmp_path: Path) -> None:
    with (pytest.raises(OutputDirectoryError, match="UTF-8"),
          RunDirectory(tmp_path / "x\udcff", ["events.lhe"])):
        pass
    (tmp_path / "d" / "events.lhe").mkdir(parents=True)
    with (pytest.raises(OutputDirectoryError, match="is a directory"),
          RunDirectory(tmp_path / "d", ["events.lhe"])):
        pass
    (tmp_path / "f").write_text("")
    with (pytest.raises(OutputDirectoryError, match="is a file"),
          RunDirectory(tmp_path / "f", ["events.lhe"])):
        pass
