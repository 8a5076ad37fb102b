"""Several flows' densities at once (``log_prob_many``) against flow by flow."""

from __future__ import annotations

import pytest
import torch

import madnis_py.flows.flow as flow_module
import madnis_py.training.multichannel as multichannel
from madnis_py.flows import Flow
from madnis_py.flows.flow import log_prob_many
from madnis_py.flows.fused import fused_couplings
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator


def away_from_identity(flows: list[Flow]) -> list[Flow]:
    """``flows`` with their subnets' last layers drawn (torch's generator) away from the
    zero, identity, start."""
    with torch.no_grad():
        for flow in flows:
            for block in flow.blocks:
                block.subnet[-1].weight.normal_(0, 0.3)
                block.subnet[-1].bias.normal_(0, 0.3)
    return flows


def _flows(dims: list[int], backend: str = "kernel") -> list[Flow]:
    torch.manual_seed(7)
    return away_from_identity([Flow(d, backend=backend) for d in dims])


def _points(flows: list[Flow], sizes: list[int]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    return [torch.rand(n, f.dims, dtype=torch.float64, generator=gen).requires_grad_()
            for f, n in zip(flows, sizes, strict=True)]


@pytest.mark.parametrize("dims,backend,together", [
    ([4, 4, 4], "kernel", True),       # one autograd node per block for all
    ([5, 5, 5, 5], "kernel", True),
    ([4, 5, 4], "kernel", False),      # other masks: flow by flow
    ([3, 3], "reference", False),      # not fused: flow by flow
])
def test_values_and_gradients_are_those_of_each_flow_bit_for_bit(
        dims: list[int], backend: str, together: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    flows = _flows(dims, backend)
    sizes = [1, 37, 200, 5][:len(flows)]
    xs = _points(flows, sizes)
    calls = []

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return fused_couplings(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flow_module, "fused_couplings", counted)
    got = log_prob_many(flows, xs)
    assert len(calls) == (len(flows[0].blocks) if together else 0)
    # each point set weighs its own loss, so that every gradient is exercised
    sum((k + 1.5) * lq.square().sum() for k, lq in enumerate(got)).backward()
    grads = [x.grad.clone() for x in xs] + [p.grad.clone() for f in flows
                                            for p in f.parameters()]
    for t in [*xs, *[p for f in flows for p in f.parameters()]]:
        t.grad = None
    want = [f.log_prob(x) for f, x in zip(flows, xs, strict=True)]
    sum((k + 1.5) * lq.square().sum() for k, lq in enumerate(want)).backward()
    ref = [x.grad for x in xs] + [p.grad for f in flows for p in f.parameters()]
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a, b)
    for a, b in zip(grads, ref, strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="2 flows and 1 point sets"):
        log_prob_many(flows[:2], xs[:1])


def test_training_with_the_flows_together_is_bit_for_bit_that_flow_by_flow(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """zprime's three channels: the integrator's loss takes their flows together;
    trained with them flow by flow instead, every parameter ends the same."""
    torch.set_num_threads(1)
    params = {}
    calls = []

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return fused_couplings(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flow_module, "fused_couplings", counted)
    for mode in ("together", "one by one"):
        if mode == "one by one":
            assert calls  # the flows did go together
            monkeypatch.setattr(multichannel, "log_prob_many", lambda flows, xs, stacked=None: [
                f.log_prob(x) for f, x in zip(flows, xs, strict=True)])
        torch.manual_seed(0)
        channels = TorchChannels(Integrand("zprime", cuts={"mmll": 50.0}))
        mc = Integrator(channels, feature_dims=channels.feature_dims, seed=2)
        mc.train(6, batch=600, buffered_steps=1)
        params[mode] = [p.detach().clone() for p in [*mc.flows.parameters(),
                                                      *mc.weights.parameters()]]
    assert all(torch.equal(a, b) for a, b in zip(params["together"], params["one by one"],
                                                 strict=True))


@pytest.mark.parametrize("backend", ["kernel", "reference"])
def test_points_of_all_flows_are_checked_in_one_look(backend: str) -> None:
    """log_prob_many checks every flow's points with one host synchronisation (one per
    flow before), and its error names the flow and the entry; a flow's sample draws its
    latent points in [0, 1) and checks none."""
    from madnis_py.host_syncs import count_host_syncs

    flows = _flows([3, 3, 5], backend)
    xs = [x.detach() for x in _points(flows, [40, 50, 60])]
    with count_host_syncs() as syncs:
        log_prob_many(flows, xs)
    assert syncs.total == 1, syncs.table()
    bad = [xs[0], xs[1], xs[2].clone()]
    bad[2][3, 1] = 1.5
    with pytest.raises(ValueError, match=r"x of flow 2: entry 16 = 1.5 is outside"):
        log_prob_many(flows, bad)
    with count_host_syncs() as syncs:
        flows[0].sample(100)
    assert syncs.total == 0, syncs.table()
