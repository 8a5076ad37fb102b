"""``madnis-py-demo``: the main job on the embedded default, until the multi-channel
integrator and the run-card CLI land.

Default: the cross section of p p -> e+ e- at 13 TeV with m_ll > 50 GeV (the built-in
``drell_yan`` process, the embedded LHToyPDF, mu_F = m_ll), learnt by one flow on the
Z channel's 4-dimensional phase space with the variance loss, against that channel's
fixed mapping alone (the same number of points). ``--camel`` trains on the 4D camel
test function with its exact integral instead.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from madnis_py.flows import Flow
from madnis_py.testfunctions import Camel
from madnis_py.training import integrate_flow, train_flow


def drell_yan(sqrt_s: float, mll_min: float) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                     int, str]:
    """The Drell-Yan integrand of the Z channel as a torch function on [0,1]^4."""
    from madnis_py.integrand import Integrand

    integrand = Integrand("drell_yan", sqrt_s=sqrt_s, dynamical_scale_choice=4,
                          cuts={"mmll": mll_min})
    channel = integrand.channel_names().index("Z")

    def f(x: torch.Tensor) -> torch.Tensor:
        batch = integrand(x.detach().cpu().numpy(), channel, prior=False)
        return torch.from_numpy(batch.f).to(x)

    return f, integrand.dims(channel), (
        f"p p -> e+ e- at {sqrt_s / 1000:g} TeV, m_ll > {mll_min:g} GeV, LHToyPDF, "
        f"mu_F = m_ll, Z channel ({integrand.dims(channel)} dims): sigma in pb")

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madnis-py-demo", description=__doc__)
    parser.add_argument("--camel", action="store_true",
                        help="train on the camel test function instead of Drell-Yan")
    parser.add_argument("--dims", type=int, default=4, help="dimension of the camel (default 4)")
    parser.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    parser.add_argument("--batch", type=int, default=4096, help="points per step (default 4096)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate")
    parser.add_argument("--bins", type=int, default=16, help="spline bins (default 16)")
    parser.add_argument("--points", type=int, default=200_000,
                        help="points for the final integral (default 200000)")
    parser.add_argument("--sqrt-s", type=float, default=13000.0, help="Drell-Yan: GeV")
    parser.add_argument("--mll-min", type=float, default=50.0, help="Drell-Yan: GeV")
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
    exact: float | None
    f: Callable[[torch.Tensor], torch.Tensor]
    if args.camel:
        camel = Camel(args.dims)
        f, dims, exact = camel, args.dims, camel.exact
        print(f"camel in {dims}D (two Gaussians, sigma 0.05 at 1/3 and 2/3): "
              f"exact integral {exact:.10f}")
    else:
        f, dims, title = drell_yan(args.sqrt_s, args.mll_min)
        exact = None
        print(title)
    flow = Flow(dims, bins=args.bins)
    flat = integrate_flow(None, f, args.points, dims=dims, generator=gen)
    print(f"{'flat sampling:' if args.camel else 'channel map only:'} {flat}")
    start = time.perf_counter()
    losses = train_flow(flow, f, steps=args.steps, batch=args.batch, lr=args.lr,
                        generator=gen)
    seconds = time.perf_counter() - start
    if losses:
        print(f"trained {args.steps} steps x {args.batch} points in {seconds:.1f} s "
              f"(variance loss {losses[0]:.3g} -> {losses[-1]:.3g})")
    result = integrate_flow(flow, f, args.points, generator=gen)
    print(f"flow sampling:  {result}")
    if exact is not None:
        print(f"pull vs exact: {(result.value - exact) / result.error:+.2f} sigma")
    print(f"weight std reduced {flat.rel_std / result.rel_std:.1f}x; integrand calls: "
          f"{args.steps * args.batch + 2 * args.points}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
