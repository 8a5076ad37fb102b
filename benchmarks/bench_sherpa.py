"""|M|^2 evaluations per second: Sherpa 3 through madnis_py's shim vs MadGraph's standalone
library (``output madnis_py``, -O2), same processes, same RAMBO points, one thread.

For e+ e- -> mu+ mu-, u u~ -> e+ e- and g g -> t t~: a batch of ``--n`` RAMBO points
(partonic, sqrt(s) = 500 GeV, 1 TeV for the tops) is evaluated by each library in a child
interpreter of its own (Sherpa allows one run per process), after one warm-up batch, at
least ``--repeat`` times and for at least ``--min-time`` seconds; the best repetition gives
evaluations per second (the machines are shared: the minimum is the robust statistic). Both sides are called the
same way (``MatrixElement.__call__``: the loader's C++ loop over the events). Sherpa's run
card reproduces MadGraph's SM of the param card (``sherpa_sm_settings``), with the top
width 0 on both sides (MadGraph's standalone g g > t t~ has it in the t-channel
propagators, Sherpa would keep it there too and warns about the width of an external
particle), so the table also shows the largest relative difference of the two |M|^2.

    python benchmarks/bench_sherpa.py [--sherpa-prefix /tmp/sherpa] [--mg5 /tmp/MG5]
        [--workdir /tmp/sherpa_bench] [--n 10000] [--repeat 5] [--min-time 3] [--amegic]
        [--markdown F]

Needs Sherpa 3 with MEProcess (``scripts/setup-sherpa.sh``) and MadGraph 3.5 with the
madnis_py plugin (``madnis-py madgraph install``); the MadGraph outputs are made once in the
work directory (``output madnis_py``). ``--amegic`` adds Sherpa's Amegic (its libraries
are written and compiled on first use: minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from madnis_py.phasespace import Beams, Rambo
from madnis_py.physics.shims import (
    build_amegic_libraries,
    build_sherpa,
    write_sherpa_run_card,
)

ZERO_WIDTHS = (6,)


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    madgraph: str  # the generate line
    sherpa: str  # Sherpa's process
    pdgs: tuple[int, ...]
    masses: tuple[float, float]
    sqrt_s: float
    hadronic: bool  # Sherpa beams (the |M|^2 do not depend on them)
    orders: dict[str, int]  # Sherpa's Order: MadGraph's generate keeps the lowest EW order


CASES = [
    Case("ee_mumu", "e+ e- -> mu+ mu-", "e+ e- > mu+ mu-", "11 -11 -> -13 13",
         (-11, 11, -13, 13), (0.0, 0.0), 500.0, False, {"QCD": 0, "EW": 2}),
    Case("uux_ee", "u u~ -> e+ e-", "u u~ > e+ e-", "2 -2 -> -11 11",
         (2, -2, -11, 11), (0.0, 0.0), 500.0, True, {"QCD": 0, "EW": 2}),
    Case("gg_ttx", "g g -> t t~", "g g > t t~", "21 21 -> 6 -6",
         (21, 21, 6, -6), (173.0, 173.0), 1000.0, True, {"QCD": 2, "EW": 0}),
]

_TIMER = r"""
import json, sys, time
import numpy as np
from madnis_py.physics import MatrixElement
from madnis_py.physics.process import load_process
job = json.loads(sys.argv[1])
if job["kind"] == "sherpa":
    me = MatrixElement.from_sherpa(job["library"], job["run"])
else:
    me = MatrixElement.from_madgraph(load_process(job["process"]).library, job["card"])
p = np.load(job["points"])
pdgs = job["pdgs"]
me(p[:100], pdgs)  # warm-up: Sherpa builds its MEProcess on the first call
times = []
while len(times) < job["repeat"] or sum(times) < job["min_time"]:
    t0 = time.perf_counter()
    values = me(p, pdgs, alpha_s=0.118)
    times.append(time.perf_counter() - t0)
