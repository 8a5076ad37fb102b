"""The ``madnis-py`` command: train, integrate and generate events from a run card.

::

    madnis-py run CARD [--seed N] [--output DIR] [--device cpu|cuda] [--json] [--force]
                       [--resume] [--checkpoint-every STEPS] [--allow-unsupported]
    madnis-py integrate CARD [...]
    madnis-py generate CARD --checkpoint FILE -n N [--scheduler ADDRESS] [--shards N] [...]
    madnis-py processes

``CARD`` is a TOML run card (:mod:`madnis_py.cards.run_card`; every built-in process
ships one, ``madnis-py run drell_yan`` takes the built-in's) or a MadGraph
``run_card.dat`` (its common fields, with ``--process NAME``). ``run`` pre-trains VEGAS
grids, trains the flows, integrates, writes the checkpoint, generates the unweighted
events into an LHE file and draws the plots; ``integrate`` stops after the integral;
``generate`` starts from a checkpoint. With a ``[distributed]`` table in the card, or
``--scheduler ADDRESS``, ``run`` and ``generate`` generate the events in shards on a Dask
cluster (:mod:`madnis_py.distributed`) and merge them into one LHE file. The output
directory receives ``summary.json`` and the PNG plots beside the events. ``--json``
prints the summary as one JSON object on standard output (progress and the table go to
standard error).

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
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from madnis_py.output_dir import RunDirectory

__all__ = ["main"]

EXIT_USAGE = 2


class CLIError(Exception):
    """A problem with the user's input: printed as one line, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="madnis-py",
        description="Neural multi-channel importance sampling of collider processes.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("card", help="TOML run card, a built-in process name (its card), "
                       "or a MadGraph run_card.dat (with --process)")
        p.add_argument("--process", default=None,
                       help="process for a MadGraph run_card.dat (built-in name or path)")
        p.add_argument("--seed", type=int, default=None, help="overrides [run] seed")
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
    sub.add_parser("processes", help="list the built-in processes")
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


def _load_card(args: argparse.Namespace) -> Any:
    from madnis_py.cards import RunCard, import_madgraph_run_card, load_run_card
    from madnis_py.physics.builtin import builtin_process_dir, builtin_processes

    spec = str(args.card)
    path = Path(spec)
    if not path.exists() and spec in builtin_processes():
        path = builtin_process_dir(spec) / "run_card.toml"
    if path.suffix == ".dat":
        if not path.exists():
            raise CLIError(f"{path}: no such run card")
        if args.process is None:
            raise CLIError(f"{path}: a MadGraph run_card.dat has no process; pass --process")
        imported = import_madgraph_run_card(path, process=args.process,
                                            allow_unsupported=args.allow_unsupported)
        for note in imported.notes:
            _note(args, f"{path}: {note}")
        for name in imported.unsupported:
            _note(args, f"{path}: {name} is not supported and was ignored "
                        "(--allow-unsupported)")
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
    assert isinstance(card, RunCard)
    return card


def _note(args: argparse.Namespace, message: str) -> None:
    """A message for the user on standard error (stdout stays for --json)."""
    if not getattr(args, "quiet", False):
        print(f"madnis-py: note: {message}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM (what SLURM and HTCondor send), handled like an interrupt."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated


class _Progress:
    """Rich progress bars on standard error (or nothing with --quiet)."""

    def __init__(self, quiet: bool) -> None:
        self.progress: Any = None
        if not quiet:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeRemainingColumn)

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                                     TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=False)
            self.progress.start()

    def task(self, description: str, total: int) -> Any:
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=total, info="")

    def advance(self, task: Any, n: int = 1, info: str = "") -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, advance=n, info=info)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _integrator(card: Any, process: Any) -> tuple[Any, Any]:
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.training import Integrator

    integrand = Integrand(process, **card.integrand_options())
    channels = TorchChannels(integrand)
    opts = card.integrator_options()
    return integrand, Integrator(channels, feature_dims=channels.feature_dims, **opts)


