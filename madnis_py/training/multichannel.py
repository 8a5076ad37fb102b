"""The MadNIS multi-channel integrator: one flow per channel and learnt channel weights.

    sigma = sum_i E_{x ~ q_i}[ alpha_i(x) f_i(x) / q_i(x) ],   sum_i alpha_i = 1,

Heimel et al., arXiv:2212.06172 (MadNIS) and arXiv:2311.01548. Each channel ``i`` has
its own unit hypercube (the channel's phase-space mapping is part of ``f_i``), its own
flow ``q_i`` and its share ``alpha_i`` of the integrand, evaluated on channel-independent
features of the point (the momenta). Training minimises the sum of the channels'
variances (or the stratified variance ``(sum_i sigma_i)^2``) with gradients through
``q`` and ``alpha``, never through ``f``; samples are allocated to channels in
proportion to their standard deviations once a warm-up has measured them.

VEGAS pre-training (:meth:`Integrator.pretrain_vegas`) adapts a ``vegas.AdaptiveMap``
per channel to that channel's share of the integrand; the map then becomes the first
layer of the channel (the flow, identity at the start, is a residual on top), and
:meth:`Integrator.select_flows` keeps per channel whichever of VEGAS alone and VEGAS +
flow has the smaller measured variance, so the result never loses to VEGAS.

Two options bound the largest weights, which set the unweighting efficiency: a defensive
mixture ``q = (1 - lambda) q_flow + lambda`` with the channel's base density (VEGAS after
pre-training, else flat), so that a weight never exceeds its base map's by more than
``1 / lambda``; and a loss term ``max_weight_penalty * sum_i <w_i>_top / sigma`` on the
largest weights of every batch (the top ``top_fraction`` of each channel, scaled by the
stratification factor the event weights carry).

Losses (``loss=``): ``"variance"`` (default), ``"stratified"``, ``"forward_kl"`` and
``"reverse_kl"``. The two KL losses train the flows towards ``p_i = alpha_i f / I_i``; the
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
and opens only built-in processes by itself. A result carries ``warnings`` when its error
cannot be trusted (iterations that disagree, a few dominating weights, a variance whose
own uncertainty is large).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import torch

from madnis_py._atomic import CheckpointWriteError, torch_save_atomic, write_text_atomic
from madnis_py.flows import Flow
from madnis_py.training.channel_weights import ChannelWeights

__all__ = ["LOSSES", "ChannelSample", "CheckpointError", "CheckpointMismatchError",
           "CheckpointWriteError", "IntegrandError", "Integrator", "MultiChannelIntegrand",
           "MultiChannelResult", "allocate"]

#: The training losses of :class:`Integrator`.
LOSSES = ("variance", "stratified", "forward_kl", "reverse_kl")

#: Thresholds of :attr:`MultiChannelResult.warnings`: chi2/dof of >= 3 iterations, the
#: largest event weight's share of the sum, and the relative uncertainty of the
#: variance estimate (from the weights' 4th moment).
TRUST_LIMITS = {"chi2_dof": 5.0, "max_weight_share": 0.1, "variance_rel_error": 0.3}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not a checkpoint, or one that would
    need a process the caller did not name. The message is one line naming the file."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint of other physics or another process (channels, flow shapes); the
    message names the file and the first field that differs, with both values."""


class IntegrandError(ValueError):
    """The integrand returned NaN, an infinite or a negative value."""


class MultiChannelIntegrand(Protocol):
    """``f(x, channel) -> (f (n,), features (n, F), prior (n, C) or None)`` on torch
    float64 points ``x`` (n, dims(channel)); ``n_channels`` and ``dims(channel)``."""

    n_channels: int

    def dims(self, channel: int) -> int: ...

    def __call__(self, x: torch.Tensor, channel: int) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor | None]: ...


@dataclass
class ChannelSample:
    """Weighted points of one channel: ``weight = alpha_i f_i / q_i``."""

    channel: int
    x: torch.Tensor
    features: torch.Tensor
    weight: torch.Tensor


@dataclass(frozen=True)
class MultiChannelResult:
    """sigma with its error and the per-channel pieces.

    Attributes
    ----------
    value, error
        sum_i I_i and sqrt(sum_i sigma_i^2 / n_i).
    channel_values, channel_errors, channel_points
        I_i, its error, and n_i per channel.
    rel_std
        Relative standard deviation of a weight at the optimal (stratified) allocation,
        ``sum_i sigma_i / sigma``: the error is rel_std / sqrt(n) * sigma.
    n_calls
        Integrand calls of this estimate.
    n_invalid
        Always 0: NaN, infinite or negative integrand values raise :class:`IntegrandError`
        (kept for checkpoints and callers of older versions).
    eps_uw, eps_uw_quantile
        Unweighting efficiency <W> / max W of the sample's event weights, and with the
        maximum replaced by the 99.9 % quantile (arXiv:2001.10028).
    chi2_dof
        chi^2 per degree of freedom of the iterations' estimates (``iterations > 1``).
    warnings
        Why the error (or the value) cannot be trusted, one sentence each; empty when no
        test fired (:data:`TRUST_LIMITS`).
    """

    value: float
    error: float
    channel_values: tuple[float, ...]
    channel_errors: tuple[float, ...]
    channel_points: tuple[int, ...]
    rel_std: float
    n_calls: int
    n_invalid: int = 0
    eps_uw: float = math.nan
    eps_uw_quantile: float = math.nan
    chi2_dof: float = math.nan
    warnings: tuple[str, ...] = ()

    def __str__(self) -> str:
        extra = "" if math.isnan(self.eps_uw) else (
            f", eps_uw {self.eps_uw:.3g} ({self.eps_uw_quantile:.3g} with the 99.9% quantile)")
        chi2 = "" if math.isnan(self.chi2_dof) else f", chi2/dof {self.chi2_dof:.2f}"
        text = (f"{self.value:.6g} +- {self.error:.2g} (rel. std {self.rel_std:.3g}, "
                f"{self.n_calls} calls, {len(self.channel_values)} channels{extra}{chi2})")
        return "".join([text] + [f"\nWARNING: {w}" for w in self.warnings])


