"""Several flows' densities stacked (madnis_py.flows.stacked, the device's way) against
flow by flow."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from madnis_py.flows import Flow
from madnis_py.flows.flow import log_prob_many
from madnis_py.flows.stacked import log_prob_stacked, sample_stacked, stackable
from tests.flows.test_flow_many import away_from_identity


def _flows(dims: int, count: int, backend: str = "kernel", **options: object) -> list[Flow]:
    torch.manual_seed(11)
    return away_from_identity([Flow(dims, backend=backend, **options)  # type: ignore[arg-type]
                               for _ in range(count)])


def _points(dims: int, sizes: list[int]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    return [torch.rand(n, dims, dtype=torch.float64, generator=gen).requires_grad_()
            for n in sizes]


@pytest.mark.parametrize("backend", ["kernel", "reference"])
@pytest.mark.parametrize("dims", [1, 3, 6])
def test_values_and_gradients_are_those_of_each_flow(dims: int, backend: str) -> None:
    """Stacked (padded to the longest point set, batched matrix products, one spline
    call per block): each flow's log q and the gradients of a loss in the points and in
    every flow's parameters as flow by flow, to the rounding of a batched product."""
    flows = _flows(dims, 4, backend)
    sizes = [37, 80, 1, 52]
    xs = _points(dims, sizes)
    got = log_prob_stacked(flows, xs)
    weights = [torch.linspace(0.5, 2.0, n, dtype=torch.float64) for n in sizes]
    sum((w * q).sum() for w, q in zip(weights, got, strict=True)).backward()
    stacked_grads = [p.grad.clone() for f in flows for p in f.parameters()]
    point_grads = [x.grad.clone() for x in xs]
    for f in flows:
        f.zero_grad()
    for x in xs:
        x.grad = None
    want = [f.log_prob(x) for f, x in zip(flows, xs, strict=True)]
    sum((w * q).sum() for w, q in zip(weights, want, strict=True)).backward()
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # gradients are sums over points: rounding relative to each tensor's largest entry
    for a, b in zip([*stacked_grads, *point_grads],
                    [*(p.grad for f in flows for p in f.parameters()),
                     *(x.grad for x in xs)], strict=True):
        assert b is not None
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13 * max([1.0, *b.abs().flatten().tolist()]))
    # through log_prob_many, forced (on the CPU it would take the fused blocks)
    again = log_prob_many(flows, [x.detach() for x in xs], stacked=True)
    for a, b in zip(again, want, strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dims", [1, 5])
def test_samples_are_those_of_each_flow(dims: int) -> None:
    """sample_stacked draws each flow's latent points as its sample does, in order (the
    same random numbers), and maps them together: the points and log q of flow by flow
    to rounding."""
    flows = _flows(dims, 3)
    counts = [50, 0, 17]
    got = sample_stacked(flows, counts, torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)
    for (x, log_q), f, n in zip(got, flows, counts, strict=True):
        want_x, want_log_q = f.sample(n, generator=gen)
        assert x.shape == (n, dims)
        torch.testing.assert_close(x, want_x, rtol=1e-13, atol=1e-14)
        torch.testing.assert_close(log_q, want_log_q, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="3 flows and 2 counts"):
        sample_stacked(flows, [1, 2])


def test_other_activations_stack_too() -> None:
    flows = _flows(4, 3, activation=nn.Tanh)
    xs = [x.detach() for x in _points(4, [20, 30, 25])]
    for a, f, x in zip(log_prob_stacked(flows, xs), flows, xs, strict=True):
        torch.testing.assert_close(a, f.log_prob(x), rtol=1e-12, atol=1e-12)


def test_only_flows_alike_stack() -> None:
    base = _flows(3, 2)
    assert stackable(base)
    assert not stackable([])
    assert not stackable([base[0], Flow(4)])
    assert not stackable([base[0], Flow(3, bins=6)])
    assert not stackable([base[0], Flow(3, units=16)])
    assert not stackable([base[0], Flow(3, blocks=3)])
    assert not stackable([base[0], Flow(3, backend="reference")])
    assert not stackable([Flow(3, condition_dims=2), Flow(3, condition_dims=2)])
    assert not stackable([base[0], Flow(3, dtype=torch.float32)])
    with pytest.raises(ValueError, match="the flows differ"):
        log_prob_stacked([base[0], Flow(4)], [torch.rand(3, 3, dtype=torch.float64),
                                              torch.rand(3, 4, dtype=torch.float64)])
    with pytest.raises(ValueError, match="2 flows and 1 point sets"):
        log_prob_stacked(base, [torch.rand(3, 3, dtype=torch.float64)])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_flows_stack_by_default() -> None:
    """On a GPU log_prob_many stacks flows alike, as flow by flow on the CPU."""
    flows = _flows(5, 6)
    xs = [x.detach() for x in _points(5, [100, 400, 3, 250, 90, 10])]
    want = [f.log_prob(x) for f, x in zip(flows, xs, strict=True)]
    gpu = [f.cuda() for f in flows]
    got = log_prob_many(gpu, [x.cuda() for x in xs])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=1e-12, atol=1e-12)
