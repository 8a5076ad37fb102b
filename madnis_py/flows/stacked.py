"""Several flows' densities and samples as one batched computation, for a device (a GPU).

A multi-channel step evaluates one flow per channel. Flow by flow, each coupling block
costs about ten small operations (gather, the subnet's layers, the spline, scatter,
sum), each one kernel launch on a GPU, forward and backward: with 48 channels and six
blocks several thousand launches per step, each a few microseconds of host time while
the device idles. Flows alike (same dimensions, masks, spline and subnet shapes, no
condition) are evaluated here together: their points padded to one length and stacked
``(flows, n, dims)``, each layer's weights stacked ``(flows, out, in)`` and applied with
one batched matrix product, the splines of all flows in one kernel call. The launches
then no longer grow with the channels. The values are those of flow by flow up to the
rounding of a batched matrix product (1e-15 relative), and so are the gradients. On the
CPU the fused blocks (:mod:`madnis_py.flows.fused`) are faster and are used instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from madnis_py.flows.coupling import RQSCoupling

if TYPE_CHECKING:  # flow.py calls this module
    from madnis_py.flows.flow import Flow

__all__ = ["log_prob_stacked", "sample_stacked", "stackable"]

#: The padding of shorter point sets: inside [0, 1], its densities are discarded.
_PAD = 0.5


def _blocks(flow: Flow) -> list[RQSCoupling]:
    out = []
    for block in flow.blocks:
        assert isinstance(block, RQSCoupling)
        out.append(block)
    return out


def _same_subnet(a: nn.Sequential, b: nn.Sequential) -> bool:
    if len(a) != len(b):
        return False
    for m, r in zip(a, b, strict=True):
        if type(m) is not type(r):
            return False
        if isinstance(m, nn.Linear) and (m.weight.shape != r.weight.shape
                                         or (m.bias is None) != (r.bias is None)):
            return False
    return True


def stackable(flows: Sequence[Flow]) -> bool:
    """Whether the flows can be evaluated together: all of one class on one device, of
    one dtype, without a condition, with the same dimensions, spline, blocks (masks and
    backend) and subnet shapes (dense layers with biases between elementwise modules)."""
    if not flows:
        return False
    first = flows[0]
    ref = _blocks(first)
    for flow in flows:
        if (type(flow) is not type(first) or flow.condition_dims or flow.dims != first.dims
                or flow.dtype != first.dtype or flow.device != first.device
                or flow.spline != first.spline or len(flow.blocks) != len(ref)):
            return False
        for block, r in zip(_blocks(flow), ref, strict=True):
            if (block._cond_list != r._cond_list or block._trans_list != r._trans_list
                    or block.backend != r.backend
                    or not _same_subnet(block.subnet, r.subnet)):
                return False
    for module in ref[0].subnet:
        if isinstance(module, nn.Linear) and module.bias is None:
            return False
    return True


def _linear(module: nn.Module) -> nn.Linear:
    assert isinstance(module, nn.Linear)
    return module


def _stacked_block(blocks: Sequence[RQSCoupling], x: torch.Tensor, inverse: bool
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Block k of every flow on its points ``x`` (flows, n, dims): ``(y, logdet)``."""
    ref = blocks[0]
    n_flows, n = x.shape[0], x.shape[1]
    h = x.index_select(2, ref.cond_index)
    for j, module in enumerate(ref.subnet):
        if isinstance(module, nn.Linear):
            layers = [_linear(b.subnet[j]) for b in blocks]
            weight = torch.stack([layer.weight for layer in layers])  # (flows, out, in)
            bias = torch.stack([layer.bias for layer in layers])
            h = torch.baddbmm(bias[:, None, :], h, weight.transpose(1, 2))
        else:  # an elementwise activation, as in the flow's own subnet
            h = module(h)
    params = h.reshape(n_flows * n * ref.n_trans, ref.spline.params_per_dim)
    x_trans = x.index_select(2, ref.trans_index).reshape(-1)
    y_trans, logdet = ref._apply_spline(x_trans, params, ref.spline, inverse=inverse,
                                        check=False)
    y = x.index_copy(2, ref.trans_index, y_trans.view(n_flows, n, ref.n_trans))
    return y, logdet.view(n_flows, n, ref.n_trans).sum(dim=2)


def _through_blocks(flows: Sequence[Flow], xs: Sequence[torch.Tensor], inverse: bool
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """The flows' point sets padded to one length, stacked ``(flows, n, dims)``, through
    all blocks (backwards with ``inverse``): the mapped points and the summed
    log-Jacobians ``(flows, n)``; rows past a set's length are padding."""
    longest = max(len(x) for x in xs)
    dims = flows[0].dims
    points = torch.stack([x if len(x) == longest else
                          torch.cat([x, x.new_full((longest - len(x), dims), _PAD)])
                          for x in xs])
    logdet = points.new_zeros(points.shape[:2])
    per_flow = [_blocks(f) for f in flows]
    order = range(len(per_flow[0]))
    for k in (reversed(order) if inverse else order):
        points, ld = _stacked_block([blocks[k] for blocks in per_flow], points, inverse)
        logdet = logdet + ld
    return points, logdet


def log_prob_stacked(flows: Sequence[Flow], xs: Sequence[torch.Tensor]
                     ) -> list[torch.Tensor]:
    """``flows[i].log_prob(xs[i])`` of :func:`stackable` flows, evaluated together (see
    the module docstring); differentiable in the points and the flows' parameters. The
    caller has checked the points (shapes, devices, values in [0, 1])."""
    if len(flows) != len(xs):
        raise ValueError(f"{len(flows)} flows and {len(xs)} point sets")
    if not stackable(flows):
        raise ValueError("log_prob_stacked: the flows differ (see stackable)")
    _, logdet = _through_blocks(flows, xs, inverse=True)
    return [logdet[i, :len(x)] for i, x in enumerate(xs)]


def sample_stacked(flows: Sequence[Flow], counts: Sequence[int],
                   generator: torch.Generator | None = None
                   ) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``flows[i].sample(counts[i], generator=generator)`` of :func:`stackable` flows,
    evaluated together: the latent points drawn flow after flow as each flow's
    ``sample`` draws them (the same random numbers), then all flows' blocks stacked.
    Returns each flow's ``(x, log q(x))``."""
    if len(flows) != len(counts):
        raise ValueError(f"{len(flows)} flows and {len(counts)} counts")
    if not stackable(flows):
        raise ValueError("sample_stacked: the flows differ (see stackable)")
    first = flows[0]
    zs = [torch.rand(int(n), first.dims, dtype=first.dtype, device=first.device,
                     generator=generator) for n in counts]
    points, logdet = _through_blocks(flows, zs, inverse=False)
    return [(points[i, :len(z)], -logdet[i, :len(z)]) for i, z in enumerate(zs)]
