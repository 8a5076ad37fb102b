"""A user's MadGraph process, start to finish, against MadGraph's own madevent.

For each process: ``output madnis_py`` (timed: MadGraph's diagram generation, the
Fortran build and the process card), then ``madnis-py run`` on the written run card with
no edits (timed: training, integration and the unweighted events), and madevent on the
same process and settings (``output madevent``, then ``launch`` single core; timed), with
both cross sections. Needs ``MADNIS_PY_MG5_HOME``; the p p processes use the embedded
LHToyPDF on our side (what the written run card falls back to when MadGraph's nn23lo1 set
is not installed) and need the same set in LHAPDF for madevent: ``--lhapdf-config``
(LHAPDF built from github:alisw/LHAPDF, with the LHToyPDF directory from
``madnis_py/data/pdfsets`` and a ``pdfsets.index`` line ``99000 LHToyPDF 1`` on
``LHAPDF_DATA_PATH``; add ``SetIndex: 99000`` to its .info).

    python benchmarks/bench_madgraph.py [--only ee_mumua,ppeej] [--events 10000]
        [--lhapdf-config /tmp/lhapdf/bin/lhapdf-config] [--markdown F]

Every row's event file is read back (``check_lhe``): it must hold the events asked for, all
of weight sigma, or the benchmark stops; "truncated share" is the share of sigma above
``w_max`` of the draws the events came from.

CPU seconds are user + system of the child processes (``resource.RUSAGE_CHILDREN``);
madnis-py runs with one torch thread (``OMP_NUM_THREADS=1``), madevent single core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from madnis_py.events import check_lhe
from madnis_py.madgraph import install_plugin
from madnis_py.madgraph.install import _mg5_python

LHAPDF_TOY_ID = 99000


@dataclass(frozen=True)
class Case:
    name: str
    process: str
    hadronic: bool
    model: str = "sm"
    defines: list[str] = field(default_factory=list)  # `define` lines before `generate`


#: MadGraph's 5-flavour proton: massless b quarks in p and j.
FIVE_FLAVOUR_MODEL = "sm-no_b_mass"
FIVE_FLAVOUR_DEFINES = ["define p = g u c d s u~ c~ d~ s~ b b~", "define j = p"]

CASES = [
    Case("ee_mumua", "e+ e- > mu+ mu- a", False),
    Case("ppeej", "p p > e+ e- j", True),
    Case("ggttg", "g g > t t~ g", True),
    Case("eejjg", "e+ e- > j j g", False),
    Case("tt_dilep", "p p > t t~, t > b e+ ve, t~ > b~ e- ve~", True),
    Case("tt_nested", "p p > t t~, (t > b w+, w+ > e+ ve), t~ > b~ e- ve~", True),
    Case("zz_4e", "p p > z z, z > e+ e-", True),
    Case("ppee_noz", "p p > e+ e- $ z", True),
    Case("ppaa", "p p > a a", True),
    Case("ttj", "p p > t t~ j", True),
    Case("wjj", "p p > w+ j j", True),
    Case("vbfz", "p p > e+ e- j j QCD=0", True),
    Case("ppeej_5f", "p p > e+ e- j", True, FIVE_FLAVOUR_MODEL, FIVE_FLAVOUR_DEFINES),
    Case("ppjj", "p p > j j", True),
    Case("vbfh", "p p > h j j QCD=0", True),
    Case("tth", "p p > t t~ h", True),
    Case("ppevj", "p p > e+ ve j", True),
    Case("ppaj", "p p > a j", True),
    Case("pp4l", "p p > e+ e- mu+ mu-", True),
    Case("ppjjj", "p p > j j j", True),
    Case("ppww", "p p > w+ w-, w+ > e+ ve, w- > mu- vm~", True),
    Case("ttjj", "p p > t t~ j j", True),
    Case("tj_5f", "p p > t j", True, FIVE_FLAVOUR_MODEL, FIVE_FLAVOUR_DEFINES),
    Case("zdec", "p p > z, z > e+ e-", True),
    Case("zjj_dec", "p p > z j j, z > e+ e-", True),
    Case("ee4j", "e+ e- > j j j j", False),
    Case("ssww", "p p > w+ w+ j j QCD=0", True),
]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
          log: Path) -> tuple[float, float, str]:
    """Run ``cmd``; (wall s, CPU s, stdout)."""
    cpu0, t0 = _children_cpu(), time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    log.write_text(done.stdout + "\n--- stderr\n" + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {done.returncode}; see {log}")
    return wall, cpu, done.stdout


def madgraph(mg5: Path, lines: list[str], work: Path, tag: str,
             env: dict[str, str] | None = None) -> tuple[float, float, str]:
    script = work / f"{tag}.mg5"
    script.write_text("\n".join(lines) + "\n")
    return timed([_mg5_python(), str(mg5 / "bin" / "mg5_aMC"), str(script)], cwd=mg5,
                 env=env, log=work / f"{tag}.log")


def madevent_sigma(out: Path) -> tuple[float, float, int]:
    banner = next((out / "Events" / "run_01").glob("*_banner.txt"))
    text = banner.read_text()
    sigma = float(re.search(r"Integrated weight \(pb\)\s*:\s*(\S+)", text).group(1))  # type: ignore[union-attr]
    nevt = int(re.search(r"Number of Events\s*:\s*(\d+)", text).group(1))  # type: ignore[union-attr]
    results = (out / "SubProcesses" / "results.dat").read_text().split()
    return sigma, float(results[1]), nevt


def _training(summary: dict[str, object]) -> str:
    """What the run's training did: VEGAS survey rounds and the flows' decision."""
    d = summary.get("training_decision") or {}
    assert isinstance(d, dict)
    survey = d.get("vegas_survey") or {}
    flows = ("VEGAS alone" if not d.get("use_flow", True)
             else f"flows, {d.get('chosen_steps', d.get('steps'))} steps")
    rounds = f"{survey['rounds']} VEGAS rounds, " if survey else ""
    recycled = summary.get("recycled_events") or 0
    reused = f"; {recycled} events from the survey/integration points" if recycled else ""
    return f"{rounds}{flows}{reused}"


def _check_events(summary: dict[str, object], n_events: int) -> None:
    """The run's LHE file passes the reader's checks and holds ``n_events`` unit-weight
    events (every XWGTUP equal to sigma): a row of the table is a claim about them."""
    path = summary.get("lhe")
    if not path:
        raise RuntimeError("the run wrote no LHE file")
    lhe = check_lhe(str(path))
    if lhe.n_events != n_events:
        raise RuntimeError(f"{path}: {lhe.n_events} events, {n_events} asked for")
    w = lhe.weights
    if not np.allclose(w, float(summary["sigma_pb"]), rtol=1e-9, atol=0):  # type: ignore[arg-type]
        raise RuntimeError(f"{path}: event weights {w.min():.6g} to {w.max():.6g}, not "
                           f"sigma = {summary['sigma_pb']}")


def run_case(case: Case, mg5: Path, work: Path, args: argparse.Namespace) -> dict[str, object]:
    ours_dir, me_dir = work / case.name, work / f"{case.name}_me"
    row: dict[str, object] = {"process": case.process}
    # 1. output madnis_py (MadGraph + Fortran build + process card)
    head = [f"import model {case.model}", *case.defines]
    wall, cpu, _ = madgraph(mg5, [*head, f"generate {case.process}",
                                  f"output madnis_py {ours_dir} -f"], work, f"{case.name}_out")
    row["t_output"] = wall
    info = json.loads((ours_dir / "madgraph.json").read_text())
    row["diagrams"] = sum(len(r["diagrams"]) for r in info["subprocesses"])
    row["topologies"] = (ours_dir / "process.toml").read_text().count("[[channel]]")
    # 2. madnis-py run on the written card, nevents as asked
    card = ours_dir / "run_card.toml"
    text = re.sub(r"(?m)^nevents = .*$", f"nevents = {args.events}", card.read_text())
    card.write_text(text)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cli = "from madnis_py.cli import main; raise SystemExit(main())"
    wall, cpu, out = timed([sys.executable, "-c", cli, "run", str(card), "--json", "--quiet"],
                           env=env, log=work / f"{case.name}_run.log")
    summary = json.loads(out.strip().splitlines()[-1])
    row["channels"] = len(summary["channel_sigma_pb"])  # per group ([training] subprocess_channels)
    row.update(t_run=wall, cpu_run=cpu, sigma=summary["sigma_pb"], error=summary["error_pb"],
               calls=summary["calls"], eps_uw=summary["eps_uw_quantile"],
               eps_trunc=(summary.get("weights") or {}).get("eps_truncation", float("nan")),
               training=_training(summary),
               truncated=float(summary.get("truncation_bias") or 0.0))
    _check_events(summary, args.events)
    # 3. madevent, same process and settings, single core
    madgraph(mg5, [*head, f"generate {case.process}",
                   f"output madevent {me_dir} -f"], work, f"{case.name}_meout")
    conf = me_dir / "Cards" / "me5_configuration.txt"
    conf.write_text(conf.read_text() + "\nrun_mode = 0\nnb_core = 1\n"
                    "automatic_html_opening = False\nnotification_center = False\n")
    sets = [f"set run_card nevents {args.events}", "set run_card iseed 1",
            "set run_card use_syst False"]
    me_env = dict(os.environ, OMP_NUM_THREADS="1")
    if case.hadronic:
        # the written run card turns MadGraph's dynamical_scale_choice -1 (CKKW
        # clustering) into 3; madevent is given the same scale
        sets += ["set run_card dynamical_scale_choice 3", "set run_card pdlabel lhapdf",
                 f"set run_card lhaid {LHAPDF_TOY_ID}"]
        if args.lhapdf_config is None:
            raise SystemExit(f"{case.name}: madevent needs --lhapdf-config for LHToyPDF")
        prefix = Path(args.lhapdf_config).resolve().parent.parent
        me_env["LHAPDF_DATA_PATH"] = str(prefix / "share" / "LHAPDF")
        me_env["LD_LIBRARY_PATH"] = f"{prefix / 'lib'}:{os.environ.get('LD_LIBRARY_PATH', '')}"
    wall, cpu, _ = madgraph(mg5, [f"launch {me_dir} -n run_01", "0", *sets, "0"], work,
                            f"{case.name}_launch", env=me_env)
    sigma, err, nevt = madevent_sigma(me_dir)
    row.update(t_madevent=wall, cpu_madevent=cpu, sigma_me=sigma, error_me=err,
               events_me=nevt)
    row["pull"] = (row["sigma"] - sigma) / (row["error"] ** 2 + err ** 2) ** 0.5  # type: ignore[operator]
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated: " +
                    ",".join(c.name for c in CASES))
    ap.add_argument("--events", type=int, default=10_000)
    ap.add_argument("--lhapdf-config", default=shutil.which("lhapdf-config"))
    ap.add_argument("--markdown", default=None)
    ap.add_argument("--keep", default=None, help="work directory to keep (default: temp)")
    args = ap.parse_args()
    home = os.environ.get("MADNIS_PY_MG5_HOME")
    if not home:
        raise SystemExit("set MADNIS_PY_MG5_HOME (../shared/tools/mg5/setup-mg5.sh)")
    mg5 = Path(home)
    if args.lhapdf_config:  # madevent reads it from MadGraph's configuration
        conf = mg5 / "input" / "mg5_configuration.txt"
        if f"lhapdf = {args.lhapdf_config}" not in conf.read_text():
            conf.write_text(conf.read_text() + f"\nlhapdf = {args.lhapdf_config}\n")
    install_plugin(mg5)
    cases = [c for c in CASES if args.only is None or c.name in args.only.split(",")]
    lines = [f"python {' '.join(sys.argv)}; {platform.machine()}, 1 thread, "
             f"{args.events} unweighted events", "",
             "| process | diagrams / topologies / channels | t(output madnis_py) [s] | madnis-py run: "
             "wall / CPU [s] | calls | training | eps_uw (trunc. 1e-3 / 99.9%) | "
             "truncated share | sigma madnis-py [pb] | madevent: wall / CPU [s] | "
             "sigma madevent [pb] | pull |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="mnp_bench_") as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        for case in cases:
            r = run_case(case, mg5, work, args)
            lines.append(
                f"| {r['process']} | {r['diagrams']} / {r['topologies']} / {r['channels']} "
                f"| {r['t_output']:.1f}"
                f" | {r['t_run']:.1f} / {r['cpu_run']:.1f} | {r['calls']} | "
                f"{r['training']} | {r['eps_trunc']:.3f} / {r['eps_uw']:.3f} | "
                f"{r['truncated']:.2g} | {r['sigma']:.6g} +- {r['error']:.2g} | "
                f"{r['t_madevent']:.1f} / {r['cpu_madevent']:.1f} | {r['sigma_me']:.6g} +- "
                f"{r['error_me']:.2g} | {r['pull']:+.1f} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
