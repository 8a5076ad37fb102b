"""The physics integrand on a torch device (madnis_py.device_integrand).

On the CPU, ``DeviceChannels`` runs the torch code a GPU runs (cuts, scales, PDFs,
prior, the packed host round trip of the matrix element); it must reproduce the numpy
integrand (``TorchChannels``) to rounding on every built-in process. The ``cuda`` tests
repeat it on a GPU and integrate ee_mumu and drell_yan there against the analytic value
and the quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from madnis_py.device_integrand import DeviceChannels, cut_mask, dynamical_scale_torch
from madnis_py.integrand import Integrand, TorchChannels, dynamical_scale
from madnis_py.phasespace import Cuts
from madnis_py.phasespace.cuts import ResonanceWindow
from madnis_py.physics.builtin import builtin_processes

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _agree(ref: TorchChannels, dev: DeviceChannels, x: torch.Tensor, channel: int) -> None:
    want = ref(x, channel)
    got = dev(x.to(dev.device), channel)
    for a, b, what in zip(want, got, ("f", "features", "prior"), strict=True):
        assert a is not None and b is not None
        assert b.device == x.to(dev.device).device
        torch.testing.assert_close(b.cpu(), a, rtol=1e-12, atol=0, msg=what)


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", builtin_processes())
def test_matches_the_numpy_integrand(name: str, layout: str) -> None:
    integrand = Integrand(name, subprocess_channels=layout)
    ref, dev = TorchChannels(integrand), DeviceChannels(integrand, "cpu")
    gen = torch.Generator().manual_seed(5)
    for channel in range(integrand.n_channels):
        x = torch.rand(1500, integrand.dims(channel), dtype=torch.float64, generator=gen)
        _agree(ref, dev, x, channel)
    assert dev.staging.copies == 0  # CPU tensors reach the library as views


@pytest.mark.parametrize("name", ["drell_yan", "ee_qqg", "ttbar"])
def test_the_propagator_prior_matches_the_numpy_integrand(name: str) -> None:
    """channel_prior = "propagators": the device path builds the same prior from the
    topologies as the numpy integrand (not the library's |M_i|^2, which differ)."""
    integrand = Integrand(name, channel_prior="propagators")
    assert not integrand.amplitude_prior
    ref, dev = TorchChannels(integrand), DeviceChannels(integrand, "cpu")
    gen = torch.Generator().manual_seed(6)
    for channel in range(integrand.n_channels):
        x = torch.rand(1500, integrand.dims(channel), dtype=torch.float64, generator=gen)
        _agree(ref, dev, x, channel)


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", builtin_processes())
def test_shares_matrix_elements_as_the_numpy_integrand(name: str, layout: str) -> None:
    """Subprocesses sharing a matrix element (u u~ and c c~ in drell_yan) get it from
    one evaluation per point on the device too: the same matrix-element calls as numpy,
    and one library call per shared matrix element."""
    ref_ig = Integrand(name, subprocess_channels=layout)
    dev_ig = Integrand(name, subprocess_channels=layout)
    ref, dev = TorchChannels(ref_ig), DeviceChannels(dev_ig, "cpu")
    gen = torch.Generator().manual_seed(8)
    batches = [(torch.rand(800, ref_ig.dims(c), dtype=torch.float64, generator=gen), c)
               for c in range(ref_ig.n_channels)]
    for x, c in batches:
        ref(x, c)
    calls = []
    original = dev._matrix_elements

    def counted(jobs, amp2):  # type: ignore[no-untyped-def]
        calls.append(len(jobs))
        return original(jobs, amp2)

    dev._matrix_elements = counted  # type: ignore[method-assign]
    dev.evaluate_channels(batches)
    assert dev_ig.n_calls == ref_ig.n_calls > 0
    procs = ref_ig.process
    shared = {(s.matrix_element, s.mirror) if s.matrix_element is not None else k
              for k, s in enumerate(procs.subprocesses)}
    # at most one job per shared matrix element (and mirror) per channel
    assert calls[0] <= ref_ig.n_channels * len(shared)
    if len(shared) < len(procs.subprocesses):
        assert calls[0] < ref_ig.n_channels * len(procs.subprocesses)


def test_lepton_beams_run_alpha_s_on_the_device() -> None:
    """ee_qqg at a dynamical scale: alpha_s(M_Z) run to each point's scale in torch gives
    the numpy integrand's f to rounding."""
    integrand = Integrand("ee_qqg", dynamical_scale_choice=3)
    ref, dev = TorchChannels(integrand), DeviceChannels(integrand, "cpu")
    gen = torch.Generator().manual_seed(3)
    for channel in range(integrand.n_channels):
        _agree(ref, dev, torch.rand(1500, integrand.dims(channel), dtype=torch.float64,
                                    generator=gen), channel)


def test_cut_mask_matches_cuts() -> None:
    pdgs = (11, -11, 1, -1, 21, 11, -11)
    cuts = Cuts(pdgs, {"ptj": 20.0, "etaj": 2.5, "drjj": 0.4, "mmjj": 30.0, "mmjjmax": 10.0,
                       "ptl": 5.0, "etal": 3.0, "drjl": 0.3, "mmll": 20.0, "ptjmax": 400.0})
    rng = np.random.default_rng(3)
    n = 20000
    p = np.zeros((n, len(pdgs), 4))
    p[:, 2:, 1:] = rng.normal(0, 60, (n, len(pdgs) - 2, 3))
    p[:, 2:, 0] = np.linalg.norm(p[:, 2:, 1:], axis=2) * rng.uniform(1, 1.2, (n, 5))
    p[:10, 2, 1:3] = 0.0  # along the beam: eta = +-inf
    p[10, 3, 0] = np.nan
    want = cuts.mask(p)
    assert 0.05 < want.mean() < 0.95
    got = cut_mask(cuts, torch.from_numpy(p))
    np.testing.assert_array_equal(got.numpy(), want)
    rap = Cuts(pdgs, {"etaj": 1.5, "drjj": 0.4}, use_rapidity=True)
    np.testing.assert_array_equal(cut_mask(rap, torch.from_numpy(p)).numpy(), rap.mask(p))
    window = Cuts(pdgs, {"ptj": 20.0}, windows=[ResonanceWindow((2, 3, 4), 150.0, 5.0)])
    want = window.mask(p)
    assert 0.01 < want.mean() < 0.9
    np.testing.assert_array_equal(cut_mask(window, torch.from_numpy(p)).numpy(), want)


def test_dynamical_scales_match() -> None:
    rng = np.random.default_rng(4)
    p = rng.normal(0, 50, (500, 5, 4))
    p[..., 0] = np.abs(p[..., 0]) + np.linalg.norm(p[..., 1:], axis=2)
    for choice in (1, 2, 3, 4):
        np.testing.assert_allclose(dynamical_scale_torch(torch.from_numpy(p), choice).numpy(),
                                   dynamical_scale(p, choice), rtol=1e-14)
    with pytest.raises(ValueError, match="1, 2, 3 or 4"):
        dynamical_scale_torch(torch.from_numpy(p), 5)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", builtin_processes())
def test_cuda_matches_the_numpy_integrand(name: str) -> None:
    integrand = Integrand(name)
    ref, dev = TorchChannels(integrand), DeviceChannels(integrand, "cuda")
    gen = torch.Generator().manual_seed(6)
    for channel in range(integrand.n_channels):
        x = torch.rand(20000, integrand.dims(channel), dtype=torch.float64, generator=gen)
        _agree(ref, dev, x, channel)
    if not integrand.matrix_element.has_device_entry:
        # a host library: one copy each way per channel batch
        assert dev.staging.copies == 2 * integrand.n_channels


@pytest.mark.cuda
@needs_gpu
def test_cuda_cross_sections() -> None:
    from tests.test_integrand import drell_yan_quadrature, ee_mumu_sigma

    ee = Integrand("ee_mumu", sqrt_s=500.0)
    dev = DeviceChannels(ee, "cuda")
    for channel in range(ee.n_channels):
        f = dev(torch.rand(400_000, ee.dims(channel), dtype=torch.float64, device="cuda"),
                channel)[0]
        mean, err = float(f.mean()), float(f.std()) / math.sqrt(len(f))
        assert abs(mean - ee_mumu_sigma(500.0)) < 3 * err
    dy = Integrand("drell_yan", sqrt_s=13000.0, dynamical_scale_choice=4,
                   cuts={"mmll": 50.0}, pdf="LHToyPDF")
    exact = drell_yan_quadrature(13000.0, 50.0, dy.pdf)
    z = dy.channel_names().index("Z")
    f = DeviceChannels(dy, "cuda")(torch.rand(600_000, dy.dims(z), dtype=torch.float64,
                                              device="cuda"), z)[0]
    mean, err = float(f.mean()), float(f.std()) / math.sqrt(len(f))
    assert abs(mean - exact) < 3 * err


def test_integrator_on_the_device_path_gives_the_analytic_cross_section() -> None:
    """The whole device path (GridMap base maps, DeviceChannels, losses) run on the CPU:
    VEGAS, a few training steps and the integral of ee_mumu against the analytic value."""
    from madnis_py.training import Integrator
    from tests.test_integrand import ee_mumu_sigma

    torch.set_num_threads(1)
    integrand = Integrand("ee_mumu", sqrt_s=500.0)
    mc = Integrator(DeviceChannels(integrand, "cpu"), seed=4, warmup=2,
                    flow_options={"bins": 4})
    mc.pretrain_vegas(nitn=2, neval=2000)
    mc.train(5, batch=1024)
    result = mc.integrate(100_000, iterations=2)
    exact = ee_mumu_sigma(500.0)
    assert result.error < 5e-3 * exact
    assert abs(result.value - exact) < 3 * result.error


def _integrator(channels: object, seed: int = 9) -> object:
    from madnis_py.training import Integrator

    torch.manual_seed(seed)  # the flows' initialisation
    return Integrator(channels, seed=seed, flow_options={"bins": 4})


def test_all_channels_in_one_call_draw_the_same_events() -> None:
    """random_batch evaluates every channel in one DeviceChannels call: the events and
    weights are those of the channel-by-channel numpy path."""
    integrand = Integrand("drell_yan")
    a = _integrator(TorchChannels(integrand)).random_batch(6000)  # type: ignore[attr-defined]
    b = _integrator(DeviceChannels(integrand, "cpu")).random_batch(6000)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(a.channels(), b.channels())
    torch.testing.assert_close(b.points(), a.points(), rtol=0, atol=0)
    np.testing.assert_allclose(b.weights(), a.weights(), rtol=1e-12, atol=0)
    dev = DeviceChannels(integrand, "cpu")
    xs = [(torch.rand(500, integrand.dims(c), dtype=torch.float64), c)
          for c in range(integrand.n_channels)]
    together = dev.evaluate_channels(xs)
    for (x, c), got in zip(xs, together, strict=True):
        for u, v in zip(dev(x, c), got, strict=True):
            torch.testing.assert_close(v, u, rtol=0, atol=0)


@pytest.mark.cuda
@needs_gpu
def test_cuda_one_host_round_trip_per_batch() -> None:
    channels = DeviceChannels(Integrand("ee_qqg"), "cuda")
    from madnis_py.training import Integrator

    batch = Integrator(channels, seed=1, device="cuda").random_batch(20000)  # type: ignore[attr-defined]
    assert len(batch.samples) == 4  # every channel drew points
    assert channels.staging.copies == 2  # one packed copy each way for the whole batch


def _same_details(got: object, want: object) -> None:
    """Two IntegrandBatches of event details (host arrays) agree to rounding."""
    for what in ("f", "momenta", "x1x2", "phase_space_weight", "subprocess_f", "scale",
                 "alpha_s"):
        np.testing.assert_allclose(getattr(got, what), getattr(want, what), rtol=1e-12,
                                   atol=0, err_msg=what)
    np.testing.assert_array_equal(got.passed, want.passed)  # type: ignore[attr-defined]
    assert got.prior is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", ["drell_yan", "ee_qqg", "ttbar"])
def test_recording_keeps_what_the_numpy_records_hold(name: str, layout: str) -> None:
    """DeviceChannels.recording keeps each evaluation's event details on the device: the
    rows copied for events, and the points kept for a recycled draw, are those of
    TorchChannels.recording to rounding."""
    from madnis_py.device_integrand import DeviceRecord
    from madnis_py.events.recycle import RecordedDraw

    integrand = Integrand(name, subprocess_channels=layout)
    ref, dev = TorchChannels(integrand), DeviceChannels(integrand, "cpu")
    gen = torch.Generator().manual_seed(8)
    xs = [(torch.rand(700, integrand.dims(c), dtype=torch.float64, generator=gen), c)
          for c in range(integrand.n_channels)]
    with ref.recording() as want, dev.recording() as got:
        for x, c in xs:
            ref(x, c)
        dev.evaluate_channels(xs)
    assert len(got) == len(want) == integrand.n_channels
    # both count their points as the run's integrand calls
    assert integrand.n_points == 2 * sum(len(x) for x, _ in xs)
    rng = np.random.default_rng(1)
    for (x, c), r, d in zip(xs, want, got, strict=True):
        assert isinstance(d, DeviceRecord) and d.channel == c and len(d) == len(x)
        assert d.holds(x) and not d.holds(x.flip(0))
        _same_details(d.events_at(np.arange(len(d))), r.events_at(np.arange(len(r))))
        some = np.sort(rng.choice(len(x), 50, replace=False))
        _same_details(d.events_at(some), r.events_at(some))
        assert d.events_at(np.zeros(0, dtype=np.int64)).momenta.shape == (
            0, integrand.process.n_particles, 4)
    weights = np.concatenate([rng.uniform(0, 1, len(x)) * (rng.uniform(size=len(x)) < 0.6)
                              for x, _ in xs])
    a, b = RecordedDraw.of("t", weights, want), RecordedDraw.of("t", weights, got)
    np.testing.assert_array_equal(a.weights, b.weights)
    for r, d in zip(a.records, b.records, strict=True):
        assert isinstance(d, DeviceRecord) and len(d) == len(r)
        _same_details(d.events_at(np.arange(len(d))), r.events_at(np.arange(len(r))))
    with (dev.recording(), pytest.raises(RuntimeError, match="already active"),
          dev.recording()):
        pass


@pytest.mark.parametrize("name", ["drell_yan", "ee_qqg"])
def test_generation_on_the_device_path_gives_the_numpy_events(name: str) -> None:
    """EventGenerator over DeviceChannels takes its events from the first evaluation (no
    second one) and writes the events of the numpy path: same points, flavours, colours,
    channels, and momenta, scales and weights to rounding."""
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.unweight import Unweighter

    torch.set_num_threads(1)
    integrand = Integrand(name)
    out = []
    for channels in (TorchChannels(integrand), DeviceChannels(integrand, "cpu")):
        gen = EventGenerator(_integrator(channels, seed=3), 1.0, unweighter=Unweighter(),
                             seed=5)
        assert gen.records
        events, summary = gen.generate(600, calibration=6000, batch=4000)
        assert events is not None and len(events) == 600 and summary.reevaluated == 0
        out.append((events, summary))
    (a, sa), (b, sb) = out
    assert sa.n_calls == sb.n_calls and sa.max_weight == pytest.approx(sb.max_weight,
                                                                       rel=1e-12)
    for what in ("pdgs", "colours", "subprocess", "channel"):
        np.testing.assert_array_equal(getattr(b, what), getattr(a, what), err_msg=what)
    for what in ("momenta", "weights", "scales", "alpha_s"):
        np.testing.assert_allclose(getattr(b, what), getattr(a, what), rtol=1e-12, atol=0,
                                   err_msg=what)


@pytest.mark.cuda
@needs_gpu
@pytest.mark.parametrize("name", ["ee_mumu", "drell_yan", "ee_qqg"])
def test_cuda_records_stay_on_the_device(name: str) -> None:
    """On a GPU the records stay there, and the rows copied for events are the numpy
    integrand's details of the same points to 1e-12; generation reevaluates nothing."""
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.unweight import Unweighter
    from madnis_py.training import Integrator

    integrand = Integrand(name)
    dev = DeviceChannels(integrand, "cuda")
    gen = torch.Generator().manual_seed(9)
    xs = [(torch.rand(20000, integrand.dims(c), dtype=torch.float64, generator=gen), c)
          for c in range(integrand.n_channels)]
    with dev.recording() as got:
        dev.evaluate_channels([(x.cuda(), c) for x, c in xs])
    for (x, c), d in zip(xs, got, strict=True):
        assert d.x.is_cuda  # type: ignore[attr-defined]
        some = np.arange(0, len(x), 7)
        want = integrand(x.numpy()[some], c, prior=False, details=True)
        _same_details(d.events_at(some), want.take(np.arange(len(some)), prior=False))
    mc = Integrator(DeviceChannels(integrand, "cuda"), seed=2, device="cuda",
                    flow_options={"bins": 4})
    events, summary = EventGenerator(mc, 1.0, unweighter=Unweighter(), seed=2).generate(
        2000, calibration=20000)
    assert events is not None and len(events) == 2000 and summary.reevaluated == 0
    assert np.all(events.weights == 1.0)
