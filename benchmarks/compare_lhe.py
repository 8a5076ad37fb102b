"""Two sets of unit-weight LHE files of one process, bin by bin: where do they differ?

Each side's files are pooled; an event carries ``sigma / N`` of its side (``sigma`` the
mean of the files' ``<init>`` cross sections, ``N`` the side's events). Per bin of each
observable, the two cross sections, their statistical errors ``sigma sqrt(n) / N`` and the
pull between them; then the same per initial state (the incoming partons, in order). For
processes with two charged leptons and jets (p p > e+ e- j j): m_ll, pT_ll, m_jj,
|dy_jj| of the two leading jets, their pT and the softer lepton's pT.

    python benchmarks/compare_lhe.py OURS.lhe.gz[,MORE...] MADEVENT.lhe.gz[,MORE...]

Files written from one integration with one seed share events: pool independent runs.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence

import numpy as np

from madnis_py.events.lhe.reader import read_lhe
from madnis_py.phasespace.cuts import invariant_mass, pt, rapidity

LEPTONS = {11, 13, 15}
JETS = {1, 2, 3, 4, 5, 21}

#: Observable name -> bin edges [GeV or 1].
EDGES: dict[str, list[float]] = {
    "m_ll": [0, 20, 40, 60, 80, 86, 91, 96, 100, 120, 200, np.inf],
    "pT_ll": [0, 10, 20, 40, 80, 150, 300, np.inf],
    "m_jj": [0, 50, 100, 200, 400, 800, 1500, np.inf],
    "dy_jj": [0, 1, 2, 3, 4, 5, 6, np.inf],
    "pT_j1": [0, 30, 40, 60, 100, 200, np.inf],
    "pT_j2": [0, 25, 30, 40, 60, 100, np.inf],
    "pT_l,min": [0, 15, 20, 30, 40, 60, np.inf],
}


def observables(paths: Sequence[str]) -> tuple[float, np.ndarray, list[tuple[int, int]]]:
    """The side's cross section [pb], one row of :data:`EDGES`' observables per event
    (NaN where the event lacks the particles) and each event's incoming partons."""
    sigmas, rows, initial = [], [], []
    for path in paths:
        init, events = read_lhe(path)
        sigmas.append(sum(p.xsecup for p in init.processes))
        for event in events:
            incoming = [x for x in event.particles if x.istup == -1]
            final = [x for x in event.particles if x.istup == 1]
            lep = [np.array(x.p4) for x in final if abs(x.idup) in LEPTONS]
            jet = [np.array(x.p4) for x in final if abs(x.idup) in JETS]
            jet.sort(key=lambda p: -pt(p))
            row = np.full(len(EDGES), np.nan)
            if len(lep) >= 2:
                row[0], row[1] = invariant_mass(lep[0], lep[1]), pt(lep[0] + lep[1])
                row[6] = min(pt(p) for p in lep)
            if len(jet) >= 2:
                row[2] = invariant_mass(jet[0], jet[1])
                row[3] = abs(rapidity(jet[0]) - rapidity(jet[1]))
                row[4], row[5] = pt(jet[0]), pt(jet[1])
            rows.append(row)
            initial.append((incoming[0].idup, incoming[1].idup))
    return float(np.mean(sigmas)), np.array(rows), initial


def _line(label: str, n_a: int, n_b: int, side_a: tuple[float, int],
          side_b: tuple[float, int]) -> str:
    (sig_a, tot_a), (sig_b, tot_b) = side_a, side_b
    xa, xb = sig_a * n_a / tot_a, sig_b * n_b / tot_b
    ea, eb = sig_a * np.sqrt(n_a) / tot_a, sig_b * np.sqrt(n_b) / tot_b
    pull = (xa - xb) / np.hypot(ea, eb) if n_a + n_b else 0.0
    return f"| {label} | {xa:.4g} +- {ea:.2g} | {xb:.4g} +- {eb:.2g} | {pull:+.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="comma-separated LHE files of the first side")
    parser.add_argument("b", help="comma-separated LHE files of the second side")
    parser.add_argument("--initial-states", type=int, default=14,
                        help="the largest initial states to list")
    args = parser.parse_args()
    sig_a, rows_a, init_a = observables(args.a.split(","))
    sig_b, rows_b, init_b = observables(args.b.split(","))
    side_a, side_b = (sig_a, len(rows_a)), (sig_b, len(rows_b))
    print(f"sigma A {sig_a:.6g} pb ({len(rows_a)} events), B {sig_b:.6g} pb "
          f"({len(rows_b)} events)\n")
    print("| bin | A [pb] | B [pb] | pull |\n|---|---|---|---|")
    for k, (name, edges) in enumerate(EDGES.items()):
        ca, _ = np.histogram(rows_a[:, k][~np.isnan(rows_a[:, k])], edges)
        cb, _ = np.histogram(rows_b[:, k][~np.isnan(rows_b[:, k])], edges)
        for i in range(len(ca)):
            label = f"{name} {edges[i]:g}-{edges[i + 1]:g}"
            print(_line(label, int(ca[i]), int(cb[i]), side_a, side_b))
    count_a, count_b = Counter(init_a), Counter(init_b)
    largest = sorted(set(count_a) | set(count_b), key=lambda s: -(count_a[s] + count_b[s]))
    for state in largest[:args.initial_states]:
        print(_line(f"initial {state[0]} {state[1]}", count_a[state], count_b[state],
                    side_a, side_b))


if __name__ == "__main__":
    main()
