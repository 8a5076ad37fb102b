"""Sharded event generation on a Dask cluster (:func:`generate_sharded`).

The driver loads the trained checkpoint once, takes the cross section from its last
integration and fixes the maximum weight ``w_max`` (with its overweight normalisation) on
one calibration sample, exactly as the single-process ``madnis-py generate`` does. The
events are split into shards whose counts add up to the request; each shard is one Dask
task that rebuilds the integrand and the integrator on its worker, draws its events with
its own seed (:func:`~madnis_py.distributed.shards.shard_seed`) and writes its own LHE
part file, which only appears, by an atomic rename, once it is complete. The merge
streams the parts' ``<event>`` blocks in shard order into one file
(:func:`merge_lhe_parts`), and the shards' weight reports into one
(:func:`merge_shard_reports`).
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from madnis_py.distributed.shards import shard_seed, split_events
from madnis_py.distributed.specs import _LOCK, IntegrandSpec, _worker_integrand
from madnis_py.events.unweight import Unweighter, WeightReport, WeightTally

if TYPE_CHECKING:
    from distributed import Client

    from madnis_py.cards.run_card import RunCard
    from madnis_py.events.banner import Banner
    from madnis_py.events.lhe import LHEInit
    from madnis_py.integrand import Integrand
    from madnis_py.training import Integrator

__all__ = [
    "ShardReport",
    "ShardedGeneration",
    "generate_sharded",
    "merge_lhe_parts",
    "merge_shard_reports",
    "shard_batch",
]


@dataclass
class ShardReport:
    """What one shard did (returned by its task).

    Attributes
    ----------
    shard, seed, n_events
        Index, seed and unweighted events of the shard.
    path : str
        Its LHE part file.
    subprocess_events : list of int
        Events per subprocess.
    max_weights : list of float
        Largest event weight per subprocess (0 where none), for ``XMAXUP``.
    n_calls : int
        Integrand calls.
    n_weighted : int
        Weighted points drawn.
    efficiency : float
        Accepted / drawn points.
    n_overweight : int
        Accepted events with ``w > w_max``.
    truncation_bias : float
        Relative cross-section bias of truncated overweights (0 when kept).
    load_s, setup_s, generate_s
        Seconds to build the integrand (0 when the worker had it cached), to load the
        checkpoint, and to generate and write the events.
    worker : str
        Address of the worker that completed it.
    written : WeightTally or None
        Sums of the shard's event weights (units of sigma), merged by the driver.
    reference : ndarray or None
        The shard's own reference sample (its first batch of weights): the driver's
        report uses it when no calibration sample exists (``w_max`` given).
    report : dict
        The shard's own :class:`~madnis_py.events.unweight.WeightReport`
        (:meth:`~madnis_py.events.unweight.WeightReport.as_dict`).
    w_max : float
        The maximum weight the shard's events were accepted against: the driver's, or
        higher where the shard's own draws raised it (0 in reports of older runs).
    thinned : int
        Held events the shard's rises of ``w_max`` took away again.
    """

    shard: int
    seed: int
    n_events: int
    path: str
    subprocess_events: list[int]
    max_weights: list[float]
    n_calls: int
    n_weighted: int
    efficiency: float
    n_overweight: int
    truncation_bias: float
    load_s: float
    setup_s: float
    generate_s: float
    worker: str = ""
    written: WeightTally | None = None
    reference: np.ndarray | None = field(default=None, repr=False)
    report: dict[str, float] = field(default_factory=dict)
    w_max: float = 0.0
    thinned: int = 0


@dataclass
class ShardedGeneration:
    """The result of :func:`generate_sharded`.

    Attributes
    ----------
    path : Path
        The merged LHE file.
    n_events : int
    sigma, error : float
        Cross section and error in pb (the checkpoint's integration).
    w_max, norm : float
        Maximum weight and overweight normalisation given to all shards (calibrated on
        the driver, a shard's own draws may raise its ``w_max``: :attr:`raised`).
    batch : int
        Weighted points per draw in the shards.
    subprocess_events : list of int
        Events per subprocess, summed over the shards.
    shards : list of ShardReport
        In shard order.
    calibrate_s, run_s, merge_s : float
        Seconds to load and calibrate on the driver, for the shards (submission to the
        last result) and for the merge.
    driver_calls : int
        Integrand calls on the driver: the integration of a checkpoint that had none, and
        the calibration of ``w_max``.
    calibration_calls : int
        Of ``driver_calls``, the calibration's (0 when ``w_max`` was given).
    report : WeightReport or None
        The weights of all events, as a single-process run reports them: ESS and largest
        weight over nominal from the shards' summed :class:`WeightTally`, the share of
        sigma above ``w_max`` and the efficiencies on the driver's calibration sample
        (the shards' reference samples together when ``w_max`` was given).
    channel_maxima : tuple of float or None
        The channels' maxima that shared every shard's draws (``None``: the integrator's
        allocation, :mod:`madnis_py.events.allocation`).
    allocation_acceptance : dict
        With ``[unweighting] allocation = "auto"`` and ``w_max`` calibrated on the
        driver: each candidate's acceptance on held-out halves of the calibration sample,
        by which it chose (empty otherwise).
    """

    path: Path
    n_events: int
    sigma: float
    error: float
    w_max: float
    norm: float
    batch: int
    subprocess_events: list[int]
    shards: list[ShardReport] = field(default_factory=list)
    calibrate_s: float = 0.0
    run_s: float = 0.0
    merge_s: float = 0.0
    driver_calls: int = 0
    calibration_calls: int = 0
    report: WeightReport | None = None
    channel_maxima: tuple[float, ...] | None = None
    allocation_acceptance: dict[str, float] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        """Events over the time the shards took."""
        return self.n_events / self.run_s if self.run_s > 0 else math.inf

    @property
    def n_calls(self) -> int:
        """Integrand calls of all shards (the driver's calibration not included)."""
        return sum(r.n_calls for r in self.shards)

    @property
    def total_calls(self) -> int:
        """Integrand calls of the whole generation: the shards' and the driver's."""
        return self.n_calls + self.driver_calls

    @property
    def raised(self) -> list[float]:
        """The ``w_max`` of each shard whose own draws raised it above :attr:`w_max`."""
        return [r.w_max for r in self.shards if r.w_max > self.w_max]

    @property
    def lowered(self) -> list[float]:
        """The ``w_max`` of each shard whose own draws lowered it below :attr:`w_max`."""
        return [r.w_max for r in self.shards if r.w_max < self.w_max]

    @property
    def thinned(self) -> int:
        """Held events the shards' rises of ``w_max`` took away again."""
        return sum(r.thinned for r in self.shards)

    @property
    def efficiency(self) -> float:
        """Accepted / drawn points over all shards."""
        drawn = sum(r.n_weighted for r in self.shards)
        return sum(r.efficiency * r.n_weighted for r in self.shards) / max(drawn, 1)

    @property
    def n_overweight(self) -> int:
        """Events with ``w > w_max`` over all shards."""
        return sum(r.n_overweight for r in self.shards)

    @property
    def truncation_bias(self) -> float:
        """Relative bias of truncated overweights, the shards' biases weighted by their
        drawn points (0 when overweights are kept)."""
        drawn = sum(r.n_weighted for r in self.shards)
        return sum(r.truncation_bias * r.n_weighted for r in self.shards) / max(drawn, 1)


@dataclass(frozen=True)
class _Shard:
    """Everything one shard task needs: its result depends on nothing else."""

    card: RunCard
    checkpoint: str
    shard: int
    seed: int
    n_events: int
    sigma: float
    error: float
    w_max: float
    norm: float
    batch: int
    path: str
    channel_maxima: tuple[float, ...] | None = None
    settle: bool = False
    calibration_points: int = 0


def _load_integrator(integrand: Integrand, checkpoint: str | Path) -> Integrator:
    """The integrator of a checkpoint on ``integrand``, built as ``madnis-py`` does."""
    from madnis_py.integrand import TorchChannels
    from madnis_py.training import Integrator

    return Integrator.load(checkpoint, TorchChannels(integrand))


def _run_shard(task: _Shard) -> ShardReport:
    """One shard on a worker: events drawn with the shard's seed into its part file."""
    with _LOCK:
        return _shard_events(task)


def _shard_events(task: _Shard) -> ShardReport:
    from madnis_py.events.output import generate_events

    integrand, load_s = _worker_integrand(IntegrandSpec.from_card(task.card))
    t0 = time.perf_counter()
    mc = _load_integrator(integrand, task.checkpoint)
    mc.generator.manual_seed(task.seed)
    setup_s = time.perf_counter() - t0
    path = Path(task.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The LHE writer streams to hidden temporaries and renames onto `path` when complete:
    # a worker killed here leaves no part file, only temporaries the merge removes.
    done = generate_events(mc, task.card, task.n_events, path, sigma=task.sigma,
                           error=task.error, seed=task.seed, w_max=task.w_max,
                           norm=task.norm, batch=task.batch,
                           channel_maxima=task.channel_maxima, settle=task.settle,
                           calibration_points=task.calibration_points)
    worker = ""
    try:
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):
        pass
    return ShardReport(task.shard, task.seed, task.n_events, str(path),
                       done.subprocess_events, done.max_weights, done.n_calls,
                       done.n_weighted, done.efficiency, done.n_overweight,
                       done.truncation_bias, load_s, setup_s, done.generate_s, worker,
                       written=done.written, reference=done.reference,
                       report=done.report.as_dict() if done.report else {},
                       w_max=done.w_max, thinned=done.thinned)


def merge_shard_reports(shards: Sequence[ShardReport], unweighter: Unweighter,
                        w_max: float, norm: float, *,
                        calibration: np.ndarray | None = None) -> WeightReport:
    """The :class:`WeightReport` of a sharded run, as one process would measure it.

    The written events' ESS and largest weight (over the nominal ``norm``) come from the
    sum of the shards' :class:`WeightTally` (sums of w and w^2, the maximum); the share
    of sigma above ``w_max`` and the three efficiencies from ``calibration``, the
    driver's calibration sample, else from the shards' reference samples together.

    Raises
    ------
    ValueError
        A shard without its tally (or, without ``calibration``, its reference sample).
    """
    missing = [r.shard for r in shards if r.written is None
               or (calibration is None and r.reference is None)]
    if missing:
        raise ValueError(f"shards {missing}: no weight tally or reference sample in the "
                         "report")
    tally = WeightTally()
    for r in shards:
        assert r.written is not None
        tally = tally + r.written
    if calibration is None:
        parts = [r.reference for r in shards if r.reference is not None]
        calibration = np.concatenate(parts) if parts else np.zeros(0)
    return unweighter.report_tally(calibration, w_max, tally, nominal=norm)


def merge_lhe_parts(parts: Sequence[str | os.PathLike[str]], path: str | os.PathLike[str],
                    init: LHEInit, *, header: str | Banner | None = None) -> Path:
    """One LHE file from part files, their events in the given order, with a new
    ``<init>``: :meth:`madnis_py.events.LHEWriter.merge_parts`."""
    from madnis_py.events import LHEWriter

    return LHEWriter.merge_parts(parts, path, init, header=header)


def shard_batch(events: int, n_channels: int) -> int:
    """The default draw of a shard of ``events`` events with ``n_channels`` active
    channels: half its events in points, between 5,000 and 20,000, but at least
    :data:`~madnis_py.events.generator.BATCH_PER_CHANNEL` points per channel.

    A shard discards the unused tail of its last draw, and its first draw is a whole
    batch (it does not know the acceptance): with 20,000 that would be most of the work
    of a small shard. Every draw has a fixed cost per channel it draws, which makes
    draws of a few points per channel slow (p p > e+ e- j j QCD=0, 1464 channels: 38k
    points/s in draws of 20,000, 118k in draws of 300,000;
    :func:`~madnis_py.events.generator.default_batch`).
    """
    from madnis_py.events.generator import BATCH, BATCH_PER_CHANNEL

    return max(min(BATCH, max(5_000, -(-int(events) // 2))), BATCH_PER_CHANNEL * n_channels)


def generate_sharded(card: RunCard, checkpoint: str | os.PathLike[str], n_events: int,
                     client: Client, *, output: str | os.PathLike[str],
                     shards: int | None = None, w_max: float | None = None,
                     norm: float = 1.0, channel_maxima: Sequence[float] | None = None,
                     batch: int | None = None, retries: int = 2,
                     progress: Callable[[ShardReport], None] | None = None,
                     ) -> ShardedGeneration:
    """Unweighted events of a trained checkpoint, generated in shards on a Dask cluster
    and merged into one LHE file ``output / card.output.lhe``.

    The driver loads the checkpoint once: the cross section and its error are those of
    its last integration, and unless ``w_max`` is given the maximum weight and the
    overweight normalisation are calibrated as in ``madnis-py generate`` (same sample,
    same seed ``card.run.seed + 1``). Shard ``i`` draws ``split_events(n_events,
    shards)[i]`` events with seed ``shard_seed(card.run.seed, i)`` into
    ``output/parts/part-{i:04d}.lhe``; the parts are then merged in shard order and
    removed. The file depends on the card, checkpoint, ``n_events``, ``shards``,
    ``w_max``, ``norm`` and ``batch`` only: not on the number of workers, the order the
    shards finish in, or workers lost on the way.

    Parameters
    ----------
    card : RunCard
        The run card the checkpoint was trained with (process, integrand options,
        unweighting settings, LHE name and header).
    checkpoint : path
        Written by ``madnis-py run``/``integrate`` (visible to every worker).
    n_events : int
        Events in the merged file, exactly.
    client : distributed.Client
    output : path
        Directory of the merged file (and of the temporary ``parts`` directory; visible to
        every worker).
    shards : int, optional
        Number of tasks (default: the card's ``[distributed] shards``, else 4). More
        shards than workers balance the load and make a lost shard cheaper.
    w_max, norm : float, optional
        Maximum weight and overweight normalisation fixed elsewhere (no calibration).
        Calibrated here, they come with the channels' maxima that share the draws (the
        card's ``[unweighting] allocation``), which every shard uses, and each shard's own
        draws may still raise or lower its ``w_max`` (``[unweighting] settle_events``,
        :mod:`madnis_py.events.stream`): every shard's events then keep the card's
        truncation, and so do all of them together.
    channel_maxima : sequence of float, optional
        With ``w_max``: the channels' maxima fixed with it (a previous result's
        :attr:`ShardedGeneration.channel_maxima`); without, the shards draw with the
        integrator's allocation.
    batch : int, optional
        Weighted points per draw inside a shard (part of the shard's definition).
        Default: :func:`shard_batch` of the largest shard.
    retries : int
        Dask ``retries`` of a shard whose task raises (a worker that dies is handled by
        the scheduler, up to its ``distributed.scheduler.allowed-failures``).
    progress : callable, optional
        Called with each :class:`ShardReport` as its shard completes.

    Raises
    ------
    ValueError
        A bad ``n_events``, ``shards``, ``w_max`` or ``batch``, or a checkpoint with a
        non-positive cross section.
    RuntimeError
        A shard failed after its retries (the message names it); no merged file is
        written.
    """
    from distributed import as_completed

    from madnis_py.cards.run_card import DistributedSettings
    from madnis_py.events import Banner, LHEWriter
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.output import (
        calibration_size,
        cross_section,
        lhe_init,
        unweighter_from_card,
    )

    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if shards is None:
        shards = (card.distributed or DistributedSettings()).shards
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    if w_max is not None and not w_max > 0:
        raise ValueError(f"w_max must be > 0, got {w_max!r}")
    if batch is not None and batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    checkpoint = Path(checkpoint).resolve()
    if not checkpoint.is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    out_dir = Path(output).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    integrand = IntegrandSpec.from_card(card).build()
    mc = _load_integrator(integrand, checkpoint)
    calls_before = int(mc.n_calls)
    result = cross_section(mc, card)  # as madnis-py generate
    sigma, error = float(result.value), float(result.error)
    if not sigma > 0 or not math.isfinite(sigma):
        raise ValueError(f"{checkpoint}: cross section {sigma!r} pb; events need sigma > 0")
    driver_calls = int(mc.n_calls) - calls_before
    calibration_calls = 0
    calibration: np.ndarray | None = None
    acceptance: dict[str, float] = {}
    unweighter = unweighter_from_card(card)
    maxima = None if channel_maxima is None else tuple(float(v) for v in channel_maxima)
    # a w_max calibrated here may still rise (and fall) on each shard's own draws, as one
    # process's does (EventStream); one given is used as given
    settle = w_max is None
    if w_max is None:
        # The calibration of madnis-py generate (generate_events): same seed, same size,
        # and the channels' shares of the draws with it
        gen = EventGenerator(mc, sigma, seed=card.run.seed + 1, unweighter=unweighter,
                             allocation=card.unweighting.allocation)
        gen.calibrate(calibration_size(card))
        # checked on fresh points, as a local run checks it (EventGenerator.validate);
        # the shards take no events from these draws
        gen.validate(min(20_000, calibration_size(card)))
        assert gen.w_max is not None
        w_max = gen.w_max
        norm = gen.norm
        if gen.channel_maxima is not None:
            maxima = tuple(float(v) for v in gen.channel_maxima)
        if gen.allocation_choice is not None:
            acceptance = dict(gen.allocation_choice.acceptance)
        calibration = gen.calibration_weights
        calibration_calls = int(gen.calibration_calls)
        driver_calls += int(gen.n_calls)
    calibrate_s = time.perf_counter() - t0

    parts_dir = out_dir / "parts"
    if parts_dir.exists():  # a previous run's leftovers (its inputs are unknown)
        shutil.rmtree(parts_dir)
    parts_dir.mkdir()
    counts = split_events(n_events, shards)
    if batch is None:
        batch = shard_batch(max(counts), mc.n_active)
    tasks = [_Shard(card, str(checkpoint), i, shard_seed(card.run.seed, i), c, sigma, error,
                    float(w_max), float(norm), int(batch),
                    str(parts_dir / f"part-{i:04d}.lhe"), maxima, settle,
                    0 if calibration is None else len(calibration))
             for i, c in enumerate(counts)]
    run = secrets.token_hex(4)  # unique keys: a rerun never picks up an older result
    t0 = time.perf_counter()
    futures = [client.submit(_run_shard, t, key=f"madnis-shard-{t.shard:04d}-{run}",
                             pure=False, retries=retries) for t in tasks]
    index = {f.key: i for i, f in enumerate(futures)}
    reports: list[ShardReport | None] = [None] * shards
    try:
        for fut in as_completed(futures):  # type: ignore[no-untyped-call]
            i = index[fut.key]
            try:
                report = fut.result()
            except Exception as err:
                raise RuntimeError(f"shard {i} ({tasks[i].n_events} events, seed "
                                   f"{tasks[i].seed}) failed after {retries} retries: "
                                   f"{type(err).__name__}: {err}") from err
            reports[i] = report
            if progress is not None:
                progress(report)
    except BaseException:
        client.cancel(futures)  # type: ignore[no-untyped-call]
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise
    run_s = time.perf_counter() - t0
    done = [r for r in reports if r is not None]
    t0 = time.perf_counter()
    try:
        n_sub = len(integrand.process.subprocesses)
        sub_counts = np.zeros(n_sub, dtype=np.int64)
        xmax = np.zeros(n_sub)
        for r in done:
            sub_counts += np.asarray(r.subprocess_events, dtype=np.int64)
            xmax = np.maximum(xmax, r.max_weights)
        if int(sub_counts.sum()) != n_events:
            raise RuntimeError(f"the shards wrote {int(sub_counts.sum())} events, "
                               f"{n_events} requested")
        init = lhe_init(integrand, sigma, error, sub_counts, xmax)
        path = LHEWriter.merge_parts([t.path for t in tasks], out_dir / card.output.lhe,
                                     init, header=Banner.for_run(card, integrand))
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    report = merge_shard_reports(done, unweighter, float(w_max), float(norm),
                                 calibration=calibration)
    return ShardedGeneration(path, n_events, sigma, error, float(w_max), float(norm),
                             int(batch), sub_counts.tolist(), done, calibrate_s, run_s,
                             time.perf_counter() - t0, driver_calls, calibration_calls,
                             report, maxima, acceptance)
