"""Integrand recipes: what a Dask worker needs to build an integrand, and its cache.

Workers rebuild the integrand from a small picklable :class:`IntegrandSpec` (a process
name or card path and the integrand's options) and keep it in a per-process cache, so the
matrix-element library is loaded once per worker, not once per task; numpy arrays travel,
torch modules never do.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from madnis_py.cards.run_card import RunCard
    from madnis_py.integrand import Integrand, TorchChannels

__all__ = ["IntegrandSource", "IntegrandSpec"]


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
        ``dynamical_scale_choice``, ``cuts``, ``alpha_s``, ``subprocess_channels``,
        ``channel_prior``), the cuts as sorted pairs.
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
        if integrand.channel_prior != "amplitudes":
            opts["channel_prior"] = integrand.channel_prior
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
