"""Pure-torch reference of the rational-quadratic spline (arXiv:1906.04032).

The same function as the compiled kernels (same parameter layout, normalisation and
bin search; see :mod:`madnis_py.flows.spline`), written with plain torch operations so
autograd differentiates it. It is the baseline for tests and benchmarks, not the fast
path.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from madnis_py.flows.spline import SplineOptions, check_unit_interval

__all__ = ["rqs_reference"]


def _straight_clamp(v: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] against rounding without cutting the gradient (as the kernels do)."""
    return v - (v - v.clamp(0.0, 1.0)).detach()


def _knots(raw: torch.Tensor, min_size: float) -> torch.Tensor:
    bins = raw.shape[-1]
    sizes = min_size + (1 - min_size * bins) * torch.softmax(raw, dim=-1)
    inner = torch.cumsum(sizes[:, :-1], dim=-1)
    zero = torch.zeros_like(sizes[:, :1])
    return torch.cat([zero, inner, zero + 1.0], dim=-1)


def rqs_reference(x: torch.Tensor, params: torch.Tensor, options: SplineOptions | None = None,
                  *, inverse: bool = False, check: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference spline: same signature and results as :func:`madnis_py.flows.rqs`."""
    if check:
        check_unit_interval(x, "x")
    opts = options if options is not None else SplineOptions()
    K = opts.bins
    xknots = _knots(params[:, :K], opts.min_width)
    yknots = _knots(params[:, K:2 * K], opts.min_height)
    shift = math.log(math.expm1(1.0 - opts.min_derivative))
    derivs = opts.min_derivative + F.softplus(params[:, 2 * K:] + shift, threshold=30.0)

    search = yknots if inverse else xknots
    k = torch.searchsorted(search[:, 1:-1].contiguous(), x[:, None].detach(), right=True)
    xk = xknots.gather(1, k)[:, 0]
    wk = xknots.gather(1, k + 1)[:, 0] - xk
    yk = yknots.gather(1, k)[:, 0]
    hk = yknots.gather(1, k + 1)[:, 0] - yk
    d0 = derivs.gather(1, k)[:, 0]
    d1 = derivs.gather(1, k + 1)[:, 0]
    s = hk / wk
    c = d1 + d0 - 2 * s

    edge = (x == 0) | (x == 1)
    if inverse:
        dy = x - yk
        qa = hk * (s - d0) + dy * c
        qb = hk * d0 - dy * c
        qc = -s * dy
        disc = (qb * qb - 4 * qa * qc).clamp(min=0.0)
        xi = _straight_clamp(2 * qc / (-qb - torch.sqrt(disc)))
        # exact end points, as in the kernels (value pinned, gradient kept)
        xi = torch.where(edge, xi - (xi - x).detach(), xi)
    else:
        xi = _straight_clamp((x - xk) / wk)

    th = xi * (1 - xi)
    denom = s + c * th
    slope_num = d1 * xi**2 + 2 * s * th + d0 * (1 - xi) ** 2
    logdet = 2 * torch.log(s) + torch.log(slope_num) - 2 * torch.log(denom)
    # exact endpoints, as in the kernels (the value only; gradients flow unchanged)
    if inverse:
        out = xk + wk * xi
        return _straight_clamp(torch.where(edge, out - (out - x).detach(), out)), -logdet
    y = yk + hk * (s * xi**2 + d0 * th) / denom
    return _straight_clamp(torch.where(edge, y - (y - x).detach(), y)), logdet
