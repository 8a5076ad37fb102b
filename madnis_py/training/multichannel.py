"""The MadNIS multi-channel integrator: one flow per channel and learnt channel weights.

    sigma = sum_i E_{x ~ q_i}[ alpha_i(x) f_i(x) / q_i(x) ],   sum_i alpha_i = 1,

Heimel et al., arXiv:2212.06172 (MadNIS) and arXiv:2311.01548. Each channel ``i`` has
its own unit hypercube (the channel's phase-space mapping is part of ``f_i``), its own
flow ``q_i`` and its share ``alpha_i`` of the integrand, evaluated on channel-independent
features of the point (the momenta). Training minimises the sum of the channels'
variances (or the stratified variance ``(sum_i sigma_i)^2``) with gradients through
``q`` and ``alpha``, never through ``f``; samples are allocated to channels in
proportion to their standard deviations once a warm-up has measured them.

Each channel owns its sampler (:class:`~madnis_py.training.channel_sampler.ChannelSampler`):
a base map (flat, or the ``vegas.AdaptiveMap`` of VEGAS pre-training), the flow on top of
it and a defensive mixture of the two; it draws points in the integrand's own
coordinates with their density, so :attr:`Integrator.integrand` is always the real
integrand. One primitive, :meth:`Integrator.random_batch`, draws weighted events
(``alpha_i f / q_i``, and the event weight ``alpha_i f / q_i * n / n_i``, computed in one
place) for training, integration and unweighting alike.

VEGAS pre-training (:meth:`Integrator.pretrain_vegas`) adapts a ``vegas.AdaptiveMap``
per channel to that channel's share of the integrand; the map then becomes the channel's
base map (the flow, identity at the start, is a residual on top), and
:meth:`Integrator.select_flows` keeps per channel whichever of VEGAS alone and VEGAS +
flow has the smaller measured variance, so the result never loses to VEGAS.

Options bound the largest weights, which set the unweighting efficiency: the defensive
mixture with the channel's base map (``mixture = lambda``: a weight never exceeds its base
map's by more than ``1 / lambda``) and with the uniform density in the integrand's
coordinates (``uniform_mixture = mu``: no weight exceeds ``alpha f / mu``, wherever the
VEGAS grid is); and a loss term ``max_weight_penalty * sum_i <w_i>_top / sigma`` on the
largest weights of every batch (the top ``top_fraction`` of each channel, scaled by the
stratification factor the event weights carry).

Losses (``loss=``, :data:`~madnis_py.training.losses.LOSSES`): ``"variance"``
(default), ``"stratified"``, ``"forward_kl"`` and ``"reverse_kl"``. The two KL losses train the flows towards ``p_i = alpha_i f / I_i``; the
channel weights are always trained on the variance (a KL divergence per channel does not
say how to share the integrand between channels).

Integrand values must be finite and non-negative (zero, e.g. outside the cuts, is fine).
A NaN, an infinity or a negative value raises :class:`IntegrandError` instead of being
set to zero: an infinite value means a divergent integral, whose finite estimate would be
a lie, and dropping negative values (or NaNs) biases the estimate silently. Negative
weights are not supported.

Checkpoints (:meth:`Integrator.save`, ``train(checkpoint=...)``) are written atomically
and carry the physics fingerprint of the integrand (:meth:`Integrand.fingerprint
<madnis_py.integrand.Integrand.fingerprint>`); loading refuses a checkpoint of other
physics (:class:`CheckpointMismatchError`) or an unreadable one (:class:`CheckpointError`),
and opens only built-in processes by itself (:mod:`madnis_py.training.checkpoint`). A result carries ``warnings`` when its error
cannot be trusted (iterations that disagree, a few dominating weights, a variance whose
own uncertainty is large).
"""


from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from madnis_py._atomic import CheckpointWriteError, torch_save_atomic
from madnis_py.device import resolve_device
from madnis_py.device_integrand import DeviceChannels
from madnis_py.events.unweight import DEFAULT_TRUNCATION
from madnis_py.flows import Flow
from madnis_py.flows.flow import log_prob_many
from madnis_py.flows.stacked import sample_stacked, stackable
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.physics.builtin import builtin_process_dir, builtin_processes
from madnis_py.physics.process import Process, load_process
from madnis_py.training.channel_sampler import VEGAS_FLOOR, ChannelSampler, Draw, floored_map
from madnis_py.training.channel_weights import ChannelWeights
from madnis_py.training.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    integrator_state,
    plain,
    read_checkpoint,
    restore_state,
)
from madnis_py.training.events_target import EventsTarget
from madnis_py.training.history import History
from madnis_py.training.losses import (
    LOSSES,
    forward_kl_term,
    reverse_kl_term,
    second_moment,
)
from madnis_py.training.options import TrainingOptions
from madnis_py.training.results import (
    TRUST_LIMITS,
    MultiChannelResult,
    scatter,
    trust_warnings,
)
from madnis_py.training.stopping import (
    TARGETS,
    TrainingDecision,
)
from madnis_py.training.survey import SurveyResult

__all__ = ["LOSSES", "TRUST_LIMITS", "ChannelSample", "CheckpointError",
           "CheckpointMismatchError", "CheckpointWriteError", "IntegrandError", "Integrator",
           "MultiChannelIntegrand", "MultiChannelResult", "TrainingOptions", "WeightedBatch",
           "allocate", "allocation_shares"]

#: Most points of one channel a VEGAS survey round evaluates at once (a late round can
#: give one channel millions; the integrand's arrays for them are then held in pieces).
SURVEY_CHUNK = 1 << 17


class IntegrandError(ValueError):
    """The integrand returned NaN, an infinite or a negative value."""


class MultiChannelIntegrand(Protocol):
    """``f(x, channel) -> (f (n,), features (n, F), prior (n, C) or None)`` on torch
    float64 points ``x`` (n, dims(channel)); ``n_channels`` and ``dims(channel)``. The
    prior may also be compact, ``(n, m)`` on the channel's subprocess group alone
    (:meth:`ChannelWeights.dense <madnis_py.training.channel_weights.ChannelWeights.dense>`)."""

    n_channels: int

    def dims(self, channel: int) -> int: ...

    def __call__(self, x: torch.Tensor, channel: int) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor | None]: ...



@dataclass
class ChannelSample:
    """Weighted points of one channel, drawn by its :class:`ChannelSampler`.

    Attributes
    ----------
    channel : int
    x : (n, d)
        The points in the integrand's coordinates.
    features : (n, F)
        The integrand's features of the points (input of the channel weights).
    weight : (n,)
        ``alpha_i f_i / q_i``: each point alone is an unbiased estimate of the channel's
        part ``I_i`` of the integral.
    event_weight : (n,)
        ``weight * n / n_i`` for a batch of ``n`` points of which ``n_i`` in this channel
        (the stratified allocation): the mean over the whole batch is the integral.
    f : (n,)
        The integrand.
    prior : (n, C), (n, m) or None
        The integrand's channel prior (full, or compact on the channel's group).
    z : (n, d)
        The latent points the sampler drew (its flow's coordinates).
    log_q : (n,)
        log density of ``x`` (integrand coordinates) when drawn.
    log_jac : (n,)
        log |dx/dz| of the channel's base map.
    """

    channel: int
    x: torch.Tensor
    features: torch.Tensor
    weight: torch.Tensor
    event_weight: torch.Tensor
    f: torch.Tensor
    prior: torch.Tensor | None
    z: torch.Tensor
    log_q: torch.Tensor
    log_jac: torch.Tensor


