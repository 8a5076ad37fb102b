"""Results say when their error cannot be trusted (MultiChannelResult.warnings)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.testfunctions import Camel, RidgeAndPeak
from madnis_py.training import Integrator
from madnis_py.training.results import trust_warnings as _trust_warnings


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)  # the flows' initialisation


class _OneChannel:
    """A function on [0, 1]^2 as a one-channel integrand (features: the point)."""

    n_channels = 1
    feature_dims = 2

    def __init__(self, f: object) -> None:
        self.f = f

    def dims(self, channel: int) -> int:
        return 2

    def __call__(self, x: torch.Tensor, channel: int):
        return self.f(x), x, None  # type: ignore[operator]


def _power(x: torch.Tensor) -> torch.Tensor:
    """0.3 x0^-0.7: integral 1, infinite variance."""
    return 0.3 * x[:, 0].clamp(min=1e-300) ** -0.7


def test_a_well_sampled_integrand_has_no_warnings() -> None:
    camel = Camel(2)
    mc = Integrator(_OneChannel(camel), seed=0, flow_options={"bins": 8})
    mc.train(10, batch=1024)
    for iterations in (1, 4):
        r = mc.integrate(40_000, iterations=iterations)
        assert abs(r.value - camel.exact) < 4 * r.error
        assert r.warnings == (), r.warnings
        assert "WARNING" not in str(r)
    toy = Integrator(RidgeAndPeak(), feature_dims=2, seed=1)
    toy.train(15, batch=1024)
    assert toy.integrate(20_000, iterations=3).warnings == ()


def test_an_infinite_variance_is_flagged() -> None:
    mc = Integrator(_OneChannel(_power), seed=0, flow_options={"bins": 8})
    r = mc.integrate(50_000)
    assert any("variance estimate is itself uncertain" in w for w in r.warnings), r
    assert "\nWARNING: " in str(r)


def test_a_z_width_of_1e_12_is_flagged(tmp_path: Path) -> None:
    """The channel mapping keeps the card's 2.44 GeV Breit-Wigner, the matrix element has
    a width of 1e-12: the few points near the pole carry the integral."""
    from madnis_py.integrand import Integrand
    from madnis_py.physics.process import load_process

    process = load_process("drell_yan")
    card = process.param_card.read_text()
    narrow = re.sub(r"(?m)^DECAY\s+23\s+\S+", "DECAY  23 1.0e-12", card)
    assert narrow != card
    (tmp_path / "param_card.dat").write_text(narrow)
    results = {}
    for name, path in (("sm", process.param_card), ("narrow", tmp_path / "param_card.dat")):
        integrand = Integrand(dataclasses.replace(process, param_card=path))
        mc = Integrator(integrand, seed=1, flow_options={"bins": 4})
        results[name] = mc.integrate(20_000)
    assert results["sm"].warnings == ()
    warnings = results["narrow"].warnings
    assert any(re.match(r"one point carries \d+% of the integral", w) for w in warnings)
    assert any("variance estimate" in w for w in warnings), warnings


def test_iterations_that_disagree_are_flagged() -> None:
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, 3000)
    raw = {0: [w[:1000], w[1000:2000], w[2000:]]}
    assert _trust_warnings(w, raw, 1.1, 3) == ()
    chi2 = _trust_warnings(w, raw, 12.0, 3)
    assert len(chi2) == 1 and chi2[0].startswith("chi2/dof = 12 across 3 iterations")
    assert _trust_warnings(w, raw, 12.0, 2) == ()  # too few iterations to judge
