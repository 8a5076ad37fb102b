"""Run cards of the ``madnis-py`` command: everything one run needs, in one TOML file.

A run card names a process and says how to integrate it and how many events to write.
It is read with :func:`load_run_card` (or :func:`parse_run_card` for a string) into a
frozen :class:`RunCard`, one dataclass per table; :meth:`RunCard.to_toml` writes it back
(the LHE header carries that text) and reading the text again gives an equal card.
Every table is optional except ``[run]``, and every key except ``[run] process``::

    [run]
    process = "drell_yan"     # a built-in process name, or a path (relative to the card)
                              # to a process directory or a process.toml
    seed = 1                  # random seed, integer, 0 <= seed < 2**63
    nevents = 10000           # unweighted events to write, integer, 0 <= nevents <= 10**9
    output = "run_dy"         # output directory, relative to the card
                              # (default: "<process>_run" in the working directory)
    device = "cpu"            # "cpu" or "cuda": where the flows train and sample

    [collider]                # default: the process card's [defaults]
    sqrt_s = 13000.0          # collider energy in GeV, > 0; or instead
    ebeam1 = 6500.0           #   both beam energies, MadGraph's way: sqrt_s = ebeam1 +
    ebeam2 = 6500.0           #   ebeam2 (symmetric beams only: they must be equal)
    pdf = "LHToyPDF"          # PDF set by LHAPDF name (the embedded one: "LHToyPDF"), or
    lhaid = 303000            #   by LHAPDF id, integer >= 0 (not both)

    [scale]                   # default: the process card's [defaults]
    fixed = 91.188            # fixed renormalisation = factorisation scale in GeV, > 0; or
    dynamical_scale_choice = 3  # MadGraph's 1 (sum E_T), 2 (sum m_T), 3 (sum m_T / 2),
                              #   4 (sqrt shat); not both
    alpha_s = 0.118           # fixed alpha_s, 0 < alpha_s < 1 (default: the PDF set's
                              #   running alpha_s, the param_card's with lepton beams)

    [cuts]                    # MadGraph run_card names and meanings, values are numbers;
    ptl = 10.0                # see madnis_py.phasespace.cuts.SUPPORTED_CUTS. The table
    etal = 2.5                # replaces the process card's [cuts] as a whole; leave it out
                              # to keep them

    [training]
    steps = 200               # flow training steps, integer, 0 <= steps <= 10**6 (0: VEGAS
                              #   only)
    batch = 4096              # integrand points per step, integer, 1 <= batch <= 10**7
    target = "events"         # "events": train (VEGAS rounds, then flow steps) while it
                              #   shortens the predicted wall time to [run] nevents
                              #   events (`steps` at most; training/stopping.py);
                              #   "steps": all VEGAS rounds, then `steps` flow steps
    measure_every = 10        # "events": steps between measurements of the efficiency
                              #   and the sampling rate, >= 1
    measure_points = 20000    # ... weighted points of each measurement, 1 to 10**8
    patience = 3              # ... measurements without a better predicted total
                              #   before training stops, >= 1
    explore = 0.1             # ... once the training since the best one has cost this
                              #   share of the generation time still at stake, >= 0
    lr = 3e-3                 # Adam learning rate, > 0
    loss = "variance"         # "variance", "stratified", "forward_kl" or "reverse_kl"
    buffered_steps = 0        # extra optimisation steps per step on stored batches, >= 0
                              #   (no integrand calls; MadGraph 7 trains 80 % buffered:
                              #   better per call on the toys, worse per second and per
                              #   call on g g > t t~ g, benchmarks/RESULTS.md)
    buffer_batches = 4        # batches kept for them, >= 1
    trainable_weights = true  # train the channel weights with the flows
    vegas = true              # VEGAS pre-training of every channel first
    vegas_iterations = 15     # its rounds at most, >= 2 (with target = "events" it stops
                              #   once a round no longer shortens the time to nevents)
    vegas_points = 2000       # points per channel of its first round, 20 to 10**8
    vegas_growth = 1.3        # each round's points over the round before, >= 1
    vegas_floor = 0.3         # share of the uniform density mixed into every dimension of
                              #   the VEGAS map after it, [0, 1) (bounds its Jacobian)
    subprocess_channels = "shared"  # "shared": one channel per topology, every
                              #   subprocess at every point; "grouped": one set of
                              #   channels per matrix element (and mirror), a point
                              #   costing its group's |M|^2 only, as madevent's P
                              #   directories (the default of a MadGraph run_card.dat)
    warmup = 20               # steps with a uniform channel allocation, >= 0
    min_fraction = 0.1        # smallest share of a batch for all channels, 0 <= f < 1
    drop_threshold = 1e-2     # a channel's share of the integral at or below which it ...
    drop_patience = 10        # ... is dropped after this many steps (>= 1)
    mixture = 0.0             # defensive mixture weight of the VEGAS/flat density, [0, 1)
    uniform_mixture = 0.0     # ... and of the uniform density in the integrand's own
                              #   coordinates (guards the VEGAS grid's holes too);
                              #   mixture + uniform_mixture < 1
    max_weight_penalty = 0.0  # loss term on the largest weights, >= 0
    top_fraction = 0.01       # share of each channel's batch that term counts as its
                              #   largest weights, 0 < top_fraction <= 1
    max_grad_norm = 3e-3      # clip the gradient to this L2 norm, >= 0 (0: no clipping)
    freeze_weights_after = 1.0  # share of the steps after which the channel weights stop
                              #   training, [0, 1] (1: never)
    bins = 10                 # optional flow shape (madnis_py.flows.Flow): spline bins,
    blocks = 4                #   coupling blocks, subnet layers and units, each >= 1
    layers = 3                #   (default: the Flow's defaults)
    units = 32

    [integration]
    points = 100000           # integrand points of the final estimate, >= 2 * iterations
                              #   and <= 10**10
    iterations = 5            # batches it is split into (chi2/dof across them), >= 1

    [unweighting]
    max_weight = "truncation" # the unweighting's maximum weight: "truncation" (the smallest
                              #   with at most max_overweight_truncation of the cross
                              #   section above it), "exact" (the largest), "quantile" (of
                              #   the weights) or "replicas" (median of the maxima of
                              #   `replicas` sub-samples)
    max_overweight_truncation = 1e-3  # that share (MadGraph's name), 0 <= value < 1;
                              #   also the w_max of the reported eps_uw (truncation)
    quantile = 0.999          # 0 < quantile <= 1
    replicas = 10             # integer >= 1
    overweight = "truncate"   # events above the maximum: "truncate" (weight 1; sigma low by
                              #   their share above it, reported) or "keep" (weight
                              #   w / w_max > 1, unbiased)
    recycle = true            # events also from the points evaluated before generation
                              #   (the VEGAS survey's last four rounds, the integration)
                              #   where they save fresh calls with their pooled share of
                              #   sigma above w_max within the truncation, as madevent
                              #   keeps its iterations' events ("truncate" only)
    allocation = "max_weight" # how the generation's draws are shared among the channels:
                              #   "max_weight" (by each channel's own maximum weight, as
                              #   madevent unweights every channel against its own; the
                              #   most events per call) or "sigma" (as the integration,
                              #   by the standard deviations)

    [output]
    lhe = "events.lhe.gz"     # event file in the output directory, ".lhe" or ".lhe.gz"
    plots = true              # training-history and distribution plots
    checkpoint = "checkpoint.pt"  # trained integrator, in the output directory

    [distributed]             # optional: scale out with Dask
    scheduler = "tcp://host:8786"  # an existing Dask scheduler's address; or
    cluster = "local"         #   a cluster to start: "local", "slurm", "htcondor", "pbs"
                              #   (the default without a scheduler)
    workers = 2               # workers of that cluster, >= 1 (not with a scheduler)
    shards = 4                # event-generation shards (seeds seed, seed+1, ...), 1 to
                              #   10000, and not more than the events (checked by the
                              #   command, where -n and --shards may replace nevents and
                              #   shards: madnis_py.cli)
    options = { queue = "short", cores = 4 }  # keyword arguments of the cluster class
                              #   (dask-jobqueue's SLURMCluster, ...), free-form

Integer keys take TOML integers only: ``nevents = 1e6`` is a float and an error (write
``1_000_000``). The upper limits above (:data:`LIMITS`) catch typos that would otherwise
run for days or exhaust the memory; they are far above any sensible run.

Relative paths are resolved against the card's directory, and the card keeps them
absolute, so that its text says the same wherever it is read again.

Errors raise :class:`RunCardError`, one line that names the file, the line, the table
and the key, what is wrong and what was expected::

    run.toml:7: [training] stepz: unknown key; did you mean 'steps'? (expected one of ...)
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from madnis_py.cards._toml import KeyLocator, toml_key, toml_value
from madnis_py.events.allocation import ALLOCATIONS, Allocation
from madnis_py.phasespace.cuts import SUPPORTED_CUTS
from madnis_py.physics.channels import LAYOUTS, Layout
from madnis_py.training.channel_sampler import VEGAS_FLOOR
from madnis_py.training.losses import LOSSES
from madnis_py.training.options import OPTION_CHECKS, TrainingOptions
from madnis_py.training.stopping import TARGETS, Target

if TYPE_CHECKING:
    from madnis_py.physics.process import Process

__all__ = [
    "CLUSTERS",
    "DEVICES",
    "LIMITS",
    "LOSSES",
    "MAX_WEIGHTS",
    "OVERWEIGHTS",
    "ColliderSettings",
    "DistributedSettings",
    "IntegrationSettings",
    "OutputSettings",
    "RunCard",
    "RunCardError",
    "RunCardNotFoundError",
    "RunSettings",
    "ScaleSettings",
    "TrainingSettings",
    "UnweightingSettings",
    "load_run_card",
    "parse_run_card",
]

Device = Literal["cpu", "cuda"]
Loss = Literal["variance", "stratified", "forward_kl", "reverse_kl"]
MaxWeight = Literal["exact", "quantile", "replicas", "truncation"]
Overweight = Literal["keep", "truncate"]
Cluster = Literal["local", "slurm", "htcondor", "pbs"]

#: Allowed values of the enumerated keys (the losses: madnis_py.training.losses.LOSSES).
DEVICES: tuple[str, ...] = ("cpu", "cuda")
MAX_WEIGHTS: tuple[str, ...] = ("exact", "quantile", "replicas", "truncation")
OVERWEIGHTS: tuple[str, ...] = ("keep", "truncate")
CLUSTERS: tuple[str, ...] = ("local", "slurm", "htcondor", "pbs")

#: Upper limits of integer keys, ``(table, key)`` to the largest allowed value (the seed:
#: below 2**63, the largest a 64-bit signed integer holds).
LIMITS: dict[tuple[str, str], int] = {
    ("run", "seed"): 2**63 - 1,
    ("run", "nevents"): 10**9,
    ("training", "steps"): 10**6,
    ("training", "batch"): 10**7,
    ("training", "measure_points"): 10**8,
    ("training", "vegas_points"): 10**8,
    ("integration", "points"): 10**10,
    ("distributed", "shards"): 10_000,
}

#: The card's name inside a directory given to :func:`load_run_card`.
CARD_NAME = "run_card.toml"


class RunCardError(ValueError):
    """A run card that cannot be used: one line, ``<file>:<line>: [table] key: ...``."""


class RunCardNotFoundError(RunCardError, FileNotFoundError):
    """The run card file does not exist."""


# ------------------------------------------------------------------------ the tables

@dataclass(frozen=True)
class RunSettings:
    """``[run]``: what to run and where the results go.

    Attributes
    ----------
    process : str, Path or None
        A built-in process name (``str``) or the resolved path of a process directory
        or card (``Path``); ``None`` only for cards imported without a process.
    seed : int
    nevents : int
        Unweighted events to write.
    output : Path or None
        The output directory, absolute (``None`` only when built by hand).
    device : {"cpu", "cuda"}
    """

    process: str | Path | None = None
    seed: int = 1
    nevents: int = 10_000
    output: Path | None = None
    device: Device = "cpu"


@dataclass(frozen=True)
class ColliderSettings:
    """``[collider]``: energy and PDF set; ``None`` keeps the process card's default."""

    sqrt_s: float | None = None
    pdf: str | None = None
    lhaid: int | None = None


