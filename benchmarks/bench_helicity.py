"""Summing MadGraph's helicities against sampling one: cost per point and eps_uw.

For a run card of a MadGraph process (``output madnis_py``): the card's VEGAS survey for
``--events`` events, then ``--points`` weighted points through the maps. On the points
inside the cuts, |M|^2 summed over helicities (``smatrixhel_`` with ``nhel = -1``, what
the integrand calls) and every helicity alone (``nhel = h``) are timed (CPU, one thread).
Sampling one helicity per point with probability ``p_h`` (its average share of the cross
section, or the square root of that, normalised) gives the event weight
``w |M_h|^2 / (p_h sum_h' |M_h'|^2)``; its eps_uw (truncation 1e-3) is compared with the
summed one on the same points. Processes with one subprocess.

    python benchmarks/bench_helicity.py CARD [--events 10000] [--points 30000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from madnis_py import _ext
from madnis_py.cards import load_run_card
from madnis_py.run import _integrator
from madnis_py.training.stopping import truncation_efficiency


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("card")
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=30_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    card = load_run_card(args.card)
    integrand, mc = _integrator(card, card.load_process())
    me = integrand.matrix_element
    if not hasattr(me, "_smatrixhel"):
        raise SystemExit("bench_helicity needs a MadGraph library (smatrixhel_)")
    mc.pretrain_vegas(**{**card.vegas_options(), "n_events": args.events})
    channels = mc.integrand
    with channels.recording() as records:
        w = mc.random_batch(args.points).weights()
    if len(integrand.process.subprocesses) != 1:
        raise SystemExit("bench_helicity takes a process with one subprocess")
    sub = integrand.process.subprocesses[0]
    momenta, alpha_s, weights, channel = [], [], [], []
    start = 0
    for rec in records:
        on = rec.batch.f > 0
        assert rec.batch.alpha_s is not None
        momenta.append(sub.library_momenta(rec.batch.momenta[on]))
        alpha_s.append(rec.batch.alpha_s[on])
        weights.append(w[start:start + len(rec.x)][on])
        channel.append(np.full(int(on.sum()), rec.channel))
        start += len(rec.x)
    p = np.ascontiguousarray(np.concatenate(momenta))
    a = np.ascontiguousarray(np.concatenate(alpha_s))
    wp = np.concatenate(weights)
    ch = np.concatenate(channel)
    scale2 = np.zeros_like(a)
    pdgs = np.ascontiguousarray(sub.library_pdgs, dtype=np.int32)
    def smatrix(nhel: int) -> tuple[np.ndarray, float]:
        out = np.empty(len(p))
        t = time.process_time()
        _ext.me_smatrixhel(me._smatrixhel, pdgs, -1, p, a, scale2, nhel, out)
        return out, time.process_time() - t

    summed, t_sum = smatrix(-1)
    # every helicity index the process could have (3 states per particle at most); an
    # index past the library's last gives 0, as does a helicity that never contributes
    per_hel, t_hel = [], 0.0
    for h in range(1, 3 ** len(sub.pdgs) + 1):
        m, dt = smatrix(h)
        if np.any(m):
            per_hel.append(m)
            t_hel += dt
    m = np.stack(per_hel, axis=1)
    share = m / m.sum(axis=1, keepdims=True)
    p_h = (share * wp[:, None]).sum(axis=0)
    p_h /= p_h.sum()
    print(f"{args.card}: {len(p)} points inside the cuts of {args.points}; "
          f"{m.shape[1]} helicities, {int((p_h > 0).sum())} contributing")
    print(f"|M|^2 summed: {t_sum / len(p) * 1e6:.2f} us per point; one helicity: "
          f"{t_hel / len(p) / m.shape[1] * 1e6:.2f} us per point; the summed |M|^2 over "
          f"the sum of the helicities' {float(np.median(summed / m.sum(axis=1))):.6g} "
          "(averaging factors)")
    eps = truncation_efficiency(w)
    rng = np.random.default_rng(args.seed)
    print(f"| helicity choice | eps_uw trunc. 1e-3 (summed: {eps:.4f}) |")
    print("|---|---|")
    per_channel = np.zeros((mc.n_channels, len(p_h)))
    np.add.at(per_channel, ch, share * wp[:, None])
    per_channel /= np.maximum(per_channel.sum(axis=1, keepdims=True), 1e-300)
    choices = {"average share": np.broadcast_to(p_h, per_channel.shape),
               "sqrt of it": np.broadcast_to(np.sqrt(p_h), per_channel.shape),
               "average share in the point's channel": per_channel,
               "sqrt of that": np.sqrt(per_channel)}
    for label, q in choices.items():
        q = np.maximum(q, 1e-6)
        q = q / q.sum(axis=1, keepdims=True)
        qp = q[ch]  # (points, helicities)
        pick = (rng.random(len(p))[:, None] > np.cumsum(qp, axis=1)).sum(axis=1)
        pick = np.minimum(pick, qp.shape[1] - 1)
        rows = np.arange(len(p))
        wh = wp * share[rows, pick] / qp[rows, pick]
        rest = np.zeros(len(w) - len(p))  # the points outside the cuts
        print(f"| {label} | {truncation_efficiency(np.concatenate([wh, rest])):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
