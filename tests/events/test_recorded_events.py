"""Events written from the first evaluation equal those of a second evaluation.

The generator keeps each drawn point's subprocess parts, scale, alpha_s and momenta
(:meth:`TorchChannels.recording`) instead of evaluating accepted points again; the
reference is the integrand evaluated a second time on the same points
(``reevaluate=True``), compared exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from madnis_py.events import Unweighter
from madnis_py.events.generator import EventBatch, EventGenerator
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator

FIELDS = ("pdgs", "colours", "momenta", "weights", "scales", "alpha_s", "subprocess",
          "channel")


def _integrator(name: str) -> tuple[Integrand, Integrator]:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    integrand = Integrand(name)
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    mc.train(3, batch=512)
    return integrand, mc


@pytest.fixture(scope="module", params=["drell_yan", "ee_qqg"])
def process(request: pytest.FixtureRequest) -> tuple[Integrand, Integrator]:
    return _integrator(request.param)


def _generate(mc: Integrator, *, reevaluate: bool, seed: int = 5
              ) -> tuple[EventBatch, EventGenerator, int]:
    gen = EventGenerator(mc, 10.0, seed=seed, reevaluate=reevaluate,
                         unweighter=Unweighter(method="quantile", quantile=0.99))
    events, summary = gen.generate(300, batch=3000, calibration=3000)
    assert events is not None and summary.n_events == 300
    return events, gen, summary.n_calls


def test_recorded_events_equal_reevaluated_ones(process: tuple[Integrand, Integrator]
                                                ) -> None:
    integrand, mc = process
    before = integrand.n_points
    recorded, gen, calls = _generate(mc, reevaluate=False)
    assert gen.records and gen.reevaluated == 0
    # every integrand call is a drawn point, counted by the generator and the integrand
    assert calls == gen.n_weighted == integrand.n_points - before
    before = integrand.n_points
    again, ref, ref_calls = _generate(mc, reevaluate=True)
    assert not ref.records and ref.reevaluated == 300
    assert ref_calls == ref.n_weighted + 300 == integrand.n_points - before
    # same seed: same points, same accept/reject and flavour/colour draws, same events
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(recorded, name), getattr(again, name),
                                      err_msg=name)
    assert len(np.unique(recorded.subprocess)) > 1 or len(integrand.process.subprocesses) == 1


def test_a_recording_holds_what_a_second_evaluation_gives(
        process: tuple[Integrand, Integrator]) -> None:
    integrand, mc = process
    channels = mc.integrand
    assert isinstance(channels, TorchChannels)
    with channels.recording() as records:
        batch = mc.random_batch(2000)
    assert [r.channel for r in records] == [s.channel for s in batch.samples]
    for rec, sample in zip(records, batch.samples, strict=True):
        np.testing.assert_array_equal(rec.x, sample.x.numpy())
        np.testing.assert_array_equal(rec.batch.f, sample.f.numpy())
        second = integrand(rec.x, rec.channel, prior=False, details=True)
        for name in ("f", "momenta", "x1x2", "passed", "subprocess_f", "scale", "alpha_s"):
            np.testing.assert_array_equal(getattr(rec.batch, name), getattr(second, name),
                                          err_msg=name)
    # outside a recording nothing is kept, and recordings do not nest
    assert channels._records is None
    with (channels.recording(), pytest.raises(RuntimeError, match="already active"),
          channels.recording()):
        pass


def test_an_integrand_without_recording_is_evaluated_twice() -> None:
    """A multi-channel wrapper of a physics integrand that cannot record (only ``f``,
    features and prior) still gives events, by the second evaluation."""
    integrand, mc = _integrator("drell_yan")
    inner = mc.integrand

    class Plain:
        def __init__(self) -> None:
            self.integrand = integrand
            self.n_channels = inner.n_channels

        def dims(self, channel: int) -> int:
            return inner.dims(channel)

        def __call__(self, x: torch.Tensor, channel: int
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            return inner(x, channel)

    mc.integrand = Plain()
    events, gen, calls = _generate(mc, reevaluate=False)
    assert not gen.records and gen.reevaluated == len(events) == 300
    assert calls == gen.n_weighted + 300