@dataclass(frozen=True)
class ScaleSettings:
    """``[scale]``: a fixed scale or a dynamical choice, and an optional fixed alpha_s."""

    fixed: float | None = None
    dynamical_scale_choice: int | None = None
    alpha_s: float | None = None


#: The integrator's defaults, whose options the [training] table shares.
_OPTIONS = TrainingOptions()
_LOSS = cast(Loss, _OPTIONS.loss)


@dataclass(frozen=True)
class TrainingSettings:
    """``[training]``: the multi-channel integrator and its training (see the module
    docstring for every key); the flow shape keys are ``None`` for the Flow's defaults.
    The integrator's options take their defaults and checks from
    :class:`~madnis_py.training.options.TrainingOptions`."""

    steps: int = 200
    batch: int = 4096
    target: Target = "events"
    measure_every: int = 10
    measure_points: int = 20_000
    patience: int = 3
    explore: float = 0.1
    lr: float = _OPTIONS.lr
    loss: Loss = _LOSS
    buffered_steps: int = 0  # benchmarks/RESULTS.md: 4 lost on g g > t t~ g
    buffer_batches: int = 4
    trainable_weights: bool = _OPTIONS.trainable_weights
    vegas: bool = True
    vegas_iterations: int = 15
    vegas_points: int = 2_000
    vegas_growth: float = 1.3
    vegas_floor: float = VEGAS_FLOOR
    subprocess_channels: Layout = "shared"
    warmup: int = _OPTIONS.warmup
    min_fraction: float = _OPTIONS.min_fraction
    drop_threshold: float = _OPTIONS.drop_threshold
    drop_patience: int = _OPTIONS.drop_patience
    mixture: float = _OPTIONS.mixture
    uniform_mixture: float = _OPTIONS.uniform_mixture
    max_weight_penalty: float = _OPTIONS.max_weight_penalty
    top_fraction: float = _OPTIONS.top_fraction
    max_grad_norm: float = _OPTIONS.max_grad_norm
    freeze_weights_after: float = _OPTIONS.freeze_weights_after
    bins: int | None = None
    blocks: int | None = None
    layers: int | None = None
    units: int | None = None


