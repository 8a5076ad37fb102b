"""Atomic writes: never follow a planted symlink, never leave a temporary, one clear error."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch

from madnis_py._atomic import (
    CheckpointWriteError,
    FileWriteError,
    atomic_write,
    write_bytes_atomic,
    write_text_atomic,
)
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _toy_run() -> Integrator:
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=1, flow_options={"bins": 4})
    mc.train(1, batch=256)
    return mc


def _disk_full(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_round_trip_and_the_mode_of_a_plain_open(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "a.json", '{"x": 1}\n')
    write_bytes_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.json").read_text() == '{"x": 1}\n'
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    (tmp_path / "plain").write_text("")  # mkstemp's 0600 must not leak to the target
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == expected
    write_text_atomic(tmp_path / "a.json", "new")  # replaces
    assert (tmp_path / "a.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "plain"]


def test_planted_symlinks_at_the_old_temporary_names_are_not_followed(
        tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    for name in ("checkpoint.pt.tmp", "history.json.tmp"):
        (tmp_path / name).symlink_to(victim)
    mc = _toy_run()
    mc.save(tmp_path / "checkpoint.pt")
    mc.save_history(tmp_path / "history.json")
    assert victim.read_text() == "precious"
    for name in ("checkpoint.pt.tmp", "history.json.tmp"):
        assert (tmp_path / name).is_symlink()
    # a symlink at the target itself is replaced, not written through
    (tmp_path / "link.pt").symlink_to(victim)
    mc.save(tmp_path / "link.pt")
    assert victim.read_text() == "precious"
    assert not (tmp_path / "link.pt").is_symlink()
    assert torch.load(tmp_path / "link.pt", weights_only=True)["counters"][2] == 1


def test_disk_full_keeps_the_old_file_leaves_no_temporary_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mc = _toy_run()
    target = tmp_path / "checkpoint.pt"
    mc.save(target)
    before = target.read_bytes()
    monkeypatch.setattr(os, "fsync", _disk_full)
    mc.train(1, batch=256)
    with pytest.raises(CheckpointWriteError) as info:
        mc.save(target)
    msg = str(info.value)
    assert msg == f"cannot write checkpoint {target}: No space left on device"
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert target.read_bytes() == before
    with pytest.raises(FileWriteError, match=r"^cannot write training history .*"
                                             r"history.json: No space left on device$"):
        mc.save_history(tmp_path / "history.json")
    with pytest.raises(FileWriteError, match="No space left"):
        mc.train(2, batch=256, checkpoint=tmp_path / "run.pt", checkpoint_every=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_an_interrupt_removes_the_temporary(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "x.txt", "w") as fh:
        fh.write("half")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileWriteError, match=r"^cannot write file .*nowhere.*x\.txt: "):
        write_text_atomic(tmp_path / "nowhere" / "x.txt", "text")
    with pytest.raises(ValueError, match="mode"), atomic_write(tmp_path / "x.txt", "a"):
        pass
