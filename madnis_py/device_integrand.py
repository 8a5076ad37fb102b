"""The physics integrand on a torch device: f(x) per channel without leaving the GPU.

:class:`DeviceChannels` evaluates an :class:`~madnis_py.integrand.Integrand` (same
process, cuts, scales, PDFs, matrix element and channel prior, read from it) with torch
operations on the device of the points, and is what the multi-channel
:class:`~madnis_py.training.Integrator` calls with ``device="cuda"``
(``(f, features, prior)`` as :class:`~madnis_py.integrand.TorchChannels`, whose numpy
evaluation it reproduces to rounding; on the CPU it runs the same code, which is how it
is tested without a GPU):

* phase-space mapping: the compiled CUDA kernels (:mod:`madnis_py.phasespace.mapping`);
* cuts, the dynamical scale and the propagator prior: torch ports of
  :mod:`madnis_py.phasespace.cuts` and :mod:`madnis_py.integrand` (same formulas);
* alpha_s with lepton beams: :func:`~madnis_py.physics.running.madgraph_alphas` on the
  tensor of scales;
* PDFs: :class:`~madnis_py.physics.pdf.device.DevicePDF` (its host parts: alpha_s, and
  points outside the grid with the ``continuation`` extrapolator);
* matrix element: a library with device entry points (``ee_mumu`` built with nvcc) runs
  its kernel on the device pointers; a host library (every other one) gets the points of
  all channels and subprocesses of a batch (:meth:`DeviceChannels.evaluate_channels`,
  which ``Integrator.random_batch`` calls once per batch) packed into one page-locked
  buffer, one copy to the host and one back
  (:class:`~madnis_py.physics.matrix_element.HostStaging`).

Inside :meth:`DeviceChannels.recording` every evaluation also keeps, on the device, what
an event record needs (:class:`DeviceRecord`: the subprocesses' parts of ``f``, the
scale, alpha_s and the momenta), as :meth:`~madnis_py.integrand.TorchChannels.recording`
does on the host: accepted points become events without a second evaluation, and only
their rows are copied to the host (one packed copy per record).

Docs: docs/gpu.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, cast

import numpy as np
import torch

from madnis_py.integrand import (
    GEV2_TO_PB,
    ChannelIntegrand,
    Integrand,
    IntegrandBatch,
    _normalised_prior,
)
from madnis_py.physics.matrix_element import HostStaging
from madnis_py.physics.pdf.device import DevicePDF

__all__ = ["DeviceChannels", "DeviceRecord", "cut_mask", "dynamical_scale_torch"]


@dataclass
class _MatrixElementJob:
    """One matrix-element call of a channel's batch: the points ``rows`` (of those inside
    the phase space) that the subprocesses sharing ``subprocess``'s matrix element need,
    in the library's momentum order, with their alpha_s."""

    subprocess: Any
    rows: torch.Tensor
    momenta: torch.Tensor
    alpha_s: torch.Tensor


@dataclass
class _SubprocessPart:
    """Subprocess ``subprocess``'s points ``ok`` (a mask over those inside the phase
    space) with their luminosities, its |M|^2 among the results of job ``job``."""

    subprocess: int
    ok: torch.Tensor
    lum: torch.Tensor
    job: int


def _eta(p: torch.Tensor) -> torch.Tensor:
    pt = torch.hypot(p[..., 1], p[..., 2])
    value = torch.asinh(p[..., 3] / pt)
    return torch.where(pt == 0, torch.copysign(torch.full_like(pt, math.inf), p[..., 3]),
                       value)


def _rapidity(p: torch.Tensor) -> torch.Tensor:
    return torch.atanh(p[..., 3] / p[..., 0])


def _delta_r(a: torch.Tensor, b: torch.Tensor, use_rapidity: bool) -> torch.Tensor:
    longitudinal = _rapidity if use_rapidity else _eta
    cross = a[..., 2] * b[..., 1] - a[..., 1] * b[..., 2]
    dot = a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]
    return torch.hypot(longitudinal(a) - longitudinal(b), torch.atan2(cross, dot))


#: A check's particle indices on a device, by (indices, device): copied there once, not
#: for every batch (a copy to a GPU blocks).
_INDICES: dict[tuple[bytes, tuple[int, ...], str], torch.Tensor] = {}