@dataclass
class WeightedBatch:
    """A batch of ``n`` weighted events from every channel (:meth:`Integrator.random_batch`),
    in channel order; ``samples`` holds one :class:`ChannelSample` per channel drawn."""

    n: int
    samples: list[ChannelSample]

    def weights(self) -> np.ndarray:
        """The event weights ``alpha_i f / q_i * n / n_i`` (n,), float64; their mean is
        the batch's estimate of the integral."""
        return np.concatenate([s.event_weight.double().cpu().numpy() for s in self.samples])

    def weight_tensor(self) -> torch.Tensor:
        """:meth:`weights` as one float64 tensor on the integrator's device (no copy to
        the host)."""
        return torch.cat([s.event_weight.double() for s in self.samples])

    def channels(self) -> np.ndarray:
        """The channel of each event (n,)."""
        return np.concatenate([np.full(len(s.weight), s.channel) for s in self.samples])

    def points(self) -> torch.Tensor:
        """The points (n, d) in the integrand's coordinates (channels of equal dimension)."""
        dims = {s.x.shape[1] for s in self.samples}
        if len(dims) != 1:
            raise ValueError("channels of different dimensions: points cannot be stacked")
        return torch.cat([s.x for s in self.samples])


def allocation_shares(sigmas: np.ndarray, *, min_fraction: float = 0.05,
                      active: np.ndarray | None = None) -> np.ndarray:
    """The share of the points each channel gets from :func:`allocate`: in proportion to
    ``sigmas``, each active channel at least ``min_fraction / n_active``, dropped
    channels 0; sums to 1."""
    c = len(sigmas)
    on = np.ones(c, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    s = np.nan_to_num(np.asarray(sigmas, dtype=np.float64), nan=0.0, posinf=0.0) * on
    share = s / s.sum() if s.sum() > 0 else on / on.sum()
    floor = min_fraction / on.sum()
    return np.asarray((floor + (1 - min_fraction) * share) * on, dtype=np.float64)


def allocate(n: int, sigmas: np.ndarray, *, min_fraction: float = 0.05,
             active: np.ndarray | None = None) -> np.ndarray:
    """Points per channel in proportion to ``sigmas`` (stratified sampling), each active
    channel getting at least ``min_fraction / n_active`` of ``n``, dropped channels none;
    sums to ``n`` exactly (:func:`allocation_shares`, rounded)."""
    c = len(sigmas)
    on = np.ones(c, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    share = allocation_shares(sigmas, min_fraction=min_fraction, active=on)
    counts = np.floor(share * n).astype(np.int64)
    rest = np.argsort(-(share * n - counts))
    counts[rest[on[rest]][: n - counts.sum()]] += 1
    return np.asarray(counts, dtype=np.int64)


def _pooled(raw: Mapping[int, list[np.ndarray]], n_channels: int
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per channel, from all its weights ``raw[i]`` (one array per batch): the mean, the
    variance of that mean (inf below two points), the points and the weights' standard
    deviation."""
    means = np.zeros(n_channels)
    var = np.zeros(n_channels)
    points = np.zeros(n_channels, dtype=np.int64)
    stds = np.zeros(n_channels)
    for i, parts in raw.items():
        w = np.concatenate(parts)
        points[i] = len(w)
        means[i] = float(w.mean())
        stds[i] = float(w.std(ddof=1)) if len(w) > 1 else 0.0
        var[i] = stds[i] ** 2 / len(w) if len(w) > 1 else math.inf
    return means, var, points, stds


def _invalid(f: torch.Tensor) -> torch.Tensor:
    """Where integrand values are NaN, infinite or negative."""
    return ~torch.isfinite(f) | (f < 0)


def _any_invalid(values: list[torch.Tensor]) -> bool:
    """Whether any of the channels' integrand values is NaN, infinite or negative."""
    if not values:
        return False
    return bool(torch.stack([_invalid(f).any() for f in values]).any())


def _check_values(f: torch.Tensor, channel: int) -> None:
    """Refuse NaN, infinite and negative integrand values (see the module docstring)."""
    bad = _invalid(f)
    if not bool(bad.any()):
        return
    first = int(torch.nonzero(bad)[0, 0])
    value = float(f[first])
    if math.isnan(value):
        why = "NaN (the integrand failed to evaluate there)"
    elif math.isinf(value):
        why = ("infinite: the integral diverges (a missing cut, or a massless propagator "
               "at zero?)")
    else:
        why = ("negative: negative weights are not supported (setting them to zero "
               "would bias the estimate)")
    raise IntegrandError(f"channel {channel}: {int(bad.sum())} of {len(f)} integrand values "
                         f"are NaN, infinite or negative; the first, at point {first}, is "
                         f"{value!r}, {why}")



def _as_channels(integrand: object, device: torch.device) -> MultiChannelIntegrand:
    if isinstance(integrand, (str, Process)):
        integrand = Integrand(integrand)
    if isinstance(integrand, Integrand):
        if device.type != "cpu":  # the physics on the device too (docs/gpu.md)
            return DeviceChannels(integrand, device)
        return TorchChannels(integrand)
    own = integrand.device if isinstance(integrand, DeviceChannels) else None
    if own is not None and (own.type, own.index or 0) != (device.type, device.index or 0):
        # a DeviceChannels built for another device: its PDF tables and matrix-element
        # staging live there, and every batch would cross between the two
        raise ValueError(f"the integrand evaluates on {own}, the integrator runs on "
                         f"{device}: build it for {device} (or pass the Integrand itself)")
    return cast(MultiChannelIntegrand, integrand)



class Integrator:
    """Multi-channel neural importance sampling of an integrand.

    Parameters
    ----------
    integrand : MultiChannelIntegrand, Process, Integrand or str
        A multi-channel integrand, or a process (built-in name, directory, ``Process``)
        or physics ``Integrand``, wrapped with its card's defaults.
    feature_dims : int, optional
        Width of the features the integrand returns (input of the channel weights);
        taken from the integrand's ``feature_dims`` when it has one.
    flow_options : dict, optional
        Keyword arguments of :class:`madnis_py.Flow` for every channel.
    trainable_weights : bool
        Train the channel-weight network jointly with the flows (else alpha = prior).
    loss : {"variance", "stratified", "forward_kl", "reverse_kl"}
        Sum of the channels' relative variances, the stratified ``(sum_i sigma_i)^2``, or
        a KL divergence between ``q_i`` and ``alpha_i f / I_i`` for the flows (the channel
        weights then follow the variance).
    mixture : float
        Weight ``lambda`` in [0, 1) of the channel's base density (VEGAS map or flat) in a
        defensive mixture with the flow; 0 switches it off.
    uniform_mixture : float
        Weight ``mu`` of the uniform density in the integrand's own coordinates in that
        mixture (:mod:`madnis_py.training.channel_sampler`): it bounds every weight by
        ``alpha f / mu``, also where the VEGAS grid has shrunk an increment to nothing;
        ``mixture + uniform_mixture < 1``.
    max_weight_penalty : float
        Coefficient of the loss term on the largest weights; 0 switches it off.
    top_fraction : float
        Share of each channel's batch that counts as its largest weights.
    lr : float
        Adam learning rate (cosine decay over each :meth:`train` call).
    min_fraction : float
        Smallest share of a batch any channel gets.
    warmup : int
        Training steps with a uniform allocation before it follows the channels' sigmas.
    drop_threshold, drop_patience : float, int
        After the warm-up, a channel whose share of the integral stays at or below
        ``drop_threshold`` for ``drop_patience`` steps is dropped: its alpha becomes zero
        and the other channels share the whole integrand (a message says so). The
        default 1e-2 is MadGraph 7's ``channel_dropping_threshold`` (better in
        ``benchmarks/RESULTS.md`` where it drops ee -> qqg's 0.06 % photon channels).
    max_grad_norm : float
        Clip the gradient of all trained parameters to this L2 norm before every
        optimisation step; 0 does not clip. The default 3e-3 (MadGraph 7's) clips nearly
        every step, so Adam sees each step's gradient direction with one norm: no batch
        with a few huge weights dominates its moments (a better flow per integrand call
        in ``benchmarks/RESULTS.md``).
    freeze_weights_after : float
        Share of each :meth:`train` call's steps after which the channel-weight network
        stops training while the flows go on (MadGraph 7 freezes it for the last third);
        1 (default) trains it throughout.
    seed : int
        Seeds torch's generator used for every draw, and the initial parameters of the
        flows and channel weights (drawn in a fork of torch's global generator, which is
        left as it was): one seed, one run.
    device : str or torch.device
        Where flows, channel weights, random numbers, base maps and losses live
        (``"cpu"`` or ``"cuda"``/``"cuda:N"``; see docs/gpu.md for what crosses to the
        host). Not part of the checkpoint: :meth:`load` takes its own ``device``.

    Attributes
    ----------
    steps_done : int
        Training steps (fresh batches) taken over the integrator's whole life: every
        :meth:`train` call adds its steps, a checkpoint keeps the count, and a loaded
        integrator goes on counting from it. The warm-up and channel dropping follow it.
    steps_remaining : int
        Steps left of a :meth:`train` call that was interrupted after a checkpoint
        (0 if none): ``train(steps_remaining)`` on the loaded integrator continues it.
    physics : mapping or None
        The physics fingerprint stored in checkpoints and compared on loading; ``None``
        takes the integrand's own (``Integrand.fingerprint()``) when it has one.
    stack_flows : bool or None
        Sample and evaluate the channels' flows together, each coupling block of all of
        them as batched matrix products (:mod:`madnis_py.flows.stacked`: kernel launches
        that do not grow with the channels; the values to rounding). None (default): on
        a device other than the CPU, whose fused blocks are faster.
    """


    def __init__(self, integrand: MultiChannelIntegrand | str | object, *,
                 feature_dims: int | None = None,
                 flow_options: dict[str, object] | None = None,
                 trainable_weights: bool = True, loss: str = "variance", lr: float = 3e-3,
                 min_fraction: float = 0.1, warmup: int = 20, drop_threshold: float = 1e-2,
                 drop_patience: int = 10, mixture: float = 0.0,
                 uniform_mixture: float = 0.0, max_weight_penalty: float = 0.0, top_fraction: float = 0.01,
                 max_grad_norm: float = 3e-3, freeze_weights_after: float = 1.0,
                 seed: int = 0, device: str | torch.device = "cpu") -> None:
        self.device = resolve_device(device)
        self.options = TrainingOptions(
            flow_options=dict(flow_options or {}), trainable_weights=trainable_weights,
            loss=loss, lr=lr, min_fraction=min_fraction, warmup=warmup,
            drop_threshold=drop_threshold, drop_patience=drop_patience, mixture=mixture,
            uniform_mixture=uniform_mixture, max_weight_penalty=max_weight_penalty, top_fraction=top_fraction,
            max_grad_norm=max_grad_norm, freeze_weights_after=freeze_weights_after, seed=seed)
        self.config: dict[str, object] = {
            "feature_dims": feature_dims, **self.options.as_dict(),
            "process": integrand if isinstance(integrand, str) else None}
        integrand = _as_channels(integrand, self.device)
        if feature_dims is None:
            feature_dims = getattr(integrand, "feature_dims", None)
            if feature_dims is None:
                raise ValueError("feature_dims is needed: the integrand has no feature_dims")
        self.config["feature_dims"] = feature_dims
        self.integrand = integrand
        self.n_channels = integrand.n_channels
        opts = dict(flow_options or {})
        # the flows' and channel weights' initial parameters come from the seed too, in a
        # fork of torch's global generator (left as it was; on the CPU, then moved)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            flows = torch.nn.ModuleList(
                [Flow(integrand.dims(i), **opts) for i in range(self.n_channels)]  # type: ignore[arg-type]
            )
            groups = getattr(integrand, "channel_groups", None)
            weights = ChannelWeights(
                self.n_channels, feature_dims, trainable=trainable_weights,
                groups=None if groups is None else [int(g) for g in groups])
        self.flows = flows.to(self.device)
        self.samplers = [ChannelSampler(cast(Flow, flow), mixture=mixture,
                                        uniform_mixture=uniform_mixture)
                         for flow in self.flows]
        #: Per channel, its subprocess group (:mod:`madnis_py.physics.channels`).
        self.channel_groups = np.asarray(groups if groups is not None
                                         else np.zeros(self.n_channels), dtype=np.int64)
        self.weights = weights.to(self.device)
        self.loss_name = loss
        self.mixture = mixture
        self.max_weight_penalty = max_weight_penalty
        self.top_fraction = top_fraction
        self.lr = lr
        self.min_fraction = min_fraction
        self.warmup = warmup
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.stack_flows: bool | None = None
        self.sigmas = np.ones(self.n_channels)
        self.active = np.ones(self.n_channels, dtype=bool)
        self._active_cache: tuple[bytes, torch.Tensor] | None = None
        self.drop_threshold = drop_threshold
        self.drop_patience = drop_patience
        self._low_steps = np.zeros(self.n_channels, dtype=np.int64)
        self.vegas_result: MultiChannelResult | None = None
        self.vegas_survey: SurveyResult | None = None
        self.last_result: MultiChannelResult | None = None
        #: The event weights of the last :meth:`integrate` and the channel of each point
        #: (not in checkpoints).
        self.last_weights: np.ndarray | None = None
        self.last_channels: np.ndarray | None = None
        self.seed = seed
        self.n_calls = 0
        self.n_invalid = 0
        self.steps_done = 0
        self.history = History()
        self.physics: Mapping[str, object] | None = None
        self._own_physics: dict[str, Any] | None | bool = False  # False: not computed yet
        self._training: dict[str, object] | None = None  # the train() call in progress
        self._resume: dict[str, Any] | None = None  # an interrupted one, from a checkpoint
        self.training_decision: TrainingDecision | None = None  # of the last train()

    @property
    def use_flow(self) -> list[bool]:
        """Per channel, whether its sampler uses the flow (else its base map alone);
        assign a list to set them all."""
        return [s.use_flow for s in self.samplers]

    @use_flow.setter
    def use_flow(self, flags: list[bool]) -> None:
        if len(flags) != self.n_channels:
            raise ValueError(f"use_flow needs {self.n_channels} flags, got {len(flags)}")
        for sampler, flag in zip(self.samplers, flags, strict=True):
            sampler.use_flow = bool(flag)

    @property
    def n_active(self) -> int:
        """Channels still drawn (not dropped)."""
        return int(np.count_nonzero(self.active))

    @property
    def steps_remaining(self) -> int:
        if self._resume is None:
            return 0
        return int(self._resume["steps"]) - int(self._resume["done"])

    def _physics(self) -> dict[str, Any] | None:
        """The fingerprint for checkpoints: :attr:`physics`, else the integrand's own."""
        if self.physics is not None:
            return plain(self.physics)
        if self._own_physics is False:
            own = None
            for obj in (self.integrand, getattr(self.integrand, "integrand", None)):
                fp = getattr(obj, "fingerprint", None)
                if callable(fp):
                    own = plain(fp())
                    break
            self._own_physics = own
        return cast("dict[str, Any] | None", self._own_physics)

    def _evaluate(self, channel: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor | None]:
        f, features, prior = self.integrand(x, channel)
        self.n_calls += len(x)
        _check_values(f, channel)
        return f, features, prior

    def _active(self) -> torch.Tensor:
        """The active channels as a tensor on the device: copied there once per change of
        :attr:`active` (channel dropping, a loaded state), not once per batch (each copy
        to a GPU blocks)."""
        key = self.active.tobytes()
        cached = self._active_cache
        if cached is None or cached[0] != key:
            cached = (key, torch.from_numpy(self.active.copy()).to(self.device))
            self._active_cache = cached
        return cached[1]

    def _drop_small_channels(self, values: np.ndarray, total: float) -> None:
        if self.steps_done < self.warmup or total <= 0:
            return
        low = self.active & (values / total <= self.drop_threshold)
        self._low_steps = np.where(low, self._low_steps + 1, 0)
        # smallest first, and the last active channel of a subprocess group stays: the
        # group's integral is its channels' sum (madnis_py.physics.channels)
        groups = self.channel_groups
        due = np.nonzero(self._low_steps >= self.drop_patience)[0]
        for i in due[np.argsort(values[due], kind="stable")]:
            if (self.active & (groups == groups[i])).sum() <= 1:
                continue
            self.active[i] = False
            warnings.warn(f"madnis_py: dropping channel {i}: its share of the integral "
                          f"stayed at or below {self.drop_threshold:g} for "
                          f"{self.drop_patience} steps (last {values[i] / total:.3g})",
                          stacklevel=4)

    def _draw(self, channel: int, n_i: int, n: int) -> ChannelSample:
        """``n_i`` points of one channel in a batch of ``n``, evaluated and weighted: the
        one place where ``alpha f / q`` and the event weight ``alpha f / q * n / n_i``
        are computed."""
        d = self.samplers[channel].sample(n_i, self.generator)
        f, features, prior = self._evaluate(channel, d.x)
        return self._weigh(channel, d, f, features, prior, n)

    def _weigh(self, channel: int, d: Draw, f: torch.Tensor, features: torch.Tensor,
               prior: torch.Tensor | None, n: int) -> ChannelSample:
        return self._weigh_all([(channel, d, f, features, prior)], n)[0]

    def _weigh_all(self, drawn: list[tuple[int, Draw, torch.Tensor, torch.Tensor,
                                           torch.Tensor | None]],
                   n: int) -> list[ChannelSample]:
        """The channels' evaluated draws of a batch of ``n`` as samples (their alpha from
        one call of the channel weights)."""
        samples = []
        with torch.no_grad():
            alphas = self._own_alphas([(i, features, prior)
                                       for i, _, _, features, prior in drawn])
            for (i, d, f, features, prior), alpha in zip(drawn, alphas, strict=True):
                weight = alpha * f / d.log_q.exp()
                samples.append(ChannelSample(i, d.x, features, weight,
                                             weight * (n / len(d.x)), f, prior, d.z,
                                             d.log_q, d.log_jac))
        return samples

    def _log_probs_at(self, samples: list[ChannelSample]) -> list[torch.Tensor]:
        """Each sample's ``log_prob_at`` under its channel's sampler now, the flows of
        all channels that use one evaluated together (:func:`log_prob_many`)."""
        flowing = [k for k, st in enumerate(samples) if self.samplers[st.channel].use_flow]
        flow_log_q: dict[int, torch.Tensor] = dict(zip(flowing, log_prob_many(
            [self.samplers[samples[k].channel].flow for k in flowing],
            [samples[k].z for k in flowing],
            stacked=self.stack_flows),
            strict=True))
        return [self.samplers[st.channel].log_prob_at(st.z, st.log_jac, flow_log_q.get(k))
                for k, st in enumerate(samples)]

    def _own_alphas(self, rows: list[tuple[int, torch.Tensor, torch.Tensor | None]]
                    ) -> list[torch.Tensor]:
        """For each (channel, features, prior) of a channel's points, alpha of that
        channel there: one call of the channel weights on all the points (its rows are
        independent), not one per channel (with 48 channels that was 8 % of a step)."""
        if not rows:
            return []
        active = self._active()
        priors = [prior for _, _, prior in rows]
        if len(rows) == 1 or (any(p is None for p in priors)
                              and not all(p is None for p in priors)):
            return [self.weights.own(features, prior, active, i)
                    for i, features, prior in rows]
        if priors[0] is not None and not self.weights.network_runs(rows[0][1]):
            # the prior normalised on each channel's group (one look at the network)
            return [self.weights.prior_alpha(cast(torch.Tensor, prior), active, i)
                    for i, _, prior in rows]
        prior_all = None if priors[0] is None else torch.cat(
            [cast(torch.Tensor, self.weights.dense(p, i)) for i, _, p in rows])
        alpha = self.weights(torch.cat([features for _, features, _ in rows]), prior_all,
                             active)
        # each point's own column in one gather, then split by channel: a slice of alpha
        # per channel made the backward pass allocate a gradient as large as alpha for
        # every channel (O(points x channels^2): 38 s of a step of VBF Z's 1608 channels)
        lengths = [len(features) for _, features, _ in rows]
        own = torch.cat([torch.full((n,), i, dtype=torch.long, device=alpha.device)
                         for (i, _, _), n in zip(rows, lengths, strict=True)])
        return list(alpha.gather(1, own[:, None])[:, 0].split(lengths))

    def random_batch(self, n: int, *, counts: np.ndarray | None = None,
                     progress: Callable[[int], None] | None = None) -> WeightedBatch:
        """``n`` weighted events, allocated to channels by their current sigmas (or by
        ``counts``, points per channel summing to ``n``); channels without points are
        left out. Integration, unweighting and sharded generation all draw through it.
        ``progress(n_i)`` follows each channel's draw (its ``n_i`` points, summing to
        ``n``); it draws nothing itself."""
        if counts is None:
            counts = allocate(n, self.sigmas, min_fraction=self.min_fraction,
                              active=self.active)
        elif int(np.sum(counts)) != n:
            raise ValueError(f"counts sum to {int(np.sum(counts))}, not n = {n}")
        together = getattr(self.integrand, "evaluate_channels", None)
        if together is not None:
            # all channels' points in one integrand call (DeviceChannels: one matrix-element
            # round trip per batch); the same random numbers as channel by channel
            draws = self._draws(counts)
            values = together([(d.x, i) for i, d in draws])
            # one look at all channels' values (one synchronisation on a GPU, not one
            # per channel); the channel at fault is then found and named as alone
            if _any_invalid([f for f, _, _ in values]):
                for (i, _), (f, _, _) in zip(draws, values, strict=True):
                    _check_values(f, i)
            drawn = []
            for (i, d), (f, features, prior) in zip(draws, values, strict=True):
                self.n_calls += len(d.x)
                drawn.append((i, d, f, features, prior))
                if progress is not None:
                    progress(len(d.x))
            return WeightedBatch(n, self._weigh_all(drawn, n))
        drawn = []
        for i, n_i in enumerate(counts):
            if n_i > 0:
                d = self.samplers[i].sample(int(n_i), self.generator)
                drawn.append((i, d, *self._evaluate(i, d.x)))
                if progress is not None:
                    progress(int(n_i))
        return WeightedBatch(n, self._weigh_all(drawn, n))

    def _stacks_flows(self) -> bool:
        """Whether the channels' flows are sampled and evaluated together
        (:mod:`madnis_py.flows.stacked`): :attr:`stack_flows`, by default off the CPU."""
        return self.device.type != "cpu" if self.stack_flows is None else self.stack_flows

    def _draws(self, counts: np.ndarray) -> list[tuple[int, Draw]]:
        """Each channel's draw of ``counts[i]`` points, in channel order; the flows of
        channels sampling their flow alone drawn together where they stack (the same
        random numbers in the same order as channel by channel)."""
        on = [i for i, n_i in enumerate(counts) if n_i > 0]
        samplers = [self.samplers[i] for i in on]
        flows = [s.flow for s in samplers]
        if (self._stacks_flows() and len(on) > 1 and all(s.flow_only for s in samplers)
                and stackable(flows)):
            with torch.no_grad():
                latents = sample_stacked(flows, [int(counts[i]) for i in on], self.generator)
            return [(i, s.sample(int(counts[i]), self.generator, latent=latent))
                    for i, s, latent in zip(on, samplers, latents, strict=True)]
        return [(i, self.samplers[i].sample(int(counts[i]), self.generator)) for i in on]

    def sample(self, n: int) -> list[ChannelSample]:
        """``n`` weighted points, allocated to channels by their current sigmas (the
        channels of :meth:`random_batch`)."""
        return self.random_batch(n).samples

    def _loss(self, samples: list[ChannelSample]) -> tuple[torch.Tensor, np.ndarray,
                                                           np.ndarray]:
        """The loss on stored samples, and each channel's integral and weight std.

        Channel i's variance on samples of q_old (fresh, or from the buffer):
        E_old[(alpha f)^2 / (q_old q)] - (E_old[alpha f / q_old])^2, gradients through q
        and alpha only (:mod:`madnis_py.training.losses`). The KL losses replace the
        flows' part of it (alpha then sees the variance with q held fixed); the
        largest-weight term is added on top.
        """
        var_terms = []
        kl_terms = []
        top_terms = []
        moments: list[torch.Tensor] = []
        values = np.zeros(self.n_channels)
        sigmas = np.zeros(self.n_channels)
        n_total = sum(len(st.x) for st in samples)
        kl = self.loss_name in ("forward_kl", "reverse_kl")
        alphas = self._own_alphas([(st.channel, st.features, st.prior) for st in samples])
        log_qs = self._log_probs_at(samples)
        for st, alpha, log_q in zip(samples, alphas, log_qs, strict=True):
            w_old = alpha * st.f / st.log_q.exp()
            ratio = torch.exp(st.log_q - log_q)  # q_old / q
            mean = w_old.mean()
            var_terms.append(second_moment(w_old, ratio.detach() if kl else ratio)
                             - mean ** 2)
            if self.loss_name == "forward_kl":
                kl_terms.append(forward_kl_term(w_old, log_q))
            elif self.loss_name == "reverse_kl":
                kl_terms.append(reverse_kl_term(alpha * st.f, ratio, log_q))
            if self.max_weight_penalty > 0:
                k = max(1, math.ceil(self.top_fraction * len(st.x)))
                top = torch.topk(w_old.detach(), k).indices
                top_terms.append((w_old * ratio)[top].mean() * (n_total / len(st.x)))
            moments.append(torch.stack([mean.detach(), w_old.detach().std()]))
        # every channel's integral and weight std in one copy (one host synchronisation
        # on a GPU, not two per channel)
        rows = torch.stack(moments).tolist() if moments else []
        for st, (mean_i, std_i) in zip(samples, rows, strict=True):
            values[st.channel] = mean_i
            sigmas[st.channel] = std_i
        value = float(values.sum())
        if value <= 0:
            raise ZeroDivisionError(
                "the integrand is zero on all points of this step (cuts that remove "
                "everything, or a process below threshold?): nothing to learn")
        scale = value ** 2
        if self.loss_name == "stratified":
            loss = torch.stack([torch.sqrt(torch.clamp(v, min=0.0) + 1e-300 * scale)
                                for v in var_terms]).sum() ** 2 / scale
        else:
            loss = torch.stack(var_terms).sum() / scale
        # kl_terms is empty unless a KL loss is chosen, then one term per sample
        for st, term in zip(samples, kl_terms, strict=False):
            # channel i's KL on its normalised density alpha_i f / I_i, weighted by its
            # share I_i / I of the integral: the forward one is -E[p_i log q_i] = term / I_i
            share = values[st.channel] / value
            loss = loss + (term / value if self.loss_name == "forward_kl" else term * share)
        if top_terms:
            loss = loss + self.max_weight_penalty * torch.stack(top_terms).sum() / value
        return loss, values, sigmas

    def train(self, steps: int, *, batch: int = 4096, buffered_steps: int = 0,
              buffer_batches: int = 4, progress: bool = False,
              callback: Callable[[int, float], None] | None = None,
              checkpoint: str | Path | None = None,
              checkpoint_every: int = 50, target: str = "steps", n_events: int = 0,
              measure_every: int = 10, measure_points: int = 20_000,
              patience: int = 3, explore: float = 0.1,
              truncation: float = DEFAULT_TRUNCATION) -> list[float]:
        """Train the flows (and channel weights) for ``steps`` steps of ``batch`` fresh
        points each (``target="steps"``), or for as long as it shortens the predicted
        wall time to ``n_events`` unweighted events, ``steps`` at most
        (``target="events"``, :mod:`madnis_py.training.stopping`).

        With ``target="events"`` the base maps alone (flows off) are measured first
        (``measure_points`` weighted events: their efficiency at the ``w_max`` with the
        share ``truncation`` of the cross section above it, the unweighting's own, and
        the points per second), then again with the flows after every ``measure_every``
        steps (the measurements' time counts as training time). The probe is skipped
        (``"vegas_alone"``, no step) when its integrand calls alone cost more than a
        perfect flow could save over the base maps. If the first one shows
        that even a perfect flow could not generate faster than the base maps, or no
        gain in efficiency at all, the flows are switched off (``"vegas_alone"``);
        else training stops when the predicted total has not improved for ``patience``
        measurements or the last ``patience`` windows saved less generation time than
        they took (once a share ``explore`` of the time still at stake is spent since
        the best measurement), and the flows and channel weights of the best
        measurement are restored, or switched off where the base maps still generate
        faster. :attr:`training_decision` records the outcome
        (:class:`~madnis_py.training.stopping.TrainingDecision`). The stopping rule's
        state is not in checkpoints: a resumed call measures afresh.

        ``buffered_steps`` extra optimisation steps follow every fresh one, each on one of
        the last ``buffer_batches`` batches kept in memory, newest first (no new integrand
        calls; the losses reweight them from the density they were drawn from). 0 by
        default here and on the run card: MadGraph 7's 4 (80 % buffered) gave better flows
        per integrand call on the toy integrands, worse ones per call and per second on
        g g > t t~ g (``benchmarks/RESULTS.md``). Every optimisation step
        clips the gradient to the option ``max_grad_norm`` (if > 0), and the channel
        weights stop training after the share ``freeze_weights_after`` of the call's
        steps (the flows go on). ``progress`` shows a tqdm
        bar with the loss and the relative std. ``callback(steps_done, loss)`` follows
        every step (after its checkpoint).

        ``checkpoint``: a file written atomically (:meth:`save`) every ``checkpoint_every``
        steps and after the last; it keeps the optimizer, the learning-rate schedule and
        the history, so that after a crash ``Integrator.load(checkpoint, ...)`` and
        ``train(steps_remaining)`` continue this call where its last checkpoint left it
        (with the same ``batch``, bit for bit; the in-memory buffer of
        ``buffered_steps`` starts empty). Any other number of steps starts a new
        optimizer and schedule, as every ``train`` call does.
        """
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {checkpoint_every}")
        t_start = time.perf_counter()
        if target not in TARGETS:
            raise ValueError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
        events = EventsTarget(self, steps, n_events=n_events, measure_every=measure_every,
                               measure_points=measure_points,
                               patience=patience, explore=explore, t_start=t_start,
                               batch=batch, truncation=truncation
                               ) if target == "events" else None
        resume, self._resume = self._resume, None
        total, start = steps, 0
        if resume is not None and steps == int(resume["steps"]) - int(resume["done"]):
            total, start = int(resume["steps"]), int(resume["done"])
        losses: list[float] = []
        try:
            if events is not None and not events.start():
                self.training_decision = events.decision()
                return losses
            # only now: torch's first optimizer imports torch._dynamo (2 s of CPU), which
            # a run that trains no flow need not pay
            params = list(self.flows.parameters()) + list(self.weights.parameters())
            # fused: one compiled update of all tensors (the per-tensor loop cost 14 % of
            # a step with 48 channels' flows, the foreach ops 6 %; the same Adam, up to
            # rounding)
            opt = torch.optim.Adam(params, lr=self.lr, fused=True)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total, 1))
            if start:
                assert resume is not None
                try:
                    opt.load_state_dict(resume["optimizer"])
                    sched.load_state_dict(resume["scheduler"])
                except (KeyError, TypeError, ValueError) as err:
                    raise CheckpointError(f"the checkpoint's optimizer state does not fit "
                                          f"this integrator ({err})") from err
            if events is not None:
                events.t_steps = time.perf_counter()  # the probe's first step from here
            self._train_steps(steps, start, total, opt, sched, losses, batch=batch,
                              buffered_steps=buffered_steps, buffer_batches=buffer_batches,
                              progress=progress, callback=callback,
                              checkpoint=None if checkpoint is None else Path(checkpoint),
                              checkpoint_every=checkpoint_every,
                              stop=None if events is None else events.after_step)
        finally:
            self._training = None
        self.training_decision = (TrainingDecision(target="steps", reason="max_steps",
                                                   steps=len(losses),
                                                   chosen_steps=len(losses))
                                  if events is None else events.decision())
        return losses


    def _train_steps(self, steps: int, start: int, total: int, opt: torch.optim.Optimizer,
                     sched: torch.optim.lr_scheduler.LRScheduler, losses: list[float], *,
                     batch: int, buffered_steps: int, buffer_batches: int, progress: bool,
                     callback: Callable[[int, float], None] | None, checkpoint: Path | None,
                     checkpoint_every: int,
                     stop: Callable[[int, torch.Tensor], bool] | None = None) -> None:
        buffer: list[list[ChannelSample]] = []
        params = [q for group in opt.param_groups for q in group["params"]]
        weight_params = list(self.weights.parameters())
        max_norm = self.options.max_grad_norm
        # the channel weights train during the call's first steps only (MadGraph 7's
        # fixed_cwnet_fraction); counted over the whole call, so a resumed one agrees
        weight_steps = int(self.options.freeze_weights_after * total)

        def optimise(loss: torch.Tensor, frozen: bool) -> None:
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            if frozen:
                for q in weight_params:
                    q.grad = None  # Adam leaves a parameter without a gradient untouched
            if max_norm > 0:
                torch.nn.utils.clip_grad_norm_([q for q in params if q.grad is not None],
                                               max_norm, foreach=True)
            opt.step()

        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="training", unit="step")
        for k in range(1, steps + 1):
            uniform = self.steps_done < self.warmup
            counts = allocate(batch, np.ones(self.n_channels) if uniform else self.sigmas,
                              min_fraction=self.min_fraction, active=self.active)
            # a channel needs 2 points for its variance; the others sit this step out
            counts = np.where(counts >= 2, counts, 0)
            if not counts.any():
                raise ValueError(f"batch {batch} leaves no channel 2 points")
            fresh = self.random_batch(int(counts.sum()), counts=counts).samples
            loss, values, sigmas = self._loss(fresh)
            value = float(values.sum())
            frozen = start + k > weight_steps
            optimise(loss, frozen)
            if buffered_steps > 0:
                # each buffered step on one stored batch, newest first (as MadGraph 7's
                # buffered training does): a pass costs what a fresh step's does, without
                # its integrand calls
                buffer = (buffer + [fresh])[-max(buffer_batches, 1):]
                for j in range(buffered_steps):
                    extra, _, _ = self._loss(buffer[-1 - j % len(buffer)])
                    optimise(extra, frozen)
            sched.step()
            self.sigmas = np.where(counts >= 2, sigmas, self.sigmas)
            self.steps_done += 1
            self._drop_small_channels(values, value)
            event_weights = torch.cat([s.event_weight for s in fresh])
            # the step's loss and the batch's largest and mean event weight in one copy
            loss_value, top, mean_weight = torch.stack([
                loss.detach().to(event_weights.dtype), event_weights.max(),
                event_weights.mean()]).tolist()
            losses.append(loss_value)
            self.history.append(
                loss=losses[-1], value=value,
                rel_std=float(self.sigmas.sum() / max(value, 1e-300)),
                eps_uw=mean_weight / top if top > 0 else math.nan,
                fractions=(counts / counts.sum()).tolist())
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3g}",
                                rel_std=f"{self.history.rel_std[-1]:.3g}")
                bar.update()
            stopped = stop is not None and stop(k, event_weights.detach())
            if checkpoint is not None and (k % checkpoint_every == 0 or k == steps
                                           or stopped):
                done = total if stopped else start + k
                # the optimizer's state only while steps remain (a finished training is
                # never resumed): with 528 channels' flows it tripled the file, 11.8 of
                # 75 s of a run spent writing it
                self._training = ({"steps": total, "done": done,
                                   "optimizer": opt.state_dict(),
                                   "scheduler": sched.state_dict()} if done < total
                                  else {"steps": total, "done": done})
                self.save(checkpoint)
                self._training = None
            if callback is not None:
                callback(self.steps_done, losses[-1])
            if stopped:
                break
        if bar is not None:
            bar.close()

    def pretrain_vegas(self, *, nitn: int = 10, neval: int = 2000, growth: float = 1.3,
                       floor: float = VEGAS_FLOOR, ninc: int = 50, n_events: int = 0,
                       progress: Callable[[int], None] | None = None,
                       on_round: Callable[[np.ndarray], None] | None = None,
                       on_channel: Callable[[np.ndarray], None] | None = None,
                       recycled_rounds: int = 0,
                       before_round: Callable[[int], bool] | None = None,
                       truncation: float = DEFAULT_TRUNCATION) -> MultiChannelResult:
        """Adapt a VEGAS map per channel to ``prior_i f_i`` and make it the channel's base
        map (under its flow), with ``floor`` of the uniform density mixed into every
        dimension (:func:`~madnis_py.training.channel_sampler.floored_map`; 0: the map as
        VEGAS left it).

        A survey of all channels at once (:func:`madnis_py.training.survey.survey`, the
        ``vegas`` package's ``AdaptiveMap``): round ``k`` of at most ``nitn`` draws
        ``neval * channels * growth^k`` points, shared among the active channels by the
        standard deviations of their weights; with ``n_events > 0`` it stops as soon as
        further rounds no longer shorten the predicted time to that many unweighted
        events. Returns the VEGAS-only multi-channel estimate (the second half of the
        rounds; every call counted in ``n_calls``) and keeps the survey in
        :attr:`vegas_survey`; the channels' sigmas for the allocation that follows are
        the last round's. Call before :meth:`train`; the flows start as the identity on
        top of the maps. ``progress(1)`` follows every round (``nitn`` at most); it draws
        nothing itself. ``on_round(event_weights)`` receives every round's event weights
        and ``recycled_rounds`` says how many of the last rounds will give events, and
        ``before_round(points)`` is called before every round, ``on_channel(weights)``
        after each channel's points of a round (see
        :func:`~madnis_py.training.survey.survey`); ``truncation`` is the share of the
        cross section above the ``w_max`` of the rounds' efficiencies (the
        unweighting's).
        """
        from madnis_py.training.survey import survey

        if any(s.base is not None for s in self.samplers):
            raise RuntimeError("pretrain_vegas was already called")
        calls, invalid = self.n_calls, self.n_invalid

        def share(i: int, x: np.ndarray) -> np.ndarray:
            # the vegas package adapts on the host: one copy each way per batch; a
            # channel given millions of points in a late round is evaluated in chunks,
            # so that what one evaluation holds (momenta, features, prior) stays bounded
            out = []
            with torch.no_grad():
                for start in range(0, len(x), SURVEY_CHUNK):
                    part = np.ascontiguousarray(x[start:start + SURVEY_CHUNK],
                                                dtype=np.float64)
                    f, features, prior = self._evaluate(i, torch.from_numpy(part).to(
                        self.device))
                    alpha = self.weights.own(features, prior, self._active(), i)
                    out.append(np.asarray((alpha * f).cpu().numpy()))
            return np.concatenate(out) if out else np.zeros(0)

        found = survey(share, [self.integrand.dims(i) for i in range(self.n_channels)],
                       self.active, points=neval, growth=growth, iterations=nitn,
                       floor=floor, ninc=ninc, n_events=n_events, seed=self.seed,
                       progress=progress, on_round=on_round, on_channel=on_channel,
                       recycled_rounds=recycled_rounds, before_round=before_round,
                       truncation=truncation)
        for sampler, vmap in zip(self.samplers, found.maps, strict=True):
            if vmap is not None:
                sampler.base = floored_map(vmap, floor)
        self.sigmas = np.where(self.active, found.sigmas, self.sigmas)
        self.vegas_survey = found
        total = found.value
        ch = found.points > 0
        self.vegas_result = MultiChannelResult(
            value=total, error=found.error,
            channel_values=tuple(float(v) for v in found.values[ch]),
            channel_errors=tuple(float(e) for e in found.errors[ch]),
            channel_points=tuple(int(n) for n in found.points[ch]),
            rel_std=(float(np.sum(found.errors * np.sqrt(found.points))) / total
                     if total > 0 else math.inf),
            n_calls=self.n_calls - calls, n_invalid=self.n_invalid - invalid)
        return self.vegas_result

    def select_flows(self, n: int = 20_000) -> list[bool]:
        """Per channel, keep the flow only if it has the smaller measured weight variance
        than its base map (VEGAS after :meth:`pretrain_vegas`, else flat): ``n`` points
        per channel and option, counted in ``n_calls``."""
        choice = []
        for i, sampler in enumerate(self.samplers):
            rel = []
            for flag in (False, True):
                sampler.use_flow = flag
                w = self._draw(i, n, n).weight
                rel.append(float(w.std() / w.mean()) if float(w.mean()) > 0 else math.inf)
            sampler.use_flow = rel[1] < rel[0]
            choice.append(sampler.use_flow)
        return choice

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed run needs: flows, channel weights, allocation, RNG state,
        the history, the physics fingerprint (a JSON string) and, while :meth:`train` is
        running, its optimizer and schedule. Tensors and plain values only, so that
        ``torch.load(..., weights_only=True)`` reads it."""
        return integrator_state(self)

    def save(self, path: str | Path, *, physics: Mapping[str, object] | None = None) -> None:
        """Write a checkpoint atomically (a temporary file in the same directory, renamed
        when complete; :class:`~madnis_py._atomic.CheckpointWriteError` names the file when
        the disk is full).

        ``physics``: the fingerprint to store (it also becomes :attr:`physics`); by
        default :attr:`physics`, else the integrand's ``fingerprint()``.
        """
        if physics is not None:
            self.physics = physics
        torch_save_atomic(self.state_dict(), Path(path), what="checkpoint",
                          error=CheckpointWriteError)

    def load_state(self, path: str | Path, *,
                   physics: Mapping[str, object] | None = None) -> None:
        """Restore a checkpoint written by :meth:`save` (``weights_only=True``).

        Raises :class:`CheckpointError` for a file that is not a readable checkpoint and
        :class:`CheckpointMismatchError` when it was trained on other physics (compared
        when both the checkpoint and this integrator, or ``physics``, have a fingerprint)
        or has other channels or flow shapes.
        """
        path = Path(path)
        self._load_state(read_checkpoint(path), path, physics)

    def _load_state(self, state: dict[str, Any], path: Path,
                    physics: Mapping[str, object] | None) -> None:
        restore_state(self, state, path, physics)

    @classmethod
    def load(cls, path: str | Path, integrand: object | None = None, *,
             physics: Mapping[str, object] | None = None,
             device: str | torch.device = "cpu") -> Integrator:
        """An integrator restored from :meth:`save`, ready to resume.

        ``integrand`` is needed unless the integrator was built from the name of a
        built-in process, which the checkpoint remembers: without it only a built-in
        process is opened, never a path or library named in the file (that raises
        :class:`CheckpointError`). ``physics`` (default: the integrand's fingerprint) is
        compared with the checkpoint's, see :meth:`load_state`. Loading uses
        ``torch.load(..., weights_only=True, map_location="cpu")``, and ``device`` is
        where the restored integrator runs, whichever device trained it.
        """
        path = Path(path)
        state = read_checkpoint(path)
        config = dict(state["config"])
        process = config.pop("process", None)
        if integrand is None:
            if process is None:
                raise CheckpointError(f"{path}: the integrand was not a built-in process "
                                      "name; pass it to Integrator.load(path, integrand)")
            if not isinstance(process, str) or process not in builtin_processes():
                raise CheckpointError(
                    f"{path} names the process {str(process)[:200]!r}, which is not a "
                    "built-in one; a checkpoint never opens a process by itself: pass the "
                    "process or integrand to Integrator.load(path, integrand)")
            # the built-in directory itself: a same-named directory in the working
            # directory must not be picked up
            integrand = load_process(builtin_process_dir(process))
            opened = process
        else:
            opened = None
        flow_options = config.pop("flow_options", {})
        try:
            mc = cls(integrand, flow_options=dict(flow_options), device=device, **config)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: its settings do not build an integrator "
                                  f"({err})") from err
        if opened is not None:
            mc.config["process"] = opened
        mc._load_state(state, path, physics)
        return mc


    def integrate(self, n: int, *, iterations: int = 1,
                  progress: Callable[[int], None] | None = None) -> MultiChannelResult:
        """Estimate the integral with ``n`` integrand calls (stratified over channels),
        in ``iterations`` batches. ``progress(n_i)`` follows every channel's draw of every
        iteration (:meth:`random_batch`): the points drawn, ``n`` in all.

        The batches are independent draws of one density (nothing adapts between them),
        so the estimate pools their points: each channel's mean and variance over all its
        points. Averaging the batches by their estimated errors instead (vegas' rule for
        adapting grids) favours batches that missed the rare large weights, whose
        estimated errors are small with their means: with heavy tails that biases the
        result low (p p > e+ e- j j QCD=0, 1464 channels: -0.7 % at 10^5 points,
        benchmarks/RESULTS.md). chi^2/dof and Q of the batches about the pooled estimate
        check the errors (:func:`~madnis_py.training.results.scatter`)."""
        if n < 2 * self.n_active * iterations:  # dropped channels draw none
            raise ValueError(f"n must be at least 2 per active channel and iteration "
                             f"({2 * self.n_active * iterations})")
        calls, invalid = self.n_calls, self.n_invalid
        # each batch's value and variance (the last batch's channels stay in means, var,
        # points and stds: with one batch they are the estimate)
        values: list[float] = []
        variances: list[float] = []
        events = []
        channels = []
        raw: dict[int, list[np.ndarray]] = {}
        for k in range(iterations):
            m = n // iterations + (1 if k < n % iterations else 0)
            means = np.zeros(self.n_channels)
            var = np.zeros(self.n_channels)
            points = np.zeros(self.n_channels, dtype=np.int64)
            stds = np.zeros(self.n_channels)
            batch = self.random_batch(m, progress=progress)
            event_weights = []
            # one copy to the host per iteration: each channel's weights, event weights,
            # mean and std
            packed = []
            for s in batch.samples:
                w = s.weight.double()
                stats = torch.stack([w.mean(), w.std() if len(w) > 1 else w.new_zeros(())])
                packed += [w, s.event_weight.double(), stats]
            copied = torch.cat(packed).cpu().numpy() if packed else np.zeros(0)
            start = 0
            for s in batch.samples:
                nw = len(s.weight)
                host = copied[start:start + 2 * nw + 2]
                start += 2 * nw + 2
                points[s.channel] = nw
                means[s.channel] = float(host[2 * nw])
                stds[s.channel] = float(host[2 * nw + 1])
                var[s.channel] = stds[s.channel] ** 2 / nw if nw > 1 else math.inf
                raw.setdefault(s.channel, []).append(host[:nw])
                event_weights.append(host[nw:2 * nw])
            events.append(np.concatenate(event_weights))
            channels.append(batch.channels())
            values.append(float(means.sum()))
            variances.append(float(var[points > 0].sum()))
        if all(v == 0 for v in values):
            raise ZeroDivisionError(f"the integral is zero on all {n} points: every integrand "
                                    "value was zero (cuts that remove everything?)")
        if iterations > 1:
            means, var, points, stds = _pooled(raw, self.n_channels)
        value = float(means.sum())
        error = math.sqrt(float(var[points > 0].sum()))
        chi2_dof, q = scatter(np.array(values), np.array(variances), value)
        weights = np.concatenate(events)
        self.last_weights = weights
        self.last_channels = np.concatenate(channels)
        top = float(weights.max())
        q999 = float(np.quantile(weights, 0.999))
        avg = float(weights.mean())
        ch = [i for i in range(self.n_channels) if points[i] > 0]
        self.last_result = MultiChannelResult(
            value=value, error=error,
            channel_values=tuple(float(means[i]) for i in ch),
            channel_errors=tuple(float(math.sqrt(var[i])) for i in ch),
            channel_points=tuple(int(points[i]) for i in ch),
            rel_std=float(stds[ch].sum()) / value if value > 0 else math.inf,
            n_calls=self.n_calls - calls, n_invalid=self.n_invalid - invalid,
            eps_uw=avg / top if top > 0 else math.nan,
            eps_uw_quantile=min(avg / q999, 1.0) if q999 > 0 else math.nan,
            chi2_dof=chi2_dof, Q=q,
            warnings=trust_warnings(weights, raw, chi2_dof, iterations))
        return self.last_result

    def save_history(self, path: str | Path) -> None:
        """The training history (loss, sigma, rel. std, eps_uw of the batch, channel
        fractions per step) as JSON, written atomically."""
        self.history.save(path)
