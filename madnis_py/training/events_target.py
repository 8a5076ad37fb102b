"""The ``target="events"`` side of training: stop when the wall time to N events no longer
falls.

:meth:`Integrator.train <madnis_py.training.multichannel.Integrator.train>` with
``target="events"`` hands every step's event weights to an :class:`EventsTarget`, which
measures the generation cost (unweighting efficiency and points per second of fresh
draws) every ``measure_every`` steps, asks the
:class:`~madnis_py.training.stopping.StoppingRule` whether to go on, and keeps the flows
and channel weights of the best measurement (or returns to the base maps alone when the
flows do not pay). The rule itself is numbers only (:mod:`madnis_py.training.stopping`);
this is the part that draws and restores.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch

from madnis_py.events.unweight import DEFAULT_TRUNCATION, check_truncation
from madnis_py.training.stopping import (
    PROBE_SHARE,
    Measurement,
    StoppingRule,
    TrainingDecision,
    truncation_efficiency,
)

if TYPE_CHECKING:
    from madnis_py.training.multichannel import Integrator

__all__ = ["EventsTarget"]


class EventsTarget:
    """The ``target="events"`` side of :meth:`Integrator.train`: measures the generation
    cost, asks the :class:`~madnis_py.training.stopping.StoppingRule` and keeps the
    flows and channel weights of the best measurement."""

    def __init__(self, mc: Integrator, steps: int, *, n_events: int, measure_every: int,
                 measure_points: int, patience: int, explore: float,
                 t_start: float, batch: int = 4096,
                 truncation: float = DEFAULT_TRUNCATION) -> None:
        if measure_every < 1:
            raise ValueError(f"measure_every must be >= 1, got {measure_every}")
        if measure_points < 2 * mc.n_channels:
            raise ValueError(f"measure_points must be >= 2 per channel "
                             f"({2 * mc.n_channels}), got {measure_points}")
        check_truncation(truncation)
        self.mc = mc
        self.steps = steps
        self.truncation = truncation  # of the efficiency measured: the unweighting's
        self.every = measure_every
        self.points = measure_points
        self.batch = batch
        self.rule = StoppingRule(n_events, patience=patience, explore=explore)
        self.t0 = t_start  # the train() call's start: its set-up counts as training time
        self.reason: str | None = None
        self.best_state: tuple[dict[str, torch.Tensor], dict[str, torch.Tensor],
                               np.ndarray] | None = None
        # the allocation the base maps were measured with: training overwrites the
        # channels' sigmas with those of the flows' draws
        self.base_sigmas = mc.sigmas.copy()
        # and the channel weights the VEGAS maps were adapted to (alpha_i f)
        self.base_weights = {n: v.clone() for n, v in mc.weights.state_dict().items()}
        self.best_total = math.inf
        self.flags = mc.use_flow
        self.flow_points = 0
        self.flow_s = 0.0
        self.window: list[np.ndarray] = []  # the window's training event weights
        self.previous: list[np.ndarray] = []  # the last flow measurement's weights
        self.t_steps = 0.0  # when the first training step began (the probe's clock)

    def _measure(self, steps: int) -> Measurement:
        """Efficiency and rate of ``measure_points`` fresh weighted events. The
        efficiency pools them with the event weights of the window's training batches
        and of the previous flow measurement (free, and drawn from slightly less trained
        flows): the truncation-defined ``w_max`` of a heavy-tailed sample that missed
        its rare large weights is too low, and the best of a noisy series is picked."""
        t = time.perf_counter()
        with torch.no_grad():
            weights = self.mc.random_batch(self.points).weights()
        dt = max(time.perf_counter() - t, 1e-9)
        if steps:  # the flows' cost per point does not change with training: pooled
            self.flow_points += self.points
            self.flow_s += dt
            rate = self.flow_points / self.flow_s
        else:
            rate = self.points / dt
        eps = truncation_efficiency(np.concatenate([weights, *self.window, *self.previous]),
                                    self.truncation)
        self.window = []
        self.previous = [weights] if steps else []
        return Measurement(steps=steps, train_s=time.perf_counter() - self.t0, eps=eps,
                           rate=rate)

    def start(self) -> bool:
        """Measure the base maps alone; False when there is no training to do."""
        self.mc.use_flow = [False] * self.mc.n_channels
        try:
            self.rule.set_base(self._measure(0))
        finally:
            self.mc.use_flow = self.flags
        if self.steps == 0:
            self.reason = "max_steps"
            return False
        probe = min(self.every, self.steps) * self.batch + self.points
        probe_s = min(self.every, self.steps) * self._fixed_step_s()
        if not self.rule.worth_probing(probe, probe_s):  # nothing a flow could win pays
            self.mc.use_flow = [False] * self.mc.n_channels
            self.reason = "vegas_alone"
            return False
        self.t_steps = time.perf_counter()  # (train() resets it once its optimiser exists)
        return True

    def _fixed_step_s(self) -> float:
        """A lower bound of a training step's seconds before any step: what every step
        costs whatever its batch, one channel's flow evaluated and differentiated at a
        few points (the fastest of three), times the channels whose flows train. A step
        of p p > e+ e- j j QCD=0 (1608 channels, 2.5 points each) took 24 s (then 62 s)
        when its integrand calls alone gave the probe 1 s, and a perfect flow could have
        saved 5 s."""
        training = [s.flow for s, on in zip(self.mc.samplers, self.mc.active, strict=True)
                    if on and s.use_flow]
        if not training:
            return 0.0
        flow = training[0]
        z = torch.full((4, flow.dims), 0.5, dtype=flow.dtype, device=flow.device)
        fastest = math.inf
        for _ in range(3):
            t = time.perf_counter()
            flow.log_prob(z).sum().backward()  # type: ignore[no-untyped-call]
            fastest = min(fastest, time.perf_counter() - t)
        flow.zero_grad(set_to_none=True)
        return fastest * len(training)

    def _probe_pays(self) -> bool:
        """After the first step: whether the probe, its steps at this step's time and
        its measurement at the base rate, still costs less than a share
        :data:`~madnis_py.training.stopping.PROBE_SHARE` of what a perfect flow could
        save."""
        base = self.rule.base
        assert base is not None
        step_s = time.perf_counter() - self.t_steps
        probe_s = min(self.every, self.steps) * step_s + self.points / max(base.rate, 1e-300)
        return self.rule.worth_probing(0, probe_s, share=PROBE_SHARE)

    def after_step(self, k: int, event_weights: torch.Tensor) -> bool:
        """After step ``k`` of this call (its batch's event weights): measure every
        ``measure_every`` steps (and after the last); True to stop."""
        self.window.append(event_weights.double().cpu().numpy())
        if k == 1 and not self.rule.measurements and not self._probe_pays():
            self._vegas_alone()
            self.reason = "vegas_alone"
            return True
        if k % self.every and k != self.steps:
            return False
        reason = self.rule.add(self._measure(k))
        total = self.rule.smoothed[-1].total_s(self.rule.n_events)
        if total < self.best_total:
            self.best_total = total
            self.best_state = ({n: v.clone() for n, v in self.mc.flows.state_dict().items()},
                               {n: v.clone() for n, v in self.mc.weights.state_dict().items()},
                               self.mc.sigmas.copy())
        if len(self.rule.measurements) == 1 and not self.rule.flows_start():
            reason = "vegas_alone"
        elif reason is None and k == self.steps:
            reason = "max_steps"
        if reason is None:
            return False
        if reason == "vegas_alone" or not self.rule.flows_win():
            self._vegas_alone()
            reason = "vegas_alone"
        elif self.best_state is not None:
            self.mc.flows.load_state_dict(self.best_state[0])
            self.mc.weights.load_state_dict(self.best_state[1])
            self.mc.sigmas = self.best_state[2].copy()
        self.reason = reason
        return True

    def _vegas_alone(self) -> None:
        """Back to the base maps, their allocation and channel weights."""
        self.mc.use_flow = [False] * self.mc.n_channels
        self.mc.sigmas = self.base_sigmas.copy()
        self.mc.weights.load_state_dict(self.base_weights)

    def decision(self) -> TrainingDecision:
        rule = self.rule
        assert rule.base is not None
        chosen = rule.base if self.reason == "vegas_alone" else (rule.best or rule.base)
        elapsed = time.perf_counter() - self.t0
        steps = rule.measurements[-1].steps if rule.measurements else 0
        return TrainingDecision(
            target="events", reason=self.reason or "max_steps", steps=steps,
            chosen_steps=chosen.steps,
            predicted_total_s=elapsed + chosen.generation_s(rule.n_events),
            n_events=rule.n_events, use_flow=self.reason != "vegas_alone",
            eps_base=rule.base.eps, eps_final=chosen.eps,
            measurements=[asdict(rule.base)] + [
                {**asdict(m), "eps_smoothed": sm.eps}
                for m, sm in zip(rule.measurements, rule.smoothed, strict=True)])
