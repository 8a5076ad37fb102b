"""The MadNIS multi-channel integrator: one flow per channel and learnt channel weights.

    sigma = sum_i E_{x ~ q_i}[ alpha_i(x) f_i(x) / q_i(x) ],   sum_i alpha_i = 1,

Heimel et al., arXiv:2212.06172 (MadNIS) and arXiv:2311.01548. Each channel ``i`` has
its own unit hypercube (the channel's phase-space mapping is part of ``f_i``), its own
flow ``q_i`` and its share ``alpha_i`` of the integrand, evaluated on channel-independent
features of the point (the momenta). Training minimises the sum of the channels'
variances (or the stratified variance ``(sum_i sigma_i)^2``) with gradients through
``q`` and ``alpha``, never through ``f``; samples are allocated to channels in
proportion to their standard deviations once a warm-up has measured them.

Status: the core loop (flows, channel weights, variance losses, stratified allocation,
the estimate with per-channel errors, weighted samples). VEGAS pre-training, buffered
training, channel dropping and checkpoints are the next steps of this issue.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

import numpy as np
import torch

from madnis_py.flows import Flow
from madnis_py.training.channel_weights import ChannelWeights

__all__ = ["ChannelSample", "Integrator", "MultiChannelIntegrand", "MultiChannelResult",
           "allocate"]


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
        Points whose integrand was NaN, inf or negative (set to zero, reported).
    """

    value: float
    error: float
    channel_values: tuple[float, ...]
    channel_errors: tuple[float, ...]
    channel_points: tuple[int, ...]
    rel_std: float
    n_calls: int
    n_invalid: int = 0

    def __str__(self) -> str:
        return (f"{self.value:.6g} +- {self.error:.2g} (rel. std {self.rel_std:.3g}, "
                f"{self.n_calls} calls, {len(self.channel_values)} channels)")


def allocate(n: int, sigmas: np.ndarray, *, min_fraction: float = 0.05) -> np.ndarray:
    """Points per channel in proportion to ``sigmas`` (stratified sampling), each channel
    getting at least ``min_fraction / n_channels`` of ``n``; sums to ``n`` exactly."""
    c = len(sigmas)
    s = np.nan_to_num(np.asarray(sigmas, dtype=np.float64), nan=0.0, posinf=0.0)
    share = s / s.sum() if s.sum() > 0 else np.full(c, 1.0 / c)
    floor = min_fraction / c
    share = floor + (1 - min_fraction) * share
    counts = np.floor(share * n).astype(np.int64)
    counts[np.argsort(-(share * n - counts))[: n - counts.sum()]] += 1
    return counts


@dataclass
class _History:
    loss: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    rel_std: list[float] = field(default_factory=list)
    fractions: list[list[float]] = field(default_factory=list)


