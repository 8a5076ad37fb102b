"""VEGAS pre-training alone: its integrand calls and the unweighting efficiency it leaves.

For a run card, per VEGAS floor: ``Integrator.pretrain_vegas`` with the card's survey
settings (and ``--events N``: the survey stops once its calls reach those of N events;
0: all rounds), then ``--points`` fresh weighted points through the adapted maps alone
(no flows), and their eps_uw with the truncation-defined w_max (1e-3), the raw one and
the cross section. One torch thread.

    python benchmarks/bench_survey.py CARD [--floors 0,0.1,0.3] [--events 10000]
        [--rounds 10] [--points 100000]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from madnis_py.cards import load_run_card
from madnis_py.run import _integrator
from madnis_py.training.stopping import truncation_efficiency


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("card")
    ap.add_argument("--floors", default=None, help="comma-separated (default: the card's)")
    ap.add_argument("--events", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=None, help="default: the card's")
    ap.add_argument("--points", type=int, default=100_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    card = load_run_card(args.card)
    options = card.vegas_options()
    floors = ([float(f) for f in args.floors.split(",")] if args.floors
              else [float(options["floor"])])
    print("| floor | rounds (reason) | survey calls | survey [s] | sigma | eps_uw trunc. 1e-3 "
          "| eps_uw raw |")
    print("|---|---|---|---|---|---|---|")
    for floor in floors:
        _, mc = _integrator(card, card.load_process())
        t0 = time.perf_counter()
        mc.pretrain_vegas(nitn=args.rounds or int(options["nitn"]),
                          neval=int(options["neval"]), growth=float(options["growth"]),
                          floor=floor, n_events=args.events)
        seconds = time.perf_counter() - t0
        survey = mc.vegas_survey
        assert survey is not None
        mc.use_flow = [False] * mc.n_channels
        with torch.no_grad():
            w = mc.random_batch(args.points).weights()
        sigma, error = float(w.mean()), float(w.std() / math.sqrt(len(w)))
        print(f"| {floor} | {survey.rounds} ({survey.reason}) | {survey.n_calls} | "
              f"{seconds:.1f} | {sigma:.6g} +- {error:.2g} | {truncation_efficiency(w):.4f} | "
              f"{float(w.mean() / w.max()):.4f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
