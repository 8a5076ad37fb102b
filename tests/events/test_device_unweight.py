"""The accept/reject draw on the weights' device (madnis_py.events.device_unweight)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_py.events.device_unweight import accept_on_device
from madnis_py.events.unweight import Unweighter, accept

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _weights(n: int, device: str = "cpu") -> torch.Tensor:
    """Weights with zeros, a tail above the maximum used below and exact repeats."""
    gen = torch.Generator().manual_seed(3)
    w = torch.rand(n, generator=gen, dtype=torch.float64) ** 3 * 4.0
    w[::7] = 0.0
    return w.to(device)


def _check_against_its_uniforms(w: torch.Tensor, w_max: float, seed: int) -> None:
    """The accepted set is exactly ``u w_max < w`` for the generator's own uniforms, and
    the sums equal numpy's to rounding."""
    gen = torch.Generator(device=w.device).manual_seed(seed)
    u = torch.rand(w.shape, generator=torch.Generator(device=w.device).manual_seed(seed),
                   dtype=torch.float64, device=w.device).cpu().numpy()
    got = accept_on_device(w, w_max, gen)
    wn = w.cpu().numpy()
    want = np.flatnonzero(u * w_max < wn)
    np.testing.assert_array_equal(got.indices, want)
    assert got.indices.dtype == np.int64
    np.testing.assert_array_equal(got.weights, wn[want])
    assert got.n == len(wn) and len(got) == len(want) > 0
    np.testing.assert_allclose(got.total, wn.sum(), rtol=1e-12)
    np.testing.assert_allclose(got.excess, np.maximum(wn - w_max, 0).sum(), rtol=1e-12)
    assert got.excess > 0
    assert not np.any(wn[want] == 0)


def test_accepts_exactly_where_its_uniforms_fall_below_the_weights() -> None:
    _check_against_its_uniforms(_weights(50_000), 2.0, 11)


def test_accepts_with_probability_min_one_w_over_w_max() -> None:
    w = _weights(400_000)
    w_max = 2.0
    got = accept_on_device(w, w_max, torch.Generator().manual_seed(2))
    p = np.minimum(w.numpy() / w_max, 1.0)
    # the number accepted: a sum of Bernoulli draws of probabilities p
    assert abs(len(got) - p.sum()) < 5 * np.sqrt((p * (1 - p)).sum())
    # every point above w_max is accepted, none of weight 0
    above = np.flatnonzero(w.numpy() > w_max)
    assert np.isin(above, got.indices).all()
    # the host draw of the same weights accepts as many, within the same spread
    host = accept(w.numpy(), w_max, np.random.default_rng(2))
    assert abs(len(got) - len(host)) < 5 * np.sqrt(2 * (p * (1 - p)).sum())
    assert host.total == pytest.approx(got.total, rel=1e-12)
    assert host.excess == pytest.approx(got.excess, rel=1e-12)


def test_the_host_draw_is_the_unweighters() -> None:
    w = _weights(10_000).numpy()
    a = accept(w, 1.5, np.random.default_rng(4))
    b = Unweighter().unweight(w, np.random.default_rng(4), w_max=1.5)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_an_empty_batch_accepts_nothing() -> None:
    got = accept_on_device(torch.zeros(0, dtype=torch.float64), 1.0, torch.Generator())
    assert len(got) == 0 and got.n == 0 and got.total == 0.0 and got.excess == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_bad_weights_are_one_error(bad: float) -> None:
    w = _weights(100)
    w[17] = bad
    with pytest.raises(ValueError, match="1 of 100 weights are not finite or are negative"):
        accept_on_device(w, 1.0, torch.Generator())


def test_bad_arguments_are_named() -> None:
    w = _weights(10)
    with pytest.raises(ValueError, match="w_max must be finite and positive"):
        accept_on_device(w, 0.0, torch.Generator())
    with pytest.raises(TypeError, match="float64"):
        accept_on_device(w.float(), 1.0, torch.Generator())
    with pytest.raises(ValueError, match="1D"):
        accept_on_device(w.reshape(2, 5), 1.0, torch.Generator())


@pytest.mark.cuda
@needs_gpu
def test_cuda_accepts_on_the_gpu() -> None:
    w = _weights(200_000, "cuda")
    _check_against_its_uniforms(w, 2.0, 12)
    with pytest.raises(ValueError, match="the generator is on cpu"):
        accept_on_device(w, 1.0, torch.Generator())
