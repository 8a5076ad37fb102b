"""``madnis-py-demo``: train a flow on the built-in camel integrand and print the integral.

This is the main job until the physics processes and the multi-channel integrator land:
it exercises the compiled spline kernels, the flow and the variance-loss training, and
compares against flat sampling with the same number of points.
"""

from __future__ import annotations

import argparse
import time

import torch

from madnis_py.flows import Flow
from madnis_py.testfunctions import Camel
from madnis_py.training import integrate_flow, train_flow

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madnis-py-demo", description=__doc__)
    parser.add_argument("--dims", type=int, default=4, help="dimension of the camel (default 4)")
    parser.add_argument("--steps", type=int, default=600, help="training steps (default 600)")
    parser.add_argument("--batch", type=int, default=2048, help="points per step (default 2048)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--bins", type=int, default=16, help="spline bins (default 16)")
    parser.add_argument("--points", type=int, default=200_000,
                        help="points for the final integral (default 200000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: batches of a few thousand points gain "
                             "nothing from more)")
    args = parser.parse_args(argv)
    if args.dims < 1 or args.steps < 0 or args.batch < 2 or args.points < 2:
        parser.error("dims >= 1, steps >= 0, batch >= 2 and points >= 2 are required")

    torch.set_num_threads(max(1, args.threads))
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    camel = Camel(args.dims)
    flow = Flow(args.dims, bins=args.bins)
    print(f"camel in {args.dims}D (two Gaussians, sigma 0.05 at 1/3 and 2/3): "
          f"exact integral {camel.exact:.10f}")
    flat = integrate_flow(None, camel, args.points, dims=args.dims, generator=gen)
    print(f"flat sampling:  {flat}")
    start = time.perf_counter()
    losses = train_flow(flow, camel, steps=args.steps, batch=args.batch, lr=args.lr,
                        generator=gen)
    seconds = time.perf_counter() - start
    if losses:
        print(f"trained {args.steps} steps x {args.batch} points in {seconds:.1f} s "
              f"(variance loss {losses[0]:.3g} -> {losses[-1]:.3g})")
    result = integrate_flow(flow, camel, args.points, generator=gen)
    pull = (result.value - camel.exact) / result.error
    print(f"flow sampling:  {result}")
    print(f"pull vs exact: {pull:+.2f} sigma; weight std reduced {flat.rel_std / result.rel_std:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
