"""The training history of the multi-channel integrator: one entry per training step,
kept in checkpoints and written as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from madnis_py._atomic import write_text_atomic

__all__ = ["History"]


@dataclass
class History:
    """Per training step: the loss, the batch's integral, the relative std at the
    stratified allocation, the batch's unweighting efficiency and the channel fractions
    of the batch."""

    loss: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    rel_std: list[float] = field(default_factory=list)
    eps_uw: list[float] = field(default_factory=list)
    fractions: list[list[float]] = field(default_factory=list)

    def append(self, *, loss: float, value: float, rel_std: float, eps_uw: float,
               fractions: list[float]) -> None:
        """Record one step."""
        self.loss.append(loss)
        self.value.append(value)
        self.rel_std.append(rel_std)
        self.eps_uw.append(eps_uw)
        self.fractions.append(fractions)

    def to_dict(self) -> dict[str, Any]:
        """Plain lists (for checkpoints and JSON)."""
        return {"loss": list(self.loss), "value": list(self.value),
                "rel_std": list(self.rel_std), "eps_uw": list(self.eps_uw),
                "fractions": [list(f) for f in self.fractions]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> History:
        """The history of :meth:`to_dict` (KeyError or TypeError when it is not one)."""
        return cls(loss=[float(v) for v in data["loss"]],
                   value=[float(v) for v in data["value"]],
                   rel_std=[float(v) for v in data["rel_std"]],
                   eps_uw=[float(v) for v in data["eps_uw"]],
                   fractions=[[float(v) for v in f] for f in data["fractions"]])

    def save(self, path: str | Path) -> None:
        """Write the history as JSON, atomically."""
        write_text_atomic(Path(path), json.dumps(self.to_dict()), what="training history")