np.save(job["output"], values)
print(json.dumps({"times": times}))
"""


def _child(job: dict[str, object]) -> list[float]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", _TIMER, json.dumps(job)], capture_output=True,
                         text=True, env=env, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{job['kind']} child failed:\n{res.stderr[-4000:]}")
    return [float(t) for t in json.loads(res.stdout.strip().splitlines()[-1])["times"]]


def _madgraph_output(case: Case, workdir: Path, mg5: Path | None) -> Path:
    out = workdir / f"mg_{case.name}"
    if (out / "lib" / "libmadnis_me.so").is_file() and (out / "process.toml").is_file():
        return out
    if mg5 is None:
        raise SystemExit(f"{out}: no MadGraph output; pass --mg5 (MadGraph 3.5 with the "
                         "madnis_py plugin) to make it")
    script = workdir / f"mg_{case.name}.mg5"
    script.write_text(f"import model sm\ngenerate {case.madgraph}\noutput madnis_py {out}\n")
    python = "/root/.pyenv/shims/python3" if Path("/root/.pyenv/shims/python3").exists() \
        else "python3"
    res = subprocess.run([python, "bin/mg5_aMC", str(script)], cwd=mg5, capture_output=True,
                         text=True, check=False)
    if res.returncode != 0 or not (out / "lib" / "libmadnis_me.so").is_file():
        raise RuntimeError(f"MadGraph failed on {case.madgraph}:\n{res.stdout[-3000:]}")
    return out


def _param_card_without_widths(out: Path, work: Path, pdgs: tuple[int, ...]) -> Path:
    """The output's param_card with the widths of ``pdgs`` set to 0 (MadGraph's standalone
    g g > t t~ keeps the top width in its t-channel propagators, Sherpa warns about a
    width of an external particle: both sides without it), beside the output's Cards/ (the
    loader finds ident_card.dat there)."""
    text = (out / "Cards" / "param_card.dat").read_text()
    for pdg in pdgs:
        text = re.sub(rf"(?im)^(\s*DECAY\s+{pdg}\s+)\S+", r"\g<1>0.000000e+00", text)
    card = work / f"param_card_{out.name}.dat"
    card.write_text(text)
    return card


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sherpa-prefix", type=Path,
                    default=Path(os.environ.get("MADNIS_PY_SHERPA_PREFIX", "/tmp/sherpa")))
    ap.add_argument("--mg5", type=Path, default=None)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/sherpa_bench"))
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=3.0,
                    help="repeat the batch until this many seconds are spent (default 3)")
    ap.add_argument("--amegic", action="store_true")
    ap.add_argument("--markdown", type=Path, default=None)
    args = ap.parse_args()
    mg5 = args.mg5 or (Path(os.environ["MADNIS_PY_MG5_HOME"])
                       if "MADNIS_PY_MG5_HOME" in os.environ else None)
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    config = args.sherpa_prefix / "bin" / "Sherpa-config"
    lib = build_sherpa(output=work / "libme_sherpa.so", sherpa_config=str(config))
    generators = ["Comix", "Amegic"] if args.amegic else ["Comix"]

    rows = []
    for case in CASES:
        mg_out = _madgraph_output(case, work, mg5)
        rambo = Rambo(list(case.masses), Beams(case.sqrt_s))
        points = np.asarray(rambo.map(np.random.default_rng(1).random(
            (args.n, rambo.dims))).momenta)
        np.save(work / f"p_{case.name}.npy", points)
        common = {"points": str(work / f"p_{case.name}.npy"), "pdgs": list(case.pdgs),
                  "repeat": args.repeat, "min_time": args.min_time}
        card = _param_card_without_widths(mg_out, work, ZERO_WIDTHS)
        t_mg = min(_child({**common, "kind": "madgraph", "process": str(mg_out),
                           "card": str(card), "output": str(work / f"mg_{case.name}.npy")}))
        mg_values = np.load(work / f"mg_{case.name}.npy")
        for gen in generators:
            run = write_sherpa_run_card(work / f"sherpa_{case.name}_{gen}", [case.sherpa],
                                        param_card=card, hadronic=case.hadronic,
                                        sqrt_s=13000.0, generator=gen, orders=case.orders,
                                        zero_widths=ZERO_WIDTHS)
            if gen == "Amegic":
                build_amegic_libraries(run, sherpa_config=str(config), jobs=1)
            t_sh = min(_child({**common, "kind": "sherpa", "library": str(lib),
                               "run": str(run), "output": str(work / f"sh_{case.name}.npy")}))
            sh_values = np.load(work / f"sh_{case.name}.npy")
            diff = float(np.max(np.abs(sh_values / mg_values - 1)))
            rows.append((case.title, gen, args.n / t_mg, args.n / t_sh, t_sh / t_mg, diff))
            print(f"{case.title:18s} {gen:6s} MadGraph {args.n / t_mg:12.0f}/s  Sherpa "
                  f"{args.n / t_sh:10.0f}/s  ratio {t_sh / t_mg:8.1f}  max|rel diff| "
                  f"{diff:.1e}", file=sys.stderr)

    sherpa_version = subprocess.run([str(config), "--version"], capture_output=True,
                                    text=True, check=False).stdout.strip()
    lines = [
        f"|M|^2 evaluations per second, one thread, batch of {args.n} RAMBO points, best of "
        f">= {args.repeat} repetitions and >= {args.min_time:g} s "
        f"({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}; Sherpa {sherpa_version}, "
        "MadGraph standalone via `output madnis_py`, -O2)",
        "",
        "| process | Sherpa ME generator | MadGraph (evals/s) | Sherpa (evals/s) | "
        "MadGraph / Sherpa | max rel. diff of \\|M\\|^2 |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for title, gen, r_mg, r_sh, ratio, diff in rows:
        lines.append(f"| {title} | {gen} | {r_mg:,.0f} | {r_sh:,.0f} | {ratio:.1f} | "
                     f"{diff:.1e} |")
    table = "\n".join(lines)
    print(table)
    if args.markdown is not None:
        args.markdown.write_text(table + "\n")


if __name__ == "__main__":
    main()
