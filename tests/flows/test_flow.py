"""The Flow: Jacobians, round trips, conditions, dtypes and bad input."""

import pytest
import torch

from madnis_py import Flow


def _randomise(flow: Flow, std: float = 0.3) -> Flow:
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0.0, std)
    return flow


@pytest.mark.parametrize("dims", [1, 2, 3, 5])
@pytest.mark.parametrize("condition_dims", [0, 2])
def test_log_det_equals_autograd_jacobian(dims: int, condition_dims: int) -> None:
    flow = _randomise(Flow(dims, bins=6, condition_dims=condition_dims))
    z = torch.rand(5, dims, dtype=torch.float64) * 0.98 + 0.01
    cond = torch.rand(5, condition_dims, dtype=torch.float64) if condition_dims else None
    x, logdet = flow.transform(z, cond)
    log_q = flow.log_prob(x, cond)
    for i in range(5):
        c = None if cond is None else cond[i:i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=c: flow.transform(v[None], c)[0][0], z[i])
        assert abs(torch.linalg.slogdet(jac)[1] - logdet[i]) < 1e-9
        jac_inv = torch.autograd.functional.jacobian(lambda v, c=c: flow.inverse(v[None], c)[0][0], x[i])
        assert abs(torch.linalg.slogdet(jac_inv)[1] - log_q[i]) < 1e-9


@pytest.mark.parametrize("backend", ["kernel", "reference"])
def test_round_trip_and_log_dets_cancel(backend: str) -> None:
    flow = _randomise(Flow(4, bins=10, backend=backend))
    z = torch.rand(20_000, 4, dtype=torch.float64)
    with torch.no_grad():
        x, logdet = flow.transform(z)
        z2, logdet_inv = flow.inverse(x)
    assert float((z2 - z).abs().max()) < 1e-9
    assert float((logdet + logdet_inv).abs().max()) < 1e-9


def test_kernel_and_reference_flows_agree() -> None:
    flow = _randomise(Flow(3, bins=8))
    ref = Flow(3, bins=8, backend="reference")
    ref.load_state_dict(flow.state_dict())
    x = torch.rand(1000, 3, dtype=torch.float64)
    lq, lq_ref = flow.log_prob(x), ref.log_prob(x)
    assert float((lq - lq_ref).detach().abs().max()) < 1e-10
    lq.sum().backward()
    lq_ref.sum().backward()
    for p, q in zip(flow.parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-10)


def test_chunking_does_not_change_results() -> None:
    flow = _randomise(Flow(3, chunk_size=1000))
    whole = Flow(3, chunk_size=10**9)
    whole.load_state_dict(flow.state_dict())
    x = torch.rand(4321, 3, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(flow.inverse(x), whole.inverse(x), strict=True):
            assert torch.equal(a, b)
        z, _ = flow.transform(x)
        assert torch.equal(z, whole.transform(x)[0])


def test_fresh_flow_is_uniform() -> None:
    x, log_q = Flow(3).sample(1000)
    assert log_q.abs().max() < 1e-12
    assert x.dtype == torch.float64 and x.shape == (1000, 3)


def test_sample_is_reproducible_and_consistent() -> None:
    flow = _randomise(Flow(3, condition_dims=1))
    cond = torch.full((500, 1), 0.3, dtype=torch.float64)
    x1, lq1 = flow.sample(500, cond, generator=torch.Generator().manual_seed(7))
    x2, lq2 = flow.sample(500, cond, generator=torch.Generator().manual_seed(7))
    assert torch.equal(x1, x2) and torch.equal(lq1, lq2)
    assert torch.allclose(flow.log_prob(x1, cond), lq1, atol=1e-9)
    assert ((x1 >= 0) & (x1 <= 1)).all()


def test_density_integrates_to_one() -> None:
    """int q = 1, estimated with uniform points and, independently, E_q[1/q] = volume."""
    flow = _randomise(Flow(2, bins=8), std=0.1)
    x = torch.rand(400_000, 2, dtype=torch.float64)
    with torch.no_grad():
        q = flow.prob(x)
        _, log_q = flow.sample(400_000)
    for w in (q, torch.exp(-log_q)):
        mean, err = float(w.mean()), float(w.std() / len(w) ** 0.5)
        assert abs(mean - 1.0) < 4 * err
        assert err < 0.01


def test_gradients_finite_on_edges() -> None:
    flow = _randomise(Flow(3), std=1.0)
    x = torch.tensor([[0.0, 1.0, 0.5], [1.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    lq = flow.log_prob(x)
    lq.sum().backward()
    assert torch.isfinite(lq).all()
    assert all(torch.isfinite(p.grad).all() for p in flow.parameters())


def test_float32_flow() -> None:
    """float32 (opt-in for training) tracks float64 to ~1e-4 in log q."""
    flow = _randomise(Flow(4), std=0.1)
    flow32 = Flow(4, dtype=torch.float32)
    flow32.load_state_dict(flow.state_dict())
    with torch.no_grad():
        x, lq = flow.sample(1000)
        lq32 = flow32.log_prob(x.float())
    assert lq32.dtype == torch.float32
    assert float((lq32.double() - lq).abs().max()) < 1e-3


class TestBadInput:
    def test_shape(self) -> None:
        with pytest.raises(ValueError, match=r"x: expected shape \(n, 3\)"):
            Flow(3).log_prob(torch.rand(4, 2, dtype=torch.float64))

    def test_dtype(self) -> None:
        with pytest.raises(TypeError, match="x: dtype torch.float32"):
            Flow(3).log_prob(torch.rand(4, 3))

    def test_outside(self) -> None:
        x = torch.rand(4, 3, dtype=torch.float64)
        x[2, 1] = 1.2
        with pytest.raises(ValueError, match="x: entry 7"):
            Flow(3).log_prob(x)

    def test_condition(self) -> None:
        flow = Flow(2, condition_dims=3)
        x = torch.rand(4, 2, dtype=torch.float64)
        with pytest.raises(ValueError, match="condition: required"):
            flow.log_prob(x)
        with pytest.raises(ValueError, match=r"condition: expected shape \(4, 3\)"):
            flow.log_prob(x, torch.rand(4, 2, dtype=torch.float64))
        with pytest.raises(ValueError, match="condition_dims=0"):
            Flow(2).log_prob(x, torch.rand(4, 1, dtype=torch.float64))

    def test_constructor(self) -> None:
        with pytest.raises(ValueError, match="dims"):
            Flow(0)
        with pytest.raises(ValueError, match="bins"):
            Flow(2, bins=100)
