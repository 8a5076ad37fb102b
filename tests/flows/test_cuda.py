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
@needs_gpu
def test_cuda_flow_checks_its_points_once() -> None:
    """On a GPU a flow's sample synchronises the host nowhere (torch.rand's points need
    no check, the blocks' splines skip theirs) and its density once (the entry check),
    counted by torch itself; a bad point still raises, and rqs still checks by default."""
    from madnis_py.flows.flow import log_prob_many
    from madnis_py.host_syncs import count_host_syncs

    flow = Flow(6).cuda()
    flow.sample(10)
    with count_host_syncs() as syncs:
        x, _ = flow.sample(10_000)
    assert syncs.cuda == 0 and syncs.total == 0, syncs.table()
    with count_host_syncs() as syncs:
        log_prob_many([flow, flow, flow], [x, x, x])
    assert syncs.cuda == 1, syncs.table()
    with pytest.raises(ValueError, match="x of flow 1: entry"):
        log_prob_many([flow, flow], [x, x - 1])
    params = torch.zeros(3, 31, dtype=torch.float64, device="cuda")
    with pytest.raises(ValueError, match="x: entry 1"):
        rqs(torch.tensor([0.5, 1.5, 0.2], dtype=torch.float64, device="cuda"), params)
    y, _ = rqs(torch.tensor([0.5, 1.5, 0.2], dtype=torch.float64, device="cuda"), params,
               check=False)  # trusted: the kernel clamps to [0, 1]
    assert float(y[1]) == 1.0


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
