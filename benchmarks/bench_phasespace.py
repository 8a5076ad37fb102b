"""CPU throughput of our compiled phase-space mappings against the numpy reference and madspace.

Times the forward map (unit hypercube -> momenta + weight, float64) of one channel on
``batch`` points for each case below, run in the same process with the same random points:

- ours at 1 and at 2 threads (``ChannelMapping(...).map(r)`` / ``Rambo(...).map(r)`` on a
  CPU torch tensor, output allocation included);
- the numpy reference (:mod:`madnis_py.phasespace.reference`: ``channel_forward`` /
  ``rambo_forward``), the same algorithm written with whole-batch numpy operations;
- ``madspace`` (the MadGraph team's C++ phase-space library, PyPI), at 1 and 2 threads:
  ``PhaseSpaceMapping(Topology(Diagram(...)), sqrt_s, leptonic=True)`` built from the same
  diagram, its ``forward_function()`` run by ``FunctionRuntime(fn, Context(threads))`` on
  the same CPU tensor (outputs wrapped as torch tensors with ``from_dlpack``).

Cases (lepton beams, sqrt_s = 500 GeV, massless final state, so no x1/x2 dimensions in
either library):

1. ``2->2 s(Z)``: e+ e- -> Z* -> mu+ mu-, an s-channel Z (91.188, 2.441404), dims 2. At
   fixed shat nothing is sampled but the decay angles: both libraries do one two-body
   decay in the centre-of-mass frame.
2. ``2->4 s(ZZ)``: root -> (Z -> 2 3) (Z -> 4 5), massless root propagator, two
   Breit-Wigner Z's, dims 8. madspace builds the same decomposition (both Z invariants by
   Breit-Wigner in the same order, root decay, two decays): its per-event weight equals
   ours for the same r; only the angle conventions (which r is phi, the axes) differ, so
   the momenta differ event by event.
3. ``2->4 t(3)``: a t-channel chain of 4 massless blocks with 3 massless space-like
   propagators, dims 8. Same decomposition in both (the 2 time-like invariants of the
   chain flat in s, then the three 2->2 splittings with |t| sampled as 1/|t|^0.8), but the
   t's are not defined alike (madspace: ``TPropagatorMapping``, transfers measured from
   the incoming legs with momentum subtraction; ours: t-nodes boosted from the rest frame
   of each sub-system), so weights agree only on average (the phase-space volume).
4. ``2->4 RAMBO`` (flat, extra): ours ``Rambo`` is classic RAMBO (4 n = 16 random numbers
   per event, constant weight for a massless final state), madspace's flat mode is "fast RAMBO"
   (3 n - 4 = 8 numbers, ``fast_rambo_massive_com``): different algorithms for the same
   flat density, compared as "the flat 2->4 generator of each library".

Ratios: ours(1 thread)/madspace(1 thread) (target >= 0.5: within 2x per core),
ours(1 thread)/reference (target >= 10). Each rate is the median of ``--repeats`` timed
calls after one warm-up call (time.perf_counter); the columns of one row are timed
round-robin, so load from other processes on the shared 2-core machine falls on all of
them alike. Even so, on a busy machine a ratio scatters by 20-30 % between runs (one
outlier in nine runs while writing this: 0.42 against a typical 0.7), and the 2-thread
columns only scale when the second core is free: repeat a run before reading much into
a single row. After timing, one batch of each implementation is
checked (mean weight against the analytic massless phase-space volume, per-event
agreement with the reference and, where the maps coincide, with madspace) and the result
is printed under the table.

Reproduce (about 15 s)::

    python benchmarks/bench_phasespace.py --markdown /tmp/bench_phasespace.md

Smoke run (batch 1e4, under 20 s)::

    python benchmarks/bench_phasespace.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.dlpack import from_dlpack

from madnis_py.phasespace import (
    Beams,
    ChannelMapping,
    Decay,
    Propagator,
    Rambo,
    TChannel,
    Topology,
)

Timed = Callable[[], object]
SQRT_S = 500.0
Z = (91.188, 2.441404)  # mass, width in GeV
NOTES: list[str] = []


@dataclass(frozen=True)
class Case:
    """One benchmark channel: our topology (None: RAMBO) and madspace's diagram.

    ``ms_vertices`` lists madspace ``LineRef`` strings per vertex (``i`` incoming, ``o``
    outgoing, ``p`` propagator, 0-based); ``ms_props`` the (mass, width) of each
    propagator. ``ms_vertices = None`` with ``topology = None`` is madspace's flat mode.
    """

    key: str
    title: str
    masses: tuple[float, ...]
    topology: Topology | None
    ms_vertices: tuple[tuple[str, ...], ...] | None = None
    ms_props: tuple[tuple[float, float], ...] = field(default=())
    ms_same_map: bool = False  # madspace maps the same r to the same weight (not momenta)


CASES = [
    Case("2->2 s(Z)", "e+ e- -> Z* -> mu+ mu-", (0.0, 0.0),
         Topology(s_channel=Decay(Propagator(*Z, name="Z"), (2, 3)), name="2to2"),
         (("i0", "i1", "p0"), ("p0", "o0", "o1")), (Z,), ms_same_map=True),
    Case("2->4 s(ZZ)", "root -> (Z -> 2 3)(Z -> 4 5)", (0.0,) * 4,
         Topology(s_channel=Decay(Propagator(name="root"), (
             Decay(Propagator(*Z, name="Z1"), (2, 3)),
             Decay(Propagator(*Z, name="Z2"), (4, 5)))), name="s4"),
         (("i0", "i1", "p0"), ("p0", "p1", "p2"), ("p1", "o0", "o1"), ("p2", "o2", "o3")),
         ((0.0, 0.0), Z, Z), ms_same_map=True),
    Case("2->4 t(3)", "t-channel chain 2|3|4|5, 3 massless t-propagators", (0.0,) * 4,
         Topology(t_channel=TChannel((2, 3, 4, 5), (Propagator(),) * 3), name="t4"),
         (("i0", "o0", "p0"), ("p0", "o1", "p1"), ("p1", "o2", "p2"), ("p2", "i1", "o3")),
         ((0.0, 0.0),) * 3),
    Case("2->4 RAMBO", "flat 2->4 (ours: RAMBO 4n; madspace: fast RAMBO 3n-4)", (0.0,) * 4,
         None),
]


def median_times(fns: dict[str, Timed], repeats: dict[str, int]) -> dict[str, float]:
    """Seconds per call of each closure: one warm-up call each, then the median of
    ``repeats[name]`` timed calls, taken round-robin over the closures so that load from
    other processes on the shared machine falls on all columns alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for i in range(max(repeats.values(), default=0)):
        for name, fn in fns.items():
            if i < repeats[name]:
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def note(message: str) -> None:
    """Print a message once and keep it for the markdown file."""
    if message not in NOTES:
        NOTES.append(message)
        print(message, flush=True)


