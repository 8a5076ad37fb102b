"""The ``madnis-py`` command: train, integrate and generate events from a run card.

::

    madnis-py run CARD [--seed N] [--output DIR] [--device cpu|cuda] [--json] [--force]
                       [--resume] [--checkpoint-every STEPS] [--allow-unsupported]
    madnis-py integrate CARD [...]
    madnis-py generate CARD --checkpoint FILE -n N [--scheduler ADDRESS] [--shards N] [...]
    madnis-py processes [--json]
    madnis-py --version

``CARD`` is a TOML run card (:mod:`madnis_py.cards.run_card`; every built-in process
ships one, ``madnis-py run drell_yan`` takes the built-in's) or a MadGraph
``run_card.dat`` (its common fields, with ``--process NAME``; the importer's notes and
the unsupported fields it ignored go to standard error). Names follow
:func:`madnis_py.physics.process.load_process`'s rule: a bare built-in name is the
built-in even where a file or directory of that name exists; ``./NAME``, anything with a
path separator or ending in ``.toml`` is a path. The command parses the arguments, runs
:func:`madnis_py.run.run_card` and prints its :class:`~madnis_py.run.RunSummary`.

``run`` pre-trains VEGAS grids, trains the flows, integrates, writes the checkpoint,
generates the unweighted events into an LHE file and draws the plots; ``integrate``
stops after the integral; ``generate`` starts from a checkpoint. With a
``[distributed]`` table in the card, or ``--scheduler ADDRESS``, ``run`` and
``generate`` generate the events in shards on a Dask cluster
(:mod:`madnis_py.distributed`) and merge them into one LHE file. The output directory
receives ``summary.json`` (listing every plot and file written) and the PNG plots beside
the events. ``--json`` prints the summary as one JSON object on standard output
(progress, notes and the table go to standard error).

Bad input (a missing card, a bad value, an unknown key, a physics setting the process
cannot be integrated with, a checkpoint of other physics) is one line on standard error
and exit code 2, checked before any training where it can be (the output directory, the
Dask scheduler and cluster options, the event and shard counts). An interrupt (exit 130)
or SIGTERM (exit 143, what SLURM and HTCondor send) leaves no half-written file: every
output is written to a hidden temporary name and renamed when complete.

The output directory (:mod:`madnis_py.output_dir`) is locked for the run; one that holds
a finished run (its ``summary.json``, written last and listing the run's files) is
refused unless ``--force``. Training writes the checkpoint every ``--checkpoint-every``
steps; ``--resume`` continues an interrupted training from it. ``generate`` refuses a
checkpoint trained on other physics (process, library, param card, beams, energy, PDF,
scale, cuts), naming the field.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from madnis_py.run import RunError

if TYPE_CHECKING:
    from rich.progress import Progress

    from madnis_py.cards.run_card import DistributedSettings, RunCard
    from madnis_py.run import EventsSummary, RunSummary

__all__ = ["main"]

EXIT_USAGE = 2


class CLIError(RunError):
    """A problem with the user's input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    from madnis_py import __version__

    ap = argparse.ArgumentParser(
        prog="madnis-py",
        description="Neural multi-channel importance sampling of collider processes.")
    ap.add_argument("--version", action="version", version=f"madnis-py {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("card", help="TOML run card, a built-in process name (its card), "
                       "or a MadGraph run_card.dat (with --process)")
        p.add_argument("--process", default=None,
                       help="process for a MadGraph run_card.dat (built-in name or path)")
        p.add_argument("--seed", type=int, default=None, help="overrides [run] seed")
        p.add_argument("--pdf", default=None, metavar="NAME",
                       help="PDF set by LHAPDF name or id; overrides [collider] pdf/lhaid "
                       "(a MadGraph card's pdlabel/lhaid)")
        p.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads of this process (default: $MADNIS_PY_THREADS, "
                       "else $OMP_NUM_THREADS, else 1: extra threads spin-wait on a busy "
                       "machine; use Dask workers for more cores)")
        p.add_argument("--output", default=None, help="output directory ([run] output)")
        p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                       help="overrides [run] device")
        p.add_argument("--json", action="store_true",
                       help="print the final result as one JSON object on stdout")
        p.add_argument("--quiet", action="store_true", help="no progress bars or table")
        p.add_argument("--force", action="store_true",
                       help="replace a finished run in the output directory (default: "
                       "refuse the directory)")
        p.add_argument("--allow-unsupported", action="store_true",
                       help="run a MadGraph run_card.dat whose physics fields madnis-py "
                       "cannot reproduce (listed in the error without this)")

    def distributed(p: argparse.ArgumentParser) -> None:
        p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="generate the events on this Dask scheduler (tcp://host:8786); "
                       "overrides the card's [distributed] cluster")
        p.add_argument("--shards", type=int, default=None,
                       help="event shards on the cluster ([distributed] shards)")

    run = sub.add_parser("run", help="train, integrate, generate events, write LHE")
    common(run)
    distributed(run)
    integ = sub.add_parser("integrate", help="train and integrate (no events)")
    common(integ)
    for p in (run, integ):
        p.add_argument("--resume", action="store_true",
                       help="continue the interrupted training whose checkpoint is in the "
                       "output directory (it is written every --checkpoint-every steps)")
        p.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS",
                       help="steps between checkpoints during training (default 50)")
    gen = sub.add_parser("generate", help="events from a trained checkpoint")
    common(gen)
    distributed(gen)
    gen.add_argument("--checkpoint", required=True, help="checkpoint written by run/integrate")
    gen.add_argument("-n", "--nevents", type=int, required=True, help="unweighted events")
    procs = sub.add_parser("processes", help="list the built-in processes")
    procs.add_argument("--json", action="store_true",
                       help="print the list as one JSON array on stdout")
    mg = sub.add_parser("madgraph", help="MadGraph 5: install the `output madnis_py` "
                        "plugin, import an existing output")
    mg_sub = mg.add_subparsers(dest="madgraph_command", required=True, metavar="ACTION")
    inst = mg_sub.add_parser("install", help="link the plugin into MG5_DIR/PLUGIN")
    inst.add_argument("mg5_dir", help="the MadGraph5_aMC@NLO directory")
    imp = mg_sub.add_parser("import", help="a process directory from an `output madnis_py`, "
                            "`standalone` or `madevent` directory")
    imp.add_argument("directory", help="the MadGraph output directory")
    imp.add_argument("--output", default=None,
                     help="process directory to write (default: DIRECTORY_madnis; not used "
                     "for an `output madnis_py` directory, which is completed in place)")
    imp.add_argument("--allow-unsupported", action="store_true",
                     help="translate a run_card.dat whose physics fields madnis-py cannot "
                     "reproduce (they are listed in the card's notes)")
    imp.add_argument("--mg5", default=None,
                     help="MadGraph directory (default: $MADNIS_PY_MG5_HOME, or the one "
                     "the output names)")
    return ap