def _indices(values: Any, device: torch.device) -> torch.Tensor:
    array = np.ascontiguousarray(values, dtype=np.int64)
    key = (array.tobytes(), array.shape, str(device))
    if key not in _INDICES:
        _INDICES[key] = torch.as_tensor(array, device=device)
    return _INDICES[key]


def _check_values(check: Any, p: torch.Tensor, use_rapidity: bool) -> torch.Tensor:
    """The observable of one ``Cuts`` check (cuts._Check._values, in torch)."""
    first = _indices(check.first, p.device)
    if check.observable == "pt":
        q = p[:, first]
        return torch.hypot(q[..., 1], q[..., 2])
    if check.observable == "abs_eta":
        q = p[:, first]
        return torch.abs(_rapidity(q) if use_rapidity else _eta(q))
    if check.observable == "abs_y":
        return torch.abs(_rapidity(p[:, first]))
    if check.observable == "missing_pt":
        total = p[:, first, 1:3].sum(dim=1)
        return torch.hypot(total[:, 0], total[:, 1])[:, None]
    if check.observable == "window":  # the decay products' invariant mass squared
        total = p[:, first].sum(dim=1)
        return (total[:, 0] ** 2 - total[:, 1] ** 2 - total[:, 2] ** 2
                - total[:, 3] ** 2)[:, None]
    second = _indices(check.second, p.device)
    if check.observable == "delta_r":
        return _delta_r(p[:, first], p[:, second], use_rapidity)
    s = p[:, first] + p[:, second]
    return s[..., 0] ** 2 - s[..., 1] ** 2 - s[..., 2] ** 2 - s[..., 3] ** 2


def cut_mask(cuts: Any, momenta: torch.Tensor) -> torch.Tensor:
    """``cuts.mask(momenta)`` of a :class:`~madnis_py.phasespace.Cuts` on torch momenta
    ``(n, nparticles, 4)``, on their device: the same observables and comparisons."""
    passed = torch.isfinite(momenta).all(dim=2).all(dim=1)
    for check in cuts._checks:
        values = _check_values(check, momenta, cuts.use_rapidity)
        lower = -math.inf if check.lower is None else check.lower
        upper = math.inf if check.upper is None else check.upper
        if check.observable in ("mass", "window"):
            lower = math.copysign(lower * lower, lower)
            upper = upper * upper
        above, below = values >= lower, values <= upper
        ok = above | below if check.observable == "mass" and lower > upper else above & below
        passed &= ok.all(dim=1)
    return passed


def dynamical_scale_torch(momenta: torch.Tensor, choice: int) -> torch.Tensor:
    """:func:`madnis_py.integrand.dynamical_scale` on torch momenta, in GeV."""
    fin = momenta[:, 2:]
    pt2 = fin[..., 1] ** 2 + fin[..., 2] ** 2
    m2 = torch.clamp(fin[..., 0] ** 2 - pt2 - fin[..., 3] ** 2, min=0.0)
    if choice == 1:
        pabs = torch.sqrt(pt2 + fin[..., 3] ** 2)
        et = torch.where(pabs > 0, fin[..., 0] * torch.sqrt(pt2) / pabs,
                         torch.zeros_like(pabs))
        return et.sum(dim=1)
    if choice in (2, 3):
        mt = torch.sqrt(pt2 + m2).sum(dim=1)
        return mt if choice == 2 else mt / 2
    if choice == 4:
        tot = momenta[:, 0] + momenta[:, 1]
        return torch.sqrt(torch.clamp(tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(dim=1),
                                      min=0.0))
    raise ValueError(f"dynamical_scale_choice must be 1, 2, 3 or 4 (MadGraph's numbering), "
                     f"got {choice}")


