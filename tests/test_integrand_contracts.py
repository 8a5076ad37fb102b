"""Contracts of every multi-channel integrand: each built-in process, every channel, and
the toy ``RidgeAndPeak``.

Shapes and dtypes of :class:`IntegrandBatch` and of the torch view ``TorchChannels``,
finite non-negative values, the channel prior normalised over channels, the subprocess
split summing to ``f``, and the one exact cross-channel identity: an event reached
through two channels has the same differential cross section ``f / w`` and the same prior
(``w`` the channel's phase-space weight).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import torch

from madnis_py.integrand import Integrand, IntegrandBatch, TorchChannels
from madnis_py.physics import builtin_processes
from madnis_py.testfunctions import RidgeAndPeak

N = 256
PROCESSES = builtin_processes()


@functools.cache
def integrand(name: str) -> Integrand:
    return Integrand(name)


def _batch(name: str, channel: int, seed: int, **kw: bool) -> tuple[np.ndarray, IntegrandBatch]:
    f = integrand(name)
    x = np.random.default_rng(seed).random((N, f.dims(channel)))
    return x, f(x, channel, **kw)


@pytest.mark.parametrize("name", PROCESSES)
def test_batch_shapes_finite_values_and_normalised_prior(name: str) -> None:
    f = integrand(name)
    n_particles = f.process.n_particles
    n_sub = len(f.process.subprocesses)
    assert f.n_channels == len(f.process.channels) == len(f.channel_names())
    for channel in range(f.n_channels):
        label = f"{name} channel {channel}"
        _, b = _batch(name, channel, seed=channel, details=True)
        assert b.f.shape == (N,) and b.f.dtype == np.float64, label
        assert b.momenta.shape == (N, n_particles, 4), label
        assert b.x1x2.shape == (N, 2) and b.phase_space_weight.shape == (N,), label
        assert b.passed.shape == (N,) and b.passed.dtype == bool, label
        assert np.all(np.isfinite(b.f)) and np.all(b.f >= 0), label
        assert b.passed.any() and (b.f > 0).any(), label
        assert np.all(b.f[~b.passed] == 0), label
        assert np.all(b.phase_space_weight[b.passed] > 0), label
        assert b.prior is not None and b.prior.shape == (N, f.n_channels), label
        assert np.all(np.isfinite(b.prior)) and np.all(b.prior >= 0), label
        live = b.f > 0
        np.testing.assert_allclose(b.prior[live].sum(axis=1), 1.0, rtol=1e-12, err_msg=label)
        assert np.all(b.prior[~live] == 0), label
        assert b.subprocess_f is not None and b.subprocess_f.shape == (N, n_sub), label
        assert np.all(b.subprocess_f >= 0), label
        np.testing.assert_allclose(b.subprocess_f.sum(axis=1), b.f, rtol=1e-12, atol=0,
                                   err_msg=label)
        assert b.scale is not None and b.alpha_s is not None, label
        assert np.all(b.scale[b.passed] > 0) and np.all(np.isfinite(b.alpha_s)), label


@pytest.mark.parametrize("name", PROCESSES)
def test_without_prior_and_details_the_values_are_the_same(name: str) -> None:
    f = integrand(name)
    x, full = _batch(name, 0, seed=5, details=True)
    plain = f(x, 0, prior=False)
    assert plain.prior is None and plain.subprocess_f is None and plain.scale is None
    np.testing.assert_array_equal(plain.f, full.f)
    np.testing.assert_array_equal(plain.momenta, full.momenta)


@pytest.mark.parametrize("name", PROCESSES)
def test_an_event_has_one_cross_section_and_one_prior_whatever_its_channel(name: str) -> None:
    f = integrand(name)
    checked = 0
    for a, b in itertools.permutations(range(f.n_channels), 2):
        x, batch_a = _batch(name, a, seed=10 * a + b)
        r_b, w_b = f.mappings[b].inverse(batch_a.momenta)
        batch_b = f(r_b, b)
        both = (batch_a.f > 0) & (w_b > 0) & (batch_b.f > 0)
        # Cut decisions on events at a cut edge may differ by a rounding of the momenta.
        assert np.mean(batch_a.passed[w_b > 0] != batch_b.passed[w_b > 0]) < 0.02
        label = f"{name}: channel {a} -> {b}"
        np.testing.assert_allclose(batch_b.phase_space_weight[both], w_b[both], rtol=1e-7,
                                   err_msg=label)
        np.testing.assert_allclose(batch_b.f[both] / w_b[both],
                                   batch_a.f[both] / batch_a.phase_space_weight[both],
                                   rtol=1e-6, err_msg=label)
        assert batch_a.prior is not None and batch_b.prior is not None
        np.testing.assert_allclose(batch_b.prior[both], batch_a.prior[both], rtol=1e-6,
                                   atol=1e-12, err_msg=label)
        checked += int(both.sum())
    assert checked >= N // 4, f"{name}: only {checked} events reached by two channels"


@pytest.mark.parametrize("name", PROCESSES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_channels_contract(name: str, dtype: torch.dtype) -> None:
    f = integrand(name)
    channels = TorchChannels(f)
    assert channels.n_channels == f.n_channels
    n_final = f.process.n_particles - 2
    assert channels.feature_dims == 4 * n_final + (2 if f.beams.hadronic else 0)
    for channel in range(f.n_channels):
        x_np = np.random.default_rng(channel).random((N, f.dims(channel)))
        x = torch.from_numpy(x_np).to(dtype).requires_grad_(True)
        assert channels.dims(channel) == f.dims(channel)
        values, features, prior = channels(x, channel)
        assert values.shape == (N,) and values.dtype == dtype and not values.requires_grad
        assert features.shape == (N, channels.feature_dims) and features.dtype == dtype
        assert prior is not None and prior.shape == (N, f.n_channels) and prior.dtype == dtype
        assert torch.isfinite(values).all() and torch.isfinite(features).all()
        ref = f(x.detach().double().numpy(), channel)
        np.testing.assert_allclose(values.double().numpy(), ref.f,
                                   rtol=1e-6 if dtype == torch.float32 else 0)
        # Features: final-state momenta over sqrt(s) (energies in [0, 1]), then x1 x2.
        mom = features[:, :4 * n_final].reshape(N, n_final, 4).double().numpy()
        np.testing.assert_allclose(mom * f.beams.sqrt_s, ref.momenta[:, 2:], rtol=1e-6,
                                   atol=1e-9 * f.beams.sqrt_s)
        assert np.all((mom[..., 0] >= 0) & (mom[..., 0] <= 1 + 1e-6))


# ---- the toy multi-channel integrand (madnis_py.testfunctions) ----------------------


def _gauss_legendre(breaks: np.ndarray, order: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights of composite Gauss-Legendre on the panels between ``breaks``."""
    t, w = np.polynomial.legendre.leggauss(order)
    lo, hi = breaks[:-1, None], breaks[1:, None]
    nodes = (lo + hi) / 2 + (hi - lo) / 2 * t
    return nodes.ravel(), ((hi - lo) / 2 * w).ravel()


