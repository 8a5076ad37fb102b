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
from typing import Any

import numpy as np
import torch

from madnis_py.integrand import (
    GEV2_TO_PB,
    ChannelIntegrand,
    Integrand,
    IntegrandBatch,
    _normalised_prior,
    _propagator_prior,
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
    """Subprocess ``subprocess``'s points ``sel`` (of those inside the phase space) with
    their luminosities, and where its |M|^2 are in the results of job ``job``
    (``position``)."""

    subprocess: int
    sel: torch.Tensor
    lum: torch.Tensor
    job: int
    position: torch.Tensor


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
        if check.observable == "mass":
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
        return torch.as_tensor(np.asarray(index), device=self.x.device)

    def kept(self, on: np.ndarray) -> DeviceRecord:
        """The points where ``on`` (a boolean mask), still on the device."""
        rows = self._rows(on)
        return DeviceRecord(self.channel, *(getattr(self, f.name)[rows]
                                            for f in fields(self)[1:]))

    def events_at(self, index: np.ndarray) -> IntegrandBatch:
        """The host arrays of the points ``index`` (indices or a boolean mask), in one
        copy of their rows."""
        rows = self._rows(index)
        names = [f.name for f in fields(self)[2:]]  # f .. alpha_s: IntegrandBatch's fields
        parts = [getattr(self, name) for name in names]
        widths = [math.prod(t.shape[1:]) for t in parts]
        taken = [t[rows].reshape(-1, width).to(torch.float64)
                 for t, width in zip(parts, widths, strict=True)]
        host = torch.cat(taken, dim=1).cpu().numpy()
        out: list[np.ndarray] = []
        start = 0
        for t, width in zip(parts, widths, strict=True):
            cols = host[:, start:start + width]
            start += width
            out.append(np.ascontiguousarray(cols.reshape(len(host), *t.shape[1:])))
        values = dict(zip(names, out, strict=True))
        values["passed"] = values["passed"].astype(bool)
        return IntegrandBatch(prior=None, **values)

    def holds(self, x: torch.Tensor) -> bool:
        """Whether the recorded points are ``x``, bit for bit."""
        return x.shape == self.x.shape and bool(torch.equal(x.to(self.x.device), self.x))


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
        self.device = torch.device(device)
        self.pdf = None if integrand.pdf is None else DevicePDF(integrand.pdf, self.device)
        self.staging = HostStaging()
        self._group_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}

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
        """``(f, features, prior)`` of several channels' points at once: their matrix
        elements in one call (one host round trip for a host library, whatever the
        number of channels and subprocesses)."""
        states = [self._prepare(x, channel) for x, channel in batches]
        jobs = [job for st in states for job in st["jobs"]]
        results = self._matrix_elements(jobs, bool(self.integrand._amp2))
        out: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
        k = 0
        for (x, channel), st in zip(batches, states, strict=True):
            mine = results[k:k + len(st["jobs"])]
            k += len(st["jobs"])
            f, features, prior = self._finish(st, mine, details=self._records is not None)
            if self._records is not None:
                self._records.append(self._record(x, channel, st, f))
            out.append((f.to(x.dtype), features.to(x.dtype), prior.to(x.dtype)))
        return out

    def _prepare(self, x: torch.Tensor, channel: int) -> dict[str, Any]:
        """Everything of Integrand.__call__ before the matrix element: mapping, scales,
        alpha_s, luminosities, cuts; ``jobs`` are the matrix-element calls it needs."""
        ig = self.integrand
        if not 0 <= channel < self.n_channels:
            raise IndexError(f"channel {channel}: the process has {self.n_channels} channels")
        batch = ig.mappings[channel].map(x.detach().to(torch.float64).contiguous())
        mom, w, x12 = batch.momenta, batch.weight, batch.x1x2
        ig.n_points += len(mom)  # the run's "integrand calls", as Integrand.__call__
        group = ig.layout.group[channel]
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

        def density(beam: int, pid: int) -> torch.Tensor:
            if (beam, pid) not in parton:  # the beam's partons of the group at once
                assert self.pdf is not None
                xb = x12[idx, beam]
                pids = ig._beam_pids[group][beam]
                values = self.pdf.xfxQ2_flavours(pids, xb, mu ** 2) / xb[:, None]
                parton.update({(beam, q): values[:, j] for j, q in enumerate(pids)})
            return parton[beam, pid]

        # as Integrand.__call__: one cut mask per cut signature, and one matrix-element
        # job per shared matrix element (and mirror), over the union of the points its
        # subprocesses need
        masks: dict[int, torch.Tensor] = {}
        wanted: dict[object, tuple[Any, list[tuple[int, torch.Tensor, torch.Tensor]]]] = {}
        for k in ig.layout.groups[group]:
            sub, cut_key = ig.process.subprocesses[k], ig._cut_group[k]
            if cut_key not in masks:
                masks[cut_key] = cut_mask(ig.cuts[k], p)
            lum = (density(0, sub.pdgs[0]) * density(1, sub.pdgs[1]) if self.pdf is not None
                   else torch.ones_like(mu))
            ok = masks[cut_key] & (lum != 0)
            key = (k,) if sub.matrix_element is None else (sub.matrix_element, sub.mirror)
            wanted.setdefault(key, (sub, []))[1].append((k, ok, lum))
        for sub, parts in wanted.values():
            need = parts[0][1]
            for _, ok, _ in parts[1:]:
                need = need | ok
            rows = torch.nonzero(need).squeeze(1)
            if len(rows) == 0:
                continue
            # position of each needed point in the job's rows
            position = torch.cumsum(need.to(torch.int64), 0) - 1
            p_lib = p[rows]
            if sub.mirror:
                p_lib = p_lib[:, [1, 0, *range(2, p.shape[1])]]
            job = len(st["jobs"])
            st["jobs"].append(_MatrixElementJob(sub, rows, p_lib.contiguous(), alphas[rows]))
            for k, ok, lum in parts:
                sel = torch.nonzero(ok).squeeze(1)
                if len(sel):
                    st["parts"].append(_SubprocessPart(k, sel, lum[sel], job, position[sel]))
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
        prior_num = torch.zeros(n, self.n_channels, dtype=torch.float64, device=dev)
        passed_all = torch.zeros(n, dtype=torch.bool, device=dev)
        if len(idx):
            passed = torch.zeros(len(idx), dtype=torch.bool, device=dev)
            for job in st["jobs"]:
                ig.n_calls += len(job.rows)
            for sp in st["parts"]:
                m2_all, amp2_all = results[sp.job]
                m2 = m2_all[sp.position]
                k, sel, lum = sp.subprocess, sp.sel, sp.lum
                rows = idx[sel]
                part = lum * m2 * st["common"][sel]
                f[rows] += part
                if sub_f is not None:
                    sub_f[rows, k] = part
                passed[sel] = True
                if amp2_all is not None:
                    prior_num[rows] += lum[:, None] * self.integrand.amp2_per_channel(
                        k, amp2_all[sp.position])
            passed_all[idx] = passed
            if not ig._amp2:
                channels = list(ig.layout.channels_of(st["group"]))
                mine = self._group_tensors(st["group"], dev)[0]
                inside = torch.nonzero(passed).squeeze(1)
                pp = st["p"][inside]
                cols = [_propagator_prior(ig.process.channels[ig.layout.topology[c]], pp)
                        for c in channels]
                prior_num[idx[inside][:, None], mine] = torch.stack(cols, dim=1)
        st["sub_f"], st["passed"] = sub_f, passed_all
        in_group = self._group_tensors(st["group"], dev)[1]
        prior = _normalised_prior(prior_num, passed_all, in_group)
        feats = [mom[:, 2:].reshape(n, -1) / ig.beams.sqrt_s]
        if ig.beams.hadronic:
            feats.append(x12)
        return f, torch.cat(feats, dim=1), prior

    def _record(self, x: torch.Tensor, channel: int, st: dict[str, Any],
                f: torch.Tensor) -> DeviceRecord:
        """The event record's details of one channel's evaluation (``st`` after
        :meth:`_finish` with ``details``): what ``details=True`` gives in
        :meth:`Integrand.__call__ <madnis_py.integrand.Integrand.__call__>`."""
        mom, idx = st["mom"], st["idx"]
        scale = torch.zeros(len(mom), dtype=torch.float64, device=mom.device)
        alphas = torch.zeros_like(scale)
        if len(idx):
            scale[idx] = st["mu"].to(torch.float64)
            alphas[idx] = st["alphas"].to(torch.float64)
        return DeviceRecord(channel, x.detach(), f, mom, st["x12"], st["w"], st["passed"],
                            st["sub_f"], scale, alphas)

    def _group_tensors(self, group: int, device: torch.device
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """The channels of a subprocess group (indices) and its row of the channel mask,
        on ``device``: made once, not copied to the device for every batch."""
        key = (group, str(device))
        cache = self._group_cache
        if key not in cache:
            layout = self.integrand.layout
            cache[key] = (torch.tensor(list(layout.channels_of(group)), device=device),
                          torch.tensor([g == group for g in layout.group], device=device))
        return cache[key]

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
