"""Normalizing flow on the unit hypercube from RQS coupling blocks.

The latent distribution is uniform on [0, 1]^d, so the density of a point is the
inverse map's Jacobian: log q(x) = log|det dz/dx|. float64 is the default on the
sampling and density path; float32 is an opt-in for training speed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from madnis_py.flows.coupling import RQSCoupling, binary_masks
from madnis_py.flows.fused import fusable, fused_couplings
from madnis_py.flows.spline import SplineOptions, check_unit_interval, check_unit_intervals

__all__ = ["Flow", "log_prob_many"]


class Flow(nn.Module):
    """Coupling flow ``z in [0,1]^d -> x in [0,1]^d`` with a uniform latent.

    Parameters
    ----------
    dims
        Dimension d of the hypercube.
    bins
        Spline bins per dimension and block.
    condition_dims
        Size of an optional condition (e.g. a channel one-hot) fed to every subnet.
    blocks
        Number of coupling blocks; default 2 ceil(log2 d), enough for every dimension
        to condition every other (see :func:`binary_masks`).
    layers, units, activation
        Subnet shape: ``layers`` linear layers, ``units`` wide; the activation defaults to
        an in-place ReLU.
    min_bin_width, min_bin_height, min_derivative
        Spline floors.
    dtype
        Parameter and sampling dtype (default float64).
    backend
        ``"kernel"`` (compiled) or ``"reference"`` (pure torch, for tests/benchmarks).
    chunk_size
        Without autograd on the CPU, batches are processed in chunks of this many points:
        the subnets' temporaries then stay in cache and are reused from the heap instead
        of being fresh, page-faulting allocations (1.4x to 1.6x faster sampling at batch
        1e5, see benchmarks/RESULTS.md). Results do not depend on it.
    """

    def __init__(self, dims: int, *, bins: int = 10, condition_dims: int = 0,
                 blocks: int | None = None, layers: int = 3, units: int = 32,
                 activation: Callable[[], nn.Module] | None = None,
                 min_bin_width: float = 1e-3, min_bin_height: float = 1e-3,
                 min_derivative: float = 1e-3, dtype: torch.dtype = torch.float64,
                 backend: str = "kernel", chunk_size: int = 8192) -> None:
        super().__init__()
        if dims < 1:
            raise ValueError(f"dims must be at least 1, got {dims}")
        if condition_dims < 0:
            raise ValueError(f"condition_dims must be non-negative, got {condition_dims}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.dims = dims
        self.condition_dims = condition_dims
        self.chunk_size = chunk_size
        self.spline = SplineOptions(bins, min_bin_width, min_bin_height, min_derivative)
        self.blocks = nn.ModuleList(
            RQSCoupling(mask, self.spline, condition_dims=condition_dims, layers=layers,
                        units=units, activation=activation, backend=backend)
            for mask in binary_masks(dims, blocks)
        )
        self.to(dtype)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _check(self, x: torch.Tensor, name: str, condition: torch.Tensor | None, *,
               values: bool = True) -> None:
        """Types, shapes and devices of the arguments; with ``values``, that ``x`` is in
        [0, 1] (the one check of the points' values: the blocks map [0, 1] onto itself,
        so their splines skip theirs, a host synchronisation each on a GPU)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.dims:
            raise ValueError(f"{name}: expected shape (n, {self.dims}), got {tuple(x.shape)}")
        if x.dtype != self.dtype:
            raise TypeError(f"{name}: dtype {x.dtype} does not match the flow's {self.dtype}")
        if x.device != self.device:
            raise ValueError(f"{name}: on {x.device}, but the flow is on {self.device}")
        if values:
            check_unit_interval(x, name)
        if self.condition_dims == 0:
            if condition is not None:
                raise ValueError("condition: this flow was built with condition_dims=0")
            return
        if condition is None:
            raise ValueError(f"condition: required, shape (n, {self.condition_dims})")
        if condition.shape != (x.shape[0], self.condition_dims):
            raise ValueError(f"condition: expected shape ({x.shape[0]}, {self.condition_dims}),"
                             f" got {tuple(condition.shape)}")
        if condition.dtype != self.dtype or condition.device != self.device:
            raise TypeError(f"condition: expected {self.dtype} on {self.device}, got "
                            f"{condition.dtype} on {condition.device}")

    def _blocks(self, x: torch.Tensor, condition: torch.Tensor | None,
                inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        logdet = x.new_zeros(x.shape[0])
        for block in (reversed(self.blocks) if inverse else self.blocks):
            x, ld = block(x, condition, inverse=inverse, check=False)
            logdet = logdet + ld
        return x, logdet

    def _run(self, x: torch.Tensor, condition: torch.Tensor | None,
             inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n = x.shape[0]
        if torch.is_grad_enabled() or x.is_cuda or n <= self.chunk_size:
            return self._blocks(x, condition, inverse)
        out = torch.empty_like(x)
        logdet = x.new_empty(n)
        for start in range(0, n, self.chunk_size):
            part = slice(start, start + self.chunk_size)
            cond = None if condition is None else condition[part]
            out[part], logdet[part] = self._blocks(x[part], cond, inverse)
        return out, logdet

    def transform(self, z: torch.Tensor, condition: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map latent points ``z`` (n, d) to ``x``; returns ``(x, log|det dx/dz|)``."""
        self._check(z, "z", condition)
        return self._run(z, condition, inverse=False)

    def inverse(self, x: torch.Tensor, condition: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map ``x`` (n, d) back to the latent space; returns ``(z, log|det dz/dx|)``."""
        self._check(x, "x", condition)
        return self._run(x, condition, inverse=True)

    def log_prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """log q(x) of points ``x`` (n, d) in [0, 1]^d."""
        return self.inverse(x, condition)[1]

    def prob(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        """q(x) of points ``x`` (n, d)."""
        return self.log_prob(x, condition).exp()

    def sample(self, n: int, condition: torch.Tensor | None = None, *,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` points; returns ``(x, log q(x))``, both differentiable."""
        if n < 0:
            raise ValueError(f"n must be non-negative, got {n}")
        z = torch.rand(n, self.dims, dtype=self.dtype, device=self.device, generator=generator)
        self._check(z, "z", condition, values=False)  # torch.rand is in [0, 1)
        x, logdet = self._run(z, condition, inverse=False)
        return x, -logdet


def _fused_alike(flows: Sequence[Flow]) -> bool:
    """Whether the flows' blocks run fused on the CPU with the same masks, spline and
    dtype (and no condition): then :func:`log_prob_many` can take them together."""
    first = flows[0]
    for flow in flows:
        if (type(flow) is not Flow or flow.condition_dims or flow.device.type != "cpu"
                or flow.dtype != first.dtype
                or flow.dtype not in (torch.float32, torch.float64)
                or flow.spline != first.spline or len(flow.blocks) != len(first.blocks)):
            return False
        for block, ref in zip(flow.blocks, first.blocks, strict=True):
            assert isinstance(block, RQSCoupling) and isinstance(ref, RQSCoupling)
            if (not (block.fuse_subnet and block.backend == "kernel"
                     and fusable(block.subnet))
                    or block._cond_list != ref._cond_list
                    or block._trans_list != ref._trans_list):
                return False
    return True


def log_prob_many(flows: Sequence[Flow], xs: Sequence[torch.Tensor], *,
                  stacked: bool | None = None) -> list[torch.Tensor]:
    """``flows[i].log_prob(xs[i])`` for every i, the same values and gradients bit for
    bit on the CPU. Flows alike on the CPU (same masks, spline and dtype, fused blocks,
    no condition) run each coupling block for all of them in one autograd node
    (:func:`~madnis_py.flows.fused.fused_couplings`) instead of one per flow and block:
    a training step of many channels spent most of its flows' time in that per-call
    overhead. Flows alike on another device (a GPU) are evaluated stacked, each block's
    layers as batched matrix products (:mod:`madnis_py.flows.stacked`: the same values
    to rounding, a number of kernel launches that does not grow with the flows);
    ``stacked`` forces that (True) or flow by flow (False). Others, and points past a
    flow's ``chunk_size`` without autograd, go flow by flow."""
    if len(flows) != len(xs):
        raise ValueError(f"{len(flows)} flows and {len(xs)} point sets")
    for f, x in zip(flows, xs, strict=True):
        f._check(x, "x", None, values=False)
    # the points' values of all flows in one look: one host synchronisation on a GPU
    check_unit_intervals(xs, [f"x of flow {k}" for k in range(len(xs))])
    from madnis_py.flows.stacked import log_prob_stacked, stackable

    if stacked is None:
        stacked = (len(flows) > 1 and flows[0].device.type != "cpu"
                   and all(type(f) is Flow for f in flows) and stackable(flows))
    if stacked:
        return log_prob_stacked(flows, xs)
    if (len(flows) < 2 or not _fused_alike(flows)
            or (not torch.is_grad_enabled()
                and any(len(x) > f.chunk_size for f, x in zip(flows, xs, strict=True)))):
        return [f._run(x, None, inverse=True)[1] for f, x in zip(flows, xs, strict=True)]
    first = flows[0]
    points = list(xs)
    logdets = [x.new_zeros(x.shape[0]) for x in xs]
    for k in reversed(range(len(first.blocks))):
        ref = first.blocks[k]
        assert isinstance(ref, RQSCoupling)
        out = fused_couplings(points, [_block(f, k).subnet for f in flows],
                              ref._cond_list, ref._trans_list, first.spline, inverse=True)
        points = [y for y, _ in out]
        logdets = [total + ld for total, (_, ld) in zip(logdets, out, strict=True)]
    return logdets


def _block(flow: Flow, k: int) -> RQSCoupling:
    """Block ``k`` of ``flow``."""
    block = flow.blocks[k]
    assert isinstance(block, RQSCoupling)
    return block