def _madgraph(args: argparse.Namespace) -> int:
    from madnis_py.cards import RunCardError
    from madnis_py.madgraph import AssembleError, MadGraphError, import_output, install_plugin
    from madnis_py.physics.matrix_element import MatrixElementError
    from madnis_py.physics.process import ProcessCardError

    try:
        if args.madgraph_command == "install":
            target = install_plugin(args.mg5_dir)
            print(f"installed the madnis_py output mode in {target}; in MadGraph: "
                  "`output madnis_py DIR` after `generate`")
            return 0
        done = import_output(args.directory, destination=args.output, mg5=args.mg5,
                             allow_unsupported=args.allow_unsupported)
    except (MadGraphError, AssembleError, MatrixElementError, ProcessCardError,
            RunCardError, FileNotFoundError) as err:
        print(f"madnis-py: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{done.process_card}: {done.n_subprocesses} subprocesses, {done.n_diagrams} "
          f"diagrams, {done.n_channels} channels\nrun it with: madnis-py run {done.run_card}")
    return 0


def _load_card(args: argparse.Namespace) -> RunCard:
    from madnis_py.cards import RunCard, import_madgraph_run_card, load_run_card
    from madnis_py.physics.builtin import builtin_process_dir
    from madnis_py.physics.process import builtin_name

    spec = str(args.card)
    name = builtin_name(spec)  # load_process's rule: a bare built-in name first
    path = builtin_process_dir(name) / "run_card.toml" if name is not None else Path(spec)
    if path.suffix == ".dat":
        if not path.exists():
            raise CLIError(f"{path}: no such run card")
        if args.process is None:
            raise CLIError(f"{path}: a MadGraph run_card.dat has no process; pass --process")
        imported = import_madgraph_run_card(path, process=args.process,
                                            allow_unsupported=args.allow_unsupported)
        for note in imported.notes:
            _note(args, f"{path}: {note}")
        for field_name in imported.unsupported:  # physics changed: shown even with --quiet
            print(f"madnis-py: warning: {path}: {field_name} is not supported and was "
                  "ignored (--allow-unsupported): the run does not apply it", file=sys.stderr)
        card = imported.card
    else:
        card = load_run_card(path)
        if args.process is not None:
            card = dataclasses.replace(card, run=dataclasses.replace(card.run,
                                                                    process=args.process))
    run = card.run
    if args.seed is not None:
        if not 0 <= args.seed < 2 ** 63:
            raise CLIError(f"--seed must be >= 0 and < 2**63, got {args.seed}")
        run = dataclasses.replace(run, seed=args.seed)
    if args.output is not None:
        run = dataclasses.replace(run, output=Path(args.output).resolve())
    if args.device is not None:
        run = dataclasses.replace(run, device=args.device)
    card = dataclasses.replace(card, run=run)
    if args.pdf is not None:
        pdf = args.pdf.strip()
        if not pdf:
            raise CLIError("--pdf needs an LHAPDF set name or id, got ''")
        collider = (dataclasses.replace(card.collider, pdf=None, lhaid=int(pdf))
                    if pdf.isdigit() else
                    dataclasses.replace(card.collider, pdf=pdf, lhaid=None))
        card = dataclasses.replace(card, collider=collider)
    assert isinstance(card, RunCard)
    return card


