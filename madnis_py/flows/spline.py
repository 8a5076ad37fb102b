"""Rational-quadratic spline on [0, 1] as a torch autograd Function over the kernels.

The spline of Durkan et al. (arXiv:1906.04032) with K bins maps each point with its
own raw parameters (network outputs) of length 3K + 1, laid out as
``[widths (K) | heights (K) | knot derivatives (K + 1)]``. Normalisation (softmax with
minimum bin size, shifted softplus with minimum derivative, knot cumsum) is fused into
the compiled kernels, forward and backward. Raw parameters of zero give the identity.

CPU tensors reach the kernels as numpy views, CUDA tensors as device pointers with
torch's current stream; the extension never links against torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from madnis_py._core import ext

__all__ = ["SplineOptions", "rqs", "check_unit_interval", "check_unit_intervals",
           "cuda_kernels_available"]


@dataclass(frozen=True)
class SplineOptions:
    """Shape of the spline: bin count and the floors that keep it invertible.

    Parameters
    ----------
    bins
        Number of bins K (1 to ``madnis_py._ext.MAX_BINS``).
    min_width, min_height
        Smallest bin width/height; must satisfy ``bins * min < 1``.
    min_derivative
        Smallest slope at the knots, in (0, 1).
    """

    bins: int = 10
    min_width: float = 1e-3
    min_height: float = 1e-3
    min_derivative: float = 1e-3

    def __post_init__(self) -> None:
        if not 1 <= self.bins <= ext.MAX_BINS:
            raise ValueError(f"bins must be in [1, {ext.MAX_BINS}], got {self.bins}")
        for name in ("min_width", "min_height"):
            value = getattr(self, name)
            if not (value > 0 and value * self.bins < 1):
                raise ValueError(f"{name} must be in (0, 1/bins), got {value}")
        if not 0 < self.min_derivative < 1:
            raise ValueError(f"min_derivative must be in (0, 1), got {self.min_derivative}")

    @property
    def params_per_dim(self) -> int:
        """Raw parameters per transformed dimension, 3K + 1."""
        return 3 * self.bins + 1

    def kernel_kwargs(self) -> dict[str, float | int]:
        return {"bins": self.bins, "min_width": self.min_width,
                "min_height": self.min_height, "min_derivative": self.min_derivative}


def cuda_kernels_available() -> bool:
    """True when the extension was built with CUDA and a device is visible."""
    return bool(ext.WITH_CUDA) and ext.cuda_device_count() > 0 and torch.cuda.is_available()


def check_unit_interval(x: torch.Tensor, name: str) -> None:
    """Raise ValueError if any entry of ``x`` is outside [0, 1] or NaN (one host
    synchronisation on a GPU)."""
    bad = ~((x >= 0) & (x <= 1))
    if bool(bad.any()):
        index = int(torch.nonzero(bad.reshape(-1))[0])
        raise ValueError(f"{name}: entry {index} = {x.reshape(-1)[index].item()!r} "
                         "is outside [0, 1]")


def check_unit_intervals(xs: Sequence[torch.Tensor], names: Sequence[str]) -> None:
    """:func:`check_unit_interval` of several tensors (of one device) with one host
    synchronisation on a GPU instead of one each; the error names the first bad one."""
    if not xs:
        return
    bad = torch.stack([(~((x >= 0) & (x <= 1))).any() for x in xs])
    if bool(bad.any()):
        k = int(torch.nonzero(bad)[0])
        check_unit_interval(xs[k], names[k])


def _numpy(t: torch.Tensor) -> np.ndarray:
    """Zero-copy numpy view of a CPU tensor."""
    return t.detach().numpy()


def _run_forward(x: torch.Tensor, params: torch.Tensor, opts: SplineOptions,
                 inverse: bool, check: bool) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.empty_like(x)
    logdet = torch.empty_like(x)
    if x.is_cuda:
        if check:
            check_unit_interval(x, "x")
        with torch.cuda.device(x.device):
            ext.rqs_forward_cuda(
                x.data_ptr(), params.data_ptr(), y.data_ptr(), logdet.data_ptr(), x.numel(),
                str(x.dtype).removeprefix("torch."), inverse=inverse,
                stream=torch.cuda.current_stream(x.device).cuda_stream, **opts.kernel_kwargs())
    else:
        ext.rqs_forward(_numpy(x), _numpy(params), _numpy(y), _numpy(logdet), inverse=inverse,
                        threads=torch.get_num_threads(), **opts.kernel_kwargs())
    return y, logdet


def _run_backward(x: torch.Tensor, params: torch.Tensor, grad_y: torch.Tensor,
                  grad_logdet: torch.Tensor, opts: SplineOptions,
                  inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    grad_x = torch.empty_like(x)
    grad_params = torch.empty_like(params)
    if x.is_cuda:
        with torch.cuda.device(x.device):
            ext.rqs_backward_cuda(
                x.data_ptr(), params.data_ptr(), grad_y.data_ptr(), grad_logdet.data_ptr(),
                grad_x.data_ptr(), grad_params.data_ptr(), x.numel(),
                str(x.dtype).removeprefix("torch."), inverse=inverse,
                stream=torch.cuda.current_stream(x.device).cuda_stream, **opts.kernel_kwargs())
    else:
        ext.rqs_backward(_numpy(x), _numpy(params), _numpy(grad_y), _numpy(grad_logdet),
                         _numpy(grad_x), _numpy(grad_params), inverse=inverse,
                         threads=torch.get_num_threads(), **opts.kernel_kwargs())
    return grad_x, grad_params


class _RQSFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, opts, inverse, check):  # type: ignore[no-untyped-def]
        y, logdet = _run_forward(x, params, opts, inverse, check)
        ctx.save_for_backward(x, params)
        ctx.opts = opts
        ctx.inverse = inverse
        return y, logdet

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y, grad_logdet):  # type: ignore[no-untyped-def]
        x, params = ctx.saved_tensors
        grad_x, grad_params = _run_backward(x, params, grad_y.contiguous(),
                                            grad_logdet.contiguous(), ctx.opts, ctx.inverse)
        return grad_x, grad_params, None, None, None


def _validate(x: torch.Tensor, params: torch.Tensor, opts: SplineOptions) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not isinstance(params, torch.Tensor):
        raise TypeError(f"params: expected a torch.Tensor, got {type(params).__name__}")
    if x.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"x: expected float32 or float64, got {x.dtype}")
    if params.dtype != x.dtype:
        raise TypeError(f"params: dtype {params.dtype} does not match x's {x.dtype}")
    if params.device != x.device:
        raise ValueError(f"params: on {params.device}, but x is on {x.device}")
    if x.dim() != 1:
        raise ValueError(f"x: expected shape (n,), got {tuple(x.shape)}")
    if params.shape != (x.shape[0], opts.params_per_dim):
        raise ValueError(f"params: expected shape ({x.shape[0]}, {opts.params_per_dim}) "
                         f"for {opts.bins} bins, got {tuple(params.shape)}")
    for name, t in (("x", x), ("params", params)):
        if not t.is_contiguous():
            raise ValueError(f"{name}: tensor must be contiguous (call .contiguous())")
    if x.is_cuda and not ext.WITH_CUDA:
        raise RuntimeError("x is a CUDA tensor but madnis_py._ext was built without CUDA "
                           "(rebuild with nvcc on PATH or MADNIS_PY_CUDA=1)")
    if not (x.is_cuda or x.device.type == "cpu"):
        raise ValueError(f"x: unsupported device {x.device}")


def rqs(x: torch.Tensor, params: torch.Tensor, options: SplineOptions | None = None, *,
        inverse: bool = False, check: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply the spline (or its inverse) pointwise, with its log-Jacobian.

    Parameters
    ----------
    x
        Points in [0, 1], shape ``(n,)``, float32 or float64, contiguous.
    params
        Raw parameters, shape ``(n, 3K + 1)``, same dtype and device as ``x``.
    options
        Bin count and floors; default ``SplineOptions()`` (10 bins).
    inverse
        Apply the inverse spline instead.
    check
        Check that ``x`` is in [0, 1]. The CPU kernels check every point as they go; for
        CUDA tensors the check is one host synchronisation, which a caller that knows
        its points are inside (a :class:`~madnis_py.flows.Flow` after its own entry
        check: the spline maps [0, 1] onto [0, 1]) skips with ``check=False``; the CUDA
        kernels clamp to [0, 1] either way.

    Returns
    -------
    y, logdet
        The image ``(n,)`` and ``log|dy/dx|`` ``(n,)``, differentiable with respect to
        ``x`` and ``params``.

    Raises
    ------
    TypeError, ValueError
        On mismatched dtypes, shapes or devices, non-contiguous tensors, or points
        outside [0, 1]; the message names the argument.
    """
    opts = options if options is not None else SplineOptions()
    _validate(x, params, opts)
    return _RQSFunction.apply(x, params, opts, inverse, check)  # type: ignore[no-untyped-call,no-any-return]