def massless_volume(n: int, s: float) -> float:
    """Massless n-body phase-space volume with (2 pi)^(4 - 3n) (RAMBO's w0)."""
    return ((2 * math.pi) ** (4 - 3 * n) * (math.pi / 2) ** (n - 1) * s ** (n - 2)
            / (math.factorial(n - 1) * math.factorial(n - 2)))


# ---------------------------------------------------------------------------- builders

def ours_mapping(case: Case, threads: int) -> ChannelMapping | Rambo:
    beams = Beams(SQRT_S, hadronic=False)
    if case.topology is None:
        return Rambo(case.masses, beams, threads=threads)
    return ChannelMapping(case.topology, case.masses, beams, threads=threads)


def reference_fn(case: Case, mapping: ChannelMapping | Rambo, r: np.ndarray
                 ) -> Callable[[], tuple[np.ndarray, ...]]:
    from madnis_py.phasespace import reference as ref
    if isinstance(mapping, Rambo):
        return lambda: ref.rambo_forward(case.masses, r, SQRT_S, False)
    return lambda: ref.channel_forward(mapping.program, r, SQRT_S, False)


def madspace_mapping(case: Case) -> Any:  # madspace.PhaseSpaceMapping
    """madspace's mapping of the same channel (lepton beams: ``leptonic=True``)."""
    import madspace as ms
    if case.topology is None:  # flat: external masses, beams first; default mode rambo
        return ms.PhaseSpaceMapping([0.0, 0.0, *case.masses], SQRT_S, leptonic=True)
    assert case.ms_vertices is not None
    diagram = ms.Diagram([0.0, 0.0], list(case.masses),
                         [ms.Propagator(mass=m, width=w) for m, w in case.ms_props],
                         [[ms.LineRef(x) for x in v] for v in case.ms_vertices])
    # invariant_power (1/s^p of massless time-like invariants, and 1/|t|^p) is 0.8 as our
    # DEFAULT_NU; t_channel_mode propagator is madspace's default.
    return ms.PhaseSpaceMapping(ms.Topology(diagram), SQRT_S, leptonic=True,
                                invariant_power=0.8)


