"""The training controls MadGraph 7 uses: gradient clipping, channel weights frozen after
a first phase, and buffered steps (no integrand calls); each option does what it says,
is read from the run card and survives a checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from madnis_py.cards.run_card import RunCardError, parse_run_card
from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator, TrainingOptions


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _changed(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, p) for a, p in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize("buffered_steps", [0, 2])
def test_channel_weights_stop_training_after_their_share_of_the_steps(
        buffered_steps: int) -> None:
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=3, warmup=0,
                    freeze_weights_after=0.5)
    weights_moved: list[bool] = []
    flows_moved: list[bool] = []
    state = {"w": _snapshot(mc.weights), "f": _snapshot(mc.flows)}

    def watch(steps_done: int, loss: float) -> None:
        weights_moved.append(_changed(state["w"], mc.weights))
        flows_moved.append(_changed(state["f"], mc.flows))
        state["w"], state["f"] = _snapshot(mc.weights), _snapshot(mc.flows)

    mc.train(10, batch=256, buffered_steps=buffered_steps, callback=watch)
    # int(0.5 * 10) = 5 steps with the channel weights, then the flows alone
    assert weights_moved == [True] * 5 + [False] * 5
    assert flows_moved == [True] * 10


def test_freezing_counts_over_the_whole_call_when_resumed(tmp_path: Path) -> None:
    """A call interrupted after a checkpoint and resumed freezes at the same step as an
    uninterrupted one (and ends with the same channel weights, bit for bit)."""
    toy = RidgeAndPeak()
    torch.manual_seed(0)  # the networks' initialisation draws from torch's global RNG
    whole = Integrator(toy, feature_dims=2, seed=5, warmup=0, freeze_weights_after=0.6)
    whole.train(10, batch=256)

    class Stop(Exception):
        pass

    def crash(steps_done: int, loss: float) -> None:
        if steps_done == 4:
            raise Stop

    torch.manual_seed(0)
    part = Integrator(toy, feature_dims=2, seed=5, warmup=0, freeze_weights_after=0.6)
    with pytest.raises(Stop):
        part.train(10, batch=256, checkpoint=tmp_path / "c.pt", checkpoint_every=2,
                   callback=crash)
    resumed = Integrator.load(tmp_path / "c.pt", toy)
    assert resumed.steps_remaining == 6
    before = _snapshot(resumed.weights)
    moved = []

    def watch(steps_done: int, loss: float) -> None:
        nonlocal before
        moved.append(_changed(before, resumed.weights))
        before = _snapshot(resumed.weights)

    resumed.train(resumed.steps_remaining, batch=256, callback=watch)
    assert moved == [True, True, False, False, False, False]  # steps 5, 6 | 7 to 10
    for a, b in zip(whole.weights.parameters(), resumed.weights.parameters(), strict=True):
        assert torch.equal(a, b)


def _step_grad_norms(**options: object) -> list[float]:
    """The L2 norm of the gradient every optimiser step of a short training applies."""
    norms: list[float] = []

    def record(optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]
                 if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    handle = register_optimizer_step_pre_hook(record)
    try:
        torch.manual_seed(0)
        mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=2, warmup=0, **options)
        mc.train(8, batch=256, buffered_steps=1)
    finally:
        handle.remove()
    return norms


def test_gradient_clipping_bounds_the_norm_of_every_step() -> None:
    free = _step_grad_norms(max_grad_norm=0.0)
    assert len(free) == 16  # 8 fresh and 8 buffered steps
    limit = 0.5 * min(free)  # every unclipped step is above it
    clipped = _step_grad_norms(max_grad_norm=limit)
    assert len(clipped) == 16
    assert all(n <= limit * (1 + 1e-6) for n in clipped)
    # the first step sees the same gradient in both runs: scaled down to the limit
    assert free[0] > 1.9 * limit
    assert clipped[0] == pytest.approx(limit, rel=1e-5)  # torch adds 1e-6 to the norm


def test_buffered_steps_make_no_integrand_calls() -> None:
    plain = Integrator(RidgeAndPeak(), feature_dims=2, seed=4)
    plain.train(6, batch=512)
    buffered = Integrator(RidgeAndPeak(), feature_dims=2, seed=4)
    buffered.train(6, batch=512, buffered_steps=4, buffer_batches=2)
    assert buffered.n_calls == plain.n_calls == 6 * 512


def test_options_come_from_the_card_and_survive_a_checkpoint(tmp_path: Path) -> None:
    card = parse_run_card('[run]\nprocess = "drell_yan"\n[training]\n'
                          'max_grad_norm = 0.25\nfreeze_weights_after = 0.67\n')
    opts = card.integrator_options()
    assert (opts["max_grad_norm"], opts["freeze_weights_after"]) == (0.25, 0.67)
    assert "max_grad_norm = 0.25" in card.to_toml()
    assert parse_run_card(card.to_toml()) == card
    mc = Integrator(RidgeAndPeak(), feature_dims=2, **opts)
    mc.save(tmp_path / "c.pt")
    again = Integrator.load(tmp_path / "c.pt", RidgeAndPeak())
    assert again.options == mc.options
    assert (again.options.max_grad_norm, again.options.freeze_weights_after) == (0.25, 0.67)


@pytest.mark.parametrize("key, value, expected", [
    ("max_grad_norm", -1.0, "a gradient norm >= 0 (0: no clipping)"),
    ("freeze_weights_after", 1.5, "a share of the steps, 0 <= freeze_weights_after <= 1"),
    ("freeze_weights_after", -0.1, "a share of the steps, 0 <= freeze_weights_after <= 1")])
def test_bad_values_name_the_field(key: str, value: float, expected: str) -> None:
    with pytest.raises(RunCardError,
                       match=rf"run.toml:4: \[training\] {key}: .*{re.escape(expected)}"):
        parse_run_card(f'[run]\nprocess = "drell_yan"\n[training]\n{key} = {value}\n',
                       "run.toml")
    with pytest.raises(ValueError, match=re.escape(f"{key} must be {expected}, got {value}")):
        TrainingOptions(**{key: value})
