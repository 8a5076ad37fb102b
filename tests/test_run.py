"""The run pipeline (madnis_py.run): typed summary, summary.json, this run's calls, every
plot listed, errors before any work."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.cards import RunCard, load_run_card
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.run import RunError, RunRequest, RunSummary, run_card
from madnis_py.training import Integrator

CARD = """
[run]
process = "ee_mumu"
seed = 7
nevents = {nevents}
output = "{output}"
{collider}
[training]
target = "steps"
steps = 6
batch = 512
vegas = false
warmup = 2

[integration]
points = 8000
iterations = 2

[output]
lhe = "events.lhe"
plots = {plots}
"""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def make_card(tmp_path: Path, output: str, *, nevents: int = 60, plots: bool = False,
              collider: str = "") -> RunCard:
    path = tmp_path / f"{output}.toml"
    path.write_text(CARD.format(nevents=nevents, output=output, plots=str(plots).lower(),
                                collider=collider))
    return load_run_card(path)


class Recorder:
    """A Reporter that records what it is told."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.done: dict[str, list[int]] = {}
        self.order: list[str] = []
        self.info: dict[str, list[str]] = {}

    def note(self, message: str) -> None:
        self.notes.append(message)

    def task(self, description: str, total: int) -> Callable[[int, str], None]:
        self.done[description] = [total, 0]
        self.order.append(description)
        self.info[description] = []

        def advance(n: int, info: str) -> None:
            assert n > 0
            self.done[description][1] += n
            self.info[description].append(info)

        return advance


def test_integrate_then_generate_count_their_own_calls(tmp_path: Path) -> None:
    card = make_card(tmp_path, "a")
    seen = Recorder()
    summary = run_card(card, RunRequest("integrate"), seen)
    assert isinstance(summary, RunSummary) and summary.events is None
    assert seen.done["training"] == [6, 6]
    out = tmp_path / "a"
    written = json.loads((out / "summary.json").read_text())
    assert written == json.loads(json.dumps(summary.to_json()))
    assert "events" not in written and "lhe" not in written
    assert written["files"] == ["checkpoint.pt", "history.json"]
    # a fresh run's calls are all the checkpoint's calls (training and integration)
    mc = Integrator.load(out / "checkpoint.pt", TorchChannels(Integrand("ee_mumu")))
    assert summary.calls == mc.n_calls > 0
    assert summary.sigma_pb == mc.last_result.value

    gen_card = make_card(tmp_path, "b")
    gen = run_card(gen_card, RunRequest("generate", n_events=80,
                                        checkpoint=out / "checkpoint.pt"), seen)
    assert gen.events is not None and gen.events.events == 80
    assert seen.done["events"] == [80, 80]
    # the checkpoint had its integration: this run's calls are the generation's alone,
    # not the checkpoint's cumulative count
    assert gen.calls == gen.events.generation_calls
    assert "integration_s" not in gen.timings and "generation_s" in gen.timings
    assert gen.sigma_pb == summary.sigma_pb and gen.checkpoint == str(out / "checkpoint.pt")
    flat = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert flat["events"] == 80 and flat["lhe"] == str(tmp_path / "b" / "events.lhe")
    assert "shards" not in flat and flat["calls"] == gen.calls


def test_a_run_lists_every_plot_it_wrote(tmp_path: Path) -> None:
    card = make_card(tmp_path, "p", nevents=100, plots=True)
    summary = run_card(card, RunRequest("run", n_events=100))
    out = tmp_path / "p"
    names = ["training.png", "weights.png", "kinematics.png"]
    assert summary.plots == [str(out / n) for n in names]
    assert json.loads((out / "summary.json").read_text())["plots"] == summary.plots
    assert all((out / n).stat().st_size > 0 for n in names)
    assert sorted(p.name for p in out.glob("*.png")) == sorted(names)
    assert summary.events is not None
    # the integration's points gave events too ([unweighting] recycle): the generation
    # drew only what they did not give
    assert summary.calls > summary.events.generation_calls >= 0
    assert 0 < summary.events.recycled_events <= 100
    assert summary.events.recycled == {"integration": summary.events.recycled_events}


