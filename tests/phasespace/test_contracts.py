"""Contracts every phase-space ``Mapping`` and invariant sampler keeps (zuko-style sweep).

Run over every mapping kind (each channel type of ``tests/phasespace/conftest.py``,
massless and massive, lepton and hadron beams, RAMBO, and every channel of every built-in
process): output shapes and dtypes for numpy and torch input, kinematics, finite
non-negative weights, the inverse where one exists, and the weight against a
finite-difference Jacobian in float64.

The Jacobian check needs no phase-space chart: for two channels A and B of the same final
state, ``w = dPhi / dr`` in both, so ``w_A(r_A) / w_B(r_B) = |det dr_B / dr_A|`` along
``r_B = inverse_B(map_A(r_A))``. Both ways round: a point A samples near its own peak
may sit at the edge of B's cube, where differences of r_B lose their digits.

The mappings are compiled and not torch-differentiable (they take no parameters and
return no graph); the contract is that a tensor requiring gradients goes in and plain
float64 tensors come out, never a silently wrong gradient.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from scipy import integrate

from madnis_py.phasespace import (
    Beams,
    BreitWigner,
    ChannelMapping,
    Decay,
    Mapping,
    PowerLaw,
    Propagator,
    Rambo,
    TChannel,
    Topology,
)
from madnis_py.phasespace.invariants import InvariantSampler
from tests.phasespace.conftest import massless_volume, topologies

N = 64  # points per contract check: the checks are exact per point


@dataclass(frozen=True)
class Case:
    """A family of mappings of one final state (same masses and beams)."""

    name: str
    masses: tuple[float, ...]
    beams: Beams
    build: Callable[[], list[Mapping]]


def _synthetic(n: int, masses: tuple[float, ...], beams: Beams,
               min_shat: float = 0.0) -> Callable[[], list[Mapping]]:
    def build() -> list[Mapping]:
        return [ChannelMapping(replace(t, min_shat=min_shat), masses, beams)
                for t in topologies(n).values()]
    return build


def _resonant(beams: Beams) -> Callable[[], list[Mapping]]:
    z = Propagator(91.188, 2.441404, name="Z")

    def build() -> list[Mapping]:
        tops = [Topology(s_channel=Decay(Propagator(), (2, Decay(z, (3, 4)))), min_shat=400.0),
                Topology(t_channel=TChannel((2, Decay(z, (3, 4))), (Propagator(),)),
                         min_shat=400.0),
                Topology(t_channel=TChannel((3, 2, 4), (Propagator(), Propagator(nu=0.5))),
                         min_shat=400.0)]
        return [ChannelMapping(t, (0.0, 0.000511, 0.000511), beams) for t in tops]
    return build


def _process(name: str) -> Callable[[], list[Mapping]]:
    def build() -> list[Mapping]:
        from madnis_py.integrand import Integrand

        return list(Integrand(name).mappings)
    return build


def _builtin_cases() -> list[Case]:
    from madnis_py.physics import builtin_processes, load_process

    cases = []
    for name in builtin_processes():
        proc = load_process(name)
        sqrt_s = proc.defaults.sqrt_s
        assert sqrt_s is not None, f"built-in {name} has no [defaults] sqrt_s"
        cases.append(Case(f"process {name}", tuple(proc.final_masses()),
                          Beams(sqrt_s, proc.hadronic), _process(name)))
    return cases


CHANNEL_CASES = [
    Case("2 massless", (0.0, 0.0), Beams(100.0), _synthetic(2, (0.0, 0.0), Beams(100.0))),
    Case("2 massive", (3.0, 40.0), Beams(100.0), _synthetic(2, (3.0, 40.0), Beams(100.0))),
    Case("3 massless", (0.0,) * 3, Beams(100.0), _synthetic(3, (0.0,) * 3, Beams(100.0))),
    Case("3 massive", (0.0, 5.0, 10.0), Beams(100.0),
         _synthetic(3, (0.0, 5.0, 10.0), Beams(100.0))),
    Case("4 massless", (0.0,) * 4, Beams(100.0), _synthetic(4, (0.0,) * 4, Beams(100.0))),
    Case("3 hadronic", (0.0, 0.0, 5.0), Beams(1000.0, True),
         _synthetic(3, (0.0, 0.0, 5.0), Beams(1000.0, True), min_shat=100.0)),
    Case("Z resonance hadronic", (0.0, 0.000511, 0.000511), Beams(1000.0, True),
         _resonant(Beams(1000.0, True))),
    *_builtin_cases(),
]

RAMBO_CASES = [
    Case("rambo 3 massless", (0.0,) * 3, Beams(100.0),
         lambda: [Rambo((0.0,) * 3, Beams(100.0))]),
    Case("rambo 4 massive", (1.0, 2.0, 3.0, 4.0), Beams(100.0),
         lambda: [Rambo((1.0, 2.0, 3.0, 4.0), Beams(100.0))]),
    Case("rambo 2 hadronic", (0.0, 0.0), Beams(1000.0, True),
         lambda: [Rambo((0.0, 0.0), Beams(1000.0, True), min_shat=100.0)]),
]

ALL_CASES = CHANNEL_CASES + RAMBO_CASES


def _ids(cases: list[Case]) -> list[str]:
    return [c.name for c in cases]


def _points(mapping: Mapping, seed: int, lo: float = 0.02) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return lo + (1 - 2 * lo) * rng.random((N, mapping.dims))


def _check_kinematics(mom: np.ndarray, x1x2: np.ndarray, case: Case, label: str) -> None:
    """Conservation, on-shell masses, incoming partons along z with x1 x2 S = shat."""
    scale = mom[:, :2, 0].sum(axis=1)
    np.testing.assert_allclose(mom[:, 2:].sum(axis=1), mom[:, 0] + mom[:, 1], rtol=0,
                               atol=1e-9 * scale.max(), err_msg=label)
    p2 = mom[..., 0] ** 2 - (mom[..., 1:] ** 2).sum(axis=-1)
    m2 = np.array([0.0, 0.0, *[m * m for m in case.masses]])
    assert np.all(np.abs(p2 - m2) <= 1e-9 * scale[:, None] ** 2), label
    assert np.all(mom[..., 0] >= 0), label
    assert np.all(mom[:, :2, 1:3] == 0), label
    assert np.all(mom[:, 0, 3] >= 0) and np.all(mom[:, 1, 3] <= 0), label
    if case.beams.hadronic:
        assert np.all((x1x2 > 0) & (x1x2 <= 1)), label
        np.testing.assert_allclose(mom[:, 0, 0] + mom[:, 1, 0],
                                   case.beams.sqrt_s / 2 * x1x2.sum(axis=1), rtol=1e-12,
                                   err_msg=label)
    else:
        assert np.all(x1x2 == 1), label
        np.testing.assert_allclose(scale, case.beams.sqrt_s, rtol=1e-12, err_msg=label)


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_shapes_kinematics_and_finite_weights(case: Case) -> None:
    for k, mapping in enumerate(case.build()):
        label = f"{case.name} mapping {k}"
        n_final = len(case.masses)
        assert mapping.n_final == n_final, label
        r = _points(mapping, seed=k)
        batch = mapping.map(r)
        assert batch.momenta.shape == (N, n_final + 2, 4), label
        assert batch.weight.shape == (N,) and batch.x1x2.shape == (N, 2), label
        assert batch.momenta.dtype == batch.weight.dtype == np.float64, label
        assert isinstance(batch.n_outside, int), label
        assert np.all(np.isfinite(batch.momenta)) and np.all(np.isfinite(batch.weight)), label
        assert np.all(batch.weight >= 0), label
        inside = batch.weight > 0
        assert batch.n_outside == int((~inside).sum()), label
        assert np.all(batch.momenta[~inside] == 0), label
        assert mapping.n_points == N and mapping.n_outside == batch.n_outside, label
        _check_kinematics(batch.momenta[inside], batch.x1x2[inside], case, label)


@pytest.mark.parametrize("case", ALL_CASES, ids=_ids(ALL_CASES))
def test_torch_input_gives_the_numpy_result_without_a_graph(case: Case) -> None:
    for k, mapping in enumerate(case.build()):
        r = _points(mapping, seed=10 + k)
        ref = mapping.map(r)
        t = torch.from_numpy(r).requires_grad_(True)
        out = mapping.map(t)
        for got, want in ((out.momenta, ref.momenta), (out.weight, ref.weight),
                          (out.x1x2, ref.x1x2)):
            assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
            assert not got.requires_grad
            np.testing.assert_array_equal(got.numpy(), want)
        assert out.n_outside == ref.n_outside
        with pytest.raises(TypeError, match="float64"):
            mapping.map(t.detach().float())


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=_ids(CHANNEL_CASES))
def test_inverse_round_trip_gives_the_forward_weight(case: Case) -> None:
    for k, mapping in enumerate(case.build()):
        label = f"{case.name} mapping {k}"
        r = _points(mapping, seed=20 + k, lo=0.05)
        batch = mapping.map(r)
        inside = batch.weight > 0
        back, w = mapping.inverse(batch.momenta[inside])
        assert back.shape == (int(inside.sum()), mapping.dims) and w.shape == back.shape[:1]
        diff = np.abs(back - r[inside])
        diff = np.minimum(diff, 1 - diff)  # azimuths wrap around
        assert diff.max(initial=0.0) < 1e-8, (label, diff.max(initial=0.0))
        np.testing.assert_allclose(w, batch.weight[inside], rtol=1e-8, err_msg=label)


@pytest.mark.parametrize("case", RAMBO_CASES, ids=_ids(RAMBO_CASES))
def test_rambo_has_no_inverse(case: Case) -> None:
    (mapping,) = case.build()
    assert mapping.dims == 4 * len(case.masses) + (2 if case.beams.hadronic else 0)
    with pytest.raises(NotImplementedError, match="Rambo"):
        mapping.inverse(np.zeros((1, len(case.masses) + 2, 4)))


def test_massless_rambo_weight_is_the_exact_volume_at_every_point() -> None:
    (mapping,) = RAMBO_CASES[0].build()
    w = mapping.map(_points(mapping, seed=3)).weight
    np.testing.assert_allclose(w, massless_volume(3, 100.0 ** 2), rtol=1e-12)


def _fd_jacobian(f: Callable[[np.ndarray], np.ndarray], r: np.ndarray,
                 h: float) -> np.ndarray:
    """Central differences of ``f`` (points -> points in [0, 1)), azimuths wrapped."""
    n, d = r.shape
    jac = np.empty((n, d, d))
    for j in range(d):
        step = np.zeros(d)
        step[j] = h
        diff = f(r + step) - f(r - step)
        jac[:, :, j] = ((diff + 0.5) % 1.0 - 0.5) / (2 * h)
    return jac


@pytest.mark.parametrize("case", CHANNEL_CASES, ids=_ids(CHANNEL_CASES))
def test_weight_ratio_of_two_channels_is_the_jacobian_between_them(case: Case) -> None:
    mappings = case.build()
    if len(mappings) < 2:
        pytest.skip("one channel: no second chart")
    h = 1e-6
    checked = 0
    for (a, ma), (b, mb) in itertools.permutations(enumerate(mappings), 2):
        assert isinstance(ma, ChannelMapping) and isinstance(mb, ChannelMapping)
        label = f"{case.name}: channel {a} -> {b}"
        r = _points(ma, seed=100 * a + b, lo=0.1)
        batch = ma.map(r)
        rb, wb = mb.inverse(batch.momenta)
        # A point is usable where both channels reach it and r_B is away from its edges
        # (the map of B is smooth inside, and the steps must not leave the cube).
        ok = (batch.weight > 0) & (wb > 0) & np.all((rb > 1e-3) & (rb < 1 - 1e-3), axis=1)
        if not ok.any():
            continue
        r_ok = r[ok]

        def to_b(x: np.ndarray, ma: ChannelMapping = ma,
                 mb: ChannelMapping = mb) -> np.ndarray:
            return mb.inverse(ma.map(x).momenta)[0]

        jac = _fd_jacobian(to_b, r_ok, h)
        det = np.abs(np.linalg.det(jac))
        np.testing.assert_allclose(batch.weight[ok] / wb[ok], det, rtol=2e-5, err_msg=label)
        checked += int(ok.sum())
    assert checked >= N // 4, f"{case.name}: only {checked} points were checked"


# ---- invariant samplers -------------------------------------------------------------

SAMPLERS: list[tuple[InvariantSampler, float, float]] = [
    (BreitWigner(91.188, 2.441404), 10.0 ** 2, 200.0 ** 2),
    (BreitWigner(173.0, 1.5), 150.0 ** 2, 180.0 ** 2),
    (PowerLaw(0.0), 0.0, 100.0),
    (PowerLaw(0.8), 0.0, 1e4),
    (PowerLaw(1.0, offset=2.0), 1.0, 1e3),
    (PowerLaw(2.5, offset=1.0), 0.5, 50.0),
]


@pytest.mark.parametrize(("sampler", "lo", "hi"), SAMPLERS, ids=[repr(s[0]) for s in SAMPLERS])
def test_invariant_sampler_contract(sampler: InvariantSampler, lo: float, hi: float) -> None:
    r = np.linspace(0.01, 0.99, 41)
    x, jac = sampler.map(r, lo, hi)
    assert x.shape == jac.shape == r.shape
    assert np.all((x >= lo) & (x <= hi)) and np.all(np.diff(x) > 0)
    assert np.all(np.isfinite(jac)) and np.all(jac > 0)
    back, jac_back = sampler.inverse(x, lo, hi)
    np.testing.assert_allclose(back, r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(jac_back, jac, rtol=1e-10)
    h = 1e-6
    fd = (sampler.map(r + h, lo, hi)[0] - sampler.map(r - h, lo, hi)[0]) / (2 * h)
    np.testing.assert_allclose(jac, fd, rtol=1e-6)
    # The density g = 1 / jac is normalised on [lo, hi].
    norm, err = integrate.quad(lambda v: 1.0 / float(sampler.inverse([v], lo, hi)[1][0]),
                               lo, hi, limit=200, points=_peaks(sampler, lo, hi))
    assert math.isclose(norm, 1.0, rel_tol=1e-8), (norm, err)
    with pytest.raises(ValueError, match="hi must be >= lo"):
        sampler.map(r, hi, lo)


def _peaks(sampler: InvariantSampler, lo: float, hi: float) -> list[float] | None:
    if isinstance(sampler, BreitWigner) and lo < sampler.mass ** 2 < hi:
        return [sampler.mass ** 2]
    return None
