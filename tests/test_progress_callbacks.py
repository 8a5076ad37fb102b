"""Progress callbacks of the long steps (VEGAS pre-training, integration, w_max
calibration) count exactly what is done and draw nothing: seeded results are the same bit
for bit with and without them; the command's bars stay off standard output."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from madnis_py.cli import main
from madnis_py.events import Unweighter
from madnis_py.events.generator import EventGenerator
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def pipeline(with_progress: bool) -> tuple[dict[str, Any], dict[str, list[int]]]:
    """Seeded VEGAS pre-training, training, integration, calibration and events on
    ee_mumu (two channels), with or without progress callbacks; what came out (exact
    reprs and arrays) and what each callback was told."""
    told: dict[str, list[int]] = {"vegas": [], "integration": [], "calibration": []}

    def callback(name: str) -> Any:
        return told[name].append if with_progress else None

    torch.manual_seed(0)
    channels = TorchChannels(Integrand("ee_mumu"))
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=3)
    vegas_result = mc.pretrain_vegas(nitn=3, neval=500, progress=callback("vegas"))
    grids = [np.concatenate(s.grid()) for s in mc.samplers]  # the maps' own increments
    mc.train(2, batch=256)
    result = mc.integrate(3001, iterations=3, progress=callback("integration"))
    gen = EventGenerator(mc, result.value, seed=5,
                         unweighter=Unweighter(method="quantile", quantile=0.99))
    w_max = gen.calibrate(4001, progress=callback("calibration"))
    assert gen.calibration_weights is not None
    events, summary = gen.generate(25, batch=2000)
    assert events is not None
    out = {"vegas": repr(vegas_result), "grids": grids, "integration": repr(result),
           "w_max": repr(w_max), "norm": repr(gen.norm),
           "calibration": gen.calibration_weights.copy(), "momenta": events.momenta,
           "weights": events.weights, "summary": repr(summary.n_calls),
           "n_calls": mc.n_calls, "next": torch.rand(3, generator=mc.generator)}
    return out, told


def test_callbacks_count_exactly_and_change_nothing() -> None:
    plain, silent = pipeline(False)
    seen, told = pipeline(True)
    assert silent == {"vegas": [], "integration": [], "calibration": []}
    for key, value in plain.items():
        if isinstance(value, list):  # the VEGAS grids
            assert all(np.array_equal(a, b) for a, b in zip(value, seen[key], strict=True))
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            assert np.array_equal(np.asarray(value), np.asarray(seen[key])), key
        else:
            assert value == seen[key], key
    # VEGAS: one call per survey round (3 rounds of both channels together)
    assert told["vegas"] == [1] * 3
    # one call per channel and iteration, the points of the draw: 3001 in all
    assert len(told["integration"]) == 2 * 3 and sum(told["integration"]) == 3001
    assert len(told["calibration"]) == 2 and sum(told["calibration"]) == 4001


CARD = """
[run]
process = "ee_mumu"
seed = 2
nevents = 40

[training]
target = "steps"
steps = 4
batch = 512
vegas = true
vegas_iterations = 2
vegas_points = 500
warmup = 2

[integration]
points = 6000
iterations = 2

[output]
lhe = "events.lhe"
plots = false
"""


def test_json_output_is_one_document_with_the_bars_on_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = tmp_path / "card.toml"
    card.write_text(CARD)
    assert main(["run", str(card), "--output", str(tmp_path / "o"), "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # the whole of stdout: one JSON document
    assert summary["events"] == 40 and "━" not in captured.out
    # each bar on stderr, finished: "<task> ━━━ m/m"
    finished = dict(re.findall(r"^(\w+) +━+ (\d+)/\2\b", captured.err, re.MULTILINE))
    assert finished == {"vegas": "2", "training": "4", "integration": "6000",
                        "calibration": "6000", "events": "40"}  # the integration's points
