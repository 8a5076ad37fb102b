"""The CUDA phase-space kernels against the CPU loops (run where a GPU is visible)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_py.flows import cuda_kernels_available
from madnis_py.phasespace import Beams, ChannelMapping, Rambo
from tests.phasespace.conftest import topologies

needs_gpu = pytest.mark.skipif(not cuda_kernels_available(), reason="no CUDA device")


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("hadronic", [False, True])
def test_cuda_channels_match_cpu(hadronic: bool) -> None:
    rng = np.random.default_rng(0)
    for name, topo in topologies(5).items():
        topo = type(topo)(s_channel=topo.s_channel, t_channel=topo.t_channel, name=name,
                          min_shat=100.0)
        mapping = ChannelMapping(topo, [0.0, 0.0, 0.0, 4.7, 4.7],
                                 Beams(13000.0 if hadronic else 500.0, hadronic))
        r = rng.random((20_000, mapping.dims))
        r[0, 0] = np.nan
        cpu = mapping.map(r)
        gpu = mapping.map(torch.from_numpy(r).cuda())
        assert gpu.n_outside == cpu.n_outside
        # Same code, different libm: a few ulp per operation.
        np.testing.assert_allclose(gpu.weight.cpu().numpy(), cpu.weight, rtol=1e-10)
        np.testing.assert_allclose(gpu.momenta.cpu().numpy(), cpu.momenta, rtol=0,
                                   atol=1e-10 * mapping.beams.sqrt_s)
        back_cpu, w_cpu = mapping.inverse(cpu.momenta)
        back_gpu, w_gpu = mapping.inverse(torch.from_numpy(cpu.momenta).cuda())
        np.testing.assert_allclose(back_gpu.cpu().numpy(), back_cpu, atol=1e-9)
        np.testing.assert_allclose(w_gpu.cpu().numpy(), w_cpu, rtol=1e-9)


@pytest.mark.cuda
@needs_gpu
def test_cuda_rambo_matches_cpu() -> None:
    rambo = Rambo([173.0, 173.0, 0.0, 0.0], Beams(1000.0))
    r = np.random.default_rng(1).random((20_000, rambo.dims))
    cpu = rambo.map(r)
    gpu = rambo.map(torch.from_numpy(r).cuda())
    np.testing.assert_allclose(gpu.weight.cpu().numpy(), cpu.weight, rtol=1e-10)
    np.testing.assert_allclose(gpu.momenta.cpu().numpy(), cpu.momenta, atol=1e-9)


@pytest.mark.cuda
@pytest.mark.skipif(not cuda_kernels_available() or torch.cuda.device_count() < 2,
                    reason="needs two CUDA devices")
def test_cuda_maps_run_on_the_device_of_their_data() -> None:
    rambo = Rambo([0.0, 0.0, 0.0], Beams(500.0))
    r = np.random.default_rng(2).random((5_000, rambo.dims))
    gpu = rambo.map(torch.from_numpy(r).to("cuda:1"))
    assert gpu.momenta.device == torch.device("cuda:1")
    np.testing.assert_allclose(gpu.momenta.cpu().numpy(), rambo.map(r).momenta, atol=1e-9)
