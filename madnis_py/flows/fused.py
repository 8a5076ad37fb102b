"""One coupling block (ReLU subnet + spline) as a single compiled CPU call, with autograd.

The torch path of :class:`~madnis_py.flows.coupling.RQSCoupling` runs the subnet as
torch dense layers and then the spline kernel; most of a training step's time went
into the subnet's separate layer calls, bias copies, ReLUs and the temporaries between
them. Here the gather of the subnet input, the dense layers, the spline and the
log-Jacobian sum run per cache-sized chunk of events in one compiled call
(``csrc/coupling_cpu.cpp``), and the backward pass likewise (recomputing the chunk's
activations instead of storing them). The parameters stay the ``nn.Linear`` weights
of :class:`~madnis_py.flows.coupling.MLP`, so checkpoints are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from madnis_py._core import ext
from madnis_py.flows.spline import SplineOptions

__all__ = ["fusable", "fused_coupling"]


def _numpy(t: torch.Tensor) -> np.ndarray:
    """Zero-copy numpy view of a contiguous CPU tensor."""
    return t.detach().numpy()


def fusable(subnet: nn.Sequential) -> bool:
    """True if ``subnet`` is Linear, ReLU, Linear, ..., Linear (what the kernel computes)."""
    modules = list(subnet)
    if len(modules) % 2 != 1:
        return False
    for i, m in enumerate(modules):
        expected = nn.Linear if i % 2 == 0 else nn.ReLU
        if type(m) is not expected:
            return False
    return True


def _subnet_params(subnet: nn.Sequential) -> list[torch.Tensor]:
    """The subnet's weights and biases, alternating, as the kernel takes them."""
    params: list[torch.Tensor] = []
    for layer in list(subnet)[0::2]:
        assert isinstance(layer, nn.Linear)
        params += [layer.weight.contiguous(), layer.bias.contiguous()]
    return params


def _kernel_forward(x: torch.Tensor, condition: torch.Tensor | None,
                    params: Sequence[torch.Tensor], cond_index: list[int],
                    trans_index: list[int], opts: SplineOptions,
                    inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One block's compiled forward pass: ``(y, logdet)``."""
    y = torch.empty_like(x)
    logdet = x.new_empty(x.shape[0])
    ext.coupling_forward(
        _numpy(x), None if condition is None else _numpy(condition),
        [_numpy(w) for w in params[0::2]], [_numpy(b) for b in params[1::2]], cond_index,
        trans_index, _numpy(y), _numpy(logdet), inverse=inverse,
        threads=torch.get_num_threads(), **opts.kernel_kwargs())
    return y, logdet


def _kernel_backward(x: torch.Tensor, condition: torch.Tensor | None,
                     params: Sequence[torch.Tensor], cond_index: list[int],
                     trans_index: list[int], opts: SplineOptions, inverse: bool,
                     grad_y: torch.Tensor, grad_logdet: torch.Tensor, condition_grad: bool
                     ) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """One block's compiled backward pass: the gradients of x, of the condition (if
    ``condition_grad``) and of the subnet parameters."""
    grad_x = torch.empty_like(x)
    grad_condition = (torch.empty_like(condition)
                      if condition is not None and condition_grad else None)
    grad_params = [torch.empty_like(p) for p in params]
    ext.coupling_backward(
        _numpy(x), None if condition is None else _numpy(condition),
        [_numpy(w) for w in params[0::2]], [_numpy(b) for b in params[1::2]], cond_index,
        trans_index, _numpy(grad_y.contiguous()), _numpy(grad_logdet.contiguous()),
        _numpy(grad_x), None if grad_condition is None else _numpy(grad_condition),
        [_numpy(g) for g in grad_params[0::2]], [_numpy(g) for g in grad_params[1::2]],
        inverse=inverse, threads=torch.get_num_threads(), **opts.kernel_kwargs())
    return grad_x, grad_condition, grad_params


class _FusedCouplingFunction(torch.autograd.Function):
    """Autograd of the fused block: inputs x, condition and the subnet parameters."""

    @staticmethod
    def forward(ctx, x, condition, spec, *params):  # type: ignore[no-untyped-def]
        y, logdet = _kernel_forward(x, condition, params, *spec)
        ctx.save_for_backward(x, condition, *params)
        ctx.spec = spec
        return y, logdet

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_logdet):  # type: ignore[no-untyped-def]
        x, condition, *params = ctx.saved_tensors
        cond_index, trans_index, opts, inverse = ctx.spec
        grad_x, grad_condition, grad_params = _kernel_backward(
            x, condition, params, cond_index, trans_index, opts, inverse, grad_y,
            grad_logdet, ctx.needs_input_grad[1])
        return (grad_x, grad_condition, None, *grad_params)