def madspace_fn(mapping: Any, threads: int, r: torch.Tensor) -> Callable[[], list[torch.Tensor]]:
    """Forward map on the CPU with ``threads`` threads (madspace's default is all cores)."""
    import madspace as ms
    runtime = ms.FunctionRuntime(mapping.forward_function(), ms.Context(threads))
    return lambda: [from_dlpack(out) for out in runtime.call([r])]


# ---------------------------------------------------------------------------- checks

def check(case: Case, r: torch.Tensor, ours: ChannelMapping | Rambo,
          ref: Callable[[], tuple[np.ndarray, ...]] | None,
          ms_run: Callable[[], list[torch.Tensor]] | None, ms_same_r: bool) -> str:
    """One batch of each: mean weights against the analytic volume and agreement."""
    n = r.shape[0]
    batch = ours.map(r)
    w = batch.weight.numpy()
    parts = [f"analytic {massless_volume(len(case.masses), SQRT_S ** 2):.4g}",
             f"ours {w.mean():.4g} +- {w.std() / math.sqrt(n):.2g}"]
    if ref is not None:
        mom_ref, w_ref, _ = ref()
        rel = np.abs(w_ref - w) / np.maximum(np.abs(w), 1e-300)
        mom_ok = np.all(np.abs(mom_ref - batch.momenta.numpy()) <= 1e-9 * SQRT_S, axis=(1, 2))
        agree = int(np.sum((rel <= 1e-9) & mom_ok))
        parts.append(f"reference {w_ref.mean():.4g} (agrees with ours to 1e-9 on "
                     f"{agree}/{n} points)")
    if ms_run is not None:
        w_ms = ms_run()[-1].numpy()
        part = f"madspace {w_ms.mean():.4g} +- {w_ms.std() / math.sqrt(n):.2g}"
        if ms_same_r:
            rel = np.abs(w_ms - w) / np.maximum(np.abs(w), 1e-300)
            part += (f" (same r: per-event weight = ours to relative {rel.max():.1g}; "
                     "momenta differ by angle conventions)")
        else:
            part += " (a different map of r: per-event weights not comparable)"
        parts.append(part)
    return f"{case.key}: mean weight: " + "; ".join(parts)


# ---------------------------------------------------------------------------- output

def si(value: float | None) -> str:
    """Compact rate, e.g. 1.23M."""
    if value is None:
        return "—"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "—"


COLUMNS = ["case", "dims (ours/ms)", "ours 1T ev/s", "ours 2T ev/s", "2T/1T",
           "reference ev/s", "ours/reference", "madspace 1T ev/s", "ours/madspace (1T)",
           "madspace 2T ev/s", "ours/madspace (2T)", "ours ns/ev (1T)"]


def row(case: Case, dims: str, rates: dict[str, float | None]) -> str:
    o1, o2 = rates.get("ours1"), rates.get("ours2")
    m1, m2, ref = rates.get("ms1"), rates.get("ms2"), rates.get("reference")
    cells = [case.key, dims, si(o1), si(o2), ratio(o2, o1), si(ref), ratio(o1, ref),
             si(m1), ratio(o1, m1), si(m2), ratio(o2, m2),
             f"{1e9 / o1:.0f}" if o1 else "—"]
    return "| " + " | ".join(cells) + " |"


def targets(results: list[tuple[Case, dict[str, float | None]]]) -> list[str]:
    lines = ["| case | ours/madspace, 1 thread (target >= 0.5) | met? | "
             "ours/reference (target >= 10) | met? |", "|---|---|---|---|---|"]
    for case, rates in results:
        o1, m1, ref = rates.get("ours1"), rates.get("ms1"), rates.get("reference")
        a = o1 / m1 if o1 and m1 else None
        b = o1 / ref if o1 and ref else None
        lines.append(f"| {case.key} | {'—' if a is None else f'{a:.2f}'} | "
                     f"{'—' if a is None else ('yes' if a >= 0.5 else 'no')} | "
                     f"{'—' if b is None else f'{b:.1f}'} | "
                     f"{'—' if b is None else ('yes' if b >= 10 else 'no')} |")
    return lines


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def build_id() -> str:
    """Which compiled extension was timed: file, content hash and build time."""
    from madnis_py._core import ext
    path = str(ext.__file__)
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()[:12]
    built = datetime.datetime.fromtimestamp(os.path.getmtime(path))
    return f"{os.path.basename(path)} sha256 {digest}, built {built:%Y-%m-%d %H:%M:%S}"


