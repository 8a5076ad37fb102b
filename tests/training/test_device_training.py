"""The integrator on a torch device: the VEGAS base map in torch (GridMap), device
checks, checkpoints that move between devices, and (``cuda``) whole runs on a GPU
against the CPU and the analytic cross section."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import vegas

from madnis_py.device import DeviceError, resolve_device
from madnis_py.training import Integrator
from madnis_py.training.channel_sampler import GridMap
from madnis_py.training.checkpoint import restore_generator

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _vegas_map(ninc: tuple[int, ...], seed: int = 0) -> vegas.AdaptiveMap:
    rng = np.random.default_rng(seed)
    grids = []
    for n in ninc:
        inner = np.sort(rng.uniform(0.0, 1.0, n - 1)) ** 2
        grids.append(np.concatenate([[0.0], inner, [1.0]]))
    return vegas.AdaptiveMap(grids)


def _vegas(vmap: vegas.AdaptiveMap, direction: str,
           points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    out = np.empty_like(points)
    jac = np.empty(len(points))
    getattr(vmap, direction)(points, out, jac)
    return out, np.log(jac)


def test_grid_map_is_vegas_map() -> None:
    vmap = _vegas_map((40, 40, 40))
    gm = GridMap(vmap.extract_grid(), "cpu")
    rng = np.random.default_rng(1)
    y = rng.random((5000, 3))
    y[:3] = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [3 / 40, 0.5, 1.0]]  # ends, increment edges
    x, log_jac = _vegas(vmap, "map", y)
    xt, log_jac_t = gm.map(torch.from_numpy(y))
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(log_jac_t.numpy(), log_jac, rtol=1e-12, atol=1e-13)
    # the inverse, with points on the grid's edges and outside it (vegas clamps them)
    x[:3] = [[-0.1, 0.0, 2.0], [1.0, 1.0, 1.0], [vmap.grid[0, 3], vmap.grid[1, 10], 0.5]]
    y_back, log_jac = _vegas(vmap, "invmap", x)
    yt, log_jac_t = gm.invmap(torch.from_numpy(x))
    np.testing.assert_allclose(yt.numpy(), y_back, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(log_jac_t.numpy(), log_jac, rtol=1e-12, atol=1e-13)


def test_grid_map_with_increments_differing_by_dimension() -> None:
    """vegas allows it; its own invmap then searches the padded rows of its grid array
    (memory it never wrote) and is wrong, so the inverse is checked as the inverse."""
    vmap = _vegas_map((7, 50, 1))
    gm = GridMap(vmap.extract_grid(), "cpu")
    y = np.random.default_rng(2).random((5000, 3))
    x, log_jac = _vegas(vmap, "map", y)
    xt, log_jac_t = gm.map(torch.from_numpy(y))
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(log_jac_t.numpy(), log_jac, rtol=1e-12, atol=1e-13)
    yt, log_jac_back = gm.invmap(xt)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(log_jac_back.numpy(), log_jac, rtol=1e-12, atol=1e-13)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="expected 'cpu', 'cuda'"):
        resolve_device("gpu")
    with pytest.raises(DeviceError, match="only 'cpu' and 'cuda'"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="without CUDA|no CUDA device is visible") as err:
            resolve_device("cuda")
        assert "\n" not in str(err.value) and "use device 'cpu'" in str(err.value)
    else:
        with pytest.raises(DeviceError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible")
def test_integrator_refuses_a_missing_gpu_before_any_work() -> None:
    from madnis_py.testfunctions import RidgeAndPeak

    with pytest.raises(DeviceError, match="'cuda'"):
        Integrator(RidgeAndPeak(), feature_dims=2, device="cuda")


def test_rng_state_of_another_device_reseeds_deterministically() -> None:
    cpu = torch.Generator().manual_seed(3)
    state = cpu.get_state()
    other = torch.Generator()
    restore_generator(other, state, "cpu")
    assert torch.equal(torch.rand(4, generator=other), torch.rand(4, generator=cpu))
    philox = torch.tensor(list(range(16)), dtype=torch.uint8)  # a CUDA generator's size
    a, b = torch.Generator(), torch.Generator()
    restore_generator(a, philox, "cuda")
    restore_generator(b, philox, "cuda")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_checkpoints_record_the_generator_device(tmp_path: Path) -> None:
    from madnis_py.testfunctions import RidgeAndPeak

    mc = Integrator(RidgeAndPeak(), feature_dims=2, flow_options={"bins": 4}, seed=1)
    mc.save(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["generator_device"] == "cpu"
    loaded = Integrator.load(tmp_path / "c.pt", RidgeAndPeak(), device="cpu")
    assert torch.equal(loaded.generator.get_state(), mc.generator.get_state())


def _card(directory: Path, process: str) -> Path:
    path = directory / "card.toml"
    path.write_text(f"""
[run]
process = "{process}"
seed = 3
nevents = 1000

[training]
steps = 20
batch = 2048
vegas = true
vegas_iterations = 4
vegas_points = 4000
warmup = 4

