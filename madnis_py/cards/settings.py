"""The settings of a run card: one frozen dataclass per table, the allowed values and
upper limits of its keys, and the errors of a card that cannot be used.

What each key means, its default and its range are documented in
:mod:`madnis_py.cards.run_card`, which reads a card into these classes (its
:class:`~madnis_py.cards.run_card.RunCard` holds one per table) and re-exports them.
This module does not import the reader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, cast

from madnis_py.events.allocation import Allocation
from madnis_py.phasespace.cuts import SUPPORTED_CUTS
from madnis_py.physics.channels import ChannelPrior, Layout
from madnis_py.training.channel_sampler import VEGAS_FLOOR
from madnis_py.training.options import TrainingOptions
from madnis_py.training.stopping import Target

__all__ = [
    "CLUSTERS",
    "DEVICES",
    "LIMITS",
    "MAX_WEIGHTS",
    "OVERWEIGHTS",
    "ColliderSettings",
    "DistributedSettings",
    "IntegrationSettings",
    "OutputSettings",
    "RunCardError",
    "RunCardNotFoundError",
    "RunSettings",
    "ScaleSettings",
    "TrainingSettings",
    "UnweightingSettings",
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
    ("integration", "points_per_channel"): 10**7,
    ("distributed", "shards"): 10_000,
}


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
    """``[training]``: the multi-channel integrator and its training (see
    :mod:`madnis_py.cards.run_card` for every key); the flow shape keys are ``None`` for the Flow's defaults.
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
    channel_prior: ChannelPrior = "amplitudes"
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
    """``[integration]``: the final cross-section estimate.

    Its points are ``points``, or ``points_per_channel`` times the active channels where
    that is more (:meth:`points_for`): hundreds of channels sharing 10^5 points give
    each a few per batch (p p > e+ e- j j QCD=0, 1464 channels: 68 each, an error of
    1.2 to 2.4 %; 1000 each give 0.35 % for 13 s more, benchmarks/RESULTS.md).
    """

    points: int = 100_000
    iterations: int = 5
    points_per_channel: int = 1000

    def points_for(self, channels: int) -> int:
        """The integration's points with ``channels`` active channels."""
        return min(max(self.points, self.points_per_channel * channels),
                   LIMITS[("integration", "points")])


@dataclass(frozen=True)
class UnweightingSettings:
    """``[unweighting]``: how the maximum weight is chosen and overweights treated."""

    max_weight: MaxWeight = "truncation"
    quantile: float = 0.999
    replicas: int = 10
    overweight: Overweight = "truncate"
    max_overweight_truncation: float = 1e-3
    recycle: bool = True
    allocation: Allocation = "auto"
    settle_events: int = 200_000


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
    "cuts": (*SUPPORTED_CUTS, "maxjetflavor"),
    "training": tuple(f.name for f in fields(TrainingSettings)),
    "integration": ("points", "iterations", "points_per_channel"),
    "unweighting": ("max_weight", "quantile", "replicas", "overweight",
                    "max_overweight_truncation", "recycle", "allocation", "settle_events"),
    "output": ("lhe", "plots", "checkpoint"),
    "distributed": ("scheduler", "cluster", "workers", "shards", "options"),
}