@dataclass(frozen=True)
class IntegrationSettings:
    """``[integration]``: the final cross-section estimate."""

    points: int = 100_000
    iterations: int = 5


@dataclass(frozen=True)
class UnweightingSettings:
    """``[unweighting]``: how the maximum weight is chosen and overweights treated."""

    max_weight: MaxWeight = "truncation"
    quantile: float = 0.999
    replicas: int = 10
    overweight: Overweight = "truncate"
    max_overweight_truncation: float = 1e-3
    recycle: bool = True
    allocation: Allocation = "max_weight"


@dataclass(frozen=True)
class OutputSettings:
    """``[output]``: file names inside the output directory."""

    lhe: str = "events.lhe.gz"
    plots: bool = True
    checkpoint: str = "checkpoint.pt"


@dataclass(frozen=True)
class DistributedSettings:
    """``[distributed]``: a Dask scheduler to join, or a cluster to start.

    ``cluster`` is ``None`` exactly when ``scheduler`` is set; ``workers`` and
    ``options`` only apply to a cluster this run starts.
    """

    scheduler: str | None = None
    cluster: Cluster | None = "local"
    workers: int = 2
    shards: int = 4
    options: dict[str, Any] = field(default_factory=dict)


_TABLES: dict[str, tuple[str, ...]] = {
    "run": ("process", "seed", "nevents", "output", "device"),
    "collider": ("sqrt_s", "ebeam1", "ebeam2", "pdf", "lhaid"),
    "scale": ("fixed", "dynamical_scale_choice", "alpha_s"),
    "cuts": SUPPORTED_CUTS,
    "training": tuple(f.name for f in fields(TrainingSettings)),
    "integration": ("points", "iterations"),
    "unweighting": ("max_weight", "quantile", "replicas", "overweight",
                    "max_overweight_truncation", "recycle", "allocation"),
    "output": ("lhe", "plots", "checkpoint"),
    "distributed": ("scheduler", "cluster", "workers", "shards", "options"),
}


