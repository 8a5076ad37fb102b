"""The options of the multi-channel integrator, in one table.

:class:`TrainingOptions` is the one place where an integrator option is named, given its
default and checked: :class:`~madnis_py.training.Integrator` builds one from its keyword
arguments, a checkpoint stores it (``config``), and the run card's ``[training]`` table
reads its keys with :data:`OPTION_CHECKS` and hands them over through it. A new option
is a field here (plus, where it needs one, a check).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from madnis_py.training.losses import LOSSES

__all__ = ["OPTION_CHECKS", "TrainingOptions"]


#: ``field -> (what is expected, test)`` for the options with a constraint; the test is
#: applied to the value (the run card reports the expectation with its file and line).
OPTION_CHECKS: Mapping[str, tuple[str, Callable[[Any], bool]]] = {
    "loss": (f"one of {', '.join(LOSSES)}", lambda v: isinstance(v, str) and v in LOSSES),
    "lr": ("a learning rate > 0", lambda v: v > 0),
    "min_fraction": ("0 <= min_fraction < 1", lambda v: 0 <= v < 1),
    "warmup": ("an integer >= 0", lambda v: v >= 0),
    "drop_threshold": ("a share >= 0", lambda v: v >= 0),
    "drop_patience": ("an integer >= 1", lambda v: v >= 1),
    "mixture": ("0 <= mixture < 1", lambda v: 0 <= v < 1),
    "uniform_mixture": ("0 <= uniform_mixture < 1", lambda v: 0 <= v < 1),
    "max_weight_penalty": ("a coefficient >= 0", lambda v: v >= 0),
    "top_fraction": ("0 < top_fraction <= 1", lambda v: 0 < v <= 1),
    "max_grad_norm": ("a gradient norm >= 0 (0: no clipping)", lambda v: v >= 0),
    "freeze_weights_after": ("a share of the steps, 0 <= freeze_weights_after <= 1",
                             lambda v: 0 <= v <= 1),
}


@dataclass(frozen=True)
class TrainingOptions:
    """The integrator's options (see :class:`~madnis_py.training.Integrator` for their
    meaning); invalid values raise a ValueError naming the field.

    Attributes
    ----------
    flow_options : dict
        Keyword arguments of :class:`madnis_py.Flow` for every channel.
    trainable_weights : bool
    loss : str
        A name of :data:`~madnis_py.training.losses.LOSSES`.
    lr, min_fraction, warmup, drop_threshold, drop_patience : float, float, int, float, int
    mixture : float
        Share of the channel's base map (VEGAS or flat) in its defensive mixture.
    uniform_mixture : float
        Share of the uniform density in the integrand's coordinates in it
        (``mixture + uniform_mixture < 1``).
    max_weight_penalty, top_fraction : float, float
    max_grad_norm : float
        Largest L2 norm of the gradient of all trained parameters together in an
        optimisation step (``torch.nn.utils.clip_grad_norm_``); 0 switches clipping off.
    freeze_weights_after : float
        Share of each :meth:`~madnis_py.training.Integrator.train` call's steps after which
        the channel-weight network stops training (the flows go on); 1 never freezes it.
    seed : int
    """

    flow_options: dict[str, object] = field(default_factory=dict)
    trainable_weights: bool = True
    loss: str = "variance"
    lr: float = 3e-3
    min_fraction: float = 0.1
    warmup: int = 20
    drop_threshold: float = 1e-2  # MadGraph 7's; benchmarks/RESULTS.md
    drop_patience: int = 10
    mixture: float = 0.0
    uniform_mixture: float = 0.0
    max_weight_penalty: float = 0.0
    top_fraction: float = 0.01
    max_grad_norm: float = 3e-3  # MadGraph 7's; benchmarks/RESULTS.md
    freeze_weights_after: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name, (expected, test) in OPTION_CHECKS.items():
            value = getattr(self, name)
            try:
                ok = bool(test(value))
            except TypeError:
                ok = False
            if not ok:
                raise ValueError(f"{name} must be {expected}, got {value!r}")
        if self.mixture + self.uniform_mixture >= 1:
            raise ValueError(f"mixture + uniform_mixture must be < 1 (the flow needs a "
                             f"share), got {self.mixture!r} + {self.uniform_mixture!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        """The options as plain keyword arguments (``flow_options`` copied)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["flow_options"] = dict(self.flow_options)
        return out