@dataclass
class DeviceRecord:
    """One evaluation kept by :meth:`DeviceChannels.recording`, on the points' device.

    The fields are those of :class:`~madnis_py.integrand.IntegrandBatch` with
    ``details=True`` (without the channel prior), as torch tensors; :meth:`events_at`
    copies the rows of the points taken for events to the host, packed into one float64
    buffer (one copy).

    Attributes
    ----------
    channel : int
    x : (n, dims)
        The points as the integrand saw them.
    f, phase_space_weight, scale, alpha_s : (n,)
    momenta : (n, nparticles, 4)
    x1x2 : (n, 2)
    passed : (n,) bool
    subprocess_f : (n, n_subprocesses)
    """

    channel: int
    x: torch.Tensor
    f: torch.Tensor
    momenta: torch.Tensor
    x1x2: torch.Tensor
    phase_space_weight: torch.Tensor
    passed: torch.Tensor
    subprocess_f: torch.Tensor
    scale: torch.Tensor
    alpha_s: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def _rows(self, index: np.ndarray) -> torch.Tensor:
        """Indices or a boolean mask (host) as indices on the device: a mask's indices
        found on the host, so that selecting rows needs no host synchronisation."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return torch.as_tensor(index, device=self.x.device)

    def kept(self, on: np.ndarray) -> DeviceRecord:
        """The points where ``on`` (a boolean mask), still on the device."""
        rows = self._rows(on)
        return DeviceRecord(self.channel, *(getattr(self, f.name)[rows]
                                            for f in fields(self)[1:]))

    def events_at(self, index: np.ndarray) -> IntegrandBatch:
        """The host arrays of the points ``index`` (indices or a boolean mask), in one
        copy of their rows."""
        return DeviceRecord.events_of([self], [index])[0]

    @staticmethod
    def events_of(records: Sequence[DeviceRecord], indices: Sequence[np.ndarray]
                  ) -> list[IntegrandBatch]:
        """:meth:`events_at` of each record at its indices (of one process, on one
        device), the rows of all of them in one copy to the host."""
        if not records:
            return []
        names = [f.name for f in fields(DeviceRecord)[2:]]  # f .. alpha_s: IntegrandBatch's
        shapes = [getattr(records[0], name).shape[1:] for name in names]
        widths = [math.prod(shape) for shape in shapes]
        taken, counts = [], []
        for rec, index in zip(records, indices, strict=True):
            rows = rec._rows(index)
            counts.append(len(rows))
            taken.append(torch.cat([getattr(rec, name)[rows].reshape(-1, width)
                                    .to(torch.float64)
                                    for name, width in zip(names, widths, strict=True)],
                                   dim=1))
        host = torch.cat(taken).cpu().numpy()
        out = []
        start = 0
        for count in counts:
            block = host[start:start + count]
            start += count
            values: dict[str, np.ndarray] = {}
            col = 0
            for name, shape, width in zip(names, shapes, widths, strict=True):
                values[name] = np.ascontiguousarray(
                    block[:, col:col + width].reshape(count, *shape))
                col += width
            values["passed"] = values["passed"].astype(bool)
            out.append(IntegrandBatch(prior=None, **values))
        return out

    def holds(self, x: torch.Tensor) -> bool:
        """Whether the recorded points are ``x``, bit for bit."""
        return DeviceRecord.all_hold([self], [x])

    @staticmethod
    def all_hold(records: Sequence[DeviceRecord], xs: Sequence[torch.Tensor]) -> bool:
        """Whether every record holds its points, bit for bit: one host synchronisation
        for all of them."""
        same = []
        for rec, x in zip(records, xs, strict=True):
            if x.shape != rec.x.shape:
                return False
            same.append((x.to(rec.x.device) == rec.x).all())
        return not same or bool(torch.stack(same).all())


class DeviceChannels(ChannelIntegrand):
    """An :class:`Integrand` evaluated on the device of the points it is called with: a
    :class:`~madnis_py.integrand.ChannelIntegrand` like
    :class:`~madnis_py.integrand.TorchChannels` (see the module docstring); its records
    are :class:`DeviceRecord`.

    Parameters
    ----------
    integrand : Integrand
        The physics (built on the host as usual: cards, PDF set, library).
    device : str or torch.device
        Where the PDF tables are kept (the device the Integrator runs on).
    """

    def __init__(self, integrand: Integrand, device: str | torch.device = "cpu") -> None:
        super().__init__(integrand)
        forbidden = [s.pdgs for s in integrand.process.subprocesses if s.forbidden_windows]
        if forbidden:
            raise ValueError(f"process {integrand.process.name}: the forbidden_windows "
                             f"(`$`) of {list(forbidden[0])} are evaluated by the host "
                             "integrand only; run it with device = \"cpu\"")
        self.device = torch.device(device)
        self.pdf = None if integrand.pdf is None else DevicePDF(integrand.pdf, self.device)
        self.staging = HostStaging()

    def fingerprint(self) -> dict[str, object]:
        return self.integrand.fingerprint()

    def _scales(self, p: torch.Tensor) -> torch.Tensor:
        ig = self.integrand
        if ig.scale is not None:
            return torch.full((len(p),), float(ig.scale), dtype=p.dtype, device=p.device)
        assert ig.dynamical_scale_choice is not None
        return dynamical_scale_torch(p, ig.dynamical_scale_choice)

    def evaluate_channels(self, batches: Sequence[tuple[torch.Tensor, int]]
                          ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """``(f, features, prior)`` of several channels' points at once, as
        :meth:`Integrand.evaluate_channels <madnis_py.integrand.Integrand.evaluate_channels>`:
        each channel's phase-space map, then everything after it (scales, alpha_s, PDFs,
        cuts, prior) once per subprocess group for the points of all its channels, and the
        matrix elements of all groups in one call (one host round trip for a host
        library, whatever the number of channels and subprocesses). Every step is point
        by point, so the values are those of one call per channel; the kernel launches
        and host synchronisations of a call are paid once per group."""
        for _, channel in batches:
            if not 0 <= channel < self.n_channels:
                raise IndexError(f"channel {channel}: the process has {self.n_channels} "
                                 "channels")
        ig = self.integrand
        mapped = [ig.mappings[c].map(x.detach().to(torch.float64).contiguous())
                  for x, c in batches]
        ig.n_points += sum(len(m.weight) for m in mapped)  # as Integrand.__call__
        members: dict[int, list[int]] = {}
        for k, (_, channel) in enumerate(batches):
            members.setdefault(ig.layout.group[channel], []).append(k)
        states = []
        for group, ks in members.items():
            def joined(name: str, ks: list[int] = ks) -> torch.Tensor:
                parts = [getattr(mapped[k], name) for k in ks]
                return parts[0] if len(parts) == 1 else torch.cat(parts)
            states.append(self._prepare(joined("momenta"), joined("weight"),
                                        joined("x1x2"), group))
        jobs = [job for st in states for job in st["jobs"]]
        results = self._matrix_elements(jobs, bool(ig.amplitude_prior))
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None]
        out = [None] * len(batches)
        records: list[DeviceRecord | None] = [None] * len(batches)
        j = 0
        for ks, st in zip(members.values(), states, strict=True):
            mine = results[j:j + len(st["jobs"])]
            j += len(st["jobs"])
            f, features, prior = self._finish(st, mine, details=self._recording_on())
            start = 0
            for k in ks:
                x, channel = batches[k]
                rows = slice(start, start + len(mapped[k].weight))
                start = rows.stop
                if self._recording_on():
                    records[k] = self._record(x, channel, st, f, rows)
                out[k] = (f[rows].to(x.dtype), features[rows].to(x.dtype),
                          prior[rows].to(x.dtype))
        if self._recording_on():  # in the order of the batches, as TorchChannels
            assert self._records is not None
            self._records.extend(cast(list[DeviceRecord], records))
        return cast(list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]], out)

    def _prepare(self, mom: torch.Tensor, w: torch.Tensor, x12: torch.Tensor, group: int
                 ) -> dict[str, Any]:
        """Everything of Integrand.__call__ after the mapping and before the matrix
        element, at mapped points of the channels of subprocess group ``group``: scales,
        alpha_s, luminosities, cuts; ``jobs`` are the matrix-element calls it needs."""
        ig = self.integrand
        st: dict[str, Any] = {"mom": mom, "x12": x12, "w": w, "jobs": [], "parts": [],
                              "group": group}
        idx = torch.nonzero(w > 0).squeeze(1)
        st["idx"] = idx
        if len(idx) == 0:
            return st
        p = mom[idx]
        mu = self._scales(p)
        if self.pdf is not None and ig.alpha_s is None:
            alphas = self.pdf.alphasQ2(mu ** 2)
        else:  # a fixed alpha_s, or lepton beams' alpha_s(M_Z) run to mu (on the device)
            alphas = ig.alphas_at(mu)
        st["mu"], st["alphas"] = mu, alphas
        shat = ig.beams.sqrt_s ** 2 * x12[idx, 0] * x12[idx, 1]
        st["common"] = w[idx] / (2 * shat) * GEV2_TO_PB
        st["p"] = p
        parton: dict[tuple[int, int], torch.Tensor] = {}
        if self.pdf is not None:  # both beams' partons of the group at once
            xs = [x12[idx, beam] for beam in (0, 1)]
            pids = ig._beam_pids[group]
            values = self.pdf.xfxQ2_beams([(pids[beam], xs[beam]) for beam in (0, 1)],
                                          mu ** 2)
            for beam in (0, 1):
                per_x = values[beam] / xs[beam][:, None]
                parton.update({(beam, q): per_x[:, j] for j, q in enumerate(pids[beam])})

        # as Integrand.__call__: one cut mask per cut signature, and one matrix-element
        # job per shared matrix element (and mirror), over the union of the points its
        # subprocesses need
        masks: dict[int, torch.Tensor] = {}
        wanted: dict[object, tuple[Any, list[tuple[int, torch.Tensor, torch.Tensor]]]] = {}
        for k in ig.layout.groups[group]:
            sub, cut_key = ig.process.subprocesses[k], ig._cut_group[k]
            if cut_key not in masks:
                masks[cut_key] = cut_mask(ig.cuts[k], p)
            lum = (parton[0, sub.pdgs[0]] * parton[1, sub.pdgs[1]] if self.pdf is not None
                   else torch.ones_like(mu))
            ok = masks[cut_key] & (lum != 0)
            key = (k,) if sub.matrix_element is None else (sub.matrix_element, sub.mirror)
            wanted.setdefault(key, (sub, []))[1].append((k, ok, lum))
        for sub, parts in wanted.values():
            need = parts[0][1]
            for _, ok, _ in parts[1:]:
                need = need | ok
            rows = torch.nonzero(need).squeeze(1)  # the library's points: compacted
            if len(rows) == 0:
                continue
            p_lib = p[rows]
            if sub.mirror:
                p_lib = p_lib[:, [1, 0, *range(2, p.shape[1])]]
            job = len(st["jobs"])
            st["jobs"].append(_MatrixElementJob(sub, rows, p_lib.contiguous(), alphas[rows]))
            # the subprocesses' parts stay masks: selected by torch.where, not compacted
            # (a compaction is a host synchronisation on a GPU)
            st["parts"].extend(_SubprocessPart(k, ok, lum, job) for k, ok, lum in parts)
        return st

    def _finish(self, st: dict[str, Any], results: list[tuple[torch.Tensor, torch.Tensor | None]],
                *, details: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """f, the features and the normalised prior from the matrix elements; with
        ``details``, ``st`` keeps each subprocess's part of f (``"sub_f"``) and which
        points passed (``"passed"``) for :meth:`_record`."""
        ig = self.integrand
        mom, x12, idx = st["mom"], st["x12"], st["idx"]
        n, dev = len(mom), mom.device
        f = torch.zeros(n, dtype=torch.float64, device=dev)
        sub_f = (torch.zeros(n, len(ig.process.subprocesses), dtype=torch.float64, device=dev)
                 if details else None)
        # the prior on the group's channels alone, as the numpy integrand builds it
        width = len(ig._group_channels(st["group"]))
        prior_num = torch.zeros(n, width, dtype=torch.float64, device=dev)
        passed_all = torch.zeros(n, dtype=torch.bool, device=dev)
        if len(idx):
            n_in = len(idx)
            for job in st["jobs"]:
                ig.n_calls += len(job.rows)
            # each job's results spread back onto the points inside (zero elsewhere)
            spread: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            for job, (m2, amp2) in zip(st["jobs"], results, strict=True):
                m2_in = torch.zeros(n_in, dtype=torch.float64, device=dev)
                m2_in[job.rows] = m2.to(torch.float64)
                amp2_in = None
                if amp2 is not None:
                    amp2_in = torch.zeros(n_in, amp2.shape[1], dtype=torch.float64,
                                          device=dev)
                    amp2_in[job.rows] = amp2.to(torch.float64)
                spread.append((m2_in, amp2_in))
            f_in = torch.zeros(n_in, dtype=torch.float64, device=dev)
            prior_in = torch.zeros(n_in, width, dtype=torch.float64, device=dev)
            sub_f_in = (torch.zeros(n_in, len(ig.process.subprocesses), dtype=torch.float64,
                                    device=dev) if details else None)
            passed = torch.zeros(n_in, dtype=torch.bool, device=dev)
            for sp in st["parts"]:
                m2_in, amp2_in = spread[sp.job]
                k, ok, lum = sp.subprocess, sp.ok, sp.lum
                part = torch.where(ok, lum * m2_in * st["common"], 0.0)
                f_in += part
                if sub_f_in is not None:
                    sub_f_in[:, k] = part
                passed |= ok
                if amp2_in is not None:
                    prior_in += torch.where(ok[:, None], lum[:, None] * self.integrand
                                            .amp2_per_channel(k, amp2_in,
                                                              group=st["group"]), 0.0)
            if not ig.amplitude_prior:
                prior_in = torch.where(passed[:, None],
                                       ig.propagator_prior(st["group"])(st["p"]), 0.0)
            f[idx] = f_in
            prior_num[idx] = prior_in
            if sub_f is not None and sub_f_in is not None:
                sub_f[idx] = sub_f_in
            passed_all[idx] = passed
        st["sub_f"], st["passed"] = sub_f, passed_all
        # on the group's channels alone, as TorchChannels (ChannelWeights.dense)
        prior = _normalised_prior(prior_num, passed_all,
                                  torch.ones(width, dtype=torch.bool, device=dev))
        feats = [mom[:, 2:].reshape(n, -1) / ig.beams.sqrt_s]
        if ig.beams.hadronic:
            feats.append(x12)
        return f, torch.cat(feats, dim=1), prior

    def _record(self, x: torch.Tensor, channel: int, st: dict[str, Any],
                f: torch.Tensor, rows: slice) -> DeviceRecord:
        """The event record's details of one channel's points, ``rows`` of its group's
        evaluation (``st`` after :meth:`_finish` with ``details``): what
        ``details=True`` gives in
        :meth:`Integrand.__call__ <madnis_py.integrand.Integrand.__call__>`."""
        if "scale" not in st:  # the group's scales and alpha_s, once for its channels
            mom, idx = st["mom"], st["idx"]
            st["scale"] = torch.zeros(len(mom), dtype=torch.float64, device=mom.device)
            st["alpha_s"] = torch.zeros_like(st["scale"])
            if len(idx):
                st["scale"][idx] = st["mu"].to(torch.float64)
                st["alpha_s"][idx] = st["alphas"].to(torch.float64)
        return DeviceRecord(channel, x.detach(), f[rows], st["mom"][rows], st["x12"][rows],
                            st["w"][rows], st["passed"][rows], st["sub_f"][rows],
                            st["scale"][rows], st["alpha_s"][rows])

    def _matrix_elements(self, jobs: list[_MatrixElementJob], amp2: bool
                         ) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """|M|^2 (and |M_i|^2) of every subprocess's points: through the library's device
        entry points when it has them and the points are on a GPU, else in one host
        round trip for all subprocesses together."""
        me = self.integrand.matrix_element
        if not jobs:
            return []
        if jobs[0].momenta.is_cuda and me.has_device_entry:
            out: list[tuple[torch.Tensor, torch.Tensor | None]] = []
            for job in jobs:
                r = me.evaluate(job.momenta, job.subprocess.library_pdgs,
                                alpha_s=job.alpha_s, amp2=amp2)
                out.append((r[0], r[1]) if isinstance(r, tuple) else (r, None))
            return out
        # one packed buffer each way: momenta and alpha_s of all subprocesses
        dev = jobs[0].momenta.device
        packed = torch.cat([torch.cat([job.momenta.reshape(len(job.momenta), -1),
                                       job.alpha_s[:, None]], dim=1) for job in jobs])
        host = self.staging.to_host("me_in", packed)
        k = jobs[0].momenta.shape[1] * 4
        answers: list[tuple[np.ndarray, np.ndarray | None]] = []
        start = 0
        for job in jobs:
            sub = job.subprocess
            block = host[start:start + len(job.momenta)]
            start += len(job.momenta)
            p_h = block[:, :k].reshape(len(block), -1, 4).copy()
            a_h = block[:, k].copy()
            if amp2:
                m2, d2 = me.smatrix_amp2(p_h, sub.library_pdgs, alpha_s=a_h)
                answers.append((m2, d2))
            else:
                answers.append((me(p_h, sub.library_pdgs, alpha_s=a_h), None))
        width = 1 + max((0 if d is None else d.shape[1]) for _, d in answers)
        back = np.zeros((len(packed), width))
        start = 0
        for ans, diagrams in answers:
            back[start:start + len(ans), 0] = ans
            if diagrams is not None:
                back[start:start + len(ans), 1:1 + diagrams.shape[1]] = diagrams
            start += len(ans)
        dev_back = self.staging.to_device("me_out", back, dev)
        out = []
        start = 0
        for ans, diagrams in answers:
            rows = dev_back[start:start + len(ans)]
            start += len(ans)
            out.append((rows[:, 0],
                        None if diagrams is None else rows[:, 1:1 + diagrams.shape[1]]))
        return out