@dataclass(frozen=True)
class RunCard:
    """A validated run card: one attribute per table (see the module docstring).

    ``cuts`` is ``None`` when the card has no ``[cuts]`` table (the process card's cuts
    apply), ``distributed`` when it has no ``[distributed]`` table (one process).
    ``source`` is the file it was read from; it takes no part in comparisons.
    """

    run: RunSettings = field(default_factory=RunSettings)
    collider: ColliderSettings = field(default_factory=ColliderSettings)
    scale: ScaleSettings = field(default_factory=ScaleSettings)
    cuts: dict[str, float] | None = None
    training: TrainingSettings = field(default_factory=TrainingSettings)
    integration: IntegrationSettings = field(default_factory=IntegrationSettings)
    unweighting: UnweightingSettings = field(default_factory=UnweightingSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    distributed: DistributedSettings | None = None
    source: Path | None = field(default=None, compare=False, repr=False)

    # ------------------------------------------------------------------ reading

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str | os.PathLike[str] | None = None,
                     *, text: str | None = None,
                     base_dir: str | os.PathLike[str] | None = None) -> RunCard:
        """Validate the tables of a parsed card.

        Parameters
        ----------
        data : mapping
            The document as ``tomllib`` returns it: table name to a mapping of keys.
        source : str or path, optional
            The file, named in errors (default ``"<run card>"``).
        text : str, optional
            The card's text: with it, errors name the line of the key.
        base_dir : str or path, optional
            Relative paths are resolved against it (default: the directory of
            ``source``, else the working directory).

        Raises
        ------
        RunCardError
        """
        name = "<run card>" if source is None else os.fspath(source)
        if base_dir is not None:
            base = Path(base_dir)
        elif source is not None:
            base = Path(source).parent
        else:
            base = Path.cwd()
        ctx = _Context(name, KeyLocator(text) if text is not None else None,
                       base.expanduser().resolve())
        if not isinstance(data, Mapping):
            raise RunCardError(f"{name}: expected a mapping of tables, got "
                               f"{type(data).__name__}")
        for key, value in data.items():
            if key not in _TABLES:
                raise ctx.error(key, None, "unknown table" + _suggest(
                    key, list(_TABLES), other={}) + " (expected one of " +
                    ", ".join(f"[{t}]" for t in _TABLES) + ")")
            if not isinstance(value, Mapping):
                raise ctx.error(key, None, f"got {_describe(value)} (expected a table)")
        if "run" not in data:
            raise ctx.error("run", "process", "missing: the card has no [run] table "
                            "(expected [run] with process = a built-in name or a path)")
        tables = {t: data.get(t, {}) for t in _TABLES}
        card = cls(
            run=_read_run(_Table(ctx, "run", tables["run"])),
            collider=_read_collider(_Table(ctx, "collider", tables["collider"])),
            scale=_read_scale(_Table(ctx, "scale", tables["scale"])),
            cuts=(_read_cuts(_Table(ctx, "cuts", tables["cuts"], cuts=True))
                  if "cuts" in data else None),
            training=_read_training(_Table(ctx, "training", tables["training"])),
            integration=_read_integration(_Table(ctx, "integration", tables["integration"])),
            unweighting=_read_unweighting(_Table(ctx, "unweighting", tables["unweighting"])),
            output=_read_output(_Table(ctx, "output", tables["output"])),
            distributed=(_read_distributed(_Table(ctx, "distributed", tables["distributed"]))
                         if "distributed" in data else None),
            source=Path(name).resolve() if source is not None else None)
        return card

    # ------------------------------------------------------------------ writing

    def to_toml(self) -> str:
        """The card as TOML text, every value written out (defaults included, unset
        optional keys left out); :func:`parse_run_card` of it gives an equal card."""
        lines = ["# madnis-py run card"]
        if self.source is not None:
            lines.append(f"# read from {self.source}")

        def table(name: str, items: Sequence[tuple[str, object]]) -> None:
            lines.extend(["", f"[{name}]"])
            lines.extend(f"{toml_key(k)} = {toml_value(v)}" for k, v in items
                         if v is not None)

        run = self.run
        process = None if run.process is None else os.fspath(run.process)
        table("run", [("process", process), ("seed", run.seed), ("nevents", run.nevents),
                      ("output", None if run.output is None else os.fspath(run.output)),
                      ("device", run.device)])
        if process is None:
            lines.insert(lines.index("[run]") + 1,
                         "# process = \"...\"  # required: a built-in name or a path")
        table("collider", _items(self.collider))
        table("scale", _items(self.scale))
        if self.cuts is not None:
            table("cuts", list(self.cuts.items()))
        table("training", _items(self.training))
        table("integration", _items(self.integration))
        table("unweighting", _items(self.unweighting))
        table("output", _items(self.output))
        if self.distributed is not None:
            d = self.distributed
            if d.scheduler is not None:
                table("distributed", [("scheduler", d.scheduler), ("shards", d.shards)])
            else:
                table("distributed", [("cluster", d.cluster), ("workers", d.workers),
                                      ("shards", d.shards),
                                      ("options", d.options or None)])
        return "\n".join(lines) + "\n"

    # ------------------------------------------------------- keyword arguments

    def integrand_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`madnis_py.integrand.Integrand`: ``sqrt_s``,
        ``pdf`` (a set name, or the LHAPDF id as an ``int``), ``scale``,
        ``dynamical_scale_choice``, ``cuts``, ``alpha_s`` and ``subprocess_channels``
        (``[training]``), only those the card sets."""
        opts: dict[str, Any] = {}
        if self.collider.sqrt_s is not None:
            opts["sqrt_s"] = self.collider.sqrt_s
        if self.collider.pdf is not None:
            opts["pdf"] = self.collider.pdf
        elif self.collider.lhaid is not None:
            opts["pdf"] = self.collider.lhaid
        if self.scale.fixed is not None:
            opts["scale"] = self.scale.fixed
        if self.scale.dynamical_scale_choice is not None:
            opts["dynamical_scale_choice"] = self.scale.dynamical_scale_choice
        if self.cuts is not None:
            opts["cuts"] = dict(self.cuts)
        if self.scale.alpha_s is not None:
            opts["alpha_s"] = self.scale.alpha_s
        if self.training.subprocess_channels != "shared":
            opts["subprocess_channels"] = self.training.subprocess_channels
        return opts

    def flow_options(self) -> dict[str, int]:
        """Keyword arguments of :class:`madnis_py.flows.Flow` the card sets."""
        t = self.training
        shape = {"bins": t.bins, "blocks": t.blocks, "layers": t.layers, "units": t.units}
        return {k: v for k, v in shape.items() if v is not None}

    def integrator_options(self) -> dict[str, Any]:
        """Keyword arguments of :class:`madnis_py.training.Integrator` (the seed is the
        run's)."""
        t = self.training
        options = TrainingOptions(
            flow_options=dict(self.flow_options()), seed=self.run.seed,
            **{name: getattr(t, name) for name in TrainingOptions.names()
               if name not in ("flow_options", "seed")})
        return options.as_dict()

    def train_options(self) -> dict[str, int]:
        """Keyword arguments of ``Integrator.train``."""
        t = self.training
        return {"steps": t.steps, "batch": t.batch, "buffered_steps": t.buffered_steps,
                "buffer_batches": t.buffer_batches}

    def stopping_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Integrator.train`` that choose when training stops
        (:mod:`madnis_py.training.stopping`; ``n_events`` is the run's)."""
        t = self.training
        return {"target": t.target, "measure_every": t.measure_every,
                "measure_points": t.measure_points, "patience": t.patience,
                "explore": t.explore}

    def vegas_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Integrator.pretrain_vegas`` (run it when
        ``training.vegas`` is true)."""
        t = self.training
        return {"nitn": t.vegas_iterations, "neval": t.vegas_points,
                "growth": t.vegas_growth, "floor": t.vegas_floor,
                "n_events": self.run.nevents if t.target == "events" else 0}

    def integrate_options(self) -> dict[str, int]:
        """Keyword arguments of ``Integrator.integrate``."""
        return {"n": self.integration.points, "iterations": self.integration.iterations}

    # ------------------------------------------------------------- convenience

    @property
    def lhe_path(self) -> Path:
        """The event file: ``output.lhe`` in the output directory."""
        return self._output_dir() / self.output.lhe

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint: ``output.checkpoint`` in the output directory."""
        return self._output_dir() / self.output.checkpoint

    def _output_dir(self) -> Path:
        if self.run.output is not None:
            return self.run.output
        return Path.cwd() / f"{_process_stem(self.run.process)}_run"

    def load_process(self) -> Process:
        """The card's process, loaded (:func:`madnis_py.physics.process.load_process`)."""
        from madnis_py.physics.process import load_process

        process = self.run.process
        where = "" if self.source is None else f"{self.source}: "
        if process is None:
            raise RunCardError(f"{where}[run] process: not set (expected a built-in process "
                               "name or a path)")
        return load_process(process)  # its rule: a bare built-in name first, else a path


def _items(settings: object) -> list[tuple[str, object]]:
    return [(f.name, getattr(settings, f.name)) for f in fields(cast(Any, settings))]


# ---------------------------------------------------------------- reading helpers

class _Context:
    """The card being read: its name for errors, where its keys are, its directory."""

    def __init__(self, source: str, locator: KeyLocator | None, base_dir: Path) -> None:
        self.source = source
        self.locator = locator
        self.base_dir = base_dir

    def error(self, table: str, key: str | None, message: str) -> RunCardError:
        line = None if self.locator is None else self.locator.line(table, key)
        where = self.source if line is None else f"{self.source}:{line}"
        if not table:
            what = f"{key}"
        elif key is None:
            what = f"[{table}]"
        else:
            what = f"[{table}] {key}"
        return RunCardError(" ".join(f"{where}: {what}: {message}".split("\n")))


def _describe(value: object) -> str:
    """A value and its TOML type, for messages: ``the string '10'``."""
    if isinstance(value, bool):
        kind = "the boolean"
        shown = "true" if value else "false"
    elif isinstance(value, int):
        kind, shown = "the integer", str(value)
    elif isinstance(value, float):
        kind, shown = "the float", repr(value)
    elif isinstance(value, str):
        kind, shown = "the string", repr(value)
    elif isinstance(value, Mapping):
        return "a table"
    elif isinstance(value, list):
        return "an array"
    else:
        kind, shown = f"a {type(value).__name__}", str(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} {shown}"


def _suggest(key: str, valid: Sequence[str], *, other: Mapping[str, Sequence[str]]) -> str:
    """``"; did you mean 'x'?"`` for the closest valid name, or a table it belongs to."""
    close = difflib.get_close_matches(key.lower(), list(valid), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    homes = [t for t, keys in other.items() if key in keys]
    if homes:
        return f"; it belongs in [{homes[0]}]"
    return ""


_T = TypeVar("_T")


class _Table:
    """One table of the card: typed, range-checked access to its keys."""

    def __init__(self, ctx: _Context, name: str, data: Mapping[str, Any], *,
                 cuts: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        self.data = data
        valid = _TABLES[name]
        for key in data:
            if key in valid:
                continue
            if cuts:
                raise self.error(key, "unknown cut name" + _suggest(key, valid, other={}) +
                                 " (expected a name of madnis_py.phasespace.cuts."
                                 "SUPPORTED_CUTS: " + ", ".join(SUPPORTED_CUTS) + ")")
            others = {t: k for t, k in _TABLES.items() if t not in (name, "cuts")}
            raise self.error(key, "unknown key" + _suggest(key, valid, other=others) +
                             " (expected one of " + ", ".join(valid) + ")")

    def has(self, key: str) -> bool:
        return key in self.data

    def error(self, key: str | None, message: str) -> RunCardError:
        return self.ctx.error(self.name, key, message)

    def _get(self, key: str, check: Callable[[Any], bool], expected: str,
             ok: Callable[[Any], bool] | None) -> Any:
        value = self.data[key]
        if not check(value):
            raise self.error(key, f"got {_describe(value)} (expected {expected})")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"{value} is not a finite number (expected {expected})")
        if ok is not None and not ok(value):
            problem = "is not valid" if isinstance(value, str) else "is out of range"
            raise self.error(key, f"{_describe(value)} {problem} (expected {expected})")
        return value

    def integer(self, key: str, default: _T, expected: str,
                ok: Callable[[int], bool] | None = None) -> int | _T:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, float):
            hint = ""
            if math.isfinite(value) and value.is_integer():
                hint = (f"; TOML integers have no '.' and no exponent: write "
                        f"{int(value):_}")
            raise self.error(key, f"got {_describe(value)} (expected {expected}{hint})")
        limit = LIMITS.get((self.name, key))
        if limit is not None:
            expected = f"{expected} and <= {_limit(limit)}"
            inner = ok
            ok = (lambda v: v <= limit) if inner is None else (
                lambda v: inner(v) and v <= limit)
        return int(self._get(key, _is_int, expected, ok))

    def number(self, key: str, default: _T, expected: str,
               ok: Callable[[float], bool] | None = None) -> float | _T:
        if key not in self.data:
            return default
        return float(self._get(key, _is_number, expected, ok))

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        return bool(self._get(key, lambda v: isinstance(v, bool), "true or false", None))

    def string(self, key: str, default: _T, expected: str,
               ok: Callable[[str], bool] | None = None) -> str | _T:
        if key not in self.data:
            return default
        return str(self._get(key, lambda v: isinstance(v, str), expected, ok))

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        allowed = ", ".join(repr(c) for c in choices)
        value = self.string(key, default, f"one of {allowed}")
        if value not in choices:
            raise self.error(key, f"{value!r} is not allowed" +
                             _suggest(value, choices, other={}) +
                             f" (expected one of {allowed})")
        return value

    def exclusive(self, first: str, second: str, expected: str) -> None:
        if first in self.data and second in self.data:
            raise self.error(second, f"cannot be given together with {first} "
                             f"(expected {expected})")


def _limit(value: int) -> str:
    """A limit for messages: ``1000000000 (10**9)``."""
    if value == 2**63 - 1:
        return f"{value} (2**63 - 1)"
    exponent = round(math.log10(value))
    if 10**exponent == value:
        return f"{value} (10**{exponent})"
    return str(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _at_least_one(value: float) -> bool:
    return value >= 1


def _process_stem(process: str | Path | None) -> str:
    if process is None:
        return "madnis"
    if isinstance(process, str):
        return process
    return process.name if process.is_dir() else process.parent.name


def _resolve_process(t: _Table, value: str) -> str | Path:
    """A built-in name stays a name; anything else is a path relative to the card
    (:func:`madnis_py.physics.process.load_process`'s rule: a bare built-in name wins
    over a same-named directory)."""
    from madnis_py.physics.builtin import builtin_processes
    from madnis_py.physics.process import builtin_name, looks_like_path

    if builtin_name(value) is not None:
        return value
    candidate = t.ctx.base_dir / Path(value).expanduser()
    if candidate.is_dir():
        if not (candidate / "process.toml").is_file():
            raise t.error("process", f"the directory {candidate} has no process.toml "
                          "(expected a process directory)")
        return candidate.resolve()
    if candidate.is_file():
        return candidate.resolve()
    names = builtin_processes()
    if looks_like_path(value):
        raise t.error("process", f"no such process directory or card: {candidate} "
                      "(expected a path relative to the run card)")
    raise t.error("process", f"no built-in process {value!r} and no such directory" +
                  _suggest(value, names, other={}) +
                  f" (expected one of {', '.join(names)}, or a path)")


def _plain_file_name(value: str) -> bool:
    return bool(value) and value not in (".", "..") and "/" not in value and "\\" not in value


# ----------------------------------------------------------------- the tables

def _read_run(t: _Table) -> RunSettings:
    if not t.has("process"):
        raise t.error("process", "missing (expected a built-in process name or a path to "
                      "a process directory)")
    raw = t.string("process", "", "a built-in process name or a path",
                   lambda v: bool(v.strip()))
    process = _resolve_process(t, raw)
    output_name = t.string("output", None, "a directory path relative to the card",
                           lambda v: bool(v.strip()))
    # no output key: "<process>_run" in the working directory, so that the cards shipped
    # inside the package never write into it
    output = (Path.cwd() / f"{_process_stem(process)}_run" if output_name is None else
              (t.ctx.base_dir / Path(output_name).expanduser()).resolve())
    return RunSettings(
        process=process,
        seed=t.integer("seed", 1, "an integer >= 0", _non_negative),
        nevents=t.integer("nevents", 10_000, "an integer >= 0", _non_negative),
        output=output,
        device=cast(Device, t.choice("device", "cpu", DEVICES)))


def _read_collider(t: _Table) -> ColliderSettings:
    energy = "a collider energy in GeV, > 0"
    sqrt_s = t.number("sqrt_s", None, energy, _positive)
    beam = "a beam energy in GeV, > 0"
    ebeam1 = t.number("ebeam1", None, beam, _positive)
    ebeam2 = t.number("ebeam2", None, beam, _positive)
    for key in ("ebeam1", "ebeam2"):
        t.exclusive("sqrt_s", key, "sqrt_s, or ebeam1 and ebeam2")
    if (ebeam1 is None) != (ebeam2 is None):
        given, missing = ("ebeam1", "ebeam2") if ebeam2 is None else ("ebeam2", "ebeam1")
        raise t.error(given, f"given without {missing} (expected both beam energies, "
                      "or sqrt_s)")
    if ebeam1 is not None and ebeam2 is not None:
        if ebeam1 != ebeam2:
            raise t.error("ebeam2", f"{ebeam2!r} differs from ebeam1 = {ebeam1!r} (expected "
                          "symmetric beams, ebeam1 = ebeam2: the collision frame is the "
                          "centre-of-mass frame)")
        sqrt_s = ebeam1 + ebeam2
    t.exclusive("pdf", "lhaid", "a PDF set by name (pdf) or by LHAPDF id (lhaid)")
    return ColliderSettings(
        sqrt_s=sqrt_s,
        pdf=t.string("pdf", None, "an LHAPDF set name such as 'LHToyPDF'",
                     lambda v: bool(v.strip())),
        lhaid=t.integer("lhaid", None, "an LHAPDF id, an integer >= 0", _non_negative))


def _read_scale(t: _Table) -> ScaleSettings:
    t.exclusive("fixed", "dynamical_scale_choice",
                "a fixed scale or a dynamical_scale_choice")
    return ScaleSettings(
        fixed=t.number("fixed", None, "a scale in GeV, > 0", _positive),
        dynamical_scale_choice=t.integer(
            "dynamical_scale_choice", None, "MadGraph's 1 (sum of E_T), 2 (sum of m_T), "
            "3 (sum of m_T / 2) or 4 (sqrt shat)", lambda v: v in (1, 2, 3, 4)),
        alpha_s=t.number("alpha_s", None, "0 < alpha_s < 1", lambda v: 0 < v < 1))


def _read_cuts(t: _Table) -> dict[str, float]:
    expected = "a number: GeV for pT and masses, plain for eta, y and Delta R"
    out: dict[str, float] = {}
    for key in t.data:
        value = t.number(key, None, expected)
        assert value is not None
        out[key] = value
    return out


def _read_training(t: _Table) -> TrainingSettings:
    d = TrainingSettings()
    ge0, ge1 = "an integer >= 0", "an integer >= 1"

    def option(key: str) -> float:
        """An integrator option, checked as TrainingOptions checks it."""
        expected, ok = OPTION_CHECKS[key]
        return t.number(key, getattr(d, key), expected, ok)

    return TrainingSettings(
        steps=t.integer("steps", d.steps, ge0, _non_negative),
        batch=t.integer("batch", d.batch, ge1, _at_least_one),
        target=cast(Target, t.choice("target", d.target, TARGETS)),
        measure_every=t.integer("measure_every", d.measure_every, ge1, _at_least_one),
        measure_points=t.integer("measure_points", d.measure_points, ge1, _at_least_one),
        patience=t.integer("patience", d.patience, ge1, _at_least_one),
        explore=t.number("explore", d.explore, "a share >= 0", lambda v: v >= 0),
        lr=option("lr"),
        loss=cast(Loss, t.choice("loss", d.loss, tuple(LOSSES))),
        buffered_steps=t.integer("buffered_steps", d.buffered_steps, ge0, _non_negative),
        buffer_batches=t.integer("buffer_batches", d.buffer_batches, ge1, _at_least_one),
        trainable_weights=t.boolean("trainable_weights", d.trainable_weights),
        vegas=t.boolean("vegas", d.vegas),
        vegas_iterations=t.integer("vegas_iterations", d.vegas_iterations,
                                   "an integer >= 2", lambda v: v >= 2),
        vegas_points=t.integer("vegas_points", d.vegas_points, "an integer >= 20",
                               lambda v: v >= 20),
        vegas_growth=t.number("vegas_growth", d.vegas_growth, "a factor >= 1",
                              lambda v: v >= 1),
        vegas_floor=t.number("vegas_floor", d.vegas_floor, "0 <= vegas_floor < 1",
                             lambda v: 0 <= v < 1),
        subprocess_channels=cast(Layout, t.choice("subprocess_channels",
                                                  d.subprocess_channels, LAYOUTS)),
        warmup=t.integer("warmup", d.warmup, *OPTION_CHECKS["warmup"]),
        min_fraction=option("min_fraction"),
        drop_threshold=option("drop_threshold"),
        drop_patience=t.integer("drop_patience", d.drop_patience,
                                *OPTION_CHECKS["drop_patience"]),
        mixture=option("mixture"),
        uniform_mixture=option("uniform_mixture"),
        max_weight_penalty=option("max_weight_penalty"),
        top_fraction=option("top_fraction"),
        max_grad_norm=option("max_grad_norm"),
        freeze_weights_after=option("freeze_weights_after"),
        bins=t.integer("bins", None, ge1, _at_least_one),
        blocks=t.integer("blocks", None, ge1, _at_least_one),
        layers=t.integer("layers", None, ge1, _at_least_one),
        units=t.integer("units", None, ge1, _at_least_one))


def _read_integration(t: _Table) -> IntegrationSettings:
    d = IntegrationSettings()
    iterations = t.integer("iterations", d.iterations, "an integer >= 1", _at_least_one)
    points = t.integer("points", d.points, f"an integer >= 2 * iterations = {2 * iterations}",
                       lambda v: v >= 2 * iterations)
    return IntegrationSettings(points=points, iterations=iterations)


def _read_unweighting(t: _Table) -> UnweightingSettings:
    d = UnweightingSettings()
    return UnweightingSettings(
        max_weight=cast(MaxWeight, t.choice("max_weight", d.max_weight, MAX_WEIGHTS)),
        quantile=t.number("quantile", d.quantile, "0 < quantile <= 1",
                          lambda v: 0 < v <= 1),
        replicas=t.integer("replicas", d.replicas, "an integer >= 1", _at_least_one),
        overweight=cast(Overweight, t.choice("overweight", d.overweight, OVERWEIGHTS)),
        max_overweight_truncation=t.number("max_overweight_truncation",
                                           d.max_overweight_truncation,
                                           "0 <= max_overweight_truncation < 1",
                                           lambda v: 0 <= v < 1),
        recycle=t.boolean("recycle", d.recycle),
        allocation=cast(Allocation, t.choice("allocation", d.allocation, ALLOCATIONS)))


def _read_output(t: _Table) -> OutputSettings:
    d = OutputSettings()
    return OutputSettings(
        lhe=t.string("lhe", d.lhe, "a file name ending in .lhe or .lhe.gz, no directory",
                     lambda v: _plain_file_name(v) and v.endswith((".lhe", ".lhe.gz"))),
        plots=t.boolean("plots", d.plots),
        checkpoint=t.string("checkpoint", d.checkpoint, "a file name, no directory",
                            _plain_file_name))


def _read_distributed(t: _Table) -> DistributedSettings:
    d = DistributedSettings()
    t.exclusive("scheduler", "cluster", "an existing scheduler or a cluster to start")
    scheduler = t.string("scheduler", None, "a scheduler address such as 'tcp://host:8786'",
                         lambda v: bool(v.strip()))
    if scheduler is not None:
        for key in ("workers", "options"):
            if t.has(key):
                raise t.error(key, "only applies to a cluster this run starts, not to an "
                              "existing scheduler (expected a cluster, or no " + key + ")")
    options = t.data.get("options", {})
    if not isinstance(options, Mapping):
        raise t.error("options", f"got {_describe(options)} (expected a table of keyword "
                      "arguments, such as { queue = \"short\" })")
    return DistributedSettings(
        scheduler=scheduler,
        cluster=(None if scheduler is not None else
                 cast(Cluster, t.choice("cluster", "local", CLUSTERS))),
        workers=t.integer("workers", d.workers, "an integer >= 1", _at_least_one),
        shards=t.integer("shards", d.shards, "an integer >= 1", _at_least_one),
        options=dict(options))


# ---------------------------------------------------------------- entry points

_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_run_card(text: str, source: str | os.PathLike[str] = "<run card>", *,
                   base_dir: str | os.PathLike[str] | None = None) -> RunCard:
    """A run card from its TOML text.

    Parameters
    ----------
    text : str
    source : str or path
        The file it came from, named in errors; relative paths in the card are
        resolved against its directory unless ``base_dir`` is given.
    base_dir : str or path, optional

    Raises
    ------
    RunCardError
        TOML syntax errors keep tomllib's line and column.
    """
    name = os.fspath(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        message = str(err)
        match = _TOML_POSITION.search(message)
        if match is not None:
            where = f"{name}:{match.group(1)}:{match.group(2)}"
            message = message[:match.start()]
        else:
            where = f"{name}:{text.count(chr(10)) + 1}"
            message = message.replace("(at end of document)", "").strip()
        raise RunCardError(f"{where}: TOML syntax error: {message}") from err
    return RunCard.from_mapping(data, name, text=text, base_dir=base_dir)


def load_run_card(path: str | os.PathLike[str]) -> RunCard:
    """Read and validate a run card (a directory means its ``run_card.toml``).

    Raises
    ------
    RunCardNotFoundError
        No such file (also a ``FileNotFoundError``).
    RunCardError
        Anything wrong inside, with file and line.
    """
    p = Path(path)
    if p.is_dir():
        p = p / CARD_NAME
    if not p.is_file():
        raise RunCardNotFoundError(f"{p}: no such run card")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise RunCardError(f"{p}: not UTF-8 text ({err.reason} at byte {err.start})") from err
    return parse_run_card(text, p)
