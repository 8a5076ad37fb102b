"""The fused coupling kernel (subnet + spline in one call) against the torch path.

The torch path (``fuse_subnet = False``: torch dense layers, then the spline kernel) is
the reference: values, log-dets and the gradients of x, the condition and every subnet
parameter must agree to 1e-12 in float64 (relative to each tensor's scale), for several
block shapes, both directions, and batch sizes that leave partial chunks.
"""

import pytest
import torch
from torch import nn

from madnis_py._core import ext
from madnis_py.flows import Flow, RQSCoupling, SplineOptions, binary_masks
from madnis_py.flows.fused import fusable, fused_coupling

# (dims, condition_dims, layers, units)
SHAPES = [(1, 0, 2, 8), (1, 3, 3, 32), (2, 0, 1, 8), (2, 2, 2, 16), (4, 0, 3, 32),
          (4, 3, 4, 64), (8, 0, 3, 32), (8, 5, 2, 8), (16, 0, 3, 32), (16, 4, 4, 24)]


def _block(dims: int, condition_dims: int, layers: int, units: int, dtype: torch.dtype,
           mask_index: int = -1, bins: int = 10) -> RQSCoupling:
    """A block with torch's default hidden init and a random last layer (no identity)."""
    torch.manual_seed(dims * 100 + condition_dims * 10 + layers)
    block = RQSCoupling(binary_masks(dims)[mask_index], SplineOptions(bins),
                        condition_dims=condition_dims, layers=layers, units=units)
    with torch.no_grad():
        last = block.subnet[-1]
        last.weight.normal_(0, 0.3)
        last.bias.normal_(0, 0.3)
    return block.to(dtype)


def _run(block: RQSCoupling, x: torch.Tensor, c: torch.Tensor | None, inverse: bool,
         fuse: bool) -> list[torch.Tensor]:
    """Values, log-dets and every gradient of a fixed weighted sum of both outputs."""
    block.fuse_subnet = fuse
    block.zero_grad(set_to_none=True)
    xg = x.clone().requires_grad_()
    cg = None if c is None else c.clone().requires_grad_()
    y, logdet = block(xg, cg, inverse=inverse)
    wy = torch.linspace(-1.0, 2.0, y.numel(), dtype=x.dtype).reshape(y.shape)
    wl = torch.linspace(0.5, 1.5, logdet.numel(), dtype=x.dtype)
    ((y * wy).sum() + (logdet * wl).sum()).backward()
    grads = [xg.grad] + ([] if cg is None else [cg.grad])
    return [y.detach(), logdet.detach()] + grads + [p.grad for p in block.parameters()]


def _assert_close(fused: list[torch.Tensor], ref: list[torch.Tensor], tol: float) -> None:
    assert len(fused) == len(ref)
    for i, (a, b) in enumerate(zip(fused, ref, strict=True)):
        a, b = a.detach(), b.detach()
        assert a is not None and b is not None, i
        assert a.shape == b.shape, i
        if b.numel() == 0:
            continue
        scale = float(b.abs().max().clamp(min=1.0))
        assert float((a - b).abs().max()) <= tol * scale, (i, float((a - b).abs().max()))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("n", [1, 203])
def test_matches_torch_path_float64(shape: tuple[int, int, int, int], inverse: bool,
                                    n: int) -> None:
    dims, cdims, layers, units = shape
    block = _block(dims, cdims, layers, units, torch.float64)
    x = torch.rand(n, dims, dtype=torch.float64)
    c = torch.randn(n, cdims, dtype=torch.float64) if cdims else None
    fused = _run(block, x, c, inverse, fuse=True)
    ref = _run(block, x, c, inverse, fuse=False)
    # the spline really moves the points (so the check is not of an identity map)
    assert float((fused[0] - x).abs().max()) > 1e-3
    _assert_close(fused, ref, 1e-12)


@pytest.mark.parametrize("shape", [(2, 2, 2, 16), (4, 0, 3, 32), (8, 3, 3, 32),
                                   (16, 0, 3, 32)])
@pytest.mark.parametrize("inverse", [False, True])
def test_matches_torch_path_float32(shape: tuple[int, int, int, int], inverse: bool) -> None:
    dims, cdims, layers, units = shape
    block64 = _block(dims, cdims, layers, units, torch.float64)
    block32 = _block(dims, cdims, layers, units, torch.float32)
    x = torch.rand(301, dims, dtype=torch.float64)
    c = torch.randn(301, cdims, dtype=torch.float64) if cdims else None
    fused = _run(block32, x.float(), None if c is None else c.float(), inverse, fuse=True)
    ref = _run(block64, x, c, inverse, fuse=False)
    # float32 rounding (2^-24 = 6e-8) grows through the subnet and the spline's
    # derivatives; 1e-4 of each tensor's scale still fails on any wrong term
    _assert_close([t.double() for t in fused], ref, 1e-4)


def test_more_bins_and_all_masks() -> None:
    for mask_index in range(6):
        block = _block(8, 2, 3, 32, torch.float64, mask_index=mask_index, bins=16)
        x = torch.rand(77, 8, dtype=torch.float64)
        c = torch.randn(77, 2, dtype=torch.float64)
        for inverse in (False, True):
            _assert_close(_run(block, x, c, inverse, True), _run(block, x, c, inverse, False),
                          1e-12)