def _train(card: Any, mc: Any, bars: _Progress, timings: dict[str, float], *,
           resumed: bool, checkpoint_every: int) -> None:
    t0 = time.perf_counter()
    if card.training.vegas and not resumed:
        mc.pretrain_vegas(**card.vegas_options())
    timings["vegas_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    opts = card.train_options()
    if resumed:  # the rest of the interrupted training, with its optimizer's state
        opts["steps"] = int(mc.steps_remaining)
    task = bars.task("training", opts["steps"])

    def step(_: int, loss: float) -> None:
        bars.advance(task, info=f"loss {loss:.3g}, rel. std {mc.history.rel_std[-1]:.3g}")

    mc.train(**opts, callback=step, checkpoint=card.checkpoint_path,
             checkpoint_every=checkpoint_every)
    mc.select_flows(max(2_000, card.training.batch))
    timings["training_s"] = time.perf_counter() - t0


def _integrate(card: Any, mc: Any, timings: dict[str, float]) -> Any:
    t0 = time.perf_counter()
    result = mc.integrate(**card.integrate_options())
    timings["integration_s"] = time.perf_counter() - t0
    return result


def _lhe_init(integrand: Any, sigma: float, error: float, counts: np.ndarray,
              xmax: np.ndarray) -> Any:
    from madnis_py.events import LHEInit, LHEProcessInfo

    proc = integrand.process
    n = int(counts.sum())
    processes = []
    for k, nk in enumerate(counts):
        if nk == 0:
            continue
        share = nk / n
        rel = math.sqrt((error / sigma) ** 2 + (1 - share) / nk)
        processes.append(LHEProcessInfo(sigma * share, sigma * share * rel, float(xmax[k]),
                                        k + 1))
    if not processes:
        processes.append(LHEProcessInfo(sigma, error, sigma, 1))
    if proc.hadronic:
        idbmup = (2212, 2212)
        info = integrand.pdf.info
        lhaid = int(info["SetIndex"]) + integrand.pdf.member if "SetIndex" in info else 0
        pdfsup = (lhaid, lhaid)
    else:
        first = proc.subprocesses[0].pdgs
        idbmup = (int(first[0]), int(first[1]))
        pdfsup = (0, 0)
    half = integrand.sqrt_s / 2
    return LHEInit(idbmup, (half, half), 3, processes, pdfgup=(0, 0), pdfsup=pdfsup)


def _event_columns(integrand: Any) -> dict[str, Any]:
    """The LHE particle columns every event of the process shares: status codes, mothers,
    generated masses and alpha_QED (used by the sharded generation too)."""
    proc = integrand.process
    n_part = proc.n_particles
    return {"istup": np.array([-1, -1] + [1] * (n_part - 2)),
            "mothup": np.array([[0, 0], [0, 0]] + [[1, 2]] * (n_part - 2)),
            "masses": np.array([0.0, 0.0] + list(integrand.masses)),
            "aqed": 1.0 / proc.parameters().get("sminputs", 1)}


def _generate(card: Any, integrand: Any, mc: Any, sigma: float, error: float, n_events: int,
              out: Path, bars: _Progress, timings: dict[str, float]) -> dict[str, Any]:
    from madnis_py.events import LHEWriter, Unweighter
    from madnis_py.events.generator import EventBatch, EventGenerator

    u = card.unweighting
    gen = EventGenerator(mc, sigma, seed=card.run.seed + 1, unweighter=Unweighter(
        method=u.max_weight, quantile=u.quantile, replicas=u.replicas,
        overweight=u.overweight))
    t0 = time.perf_counter()
    calibration = max(20_000, min(card.integration.points, 200_000))
    w_max = gen.calibrate(calibration)
    card_weights, _, _ = gen.weighted(min(calibration, 50_000))
    proc = integrand.process
    n_sub = len(proc.subprocesses)
    counts = np.zeros(n_sub, dtype=np.int64)
    xmax = np.zeros(n_sub)
    columns = _event_columns(integrand)
    sample: list[EventBatch] = []
    task = bars.task("events", n_events)
    path = out / card.output.lhe

    with LHEWriter(path, header=card.to_toml()) as writer:
        def sink(events: EventBatch) -> None:
            writer.write_batch(idup=events.pdgs, icolup=events.colours,
                               momenta=events.momenta, weights=events.weights,
                               scales=events.scales, aqcd=events.alpha_s,
                               idprup=events.subprocess + 1, **columns)
            np.add.at(counts, events.subprocess, 1)
            np.maximum.at(xmax, events.subprocess, events.weights)
            if sum(len(b) for b in sample) < 20_000:
                sample.append(events)
            bars.advance(task, len(events))

        _, summary = gen.generate(n_events, sink=sink)
        writer.set_init(_lhe_init(integrand, sigma, error, counts, xmax))
    timings["generation_s"] = time.perf_counter() - t0
    plots: list[str] = []
    if card.output.plots:
        plots = _event_plots(gen, integrand, card_weights, w_max, sample, out)
    return {"lhe": str(path), "events": summary.n_events,
            "max_weight": summary.max_weight, "efficiency": summary.efficiency,
            "overweight_fraction": summary.n_overweight / max(summary.n_events, 1),
            "truncation_bias": summary.truncation_bias,
            "generation_calls": summary.n_calls, "plots": plots}


def _distributed_settings(card: Any, args: argparse.Namespace) -> Any:
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


def _generate_distributed(card: Any, settings: Any, checkpoint: Path, n_events: int,
                          out: Path, timings: dict[str, float]) -> dict[str, Any]:
    from madnis_py.distributed import cluster_client, generate_sharded

    t0 = time.perf_counter()
    try:
        with cluster_client(settings) as client:
            res = generate_sharded(card, checkpoint, n_events, client, output=out,
                                   shards=settings.shards)
    except ImportError as err:  # no dask: pip install 'madnis_py[distributed]'
        raise CLIError(str(err)) from err
    timings["generation_s"] = time.perf_counter() - t0
    return {"lhe": str(res.path), "events": res.n_events, "max_weight": res.w_max,
            "efficiency": res.efficiency,
            "overweight_fraction": res.n_overweight / max(res.n_events, 1),
            "truncation_bias": res.truncation_bias, "generation_calls": res.n_calls,
            "shards": len(res.shards), "plots": []}


def _event_plots(gen: Any, integrand: Any, weights: np.ndarray, w_max: float,
                 sample: list[Any], out: Path) -> list[str]:
    from madnis_py.events.generator import EventBatch
    from madnis_py.plots import plot_kinematics, plot_weights

    plot_weights(weights, w_max, out / "weights.png")
    made = [str(out / "weights.png")]
    if sample:
        w, channels, x = gen.weighted(20_000)
        moms = np.zeros((len(w), integrand.process.n_particles, 4))
        for c in np.unique(channels):
            sel = np.nonzero(channels == c)[0]
            moms[sel] = integrand(x[sel].numpy(), int(c), prior=False).momenta
        events = EventBatch.concatenate(sample)
        plot_kinematics(events.momenta, moms, w, out / "kinematics.png",
                        event_weights=events.weights)
        made.append(str(out / "kinematics.png"))
    return made


def _summary_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"madnis-py: {summary['process']}")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    table.add_row("cross section", f"{summary['sigma_pb']:.6g} +- {summary['error_pb']:.2g} pb")
    table.add_row("eps_uw (max / 99.9% quantile)",
                  f"{summary['eps_uw']:.3g} / {summary['eps_uw_quantile']:.3g}")
    if "events" in summary:
        table.add_row("unweighted events", str(summary["events"]))
        table.add_row("overweight fraction", f"{summary['overweight_fraction']:.2g}")
        table.add_row("LHE file", summary["lhe"])
    table.add_row("integrand calls", str(summary["calls"]))
    for warning in summary.get("warnings", []):
        table.add_row("[bold red]not trustworthy[/]", warning)
    for key, value in summary["timings"].items():
        table.add_row(key.removesuffix("_s") + " (s)", f"{value:.1f}")
    Console(stderr=True).print(table)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from madnis_py._atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