[integration]
points = 100000
iterations = 4

[output]
plots = false
""")
    return path


# -- on a GPU --------------------------------------------------------------------------


def _trained(device: str, seed: int = 2) -> Integrator:
    from madnis_py.integrand import Integrand

    mc = Integrator(Integrand("ee_mumu", sqrt_s=500.0), seed=seed, warmup=2,
                    flow_options={"bins": 8}, device=device)
    mc.pretrain_vegas(nitn=4, neval=4000)  # the base maps travel as grids
    mc.train(30, batch=2048)
    return mc


@pytest.mark.cuda
@needs_gpu
def test_cuda_integrator_gives_the_cpu_and_analytic_cross_section() -> None:
    from tests.test_integrand import ee_mumu_sigma

    exact = ee_mumu_sigma(500.0)
    gpu = _trained("cuda")
    assert all(p.is_cuda for p in gpu.flows.parameters())
    r_gpu = gpu.integrate(200_000, iterations=4)
    r_cpu = _trained("cpu").integrate(200_000, iterations=4)
    assert abs(r_gpu.value - exact) < 3 * r_gpu.error
    assert abs(r_gpu.value - r_cpu.value) < 3 * math.hypot(r_gpu.error, r_cpu.error)


def test_an_integrand_of_another_device_is_one_error() -> None:
    """A DeviceChannels built for one device and an integrator on another: one error
    before any work (on a machine without a GPU, the "meta" device stands for it)."""
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.integrand import Integrand

    channels = DeviceChannels(Integrand("drell_yan"), "meta")
    with pytest.raises(ValueError, match="evaluates on meta, the integrator runs on cpu"):
        Integrator(channels, feature_dims=channels.feature_dims, device="cpu")


@pytest.mark.cuda
@needs_gpu
def test_cuda_integrand_of_another_device_is_one_error() -> None:
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.integrand import Integrand

    channels = DeviceChannels(Integrand("ee_mumu", sqrt_s=500.0), "cpu")
    with pytest.raises(ValueError, match="evaluates on cpu, the integrator runs on cuda"):
        Integrator(channels, feature_dims=channels.feature_dims, device="cuda")


@pytest.mark.cuda
@needs_gpu
def test_cuda_checkpoint_generates_on_the_cpu_and_back(tmp_path: Path) -> None:
    from madnis_py.integrand import Integrand

    gpu = _trained("cuda")
    gpu.save(tmp_path / "gpu.pt")
    ig = Integrand("ee_mumu", sqrt_s=500.0)
    cpu = Integrator.load(tmp_path / "gpu.pt", ig, device="cpu")
    assert all(p.device.type == "cpu" for p in cpu.flows.parameters())
    # the same flows: equal densities of the same points
    x = torch.rand(1000, 2, dtype=torch.float64)
    for c in range(gpu.n_channels):
        torch.testing.assert_close(cpu.samplers[c].log_prob(x),
                                   gpu.samplers[c].log_prob(x.cuda()).cpu(), rtol=1e-12,
                                   atol=1e-12)
    w = cpu.random_batch(20_000).weights()
    assert np.isfinite(w).all() and w.mean() > 0
    cpu.save(tmp_path / "cpu.pt")
    back = Integrator.load(tmp_path / "cpu.pt", ig, device="cuda")
    assert back.random_batch(20_000).samples[0].weight.is_cuda


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("process", ["ee_mumu", "drell_yan"])
def test_cuda_run_command(tmp_path: Path, process: str,
                          monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    """`madnis-py run --device cuda` end to end (MADNIS_PY_CUDA_RUN=1): the cross section
    within 3 sigma of the CPU run, and LHE events that pass the checks."""
    from madnis_py.cli import main
    from madnis_py.events import check_lhe

    monkeypatch.setenv("MADNIS_PY_CUDA_RUN", "1")
    results = {}
    for device in ("cpu", "cuda"):
        d = tmp_path / device
        d.mkdir()
        card = _card(d, process)
        assert main(["run", str(card), "--device", device, "--json", "--quiet", "--output",
                     str(d / "out")]) == 0
        results[device] = json.loads(capsys.readouterr().out)
        check_lhe(next((d / "out").glob("**/*.lhe*")))
    a, b = results["cpu"], results["cuda"]
    assert abs(a["sigma_pb"] - b["sigma_pb"]) < 3 * math.hypot(a["error_pb"], b["error_pb"])


def test_run_device_cuda_without_a_gpu_is_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from madnis_py.cli import main

    card = _card(tmp_path, "ee_mumu")
    code = main(["run", str(card), "--device", "cuda", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "device" in err[0] and "'cuda'" in err[0]
    if not torch.cuda.is_available():
        assert "CUDA" in err[0] and "use device 'cpu'" in err[0]
    elif os.environ.get("MADNIS_PY_CUDA_RUN") != "1":
        assert "MADNIS_PY_CUDA_RUN=1" in err[0]
    assert not (tmp_path / "out").exists()  # refused before any work
