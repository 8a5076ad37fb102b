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
    maxjetflavor = 4          # the heaviest quark counted as a jet j (MadGraph's name):
                              #   4 cuts b quarks as class b, 5 as jets (b in the proton)

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
    channel_prior = "amplitudes"  # the prior of the channel weights: "amplitudes"
                              #   (each channel's diagrams' |M_i|^2) or "propagators"
                              #   (its propagator denominators; MadGraph's sde_strategy
                              #   2, which it writes for vector-boson fusion)
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
                              #   and <= 10**10 ...
    points_per_channel = 1000 # ... or this many per active channel where that is more
                              #   (each channel's variance needs its own points),
                              #   0 to 10**7
    iterations = 5            # batches it is split into, pooled (chi2/dof across them
                              #   checks the error), >= 1

    [unweighting]
    max_weight = "truncation" # the unweighting's maximum weight: "truncation" (the smallest
                              #   with at most max_overweight_truncation of the cross
                              #   section above it), "exact" (the largest), "quantile" (of
                              #   the weights) or "replicas" (median of the maxima of
                              #   `replicas` sub-samples)
    max_overweight_truncation = 1e-3  # that share (MadGraph's name), 0 <= value < 1;
                              #   also the w_max of the reported eps_uw (truncation)
                              #   and of the efficiencies by which the survey and
                              #   the training predict the events' cost
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
    allocation = "auto"       # how the generation's draws are shared among the channels:
                              #   "max_weight" (by each channel's own maximum weight, as
                              #   madevent unweights every channel against its own; the
                              #   most events per call where the maxima are well placed),
                              #   "sigma" (as the integration, by the standard
                              #   deviations) or "auto" (the one of the two with more
                              #   events per call on held-out halves of the calibration
                              #   sample: sigma where hundreds of channels have too few
                              #   points each to place their maxima)
    settle_events = 200000    # events held back while w_max settles on their own draws:
                              #   where all draws so far put more than twice
                              #   max_overweight_truncation of sigma above w_max, it
                              #   rises to their truncation-defined maximum and the held
                              #   events are thinned to it (the card's bound kept, at
                              #   the price of more calls where the weights are
                              #   heavy-tailed); meanwhile the draws lower a w_max
                              #   one outlier set too high; 0: w_max as calibrated
                              #   and checked

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

The settings dataclasses, the allowed values, :data:`LIMITS` and the errors are defined
in :mod:`madnis_py.cards.settings`, the table readers in :mod:`madnis_py.cards._reading`;
this module holds :class:`RunCard` and the entry points, and re-exports the rest.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from madnis_py.cards._reading import (
    _Context,
    _describe,
    _process_stem,
    _read_collider,
    _read_cuts,
    _read_distributed,
    _read_integration,
    _read_output,
    _read_run,
    _read_scale,
    _read_training,
    _read_unweighting,
    _suggest,
    _Table,
)
from madnis_py.cards._toml import KeyLocator, toml_key, toml_value
from madnis_py.cards.settings import (
    _TABLES,
    CLUSTERS,
    DEVICES,
    LIMITS,
    MAX_WEIGHTS,
    OVERWEIGHTS,
    ColliderSettings,
    DistributedSettings,
    IntegrationSettings,
    OutputSettings,
    RunCardError,
    RunCardNotFoundError,
    RunSettings,
    ScaleSettings,
    TrainingSettings,
    UnweightingSettings,
)
from madnis_py.training.losses import LOSSES
from madnis_py.training.options import TrainingOptions

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

#: The card's name inside a directory given to :func:`load_run_card`.
CARD_NAME = "run_card.toml"


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
            table("cuts", [(k, int(v) if k == "maxjetflavor" else v)  # an integer
                           for k, v in self.cuts.items()])
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
        ``dynamical_scale_choice``, ``cuts``, ``alpha_s``, ``subprocess_channels`` and
        ``channel_prior`` (``[training]``), only those the card sets."""
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
        if self.training.channel_prior != "amplitudes":
            opts["channel_prior"] = self.training.channel_prior
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
        (:mod:`madnis_py.training.stopping`; ``n_events`` is the run's): the efficiency
        it measures is at the unweighting's ``max_overweight_truncation``."""
        t = self.training
        return {"target": t.target, "measure_every": t.measure_every,
                "measure_points": t.measure_points, "patience": t.patience,
                "explore": t.explore,
                "truncation": self.unweighting.max_overweight_truncation}

    def vegas_options(self) -> dict[str, Any]:
        """Keyword arguments of ``Integrator.pretrain_vegas`` (run it when
        ``training.vegas`` is true)."""
        t = self.training
        return {"nitn": t.vegas_iterations, "neval": t.vegas_points,
                "growth": t.vegas_growth, "floor": t.vegas_floor,
                "n_events": self.run.nevents if t.target == "events" else 0,
                "truncation": self.unweighting.max_overweight_truncation}

    def integrate_options(self, channels: int) -> dict[str, int]:
        """Keyword arguments of ``Integrator.integrate`` with ``channels`` active channels
        (:meth:`IntegrationSettings.points_for`)."""
        return {"n": self.integration.points_for(channels),
                "iterations": self.integration.iterations}

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
