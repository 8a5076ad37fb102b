"""Time to 10^5 unweighted events for each built-in process from a trained checkpoint.

For every built-in process: ``madnis-py integrate`` with the process's shipped run card
(training, VEGAS pre-training and the integral; not timed here), then ``madnis-py
generate --checkpoint ... -n N`` timed end to end in this process (checkpoint load,
calibration of w_max, sampling, LHE writing with gzip; accepted points are written from
their first evaluation). Threads: the command's default (one).

    python benchmarks/bench_events.py [--events 100000] [--only drell_yan,ttbar] [--markdown F]

``--reevaluation`` instead compares, on the same checkpoint and seed in this process (one
thread), the generation that writes accepted points from their first evaluation (the
default) with the one that evaluates them a second time (``reevaluate=True``, the former
behaviour): integrand calls per event (calibration included, and without it), wall and
CPU seconds of ``generate_events`` (medians of ``--repeat``, the two paths alternating),
and whether the two LHE files are byte-identical.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from madnis_py.cli import main as cli
from madnis_py.physics.builtin import builtin_process_dir, builtin_processes


def run(argv: list[str]) -> dict[str, object]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli(argv + ["--json", "--quiet"])
    if code != 0:
        raise RuntimeError(f"madnis-py {' '.join(argv)} exited {code}")
    return json.loads(out.getvalue().strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare_reevaluation(names: list[str], events: int, repeat: int) -> list[str]:
    """The ``--reevaluation`` table (see the module docstring)."""
    import statistics

    from madnis_py.cards import load_run_card
    from madnis_py.events.output import cross_section, generate_events
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.training import Integrator

    lines = [f"python {' '.join(sys.argv)}; {platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} thread(s)", "",
             "| process | path | eps_uw | calls/event | calls/event w/o calibration | "
             f"t({events} events) wall / CPU [s] | events/s (CPU) | LHE identical |",
             "|---|---|---|---|---|---|---|---|"]
    notes: list[str] = [""]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            card_path = builtin_process_dir(name) / "run_card.toml"
            out = Path(tmp) / name
            trained = run(["integrate", str(card_path), "--output", str(out),
                           "--threads", "1"])
            steps = ", ".join(f"{k} {v}" for k, v in trained["calls_by_step"].items())
            notes.append(f"{name}: `integrate` with the shipped card, {trained['calls']} "
                         f"integrand calls ({steps})")
            card = load_run_card(card_path)
            integrand = Integrand(card.load_process(), **card.integrand_options())
            mc = Integrator.load(out / "checkpoint.pt", TorchChannels(integrand))
            result = cross_section(mc, card)
            files: dict[bool, bytes] = {}
            times: dict[bool, list[float]] = {True: [], False: []}
            cpu: dict[bool, list[float]] = {True: [], False: []}
            calls: dict[bool, tuple[float, float, float]] = {}
            for k in range(repeat):  # the two paths alternate: the machine's load hits both
                for reevaluate in (True, False):
                    lhe = out / f"events-{reevaluate}-{k}.lhe"
                    t0, c0 = time.perf_counter(), time.process_time()
                    done = generate_events(mc, card, events, lhe, sigma=result.value,
                                           error=result.error, seed=card.run.seed + 1,
                                           reevaluate=reevaluate)
                    times[reevaluate].append(time.perf_counter() - t0)
                    cpu[reevaluate].append(time.process_time() - c0)
                    files[reevaluate] = lhe.read_bytes()
                    calls[reevaluate] = (done.efficiency, done.n_calls / events,
                                         (done.n_calls - done.calibration_calls) / events)
            for reevaluate in (True, False):
                t = statistics.median(times[reevaluate])
                c = statistics.median(cpu[reevaluate])
                eff, per, per_gen = calls[reevaluate]
                row = (f"| {name} | {'second evaluation' if reevaluate else 'first only'} | "
                       f"{eff:.3g} | {per:.2f} | {per_gen:.2f} | {t:.2f} / {c:.2f} | "
                       f"{events / c:.0f} | "
                       f"{'' if reevaluate else files[True] == files[False]} |")
                print(row, flush=True)
                lines.append(row)
    return lines + notes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--only", default=None, help="comma-separated process names")
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--reevaluation", action="store_true",
                    help="compare first-evaluation and re-evaluated events instead")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    names = args.only.split(",") if args.only else builtin_processes()
    if args.reevaluation:
        torch.set_num_threads(1)
        text = "\n".join(compare_reevaluation(names, args.events, args.repeat))
        print(text)
        if args.markdown:
            Path(args.markdown).write_text(text + "\n")
        return 0
    lines = [f"python {' '.join(sys.argv)}; {platform.machine()}, torch {torch.__version__}, "
             f"{torch.get_num_threads()} threads", "",
             "| process | sigma [pb] | eps_uw (gen.) | weighted points | t(train) [s] | "
             f"t({args.events} events) [s] | events/s | LHE size [MB] |",
             "|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            card = str(builtin_process_dir(name) / "run_card.toml")
            out = Path(tmp) / name
            t0 = time.perf_counter()
            trained = run(["integrate", card, "--output", str(out)])
            t_train = time.perf_counter() - t0
            t0 = time.perf_counter()
            gen = run(["generate", card, "--checkpoint", str(out / "checkpoint.pt"),
                       "-n", str(args.events), "--output", str(out / "gen")])
            t_gen = time.perf_counter() - t0
            size = Path(str(gen["lhe"])).stat().st_size / 1e6
            row = (f"| {name} | {trained['sigma_pb']:.5g} +- {trained['error_pb']:.2g} | "
                   f"{gen['efficiency']:.3g} | {gen['generation_calls']} | {t_train:.1f} | "
                   f"{t_gen:.1f} | {args.events / t_gen:.0f} | {size:.1f} |")
            print(row, flush=True)
            lines.append(row)
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
