"""The CUDA kernels against the CPU kernels (run where a GPU is visible, skip otherwise)."""

import os
import shutil

import pytest
import torch

from madnis_py import Flow, _ext
from madnis_py.flows import SplineOptions, cuda_kernels_available, rqs

needs_gpu = pytest.mark.skipif(not cuda_kernels_available(), reason="no CUDA device")


def test_cuda_kernels_built_when_nvcc_present() -> None:
    if os.environ.get("MADNIS_PY_CUDA", "auto") == "0" or shutil.which("nvcc") is None:
        pytest.skip("nvcc not on PATH (or MADNIS_PY_CUDA=0): CPU-only build expected")
    assert _ext.WITH_CUDA, "nvcc is on PATH but madnis_py._ext was built without CUDA"


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("inverse", [False, True])
def test_cuda_matches_cpu(dtype: torch.dtype, inverse: bool) -> None:
    opts = SplineOptions(10)
    x = torch.rand(50_000, dtype=dtype)
    x[:2] = torch.tensor([0.0, 1.0])
    params = torch.randn(50_000, 31, dtype=dtype) * 3
    results = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_()
        pd = params.to(device).requires_grad_()
        y, ld = rqs(xd, pd, opts, inverse=inverse)
        (y + 0.5 * ld).sum().backward()
        results.append([t.detach().cpu() for t in (y, ld, xd.grad, pd.grad)])
    tol = 1e-12 if dtype == torch.float64 else 1e-4
    for cpu, gpu in zip(*results, strict=True):
        assert torch.allclose(gpu, cpu, rtol=tol, atol=tol)


@pytest.mark.cuda
@needs_gpu
def test_flow_on_cuda() -> None:
    flow = Flow(4).cuda()
    x, log_q = flow.sample(10_000)
    assert x.is_cuda
    assert torch.allclose(flow.log_prob(x), log_q, atol=1e-9)
    with pytest.raises(ValueError, match="x: entry"):
        flow.log_prob(x + 2)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_kernels_available() or torch.cuda.device_count() < 2,
                    reason="needs two CUDA devices")
def test_cuda_kernels_run_on_the_device_of_their_data() -> None:
    """The extension's runtime has its own current device (0): a spline on cuda:1 must
    launch there, on that device's stream, and agree with the CPU."""
    opts = SplineOptions(8)
    x = torch.rand(20_000, dtype=torch.float64)
    params = torch.randn(20_000, 25, dtype=torch.float64)
    want = rqs(x, params, opts)
    xd, pd = x.to("cuda:1").requires_grad_(), params.to("cuda:1").requires_grad_()
    y, ld = rqs(xd, pd, opts)
    (y + ld).sum().backward()
    assert y.device == torch.device("cuda:1") and xd.grad is not None
    for got, ref in zip((y, ld), want, strict=True):
        torch.testing.assert_close(got.detach().cpu(), ref, rtol=1e-12, atol=1e-12)
    assert torch.cuda.current_device() == 0  # the caller's device is restored
