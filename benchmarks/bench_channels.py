"""The fixed costs per channel of a many-channel step, each against its baseline in the
same process (best of ``--repeat`` wall times, one thread):

* the integrand: one call per channel (``Integrand.__call__``) against all channels at
  once (``Integrand.evaluate_channels``: the phase-space maps per channel, the rest once
  per subprocess group), at the points per channel of a training step and of a
  generation batch;
* the VEGAS base map of a channel on the CPU: ``GridMap`` (torch, the device path's, which
  the CPU ran too before) against what the sampler runs there now, the ``vegas``
  package's own compiled ``AdaptiveMap.map`` (``ChannelSampler.to_integrand``);
* one Adam step over the parameters of all channels' flows: ``foreach=True`` against
  ``fused=True`` (what the integrator uses);
* event generation after a VEGAS survey (VEGAS alone, as the MadGraph processes choose):
  CPU seconds per integrand call of the fresh draws, with ``random_batch`` evaluating
  channel by channel against all channels at once (the same events).

    python benchmarks/bench_channels.py [--card RUN_CARD] [--repeat 5]

``--card``: a run card whose process to use (e.g. the ``run_card.toml`` of a MadGraph
output made by ``output madnis_py``); default the built-in ``zprime`` with grouped
channels (12 channels in 4 groups).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best(fn: Callable[[], Any], repeat: int) -> float:
    """Best wall time of ``repeat`` calls after one warm-up."""
    fn()
    out = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t)
    return out


def integrand_rows(integrand: Any, repeat: int) -> list[str]:
    rows = []
    rng = np.random.default_rng(0)
    for per_channel in (85, 400):
        xs = [(rng.random((per_channel, integrand.dims(c))), c)
              for c in range(integrand.n_channels)]
        alone = best(lambda xs=xs: [integrand(x, c) for x, c in xs], repeat)
        together = best(lambda xs=xs: integrand.evaluate_channels(xs), repeat)
        rows.append(f"| integrand, {per_channel} points x {integrand.n_channels} channels | "
                    f"{alone * 1e3:.1f} ms | {together * 1e3:.1f} ms | "
                    f"{alone / together:.2f}x |")
    return rows


def grid_map_rows(dims: int, repeat: int) -> list[str]:
    import vegas

    from madnis_py.flows import Flow
    from madnis_py.training import ChannelSampler
    from madnis_py.training.channel_sampler import GridMap

    rng = np.random.default_rng(1)
    grids = [np.concatenate([[0.0], np.sort(rng.uniform(0, 1, 999)) ** 2, [1.0]])
             for _ in range(dims)]
    gm = GridMap(grids)
    sampler = ChannelSampler(Flow(dims), base=vegas.AdaptiveMap(grids))
    rows = []
    for n in (100, 4096, 100_000):
        y = torch.from_numpy(rng.random((n, dims)))
        torch_s = best(lambda y=y: gm.map(y), repeat)
        host_s = best(lambda y=y: sampler.to_integrand(y), repeat)
        rows.append(f"| VEGAS map on the CPU, {n} points x {dims} dims (GridMap / vegas) | "
                    f"{torch_s * 1e3:.3f} ms | {host_s * 1e3:.3f} ms | "
                    f"{torch_s / host_s:.1f}x |")
    return rows


def adam_rows(integrator: Any, repeat: int) -> list[str]:
    params = list(integrator.flows.parameters())
    times = {}
    for mode in ("foreach", "fused"):
        copies = [torch.nn.Parameter(p.detach().clone()) for p in params]
        for p in copies:
            p.grad = torch.randn_like(p)
        opt = torch.optim.Adam(copies, lr=1e-3, **{mode: True})
        times[mode] = best(opt.step, repeat)
    return [f"| Adam step, {len(params)} tensors ({sum(p.numel() for p in params)} values; "
            f"foreach / fused) | {times['foreach'] * 1e3:.1f} ms | "
            f"{times['fused'] * 1e3:.1f} ms | {times['foreach'] / times['fused']:.2f}x |"]


class _ChannelByChannel:
    """The integrand without ``evaluate_channels``: random_batch then evaluates each
    channel on its own (the baseline)."""

    def __init__(self, channels: Any) -> None:
        self.channels = channels

    def __getattr__(self, name: str) -> Any:
        if name == "evaluate_channels":
            raise AttributeError(name)
        return getattr(self.channels, name)

    def __call__(self, x: torch.Tensor, channel: int) -> Any:
        return self.channels(x, channel)


def generation_rows(integrator: Any, events: int, repeat: int) -> list[str]:
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.unweight import Unweighter

    integrator.pretrain_vegas(nitn=6, neval=20_000)
    for sampler in integrator.samplers:
        sampler.use_flow = False
    result = integrator.integrate(50_000, iterations=1)
    weights, channels = integrator.last_weights, integrator.last_channels
    together = integrator.integrand
    per_call: dict[str, float] = {}
    moments = set()
    for _ in range(repeat):
        for mode in ("alone", "together"):
            integrator.integrand = (_ChannelByChannel(together) if mode == "alone"
                                    else together)
            gen = EventGenerator(integrator, result.value, unweighter=Unweighter(), seed=3)
            gen.calibrate_on(weights, channels)
            t = time.process_time()
            batch, summary = gen.generate(events)
            dt = (time.process_time() - t) / summary.n_calls
            per_call[mode] = min(per_call.get(mode, float("inf")), dt)
            assert batch is not None
            moments.add(float(batch.momenta.sum()))
    integrator.integrand = together
    same = "the same events" if len(moments) == 1 else "DIFFERENT EVENTS"
    return [f"| generation, {events} events, CPU per call ({same}) | "
            f"{per_call['alone'] * 1e6:.2f} us | {per_call['together'] * 1e6:.2f} us | "
            f"{per_call['alone'] / per_call['together']:.2f}x |"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--card", help="run card whose process to use")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--events", type=int, default=3000, help="events of the generation row")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.training import Integrator

    if args.card:
        from madnis_py.cards import load_run_card
        from madnis_py.run import _integrator

        integrand, integrator = _integrator(load_run_card(args.card),
                                            load_run_card(args.card).load_process())
    else:
        integrand = Integrand("zprime", subprocess_channels="grouped")
        integrator = Integrator(TorchChannels(integrand), seed=0)
    print(f"process {integrand.process.name}: {integrand.n_channels} channels in "
          f"{len(integrand.layout.groups)} subprocess groups; best of {args.repeat}, "
          "one thread\n")
    print("| what | baseline | ours | ratio |\n|---|---|---|---|")
    for row in (integrand_rows(integrand, args.repeat)
                + grid_map_rows(integrand.dims(0), args.repeat)
                + adam_rows(integrator, args.repeat)
                + generation_rows(integrator, args.events, min(args.repeat, 3))):
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
