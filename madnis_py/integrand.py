"""The integrand of a cross section, one batched f(x) per channel.

For a point ``x`` of channel ``i``'s unit hypercube the channel's mapping gives momenta
and the phase-space weight ``w`` (times ``dx1 dx2`` with hadron beams), and

    f(x) = sum_subprocesses f_a(x1, muF) f_b(x2, muF) |M|^2(p; alpha_s(muR))
           * 1 / (2 shat) * w * cuts(p) * 0.3893793721e9 pb GeV^2,

so that ``E_x[f] = sigma`` in pb for every channel (``f_a = 1`` for lepton beams). The
channel prior ``alpha^MG`` comes with it: per-diagram |M_i|^2 when the library exports
them (weighted by the same parton luminosities), else the product of each channel's
propagator denominators, normalised over channels.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import torch

from madnis_py.phasespace import Beams, ChannelMapping, Cuts, channel_mappings, fit_to_cuts
from madnis_py.physics.channels import CHANNEL_PRIORS, ChannelLayout
from madnis_py.physics.matrix_element import MatrixElementError
from madnis_py.physics.process import Process, Subprocess, forbidden_share, load_process
from madnis_py.physics.propagator_prior import PropagatorPrior
from madnis_py.physics.running import madgraph_alphas

#: numpy arrays or torch tensors: the prior normalisation, |M_i|^2 per channel and alpha_s
#: are written once for both (the device integrand calls them too).
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = ["GEV2_TO_PB", "ChannelIntegrand", "EvaluationRecord", "Integrand",
           "IntegrandBatch", "RecordedBatch", "Recording", "TorchChannels",
           "dynamical_scale"]

#: hbar^2 c^2 in pb GeV^2 (PDG).
GEV2_TO_PB = 0.3893793721e9


@dataclass
class IntegrandBatch:
    """One batch of integrand values of a channel.

    Attributes
    ----------
    f : (n,)
        Integrand in pb (``E[f] = sigma``); 0 outside the phase space or the cuts.
    momenta : (n, nparticles, 4)
    x1x2 : (n, 2)
    phase_space_weight : (n,)
    passed : (n,) bool
        Inside the phase space and the cuts (of at least one subprocess).
    prior : (n, n_channels), (n, m) or None
        The channel prior alpha^MG, normalised over channels (rows of zeros where f = 0);
        with ``compact_prior`` (:meth:`Integrand.evaluate_channels`) on the m channels
        of the points' subprocess group alone, in :meth:`Integrand.group_channels` order
        (the other channels' prior is zero there).
    subprocess_f : (n, n_subprocesses) or None
        Each subprocess's part of ``f`` (``details=True``): events pick their flavours
        from it.
    scale, alpha_s : (n,) or None
        The renormalisation/factorisation scale in GeV and alpha_s of every point
        (``details=True``; 0 outside the phase space).
    """

    f: np.ndarray
    momenta: np.ndarray
    x1x2: np.ndarray
    phase_space_weight: np.ndarray
    passed: np.ndarray
    prior: np.ndarray | None
    subprocess_f: np.ndarray | None = None
    scale: np.ndarray | None = None
    alpha_s: np.ndarray | None = None

    def take(self, index: np.ndarray | slice, *, prior: bool = True) -> IntegrandBatch:
        """The points at ``index`` (indices, a boolean mask or a slice: views);
        ``prior=False`` leaves the channel prior out."""
        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[index]
        return IntegrandBatch(self.f[index], self.momenta[index], self.x1x2[index],
                              self.phase_space_weight[index], self.passed[index],
                              part(self.prior) if prior else None, part(self.subprocess_f),
                              part(self.scale), part(self.alpha_s))


@dataclass
class RecordedBatch:
    """One evaluation kept by :meth:`TorchChannels.recording`.

    Attributes
    ----------
    channel : int
    x : (n, dims)
        The points, float64, as the integrand saw them.
    batch : IntegrandBatch
        The integrand's output with ``details=True``, without the channel prior; its
        ``subprocess_f`` on the columns of :attr:`subprocesses` alone where those are
        given.
    subprocesses : (k,) int or None
        The subprocess of each column of ``batch.subprocess_f`` (the others' parts are
        0); None: every subprocess's column.
    n_subprocesses : int
        Subprocesses of the process (the width :meth:`events_at` gives back).
    """

    channel: int
    x: np.ndarray
    batch: IntegrandBatch
    subprocesses: np.ndarray | None = None
    n_subprocesses: int = 0

    @classmethod
    def of(cls, channel: int, x: np.ndarray, batch: IntegrandBatch) -> RecordedBatch:
        """A record of ``batch`` (at points ``x`` of ``channel``) as it is kept: without
        the channel prior, and the subprocess parts on the subprocesses with a part
        only. With 116 subprocesses and 528 channels the two were 5 kB per point, held
        for a whole survey round (1e6 points) and written page by page: 14 of 35 s of a
        run went to the kernel's page faults."""
        b = batch.take(slice(None), prior=False)
        sub_f = b.subprocess_f
        if sub_f is None:
            return cls(channel, x, b)
        cols = np.flatnonzero(sub_f.any(axis=0))
        return cls(channel, x, dataclasses.replace(b, subprocess_f=sub_f[:, cols]), cols,
                   sub_f.shape[1])

    def __len__(self) -> int:
        return len(self.x)

    def kept(self, on: np.ndarray) -> RecordedBatch:
        """The points where ``on`` (a boolean mask), without the channel prior."""
        return RecordedBatch(self.channel, self.x[on], self.batch.take(on, prior=False),
                             self.subprocesses, self.n_subprocesses)

    def events_at(self, index: np.ndarray) -> IntegrandBatch:
        """What the event records of the points ``index`` need (no channel prior; the
        subprocess parts of every subprocess)."""
        b = self.batch.take(index, prior=False)
        if self.subprocesses is None or b.subprocess_f is None:
            return b
        full = np.zeros((len(b.f), self.n_subprocesses))
        full[:, self.subprocesses] = b.subprocess_f
        return dataclasses.replace(b, subprocess_f=full)

    def holds(self, x: torch.Tensor) -> bool:
        """Whether the recorded points are ``x``, bit for bit."""
        return np.array_equal(x.detach().cpu().numpy(), self.x)

    @staticmethod
    def all_hold(records: Sequence[RecordedBatch], xs: Sequence[torch.Tensor]) -> bool:
        """Whether every record holds its points (:meth:`holds` of each)."""
        return all(r.holds(x) for r, x in zip(records, xs, strict=True))

    @staticmethod
    def events_of(records: Sequence[RecordedBatch], indices: Sequence[np.ndarray]
                  ) -> list[IntegrandBatch]:
        """:meth:`events_at` of each record at its indices."""
        return [r.events_at(i) for r, i in zip(records, indices, strict=True)]


class Recording(list["EvaluationRecord"]):
    """The records of :meth:`ChannelIntegrand.recording`, in call order; while
    ``paused`` evaluations are not kept (a VEGAS survey round too large to hold,
    :class:`~madnis_py.events.recycle.RoundRecorder`)."""

    paused: bool = False


class EvaluationRecord(Protocol):
    """One recorded integrand evaluation of a channel's points, as the event generator
    and the recycled draws use it: :class:`RecordedBatch` (numpy, on the host) or
    :class:`~madnis_py.device_integrand.DeviceRecord` (torch, on the points' device,
    copied to the host only for the points taken)."""

    channel: int

    def __len__(self) -> int: ...

    def kept(self, on: np.ndarray) -> EvaluationRecord:
        """The points where ``on`` (a boolean mask, n), without the channel prior."""
        ...

    def events_at(self, index: np.ndarray) -> IntegrandBatch:
        """The host arrays the event records of the points ``index`` need."""
        ...

    def holds(self, x: torch.Tensor) -> bool:
        """Whether the recorded points are ``x``, bit for bit."""
        ...

    @staticmethod
    def all_hold(records: Sequence[Any], xs: Sequence[torch.Tensor]) -> bool:
        """Whether every record of this type holds its points: :meth:`holds` of each, at
        once where that saves a host synchronisation per record."""
        ...

    @staticmethod
    def events_of(records: Sequence[Any], indices: Sequence[np.ndarray]
                  ) -> list[IntegrandBatch]:
        """:meth:`events_at` of each record of this type at its indices, in one copy
        where the records are on a device."""
        ...


def _transverse(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pt2 = p[..., 1] ** 2 + p[..., 2] ** 2
    m2 = np.maximum(p[..., 0] ** 2 - pt2 - p[..., 3] ** 2, 0.0)
    return pt2, m2


def dynamical_scale(momenta: np.ndarray, choice: int) -> np.ndarray:
    """MadGraph's ``dynamical_scale_choice`` (1-4) of the final state, in GeV.

    1: total transverse energy ``sum E_i pT_i / |p_i|``; 2: sum of transverse masses;
    3: half the sum of transverse masses; 4: ``sqrt(shat)``.
    """
    fin = momenta[:, 2:]
    pt2, m2 = _transverse(fin)
    if choice == 1:
        pabs = np.sqrt(pt2 + fin[..., 3] ** 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            et = np.where(pabs > 0, fin[..., 0] * np.sqrt(pt2) / pabs, 0.0)
        return np.asarray(et.sum(axis=1))
    if choice in (2, 3):
        mt = np.asarray(np.sqrt(pt2 + m2).sum(axis=1))
        return mt if choice == 2 else mt / 2
    if choice == 4:
        tot = momenta[:, 0] + momenta[:, 1]
        return np.asarray(np.sqrt(np.maximum(tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(axis=1),
                                             0.0)))
    raise ValueError(f"dynamical_scale_choice must be 1, 2, 3 or 4 (MadGraph's numbering), "
                     f"got {choice}")


def _normalised_prior(prior_num: ArrayT, passed: ArrayT, mine: ArrayT) -> ArrayT:
    """The channel prior ``(n, channels)`` normalised per row (the channels of one group:
    the others have none); a row inside the cuts (``passed``) whose diagrams all vanish
    gets the group's channels (``mine``, a boolean row) alike, so that alpha sums to one
    over them. numpy arrays or torch tensors (the device integrand's too)."""
    total = prior_num.sum(1)[:, None]
    out: Any = prior_num / (total + (total <= 0))  # rows of zeros stay zero
    fill = (passed & (total[:, 0] <= 0))[:, None] & mine[None, :]
    if isinstance(mine, torch.Tensor):  # no masked assignment or scalar read: no host sync
        return torch.where(fill, 1.0 / mine.sum(dtype=out.dtype), out)
    out[fill] = 1.0 / float(mine.sum())
    return cast(ArrayT, out)


class Integrand:
    """f(x) per channel of a process, in pb.

    Parameters
    ----------
    process : Process or str
        A process, or a built-in name / directory for :func:`load_process`.
    sqrt_s : float, optional
        Collider energy in GeV (default: the card's).
    pdf : str or PDF, optional
        PDF set for proton beams (default: the card's, else the embedded ``LHToyPDF``).
    scale : float, optional
        Fixed renormalisation and factorisation scale in GeV.
    dynamical_scale_choice : int, optional
        MadGraph's 1-4 (used when no fixed scale is given; lepton beams default to 4).
    cuts : mapping, optional
        Run-card cuts replacing the card's defaults.
    alpha_s : float, optional
        Fixed alpha_s (default: the PDF set's alpha_s(muR) with proton beams, the
        param_card's ``SMINPUTS 3`` with lepton beams).
    threads : int, optional
        Threads of the phase-space mappings.
    subprocess_channels : {"shared", "grouped"}
        The channel layout (:mod:`madnis_py.physics.channels`): one channel per topology
        evaluating every subprocess (default), or one set of channels per matrix element
        (madevent's), a point evaluating its group's matrix element only.
    channel_prior : {"amplitudes", "propagators"}
        The channel prior (:data:`~madnis_py.physics.channels.CHANNEL_PRIORS`): the
        channels' |M_i|^2 (default; the propagators where the library exports no
        |M_i|^2), or their propagator denominators (MadGraph's ``sde_strategy = 2``).
    """

    def __init__(self, process: Process | str, *, sqrt_s: float | None = None,
                 pdf: Any = None, scale: float | None = None,
                 dynamical_scale_choice: int | None = None,
                 cuts: Mapping[str, float] | None = None, alpha_s: float | None = None,
                 threads: int | None = None,
                 subprocess_channels: str = "shared",
                 channel_prior: str = "amplitudes") -> None:
        self.process = load_process(process) if isinstance(process, str) else process
        proc = self.process
        d = proc.defaults
        self.sqrt_s = float(sqrt_s if sqrt_s is not None else (d.sqrt_s or 0.0))
        if not self.sqrt_s > 0:
            raise ValueError(f"process {proc.name}: no collider energy (pass sqrt_s or set "
                             f"[defaults] sqrt_s in {proc.card})")
        self.scale = scale if scale is not None else (
            d.scale if dynamical_scale_choice is None else None)
        self.dynamical_scale_choice = (dynamical_scale_choice if dynamical_scale_choice
                                       is not None else d.dynamical_scale_choice)
        if self.scale is None and self.dynamical_scale_choice is None:
            if proc.hadronic:
                raise ValueError(f"process {proc.name}: give a fixed scale or a "
                                 "dynamical_scale_choice")
            self.dynamical_scale_choice = 4  # lepton beams: sqrt(s), only alpha_s sees it
        if self.dynamical_scale_choice is not None:
            dynamical_scale(np.zeros((1, proc.n_particles, 4)), self.dynamical_scale_choice)
        parameters = proc.parameters()
        self.cut_values = dict(proc.cuts if cuts is None else cuts)
        # maxjetflavor (MadGraph's run-card name) says which quarks the cuts take as jets
        flavour = self.cut_values.get("maxjetflavor", 4)
        if flavour != int(flavour):
            raise ValueError(f"cut maxjetflavor = {flavour}: expected an integer 0..6")
        names = {k: v for k, v in self.cut_values.items() if k != "maxjetflavor"}
        self.cuts = [Cuts(s.pdgs, names, maxjetflavor=int(flavour),
                          windows=s.resonance_windows) for s in proc.subprocesses]
        # subprocesses whose cuts give the same mask share one evaluation per call
        signatures: dict[tuple[object, ...], int] = {}
        self._cut_group = [signatures.setdefault(c.signature, len(signatures))
                           for c in self.cuts]
        self.masses = proc.final_masses()
        for sub in proc.subprocesses[1:]:
            if [parameters.mass(p) for p in sub.pdgs[2:]] != self.masses:
                raise ValueError(f"process {proc.name}: subprocesses with different "
                                 "final-state masses need separate integrands")
        self.beams = Beams(self.sqrt_s, proc.hadronic)
        # Every mapping limit (s-channel min_mass, min_shat) follows the cuts: a channel
        # starts where they allow, so no event they keep is lost; a card limit tighter
        # than the cuts is an error here, before the PDF and the library are opened.
        self.layout = ChannelLayout.of(proc.subprocesses, len(proc.channels),
                                       subprocess_channels)
        self.subprocess_channels = subprocess_channels
        # per group its channels, per subprocess its diagrams' columns among them
        self._channels_of: dict[int, np.ndarray] = {}
        self._propagator_priors: dict[int, PropagatorPrior] = {}
        self._group_columns: dict[int, list[int]] = {}
        topologies = fit_to_cuts(proc.channels, self.cuts, self.masses,
                                 hadronic=proc.hadronic, card=proc.card)
        per_topology = channel_mappings(topologies, self.masses, self.beams, threads=threads)
        #: Each channel's mapping (channels of one topology share it).
        self.mappings: list[ChannelMapping] = [per_topology[t] for t in self.layout.topology]
        self.pdf: Any = None
        if proc.hadronic:
            from madnis_py.physics.pdf import PDF

            self.pdf = pdf if (pdf is not None and not isinstance(pdf, (str, int))) else PDF(
                pdf or d.pdf or "LHToyPDF")
        # per group, the partons of each beam: a PDF with xfxQ2_flavours evaluates them
        # in one call
        self._beam_pids = [tuple(tuple(sorted({proc.subprocesses[k].pdgs[b] for k in subs}))
                                 for b in (0, 1)) for subs in self.layout.groups]
        #: A fixed alpha_s (given), else None: the PDF set's alpha_s(muR) with proton beams,
        #: :attr:`asmz` run to muR with lepton beams.
        self.alpha_s = alpha_s
        #: alpha_s(M_Z) of the param card (``SMINPUTS 3``), which lepton beams run to every
        #: point's scale at two loops as madevent does without PDFs
        #: (:func:`~madnis_py.physics.running.madgraph_alphas`); None with proton beams.
        self.asmz = None if proc.hadronic else parameters.get("sminputs", 3)
        self.matrix_element = proc.matrix_element()
        self._amp2 = self.matrix_element.has_amp2
        if channel_prior not in CHANNEL_PRIORS:
            raise ValueError(f"channel_prior must be one of {', '.join(CHANNEL_PRIORS)}, "
                             f"got {channel_prior!r}")
        self.channel_prior = channel_prior
        if not self._amp2 and any(s.forbidden_windows for s in proc.subprocesses):
            raise ValueError(f"process {proc.name}: forbidden_windows need the library's "
                             f"per-diagram |M_i|^2 (madnis_amp2_), which {proc.library} "
                             "does not export")
        #: Points evaluated (every call, inside the phase space or not): "integrand calls".
        self.n_points = 0
        #: Matrix-element evaluations (one per subprocess of a point passing its cuts, one
        #: for the subprocesses sharing a matrix element).
        self.n_calls = 0

    @property
    def n_channels(self) -> int:
        return len(self.mappings)

    @property
    def amplitude_prior(self) -> bool:
        """Whether the channel prior is the library's per-diagram |M_i|^2 (else the
        channels' propagator denominators)."""
        return self._amp2 and self.channel_prior == "amplitudes"

    @property
    def channel_groups(self) -> tuple[int, ...]:
        """Per channel, the subprocess group it evaluates (:attr:`layout`)."""
        return self.layout.group

    def dims(self, channel: int = 0) -> int:
        return self.mappings[channel].dims

    def _scales(self, momenta: np.ndarray) -> np.ndarray:
        if self.scale is not None:
            return np.full(len(momenta), float(self.scale))
        assert self.dynamical_scale_choice is not None
        return dynamical_scale(momenta, self.dynamical_scale_choice)

    def __call__(self, x: np.ndarray, channel: int, *, prior: bool = True,
                 details: bool = False) -> IntegrandBatch:
        """Evaluate the integrand on points ``x`` (n, dims) of channel ``channel``;
        ``details`` adds the subprocesses' parts, the scales and alpha_s."""
        return self.evaluate_channels([(x, channel)], prior=prior, details=details)[0]

    def evaluate_channels(self, batches: Sequence[tuple[np.ndarray, int]], *,
                          prior: bool = True, details: bool = False,
                          compact_prior: bool = False) -> list[IntegrandBatch]:
        """:meth:`__call__` of several channels' points ``(x, channel)`` at once: each
        channel's phase-space map, then everything after it (scales, alpha_s, PDFs, cuts,
        matrix elements, prior) once per subprocess group for the points of all its
        channels. Every step is point by point, so the values are those of one call per
        channel; the fixed cost of a call is paid once per group. ``compact_prior``:
        each batch's prior on its group's channels alone, ``(n, m)`` (with 1464
        channels in groups of 48 the full width took 12 GB for a million points)."""
        for _, channel in batches:
            if not 0 <= channel < self.n_channels:
                raise IndexError(f"channel {channel}: the process has {self.n_channels} "
                                 "channels")
        mapped = [self.mappings[c].map(np.ascontiguousarray(x, dtype=np.float64))
                  for x, c in batches]
        self.n_points += sum(len(m.weight) for m in mapped)
        members: dict[int, list[int]] = {}
        for k, (_, channel) in enumerate(batches):
            members.setdefault(self.layout.group[channel], []).append(k)
        out: list[IntegrandBatch | None] = [None] * len(batches)
        for group, ks in members.items():
            if len(ks) == 1:
                m = mapped[ks[0]]
                out[ks[0]] = self._after_mapping(m.momenta, m.weight, m.x1x2, group,
                                                 prior, details, compact_prior)
                continue
            together = self._after_mapping(
                np.concatenate([mapped[k].momenta for k in ks]),
                np.concatenate([mapped[k].weight for k in ks]),
                np.concatenate([mapped[k].x1x2 for k in ks]), group, prior, details,
                compact_prior)
            start = 0
            for k in ks:
                stop = start + len(mapped[k].weight)
                out[k] = together.take(slice(start, stop))
                start = stop
        return cast(list[IntegrandBatch], out)  # every entry set above

    def _after_mapping(self, mom: np.ndarray, w: np.ndarray, x12: np.ndarray, group: int,
                       prior: bool, details: bool,
                       compact_prior: bool = False) -> IntegrandBatch:
        """f and the rest of an :class:`IntegrandBatch` at mapped points of channels of
        subprocess group ``group`` (momenta, phase-space weights, x1 x2); the prior on
        the group's channels alone with ``compact_prior``."""
        n = len(w)
        inside = w > 0
        f = np.zeros(n)
        passed = np.zeros(n, dtype=bool)
        # the prior lives on the group's channels: built there (n, m) and placed among
        # all channels once (with 528 channels, building it among all of them was 10 of
        # 65 s of a survey)
        mine = self._group_channels(group)
        prior_num = np.zeros((n, len(mine))) if prior else None
        sub_f = np.zeros((n, len(self.process.subprocesses))) if details else None
        scale_out = np.zeros(n) if details else None
        alphas_out = np.zeros(n) if details else None
        idx = np.nonzero(inside)[0]
        if len(idx):
            p = mom[idx]
            mu = self._scales(p)
            alphas = self.alphas_at(mu)
            if scale_out is not None and alphas_out is not None:
                scale_out[idx] = mu
                alphas_out[idx] = alphas
            shat = self.beams.sqrt_s ** 2 * x12[idx, 0] * x12[idx, 1]
            common = w[idx] / (2 * shat) * GEV2_TO_PB
            parton: dict[tuple[int, int], np.ndarray] = {}  # (beam, pid) -> f(x, muF)

            def density(beam: int, pid: int) -> np.ndarray:
                if (beam, pid) not in parton:
                    xb = x12[idx, beam]
                    every = getattr(self.pdf, "xfxQ2_flavours", None)
                    if every is None:
                        parton[beam, pid] = self.pdf.xfxQ2(pid, xb, mu ** 2) / xb
                    else:  # the beam's partons at once, each equal to its own xfxQ2
                        pids = self._beam_pids[group][beam]
                        values = every(pids, xb, mu ** 2) / xb[:, None]
                        parton.update({(beam, q): values[:, j] for j, q in enumerate(pids)})
                return parton[beam, pid]

            masks: dict[int, np.ndarray] = {}
            # subprocesses sharing a matrix element: |M|^2 (and |M_i|^2) once per point
            shared: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray,
                                                 np.ndarray | None]] = {}
            for k in self.layout.groups[group]:
                sub, cuts = self.process.subprocesses[k], self.cuts[k]
                mask_key = self._cut_group[k]
                if mask_key not in masks:
                    masks[mask_key] = cuts.mask(p)
                ok = masks[mask_key]
                if not ok.any():
                    continue
                lum = np.ones(len(idx))
                if self.pdf is not None:
                    lum = density(0, sub.pdgs[0]) * density(1, sub.pdgs[1])
                sel = ok & (lum != 0)
                if not sel.any():
                    continue
                wanted = ((prior_num is not None and self.amplitude_prior)
                          or bool(sub.forbidden_windows))
                m2, amp2 = self._matrix_element(sub, p, alphas, sel, wanted, shared)
                part = lum[sel] * m2 * common[sel]
                if sub.forbidden_windows:  # `$`: the vetoed diagrams' share is lost
                    assert amp2 is not None
                    part = part * forbidden_share(sub.forbidden_windows, p[sel], amp2)
                f[idx[sel]] += part
                if sub_f is not None:
                    sub_f[idx[sel], k] = part
                passed[idx[sel]] = True
                if prior_num is not None and self.amplitude_prior:
                    assert amp2 is not None
                    prior_num[idx[sel]] += lum[sel, None] * self.amp2_per_channel(
                        k, amp2, group=group)
            if prior_num is not None and not self.amplitude_prior:
                on = passed[idx]
                prior_num[idx[on]] = self.propagator_prior(group)(p[on])
        prior_out = None
        if prior_num is not None:
            on_group = _normalised_prior(prior_num, passed, np.ones(len(mine), dtype=bool))
            if compact_prior:
                prior_out = on_group
            else:
                prior_out = np.zeros((n, self.n_channels))
                prior_out[:, mine] = on_group
        return IntegrandBatch(f, mom, x12, w, passed, prior_out, sub_f, scale_out, alphas_out)

    def amp2_per_channel(self, k: int, amp2: ArrayT, *, group: int | None = None) -> ArrayT:
        """The library's per-diagram |M_i|^2 ``(n, diagrams)`` of the ``k``-th subprocess
        summed into the channels ``(n, channels)`` of its group (``diagram_channels``,
        else diagram i is topology i; -1: no channel, a 4-point vertex whose |M_i|^2 is
        0); numpy arrays or torch tensors. With ``group`` (the subprocess's), into that
        group's channels alone, ``(n, m)`` in :meth:`_group_channels` order (the other
        channels' columns are zero)."""
        sub = self.process.subprocesses[k]
        diagrams: Sequence[int] = self.layout.columns[k]
        if amp2.shape[1] != len(diagrams):
            raise MatrixElementError(
                f"process {self.process.name}: the library gives {amp2.shape[1]} diagrams "
                f"for {list(sub.pdgs)}, the card {len(diagrams)} channels "
                "(diagram_channels, else all): they must correspond one to one")
        width = self.n_channels
        if group is not None:
            diagrams = self._columns_in_group(k, group)
            width = len(self._group_channels(group))
        per_channel: Any = (amp2.new_zeros((len(amp2), width))
                            if isinstance(amp2, torch.Tensor)
                            else np.zeros((len(amp2), width)))
        for j, c in enumerate(diagrams):  # several diagrams may share a channel
            if c >= 0:
                per_channel[:, c] += amp2[:, j]
        return cast(ArrayT, per_channel)

    def group_channels(self, group: int) -> np.ndarray:
        """The channels of subprocess group ``group``, in order: the columns of a compact
        prior (:meth:`evaluate_channels`)."""
        return self._group_channels(group).copy()

    def propagator_prior(self, group: int) -> PropagatorPrior:
        """The propagator prior of subprocess group ``group``'s channels, in their order
        (cached)."""
        prior = self._propagator_priors.get(group)
        if prior is None:
            prior = PropagatorPrior([self.process.channels[self.layout.topology[c]]
                                     for c in self._group_channels(group)],
                                    n_legs=self.process.n_particles)
            self._propagator_priors[group] = prior
        return prior

    def _group_channels(self, group: int) -> np.ndarray:
        """The channels of subprocess group ``group``, in order (cached)."""
        mine = self._channels_of.get(group)
        if mine is None:
            mine = np.asarray(self.layout.channels_of(group), dtype=np.intp)
            self._channels_of[group] = mine
        return mine

    def _columns_in_group(self, k: int, group: int) -> list[int]:
        """The channel of each library diagram of the ``k``-th subprocess as a column of
        its ``group``'s channels (-1: none; cached)."""
        local = self._group_columns.get(k)
        if local is None:
            where = {int(c): j for j, c in enumerate(self._group_channels(group))}
            local = [where[c] if c >= 0 else -1 for c in self.layout.columns[k]]
            self._group_columns[k] = local
        return local

    def alphas_at(self, mu: ArrayT) -> ArrayT:
        """alpha_s at the renormalisation scales ``mu`` (GeV): the fixed one if given,
        else the PDF set's (proton beams) or the param card's alpha_s(M_Z) run at two
        loops (lepton beams, as madevent; 0.118 at M_Z without one). A torch tensor
        ``mu`` gets a tensor on its device, except with a PDF set (on a device its
        alpha_s is :class:`~madnis_py.physics.pdf.device.DevicePDF`'s)."""
        on_device = isinstance(mu, torch.Tensor)
        out: Any
        if self.alpha_s is not None:
            out = (torch if on_device else np).full_like(mu, float(self.alpha_s))
        elif self.pdf is not None:
            if on_device:
                raise TypeError("the PDF set's alpha_s takes a numpy array (on a device: "
                                "DevicePDF.alphasQ2)")
            out = np.asarray(self.pdf.alphasQ2(mu ** 2), dtype=np.float64)
        else:
            out = madgraph_alphas(mu, float(self.asmz) if self.asmz else 0.118)
        return cast(ArrayT, out)

    def _matrix_element(self, sub: Subprocess, p: np.ndarray, alphas: np.ndarray,
                        sel: np.ndarray, prior: bool,
                        shared: dict[tuple[str, bool], tuple[np.ndarray, np.ndarray,
                                                             np.ndarray | None]]
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """|M|^2 (and with ``prior`` the per-diagram |M_i|^2 where the library exports
        them) of subprocess ``sub`` at the points ``sel`` of ``p``; a matrix element
        shared with a subprocess evaluated before in this call (``shared``, by
        :attr:`~madnis_py.physics.process.Subprocess.matrix_element` and mirror) is
        evaluated only where that one was not."""
        amp2_wanted = prior and self._amp2  # one helicity sum where it can
        key = None if sub.matrix_element is None else (sub.matrix_element, sub.mirror)
        if key is not None and key in shared:
            done, m2_all, amp2_all = shared[key]
            need = sel & ~done
        else:
            done = np.zeros(len(p), dtype=bool)
            m2_all = np.zeros(len(p))
            amp2_all = None
            need = sel
        if need.any():
            p_lib = sub.library_momenta(p[need])
            if amp2_wanted:
                m2, amp2 = self.matrix_element.smatrix_amp2(p_lib, sub.library_pdgs,
                                                            alpha_s=alphas[need])
                if amp2_all is None:
                    amp2_all = np.zeros((len(p), amp2.shape[1]))
                amp2_all[need] = amp2
            else:
                m2 = self.matrix_element(p_lib, sub.library_pdgs, alpha_s=alphas[need])
            m2_all[need] = m2
            done = done | need
            self.n_calls += int(need.sum())
        if key is not None:
            shared[key] = (done, m2_all, amp2_all)
        return m2_all[sel], None if amp2_all is None else amp2_all[sel]

    def channel_names(self) -> Sequence[str]:
        """Per channel, its topology's name; with several subprocess groups, followed by
        the group's first subprocess (``t1 [g u > e+ e- u]``)."""
        names = [m.topology.name for m in self.mappings]
        if len(self.layout.groups) == 1:
            return names
        subs = self.process.subprocesses
        return [f"{name} [{' '.join(map(str, subs[self.layout.groups[g][0]].pdgs))}]"
                for name, g in zip(names, self.layout.group, strict=True)]

    def fingerprint(self) -> dict[str, object]:
        """What a trained integrator depends on, as JSON-ready plain values: the process
        name, sha256 of its matrix-element library and param_card, beams, sqrt(s), PDF set
        and member (None with lepton beams), the fixed scale or dynamical scale choice in
        use, a fixed alpha_s, the cuts (sorted), the channels' dimensions, sha256 of
        the channels' compiled mappings (a release that samples a channel's invariants
        otherwise changes what its trained maps mean), and the channel prior where it is
        the propagators while the library has |M_i|^2.

        A checkpoint stores it; loading compares it (:meth:`Integrator.load
        <madnis_py.training.Integrator.load>`), so that flows are never applied to
        another process or other settings."""
        proc = self.process
        pdf_name = pdf_member = None
        if self.pdf is not None:
            pdf_name = str(getattr(self.pdf, "name", type(self.pdf).__name__))
            member = getattr(self.pdf, "member", None)
            pdf_member = None if member is None else int(member)
        out: dict[str, object] = {
            "process": proc.name,
            "library_sha256": _sha256(proc.library),
            "param_card_sha256": _sha256(proc.param_card),
            "beams": proc.beams,
            "sqrt_s": float(self.sqrt_s),
            "pdf": pdf_name,
            "pdf_member": pdf_member,
            "scale": None if self.scale is None else float(self.scale),
            "dynamical_scale_choice": (None if self.scale is not None
                                       or self.dynamical_scale_choice is None
                                       else int(self.dynamical_scale_choice)),
            "alpha_s": None if self.alpha_s is None else float(self.alpha_s),
            "asmz": None if self.asmz is None else float(self.asmz),
            "cuts": {str(k): float(v) for k, v in sorted(self.cut_values.items())},
            # (with one group both layouts are the same channels: "shared")
            "subprocess_channels": ("grouped" if len(self.layout.groups) > 1
                                    else "shared"),
            "n_channels": self.n_channels,
            "channel_dims": [int(self.dims(i)) for i in range(self.n_channels)],
            "channel_maps_sha256": _maps_sha256(self.mappings),
        }
        if self._amp2 and self.channel_prior == "propagators":  # (else absent, as before)
            out["channel_prior"] = "propagators"
        sherpa = getattr(proc, "sherpa_run_dir", None)  # a Sherpa library reads its card
        if sherpa is not None and (Path(sherpa) / "Sherpa.yaml").is_file():
            out["sherpa_run_card_sha256"] = _sha256(Path(sherpa) / "Sherpa.yaml")
        return out


def _maps_sha256(mappings: Sequence[ChannelMapping]) -> str:
    """sha256 of the channels' compiled mapping tables, in channel order."""
    digest = hashlib.sha256()
    for m in mappings:
        for table in (m.program.int_table, m.program.float_table):
            digest.update(np.ascontiguousarray(table).tobytes())
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ChannelIntegrand:
    """An :class:`Integrand` seen by the multi-channel
    :class:`~madnis_py.training.Integrator`: torch points in, ``(f, features, prior)`` out,
    evaluated by :meth:`evaluate_channels` (:class:`TorchChannels` in numpy on the host,
    :class:`~madnis_py.device_integrand.DeviceChannels` in torch on the points' device).

    The features, the channel-independent input of the channel weights, are the
    final-state momenta divided by sqrt(s) and, with hadron beams, x1 and x2.

    Inside :meth:`recording` every evaluation also keeps what an event record needs
    (the subprocesses' parts of ``f``, the scale, alpha_s and the momenta), so that
    accepted points are written without a second integrand call.
    """

    def __init__(self, integrand: Integrand) -> None:
        self.integrand = integrand
        self.n_channels = integrand.n_channels
        #: Per channel, its subprocess group (channels are dropped keeping one per group).
        self.channel_groups = integrand.channel_groups
        n_final = integrand.process.n_particles - 2
        self.feature_dims = 4 * n_final + (2 if integrand.beams.hadronic else 0)
        self._records: Recording | None = None

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        """Keep every evaluation made inside the ``with`` block, in call order, one
        :class:`EvaluationRecord` per channel evaluated, while the list is not
        :attr:`~Recording.paused`. The details cost no extra matrix-element call (the
        scale, alpha_s and the subprocess parts are computed for ``f`` anyway).
        Recordings do not nest."""
        if self._records is not None:
            raise RuntimeError(f"{type(self).__name__}.recording() is already active")
        records = Recording()
        self._records = records
        try:
            yield records
        finally:
            self._records = None

    def _recording_on(self) -> bool:
        """Whether the evaluations now are kept (a recording, not paused)."""
        return self._records is not None and not self._records.paused

    def dims(self, channel: int) -> int:
        return self.integrand.dims(channel)

    def __call__(self, x: torch.Tensor,
                 channel: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return self.evaluate_channels([(x, channel)])[0]

    def evaluate_channels(self, batches: Sequence[tuple[torch.Tensor, int]]
                          ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``(f, features, prior)`` of several channels' points ``(x, channel)`` at once
        (what :meth:`~madnis_py.training.Integrator.random_batch` calls)."""
        raise NotImplementedError


class TorchChannels(ChannelIntegrand):
    """:class:`ChannelIntegrand` evaluated by the numpy :class:`Integrand` on the host
    (``details=True`` inside :meth:`recording`, kept as :class:`RecordedBatch`)."""

    def evaluate_channels(self, batches: Sequence[tuple[torch.Tensor, int]]
                          ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``(f, features, prior)`` of several channels' points at once
        (:meth:`Integrand.evaluate_channels`: the same values as one call per channel,
        the fixed costs once per subprocess group); what
        :meth:`~madnis_py.training.Integrator.random_batch` calls."""
        points = [x.detach().cpu().numpy() for x, _ in batches]
        # the prior on each point's group alone (ChannelWeights reads either width)
        evaluated = self.integrand.evaluate_channels(
            [(p, c) for p, (_, c) in zip(points, batches, strict=True)],
            details=self._recording_on(), compact_prior=True)
        out = []
        for p, (x, channel), batch in zip(points, batches, evaluated, strict=True):
            if self._recording_on():
                assert self._records is not None
                self._records.append(RecordedBatch.of(channel, p, batch))
            out.append(self._outputs(x, batch))
        return out

    def _outputs(self, x: torch.Tensor, batch: IntegrandBatch
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(f, features, prior)`` of ``batch`` as tensors like ``x``."""
        n = len(batch.f)
        feats = [batch.momenta[:, 2:].reshape(n, -1) / self.integrand.beams.sqrt_s]
        if self.integrand.beams.hadronic:
            feats.append(batch.x1x2)
        features = torch.from_numpy(np.concatenate(feats, axis=1)).to(x)
        prior = None if batch.prior is None else torch.from_numpy(batch.prior).to(x)
        return torch.from_numpy(batch.f).to(x), features, prior
