"""Event generation and matrix-element evaluation spread over a Dask cluster.

Two jobs scale out, both through ``dask.distributed`` (the scheduler, the retries and the
recovery from lost workers are Dask's; nothing here schedules work itself):

* **Sharded event generation** (:func:`generate_sharded`). The driver loads the trained
  checkpoint once, takes the cross section from its last integration and fixes the
  maximum weight ``w_max`` (with its overweight normalisation) on one calibration sample,
  exactly as the single-process ``madnis-py generate`` does. The events are split into
  shards whose counts add up to the request; each shard is one Dask task that rebuilds
  the integrand and the integrator on its worker, draws its events with its own seed
  (:func:`shard_seed`) and writes its own LHE part file. A shard is a pure function of
  (card, checkpoint, seed, count, ``w_max``), and its part file only appears, by an
  atomic rename, once it is complete: a worker that dies mid-shard leaves at most hidden
  temporary files, Dask reruns the task elsewhere, and the merged file is byte for byte
  the one of a run without the failure. The merge streams the parts' ``<event>`` blocks
  in shard order into one file whose ``<init>`` carries the cross section of every
  subprocess from the event counts summed over the shards.

* **Distributed matrix elements during training** (:class:`DistributedChannels`). The
  flows train on the driver; only the integrand (phase-space mapping, PDFs and matrix
  element) is evaluated on the workers, on chunks of each batch, and reassembled in
  order. The evaluation is deterministic per point, so a training gives the same losses
  and integral as in one process for the same seed.

Workers rebuild the integrand from a small picklable :class:`IntegrandSpec` (a process
name or card path and the integrand's options) and keep it in a per-process cache, so the
matrix-element library is loaded once per worker, not once per task; numpy arrays travel,
torch modules never do. Paths (checkpoint, output directory, process cards outside the
package) must be visible to every worker: a shared file system on a batch cluster.

Clusters come from the run card's ``[distributed]`` table (:func:`cluster_from_settings`):
an existing scheduler, a ``LocalCluster`` of worker processes, or a batch-system cluster
of ``dask_jobqueue`` (SLURM, HTCondor, PBS). :func:`check_distributed` checks that table
before any work (the scheduler answers, the cluster's options are keyword arguments its
class takes) and raises :class:`DistributedError`, one line, when it cannot work.
"""

from __future__ import annotations

import asyncio
import difflib
import inspect
import math
import os
import re
import secrets
import shutil
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from madnis_py.events.unweight import Unweighter, WeightReport, WeightTally

if TYPE_CHECKING:
    import torch
    from distributed import Client

    from madnis_py.cards.run_card import DistributedSettings, RunCard
    from madnis_py.events.banner import Banner
    from madnis_py.events.lhe import LHEInit
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.training import Integrator

__all__ = [
    "DistributedChannels",
    "DistributedError",
    "IntegrandSpec",
    "ShardReport",
    "ShardedGeneration",
    "cluster_client",
    "check_distributed",
    "cluster_from_settings",
    "generate_sharded",
    "merge_lhe_parts",
    "merge_shard_reports",
    "shard_seed",
    "split_events",
]

#: The ``[distributed] cluster`` names and the ``dask_jobqueue`` class of each batch system.
JOBQUEUE_CLUSTERS: dict[str, str] = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster",
                                     "pbs": "PBSCluster"}


# ------------------------------------------------------------------------- seeds, shards