def test_every_integrand_call_is_counted_by_step(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary's calls are the integrand's own count of the points it evaluated, step
    by step; accepted points are written from their first evaluation (no second call)."""
    import madnis_py.run as pipeline

    built: list[Integrand] = []
    real = pipeline._integrator

    def keep(*args: object, **kwargs: object) -> tuple[Integrand, Integrator]:
        integrand, mc = real(*args, **kwargs)  # type: ignore[arg-type]
        built.append(integrand)
        return integrand, mc

    monkeypatch.setattr(pipeline, "_integrator", keep)
    path = tmp_path / "calls.toml"
    path.write_text(CARD.format(nevents=100, output="calls", plots="true", collider="")
                    .replace("vegas = false",
                             "vegas = true\nvegas_iterations = 2\nvegas_points = 600"))
    card = load_run_card(path)
    summary = run_card(card, RunRequest("run", n_events=100))
    (integrand,) = built
    steps = summary.calls_by_step
    assert summary.calls == sum(steps.values()) == integrand.n_points
    assert set(steps) == {"vegas", "training", "flow_selection", "integration",
                          "calibration", "generation", "plots"}
    assert steps["vegas"] > 0 and steps["training"] > 0 and steps["plots"] > 0
    # w_max is calibrated on the integration's own points: no calibration calls
    assert steps["integration"] == 8000 and steps["calibration"] == 0
    assert summary.events is not None
    gen = summary.events
    assert gen.generation_calls == steps["calibration"] + steps["generation"]
    assert gen.calibration_calls == steps["calibration"]
    assert gen.generation_calls_per_event == gen.generation_calls / 100
    assert summary.calls_per_event == summary.calls / 100
    flat = json.loads((tmp_path / "calls" / "summary.json").read_text())
    assert flat["calls_by_step"] == steps and flat["calls"] == summary.calls
    assert flat["calls_per_event"] == summary.calls_per_event


@pytest.mark.parametrize("request_, message", [
    (RunRequest("run", n_events=-1), "nevents = -1"),
    (RunRequest("generate", n_events=5, checkpoint=Path("missing.pt")), "missing.pt"),
    (RunRequest("run", n_events=5, checkpoint_every=0), "--checkpoint-every"),
])
def test_bad_requests_fail_before_any_work(tmp_path: Path, request_: RunRequest,
                                           message: str) -> None:
    card = make_card(tmp_path, "bad")
    with pytest.raises(RunError, match=message):
        run_card(card, request_)
    assert not (tmp_path / "bad").exists()


def test_a_missing_pdf_set_names_the_card_field_and_keeps_the_message(
        tmp_path: Path) -> None:
    path = tmp_path / "dy.toml"
    path.write_text(CARD.format(nevents=5, output="dy", plots="false", collider="")
                    .replace('"ee_mumu"', '"drell_yan"')
                    + '\n[collider]\npdf = "NoSuchSet_nlo"\n')
    card = load_run_card(path)
    with pytest.raises(RunError) as err:
        run_card(card, RunRequest("integrate"))
    text = str(err.value)
    assert f"{path}: [collider] pdf = 'NoSuchSet_nlo'" in text
    assert "not found" in text and "LHAPDF_DATA_PATH" in text and "\n" not in text
    assert not (tmp_path / "dy" / "summary.json").exists()


def test_an_unknown_process_name_is_one_error(tmp_path: Path) -> None:
    import dataclasses

    card = make_card(tmp_path, "u")
    card = dataclasses.replace(card, run=dataclasses.replace(card.run, process="nosuch"))
    with pytest.raises(RunError, match="no built-in process 'nosuch'.*ee_mumu"):
        run_card(card, RunRequest("integrate"))


def test_every_long_step_reports_its_progress_to_the_total(tmp_path: Path) -> None:
    """VEGAS (survey rounds), training (steps), integration (calls),
    calibration (weighted points) and events each reach their total exactly."""

    path = tmp_path / "v.toml"
    path.write_text(CARD.format(nevents=50, output="v", plots="false", collider="")
                    .replace("vegas = false", "vegas = true\nvegas_iterations = 3\n"
                             "vegas_points = 600"))
    card = load_run_card(path)
    seen = Recorder()
    summary = run_card(card, RunRequest("run", n_events=50), seen)
    n_channels = len(summary.channel_sigma_pb)
    assert n_channels == 2  # ee_mumu: two channels, so the channel info below is checked
    assert seen.order == ["vegas", "training", "integration", "calibration", "events"]
    assert seen.done == {"vegas": [3, 3], "training": [6, 6],
                         "integration": [8000, 8000],
                         # w_max is calibrated on the integration's own points
                         "calibration": [8000, 8000],
                         "events": [50, 50]}
    # one advance per survey round, with the calls so far
    assert [i.split(",")[0] for i in seen.info["vegas"]] == [f"round {k}/3" for k in (1, 2, 3)]
    # one advance per channel and iteration (2 iterations) and per calibration channel
    assert seen.info["integration"] == ["iteration 1/2"] * 2 + ["iteration 2/2"] * 2
    assert len(seen.info["calibration"]) == 1  # at once: the integration's points


def test_the_integration_gives_every_active_channel_its_points(tmp_path: Path) -> None:
    """``[integration] points_per_channel`` times the active channels where that is more
    than ``points``: the calls, the progress total and the channels' points."""
    path = tmp_path / "p.toml"
    path.write_text(CARD.format(nevents=0, output="p", plots="false", collider="")
                    .replace("iterations = 2", "iterations = 2\npoints_per_channel = 5000"))
    seen = Recorder()
    summary = run_card(load_run_card(path), RunRequest("integrate"), seen)
    assert len(summary.channel_sigma_pb) == 2  # ee_mumu: two channels, none dropped
    assert summary.calls_by_step["integration"] == 10_000
    assert seen.done["integration"] == [10_000, 10_000]


def test_too_few_integration_points_are_refused_before_training(tmp_path: Path) -> None:
    path = tmp_path / "few.toml"
    path.write_text(CARD.format(nevents=0, output="few", plots="false", collider="")
                    .replace("points = 8000\niterations = 2",
                             "points = 6\niterations = 2\npoints_per_channel = 0"))
    seen = Recorder()
    with pytest.raises(RunError, match=r"\[integration\] points = 6 and points_per_channel = "
                       r"0 give 6 points for 2 channels.*at least 2 per channel and "
                       r"iteration \(8\)"):
        run_card(load_run_card(path), RunRequest("run"), seen)
    assert seen.order == []  # nothing trained


def test_generate_from_an_unintegrated_checkpoint_reports_its_integration(
        tmp_path: Path) -> None:
    card = make_card(tmp_path, "t")
    _, mc = _integrator_of(card)
    mc.train(2, batch=256)
    mc.save(tmp_path / "trained.pt")  # no integration: generate integrates first
    seen = Recorder()
    gen = run_card(make_card(tmp_path, "g"),
                   RunRequest("generate", n_events=30, checkpoint=tmp_path / "trained.pt"),
                   seen)
    assert seen.order == ["integration", "calibration", "events"]
    assert seen.done["integration"] == [8000, 8000] and "integration_s" in gen.timings
    assert seen.done["events"] == [30, 30]


def _integrator_of(card: RunCard) -> tuple[Integrand, Integrator]:
    integrand = Integrand(card.run.process)
    channels = TorchChannels(integrand)
    return integrand, Integrator(channels, feature_dims=channels.feature_dims,
                                 **card.integrator_options())


def test_the_device_path_runs_the_numpy_pipeline(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` with the integrand of ``--device cuda`` (DeviceChannels, here on the CPU):
    the survey's and the integration's recorded points give events, kept on the device
    and copied only when accepted, and the whole run writes the numpy path's cross
    section and events (same flavours, colours, momenta to rounding)."""
    import madnis_py.integrand as integrand_module
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.events.lhe import LHEEvent, read_lhe

    text = (CARD.replace('process = "ee_mumu"', 'process = "drell_yan"')
            .replace("vegas = false", "vegas = true\nvegas_iterations = 3\nvegas_points = 2000"))

    def run(output: str) -> tuple[RunSummary, list[LHEEvent]]:
        path = tmp_path / f"{output}.toml"
        path.write_text(text.format(nevents=150, output=output, plots="true", collider=""))
        summary = run_card(load_run_card(path), RunRequest("run", n_events=150))
        _, events = read_lhe(tmp_path / output / "events.lhe")
        return summary, list(events)

    host, host_events = run("host")
    monkeypatch.setattr(integrand_module, "TorchChannels",
                        lambda integrand: DeviceChannels(integrand, "cpu"))
    dev, dev_events = run("device")
    assert dev.sigma_pb == pytest.approx(host.sigma_pb, rel=1e-10)
    assert dev.events is not None and host.events is not None
    assert dev.events.recycled == host.events.recycled and dev.events.recycled_events > 0
    assert dev.calls_by_step == host.calls_by_step
    assert len(dev_events) == len(host_events) == 150
    for a, b in zip(host_events, dev_events, strict=True):
        assert [p.idup for p in a.particles] == [p.idup for p in b.particles]
        assert [p.icolup for p in a.particles] == [p.icolup for p in b.particles]
        np.testing.assert_allclose(b.momenta(), a.momenta(), rtol=1e-12, atol=1e-9)


def test_events_truncating_more_than_the_card_allows_are_a_warning() -> None:
    """A truncated share of sigma above twice max_overweight_truncation, measured on the
    events' draws, is a "not trustworthy" warning that names both numbers and the way
    out; within it, or with overweights kept or another maximum weight, none."""
    from madnis_py.cards.run_card import parse_run_card
    from madnis_py.run import EventsSummary, _events_warnings

    def events(bias: float, allocation: str = "max_weight") -> EventsSummary:
        return EventsSummary(lhe="e.lhe", events=10, max_weight=1.0, efficiency=0.1,
                             overweight_fraction=0.0, truncation_bias=bias,
                             generation_calls=100, allocation=allocation)

    card = parse_run_card('[run]\nprocess = "drell_yan"\n')
    (warning,) = _events_warnings(card, events(0.05))
    assert "0.05" in warning and "0.001" in warning and "allocation" in warning
    # draws already shared by the sigmas: that way out is not offered again
    (warning,) = _events_warnings(card, events(0.05, "sigma"))
    assert "0.05" in warning and "[integration] points" in warning
    assert "allocation" not in warning
    assert _events_warnings(card, events(0.0015)) == []
    kept = parse_run_card('[run]\nprocess = "drell_yan"\n[unweighting]\noverweight = "keep"\n')
    assert _events_warnings(kept, events(0.05)) == []
    exact = parse_run_card('[run]\nprocess = "drell_yan"\n[unweighting]\nmax_weight = "exact"\n')
    assert _events_warnings(exact, events(0.05)) == []
