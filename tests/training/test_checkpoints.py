"""Checkpoints bound to their physics, refused cleanly when unusable, and resumable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import CheckpointError, CheckpointMismatchError, Integrator

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _toy(seed: int = 1, **options: object) -> Integrator:
    flow_options = options.pop("flow_options", {"bins": 4})
    return Integrator(RidgeAndPeak(), feature_dims=2, seed=seed,
                      flow_options=flow_options, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ee_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ee") / "run_500" / "checkpoint.pt"
    path.parent.mkdir()
    mc = Integrator(TorchChannels(Integrand("ee_mumu", sqrt_s=500.0)), seed=2, warmup=1,
                    flow_options={"bins": 4})
    mc.train(2, batch=256)
    mc.save(path)
    return path


def test_the_fingerprint_is_stored_as_plain_json(ee_checkpoint: Path) -> None:
    fp = Integrand("ee_mumu").fingerprint()
    assert json.loads(json.dumps(fp)) == fp
    assert fp["process"] == "ee_mumu" and fp["pdf"] is None and fp["n_channels"] == 2
    assert len(str(fp["library_sha256"])) == 64 and fp["channel_dims"] == [2, 2]
    state = torch.load(ee_checkpoint, weights_only=True)
    assert json.loads(state["physics"]) == fp
    dy = Integrand("drell_yan").fingerprint()
    assert dy["pdf"] == "LHToyPDF" and dy["pdf_member"] == 0
    assert list(dy["cuts"]) == sorted(dy["cuts"])  # type: ignore[call-overload]


def test_other_physics_is_refused_naming_the_first_difference(ee_checkpoint: Path) -> None:
    other = TorchChannels(Integrand("ee_mumu", sqrt_s=1000.0))
    with pytest.raises(CheckpointMismatchError) as info:
        Integrator.load(ee_checkpoint, other)
    assert str(info.value) == (
        f"{ee_checkpoint} was trained with sqrt_s = 500.0, the card says 1000.0; retrain "
        "(madnis-py run) or use the card it was trained with")
    same = Integrator.load(ee_checkpoint, TorchChannels(Integrand("ee_mumu", sqrt_s=500.0)))
    assert same.steps_done == 2
    physics = dict(Integrand("ee_mumu").fingerprint())
    physics["cuts"] = {"ptl": 10.0}
    with pytest.raises(CheckpointMismatchError, match=r"cuts\['ptl'\] = not set, the card "
                                                      r"says 10\.0"):
        Integrator.load(ee_checkpoint, TorchChannels(Integrand("ee_mumu")), physics=physics)
    physics = dict(Integrand("ee_mumu").fingerprint(), param_card_sha256="0" * 64)
    with pytest.raises(CheckpointMismatchError, match="param_card_sha256"):
        same.load_state(ee_checkpoint, physics=physics)
    # the channels' maps sampled otherwise (another release): their trained maps no longer
    # mean the same
    physics = dict(Integrand("ee_mumu").fingerprint(), channel_maps_sha256="0" * 64)
    with pytest.raises(CheckpointMismatchError, match="channel_maps_sha256"):
        same.load_state(ee_checkpoint, physics=physics)


def test_the_channel_maps_are_in_the_fingerprint() -> None:
    """The digest follows what the compiled maps sample (here the cut that sets the
    partonic energy's lower limit), not the run around them."""
    dy = Integrand("drell_yan").fingerprint()
    assert len(str(dy["channel_maps_sha256"])) == 64
    assert Integrand("drell_yan", pdf="LHToyPDF").fingerprint()["channel_maps_sha256"] == (
        dy["channel_maps_sha256"])
    cut = Integrand("drell_yan", cuts={"mmll": 70.0}).fingerprint()
    assert cut["channel_maps_sha256"] != dy["channel_maps_sha256"]


def test_a_checkpoint_of_another_process_is_one_line(ee_checkpoint: Path,
                                                     tmp_path: Path) -> None:
    # the toy has no fingerprint: the shapes decide
    with pytest.raises(CheckpointMismatchError) as info:
        _toy().load_state(ee_checkpoint)
    assert str(ee_checkpoint) in str(info.value) and "\n" not in str(info.value)
    assert "weights." in str(info.value)
    toy = _toy()
    toy.save(tmp_path / "toy.pt")
    with pytest.raises(CheckpointMismatchError, match="flows.0.* has shape"):
        _toy(flow_options={"bins": 8}).load_state(tmp_path / "toy.pt")

    class Three(RidgeAndPeak):
        n_channels = 3

    three = Integrator(Three(), feature_dims=2, flow_options={"bins": 4})
    with pytest.raises(CheckpointMismatchError, match="checkpoint of 2 channels, this "
                                                      "integrand has 3"):
        three.load_state(tmp_path / "toy.pt")


def test_unreadable_files_are_one_line_checkpoint_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    _toy().save(good)
    data = good.read_bytes()
    files = {"truncated.pt": data[: len(data) // 2], "empty.pt": b"",
             "random.pt": np.random.default_rng(0).bytes(4096),
             "text.pt": b"Sorry, this is a README, not a checkpoint.\n" * 20}
    import io
    import pickle

    buf = io.BytesIO()
    torch.save([1, 2, 3], buf)
    files["list.pt"] = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"flows": {}}, buf)
    files["partial.pt"] = buf.getvalue()
    files["pickle.pt"] = pickle.dumps(Path("/etc/passwd"), protocol=2)
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    for name in [*files, "missing.pt"]:
        for load in (lambda p: Integrator.load(p, RidgeAndPeak()),
                     lambda p: _toy().load_state(p)):
            with pytest.raises(CheckpointError) as info:
                load(tmp_path / name)
            msg = str(info.value)
            assert str(tmp_path / name) in msg and "\n" not in msg, (name, msg)
            assert "weights_only=False" not in msg and "inline_container" not in msg