def test_gradcheck_inputs_and_parameters() -> None:
    block = _block(3, 2, 3, 5, torch.float64)
    x = (0.1 + 0.8 * torch.rand(6, 3, dtype=torch.float64)).requires_grad_()
    c = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in block.parameters())
    for inverse in (False, True):
        def of_inputs(a: torch.Tensor, b: torch.Tensor,
                      inverse: bool = inverse) -> tuple[torch.Tensor, ...]:
            return block(a, b, inverse=inverse)

        def of_params(*ps: torch.Tensor, inverse: bool = inverse) -> tuple[torch.Tensor, ...]:
            return torch.func.functional_call(block, dict(zip(names, ps, strict=True)),
                                              (x.detach(), c.detach()), {"inverse": inverse})
        assert torch.autograd.gradcheck(of_inputs, (x, c))
        assert torch.autograd.gradcheck(of_params, params)


def test_threads_agree() -> None:
    block = _block(4, 2, 3, 32, torch.float64)
    x = torch.rand(20_000, 4, dtype=torch.float64)
    c = torch.randn(20_000, 2, dtype=torch.float64)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(block, x, c, True, fuse=True)
        torch.set_num_threads(2)
        two = _run(block, x, c, True, fuse=True)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    _assert_close(two, one, 1e-13)


def test_flow_training_step_matches() -> None:
    torch.manual_seed(5)
    flow = Flow(5, bins=8, condition_dims=3)
    with torch.no_grad():
        for block in flow.blocks:
            block.subnet[-1].weight.normal_(0, 0.2)
    x = torch.rand(500, 5, dtype=torch.float64)
    c = torch.nn.functional.one_hot(torch.randint(0, 3, (500,)), 3).double()
    results = []
    for fuse in (True, False):
        for block in flow.blocks:
            block.fuse_subnet = fuse
        flow.zero_grad(set_to_none=True)
        log_q = flow.log_prob(x, c)
        log_q.mean().backward()
        results.append([log_q.detach()] + [p.grad for p in flow.parameters()])
    _assert_close(results[0], results[1], 1e-12)


def test_out_of_range_input_names_row_and_column() -> None:
    block = _block(4, 0, 3, 32, torch.float64)
    x = torch.rand(10, 4, dtype=torch.float64)
    col = int(block.trans_index[0])
    x[7, col] = 1.5
    with pytest.raises(ValueError, match=rf"x: entry \(7, {col}\)"):
        block(x)
    x[7, col] = float("nan")
    with pytest.raises(ValueError, match=rf"x: entry \(7, {col}\)"):
        block(x)


def test_shape_mismatch_names_the_argument() -> None:
    block = _block(4, 0, 3, 32, torch.float64)
    x = torch.rand(10, 4, dtype=torch.float64)
    y, logdet = torch.empty_like(x), torch.empty(10, dtype=torch.float64)
    linears = [m for m in block.subnet if isinstance(m, nn.Linear)]
    w = [m.weight.detach().numpy() for m in linears]
    b = [m.bias.detach().numpy() for m in linears]
    kwargs = SplineOptions(10).kernel_kwargs()
    cond, trans = block.cond_index.tolist(), block.trans_index.tolist()
    with pytest.raises(ValueError, match=r"weight\[1\]"):
        ext.coupling_forward(x.numpy(), None, [w[0], w[0], w[2]], b, cond, trans,
                             y.numpy(), logdet.numpy(), inverse=False, **kwargs)
    with pytest.raises(ValueError, match="partition"):
        ext.coupling_forward(x.numpy(), None, w, b, cond, trans[:1], y.numpy(),
                             logdet.numpy(), inverse=False, **kwargs)
    with pytest.raises(TypeError, match="bias"):
        ext.coupling_forward(x.numpy(), None, w, [b[0], b[1].astype("float32"), b[2]], cond,
                             trans, y.numpy(), logdet.numpy(), inverse=False, **kwargs)


def test_fusable_subnets_only() -> None:
    relu = RQSCoupling(torch.tensor([True, False]), SplineOptions())
    assert fusable(relu.subnet)
    tanh = RQSCoupling(torch.tensor([True, False]), SplineOptions(), activation=nn.Tanh)
    assert not fusable(tanh.subnet)
    # a tanh subnet still works (torch path) and its state_dict keys are the MLP's
    assert list(tanh.state_dict()) == list(relu.state_dict())
    x = torch.rand(5, 2)
    assert tanh(x)[0].shape == (5, 2)


def test_functional_entry_point() -> None:
    block = _block(4, 0, 3, 32, torch.float64)
    x = torch.rand(50, 4, dtype=torch.float64)
    y, logdet = fused_coupling(x, None, block.subnet, block.cond_index.tolist(),
                               block.trans_index.tolist(), block.spline)
    block.fuse_subnet = False
    y_ref, logdet_ref = block(x)
    _assert_close([y, logdet], [y_ref, logdet_ref], 1e-12)
