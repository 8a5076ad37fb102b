"""Matrix-element calls through the loader, and integrand evaluations, per second.

For every built-in process: |M|^2 at a batch of phase-space points through the compiled
loop over the library's ``smatrixhel_`` (``MatrixElement.__call__``) against a Python loop
making one cffi call per event (the baseline), in the same process on the same points.
Then whole integrand evaluations (phase space + PDFs + |M|^2 + cuts) per second for
Drell-Yan with the embedded PDF. ``--shared PROCESS`` (a built-in name or a process
directory, repeatable) times the integrand of every channel per point with the
subprocesses that share a matrix element (``matrix_element`` in the card) evaluated once,
against the same process with every subprocess evaluated on its own (the baseline), on
the same points, and checks that both give the same integrand bit for bit.

    python benchmarks/bench_physics.py [--batch 100000] [--quick] [--markdown FILE]
        [--shared PROCESS ...]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from madnis_py.integrand import Integrand
from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics import builtin_processes, load_process


def best_rate(fn, n: int, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n / statistics.median(times)


def python_loop(me, momenta: np.ndarray, pdgs) -> np.ndarray:
    """One cffi call per event: what a pure-Python driver would do."""
    ffi, lib = me._ffi, me._lib  # the loader's own handle on the library
    f = lib.smatrixhel_
    pd = ffi.new(f"int[{len(pdgs)}]", list(pdgs))
    procid, npdg, nhel = ffi.new("int*", -1), ffi.new("int*", len(pdgs)), ffi.new("int*", -1)
    alphas, scale2, ans = ffi.new("double*", 0.118), ffi.new("double*", 0.0), ffi.new("double*")
    out = np.empty(len(momenta))
    for i, ev in enumerate(momenta):
        f(pd, procid, npdg, ffi.cast("double*", ffi.from_buffer(ev)), alphas, scale2, nhel, ans)
        out[i] = ans[0]
    return out


def shared_matrix_elements(name: str, n: int, repeats: int) -> None:
    """Microseconds per point of every channel's integrand, with and without the shared
    matrix elements, on the same ``n`` points per channel (one thread)."""
    import dataclasses

    proc = load_process(name)
    alone = dataclasses.replace(proc, subprocesses=tuple(
        dataclasses.replace(s, matrix_element=None) for s in proc.subprocesses))
    scale = {} if proc.defaults.scale or proc.defaults.dynamical_scale_choice else {
        "dynamical_scale_choice": 3}
    grouped, single = Integrand(proc, **scale), Integrand(alone, **scale)
    rng = np.random.default_rng(1)
    xs = [rng.random((n, grouped.dims(c))) for c in range(grouped.n_channels)]
    for c, x in enumerate(xs):
        a, b = grouped(x, c), single(x, c)
        assert np.array_equal(a.f, b.f) and np.array_equal(a.prior, b.prior), c

    def per_point(integ: Integrand) -> float:
        def run() -> None:
            for c, x in enumerate(xs):
                integ(x, c)
        times = []
        for _ in range(repeats):
            t = time.process_time()
            run()
            times.append(time.process_time() - t)
        return statistics.median(times) / (n * len(xs)) * 1e6

    groups = {(s.matrix_element, s.mirror) for s in proc.subprocesses}
    t_grouped, t_single = per_point(grouped), per_point(single)
    print(f"{name}: {len(proc.subprocesses)} subprocesses, {len(groups)} matrix "
          f"evaluations per point; integrand {t_grouped:.1f} us per point shared, "
          f"{t_single:.1f} us each on its own: {t_single / t_grouped:.2f}x (same f)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="batch 1e4, 2 repeats")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--shared", action="append", default=[],
                        help="a process whose shared matrix elements to time")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch, args.repeats = 10_000, 2
    if args.shared:
        for name in args.shared:
            shared_matrix_elements(name, min(args.batch, 20_000), args.repeats)
        return 0
    rng = np.random.default_rng(0)
    rows = []
    for name in builtin_processes():
        proc = load_process(name)
        me = proc.matrix_element()
        sub = proc.subprocesses[0]
        masses = proc.final_masses()
        sqrt_s = max(proc.defaults.sqrt_s or 1000.0, 2 * sum(masses) + 100.0)
        rambo = Rambo(masses, Beams(min(sqrt_s, 1000.0) if not proc.hadronic else 1000.0))
        p = np.ascontiguousarray(rambo.map(rng.random((args.batch, rambo.dims))).momenta)
        loop_n = min(args.batch, 20_000)
        batched = me(p[:loop_n], sub.pdgs)
        np.testing.assert_array_equal(batched, python_loop(me, p[:loop_n], sub.pdgs))
        fast = best_rate(lambda me=me, p=p, pdgs=sub.pdgs: me(p, pdgs), args.batch,
                         args.repeats)
        slow = best_rate(lambda me=me, p=p[:loop_n], pdgs=sub.pdgs: python_loop(me, p, pdgs),
                         loop_n, max(1, args.repeats // 2))
        rows.append((f"{name} {list(sub.pdgs)}", fast, slow))
        print(f"{rows[-1][0]:40s} C++ loop {fast / 1e6:7.2f} M/s   Python loop "
              f"{slow / 1e6:7.3f} M/s   ratio {fast / slow:6.1f}")
    integ = Integrand("drell_yan", sqrt_s=13000.0, scale=91.188, cuts={"mmll": 50.0})
    x = rng.random((args.batch, integ.dims(0)))
    rate = best_rate(lambda: integ(x, 0, prior=False), args.batch, args.repeats)
    print(f"Drell-Yan integrand (phase space + PDFs + 8 subprocesses + cuts): "
          f"{rate / 1e6:.3f} M evaluations/s")
    if args.markdown:
        lines = ["Command:", "", "    python " + " ".join(sys.argv), "",
                 f"Python {platform.python_version()}, batch {args.batch}, median of "
                 f"{args.repeats}", "",
                 "| process (first subprocess) | C++ loop calls/s | Python cffi loop calls/s | ratio |",
                 "|---|---|---|---|"]
        lines += [f"| {r[0]} | {r[1]:.3g} | {r[2]:.3g} | {r[1] / r[2]:.1f} |" for r in rows]
        lines += ["", f"Drell-Yan integrand evaluations/s (one channel, 13 TeV, fixed scale, "
                      f"mll > 50, LHToyPDF): {rate:.3g}"]
        args.markdown.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
