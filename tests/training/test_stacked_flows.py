"""The Integrator with its channels' flows stacked (what it does off the CPU) against
channel by channel, on the CPU."""

from __future__ import annotations

import numpy as np
import torch

from madnis_py.device_integrand import DeviceChannels
from madnis_py.integrand import Integrand
from madnis_py.training import Integrator


def _integrator(stacked: bool) -> Integrator:
    torch.set_num_threads(1)
    mc = Integrator(DeviceChannels(Integrand("zprime", subprocess_channels="grouped"),
                                   "cpu"), seed=6, warmup=1, flow_options={"bins": 4})
    mc.stack_flows = stacked
    return mc


def test_stacked_flows_draw_and_train_as_channel_by_channel(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same points (the same random numbers, mapped together), weights and training
    steps to rounding; the integral agrees."""
    import madnis_py.flows.stacked as stacked
    import madnis_py.training.multichannel as multichannel

    calls = {"sample": 0, "log_prob": 0}

    def spy(name: str, function):  # type: ignore[no-untyped-def]
        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(multichannel, "sample_stacked", spy("sample", stacked.sample_stacked))
    monkeypatch.setattr(stacked, "log_prob_stacked", spy("log_prob", stacked.log_prob_stacked))
    a, b = _integrator(False), _integrator(True)
    for mc in (a, b):
        mc.pretrain_vegas(nitn=2, neval=3000)
    assert a.n_channels == 12
    batch_a, batch_b = a.random_batch(5000), b.random_batch(5000)
    np.testing.assert_array_equal(batch_a.channels(), batch_b.channels())
    torch.testing.assert_close(batch_b.points(), batch_a.points(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(batch_b.weights(), batch_a.weights(), rtol=1e-9, atol=0)
    for mc in (a, b):
        mc.train(4, batch=3000)
    def parameters(mc: Integrator) -> list[torch.Tensor]:
        return [p for s in mc.samplers for p in s.flow.parameters()] + list(
            mc.weights.parameters())

    for pa, pb in zip(parameters(a), parameters(b), strict=True):
        torch.testing.assert_close(pb, pa, rtol=1e-7, atol=1e-9)
    ra, rb = a.integrate(20_000), b.integrate(20_000)
    assert abs(ra.value - rb.value) < 1e-6 * ra.value
    # the stacked integrator drew and trained with its flows together, the other never
    assert calls["sample"] >= 6 and calls["log_prob"] == 4
