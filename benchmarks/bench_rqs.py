"""CPU throughput of the RQS spline and of whole coupling flows against other packages.

Part A times the spline alone (forward + backward of ``(y + logdet).sum()`` with respect
to ``x`` and raw ``params = randn``) on ``batch`` points in both directions; it is
pointwise, so d would only scale the point count. Part B times whole flows of matched
architecture (2 ceil(log2 d) coupling blocks, subnets of 3 linear layers, 32 units, ReLU):
(a) ``log_prob(x).sum().backward()`` (the training path), (b) ``sample(n)`` and (c)
``log_prob(x)``, both under ``torch.no_grad()`` (the integration and event-generation
path, and the like-for-like comparison with the issue's reference figures, which
carry no backward pass).
Comparators (each optional, else reported as skipped): our kernel flow with the subnets
as torch layers (``unfused``: ``fuse_subnet = False``, the state before the fused
coupling kernel), our torch reference backend,
``madnis``, ``madspace`` (MadGraph's C++ library) and ``zuko``. Ratios are ours/theirs
(above 1: ours faster); each rate is the median of 3 timed runs after one warm-up.

Reproduce (full run: over an hour on one thread of a 2-core AMD EPYC, most of it in the
comparators at d = 16; ``--dims`` and
``--bins`` run a subset, ``--dims`` alone runs part A only)::

    python benchmarks/bench_rqs.py --markdown /tmp/bench_rqs.md

Smoke run (batch 1e4, d = 4 only)::

    python benchmarks/bench_rqs.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import statistics
import time
from collections.abc import Callable, Mapping
from functools import partial

import torch
from torch import nn

from madnis_py import Flow
from madnis_py.flows import SplineOptions, binary_masks, rqs, rqs_reference

Timed = Callable[[], object]
Triple = tuple[Timed, Timed, Timed]  # (log_prob + backward, sample, log_prob no-grad)
NOTES: list[str] = []
BUILD = ""  # set in main(): the extension timed, since it may be rebuilt between runs
COMPARATORS = ("unfused", "reference", "madnis", "madspace", "zuko")
STD = 0.1  # scale of the random last subnet layers, so that no spline is the identity


CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process)


def median_time(fn: Timed, repeats: int = 3) -> float:
    """Seconds per call of ``fn``: one warm-up call, then the median of ``repeats``."""
    fn()
    times = []
    for _ in range(repeats):
        start = CLOCK()
        fn()
        times.append(CLOCK() - start)
    return statistics.median(times)


def note(message: str) -> None:
    """Print a message once and keep it for the markdown file."""
    if message not in NOTES:
        NOTES.append(message)
        print(message, flush=True)


def perturb_last_(layers: list[nn.Linear], gen: torch.Generator) -> None:
    """Overwrite the weights and biases of the given layers with N(0, STD^2) draws."""
    with torch.no_grad():
        for lin in layers:
            for p in (lin.weight, lin.bias):
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * STD)


def spline_fns(n: int, bins: int, dtype: torch.dtype, inverse: bool) -> dict[str, Timed]:
    """Forward+backward closures of each spline implementation on ``n`` points."""
    opts = SplineOptions(bins)
    x = torch.rand(n, dtype=dtype)
    params = torch.randn(n, opts.params_per_dim, dtype=dtype)

    def run(apply: Callable[..., tuple[torch.Tensor, ...]]) -> None:
        xg, pg = x.clone().requires_grad_(), params.clone().requires_grad_()
        y, logdet = apply(xg, pg)
        (y.reshape(-1) + logdet.reshape(-1)).sum().backward()

    fns: dict[str, Timed] = {
        "ours": partial(run, lambda a, p: rqs(a, p, opts, inverse=inverse)),
        "reference": partial(run, lambda a, p: rqs_reference(a, p, opts, inverse=inverse))}
    try:
        from madnis.nn.splines import unconstrained_rational_quadratic_spline as madnis_rqs
        fns["madnis"] = partial(run, lambda a, p: madnis_rqs(
            a[:, None], p[:, None, :bins], p[:, None, bins:2 * bins],
            p[:, None, 2 * bins:], inverse))
    except ImportError as err:
        note(f"madnis spline: skipped: {err}")
    try:
        from zuko.transforms import MonotonicRQSTransform

        def zuko_apply(a: torch.Tensor, p: torch.Tensor) -> tuple[torch.Tensor, ...]:
            t = MonotonicRQSTransform(p[:, :bins], p[:, bins:2 * bins],
                                      p[:, 2 * bins + 1:3 * bins], bound=0.5)
            return (t.inv if inverse else t).call_and_ladj(a - 0.5)
        fns["zuko"] = partial(run, zuko_apply)
    except ImportError as err:
        note(f"zuko spline: skipped: {err}")
    note("madspace spline: n/a (only reachable inside its compiled Flow graph)")
    return fns


def ours_flow(d: int, bins: int, dtype: torch.dtype, backend: str,
              seed: int = 0) -> Flow:
    """Our flow with deterministic weights; last subnet layers drawn from N(0, STD^2)."""
    torch.manual_seed(seed)
    flow = Flow(d, bins=bins, layers=3, units=32, dtype=torch.float64, backend=backend)
    perturb_last_([b.subnet[-1] for b in flow.blocks], torch.Generator().manual_seed(seed))
    return flow.to(dtype)


def flow_fns(d: int, bins: int, dtype: torch.dtype, batch: int, threads: int
             ) -> dict[str, Triple | None]:
    """(log_prob+backward, sample, log_prob no-grad) closures per flow, one input batch."""
    x = torch.rand(batch, d, dtype=dtype)
    out: dict[str, Triple | None] = {}

    def torch_pair(module: nn.Module, log_prob: Callable[[], torch.Tensor],
                   sample: Callable[[], object]) -> Triple:
        def density() -> None:
            module.zero_grad(set_to_none=True)
            log_prob().sum().backward()

        def draw() -> None:
            with torch.no_grad():
                sample()

        def density_no_grad() -> None:
            with torch.no_grad():
                log_prob()
        return density, draw, density_no_grad

    ours = ours_flow(d, bins, dtype, "kernel")
    out["ours"] = torch_pair(ours, lambda: ours.log_prob(x), lambda: ours.sample(batch))
    unfused = ours_flow(d, bins, dtype, "kernel")
    unfused.load_state_dict(ours.state_dict())
    for block in unfused.blocks:
        block.fuse_subnet = False
    out["unfused"] = torch_pair(unfused, lambda: unfused.log_prob(x),
                                lambda: unfused.sample(batch))
    ref = ours_flow(d, bins, dtype, "reference")
    ref.load_state_dict(ours.state_dict())
    out["reference"] = torch_pair(ref, lambda: ref.log_prob(x), lambda: ref.sample(batch))

    try:  # same masks and the very same subnet weights as ours
        import madnis.nn
        md = madnis.nn.Flow(dims_in=d, bins=bins, layers=3, units=32, uniform_latent=True,
                            condition_masks=torch.stack(binary_masks(d)))
        for sub, block in zip(md.subnets, ours.blocks, strict=True):
            sub.layers.load_state_dict(block.subnet.state_dict())
        md = md.to(dtype)
        out["madnis"] = torch_pair(md, lambda: md.log_prob(x), lambda: md.sample(
            batch, return_log_prob=True, dtype=dtype))
    except ImportError as err:
        note(f"madnis: skipped: {err}")

    try:  # true coupling NSF on the box [-1/2, 1/2]^d (a shift of [0, 1]^d), our masks
        import zuko
        from zuko.flows.coupling import GeneralCouplingTransform
        from zuko.transforms import MonotonicRQSTransform
        torch.manual_seed(0)
        zk = zuko.lazy.Flow(
            [GeneralCouplingTransform(d, mask=m, hidden_features=[32, 32],
                                      univariate=partial(MonotonicRQSTransform, bound=0.5),
                                      shapes=[(bins,), (bins,), (bins - 1,)])
             for m in binary_masks(d)],
            zuko.lazy.UnconditionalDistribution(
                zuko.distributions.BoxUniform, torch.full((d,), -0.5),
                torch.full((d,), 0.5), buffer=True))
        perturb_last_([t.hyper[-1] for t in zk.transform.transforms],
                      torch.Generator().manual_seed(0))
        zk = zk.to(dtype)
        xz = x - 0.5
        out["zuko"] = torch_pair(zk, lambda: zk().log_prob(xz),
                                 lambda: zk().rsample_and_log_prob((batch,)))
        note("zuko: GeneralCouplingTransform + MonotonicRQSTransform(bound=0.5) on "
             "[-0.5, 0.5]^d with a BoxUniform latent (shifted domain, same masks; zuko's "
             "spline has K-1 free inner derivatives, ours K+1)")
    except ImportError as err:
        note(f"zuko: skipped: {err}")

    try:
        out["madspace"] = madspace_fns(d, bins, dtype, batch, threads, x)
    except ImportError as err:
        note(f"madspace: skipped: {err}")
        out["madspace"] = None
    return out


def madspace_fns(d: int, bins: int, dtype: torch.dtype, batch: int, threads: int,
                 x: torch.Tensor) -> Triple | None:
    """madspace's compiled Flow mapping; its density is the inverse map's weight."""
    import madspace as ms
    from madspace.torch import FunctionModule
    if dtype != torch.float64:
        note("madspace: float32 n/a (its compute graphs take 64-bit floats only)")
        return None
    ctx = ms.Context(threads)
    flow = ms.Flow(d, prefix="bench", bin_count=bins, subnet_hidden_dim=32,
                   subnet_layers=3, subnet_activation=ms.MLP.Activation.relu)
    flow.initialize_globals(ctx, seed=0)
    gen = torch.Generator().manual_seed(0)
    for name in ctx.global_names():  # last layers start at zero, as ours
        if name.rsplit(".", 2)[-2] == "layer3":
            glob = ctx.get_global(name).torch()
            glob.copy_(torch.randn(glob.shape, generator=gen, dtype=glob.dtype) * STD)
    inverse = FunctionModule(flow.inverse_function(), ctx)
    forward = FunctionModule(flow.forward_function(), ctx)
    note("madspace: ms.Flow (its own masks, 2 ceil(log2 d) blocks), density = weight of "
         "the inverse map (x -> latent), sample = forward map on torch.rand latents")

    def density() -> None:
        inverse.zero_grad(set_to_none=True)
        inverse(x)[1].log().sum().backward()

    def draw() -> None:
        with torch.no_grad():
            forward(torch.rand(batch, d, dtype=dtype))

    def density_no_grad() -> None:
        with torch.no_grad():
            inverse(x)
    return density, draw, density_no_grad


def si(value: float | None) -> str:
    """Compact rate, e.g. 1.23M."""
    if value is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def row(lead: list[str], rates: Mapping[str, float | None]) -> str:
    """Table row: leading cells, ours, then each comparator's rate and ours/theirs."""
    cells = lead + [si(rates.get("ours"))]
    for name in COMPARATORS:
        theirs, ours = rates.get(name), rates.get("ours")
        cells += [si(theirs), f"{ours / theirs:.2f}" if ours and theirs else "—"]
    return "| " + " | ".join(cells) + " |"