def _as_channels(integrand: object) -> MultiChannelIntegrand:
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.physics.process import Process

    if isinstance(integrand, (str, Process)):
        integrand = Integrand(integrand)
    if isinstance(integrand, Integrand):
        return TorchChannels(integrand)
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
    loss : {"variance", "stratified"}
        Sum of the channels' relative variances, or the stratified ``(sum_i sigma_i)^2``.
    lr : float
        Adam learning rate (cosine decay over each :meth:`train` call).
    min_fraction : float
        Smallest share of a batch any channel gets.
    warmup : int
        Training steps with a uniform allocation before it follows the channels' sigmas.
    seed : int
        Seeds torch's generator used for every draw.
    """

    def __init__(self, integrand: MultiChannelIntegrand | str | object, *,
                 feature_dims: int | None = None,
                 flow_options: dict[str, object] | None = None,
                 trainable_weights: bool = True, loss: str = "variance", lr: float = 3e-3,
                 min_fraction: float = 0.1, warmup: int = 20, seed: int = 0) -> None:
        if loss not in ("variance", "stratified"):
            raise ValueError(f"loss must be 'variance' or 'stratified', got {loss!r}")
        integrand = _as_channels(integrand)
        if feature_dims is None:
            feature_dims = getattr(integrand, "feature_dims", None)
            if feature_dims is None:
                raise ValueError("feature_dims is needed: the integrand has no feature_dims")
        self.integrand = integrand
        self.n_channels = integrand.n_channels
        opts = dict(flow_options or {})
        self.flows = torch.nn.ModuleList(
            [Flow(integrand.dims(i), **opts) for i in range(self.n_channels)])  # type: ignore[arg-type]
        self.weights = ChannelWeights(self.n_channels, feature_dims,
                                      trainable=trainable_weights)
        self.loss_name = loss
        self.lr = lr
        self.min_fraction = min_fraction
        self.warmup = warmup
        self.generator = torch.Generator().manual_seed(seed)
        self.sigmas = np.ones(self.n_channels)
        self.n_calls = 0
        self.n_invalid = 0
        self.steps_done = 0
        self.history = _History()

    def _evaluate(self, channel: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor | None]:
        f, features, prior = self.integrand(x, channel)
        self.n_calls += len(x)
        bad = ~torch.isfinite(f) | (f < 0)
        if bool(bad.any()):
            count = int(bad.sum())
            self.n_invalid += count
            warnings.warn(f"channel {channel}: {count} integrand value(s) NaN, inf or "
                          "negative; set to zero and left out of the loss", RuntimeWarning,
                          stacklevel=3)
            f = torch.where(bad, torch.zeros_like(f), f)
        return f, features, prior

    def _flow(self, channel: int) -> Flow:
        return cast(Flow, self.flows[channel])

    def _sample_channel(self, channel: int, n: int) -> tuple[
            torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        flow = self._flow(channel)
        with torch.no_grad():
            x, log_q = flow.sample(n, generator=self.generator)
        f, features, prior = self._evaluate(channel, x)
        return x, log_q, f, features, prior

    def train(self, steps: int, *, batch: int = 4096,
              callback: Callable[[int, float], None] | None = None) -> list[float]:
        """Train the flows (and channel weights) for ``steps`` steps of ``batch`` points."""
        params = list(self.flows.parameters()) + list(self.weights.parameters())
        opt = torch.optim.Adam(params, lr=self.lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        losses = []
        for _ in range(steps):
            uniform = self.steps_done < self.warmup
            counts = allocate(batch, np.ones(self.n_channels) if uniform else self.sigmas,
                              min_fraction=self.min_fraction)
            terms = []
            value = 0.0
            sigmas = np.zeros(self.n_channels)
            for i, n_i in enumerate(counts):
                if n_i < 2:
                    continue
                x, log_q_old, f, features, prior = self._sample_channel(i, int(n_i))
                alpha = self.weights(features, prior)[:, i]
                log_q = self._flow(i).log_prob(x)
                # Weights and variance of channel i on samples of q_old:
                # E_old[(alpha f)^2 / (q_old q)] - (E_old[alpha f / q_old])^2.
                w_old = alpha * f / log_q_old.exp()
                second = (w_old ** 2 * torch.exp(log_q_old - log_q)).mean()
                mean = w_old.mean()
                terms.append((second - mean ** 2, n_i))
                with torch.no_grad():
                    value += float(mean)
                    sigmas[i] = float(w_old.std())
            if not terms:
                raise ValueError(f"batch {batch} leaves no channel 2 points")
            scale = max(value, 1e-300) ** 2
            if self.loss_name == "variance":
                loss = sum(v for v, _ in terms) / scale
            else:
                loss = sum(torch.sqrt(torch.clamp(v, min=0.0) + 1e-300 * scale)
                           for v, _ in terms) ** 2 / scale
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            self.sigmas = np.where(counts >= 2, sigmas, self.sigmas)
            self.steps_done += 1
            losses.append(float(loss.detach()))
            h = self.history
            h.loss.append(losses[-1])
            h.value.append(value)
            h.rel_std.append(float(self.sigmas.sum() / max(value, 1e-300)))
            h.fractions.append((counts / counts.sum()).tolist())
            if callback is not None:
                callback(self.steps_done, losses[-1])
        return losses

    def sample(self, n: int) -> list[ChannelSample]:
        """``n`` weighted points, allocated to channels by their current sigmas."""
        counts = allocate(n, self.sigmas, min_fraction=self.min_fraction)
        out = []
        with torch.no_grad():
            for i, n_i in enumerate(counts):
                if n_i == 0:
                    continue
                x, log_q, f, features, prior = self._sample_channel(i, int(n_i))
                alpha = self.weights(features, prior)[:, i]
                out.append(ChannelSample(i, x, features, alpha * f / log_q.exp()))
        return out

    def state_dict(self) -> dict[str, object]:
        """Everything a resumed run needs: flows, channel weights, allocation, RNG state."""
        return {
            "flows": self.flows.state_dict(),
            "weights": self.weights.state_dict(),
            "generator": self.generator.get_state(),
            "sigmas": torch.from_numpy(self.sigmas.copy()),
            "counters": torch.tensor([self.n_calls, self.n_invalid, self.steps_done]),
        }

    def save(self, path: str | Path) -> None:
        """Write a checkpoint (to a temporary name, renamed when complete)."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        torch.save(self.state_dict(), tmp)
        tmp.replace(path)

    def load_state(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (``weights_only=True``)."""
        state = torch.load(Path(path), weights_only=True)
        self.flows.load_state_dict(state["flows"])
        self.weights.load_state_dict(state["weights"])
        self.generator.set_state(state["generator"])
        self.sigmas = state["sigmas"].numpy().copy()
        self.n_calls, self.n_invalid, self.steps_done = (int(v) for v in state["counters"])

    def integrate(self, n: int) -> MultiChannelResult:
        """Estimate the integral with ``n`` integrand calls (stratified over channels)."""
        if n < 2 * self.n_channels:
            raise ValueError(f"n must be at least 2 per channel ({2 * self.n_channels})")
        calls, invalid = self.n_calls, self.n_invalid
        values, errors, points, sigmas = [], [], [], []
        for s in self.sample(n):
            w = s.weight.double()
            k = len(w)
            mean = float(w.mean())
            std = float(w.std()) if k > 1 else 0.0
            values.append(mean)
            sigmas.append(std)
            errors.append(std / math.sqrt(k) if k > 1 else math.inf)
            points.append(k)
        total = float(sum(values))
        error = math.sqrt(sum(e * e for e in errors))
        return MultiChannelResult(
            value=total, error=error, channel_values=tuple(values),
            channel_errors=tuple(errors), channel_points=tuple(points),
            rel_std=sum(sigmas) / total if total > 0 else math.inf,
            n_calls=self.n_calls - calls, n_invalid=self.n_invalid - invalid)