def fused_coupling(x: torch.Tensor, condition: torch.Tensor | None, subnet: nn.Sequential,
                   cond_index: Sequence[int], trans_index: Sequence[int],
                   options: SplineOptions, *, inverse: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply one coupling block in one compiled call; returns ``(y, logdet)``.

    Parameters
    ----------
    x
        Points ``(n, dims)`` on the CPU, float32 or float64; the transformed columns must
        lie in [0, 1].
    condition
        Extra subnet input ``(n, c)`` after the conditioning columns, or None.
    subnet
        ``Linear, ReLU, ..., Linear`` (see :func:`fusable`) mapping the conditioning
        columns (then the condition) to ``len(trans_index) * (3K + 1)`` raw spline
        parameters, one run of 3K + 1 per transformed column.
    cond_index, trans_index
        Conditioning and transformed columns; together a partition of ``range(dims)``.
    options
        Spline bins and floors.
    inverse
        Apply the inverse splines.

    Returns
    -------
    y, logdet
        The mapped points ``(n, dims)`` and the summed log-Jacobian ``(n,)``,
        differentiable with respect to ``x``, ``condition`` and the subnet's parameters.

    Raises
    ------
    ValueError
        For a transformed input outside [0, 1] or NaN (naming its row and column), or
        parameters whose shapes do not match the block.
    """
    params = _subnet_params(subnet)
    spec = (list(cond_index), list(trans_index), options, inverse)
    cond = None if condition is None else condition.contiguous()
    return _FusedCouplingFunction.apply(  # type: ignore[no-untyped-call,no-any-return]
        x.contiguous(), cond, spec, *params)


class _FusedCouplingsFunction(torch.autograd.Function):
    """Autograd of one coupling block of several flows (same masks and spline) at once:
    inputs the flows' points, then each flow's subnet parameters; outputs their mapped
    points, then their log-Jacobians. One autograd node instead of one per flow; the
    kernel calls are those of :class:`_FusedCouplingFunction`, flow by flow."""

    @staticmethod
    def forward(ctx, spec, *tensors):  # type: ignore[no-untyped-def]
        *block, n, per = spec
        xs, params = tensors[:n], tensors[n:]
        out = [_kernel_forward(x, None, params[i * per:(i + 1) * per], *block)
               for i, x in enumerate(xs)]
        ctx.save_for_backward(*tensors)
        ctx.spec = spec
        return (*[y for y, _ in out], *[logdet for _, logdet in out])

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):  # type: ignore[no-untyped-def]
        cond_index, trans_index, opts, inverse, n, per = ctx.spec
        saved = ctx.saved_tensors
        xs, params = saved[:n], saved[n:]
        grad_xs, grad_params = [], []
        for i, x in enumerate(xs):
            grad_y = grads[i] if grads[i] is not None else torch.zeros_like(x)
            grad_logdet = (grads[n + i] if grads[n + i] is not None
                           else x.new_zeros(x.shape[0]))
            grad_x, _, grad_own = _kernel_backward(
                x, None, params[i * per:(i + 1) * per], cond_index, trans_index, opts,
                inverse, grad_y, grad_logdet, False)
            grad_xs.append(grad_x)
            grad_params += grad_own
        return (None, *grad_xs, *grad_params)


def fused_couplings(xs: Sequence[torch.Tensor], subnets: Sequence[nn.Sequential],
                    cond_index: Sequence[int], trans_index: Sequence[int],
                    options: SplineOptions, *, inverse: bool = False
                    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`fused_coupling` of one block of several flows with the same masks and
    spline (no condition): ``(y, logdet)`` of each, the same values and gradients as
    flow by flow, in one autograd node."""
    params = [p for subnet in subnets for p in _subnet_params(subnet)]
    n = len(xs)
    spec = (list(cond_index), list(trans_index), options, inverse, n, len(params) // n)
    out = _FusedCouplingsFunction.apply(  # type: ignore[no-untyped-call]
        spec, *[x.contiguous() for x in xs], *params)
    return list(zip(out[:n], out[n:], strict=True))