def allocate(n: int, sigmas: np.ndarray, *, min_fraction: float = 0.05,
             active: np.ndarray | None = None) -> np.ndarray:
    """Points per channel in proportion to ``sigmas`` (stratified sampling), each active
    channel getting at least ``min_fraction / n_active`` of ``n``, dropped channels none;
    sums to ``n`` exactly."""
    c = len(sigmas)
    on = np.ones(c, dtype=bool) if active is None else np.asarray(active, dtype=bool)
    s = np.nan_to_num(np.asarray(sigmas, dtype=np.float64), nan=0.0, posinf=0.0) * on
    share = s / s.sum() if s.sum() > 0 else on / on.sum()
    floor = min_fraction / on.sum()
    share = (floor + (1 - min_fraction) * share) * on
    counts = np.floor(share * n).astype(np.int64)
    rest = np.argsort(-(share * n - counts))
    counts[rest[on[rest]][: n - counts.sum()]] += 1
    return np.asarray(counts, dtype=np.int64)


@dataclass
class _Stored:
    """Samples of one channel kept for the loss: drawn from q_old, integrand evaluated."""

    channel: int
    x: torch.Tensor
    log_q_old: torch.Tensor
    f: torch.Tensor
    features: torch.Tensor
    prior: torch.Tensor | None


def _merge(batches: list[list[_Stored]]) -> list[_Stored]:
    """One _Stored per channel from several batches (the buffer)."""
    by_channel: dict[int, list[_Stored]] = {}
    for batch in batches:
        for st in batch:
            by_channel.setdefault(st.channel, []).append(st)
    out = []
    for c, parts in sorted(by_channel.items()):
        priors = [p.prior for p in parts]
        out.append(_Stored(
            c, torch.cat([p.x for p in parts]), torch.cat([p.log_q_old for p in parts]),
            torch.cat([p.f for p in parts]), torch.cat([p.features for p in parts]),
            None if any(q is None for q in priors)
            else torch.cat([q for q in priors if q is not None])))
    return out


@dataclass
class _History:
    loss: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    rel_std: list[float] = field(default_factory=list)
    eps_uw: list[float] = field(default_factory=list)
    fractions: list[list[float]] = field(default_factory=list)