_LIMITS = {"events": 10 ** 9, "shards": 10_000}


def _check_counts(args: argparse.Namespace, card: Any, settings: Any) -> int:
    """The number of events asked for, and the shards, checked against their limits."""
    n_events = int(args.nevents if args.command == "generate" else card.run.nevents)
    if not 0 <= n_events <= _LIMITS["events"]:
        raise CLIError(f"{'-n' if args.command == 'generate' else '[run] nevents'} = "
                       f"{n_events}: expected 0 <= n <= {_LIMITS['events']:.0e}")
    if settings is not None and args.command != "integrate":
        if settings.shards > min(_LIMITS["shards"], max(n_events, 1)):
            raise CLIError(f"--shards {settings.shards} for {n_events} events: at most "
                           f"{min(_LIMITS['shards'], max(n_events, 1))} (one event per shard "
                           f"and {_LIMITS['shards']} shards at the most)")
    if getattr(args, "checkpoint_every", 1) < 1:
        raise CLIError(f"--checkpoint-every must be >= 1, got {args.checkpoint_every}")
    return n_events


def _run(args: argparse.Namespace) -> dict[str, Any]:
    card = _load_card(args)
    settings = _distributed_settings(card, args)  # checked before any training
    if card.run.device == "cuda":
        raise CLIError("--device cuda: the multi-channel trainer runs its flows on the CPU "
                       "in this version (the CUDA kernels serve the flow and phase-space "
                       "layers directly); use --device cpu")
    n_events = _check_counts(args, card, settings)
    if settings is not None and args.command != "integrate":
        from madnis_py.distributed import check_distributed

        check_distributed(settings)
    if args.command == "generate":
        checkpoint_in = Path(args.checkpoint)
        if not checkpoint_in.is_file():
            raise CLIError(f"--checkpoint {checkpoint_in}: no such file")
    process = card.load_process()
    out = card.lhe_path.parent
    outputs = [card.output.lhe, "history.json", "training.png", "weights.png",
               "kinematics.png"]
    if args.command != "generate":
        outputs.append(card.checkpoint_path.name)
    resume = bool(getattr(args, "resume", False))
    with RunDirectory(out, outputs, force=args.force or resume) as run_dir:
        if run_dir.removed_temporaries:
            _note(args, f"removed {len(run_dir.removed_temporaries)} temporary file(s) of "
                        f"an interrupted run in {out}")
        return _run_in(args, card, settings, process, out, n_events, resume)