def _note(args: argparse.Namespace, message: str) -> None:
    """A message for the user on standard error (stdout stays for --json)."""
    if not getattr(args, "quiet", False):
        print(f"madnis-py: note: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM and HTCondor send), handled like an interrupt."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


class _Progress:
    """Rich progress bars and notes on standard error (or nothing with --quiet): the
    run's :class:`~madnis_py.run.Reporter`."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.progress: Progress | None = None
        if not args.quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                     TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=False)
            self.progress.start()

    def note(self, message: str) -> None:
        _note(self.args, message)

    def task(self, description: str, total: int) -> Callable[[int, str], None]:
        if self.progress is None:
            return lambda n, info: None
        progress = self.progress
        task = progress.add_task(description, total=total, info="")

        def advance(n: int, info: str) -> None:
            progress.update(task, advance=n, info=info)

        return advance

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _distributed_settings(card: RunCard,
                          args: argparse.Namespace) -> DistributedSettings | None:
    """The card's [distributed] table with the command line's overrides, or None."""
    from madnis_py.cards import DistributedSettings

    settings = card.distributed
    if getattr(args, "scheduler", None) is not None:
        shards = (settings or DistributedSettings()).shards
        settings = DistributedSettings(scheduler=args.scheduler, cluster=None, shards=shards)
    if getattr(args, "shards", None) is not None:
        if args.shards < 1:
            raise CLIError(f"--shards must be >= 1, got {args.shards}")
        settings = dataclasses.replace(settings or DistributedSettings(), shards=args.shards)
    return settings


#: What ``[unweighting] allocation`` shares the draws by, in the summary table.
_SHARED_BY = {"max_weight": "maxima", "sigma": "sigmas"}


def _allocation(events: EventsSummary) -> str:
    """How the draws were shared, with the held-out acceptances ``"auto"`` chose by."""
    text = _SHARED_BY.get(events.allocation, events.allocation)
    if events.allocation_acceptance:
        text += " (acceptance held out: " + ", ".join(
            f"{_SHARED_BY.get(k, k)} {v:.3g}" for k, v in events.allocation_acceptance.items()
        ) + ")"
    return text


def _summary_table(summary: RunSummary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"madnis-py: {summary.process}")
    table.add_column("quantity")
    # paths are folded onto further lines, never cut
    table.add_column("value", justify="right", overflow="fold")
    table.add_row("cross section", f"{summary.sigma_pb:.6g} +- {summary.error_pb:.2g} pb")
    table.add_row("eps_uw of the integration (max / 99.9% quantile)",
                  f"{summary.eps_uw:.3g} / {summary.eps_uw_quantile:.3g}")
    if summary.events is not None:
        table.add_row("unweighted events", str(summary.events.events))
        if summary.events.recycled_events or summary.events.recycle_skipped:
            kept = ", ".join(f"{k}: {v}" for k, v in summary.events.recycled.items())
            left = ", ".join(f"{k} ({v:.2g} of sigma above w_max)"
                             for k, v in summary.events.recycle_skipped.items())
            table.add_row("of them from points evaluated before", str(
                summary.events.recycled_events) + (f" ({kept})" if kept else "")
                + (f"; left out: {left}" if left else ""))
        w = summary.events.weights
        if w:  # the weights written (events.unweight.WeightReport)
            table.add_row(f"eps_uw of the events (truncation {w['truncation']:g} / max / "
                          f"{100 * w['quantile']:g}% quantile)",
                          f"{w['eps_truncation']:.3g} / {w['eps_raw']:.3g} / "
                          f"{w['eps_quantile']:.3g}")
            table.add_row("effective sample size, largest weight / nominal",
                          f"{w['ess']:.6g}, {w['max_weight_ratio']:.4g}")
            table.add_row("share of sigma above w_max (calibration sample)",
                          f"{w['share_above']:.2g}")
        table.add_row("draws shared among the channels by", _allocation(summary.events))
        if summary.events.validation:
            table.add_row("share of sigma above w_max, fresh draws checking it",
                          " -> ".join(f"{v:.2g}" for v in summary.events.validation))
        if summary.events.w_max_raised:
            table.add_row("w_max raised on the events' own draws",
                          " -> ".join(f"{v:.4g}" for v in summary.events.w_max_raised)
                          + f" ({summary.events.thinned_events} held events thinned away)")
        if summary.events.w_max_lowered:
            table.add_row("w_max lowered on the events' own draws",
                          " -> ".join(f"{v:.4g}" for v in summary.events.w_max_lowered))
        table.add_row("share of sigma truncated (all draws of the events)",
                      f"{summary.events.truncation_bias:.2g}")
        table.add_row("overweight fraction", f"{summary.events.overweight_fraction:.2g}")
        table.add_row("LHE file", summary.events.lhe)
    table.add_row("integrand calls", str(summary.calls))
    for warning in summary.warnings:
        table.add_row("[bold red]not trustworthy[/]", warning)
    for key, value in summary.timings.items():
        table.add_row(key.removesuffix("_s") + " (s)", f"{value:.1f}")
    d = summary.training_decision
    if d.get("vegas_survey"):
        v = d["vegas_survey"]
        table.add_row("VEGAS survey", f"{v['rounds']} rounds, {v['n_calls']} calls "
                      f"({v['reason']})")
    if d.get("predicted_total_s") is not None:  # target = "events"
        table.add_row("training decision", f"{d['reason']} after {d['steps']} steps "
                      f"(flows of step {d['chosen_steps']})")
        table.add_row("time to the events, predicted / actual (s)",
                      f"{d['predicted_total_s']:.1f} / {d['actual_total_s']:.1f}")
    Console(stderr=True).print(table)


def _run(args: argparse.Namespace) -> RunSummary:
    from madnis_py.run import RunRequest, run_card

    card = _load_card(args)
    settings = _distributed_settings(card, args)  # checked before any training
    generate = args.command == "generate"
    request = RunRequest(
        command=args.command,
        n_events=int(args.nevents if generate else card.run.nevents),
        checkpoint=Path(args.checkpoint) if generate else None,
        resume=bool(getattr(args, "resume", False)),
        checkpoint_every=int(getattr(args, "checkpoint_every", 50)),
        distributed=settings, force=bool(args.force), pdf=args.pdf,
        threads=args.threads)
    progress = _Progress(args)
    try:
        summary = run_card(card, request, progress)
    finally:
        progress.stop()
    if not args.quiet:
        _summary_table(summary)
    return summary


def _processes(args: argparse.Namespace) -> int:
    from madnis_py.physics.builtin import builtin_processes
    from madnis_py.physics.process import load_process

    processes = [load_process(name) for name in builtin_processes()]
    if args.json:
        print(json.dumps([{"name": p.name, "title": p.title, "beams": p.beams,
                           "subprocesses": len(p.subprocesses), "channels": len(p.channels),
                           "card": str(p.card)} for p in processes]))
    else:
        for p in processes:
            print(f"{p.name:12s} {p.title}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``madnis-py`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "madgraph":
        return _madgraph(args)
    if args.command == "processes":
        return _processes(args)
    import signal

    from madnis_py._atomic import FileWriteError
    from madnis_py.cards import RunCardError
    from madnis_py.distributed import DistributedError
    from madnis_py.output_dir import OutputDirectoryError
    from madnis_py.phasespace.topology import TopologyError
    from madnis_py.physics.matrix_element import MatrixElementError
    from madnis_py.physics.pdf import PDFError
    from madnis_py.physics.process import ProcessCardError
    from madnis_py.physics.slha import SLHAError
    from madnis_py.training import CheckpointError, IntegrandError

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        summary = _run(args)
    except (RunError, RunCardError, ProcessCardError, PDFError, MatrixElementError,
            SLHAError, TopologyError, CheckpointError, IntegrandError, DistributedError,
            OutputDirectoryError, FileWriteError, FileNotFoundError,
            ZeroDivisionError) as err:
        message = " ".join(str(err).split()) if str(err) else type(err).__name__
        print(f"madnis-py: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("madnis-py: terminated (SIGTERM); no event file was left half-written",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("madnis-py: interrupted; no event file was left half-written", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if args.json:
        print(json.dumps(summary.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
