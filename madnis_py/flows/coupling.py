"""Coupling blocks of rational-quadratic splines and their masks.

A coupling block splits the dimensions into a conditioning set, passed through
unchanged, and a transformed set, each mapped by its own spline whose raw parameters
a small dense network (the subnet) computes from the conditioning set and an optional
condition (e.g. a channel one-hot). Dinh et al. arXiv:1605.08803; Durkan et al.
arXiv:1906.04032.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from madnis_py.flows.fused import fusable, fused_coupling
from madnis_py.flows.reference import rqs_reference
from madnis_py.flows.spline import SplineOptions, rqs

__all__ = ["binary_masks", "MLP", "RQSCoupling"]


def binary_masks(dims: int, blocks: int | None = None) -> list[torch.Tensor]:
    """Conditioning masks (True = conditions, False = transformed) for ``blocks`` blocks.

    Dimension j is written in binary with b = ceil(log2 dims) bits; block 2i conditions on
    the dimensions whose bit i is 0 and block 2i+1 on the complement. Any two dimensions
    differ in some bit, so after the 2b default blocks every dimension has conditioned
    the transform of every other, in both directions. More blocks repeat the pattern.
    """
    if dims < 1:
        raise ValueError(f"dims must be at least 1, got {dims}")
    if dims == 1:
        pattern = [torch.zeros(1, dtype=torch.bool)]
    else:
        bits = math.ceil(math.log2(dims))
        index = torch.arange(dims)
        pattern = []
        for b in range(bits):
            bit_set = (index >> b) & 1 == 1
            pattern += [~bit_set, bit_set]
    count = len(pattern) if blocks is None else blocks
    if count < 1:
        raise ValueError(f"blocks must be at least 1, got {count}")
    return [pattern[i % len(pattern)] for i in range(count)]


class MLP(nn.Sequential):
    """Dense network with ``layers`` linear layers (``layers - 1`` hidden of ``units``).

    The last layer starts at zero, so a fresh coupling block is the identity map.
    """

    def __init__(self, features_in: int, features_out: int, *, layers: int = 3,
                 units: int = 32, activation: Callable[[], nn.Module] | None = None) -> None:
        if activation is None:
            # in place: saves one (n, units) temporary per hidden layer
            activation = partial(nn.ReLU, inplace=True)
        if layers < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        sizes = [features_in] + [units] * (layers - 1) + [features_out]
        modules: list[nn.Module] = []
        for i in range(layers):
            with warnings.catch_warnings():
                # a 1D flow without condition has no subnet input: its first layer is a
                # learned constant (bias only), which torch warns about initialising
                warnings.filterwarnings("ignore", "Initializing zero-element tensors")
                modules.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < layers - 1:
                modules.append(activation())
        super().__init__(*modules)
        last = modules[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)


class RQSCoupling(nn.Module):
    """One coupling block: splines on the masked-out dimensions.

    Parameters
    ----------
    mask
        Boolean ``(dims,)``; True marks conditioning dimensions, False transformed ones.
    spline
        Bin count and floors of the splines.
    condition_dims
        Size of the extra condition appended to the subnet input.
    layers, units, activation
        Subnet shape (see :class:`MLP`).
    backend
        ``"kernel"`` (compiled kernels) or ``"reference"`` (pure torch).

    Attributes
    ----------
    fuse_subnet
        With the kernel backend, run subnet and spline of a CPU batch as one compiled
        call (:mod:`madnis_py.flows.fused`) when the subnet is ``Linear, ReLU, ...,
        Linear`` (default True). Otherwise, and for CUDA tensors, the subnet runs as
        torch layers followed by the spline kernel; both give the same values and
        gradients to rounding.
    """

    cond_index: torch.Tensor
    trans_index: torch.Tensor

    def __init__(self, mask: torch.Tensor, spline: SplineOptions, *, condition_dims: int = 0,
                 layers: int = 3, units: int = 32,
                 activation: Callable[[], nn.Module] | None = None,
                 backend: str = "kernel") -> None:
        super().__init__()
        if backend not in ("kernel", "reference"):
            raise ValueError(f"backend must be 'kernel' or 'reference', got {backend!r}")
        mask = mask.bool()
        self.dims = int(mask.numel())
        self.register_buffer("cond_index", torch.nonzero(mask)[:, 0], persistent=False)
        self.register_buffer("trans_index", torch.nonzero(~mask)[:, 0], persistent=False)
        self.n_trans = int(self.trans_index.numel())
        if self.n_trans == 0:
            raise ValueError("a coupling mask must leave at least one dimension to transform")
        self.spline = spline
        self.backend = backend
        self._apply_spline = rqs if backend == "kernel" else rqs_reference
        self._cond_list = self.cond_index.tolist()
        self._trans_list = self.trans_index.tolist()
        self.fuse_subnet = True
        self.subnet = MLP(int(self.cond_index.numel()) + condition_dims,
                          self.n_trans * spline.params_per_dim,
                          layers=layers, units=units, activation=activation)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None, *,
                inverse: bool = False, check: bool = True
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (n, dims) and return it with log|det J| (n,); ``check=False`` skips
        the spline's check that the points are in [0, 1] where that is a host
        synchronisation (CUDA tensors; see :func:`~madnis_py.flows.spline.rqs`)."""
        if (self.fuse_subnet and self.backend == "kernel" and x.device.type == "cpu"
                and x.dtype in (torch.float32, torch.float64) and fusable(self.subnet)):
            return fused_coupling(x, condition, self.subnet, self._cond_list,
                                  self._trans_list, self.spline, inverse=inverse)
        n = x.shape[0]
        x_cond = x.index_select(1, self.cond_index)
        net_in = x_cond if condition is None else torch.cat([x_cond, condition], dim=1)
        params = self.subnet(net_in).reshape(n * self.n_trans, self.spline.params_per_dim)
        x_trans = x.index_select(1, self.trans_index).reshape(-1)
        y_trans, logdet = self._apply_spline(x_trans, params, self.spline, inverse=inverse,
                                             check=check)
        y = x.index_copy(1, self.trans_index, y_trans.view(n, self.n_trans))
        return y, logdet.view(n, self.n_trans).sum(dim=1)