def machine_info() -> str:
    try:
        import madspace as ms
        ms_version = getattr(ms, "__version__", None) or _dist_version("madspace")
    except ImportError:
        ms_version = "not installed"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, load average at start "
            f"{load}; torch threads {torch.get_num_threads()}; Python "
            f"{platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
            f"madspace {ms_version}; ours = {build_id()}")


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def render(command: str, info: str, batch: int, table: list[str],
           results: list[tuple[Case, dict[str, float | None]]], checks: list[str]) -> str:
    lines = ["Command:", "", f"    {command}", "", info, "",
             f"batch {batch}, float64, lepton beams, sqrt_s = {SQRT_S:g} GeV, massless final "
             "state; events/s, median of repeats after a warm-up; 1T/2T = threads; ratios "
             "are ours/theirs (above 1: ours faster)", "", *table, "",
             "Targets:", "", *targets(results), "", "Checks (one batch each, not timed):", "",
             *[f"- {c}" for c in checks]]
    if NOTES:
        lines += ["", "Notes:", "", *[f"- {n}" for n in NOTES]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- main

def run_case(case: Case, batch: int, repeats: int, ref_repeats: int,
             gen: torch.Generator) -> tuple[str, dict[str, float | None], str]:
    ours1, ours2 = ours_mapping(case, 1), ours_mapping(case, 2)
    r = torch.rand(batch, ours1.dims, generator=gen, dtype=torch.float64)
    r_np = r.numpy()  # shares memory; nobody writes to it
    fns: dict[str, Timed] = {"ours1": lambda: ours1.map(r), "ours2": lambda: ours2.map(r)}
    reps = {"ours1": repeats, "ours2": repeats}

    ref = None
    try:
        ref = reference_fn(case, ours1, r_np)
        fns["reference"], reps["reference"] = ref, ref_repeats
    except ImportError as err:
        note(f"reference: skipped: {err}")

    ms_dims = "—"
    ms1 = None
    same_r = False
    try:
        mapping = madspace_mapping(case)
        dims = mapping.random_dim()
        ms_dims = str(dims)
        same_r = dims == ours1.dims and case.ms_same_map
        r_ms = r if dims == ours1.dims else torch.rand(batch, dims, generator=gen,
                                                        dtype=torch.float64)
        ms1, ms2 = madspace_fn(mapping, 1, r_ms), madspace_fn(mapping, 2, r_ms)
        ms1()  # fails here, not inside the timing loop, if madspace cannot run the case
        fns["ms1"], fns["ms2"] = ms1, ms2
        reps["ms1"] = reps["ms2"] = repeats
    except ImportError as err:
        note(f"madspace: skipped: {err}")
    except Exception as err:  # noqa: BLE001 - report a case madspace cannot build or run
        note(f"madspace: {case.key}: failed: {type(err).__name__}: {err}")
        ms1 = None
    rates: dict[str, float | None] = {
        name: batch / seconds for name, seconds in median_times(fns, reps).items()}
    checked = check(case, r, ours1, ref, ms1, same_r)
    return f"{ours1.dims}/{ms_dims}", rates, checked


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=float, default=1e5)
    parser.add_argument("--repeats", type=int, default=21,
                        help="timed calls per compiled column (median); the reference gets "
                             "max(3, repeats // 3)")
    parser.add_argument("--cases", nargs="+", type=int, metavar="I",
                        help=f"subset of cases by index 1..{len(CASES)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="batch 1e4, 5 repeats")
    parser.add_argument("--markdown", metavar="FILE",
                        help="also write the table, command and machine info here "
                             "(rewritten after every case)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # our mapping's threads are passed explicitly; this is torch's
    batch = 10_000 if args.quick else int(args.batch)
    repeats = 5 if args.quick else args.repeats
    ref_repeats = max(3, repeats // 3)
    cases = CASES if not args.cases else [CASES[i - 1] for i in args.cases]
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *sys.argv[1:]])
    info = machine_info()
    print(command)
    print(info, flush=True)
    note("madspace: PhaseSpaceMapping(Topology(Diagram(...)), 500, leptonic=True, "
         "invariant_power=0.8), forward_function() run by FunctionRuntime(fn, Context(T)) "
         "on the CPU with T threads; both libraries take the same torch float64 input")

    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for line in table:
        print(line)
    results: list[tuple[Case, dict[str, float | None]]] = []
    checks: list[str] = []
    gen = torch.Generator().manual_seed(0)
    for case in cases:
        dims, rates, checked = run_case(case, batch, repeats, ref_repeats, gen)
        line = row(case, dims, rates)
        table.append(line)
        results.append((case, rates))
        checks.append(checked)
        print(line, flush=True)
        if args.markdown:
            with open(args.markdown, "w") as fh:
                fh.write(render(command, info, batch, table, results, checks))
    print()
    print("\n".join(targets(results)))
    print()
    for c in checks:
        print(c)


if __name__ == "__main__":
    main()