def header(lead: list[str], unit: str) -> list[str]:
    """Markdown table header matching :func:`row`."""
    cols = lead + [f"ours {unit}"]
    for name in COMPARATORS:
        cols += [f"{name} {unit}", f"ours/{name}"]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def profile_ours(batch: int) -> None:
    """torch.profiler summary of our log_prob + backward at d=8, 10 bins, float64."""
    from torch.profiler import ProfilerActivity, profile
    flow = ours_flow(8, 10, torch.float64, "kernel")
    x = torch.rand(batch, 8, dtype=torch.float64)
    flow.log_prob(x).sum().backward()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        flow.log_prob(x).sum().backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def build_id() -> str:
    """Which compiled extension was timed: file, content hash and build time."""
    from madnis_py._core import ext
    with open(ext.__file__, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:12]
    built = datetime.datetime.fromtimestamp(os.path.getmtime(ext.__file__))
    return f"{os.path.basename(ext.__file__)} sha256 {digest}, built {built:%Y-%m-%d %H:%M:%S}"


def render(batch: int, threads: int, parts: list[tuple[str, list[str]]]) -> str:
    """The markdown report: one table per part, then the notes."""
    clock = "CPU time" if CLOCK is time.process_time else "wall time"
    lines = [f"batch {batch}, torch threads {threads}, {clock}, ratios are ours/theirs; "
             f"ours = {BUILD}"]
    for title, rows in parts:
        if len(rows) > 2:  # more than the header: parts skipped by the options stay out
            lines += ["", f"### {title}", "", *rows]
    return "\n".join(lines + [""] + [f"- {n}" for n in NOTES]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=float, default=1e5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dims", type=int, nargs="*", default=[4, 8, 16],
                        help="flow dimensions for part B (none: part A only)")
    parser.add_argument("--bins", type=int, nargs="+", default=[10, 16])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"], help="dtypes to time")
    parser.add_argument("--skip-spline", action="store_true",
                        help="skip part A (the spline alone)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed runs per rate (the median is reported)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or CPU time of this process (steadier on a "
                             "machine shared with other jobs)")
    parser.add_argument("--quick", action="store_true", help="batch 1e4, d = 4 only")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the tables here (rewritten after every row)")
    parser.add_argument("--profile", action="store_true",
                        help="only profile our log_prob+backward (d=8, 10 bins, float64)")
    args = parser.parse_args()
    global BUILD, CLOCK
    BUILD = build_id()
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"ours = {BUILD}", flush=True)
    torch.set_num_threads(args.threads)
    batch, dims = (10_000, [4]) if args.quick else (int(args.batch), args.dims)
    if args.profile:
        profile_ours(batch)
        return
    dtypes = tuple(getattr(torch, name) for name in args.dtypes)
    spline_rows = header(["points", "bins", "dtype", "dir"], "pts/s")
    density_rows, sample_rows, nograd_rows = (header(["d", "bins", "dtype"], "ev/s")
                                              for _ in "abc")
    parts = [("A. spline alone, forward+backward (points/s)", spline_rows),
             ("B(a). flow log_prob(x).sum().backward() (events/s)", density_rows),
             ("B(b). flow sample(n) under no_grad (events/s)", sample_rows),
             ("B(c). flow log_prob(x) under no_grad (events/s)", nograd_rows)]

    def emit(rows: list[str], line: str) -> None:
        rows.append(line)
        print(line, flush=True)
        if args.markdown:
            with open(args.markdown, "w") as fh:
                fh.write(render(batch, args.threads, parts))

    for bins in [] if args.skip_spline else args.bins:  # the spline alone: `batch` points
        for dtype in dtypes:
            for inverse in (False, True):
                fns = spline_fns(batch, bins, dtype, inverse)
                rates = {k: batch / median_time(fn, args.repeats) for k, fn in fns.items()}
                emit(spline_rows, row([str(batch), str(bins), str(dtype)[6:],
                                       "inv" if inverse else "fwd"], rates))
    for d in dims:
        for bins in args.bins:
            for dtype in dtypes:
                fns_b = flow_fns(d, bins, dtype, batch, args.threads)
                for i, rows in ((0, density_rows), (1, sample_rows), (2, nograd_rows)):
                    rates = {k: (batch / median_time(pair[i], args.repeats) if pair else None)
                             for k, pair in fns_b.items()}
                    emit(rows, row([str(d), str(bins), str(dtype)[6:]], rates))
    print("\n" + render(batch, args.threads, parts))


if __name__ == "__main__":
    main()
