"""The propagator prior (``channel_prior = "propagators"``, MadGraph's ``sde_strategy =
2``) of a group's channels at once against channel by channel, in the same process.

For every subprocess group of a process (grouped layout), ``PropagatorPrior`` of all its
channels on ``n`` points, against one ``PropagatorPrior`` per channel (each channel's
sums and denominators on its own, as the integrand computed them before), the same
momenta. The momenta are random four-vectors at collider scales (the prior is algebraic
in them), so no matrix element or phase space is timed. The two give the same values.

    python benchmarks/bench_propagator_prior.py PROCESS [--points N] [--repeats R]

PROCESS: a MadGraph ``output madnis_py`` directory or a built-in process name.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from madnis_py.integrand import Integrand
from madnis_py.physics.propagator_prior import PropagatorPrior


def best_of(repeats: int, fn, *args):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, out


def channel_by_channel(singles: list[PropagatorPrior], p: np.ndarray) -> np.ndarray:
    return np.stack([s(p)[:, 0] for s in singles], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process")
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ig = Integrand(args.process, channel_prior="propagators", subprocess_channels="grouped",
                   pdf="LHToyPDF")
    legs = ig.process.n_particles
    rng = np.random.default_rng(0)
    p = rng.normal(0.0, 300.0, (args.points, legs, 4))
    p[..., 0] = np.abs(p[..., 0]) + np.sqrt((p[..., 1:] ** 2).sum(axis=-1))
    together = alone = 0.0
    worst = 0.0
    print(f"{args.process}: {ig.n_channels} channels in {len(ig.layout.groups)} groups, "
          f"{args.points} points, best of {args.repeats}")
    print("| group | channels | propagators | distinct denominators | together [s] | "
          "channel by channel [s] | ratio |")
    print("|---|---|---|---|---|---|---|")
    for g in range(len(ig.layout.groups)):
        prior = ig.propagator_prior(g)
        topologies = [ig.process.channels[ig.layout.topology[c]]
                      for c in ig.layout.channels_of(g)]
        singles = [PropagatorPrior([t], n_legs=legs) for t in topologies]
        t_all, a = best_of(args.repeats, prior, p)
        t_one, b = best_of(args.repeats, channel_by_channel, singles, p)
        worst = max(worst, float(np.max(np.abs(a / b - 1))))
        together += t_all
        alone += t_one
        props = int((prior.gather < len(prior.mass2)).sum())
        print(f"| {g} | {prior.n_channels} | {props} | {len(prior.mass2)} | {t_all:.4f} | "
              f"{t_one:.4f} | {t_one / t_all:.1f} |")
    print(f"all groups: together {together:.3f} s, channel by channel {alone:.3f} s, "
          f"ratio {alone / together:.1f}; largest relative difference {worst:.1e}")


if __name__ == "__main__":
    main()
