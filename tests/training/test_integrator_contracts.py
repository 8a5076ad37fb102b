"""Contracts of the multi-channel ``Integrator`` under every loss (zuko-style sweep).

On a two-channel toy with an exact integral: shapes of what ``train``, ``sample`` and
``integrate`` return, a finite gradient for every parameter after one step (flows and
channel weights), every parameter moved by it, log q of every channel's flow against the
autograd Jacobian of its transform, and sample weights equal to ``alpha f / q``
recomputed from the public parts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madnis_py.flows import Flow
from madnis_py.training import Integrator
from madnis_py.training.multichannel import LOSSES

FLOW = {"units": 8, "layers": 2, "bins": 4}
EXACT = 2.0  # int over [0, 1]^2 of 3 x0^2 + 2 x1


class Toy:
    """f(x) = 3 x0^2 + 2 x1 in every channel, prior x0^2 : (1 - x0)^2, features x."""

    n_channels = 2
    feature_dims = 2

    def __init__(self) -> None:
        self.calls = 0

    def dims(self, channel: int) -> int:
        return 2

    def __call__(self, x: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.calls += len(x)
        f = 3 * x[:, 0] ** 2 + 2 * x[:, 1]
        a = x[:, 0] ** 2
        b = (1 - x[:, 0]) ** 2
        prior = torch.stack([a, b], dim=1) / (a + b)[:, None]
        return f.detach(), x.detach().clone(), prior.detach()


def make(loss: str, **kw: object) -> Integrator:
    options: dict[str, object] = {"flow_options": FLOW, "loss": loss, "warmup": 0,
                                  "lr": 0.05, "seed": 3}
    options.update(kw)
    return Integrator(Toy(), **options)  # type: ignore[arg-type]


def params(integrator: Integrator) -> list[tuple[str, torch.nn.Parameter]]:
    return ([(f"flows.{n}", p) for n, p in integrator.flows.named_parameters()]
            + [(f"weights.{n}", p) for n, p in integrator.weights.named_parameters()])


CASES = [{"loss": loss} for loss in LOSSES] + [
    {"loss": "variance", "mixture": 0.2},
    {"loss": "variance", "max_weight_penalty": 0.5, "top_fraction": 0.1},
    {"loss": "forward_kl", "trainable_weights": False},
]


def _id(case: dict[str, object]) -> str:
    return ",".join(f"{k}={v}" for k, v in case.items())


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_one_step_gives_every_parameter_a_finite_gradient(case: dict[str, object]) -> None:
    integrator = make(**case)  # type: ignore[arg-type]
    before = {n: p.detach().clone() for n, p in params(integrator)}
    losses = integrator.train(1, batch=64)
    assert len(losses) == 1 and math.isfinite(losses[0])
    assert integrator.steps_done == 1 and integrator.n_calls == 64
    trainable = case.get("trainable_weights", True)
    for name, p in params(integrator):
        if name.startswith("weights.") and not trainable:
            assert p.grad is None or not p.requires_grad, name
            continue
        assert p.grad is not None, f"{name} got no gradient ({_id(case)})"
        assert torch.isfinite(p.grad).all(), name
        # Adam moves every parameter with a non-zero gradient by about lr.
        if p.grad.abs().max() > 0:
            assert not torch.equal(p.detach(), before[name]), name
    # The flows' last layers start at zero (identity): the step must leave it.
    moved = [n for n, p in params(integrator) if n.startswith("flows.")
             and not torch.equal(p.detach(), before[n])]
    assert moved, "no flow parameter moved"
    h = integrator.history
    assert len(h.loss) == len(h.value) == len(h.rel_std) == 1
    assert math.isfinite(h.value[0]) and h.value[0] > 0


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_log_q_is_the_autograd_jacobian_of_each_flow(case: dict[str, object]) -> None:
    integrator = make(**case)  # type: ignore[arg-type]
    integrator.train(2, batch=64)
    for channel, flow in enumerate(integrator.flows):
        assert isinstance(flow, Flow) and flow.dtype == torch.float64
        z = torch.rand(6, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            x, logdet = flow.transform(z)
            log_q = flow.log_prob(x)
        for k in range(len(z)):
            jac = torch.autograd.functional.jacobian(
                lambda v, flow=flow: flow.transform(v[None])[0][0], z[k])
            exact = -torch.linalg.slogdet(jac)[1]
            torch.testing.assert_close(log_q[k], exact, rtol=1e-9, atol=1e-11,
                                       msg=f"channel {channel}, point {k}")
            torch.testing.assert_close(-logdet[k], exact, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_sample_weights_are_alpha_f_over_q(case: dict[str, object]) -> None:
    integrator = make(**case)  # type: ignore[arg-type]
    integrator.train(2, batch=64)
    mixture = float(case.get("mixture", 0.0))  # type: ignore[arg-type]
    samples = integrator.sample(100)
    assert sum(len(s.x) for s in samples) == 100
    toy = Toy()
    active = torch.ones(2, dtype=torch.bool)
    for s in samples:
        n = len(s.x)
        assert s.x.shape == (n, 2) and s.features.shape == (n, 2) and s.weight.shape == (n,)
        assert torch.all((s.x >= 0) & (s.x <= 1)) and torch.isfinite(s.weight).all()
        f, features, prior = toy(s.x, s.channel)
        with torch.no_grad():
            alpha = integrator.weights(features, prior, active)[:, s.channel]
            q = integrator.flows[s.channel].prob(s.x)
        q = (1 - mixture) * q + mixture
        torch.testing.assert_close(s.weight, alpha * f / q, rtol=1e-10, atol=0)


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_integrate_returns_a_result_per_channel_consistent_with_the_exact_value(
        case: dict[str, object]) -> None:
    integrator = make(**case)  # type: ignore[arg-type]
    integrator.train(2, batch=64)
    res = integrator.integrate(4000)
    assert len(res.channel_values) == len(res.channel_errors) == len(res.channel_points) == 2
    assert sum(res.channel_points) == 4000 and res.n_calls == 4000
    np.testing.assert_allclose(sum(res.channel_values), res.value, rtol=1e-12)
    assert res.error > 0 and math.isfinite(res.rel_std)
    # alpha splits the integral: the channels' parts are positive and sum to it, and the
    # result agrees with the exact integral within 5 sigma (fixed seed).
    assert all(v > 0 for v in res.channel_values)
    assert abs(res.value - EXACT) < 5 * res.error, (res.value, res.error)


def test_integrate_needs_two_points_per_active_channel_and_iteration() -> None:
    """Dropped channels draw nothing, so only the active ones need points."""
    integrator = make("variance")
    with pytest.raises(ValueError, match=r"at least 2 per active channel and iteration \(8\)"):
        integrator.integrate(7, iterations=2)
    integrator.active = np.array([True, False])
    res = integrator.integrate(4, iterations=2)
    assert res.channel_points == (4,) and res.n_calls == 4
