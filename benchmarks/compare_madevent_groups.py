"""Cross sections per subprocess group: madnis-py's channels against madevent's P
directories.

madnis-py's runs (``madnis-py run|integrate --json``, or a run's ``summary.json``) give
each channel's cross section (``channel_sigma_pb``); a group's is the sum over its
channels (``ChannelLayout``, the grouped layout). madevent's is the sum of its P
directories' ``G*/results.dat`` (their first number), each P directory assigned to the
group holding its processes (``C     Process:`` lines of its ``matrix.f``; final states
compared as sets). Run madevent with ``set group_subprocesses False`` before
``generate`` so that its P directories are no coarser than our groups. Groups are listed
by the difference, largest first.

    python benchmarks/compare_madevent_groups.py PROCESS MADEVENT_DIR RUN.json [RUN.json ...]

PROCESS: the ``output madnis_py`` directory the runs used; several runs are averaged (the
error column is their spread over sqrt(runs)).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np

from madnis_py.physics.channels import ChannelLayout
from madnis_py.physics.process import load_process

#: MadGraph's particle names in ``Process:`` lines (the sm model's quarks and leptons).
PDG = {"d": 1, "u": 2, "s": 3, "c": 4, "b": 5, "t": 6, "e-": 11, "ve": 12, "mu-": 13,
       "vm": 14, "ta-": 15, "vt": 16, "g": 21, "a": 22, "z": 23, "w+": 24, "h": 25}
PDG |= {name[:-1] + "+" if name.endswith("-") else
        name[:-1] + "-" if name.endswith("+") else name + "~": -code
        for name, code in list(PDG.items()) if code not in (21, 22, 23, 25)}


def _key(pdgs: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return tuple(pdgs[:2]), tuple(sorted(pdgs[2:]))


def madevent_groups(madevent: Path, group_of: dict[object, int],
                    n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """madevent's cross section and error [pb] per group."""
    value, var = np.zeros(n_groups), np.zeros(n_groups)
    for pdir in sorted((madevent / "SubProcesses").glob("P*_*")):
        text = (pdir / "matrix.f").read_text()
        groups = set()
        for proc in re.findall(r"Process: (.*?>.*?)(?: [A-Z]+=| @|$)", text, re.M):
            incoming, outgoing = proc.split(" > ")
            pdgs = tuple(PDG[name] for name in incoming.split() + outgoing.split())
            groups.add(group_of[_key(pdgs)])
        if len(groups) != 1:
            raise SystemExit(f"{pdir}: its processes lie in groups {sorted(groups)}")
        g = groups.pop()
        for results in pdir.glob("G*/results.dat"):
            fields = results.read_text().split()
            value[g] += float(fields[0])
            var[g] += float(fields[1]) ** 2
    return value, np.sqrt(var)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process")
    parser.add_argument("madevent", type=Path)
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args()
    proc = load_process(args.process)
    layout = ChannelLayout.of(proc.subprocesses, len(proc.channels), "grouped")
    group_of: dict[object, int] = {}
    for g, members in enumerate(layout.groups):
        for k in members:
            group_of[_key(proc.subprocesses[k].pdgs)] = g
    per_run = []
    for run in args.runs:
        channels = json.loads(run.read_text())["channel_sigma_pb"]
        if len(channels) != layout.n_channels:
            raise SystemExit(f"{run}: {len(channels)} channels, the process has "
                             f"{layout.n_channels} (all channels active, this layout?)")
        per_run.append([sum(channels[i] for i in layout.channels_of(g))
                        for g in range(len(layout.groups))])
    ours = np.array(per_run)
    mean = ours.mean(axis=0)
    spread = (ours.std(axis=0, ddof=1) / np.sqrt(len(ours)) if len(ours) > 1
              else np.zeros_like(mean))
    theirs, error = madevent_groups(args.madevent, group_of, len(layout.groups))
    print(f"madnis-py {', '.join(f'{v:.6g}' for v in ours.sum(axis=1))} pb; madevent "
          f"{theirs.sum():.6g} +- {np.sqrt((error ** 2).sum()):.2g} pb\n")
    print("| group | subprocesses | madnis-py [pb] | madevent [pb] | difference | pull |")
    print("|---|---|---|---|---|---|")
    for g in np.argsort(-(mean - theirs)):
        members = [proc.subprocesses[k] for k in layout.groups[g]]
        names = ", ".join(("mirror " if s.mirror else "") + " ".join(map(str, s.pdgs[:2]))
                          for s in members[:4]) + (" ..." if len(members) > 4 else "")
        diff = mean[g] - theirs[g]
        pull = diff / np.hypot(spread[g], error[g]) if spread[g] or error[g] else 0.0
        print(f"| {g} | {names} | {mean[g]:.5f} +- {spread[g]:.5f} | {theirs[g]:.5f} +- "
              f"{error[g]:.5f} | {diff / theirs[g]:+.1%} | {pull:+.1f} |")


if __name__ == "__main__":
    main()