def _run_in(args: argparse.Namespace, card: Any, settings: Any, process: Any, out: Path,
            n_events: int, resume: bool) -> dict[str, Any]:
    import torch

    from madnis_py.training import Integrator

    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    bars = _Progress(args.quiet)
    try:
        torch.manual_seed(card.run.seed)  # the flows' and channel weights' initialisation
        try:
            integrand, mc = _integrator(card, process)
        except ValueError as err:  # physics the integrand cannot be built for
            raise CLIError(f"process {process.name}: {err}") from err
        # The integrator binds its checkpoints to integrand.fingerprint() (and checks a
        # loaded one against it) by itself.
        calls_before = 0
        if args.command == "generate":
            mc = Integrator.load(args.checkpoint, mc.integrand)
            calls_before = int(mc.n_calls)
            result = mc.last_result
            if result is None:
                result = _integrate(card, mc, timings)
        else:
            resumed = False
            if resume:
                if not card.checkpoint_path.is_file():
                    raise CLIError(f"--resume: no checkpoint {card.checkpoint_path} to "
                                   "resume from")
                mc = Integrator.load(card.checkpoint_path, mc.integrand)
                resumed = True
                _note(args, f"resuming from {card.checkpoint_path} after "
                            f"{mc.steps_done} training steps")
            _train(card, mc, bars, timings, resumed=resumed,
                   checkpoint_every=args.checkpoint_every)
            result = _integrate(card, mc, timings)
            mc.save(card.checkpoint_path)
            if card.output.plots:
                mc.plot_history(out / "training.png")
            mc.save_history(out / "history.json")
        summary: dict[str, Any] = {
            "process": process.name, "seed": card.run.seed, "sigma_pb": result.value,
            "error_pb": result.error, "rel_std": result.rel_std, "eps_uw": result.eps_uw,
            "eps_uw_quantile": result.eps_uw_quantile,
            "channel_sigma_pb": list(result.channel_values),
            "checkpoint": str(args.checkpoint if args.command == "generate"
                              else card.checkpoint_path),
            "output": str(out)}
        for warning in getattr(result, "warnings", ()):
            _note(args, f"the result may not be trustworthy: {warning}")
        summary["warnings"] = list(getattr(result, "warnings", ()))
        if args.command in ("run", "generate"):
            if settings is None:
                summary.update(_generate(card, integrand, mc, result.value, result.error,
                                         n_events, out, bars, timings))
            else:
                checkpoint = Path(args.checkpoint if args.command == "generate"
                                  else card.checkpoint_path)
                summary.update(_generate_distributed(card, settings, checkpoint, n_events,
                                                     out, timings))
    finally:
        bars.stop()
    summary["calls"] = int(mc.n_calls) - calls_before  # this run's calls only
    timings["total_s"] = time.perf_counter() - t_start
    summary["timings"] = timings
    summary["files"] = sorted(p.name for p in out.iterdir()
                              if not p.name.startswith(".") and p.name != "summary.json")
    _write_json(out / "summary.json", summary)  # last: it marks the run finished
    if not args.quiet:
        _summary_table(summary)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``madnis-py`` console script."""
    args = _parser().parse_args(argv)
    if args.command == "madgraph":
        return _madgraph(args)
    if args.command == "processes":
        from madnis_py.physics.builtin import builtin_processes
        from madnis_py.physics.process import load_process

        for name in builtin_processes():
            print(f"{name:12s} {load_process(name).title}")
        return 0
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
    except (CLIError, RunCardError, ProcessCardError, PDFError, MatrixElementError,
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
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