def shard_seed(run_seed: int, shard: int) -> int:
    """The seed of shard ``shard`` of a run seeded with ``run_seed``.

    Drawn from ``numpy.random.SeedSequence([run_seed, shard])``, so that shards of one
    run, and the same shard of different runs, get statistically independent streams
    (consecutive integers as seeds would not guarantee that for every generator).

    Raises
    ------
    ValueError
        ``run_seed`` or ``shard`` is not a non-negative integer.
    """
    for name, value in (("run_seed", run_seed), ("shard", shard)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(np.random.SeedSequence([int(run_seed), int(shard)]).generate_state(1)[0])


def split_events(n_events: int, shards: int) -> list[int]:
    """``n_events`` split into ``shards`` counts that differ by at most one and add up
    exactly (the first ``n_events % shards`` shards take one more).

    Raises
    ------
    ValueError
        ``n_events < 0`` or ``shards < 1``.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    base, extra = divmod(int(n_events), int(shards))
    return [base + (1 if i < extra else 0) for i in range(shards)]


# ------------------------------------------------------------------- integrand recipes


def _freeze(value: Any) -> Any:
    """A hashable copy of an option value (the cuts are a mapping)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


@dataclass(frozen=True)
class IntegrandSpec:
    """What a worker needs to build a physics :class:`~madnis_py.integrand.Integrand`:
    small, picklable and hashable (it keys the per-worker cache).

    Attributes
    ----------
    process : str
        A built-in process name, or the path of a process directory or ``process.toml``
        (visible to the workers).
    options : tuple of (name, value)
        Keyword arguments of ``Integrand`` (``sqrt_s``, ``pdf``, ``scale``,
        ``dynamical_scale_choice``, ``cuts``, ``alpha_s``, ``subprocess_channels``), the
        cuts as sorted pairs.
    """

    process: str
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def create(cls, process: str | os.PathLike[str], **options: Any) -> IntegrandSpec:
        """A spec from a process and ``Integrand`` keyword arguments."""
        return cls(os.fspath(process), tuple(sorted((k, _freeze(v))
                                                    for k, v in options.items())))

    @classmethod
    def from_card(cls, card: RunCard) -> IntegrandSpec:
        """The integrand of a run card: its process (a built-in name stays a name, so that
        workers find it in their own installation) and ``card.integrand_options()``."""
        from madnis_py.physics.process import builtin_name

        process = card.run.process
        name = (process if process is not None and builtin_name(process) is not None
                else os.fspath(card.load_process().card))
        return cls.create(name, **card.integrand_options())

    @classmethod
    def from_integrand(cls, integrand: Integrand) -> IntegrandSpec:
        """The recipe of an existing integrand: its process card and the options it was
        built with (the PDF by set name and member)."""
        opts: dict[str, Any] = {"sqrt_s": integrand.sqrt_s, "cuts": dict(integrand.cut_values)}
        if integrand.scale is not None:
            opts["scale"] = integrand.scale
        if integrand.dynamical_scale_choice is not None:
            opts["dynamical_scale_choice"] = integrand.dynamical_scale_choice
        if integrand.alpha_s is not None:
            opts["alpha_s"] = integrand.alpha_s
        if integrand.subprocess_channels != "shared":
            opts["subprocess_channels"] = integrand.subprocess_channels
        if integrand.pdf is not None:
            name, member = str(integrand.pdf.name), int(integrand.pdf.member)
            opts["pdf"] = name if member == 0 else f"{name}/{member}"
        return cls.create(integrand.process.card, **opts)

    def kwargs(self) -> dict[str, Any]:
        """The options as ``Integrand`` keyword arguments."""
        return {k: (dict(v) if k == "cuts" else v) for k, v in self.options}

    def build(self) -> Integrand:
        """A new integrand (loads the matrix-element library)."""
        from madnis_py.integrand import Integrand
        from madnis_py.physics.process import load_process

        return Integrand(load_process(self.process), **self.kwargs())


# One integrand per spec and worker process: the matrix-element library, the PDF grids and
# the phase-space mappings are loaded by the first task that needs them, not by every task.
_INTEGRANDS: dict[IntegrandSpec, Integrand] = {}
# Tasks of one process take turns on a cached integrand: with threaded workers (not what
# cluster_from_settings starts) two threads must not share a library's global state.
_LOCK = threading.RLock()


def _worker_integrand(spec: IntegrandSpec) -> tuple[Integrand, float]:
    """The worker's cached integrand of ``spec`` and the seconds it took to build (0 when
    cached). Call with ``_LOCK`` held."""
    import torch

    torch.set_num_threads(1)  # one task per worker process; the cores are the workers'
    cached = _INTEGRANDS.get(spec)
    if cached is not None:
        return cached, 0.0
    t0 = time.perf_counter()
    integrand = spec.build()
    _INTEGRANDS[spec] = integrand
    return integrand, time.perf_counter() - t0


#: What an integrand can be given as: a spec, a run card, an integrand (its recipe), or
#: a process name or path.
IntegrandSource = Union["IntegrandSpec", "RunCard", "Integrand", "TorchChannels", str,
                        "os.PathLike[str]"]


def _spec_of(source: IntegrandSource) -> IntegrandSpec:
    from madnis_py.cards.run_card import RunCard
    from madnis_py.integrand import Integrand, TorchChannels

    if isinstance(source, IntegrandSpec):
        return source
    if isinstance(source, RunCard):
        return IntegrandSpec.from_card(source)
    if isinstance(source, TorchChannels):
        return IntegrandSpec.from_integrand(source.integrand)
    if isinstance(source, Integrand):
        return IntegrandSpec.from_integrand(source)
    if isinstance(source, (str, os.PathLike)):
        return IntegrandSpec.create(source)
    raise TypeError(f"source must be an IntegrandSpec, a RunCard, an Integrand, "
                    f"TorchChannels or a process name/path, got {type(source).__name__}")


# ------------------------------------------------------- distributed matrix elements


def _describe_channels(spec: IntegrandSpec) -> tuple[int, list[int], int, tuple[int, ...]]:
    from madnis_py.integrand import TorchChannels

    with _LOCK:
        channels = TorchChannels(_worker_integrand(spec)[0])
    n = channels.n_channels
    return (n, [channels.dims(i) for i in range(n)], channels.feature_dims,
            tuple(channels.channel_groups))


def _evaluate_chunk(spec: IntegrandSpec, x: np.ndarray,
                    channel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``TorchChannels(integrand)(x, channel)`` on a worker, as numpy arrays (the same code
    path as in one process, so the same numbers)."""
    import torch

    from madnis_py.integrand import TorchChannels

    with _LOCK:
        f, features, prior = TorchChannels(_worker_integrand(spec)[0])(torch.from_numpy(x),
                                                                       channel)
    return f.numpy(), features.numpy(), None if prior is None else prior.numpy()


class DistributedChannels:
    """A multi-channel integrand whose evaluations run on Dask workers.

    It implements the protocol of :class:`~madnis_py.training.Integrator`
    (``n_channels``, ``dims(channel)``, ``feature_dims`` and
    ``(x, channel) -> (f, features, prior)`` on torch float64 points), splitting every
    batch into chunks that workers evaluate with their cached
    :class:`~madnis_py.integrand.Integrand` and putting the results back in order. The
    flows, the optimiser and the random numbers stay on the driver, so with the same seed
    a training gives the same losses and integral as with ``TorchChannels``.

    Parameters
    ----------
    source : IntegrandSpec, RunCard, Integrand, TorchChannels or str
        The integrand: a spec, a run card's, an existing integrand's recipe (rebuilt on
        the workers, never shipped), or a process name or path with its card's defaults.
    client : distributed.Client
        Client of the cluster that evaluates.
    chunks : int, optional
        Tasks per batch (default: the number of workers when constructed).
    min_chunk : int
        Fewest points per task: smaller batches use fewer tasks, since a task round trip
        costs a few milliseconds.
    retries : int
        Dask ``retries`` of each task (a lost worker is handled by the scheduler anyway).

    Examples
    --------
    >>> channels = DistributedChannels(card, client)                 # doctest: +SKIP
    >>> mc = Integrator(channels, feature_dims=channels.feature_dims, seed=1)
    >>> mc.train(100, batch=4096)
    """

    def __init__(self, source: IntegrandSource, client: Client, *, chunks: int | None = None,
                 min_chunk: int = 256, retries: int = 1) -> None:
        from madnis_py.integrand import Integrand, TorchChannels

        if chunks is not None and chunks < 1:
            raise ValueError(f"chunks must be >= 1, got {chunks}")
        if min_chunk < 1:
            raise ValueError(f"min_chunk must be >= 1, got {min_chunk}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.spec = _spec_of(source)
        self.client = client
        if chunks is None:
            chunks = max(1, len(client.scheduler_info().get("workers", {})))
        self.chunks = int(chunks)
        self.min_chunk = int(min_chunk)
        self.retries = int(retries)
        local = (TorchChannels(source) if isinstance(source, Integrand)
                 else source if isinstance(source, TorchChannels) else None)
        if local is not None:
            n = local.n_channels
            self._dims = [local.dims(i) for i in range(n)]
            self.feature_dims = local.feature_dims
            self.channel_groups = tuple(local.channel_groups)
        else:  # only the workers load the library
            n, self._dims, self.feature_dims, self.channel_groups = client.submit(
                _describe_channels, self.spec, pure=False).result()
        self.n_channels = n

    def dims(self, channel: int) -> int:
        return self._dims[channel]

    def __call__(self, x: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        import torch

        if not 0 <= channel < self.n_channels:
            raise IndexError(f"channel {channel}: the integrand has {self.n_channels} "
                             "channels")
        points = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != self._dims[channel]:
            raise ValueError(f"x must have shape (n, {self._dims[channel]}) for channel "
                             f"{channel}, got {tuple(points.shape)}")
        n = len(points)
        if n == 0:
            return (torch.zeros(0).to(x), torch.zeros(0, self.feature_dims).to(x),
                    torch.zeros(0, self.n_channels).to(x))
        k = max(1, min(self.chunks, n // self.min_chunk))
        pieces = np.array_split(points, k)
        futures = self.client.map(_evaluate_chunk, [self.spec] * k, pieces, [channel] * k,
                                  pure=False, retries=self.retries)
        parts = self.client.gather(futures)  # type: ignore[no-untyped-call]
        f = np.concatenate([p[0] for p in parts])
        features = np.concatenate([p[1] for p in parts])
        priors = [p[2] for p in parts]
        prior = (None if any(p is None for p in priors)
                 else torch.from_numpy(np.concatenate(priors)).to(x))
        return torch.from_numpy(f).to(x), torch.from_numpy(features).to(x), prior


# ------------------------------------------------------------------- sharded generation


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
        Maximum weight and overweight normalisation shared by all shards.
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
                           channel_maxima=task.channel_maxima)
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
                       report=done.report.as_dict() if done.report else {})


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
        card's ``[unweighting] allocation``), which every shard uses.
    channel_maxima : sequence of float, optional
        With ``w_max``: the channels' maxima fixed with it (a previous result's
        :attr:`ShardedGeneration.channel_maxima`); without, the shards draw with the
        integrator's allocation.
    batch : int, optional
        Weighted points per draw inside a shard (part of the shard's definition).
        Default: half the largest shard, between 5,000 and 20,000 (the generator's
        batch): a shard discards the unused tail of its last draw, which with 20,000
        would be most of the work of a small shard, while every draw has a fixed cost
        (tens of ms for a few channels) that makes much smaller draws slower.
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
    unweighter = unweighter_from_card(card)
    maxima = None if channel_maxima is None else tuple(float(v) for v in channel_maxima)
    if w_max is None:
        # The calibration of madnis-py generate (generate_events): same seed, same size,
        # and the channels' shares of the draws with it
        gen = EventGenerator(mc, sigma, seed=card.run.seed + 1, unweighter=unweighter,
                             allocation=card.unweighting.allocation)
        w_max = gen.calibrate(calibration_size(card))
        norm = gen.norm
        if gen.channel_maxima is not None:
            maxima = tuple(float(v) for v in gen.channel_maxima)
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
        batch = min(20_000, max(5_000, -(-max(counts) // 2)))
    tasks = [_Shard(card, str(checkpoint), i, shard_seed(card.run.seed, i), c, sigma, error,
                    float(w_max), float(norm), int(batch),
                    str(parts_dir / f"part-{i:04d}.lhe"), maxima) for i, c in enumerate(counts)]
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
                             report, maxima)


# -------------------------------------------------------------------------- clusters


def cluster_from_settings(settings: DistributedSettings) -> tuple[Client, Any]:
    """A client for the run card's ``[distributed]`` table, and the cluster it started.

    ``scheduler = "tcp://host:8786"`` joins a running scheduler (the cluster is then
    ``None``: someone else owns it). ``cluster = "local"`` starts a ``LocalCluster`` of
    ``workers`` processes with one thread each; ``"slurm"``, ``"htcondor"`` and
    ``"pbs"`` start the ``dask_jobqueue`` cluster of that batch system with ``options``
    as its keyword arguments (``queue``, ``cores``, ``memory``, ``walltime``, ...) and
    scale it to ``workers`` workers. Close both when done (``client.close()``,
    ``cluster.close()``).

    Raises
    ------
    ValueError
        An unknown cluster name, or neither a scheduler nor a cluster.
    ImportError
        ``dask_jobqueue`` (or ``distributed``) is not installed; the message says how to
        install it.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError as err:
        raise ImportError("[distributed] needs dask.distributed: pip install "
                          "'dask[distributed]' dask-jobqueue") from err
    if settings.scheduler is not None:
        return Client(settings.scheduler), None  # type: ignore[no-untyped-call]
    name = settings.cluster
    if name == "local":
        cluster: Any = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=settings.workers, threads_per_worker=1, processes=True,
            **settings.options)
        return Client(cluster), cluster  # type: ignore[no-untyped-call]
    if name not in JOBQUEUE_CLUSTERS:
        known = ", ".join(["local", *JOBQUEUE_CLUSTERS])
        raise ValueError(f"[distributed] cluster: unknown cluster {name!r} (expected one of "
                         f"{known}, or a scheduler address)")
    try:
        import dask_jobqueue
    except ImportError as err:
        raise ImportError(f"[distributed] cluster = {name!r} needs dask-jobqueue: pip "
                          "install dask-jobqueue") from err
    cluster = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[name])(**settings.options)
    try:
        cluster.scale(settings.workers)
        client = Client(cluster)  # type: ignore[no-untyped-call]
    except BaseException:
        cluster.close()
        raise
    return client, cluster


