"""The count of host synchronisations (madnis_py.host_syncs), and the device path's
budget of them: what a training step and a batch of the device integrand may make,
counted on the CPU by the operations that synchronise on a GPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from madnis_py.device_integrand import DeviceChannels
from madnis_py.host_syncs import HostSyncs, count_host_syncs
from madnis_py.integrand import Integrand


def test_counts_the_operations_that_wait_for_the_device() -> None:
    x = torch.linspace(-1.0, 1.0, 11, dtype=torch.float64)
    with count_host_syncs() as syncs:
        y = torch.exp(x) * 2 + x.sum()  # queued work: nothing to count
        torch.where(x > 0, y, 0.0).cumsum(0)
        x[torch.tensor([1, 3])] = 0.0  # integer indices: no count
    assert syncs.total == 0, syncs.table()
    with count_host_syncs() as syncs:
        float(x.max())
        bool((x > 0).any())
        torch.nonzero(x > 0)
        x[x > 0.5]
        x[x < -0.5] = 0.0
        x.cpu()
        x.tolist()
        torch.repeat_interleave(torch.tensor([1, 2]))
    ops = [op for op, _ in syncs.by_site]
    assert syncs.total == 8, syncs.table()
    assert {"_local_scalar_dense", "nonzero", "index (mask)", "index_put_ (mask)", ".cpu()",
            ".tolist()", "repeat_interleave"} <= set(ops)
    # outside the block the methods are torch's own again
    with count_host_syncs() as later:
        pass
    x.tolist()
    assert later.total == 0 and syncs.total == 8


def test_sites_name_the_package_line_and_warnings_pass() -> None:
    from madnis_py.flows.spline import check_unit_interval

    with count_host_syncs() as syncs:
        check_unit_interval(torch.rand(10, dtype=torch.float64), "x")
    assert syncs.at("flows/spline.py") == syncs.total == 1
    (op, site), = syncs.by_site
    assert site.startswith("flows/spline.py:") and site.endswith("check_unit_interval")
    with pytest.warns(UserWarning, match="kept"), count_host_syncs():
        warnings.warn("kept", UserWarning, stacklevel=1)


def _groups_and_jobs(integrand: Integrand) -> tuple[int, int]:
    """The subprocess groups and, summed over them, the matrix elements (and mirrors)
    each group's subprocesses share: the device integrand's compactions."""
    layout, procs = integrand.layout, integrand.process.subprocesses
    jobs = 0
    for subs in layout.groups:
        jobs += len({(procs[k].matrix_element, procs[k].mirror)
                     if procs[k].matrix_element is not None else k for k in subs})
    return len(layout.groups), jobs


@pytest.mark.parametrize("layout", ["shared", "grouped"])
@pytest.mark.parametrize("name", ["drell_yan", "zprime", "ee_qqg", "ttbar"])
def test_device_path_synchronises_per_group_not_per_channel(name: str, layout: str) -> None:
    """One training step and one batch of the device path (DeviceChannels and the
    Integrator, run on the CPU): per subprocess group, the compaction to the points
    inside the phase space, one to each shared matrix element's points, and one look at
    the PDF's points outside the grid (hadron beams) or at alpha_s's Newton solution
    (lepton beams); per step, the flows' input check, the integrand
    values' check and two copies of the step's numbers (and, on the CPU only, the channel
    weights' looks at their network and at rows without prior). Nothing per channel or
    subprocess: the budget fails where one is added."""
    from madnis_py.training import Integrator

    torch.set_num_threads(1)
    integrand = Integrand(name, subprocess_channels=layout)
    mc = Integrator(DeviceChannels(integrand, "cpu"), seed=3, warmup=1,
                    flow_options={"bins": 4})
    mc.pretrain_vegas(nitn=2, neval=2000)
    mc.train(1, batch=2048)
    groups, jobs = _groups_and_jobs(integrand)
    per_group = 2 * groups + jobs
    with count_host_syncs() as syncs:
        mc.random_batch(3000)
    assert _on_a_gpu(syncs) <= per_group + 1, syncs.table()
    with count_host_syncs() as syncs:
        mc.train(1, batch=2048)
    assert _on_a_gpu(syncs) <= per_group + 4, syncs.table()
    assert syncs.at("training/channel_weights.py") <= 4
    assert integrand.n_channels > 1


def _on_a_gpu(syncs: HostSyncs) -> int:
    """The count without the channel weights' CPU-only looks (whether the network is
    zero, the compaction of rows without prior: on a GPU neither is made)."""
    return syncs.total - syncs.at("training/channel_weights.py")


@pytest.mark.parametrize("name", ["drell_yan", "ttbar"])
def test_integration_and_events_copy_once_per_batch_not_per_channel(name: str) -> None:
    """The integration copies all channels' weights to the host once per iteration; a
    generation batch checks that its records hold the drawn points and copies the
    accepted points' rows once for all channels (one per channel before)."""
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.unweight import Unweighter
    from madnis_py.training import Integrator

    torch.set_num_threads(1)
    integrand = Integrand(name, subprocess_channels="grouped")
    mc = Integrator(DeviceChannels(integrand, "cpu"), seed=3, warmup=1,
                    flow_options={"bins": 4})
    mc.pretrain_vegas(nitn=2, neval=2000)
    with count_host_syncs() as syncs:
        result = mc.integrate(12_000, iterations=3)
    copies = sum(k for (op, site), k in syncs.by_site.items() if op == ".cpu()")
    assert copies == 3 and integrand.n_channels >= 5, syncs.table()
    gen = EventGenerator(mc, result.value, unweighter=Unweighter(), seed=1,
                         accept_on="device")
    gen.calibrate(6000)
    with count_host_syncs() as syncs:
        events, summary = gen.generate(300, batch=3000, calibration=6000)
    assert events is not None and len(events.weights) == summary.written.n == 300

    def at(function: str) -> int:
        return sum(k for (_, site), k in syncs.by_site.items()
                   if site.endswith(" " + function))

    batches = at("_any_invalid")
    assert batches >= 1
    assert at("all_hold") == at("events_of") == batches, syncs.table()
