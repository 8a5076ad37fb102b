"""Threads on a shared machine: the README main job with 1 vs all cores, idle vs loaded.

Runs ``madnis-py run CARD`` (default: the built-in ``drell_yan``, the README's main job)
in fresh subprocesses, back to back, for each thread setting:

* ``1``: ``MADNIS_PY_THREADS=1`` (madnis-py's default; ``OMP_NUM_THREADS=1`` as well);
* ``N``: ``MADNIS_PY_THREADS=N`` with N the machine's cores (torch's own default count);
* ``N passive``: the same with ``OMP_WAIT_POLICY=PASSIVE``;

first on the machine as it is ("idle": nothing started by this script), then with
``--load`` busy processes (pure-Python spin loops, one per core by default) running beside
it ("loaded"). Reports wall and CPU seconds (the child's user + system time) and checks
that every run printed the same cross section (threads change the speed, never the bits).

    python benchmarks/bench_threads.py [--card drell_yan] [--load 2] [--markdown F]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _spin() -> None:  # pragma: no cover - a load generator
    while True:
        pass


def run_once(card: str, env_extra: dict[str, str], out: Path) -> tuple[float, float, float]:
    """(wall s, CPU s, sigma) of one ``madnis-py run`` in a fresh process."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY",
                        "MADNIS_PY_THREADS")}
    env.update(env_extra)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "madnis_py.cli", "run", card, "--output",
                           str(out), "--json", "--quiet", "--force"],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"madnis-py run failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, float(summary["sigma_pb"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--card", default="drell_yan")
    ap.add_argument("--load", type=int, default=os.cpu_count() or 2,
                    help="busy processes beside the loaded runs (default: one per core)")
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    settings = [("1", {"MADNIS_PY_THREADS": "1", "OMP_NUM_THREADS": "1"}),
                (f"{cores}", {"MADNIS_PY_THREADS": str(cores), "OMP_NUM_THREADS": str(cores)}),
                (f"{cores} passive", {"MADNIS_PY_THREADS": str(cores),
                                      "OMP_NUM_THREADS": str(cores),
                                      "OMP_WAIT_POLICY": "PASSIVE"})]
    rows = []
    sigmas = set()
    with tempfile.TemporaryDirectory() as tmp:
        for load in (0, args.load):
            spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(load)]
            for p in spinners:
                p.start()
            try:
                for name, env in settings:
                    wall, cpu, sigma = run_once(args.card, env, Path(tmp) / "run")
                    sigmas.add(sigma)
                    rows.append((load, name, wall, cpu, sigma))
                    print(f"load {load} threads {name}: wall {wall:.1f} s, CPU {cpu:.1f} s, "
                          f"sigma {sigma!r}", flush=True)
            finally:
                for p in spinners:
                    p.terminate()
                    p.join()
    lines = [f"`python {' '.join(sys.argv)}`; {platform.machine()}, {cores} cores, "
             f"card {args.card}", "",
             "| busy processes beside | threads | wall [s] | CPU [s] | wall / 1-thread wall |",
             "|---|---|---|---|---|"]
    for load, name, wall, cpu, _ in rows:
        base = next(w for ld, n, w, _, _ in rows if ld == load and n == "1")
        lines.append(f"| {load} | {name} | {wall:.1f} | {cpu:.1f} | {wall / base:.2f} |")
    lines.append("")
    lines.append("same cross section in every run: " + ("yes" if len(sigmas) == 1 else
                                                         f"NO ({sorted(sigmas)})"))
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