@contextmanager
def cluster_client(settings: DistributedSettings) -> Iterator[Client]:
    """:func:`cluster_from_settings` as a context: the client, closed with the cluster it
    started (if any) when the block ends.

    Examples
    --------
    >>> with cluster_client(card.distributed) as client:           # doctest: +SKIP
    ...     generate_sharded(card, checkpoint, 100_000, client, output=out)
    """
    client, cluster = cluster_from_settings(settings)
    try:
        yield client
    finally:
        client.close()  # type: ignore[no-untyped-call]
        if cluster is not None:
            cluster.close()


# ------------------------------------------------------------- checks before any work


class DistributedError(ValueError):
    """A ``[distributed]`` setting that cannot work, found before any work is done: one
    line naming the setting, what is wrong and what was expected."""


#: Address schemes of Dask's communication layer; a bare ``host:port`` is ``tcp``.
_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
_HOST_PORT = re.compile(r"^(?:\[(?P<ipv6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\[\]:/\s]+)):"
                        r"(?P<port>\d+)$")
_ADDRESS_FORM = ("expected 'tcp://host:port', such as 'tcp://127.0.0.1:8786'; also tls://, "
                 "ws://, wss://, ucx:// with host:port, or inproc://")


def _parse_scheduler(address: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of a scheduler address (``inproc``: the whole location,
    no port)."""
    what = f"[distributed] scheduler {address!r}"
    text = address.strip()
    scheme, sep, location = text.partition("://")
    if not sep:
        scheme, location = "tcp", text  # Dask's default protocol
    if scheme not in _SCHEMES:
        raise DistributedError(f"{what}: unknown protocol {scheme!r} ({_ADDRESS_FORM})")
    if scheme == "inproc":
        if not location:
            raise DistributedError(f"{what}: no location after inproc:// ({_ADDRESS_FORM})")
        return scheme, location, None
    match = _HOST_PORT.match(location)
    if match is None:
        raise DistributedError(f"{what}: not a scheduler address ({_ADDRESS_FORM})")
    port = int(match["port"])
    if not 1 <= port <= 65535:
        raise DistributedError(f"{what}: port {port} is out of range (expected 1 to "
                               "65535)")
    return scheme, match["ipv6"] or match["host"], port


async def _identity(address: str, timeout: float) -> Any:
    """The ``identity`` reply of the Dask server at ``address``."""
    from distributed.comm.core import connect

    comm = await connect(address, timeout=timeout)  # type: ignore[no-untyped-call]
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()


def _check_scheduler(address: str, timeout: float) -> None:
    scheme, host, port = _parse_scheduler(address)
    what = f"[distributed] scheduler {address}"
    expected = ("expected the address of a running Dask scheduler (`dask scheduler` prints "
                "it), or a cluster to start, such as cluster = \"local\"")
    if scheme == "inproc":
        from distributed.comm.inproc import global_manager

        try:
            listener = global_manager.get_listener_for(host)  # type: ignore[no-untyped-call]
        except ValueError:
            listener = None
        if listener is None:
            raise DistributedError(f"{what}: no Dask scheduler answers (no such in-process "
                                   f"address in this process): {expected}")
        return
    if scheme == "ucx":
        return  # UCX endpoints need not listen on TCP: left to Dask
    greeting = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            if scheme == "tcp":
                greeting = _read_greeting(sock)
    except ConnectionRefusedError:
        reason = "connection refused"
    except socket.gaierror as err:
        reason = f"unknown host {host!r}: {err.strerror or err}"
    except _GreetingTimeout:
        reason = (f"something accepts connections on port {port} but sends no Dask "
                  f"greeting within {timeout:g} s")
    except TimeoutError:
        reason = f"no answer within {timeout:g} s"
    except OSError as err:
        reason = err.strerror or str(err) or type(err).__name__
    else:
        reason = ""
    if reason:
        raise DistributedError(f"{what}: no Dask scheduler answers ({reason}): {expected}")
    if scheme != "tcp":
        return  # tls/ws need the cluster's security settings to talk: left to Dask
    # Dask's TCP greeting: the byte count of the frames that follow, then their number,
    # each an unsigned 64-bit integer; the handshake is a few dozen bytes in one frame.
    total, n_frames = struct.unpack("<QQ", greeting)
    if not (8 < total <= 1 << 20 and 1 <= n_frames <= 64):
        raise DistributedError(f"{what}: no Dask scheduler answers (something listens on "
                               f"port {port} but does not speak Dask's protocol): "
                               f"{expected}")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return  # inside an event loop: the greeting is all that is checked
    try:
        reply = asyncio.run(_identity(f"tcp://{_host_port(host, port)}", timeout))
    except Exception as err:
        raise DistributedError(f"{what}: no Dask scheduler answers (the server on port "
                               f"{port} does not answer Dask's identity request: "
                               f"{type(err).__name__}: "
                               f"{' '.join(str(err).split()) or 'no reply'}): "
                               f"{expected}") from err
    kind = reply.get("type") if isinstance(reply, dict) else None
    if kind != "Scheduler":
        raise DistributedError(f"{what}: a Dask {kind or 'server'} answers, not a "
                               f"scheduler: {expected}")


def _read_greeting(sock: socket.socket) -> bytes:
    """The first 16 bytes a server sends on a fresh connection (a Dask server sends its
    handshake without waiting for the client's)."""
    data = b""
    try:
        while len(data) < 16:
            chunk = sock.recv(16 - len(data))
            if not chunk:
                raise ConnectionResetError(f"the server on port {sock.getpeername()[1]} "
                                           "closed the connection without a greeting")
            data += chunk
    except TimeoutError as err:
        raise _GreetingTimeout() from err
    return data


class _GreetingTimeout(TimeoutError):
    """Connected, but the server sent no greeting in time."""


def _host_port(host: str, port: int | None) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _own_parameters(cls: type) -> list[str]:
    """The named keyword parameters of ``cls``'s own ``__init__`` (none if it has none)."""
    init = vars(cls).get("__init__")
    if init is None:
        return []
    return [p.name for p in inspect.signature(init).parameters.values()
            if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _chain_parameters(cls: type, base: type) -> list[str]:
    """Named parameters of the ``__init__`` of ``cls`` and of its bases up to ``base``."""
    out: list[str] = []
    for k in cls.__mro__:
        if isinstance(k, type) and issubclass(k, base):
            out += [n for n in _own_parameters(k) if n not in out]
    return out


def _cluster_keywords(settings: DistributedSettings) -> tuple[str, list[str], dict[str, str]]:
    """The cluster class's name, the keyword arguments it takes (with those it passes on
    through ``**kwargs``), and the keywords the run sets itself, each with why."""
    name = settings.cluster
    if name == "local":
        from distributed import LocalCluster, Nanny, Worker
        from distributed.core import Server

        # LocalCluster passes unknown keywords to its workers: Nanny (processes=True),
        # which passes them to Worker, which passes them to Server.
        valid: list[str] = []
        for cls in (LocalCluster, Nanny, Worker, Server):
            valid += [n for n in _own_parameters(cls) if n not in valid]
        # given by the cluster (the scheduler's address) or by Worker to Server
        internal = ("scheduler_ip", "handlers", "stream_handlers", "connection_args",
                    "needs_workdir")
        valid = [n for n in valid if n not in internal]
        why = "set by [distributed] workers"
        return "distributed.LocalCluster or of its workers, Nanny and Worker", valid, {
            "n_workers": why, "workers": why,
            "threads_per_worker": "one thread per worker process, set by madnis-py",
            "processes": "worker processes, set by madnis-py"}
    if name not in JOBQUEUE_CLUSTERS:
        known = ", ".join(repr(c) for c in ["local", *JOBQUEUE_CLUSTERS])
        raise DistributedError(f"[distributed] cluster: unknown cluster {name!r} (expected "
                               f"one of {known}, or a scheduler address)")
    try:
        import dask_jobqueue
        from dask_jobqueue.core import Job, JobQueueCluster
    except ImportError as err:
        raise DistributedError(f"[distributed] cluster = {name!r} needs dask-jobqueue, "
                               "which is not installed (expected: pip install "
                               "dask-jobqueue)") from err
    cls = getattr(dask_jobqueue, JOBQUEUE_CLUSTERS[name])
    # JobQueueCluster passes unknown keywords (**job_kwargs) to its job class, whose own
    # **kwargs go to dask_jobqueue.core.Job.
    valid = _chain_parameters(cls, JobQueueCluster)
    valid += [n for n in _chain_parameters(cls.job_cls, Job) if n not in valid]
    internal = ("job_cls", "scheduler", "name", "loop", "asynchronous")
    valid = [n for n in valid if n not in internal]
    return (f"dask_jobqueue.{JOBQUEUE_CLUSTERS[name]}", valid,
            {"n_workers": "set by [distributed] workers (the cluster is scaled to it)"})


def check_distributed(settings: DistributedSettings, *, timeout: float = 5.0) -> None:
    """Check a ``[distributed]`` table before any work, without starting a cluster.

    * ``scheduler``: the address must parse (``tcp://host:port``, ``tls://``,
      ``ws://``, ``wss://``, ``ucx://`` with ``host:port``, ``inproc://...``; a bare
      ``host:port`` is ``tcp``, as for Dask), and a server must accept a TCP connection
      within ``timeout`` seconds; for ``tcp`` it must answer Dask's ``identity`` request
      as a scheduler (``tls``/``ws`` need the cluster's security settings: only the
      connection is checked; ``ucx`` only parses; ``inproc`` must be listening in this
      process).
    * ``cluster``: ``dask.distributed`` (and for ``slurm``, ``htcondor``, ``pbs``
      ``dask-jobqueue``) must be installed, and every key of ``options`` must be a
      keyword argument of the cluster class: ``LocalCluster``'s own and those it passes
      to its workers (``Nanny``, ``Worker``), or ``JobQueueCluster``'s and those of the
      batch system's job class (``SLURMJob``, ... and ``dask_jobqueue.core.Job``), read
      from their signatures. Keys the run sets itself (``n_workers``, and for a local
      cluster ``threads_per_worker`` and ``processes``) are errors too. A batch cluster
      needs ``cores`` and ``memory``, in ``options`` or in the Dask configuration
      (``jobqueue.<system>.cores``).

    Raises
    ------
    DistributedError
        One line naming the setting, what is wrong (with a close valid keyword where
        there is one) and what was expected.
    """
    try:
        import distributed  # noqa: F401
    except ImportError as err:
        raise DistributedError("[distributed]: needs dask.distributed, which is not "
                               "installed (expected: pip install 'dask[distributed]' "
                               "dask-jobqueue)") from err
    if settings.scheduler is not None:
        _check_scheduler(settings.scheduler, timeout)
        return
    cls_name, valid, reserved = _cluster_keywords(settings)
    options = settings.options
    unknown = [k for k in options if k not in valid and k not in reserved]
    if unknown:
        parts = []
        for key in unknown:
            close = difflib.get_close_matches(key, [*valid, *reserved], n=1, cutoff=0.6)
            hint = ""
            if close:
                hint = f" (did you mean {close[0]!r}?" + (
                    f" it is {reserved[close[0]]})" if close[0] in reserved else ")")
            parts.append(f"{key!r}{hint}")
        noun = "key" if len(unknown) == 1 else "keys"
        raise DistributedError(
            f"[distributed] options: unknown {noun} {', '.join(parts)} (expected keyword "
            f"arguments of {cls_name}, as their documentation lists them)")
    clash = [k for k in options if k in reserved]
    if clash:
        raise DistributedError("[distributed] options: " + "; ".join(
            f"{k!r} is {reserved[k]}" for k in clash) + " (expected it left out of options)")
    if settings.cluster in JOBQUEUE_CLUSTERS:
        import dask.config

        missing = [k for k in ("cores", "memory") if k not in options
                   and dask.config.get(f"jobqueue.{settings.cluster}.{k}", None) is None]
        if missing:
            raise DistributedError(
                f"[distributed] options: {cls_name.split()[0]} needs {' and '.join(missing)} "
                "per job "
                f"(expected options = {{ {', '.join(f'{k} = ...' for k in missing)} }}, "
                f"such as cores = 4, memory = \"8GB\", or jobqueue.{settings.cluster}."
                f"{missing[0]} in the Dask configuration)")
