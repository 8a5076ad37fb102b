"""Batched phase-space mappings: unit hypercube -> momenta with the phase-space weight.

The hot loops are compiled (``csrc/phasespace_math.h``; CPU threads, and CUDA when the
extension was built with it); this module checks inputs, allocates outputs and dispatches
numpy arrays, CPU tensors and CUDA tensors. The algorithm is stated in
``docs/phasespace.md``.

Weight convention: ``E_r[weight] = Phi_n(s)``, the Lorentz-invariant n-body phase-space
volume with ``(2 pi)^(4 - 3n)`` included, in GeV^(2n - 4); with hadron beams the weight
also carries ``dx1 dx2``, so ``E_r[weight] = int dx1 dx2 Phi_n(x1 x2 S)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

import numpy as np
import torch

from madnis_py._core import ext
from madnis_py.phasespace.topology import MAX_FINAL, Program, Topology, compile_topology

__all__ = ["Beams", "ChannelMapping", "Mapping", "PhaseSpaceBatch", "Rambo", "channel_mappings"]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class Beams:
    """Collider set-up: ``sqrt_s`` in GeV; ``hadronic`` samples the momentum fractions
    x1, x2 of the partons (two extra dimensions), else the partons carry the beam energy."""

    sqrt_s: float
    hadronic: bool = False

    def __post_init__(self) -> None:
        if not (np.isfinite(self.sqrt_s) and self.sqrt_s > 0):
            raise ValueError(f"Beams.sqrt_s must be a finite energy > 0 in GeV, got "
                             f"{self.sqrt_s!r}")


@dataclass
class PhaseSpaceBatch(Generic[Array]):
    """Output of a mapping.

    Attributes
    ----------
    momenta : (n, n_final + 2, 4)
        (E, px, py, pz) in GeV in the lab frame; 0 and 1 are the incoming partons.
    weight : (n,)
        Phase-space weight (0 for points outside the physical region).
    x1x2 : (n, 2)
        Parton momentum fractions (ones for lepton beams, zeros outside).
    n_outside : int
        Points of this batch outside the physical region.
    """

    momenta: Array
    weight: Array
    x1x2: Array
    n_outside: int


def _threads(threads: int | None) -> int:
    return torch.get_num_threads() if threads is None else max(1, int(threads))


def _as_input(x: Array, name: str, shape_tail: tuple[int, ...]) -> Array:
    if isinstance(x, torch.Tensor):
        if x.dtype != torch.float64:
            raise TypeError(f"{name}: expected dtype float64, got {x.dtype} (the phase-space "
                            "path is float64)")
        t = x.detach().contiguous()
    elif isinstance(x, np.ndarray):
        if x.dtype != np.float64:
            raise TypeError(f"{name}: expected dtype float64, got {x.dtype}")
        t = np.ascontiguousarray(x)
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if t.ndim != 1 + len(shape_tail) or tuple(t.shape[1:]) != shape_tail:
        raise ValueError(f"{name}: expected shape (n, {', '.join(map(str, shape_tail))}), got "
                         f"{tuple(t.shape)}")
    return t


def _empty_like(x: Array, *shape: int) -> Array:
    if isinstance(x, torch.Tensor):
        return torch.empty(shape, dtype=torch.float64, device=x.device)
    return np.empty(shape, dtype=np.float64)


def _forward_outputs(r: Array, n: int, n_final: int) -> tuple[Array, Array, Array]:
    """Momenta (n, n_final + 2, 4), weights (n,) and x1x2 (n, 2) like ``r``."""
    return (_empty_like(r, n, n_final + 2, 4), _empty_like(r, n), _empty_like(r, n, 2))


def _np(x: Array) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else x


def _cuda_stream(x: torch.Tensor) -> int:
    if not getattr(ext, "WITH_CUDA", False):
        raise RuntimeError("a CUDA tensor was passed, but madnis_py._ext was built without "
                           "CUDA (rebuild with nvcc on PATH, MADNIS_PY_CUDA=1)")
    return int(torch.cuda.current_stream(x.device).cuda_stream)


class Mapping:
    """Common interface: ``map(r)`` and (where it exists) ``inverse(momenta)``.

    ``n_points`` and ``n_outside`` count, over the mapping's lifetime, the points mapped
    and those that fell outside the physical region (weight 0).
    """

    dims: int
    n_final: int
    beams: Beams

    def __init__(self) -> None:
        self.n_points = 0
        self.n_outside = 0

    def map(self, r: Array) -> PhaseSpaceBatch[Array]:
        raise NotImplementedError

    def inverse(self, momenta: Array) -> tuple[Array, Array]:
        raise NotImplementedError(f"{type(self).__name__} has no inverse map")

    def _count(self, n: int, outside: int) -> None:
        self.n_points += n
        self.n_outside += outside


class ChannelMapping(Mapping):
    """The mapping of one channel: a topology compiled for given final-state masses.

    Parameters
    ----------
    topology : Topology
        The channel's diagram topology (s-channel tree or t-channel chain).
    masses : sequence of float
        Final-state masses in GeV (momentum indices 2, 3, ...).
    beams : Beams
    threads : int, optional
        CPU threads (default: ``torch.get_num_threads()``).

    Notes
    -----
    ``dims = 3 n - 4`` (+ 2 with hadron beams). The inverse returns the point and the same
    weight the forward map gives it, so ``1 / weight`` is the channel's phase-space
    density of a given event.
    """

    def __init__(self, topology: Topology, masses: Sequence[float], beams: Beams, *,
                 threads: int | None = None) -> None:
        super().__init__()
        self.topology = topology
        self.beams = beams
        self.program: Program = compile_topology(topology, masses, hadronic=beams.hadronic)
        self.n_final = self.program.n_final
        self.dims = 3 * self.n_final - 4 + (2 if beams.hadronic else 0)
        if self.program.float_table[0, 1] >= beams.sqrt_s:
            raise ValueError(f"channel {topology.name or '?'}: sqrt_s = {beams.sqrt_s} GeV is "
                             f"below the threshold {self.program.float_table[0, 1]} GeV of the "
                             "final state (with its cuts)")
        self.threads = threads
        self._device_tables: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return (f"ChannelMapping({self.topology.name or '?'}, n_final={self.n_final}, "
                f"dims={self.dims}, sqrt_s={self.beams.sqrt_s}, hadronic={self.beams.hadronic})")

    def _tables(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._device_tables:
            self._device_tables[device] = (
                torch.from_numpy(self.program.int_table).to(device),
                torch.from_numpy(self.program.float_table).to(device))
        return self._device_tables[device]

    def map(self, r: Array) -> PhaseSpaceBatch[Array]:
        """Map points ``r`` (n, dims) of the unit hypercube to momenta and weights."""
        r = _as_input(r, "r", (self.dims,))
        n = int(r.shape[0])
        mom, w, x12 = _forward_outputs(r, n, self.n_final)
        if isinstance(r, torch.Tensor) and r.is_cuda:
            it, ft = self._tables(r.device)
            ext.ps_channel_forward_cuda(
                it.data_ptr(), ft.data_ptr(), self.program.n_nodes, self.n_final, r.data_ptr(),
                mom.data_ptr(), w.data_ptr(), x12.data_ptr(), n, sqrt_s=self.beams.sqrt_s,
                hadronic=self.beams.hadronic, stream=_cuda_stream(r))
            outside = int((w == 0).sum().item())
        else:
            outside = ext.ps_channel_forward(
                self.program.int_table, self.program.float_table, self.n_final, _np(r),
                _np(mom), _np(w), _np(x12), sqrt_s=self.beams.sqrt_s,
                hadronic=self.beams.hadronic, threads=_threads(self.threads))
        self._count(n, outside)
        return PhaseSpaceBatch(mom, w, x12, outside)

    def inverse(self, momenta: Array) -> tuple[Array, Array]:
        """Points ``r`` (n, dims) and weights of given momenta (n, n_final + 2, 4).

        Events outside the channel's physical region (or not of this final state) get
        ``r = 0`` and weight 0.
        """
        momenta = _as_input(momenta, "momenta", (self.n_final + 2, 4))
        n = int(momenta.shape[0])
        r = _empty_like(momenta, n, self.dims)
        w = _empty_like(momenta, n)
        if isinstance(momenta, torch.Tensor) and momenta.is_cuda:
            it, ft = self._tables(momenta.device)
            ext.ps_channel_inverse_cuda(
                it.data_ptr(), ft.data_ptr(), self.program.n_nodes, self.n_final,
                momenta.data_ptr(), r.data_ptr(), w.data_ptr(), n, sqrt_s=self.beams.sqrt_s,
                hadronic=self.beams.hadronic, stream=_cuda_stream(momenta))
        else:
            ext.ps_channel_inverse(
                self.program.int_table, self.program.float_table, self.n_final, _np(momenta),
                _np(r), _np(w), sqrt_s=self.beams.sqrt_s, hadronic=self.beams.hadronic,
                threads=_threads(self.threads))
        return r, w


class Rambo(Mapping):
    """RAMBO, the flat n-body generator (Kleiss, Stirling, Ellis 1986), massless or massive.

    Uses ``4 n`` random numbers per event (+ 2 for x1, x2 with hadron beams, the partonic
    energy sampled as 1/shat above ``max((sum m)^2, min_shat)``). The massless weight is
    the exact phase-space volume; it has no inverse (4n numbers for 3n - 4 degrees of
    freedom).
    """

    def __init__(self, masses: Sequence[float], beams: Beams, *, min_shat: float = 0.0,
                 threads: int | None = None) -> None:
        super().__init__()
        masses_arr = np.ascontiguousarray(masses, dtype=np.float64)
        if not 2 <= masses_arr.size <= MAX_FINAL:
            raise ValueError(f"RAMBO: the final state must have 2..{MAX_FINAL} particles, got "
                             f"{masses_arr.size}")
        if not (np.all(np.isfinite(masses_arr)) and np.all(masses_arr >= 0)):
            raise ValueError(f"RAMBO: masses must be finite and >= 0, got {list(masses)}")
        if masses_arr.sum() >= beams.sqrt_s:
            raise ValueError(f"RAMBO: sqrt_s = {beams.sqrt_s} GeV is below the threshold "
                             f"{masses_arr.sum()} GeV")
        if beams.hadronic and masses_arr.sum() == 0 and min_shat <= 0:
            raise ValueError("RAMBO at a hadron collider with a massless final state needs "
                             "min_shat > 0 (the partonic energy is sampled as 1/shat)")
        self.masses = masses_arr
        self.beams = beams
        self.min_shat = float(min_shat)
        self.n_final = int(masses_arr.size)
        self.dims = 4 * self.n_final + (2 if beams.hadronic else 0)
        self.threads = threads
        self._masses_on: dict[str, torch.Tensor] = {}

    def _device_masses(self, device: torch.device) -> torch.Tensor:
        """The final-state masses on ``device``, copied there once."""
        cache = self._masses_on
        key = str(device)
        if key not in cache:
            cache[key] = torch.from_numpy(np.ascontiguousarray(self.masses)).to(device)
        return cache[key]

    def map(self, r: Array) -> PhaseSpaceBatch[Array]:
        """Map points ``r`` (n, 4 n [+2]) to momenta and weights."""
        r = _as_input(r, "r", (self.dims,))
        n = int(r.shape[0])
        mom, w, x12 = _forward_outputs(r, n, self.n_final)
        if isinstance(r, torch.Tensor) and r.is_cuda:
            masses = self._device_masses(r.device)
            ext.ps_rambo_forward_cuda(
                masses.data_ptr(), self.n_final, r.data_ptr(), mom.data_ptr(), w.data_ptr(),
                x12.data_ptr(), n, sqrt_s=self.beams.sqrt_s, hadronic=self.beams.hadronic,
                min_shat=self.min_shat, stream=_cuda_stream(r))
            outside = int((w == 0).sum().item())
        else:
            outside = ext.ps_rambo_forward(
                self.masses, _np(r), _np(mom), _np(w), _np(x12), sqrt_s=self.beams.sqrt_s,
                hadronic=self.beams.hadronic, min_shat=self.min_shat,
                threads=_threads(self.threads))
        self._count(n, outside)
        return PhaseSpaceBatch(mom, w, x12, outside)


def channel_mappings(topologies: Sequence[Topology], masses: Sequence[float], beams: Beams, *,
                     threads: int | None = None) -> list[ChannelMapping]:
    """One mapping per topology: a process with k diagrams gets k channels (as MadGraph).

    Channels are named after their topology, or ``channel <i>`` when it has no name.
    """
    out = []
    for i, topo in enumerate(topologies):
        if not topo.name:
            topo = replace(topo, name=f"channel {i}")
        out.append(ChannelMapping(topo, masses, beams, threads=threads))
    return out