def test_load_opens_only_built_in_processes(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    mc = Integrator("ee_mumu", seed=3, flow_options={"bins": 4})
    mc.save(tmp_path / "ee.pt")
    # a same-named directory in the working directory is not picked up
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ee_mumu").mkdir()
    (tmp_path / "ee_mumu" / "process.toml").write_text("this is [not toml")
    resumed = Integrator.load(tmp_path / "ee.pt")
    assert resumed.config == mc.config
    state = torch.load(tmp_path / "ee.pt", weights_only=True)
    for process in (str(tmp_path / "ee_mumu"), "../ee_mumu", "no_such_process",
                    "/usr/lib/libevil.so"):
        state["config"]["process"] = process
        torch.save(state, tmp_path / "evil.pt")
        with pytest.raises(CheckpointError, match="not a built-in one.*pass the process"):
            Integrator.load(tmp_path / "evil.pt")
    state["config"]["process"] = None
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="pass it"):
        Integrator.load(tmp_path / "evil.pt")


def test_checkpoints_of_the_older_format_still_load(tmp_path: Path) -> None:
    mc = _toy()
    mc.train(2, batch=256)
    mc.integrate(2000)
    state = mc.state_dict()
    for key in ("format", "physics", "history", "training", "low_steps"):
        del state[key]
    del state["result"]["warnings"]  # type: ignore[index]
    torch.save(state, tmp_path / "old.pt")
    other = _toy(seed=5)
    other.load_state(tmp_path / "old.pt")
    assert other.last_result is not None and other.last_result.warnings == ()
    assert other.last_result.value == mc.last_result.value  # type: ignore[union-attr]


def test_an_interrupted_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = _toy(warmup=2)
    straight.train(6, batch=256)

    class Crash(Exception):
        pass

    def crash(step: int, loss: float) -> None:
        if step == 3:
            raise Crash

    torch.manual_seed(0)
    crashed = _toy(warmup=2)
    with pytest.raises(Crash):
        crashed.train(6, batch=256, checkpoint=tmp_path / "ck.pt", checkpoint_every=2,
                      callback=crash)
    mid = torch.load(tmp_path / "ck.pt", weights_only=True)["training"]
    assert {"optimizer", "scheduler"} <= set(mid) and (mid["done"], mid["steps"]) == (2, 6)
    resumed = Integrator.load(tmp_path / "ck.pt", RidgeAndPeak())
    assert resumed.steps_done == 2 and resumed.steps_remaining == 4
    assert len(resumed.history.loss) == 2
    resumed.train(resumed.steps_remaining, batch=256, checkpoint=tmp_path / "ck.pt",
                  checkpoint_every=2)
    assert resumed.steps_done == 6 and resumed.steps_remaining == 0
    assert resumed.history.loss == straight.history.loss
    for a, b in zip(straight.flows.parameters(), resumed.flows.parameters(), strict=True):
        assert torch.equal(a, b)
    final = Integrator.load(tmp_path / "ck.pt", RidgeAndPeak())
    assert final.steps_done == 6 and final.steps_remaining == 0
    # a finished training is never resumed: its optimizer's state is not written
    assert torch.load(tmp_path / "ck.pt", weights_only=True)["training"] == {
        "steps": 6, "done": 6}


_CHILD = """
import sys, time
import torch
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator

torch.set_num_threads(1)

def wait_for_the_kill(step, loss):
    if step == 3:  # the checkpoint of step 2 is on disk
        print("ready", flush=True)
        time.sleep(60)

mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=4, flow_options={"bins": 8})
mc.train(6, batch=1024, checkpoint=sys.argv[1], checkpoint_every=2,
         callback=wait_for_the_kill)
"""


def test_a_run_killed_with_sigkill_resumes_to_the_exact_integral(tmp_path: Path) -> None:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(_CHILD))
    ckpt = tmp_path / "checkpoint.pt"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    child = subprocess.Popen([sys.executable, str(script), str(ckpt)], env=env,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while not ckpt.exists() and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        assert ckpt.exists(), "the child wrote no checkpoint"
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    toy = RidgeAndPeak()
    mc = Integrator.load(ckpt, toy)
    assert mc.steps_done in (2, 4) and mc.steps_remaining == 6 - mc.steps_done
    mc.train(mc.steps_remaining, batch=1024)
    assert mc.steps_done == 6
    r = mc.integrate(50_000)
    assert abs(r.value - toy.exact) < 4 * r.error, (r, toy.exact)
