"""How many integrand calls 10^4 events take while w_max settles on the events' draws.

The events' draws are replayed from a large sample of a trained integrator's event
weights, drawn with replacement, so that many runs of one process can be compared in
seconds: a calibration sample of ``--calibration`` points fixes the truncation-defined
``w_max``, then draws of ``--batch`` points go through an
:class:`~madnis_py.events.stream.EventStream` (accept/reject, held events, rises and
falls of ``w_max``) until the events are in. Each run is repeated with the falls off
(``lower_after = 0``) and with the first check for a fall at ``LOWER_FIRST`` times the
calibration's points, on the same random numbers (paired runs). One thread.

    python benchmarks/bench_w_max_settling.py dump CARD CHECKPOINT OUT.npy --points 2e7 \
        --seed 0
    python benchmarks/bench_w_max_settling.py simulate OUT.npy [MORE.npy ...] \
        --calibration 1.6e6 --runs 80 --first 0,2,4,8 [--markdown F]

The replay knows only the weights: the events are placeholders, and the weights of the
sample are the whole population (its largest weight is the largest any replay sees).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from madnis_py.events import Unweighter
from madnis_py.events import stream as stream_module
from madnis_py.events.generator import EventBatch
from madnis_py.events.stream import EventStream
from madnis_py.events.unweight import accept, share_above, truncation_max_weight


def dump(card_path: str, checkpoint: str, out: str, points: float, seed: int) -> None:
    """Event weights of ``points`` fresh points of the checkpoint's integrator."""
    import torch

    from madnis_py.cards import load_run_card
    from madnis_py.distributed.specs import IntegrandSpec
    from madnis_py.integrand import TorchChannels
    from madnis_py.training import Integrator

    torch.set_num_threads(1)
    card = load_run_card(card_path)
    mc = Integrator.load(checkpoint, TorchChannels(IntegrandSpec.from_card(card).build()))
    mc.generator.manual_seed(seed)
    parts, n, t0 = [], 0, time.perf_counter()
    while n < points:
        parts.append(mc.random_batch(321_600).weights())
        n += len(parts[-1])
    np.save(out, np.concatenate(parts))
    print(f"{out}: {n} weights in {time.perf_counter() - t0:.0f} s")


def _placeholders(k: int) -> EventBatch:
    return EventBatch(pdgs=np.zeros((k, 1), dtype=np.int64),
                      colours=np.zeros((k, 1, 2), dtype=np.int64), momenta=np.zeros((k, 1, 4)),
                      weights=np.ones(k), scales=np.zeros(k), alpha_s=np.zeros(k),
                      subprocess=np.zeros(k, dtype=np.int64), channel=np.zeros(k, dtype=np.int64))


def replay(population: np.ndarray, *, calibration: int, first: int, seed: int,
           n_events: int = 10_000, batch: int = 321_600,
           max_points: int = 300_000_000) -> dict[str, float]:
    """One generation replayed; ``first = 0``: ``w_max`` never falls."""
    rng = np.random.default_rng(seed)
    n = len(population)
    w_cal = truncation_max_weight(population[rng.integers(n, size=calibration)], 1e-3)
    stream_module.LOWER_FIRST = max(first, 1)
    stream = EventStream(n_events, w_cal, sigma=1.0, unweighter=Unweighter(), norm=1.0,
                         rng=rng, n_subprocesses=1, settle_events=200_000,
                         lower_after=calibration if first > 0 else 0)
    points = 0
    while not stream.complete and points < max_points:
        if stream.done < stream.n_events:
            w = population[rng.integers(n, size=batch)]
            points += batch
            passed = accept(w, stream.w_max, rng)
            stream.observe(w)
            _, _, e = stream.take(passed)
            if len(e):
                stream.emit(_placeholders(len(e)), e)
        stream.settle()
    return {"w_cal": w_cal, "points": points, "w_max": stream.w_max,
            "bias": stream.truncation_bias, "share": share_above(population, stream.w_max),
            "lowered": len(stream.lowered), "raised": len(stream.raised)}


def simulate(files: list[str], calibration: int, runs: int, firsts: list[int],
             markdown: str | None) -> None:
    population = np.concatenate([np.load(f) for f in files])
    rows = ["| first check | mean calls | median | 75 % | 90 % | largest | truncated share "
            "of the events' draws, median / largest | runs lowered / raised |",
            "|---|---|---|---|---|---|---|---|"]
    for first in firsts:
        res = [replay(population, calibration=calibration, first=first, seed=s)
               for s in range(runs)]
        calls = np.array([r["points"] for r in res]) / 1e6
        bias = np.array([r["bias"] for r in res])
        rows.append(
            f"| {'off' if first == 0 else f'{first} x calibration'} | {calls.mean():.1f}M | "
            f"{np.median(calls):.1f}M | {np.percentile(calls, 75):.1f}M | "
            f"{np.percentile(calls, 90):.1f}M | {calls.max():.1f}M | "
            f"{np.median(bias):.2g} / {bias.max():.2g} | "
            f"{sum(r['lowered'] > 0 for r in res)} / {sum(r['raised'] > 0 for r in res)} |")
        print(rows[-1], flush=True)
    head = (f"{len(population)} weights, calibration {calibration} points, {runs} runs, "
            f"10^4 events, draws of 321600")
    print(head)
    if markdown:
        Path(markdown).write_text(head + "\n\n" + "\n".join(rows) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("card")
    d.add_argument("checkpoint")
    d.add_argument("out")
    d.add_argument("--points", type=float, default=2e7)
    d.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("simulate")
    s.add_argument("files", nargs="+")
    s.add_argument("--calibration", type=float, default=1.6e6)
    s.add_argument("--runs", type=int, default=80)
    s.add_argument("--first", default="0,2,4,8")
    s.add_argument("--markdown")
    args = ap.parse_args()
    if args.command == "dump":
        dump(args.card, args.checkpoint, args.out, args.points, args.seed)
    else:
        simulate(args.files, int(args.calibration), args.runs,
                 [int(v) for v in args.first.split(",")], args.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