def _panels(*peaks: float, uniform: int = 21) -> np.ndarray:
    """Break points on [0, 1]: ``uniform`` equidistant ones, and 40 graded geometrically
    towards each peak."""
    parts = [np.linspace(0.0, 1.0, uniform)]
    for p in peaks:
        d = np.geomspace(1e-8, 1.0, 40)
        parts += [p - d, p + d]
    b = np.unique(np.concatenate(parts))
    return b[(b >= 0) & (b <= 1)]


@pytest.mark.parametrize("channel", [0, 1])
def test_ridge_and_peak_contract_and_each_channel_integrates_to_the_exact_value(
        channel: int) -> None:
    toy = RidgeAndPeak()
    x = torch.from_numpy(np.random.default_rng(channel).random((N, toy.dims(channel))))
    values, features, prior = toy(x, channel)
    assert values.shape == (N,) and features.shape == (N, 2) and prior.shape == (N, 2)
    assert torch.isfinite(values).all() and (values > 0).all()
    torch.testing.assert_close(prior.sum(dim=1), torch.ones(N, dtype=torch.float64),
                               rtol=1e-14, atol=0)
    # Channel-independent features and prior: the same y seen from the other channel.
    torch.testing.assert_close(prior, toy.prior(features), rtol=0, atol=0)
    # Each channel alone integrates to the exact value: quadrature in x, with the panels
    # graded towards the peak and the ridge as they sit in this channel's coordinates
    # (channel 0 widens the ridge at y0 = 0.3, channel 1 flattens the peak at y1 = 0).
    nx, wx = _gauss_legendre(_panels(uniform=101) if channel == 0 else _panels(0.3))
    ny, wy = _gauss_legendre(_panels(0.0) if channel == 0 else _panels())
    grid = torch.from_numpy(np.stack(np.meshgrid(nx, ny, indexing="ij"), -1).reshape(-1, 2))
    f = toy(grid, channel)[0].numpy().reshape(len(nx), len(ny))
    value = float(wx @ f @ wy)
    assert value == pytest.approx(toy.exact, rel=1e-9)
    with pytest.raises(IndexError, match="channel 2"):
        toy(x, 2)
