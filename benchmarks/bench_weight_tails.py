"""Unweighting efficiency against the weights' tail: the VEGAS floor and the defensive mixtures.

For each built-in process, seed and setting: the process's shipped run card (VEGAS
pre-training, the flows' training, the integral), then 4 x 100k fresh weighted events of
the trained integrator, and eps_uw = <w> / w_max with w_max the truncation-defined maximum
weight (at most 1e-3 of the cross section above it, as the unweighting uses by default),
per 100k block and on all 400k, beside the raw <w> / max w. One thread.

    python benchmarks/bench_weight_tails.py --process drell_yan --seeds 1,2 \
        --settings 0:0:0,0:0:0.3 [--markdown F]

A setting is ``mixture:uniform_mixture:vegas_floor``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from madnis_py.cards import load_run_card
from madnis_py.events.unweight import truncation_max_weight
from madnis_py.physics.builtin import builtin_process_dir
from madnis_py.run import _integrator


def measure(process: str, seed: int, mixture: float, uniform: float,
            floor: float) -> dict[str, float]:
    card = load_run_card(builtin_process_dir(process) / "run_card.toml")
    card = dataclasses.replace(
        card, run=dataclasses.replace(card.run, seed=seed),
        training=dataclasses.replace(card.training, mixture=mixture, uniform_mixture=uniform,
                                     vegas_floor=floor))
    torch.manual_seed(seed)
    _, mc = _integrator(card, card.load_process())
    t0 = time.process_time()
    if card.training.vegas:
        mc.pretrain_vegas(**card.vegas_options())
    mc.train(**card.train_options())
    res = mc.integrate(**card.integrate_options())
    cpu = time.process_time() - t0
    blocks = [mc.random_batch(100_000).weights() for _ in range(4)]
    eps = [float(w.mean() / truncation_max_weight(w, 1e-3)) for w in blocks]
    w = np.concatenate(blocks)
    return {"sigma": res.value, "error": res.error, "cpu_s": cpu,
            "eps_min": min(eps), "eps_max": max(eps),
            "eps_all": float(w.mean() / truncation_max_weight(w, 1e-3)),
            "eps_raw": float(w.mean() / w.max())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--process", default="drell_yan")
    ap.add_argument("--seeds", default="1")
    ap.add_argument("--settings", default="0:0:0,0:0:0.3")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    lines = [f"`python {' '.join(sys.argv)}`", "",
             "| process | seed | mixture | uniform_mixture | vegas_floor | sigma [pb] | "
             "eps_uw trunc 1e-3 (400k; 100k blocks min-max) | eps_uw raw | CPU train [s] |",
             "|---|---|---|---|---|---|---|---|---|"]
    for seed in (int(s) for s in args.seeds.split(",")):
        for setting in args.settings.split(","):
            lam, mu, floor = (float(v) for v in setting.split(":"))
            r = measure(args.process, seed, lam, mu, floor)
            lines.append(f"| {args.process} | {seed} | {lam:g} | {mu:g} | {floor:g} | "
                         f"{r['sigma']:.6g} +- {r['error']:.2g} | {r['eps_all']:.3f} "
                         f"({r['eps_min']:.3f}-{r['eps_max']:.3f}) | {r['eps_raw']:.4f} | "
                         f"{r['cpu_s']:.0f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