class _VegasMapped:
    """Channels seen through their VEGAS maps: f_i(V_i(z)) |dV_i/dz| on z in [0,1]^d."""

    def __init__(self, inner: MultiChannelIntegrand, maps: list[Any]) -> None:
        self.inner = inner
        self.maps = maps
        self.n_channels = inner.n_channels
        self.feature_dims = getattr(inner, "feature_dims", None)

    def dims(self, channel: int) -> int:
        return self.inner.dims(channel)

    def map(self, z: torch.Tensor, channel: int) -> tuple[torch.Tensor, torch.Tensor]:
        zn = np.ascontiguousarray(z.detach().cpu().numpy(), dtype=np.float64)
        x = np.empty_like(zn)
        jac = np.empty(len(zn))
        self.maps[channel].map(zn, x, jac)
        return torch.from_numpy(x).to(z), torch.from_numpy(jac).to(z)

    def __call__(self, z: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        x, jac = self.map(z, channel)
        f, features, prior = self.inner(x, channel)
        return f * jac, features, prior


def _check_values(f: torch.Tensor, channel: int) -> None:
    """Refuse NaN, infinite and negative integrand values (see the module docstring)."""
    bad = ~torch.isfinite(f) | (f < 0)
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


def _shape_mismatch(stored: Mapping[str, Any], own: Mapping[str, torch.Tensor],
                    prefix: str) -> str | None:
    """The first parameter whose name or shape differs between two state dicts."""
    for name, tensor in own.items():
        other = stored.get(name)
        if not isinstance(other, torch.Tensor):
            return f"{prefix}.{name} is missing from it"
        if tuple(other.shape) != tuple(tensor.shape):
            return (f"{prefix}.{name} has shape {tuple(other.shape)} there, "
                    f"{tuple(tensor.shape)} here")
    extra = sorted(set(stored) - set(own))
    if extra:
        return f"it has a parameter {prefix}.{extra[0]} this integrator does not"
    return None


def _first_difference(stored: Mapping[str, Any],
                      expected: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first field (in the stored order) where two physics fingerprints differ; only
    fields both have are compared, dictionaries (the cuts) key by key."""
    for key, old in stored.items():
        if key not in expected:
            continue
        new = expected[key]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for sub in sorted(set(old) | set(new)):
                a, b = old.get(sub), new.get(sub)
                if not _same(a, b):
                    return f"{key}[{sub!r}]", a, b
        elif not _same(old, new):
            return key, old, new
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
            isinstance(a, bool) or isinstance(b, bool)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def _show(value: Any) -> str:
    if value is None:
        return "not set"
    return str(value) if isinstance(value, (int, float)) else repr(value)


def _plain(value: Mapping[str, object]) -> dict[str, Any]:
    """A fingerprint as JSON round-trips it (tuples become lists)."""
    return cast(dict[str, Any], json.loads(json.dumps(dict(value))))


_STATE_KEYS = ("flows", "weights", "generator", "sigmas", "counters", "use_flow", "active",
               "config")
_CONFIG_KEYS = {"feature_dims", "flow_options", "trainable_weights", "loss", "lr",
                "min_fraction", "warmup", "drop_threshold", "drop_patience", "mixture",
                "max_weight_penalty", "top_fraction", "seed", "process"}


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return type(err).__name__ + (f": {text.splitlines()[0][:120]}" if text else "")


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """The state dict of a checkpoint, or a one-line :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes; an interrupted "
                              "write by an older version?)")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:
        # torch raises anything from EOFError and OSError('Invalid argument') to
        # UnpicklingError; none of its texts says more than this (the cause stays chained)
        with path.open("rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"
        what = ("a truncated or corrupt checkpoint (its zip archive cannot be read)"
                if zipped else "not a madnis_py checkpoint (another kind of file)")
        raise CheckpointError(f"{path}: {what}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (it holds a "
                              f"{type(state).__name__}, not a state dict)")
    missing = [k for k in _STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (no {missing[0]!r} "
                              "entry)")
    kinds = {"flows": dict, "weights": dict, "sigmas": torch.Tensor,
             "counters": torch.Tensor, "use_flow": torch.Tensor, "active": torch.Tensor,
             "generator": torch.Tensor}
    for key, kind in kinds.items():
        if not isinstance(state[key], kind):
            raise CheckpointError(f"{path}: not a madnis_py checkpoint ({key!r} is a "
                                  f"{type(state[key]).__name__})")
    config = state["config"]
    if not isinstance(config, dict) or not set(config) <= _CONFIG_KEYS or not isinstance(
            config.get("flow_options", {}), dict):
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (its config is not the "
                              "integrator's settings)")
    return state


def _as_channels(integrand: object) -> MultiChannelIntegrand:
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.physics.process import Process

    if isinstance(integrand, (str, Process)):
        integrand = Integrand(integrand)
    if isinstance(integrand, Integrand):
        return TorchChannels(integrand)
    return cast(MultiChannelIntegrand, integrand)


def _trust_warnings(events: np.ndarray, raw: Mapping[int, list[np.ndarray]], chi2: float,
                    iterations: int) -> tuple[str, ...]:
    """Why an estimate cannot be trusted (:data:`TRUST_LIMITS`), one sentence each.

    The variance of the estimated variance of channel ``i`` is (mu4_i - sigma_i^4) / n_i
    (mu4 the central 4th moment of its weights); summed over channels with the weights
    1 / n_i^2 of ``sigma^2 = sum_i sigma_i^2 / n_i`` it gives the relative uncertainty of
    the variance. It falls as 1 / sqrt(n) when the weights have a finite 4th moment and
    stays of order one when a few extreme weights carry the variance (an infinite one).
    """
    out = []
    if iterations >= 3 and chi2 > TRUST_LIMITS["chi2_dof"]:
        out.append(f"chi2/dof = {chi2:.3g} across {iterations} iterations: the iterations "
                   "disagree beyond their errors, so the error is underestimated (a badly "
                   "sampled or divergent integrand; train longer or use more points)")
    total = float(events.sum())
    share = float(events.max()) / total if total > 0 else 0.0
    if share > TRUST_LIMITS["max_weight_share"]:
        out.append(f"one point carries {share:.0%} of the integral: a few weights dominate "
                   "(a divergent integrand, or a peak the sampler misses); neither the value "
                   "nor its error can be trusted")
    variance = var_of_variance = 0.0
    for parts in raw.values():
        w = np.concatenate(parts)
        n = len(w)
        if n < 2:
            continue
        d = w - w.mean()
        m2 = float(np.mean(d ** 2))
        m4 = float(np.mean(d ** 4))
        variance += m2 / n
        var_of_variance += max(m4 - m2 ** 2, 0.0) / n ** 3
    rel = math.sqrt(var_of_variance) / variance if variance > 0 else 0.0
    if rel > TRUST_LIMITS["variance_rel_error"]:
        out.append(f"the variance estimate is itself uncertain by {rel:.0%} (from the "
                   "weights' 4th moment): the weights are heavy-tailed, the variance may be "
                   "infinite, and the error cannot be trusted")
    return tuple(out)


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
        and the other channels share the whole integrand (a message says so).
    seed : int
        Seeds torch's generator used for every draw.

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
    """

    def __init__(self, integrand: MultiChannelIntegrand | str | object, *,
                 feature_dims: int | None = None,
                 flow_options: dict[str, object] | None = None,
                 trainable_weights: bool = True, loss: str = "variance", lr: float = 3e-3,
                 min_fraction: float = 0.1, warmup: int = 20, drop_threshold: float = 1e-4,
                 drop_patience: int = 10, mixture: float = 0.0,
                 max_weight_penalty: float = 0.0, top_fraction: float = 0.01,
                 seed: int = 0) -> None:
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if not 0.0 <= mixture < 1.0:
            raise ValueError(f"mixture must be in [0, 1), got {mixture!r}")
        if max_weight_penalty < 0:
            raise ValueError(f"max_weight_penalty must be >= 0, got {max_weight_penalty!r}")
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction!r}")
        self.config: dict[str, object] = {
            "feature_dims": feature_dims, "flow_options": dict(flow_options or {}),
            "trainable_weights": trainable_weights, "loss": loss, "lr": lr,
            "min_fraction": min_fraction, "warmup": warmup, "drop_threshold": drop_threshold,
            "drop_patience": drop_patience, "mixture": mixture,
            "max_weight_penalty": max_weight_penalty, "top_fraction": top_fraction,
            "seed": seed,
            "process": integrand if isinstance(integrand, str) else None}
        integrand = _as_channels(integrand)
        if feature_dims is None:
            feature_dims = getattr(integrand, "feature_dims", None)
            if feature_dims is None:
                raise ValueError("feature_dims is needed: the integrand has no feature_dims")
        self.config["feature_dims"] = feature_dims
        self.integrand = integrand
        self.n_channels = integrand.n_channels
        opts = dict(flow_options or {})
        self.flows = torch.nn.ModuleList(
            [Flow(integrand.dims(i), **opts) for i in range(self.n_channels)])  # type: ignore[arg-type]
        self.weights = ChannelWeights(self.n_channels, feature_dims,
                                      trainable=trainable_weights)
        self.loss_name = loss
        self.mixture = mixture
        self.max_weight_penalty = max_weight_penalty
        self.top_fraction = top_fraction
        self.lr = lr
        self.min_fraction = min_fraction
        self.warmup = warmup
        self.generator = torch.Generator().manual_seed(seed)
        self.sigmas = np.ones(self.n_channels)
        self.use_flow = [True] * self.n_channels
        self.active = np.ones(self.n_channels, dtype=bool)
        self.drop_threshold = drop_threshold
        self.drop_patience = drop_patience
        self._low_steps = np.zeros(self.n_channels, dtype=np.int64)
        self.vegas_result: MultiChannelResult | None = None
        self.last_result: MultiChannelResult | None = None
        self.seed = seed
        self.n_calls = 0
        self.n_invalid = 0
        self.steps_done = 0
        self.history = _History()
        self.physics: Mapping[str, object] | None = None
        self._own_physics: dict[str, Any] | None | bool = False  # False: not computed yet
        self._training: dict[str, object] | None = None  # the train() call in progress
        self._resume: dict[str, Any] | None = None  # an interrupted one, from a checkpoint

    @property
    def steps_remaining(self) -> int:
        if self._resume is None:
            return 0
        return int(self._resume["steps"]) - int(self._resume["done"])

    def _physics(self) -> dict[str, Any] | None:
        """The fingerprint for checkpoints: :attr:`physics`, else the integrand's own."""
        if self.physics is not None:
            return _plain(self.physics)
        if self._own_physics is False:
            base = self.base_integrand
            own = None
            for obj in (base, getattr(base, "integrand", None)):
                fp = getattr(obj, "fingerprint", None)
                if callable(fp):
                    own = _plain(fp())
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
        return torch.from_numpy(self.active.copy())

    def _drop_small_channels(self, values: np.ndarray, total: float) -> None:
        if self.steps_done < self.warmup or total <= 0:
            return
        low = self.active & (values / total <= self.drop_threshold)
        self._low_steps = np.where(low, self._low_steps + 1, 0)
        for i in np.nonzero(self._low_steps >= self.drop_patience)[0]:
            if self.active.sum() <= 1:
                break
            self.active[i] = False
            print(f"madnis_py: dropping channel {i}: its share of the integral stayed at or "
                  f"below {self.drop_threshold:g} for {self.drop_patience} steps "
                  f"(last {values[i] / total:.3g})")

    def _flow(self, channel: int) -> Flow:
        return cast(Flow, self.flows[channel])

    def _log_q(self, channel: int, x: torch.Tensor) -> torch.Tensor:
        """log density of channel ``channel``'s sampler: the flow, mixed with the base."""
        log_q = self._flow(channel).log_prob(x)
        if self.mixture > 0:
            log_q = torch.logaddexp(log_q + math.log1p(-self.mixture),
                                    torch.full_like(log_q, math.log(self.mixture)))
        return log_q

    def _sample_channel(self, channel: int, n: int) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        flow = self._flow(channel)
        with torch.no_grad():
            if not self.use_flow[channel]:
                x = torch.rand(n, flow.dims, dtype=flow.dtype, generator=self.generator)
                log_q = torch.zeros(n, dtype=flow.dtype)
            elif self.mixture > 0:
                n_base = int((torch.rand(n, dtype=flow.dtype, generator=self.generator)
                              < self.mixture).sum())
                x_flow, _ = flow.sample(n - n_base, generator=self.generator)
                x_base = torch.rand(n_base, flow.dims, dtype=flow.dtype,
                                    generator=self.generator)
                x = torch.cat([x_flow, x_base])
                log_q = self._log_q(channel, x)
            else:
                x, log_q = flow.sample(n, generator=self.generator)
        f, features, prior = self._evaluate(channel, x)
        return x, log_q, f, features, prior

    def _loss(self, samples: list[_Stored]) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """The loss on stored samples, and each channel's integral and weight std.

        Channel i's variance on samples of q_old (fresh, or from the buffer):
        E_old[(alpha f)^2 / (q_old q)] - (E_old[alpha f / q_old])^2, gradients through q
        and alpha only. The KL losses replace the flows' part of it (alpha then sees the
        variance with q held fixed); the largest-weight term is added on top.
        """
        var_terms = []
        kl_terms = []
        top_terms = []
        values = np.zeros(self.n_channels)
        sigmas = np.zeros(self.n_channels)
        active = self._active()
        n_total = sum(len(st.x) for st in samples)
        kl = self.loss_name in ("forward_kl", "reverse_kl")
        for st in samples:
            alpha = self.weights(st.features, st.prior, active)[:, st.channel]
            log_q = self._log_q(st.channel, st.x)
            w_old = alpha * st.f / st.log_q_old.exp()
            ratio = torch.exp(st.log_q_old - log_q)  # q_old / q
            mean = w_old.mean()
            var_terms.append((w_old ** 2 * (ratio.detach() if kl else ratio)).mean()
                             - mean ** 2)
            if self.loss_name == "forward_kl":
                kl_terms.append(-(w_old.detach() * log_q).mean())
            elif self.loss_name == "reverse_kl":
                p = (alpha * st.f).detach()
                floor = 1e-12 * float(p.max()) if float(p.max()) > 0 else 1e-300
                log_p = torch.log(torch.clamp(p, min=floor))
                kl_terms.append(((1 / ratio) * (log_q - log_p)).mean())
            if self.max_weight_penalty > 0:
                k = max(1, math.ceil(self.top_fraction * len(st.x)))
                top = torch.topk(w_old.detach(), k).indices
                top_terms.append((w_old * ratio)[top].mean() * (n_total / len(st.x)))
            with torch.no_grad():
                values[st.channel] = float(mean)
                sigmas[st.channel] = float(w_old.std())
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
        for st, term in zip(samples, kl_terms):
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
              checkpoint_every: int = 50) -> list[float]:
        """Train the flows (and channel weights) for ``steps`` steps of ``batch`` fresh
        points each.

        ``buffered_steps`` extra optimisation steps follow every fresh one on the last
        ``buffer_batches`` batches kept in memory (no new integrand calls; the losses
        reweight them from the density they were drawn from). ``progress`` shows a tqdm
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
        params = list(self.flows.parameters()) + list(self.weights.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        resume, self._resume = self._resume, None
        total, start = steps, 0
        if resume is not None and steps == int(resume["steps"]) - int(resume["done"]):
            total, start = int(resume["steps"]), int(resume["done"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total, 1))
        if start:
            assert resume is not None
            try:
                opt.load_state_dict(resume["optimizer"])
                sched.load_state_dict(resume["scheduler"])
            except (KeyError, TypeError, ValueError) as err:
                raise CheckpointError(f"the checkpoint's optimizer state does not fit this "
                                      f"integrator ({err})") from err
        losses: list[float] = []
        try:
            self._train_steps(steps, start, total, opt, sched, losses, batch=batch,
                              buffered_steps=buffered_steps, buffer_batches=buffer_batches,
                              progress=progress, callback=callback,
                              checkpoint=None if checkpoint is None else Path(checkpoint),
                              checkpoint_every=checkpoint_every)
        finally:
            self._training = None
        return losses

    def _train_steps(self, steps: int, start: int, total: int, opt: torch.optim.Optimizer,
                     sched: torch.optim.lr_scheduler.LRScheduler, losses: list[float], *,
                     batch: int, buffered_steps: int, buffer_batches: int, progress: bool,
                     callback: Callable[[int, float], None] | None, checkpoint: Path | None,
                     checkpoint_every: int) -> None:
        buffer: list[list[_Stored]] = []
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps, desc="training", unit="step")
        for k in range(1, steps + 1):
            uniform = self.steps_done < self.warmup
            counts = allocate(batch, np.ones(self.n_channels) if uniform else self.sigmas,
                              min_fraction=self.min_fraction, active=self.active)
            fresh = []
            for i, n_i in enumerate(counts):
                if n_i >= 2:
                    fresh.append(_Stored(i, *self._sample_channel(i, int(n_i))))
            if not fresh:
                raise ValueError(f"batch {batch} leaves no channel 2 points")
            loss, values, sigmas = self._loss(fresh)
            value = float(values.sum())
            opt.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if buffered_steps > 0:
                buffer = (buffer + [fresh])[-max(buffer_batches, 1):]
                merged = _merge(buffer)
                for _ in range(buffered_steps):
                    extra, _, _ = self._loss(merged)
                    opt.zero_grad()
                    extra.backward()  # type: ignore[no-untyped-call]
                    opt.step()
            sched.step()
            self.sigmas = np.where(counts >= 2, sigmas, self.sigmas)
            self.steps_done += 1
            self._drop_small_channels(values, value)
            losses.append(float(loss.detach()))
            h = self.history
            h.loss.append(losses[-1])
            h.value.append(value)
            h.rel_std.append(float(self.sigmas.sum() / max(value, 1e-300)))
            h.eps_uw.append(self._batch_eps_uw(fresh))
            h.fractions.append((counts / counts.sum()).tolist())
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3g}", rel_std=f"{h.rel_std[-1]:.3g}")
                bar.update()
            if checkpoint is not None and (k % checkpoint_every == 0 or k == steps):
                self._training = {"steps": total, "done": start + k,
                                  "optimizer": opt.state_dict(),
                                  "scheduler": sched.state_dict()}
                self.save(checkpoint)
                self._training = None
            if callback is not None:
                callback(self.steps_done, losses[-1])
        if bar is not None:
            bar.close()

    @property
    def base_integrand(self) -> MultiChannelIntegrand:
        """The integrand the integrator was built on (without the VEGAS maps)."""
        if isinstance(self.integrand, _VegasMapped):
            return self.integrand.inner
        return self.integrand

    def integrand_points(self, channel: int, x: torch.Tensor) -> torch.Tensor:
        """Points ``x`` of a :class:`ChannelSample` in the coordinates of
        :attr:`base_integrand` (through the channel's VEGAS map after pre-training)."""
        if isinstance(self.integrand, _VegasMapped):
            return self.integrand.map(x, channel)[0]
        return x

    def _batch_eps_uw(self, fresh: list[_Stored]) -> float:
        """<W> / max W of a training batch's event weights (stratification included)."""
        n = sum(len(st.x) for st in fresh)
        with torch.no_grad():
            w = torch.cat([self.weights(st.features, st.prior, self._active())[:, st.channel]
                           * st.f / st.log_q_old.exp() * (n / len(st.x)) for st in fresh])
        top = float(w.max())
        return float(w.mean()) / top if top > 0 else math.nan

    def sample(self, n: int) -> list[ChannelSample]:
        """``n`` weighted points, allocated to channels by their current sigmas."""
        counts = allocate(n, self.sigmas, min_fraction=self.min_fraction, active=self.active)
        out = []
        with torch.no_grad():
            for i, n_i in enumerate(counts):
                if n_i == 0:
                    continue
                x, log_q, f, features, prior = self._sample_channel(i, int(n_i))
                alpha = self.weights(features, prior, self._active())[:, i]
                out.append(ChannelSample(i, x, features, alpha * f / log_q.exp()))
        return out

    def pretrain_vegas(self, *, nitn: int = 10, neval: int = 20_000) -> MultiChannelResult:
        """Adapt a VEGAS map per channel to ``prior_i f_i`` and put it under the flows.

        Uses the ``vegas`` package (``vegas.Integrator`` with a batch integrand, seeded
        from this integrator's seed). Returns the VEGAS-only multi-channel estimate of its
        last ``nitn // 2`` iterations (every call counted in ``n_calls``). Call before
        :meth:`train`; the flows start as the identity on top of the maps.
        """
        import vegas

        if isinstance(self.integrand, _VegasMapped):
            raise RuntimeError("pretrain_vegas was already called")
        inner = self.integrand
        maps: list[Any] = []
        values, errors, points = [], [], []
        calls, invalid = self.n_calls, self.n_invalid
        for i in range(self.n_channels):
            rng = np.random.default_rng([self.seed, i])
            dims = inner.dims(i)
            vint = vegas.Integrator([[0.0, 1.0]] * dims,
                                    ran_array_generator=lambda size, r=rng: r.random(size))

            @vegas.lbatchintegrand  # type: ignore[untyped-decorator]
            def share(x: np.ndarray, i: int = i) -> np.ndarray:
                xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
                f, features, prior = self._evaluate(i, xt)
                alpha = self.weights(features, prior, self._active())[:, i].detach()
                return np.asarray((alpha * f).numpy())

            vint(share, nitn=max(nitn - nitn // 2, 1), neval=neval)  # adapt
            res = vint(share, nitn=max(nitn // 2, 1), neval=neval)  # adapt and measure
            maps.append(vint.map)
            values.append(float(res.mean))
            errors.append(float(res.sdev))
            points.append(int(vint.last_neval) * max(nitn // 2, 1))
        self.integrand = cast(MultiChannelIntegrand, _VegasMapped(inner, maps))
        total = sum(values)
        self.vegas_result = MultiChannelResult(
            value=total, error=math.sqrt(sum(e * e for e in errors)),
            channel_values=tuple(values), channel_errors=tuple(errors),
            channel_points=tuple(points),
            rel_std=(sum(e * math.sqrt(n) for e, n in zip(errors, points)) / total
                     if total > 0 else math.inf),
            n_calls=self.n_calls - calls, n_invalid=self.n_invalid - invalid)
        return self.vegas_result

    def select_flows(self, n: int = 20_000) -> list[bool]:
        """Per channel, keep the flow only if it has the smaller measured weight variance
        than its base map (VEGAS after :meth:`pretrain_vegas`, else flat): ``n`` points
        per channel and option, counted in ``n_calls``."""
        choice = []
        for i in range(self.n_channels):
            rel = []
            for flag in (False, True):
                self.use_flow[i] = flag
                x, log_q, f, features, prior = self._sample_channel(i, n)
                with torch.no_grad():
                    w = self.weights(features, prior, self._active())[:, i] * f / log_q.exp()
                rel.append(float(w.std() / w.mean()) if float(w.mean()) > 0 else math.inf)
            self.use_flow[i] = rel[1] < rel[0]
            choice.append(self.use_flow[i])
        return choice

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed run needs: flows, channel weights, allocation, RNG state,
        the history, the physics fingerprint (a JSON string) and, while :meth:`train` is
        running, its optimizer and schedule. Tensors and plain values only, so that
        ``torch.load(..., weights_only=True)`` reads it."""
        physics = self._physics()
        h = self.history
        return {
            "format": 2,
            "flows": self.flows.state_dict(),
            "weights": self.weights.state_dict(),
            "generator": self.generator.get_state(),
            "sigmas": torch.from_numpy(self.sigmas.copy()),
            "counters": torch.tensor([self.n_calls, self.n_invalid, self.steps_done]),
            "use_flow": torch.tensor(self.use_flow),
            "active": torch.from_numpy(self.active.copy()),
            "low_steps": torch.from_numpy(self._low_steps.copy()),
            "config": self.config,
            "physics": None if physics is None else json.dumps(physics, sort_keys=False),
            "history": {"loss": list(h.loss), "value": list(h.value),
                        "rel_std": list(h.rel_std), "eps_uw": list(h.eps_uw),
                        "fractions": [list(f) for f in h.fractions]},
            "training": self._training,
            "result": ({k: (list(v) if isinstance(v, tuple) else v)
                        for k, v in dataclasses.asdict(self.last_result).items()}
                       if self.last_result is not None else None),
            # one tensor per dimension: vegas may give the dimensions different numbers
            # of increments
            "vegas_grids": ([[torch.tensor(np.asarray(g, dtype=np.float64))
                              for g in m.extract_grid()] for m in self.integrand.maps]
                            if isinstance(self.integrand, _VegasMapped) else []),
        }

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
        self._load_state(_read_checkpoint(path), path, physics)

    def _load_state(self, state: dict[str, Any], path: Path,
                    physics: Mapping[str, object] | None) -> None:
        stored_physics = state.get("physics")
        expected = _plain(physics) if physics is not None else self._physics()
        if isinstance(stored_physics, str) and expected is not None:
            try:
                stored = json.loads(stored_physics)
            except ValueError as err:
                raise CheckpointError(f"{path}: its physics fingerprint is not JSON") from err
            if isinstance(stored, dict):
                diff = _first_difference(stored, expected)
                if diff is not None:
                    key, old, new = diff
                    raise CheckpointMismatchError(
                        f"{path} was trained with {key} = {_show(old)}, the card says "
                        f"{_show(new)}; retrain (madnis-py run) or use the card it was "
                        "trained with")
        try:
            n_stored = len(state["sigmas"])
            if n_stored != self.n_channels:
                raise CheckpointMismatchError(
                    f"{path} is a checkpoint of {n_stored} channels, this integrand has "
                    f"{self.n_channels} (another process?); retrain or pass its integrand")
            for prefix, module in (("flows", self.flows), ("weights", self.weights)):
                why = _shape_mismatch(state[prefix], module.state_dict(), prefix)
                if why is not None:
                    raise CheckpointMismatchError(
                        f"{path} does not fit this integrator: {why} (another process or "
                        "other flow_options?)")
            try:
                self.flows.load_state_dict(state["flows"])
                self.weights.load_state_dict(state["weights"])
            except RuntimeError as err:
                raise CheckpointMismatchError(
                    f"{path} does not fit this integrator (another process or other "
                    f"flow_options?): {str(err).splitlines()[0]}") from err
            self.generator.set_state(state["generator"])
            self.sigmas = state["sigmas"].numpy().astype(np.float64).copy()
            self.n_calls, self.n_invalid, self.steps_done = (
                int(v) for v in state["counters"])
            self.use_flow = [bool(v) for v in state["use_flow"]]
            self.active = state["active"].numpy().astype(bool).copy()
            if "low_steps" in state:
                self._low_steps = state["low_steps"].numpy().astype(np.int64).copy()
            history = state.get("history")
            if history is not None:
                self.history = _History(
                    loss=[float(v) for v in history["loss"]],
                    value=[float(v) for v in history["value"]],
                    rel_std=[float(v) for v in history["rel_std"]],
                    eps_uw=[float(v) for v in history["eps_uw"]],
                    fractions=[[float(v) for v in f] for f in history["fractions"]])
            training = state.get("training")
            self._resume = (training if isinstance(training, dict)
                            and int(training["done"]) < int(training["steps"]) else None)
            result = state.get("result")
            known = {f.name for f in dataclasses.fields(MultiChannelResult)}
            fields: dict[str, Any] = ({} if result is None else
                                      {k: (tuple(v) if isinstance(v, list) else v)
                                       for k, v in result.items() if k in known})
            self.last_result = None if result is None else MultiChannelResult(**fields)
            grids = state.get("vegas_grids", [])
            if grids:
                import vegas

                inner = (self.integrand.inner if isinstance(self.integrand, _VegasMapped)
                         else self.integrand)
                maps = [vegas.AdaptiveMap([g.numpy() for g in grid]) for grid in grids]
                self.integrand = cast(MultiChannelIntegrand, _VegasMapped(inner, maps))
        except CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, IndexError,
                RuntimeError) as err:
            raise CheckpointError(f"{path}: a damaged or incompatible madnis_py checkpoint "
                                  f"({_one_line(err)})") from err
        if physics is not None:
            self.physics = physics

    @classmethod
    def load(cls, path: str | Path, integrand: object | None = None, *,
             physics: Mapping[str, object] | None = None) -> Integrator:
        """An integrator restored from :meth:`save`, ready to resume.

        ``integrand`` is needed unless the integrator was built from the name of a
        built-in process, which the checkpoint remembers: without it only a built-in
        process is opened, never a path or library named in the file (that raises
        :class:`CheckpointError`). ``physics`` (default: the integrand's fingerprint) is
        compared with the checkpoint's, see :meth:`load_state`. Loading uses
        ``torch.load(..., weights_only=True)``.
        """
        from madnis_py.physics.builtin import builtin_process_dir, builtin_processes
        from madnis_py.physics.process import load_process

        path = Path(path)
        state = _read_checkpoint(path)
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
            mc = cls(integrand, flow_options=dict(flow_options), **config)
        except TypeError as err:
            raise CheckpointError(f"{path}: its settings do not build an integrator "
                                  f"({err})") from err
        if opened is not None:
            mc.config["process"] = opened
        mc._load_state(state, path, physics)
        return mc

    def integrate(self, n: int, *, iterations: int = 1) -> MultiChannelResult:
        """Estimate the integral with ``n`` integrand calls (stratified over channels),
        in ``iterations`` batches combined by their errors (chi^2 across them)."""
        if n < 2 * self.n_channels * iterations:
            raise ValueError(f"n must be at least 2 per channel and iteration "
                             f"({2 * self.n_channels * iterations})")
        calls, invalid = self.n_calls, self.n_invalid
        per_iter = []
        events = []
        raw: dict[int, list[np.ndarray]] = {}
        for k in range(iterations):
            m = n // iterations + (1 if k < n % iterations else 0)
            means = np.zeros(self.n_channels)
            var = np.zeros(self.n_channels)
            points = np.zeros(self.n_channels, dtype=np.int64)
            stds = np.zeros(self.n_channels)
            for s in self.sample(m):
                w = s.weight.double()
                points[s.channel] = len(w)
                means[s.channel] = float(w.mean())
                stds[s.channel] = float(w.std()) if len(w) > 1 else 0.0
                var[s.channel] = stds[s.channel] ** 2 / len(w) if len(w) > 1 else math.inf
                events.append(w.numpy() * (m / len(w)))
                raw.setdefault(s.channel, []).append(w.numpy())
            per_iter.append((means, var, points, stds))
        totals = np.array([p[0].sum() for p in per_iter])
        variances = np.array([p[1][p[2] > 0].sum() for p in per_iter])
        if np.all(totals == 0):
            raise ZeroDivisionError(f"the integral is zero on all {n} points: every integrand "
                                    "value was zero (cuts that remove everything?)")
        if iterations == 1:
            value, error, chi2 = float(totals[0]), math.sqrt(variances[0]), math.nan
            means, var, points, stds = per_iter[0]
        else:
            wgt = 1 / np.maximum(variances, 1e-300)
            value = float((wgt * totals).sum() / wgt.sum())
            error = float(1 / math.sqrt(wgt.sum()))
            chi2 = float((wgt * (totals - value) ** 2).sum() / (iterations - 1))
            points = np.sum([p[2] for p in per_iter], axis=0)
            means = np.sum([p[0] * p[2] for p in per_iter], axis=0) / np.maximum(points, 1)
            with np.errstate(divide="ignore"):
                inv = np.sum([np.where(p[2] > 0, 1 / p[1], 0.0) for p in per_iter], axis=0)
            var = 1 / np.maximum(inv, 1e-300)
            stds = np.sqrt(var * points)
        weights = np.concatenate(events)
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
            chi2_dof=chi2,
            warnings=_trust_warnings(weights, raw, chi2, iterations))
        return self.last_result

    def save_history(self, path: str | Path) -> None:
        """The training history (loss, sigma, rel. std, eps_uw of the batch, channel
        fractions per step) as JSON, written atomically."""
        path = Path(path)
        write_text_atomic(path, json.dumps({"loss": self.history.loss,
                                            "value": self.history.value,
                                            "rel_std": self.history.rel_std,
                                            "eps_uw": self.history.eps_uw,
                                            "fractions": self.history.fractions}),
                          what="training history")

    def plot_history(self, path: str | Path) -> None:
        """Plot the training history (loss, rel. std, channel fractions) to an image."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        h = self.history
        fig, axes = plt.subplots(1, 5, figsize=(21, 3.5))
        axes[0].semilogy(h.loss)
        axes[0].set(xlabel="step", ylabel="loss")
        axes[1].plot(h.value)
        axes[1].set(xlabel="step", ylabel="integral of the batch")
        axes[2].semilogy(h.rel_std)
        axes[2].set(xlabel="step", ylabel="rel. std (stratified)")
        axes[3].plot(h.eps_uw)
        axes[3].set(xlabel="step", ylabel="eps_uw of the batch")
        if h.fractions:
            frac = np.array(h.fractions)
            for i in range(frac.shape[1]):
                axes[4].plot(frac[:, i], label=f"channel {i}")
            axes[4].legend()
        axes[4].set(xlabel="step", ylabel="fraction of the batch")
        fig.tight_layout()
        fig.savefig(Path(path))
        plt.close(fig)
