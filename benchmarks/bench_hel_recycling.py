"""MadGraph matrix elements with and without helicity recycling: CPU time and agreement.

For two ``output madnis_py`` directories of the same process (built with and without
recycling, ``output madnis_py DIR --hel_recycling=False``): RAMBO points at a fixed
partonic energy (the same momenta for both), |M|^2 and the per-diagram |M_i|^2 from
``madnis_smatrix_amp2_`` (what the integrand calls), CPU seconds per point (one thread,
best of ``--repeat`` interleaved rounds) and the largest relative differences, per subprocess.

    python benchmarks/bench_hel_recycling.py OLD_DIR NEW_DIR [--points 2000]
        [--sqrt-s 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from madnis_py.phasespace.reference import rambo_forward
from madnis_py.physics.matrix_element import MatrixElement


def _masses(output: Path, pdgs: list[int]) -> list[float]:
    """Final-state pole masses from the output's param_card (BLOCK MASS)."""
    masses: dict[int, float] = {}
    block = ""
    for line in (output / "Cards" / "param_card.dat").read_text().splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if words[0].lower() == "block":
            block = words[1].lower()
        elif block == "mass" and len(words) >= 2:
            masses[int(words[0])] = float(words[1])
    return [abs(masses.get(abs(p), 0.0)) for p in pdgs[2:]]


def _time(mes: list[MatrixElement], p: np.ndarray, pdgs: list[int],
          repeat: int) -> list[float]:
    """CPU seconds per point of each, best of ``repeat`` interleaved rounds (the machine
    is shared: the minimum is the least disturbed)."""
    best = [np.inf] * len(mes)
    for _ in range(repeat):
        for k, me in enumerate(mes):
            t0 = time.process_time()
            me.smatrix_amp2(p, pdgs)
            best[k] = min(best[k], time.process_time() - t0)
    return [b / p.shape[0] for b in best]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = np.maximum(np.abs(a), np.abs(b))
    d = np.abs(a - b)
    return float(np.max(np.where(scale > 0, d / np.where(scale > 0, scale, 1), 0.0)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--points", type=int, default=2000)
    ap.add_argument("--sqrt-s", type=float, default=1000.0)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    mes = [MatrixElement.from_madgraph(d / "lib" / "libmadnis_me.so",
                                       d / "Cards" / "param_card.dat")
           for d in (args.old, args.new)]
    info = json.loads((args.old / "madgraph.json").read_text())
    rng = np.random.default_rng(args.seed)
    for sub in info["subprocesses"]:
        pdgs = sub["processes"][0]["pdgs"]
        masses = _masses(args.old, pdgs)
        r = rng.random((args.points, 4 * len(masses)))
        p, w, _ = rambo_forward(masses, r, args.sqrt_s, False)
        p = np.ascontiguousarray(p[w > 0])
        (m_old, a_old), (m_new, a_new) = (me.smatrix_amp2(p, pdgs) for me in mes)
        # twice: the standalone helicity filter settles after 20 calls
        (m_old, a_old), (m_new, a_new) = (me.smatrix_amp2(p, pdgs) for me in mes)
        t_old, t_new = _time(mes, p, pdgs, args.repeat)
        print(f"{sub['processes'][0]['description']}: {p.shape[0]} points, "
              f"old {t_old * 1e6:.2f} us, new {t_new * 1e6:.2f} us, "
              f"speed-up {t_old / t_new:.2f}x; max rel diff |M|^2 "
              f"{_rel(m_old, m_new):.2e}, AMP2 {_rel(a_old, a_new):.2e} "
              f"(identical: {np.array_equal(m_old, m_new)}, "
              f"{np.array_equal(a_old, a_new)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
