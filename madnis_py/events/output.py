"""From a trained integrator to an LHE file: the one event-output pipeline.

``madnis-py run``/``generate`` in one process and every shard of a Dask run
(:mod:`madnis_py.distributed`) go through :func:`generate_events`: an
:class:`~madnis_py.events.generator.EventGenerator` with the run card's unweighting,
its maximum weight calibrated on :func:`calibration_size` points (or fixed by a driver),
and the accepted events streamed into an :class:`LHESink`, which writes them and keeps
the per-subprocess counts and largest weights that the ``<init>`` block
(:func:`lhe_init`) is made of.

The ``<init>`` arithmetic: subprocess ``k`` with ``n_k`` of the ``n`` events gets
``XSECUP = sigma n_k / n`` and ``XERRUP = XSECUP sqrt((error / sigma)^2 + (1 - n_k/n) /
n_k)`` (the integration error and the binomial error of the share, added in quadrature),
``XMAXUP`` its largest event weight and ``LPRUP = k + 1``; the weighting strategy asked
for is ``IDWTUP = 3`` (unweighted events of equal weight), and the writer lowers it to
what was written (:func:`~madnis_py.events.lhe.idwtup_for`: 4 when kept overweights make
the weights differ). Hadronic beams are protons (2212) with the PDF's LHAPDF id
(:func:`~madnis_py.events.banner.lhapdf_id`) in ``PDFSUP``; lepton beams carry the first
subprocess's incoming PDG ids and no PDF. Every event gets its s-channel resonances
(:class:`~madnis_py.events.resonances.ResonanceTable`) and the file the run's
:class:`~madnis_py.events.banner.Banner`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from madnis_py.events.banner import Banner, lhapdf_id
from madnis_py.events.lhe import LHEInit, LHEProcessInfo, LHEWriter
from madnis_py.events.resonances import ResonanceTable
from madnis_py.events.unweight import Unweighter, WeightReport, WeightTally

if TYPE_CHECKING:
    from madnis_py.cards.run_card import RunCard
    from madnis_py.events.generator import EventBatch, EventGenerator
    from madnis_py.events.recycle import RecordedDraw
    from madnis_py.integrand import Integrand
    from madnis_py.training import Integrator, MultiChannelResult

__all__ = ["GeneratedEvents", "LHESink", "calibration_size", "cross_section",
           "event_columns", "generate_events", "lhe_init", "unweighter_from_card"]

#: Weighted points for the maximum weight: the card's integration points, within these.
CALIBRATION_RANGE = (20_000, 200_000)


def calibration_size(card: RunCard) -> int:
    """Weighted points the maximum weight is calibrated on: the card's integration
    points, clipped to :data:`CALIBRATION_RANGE`."""
    low, high = CALIBRATION_RANGE
    return max(low, min(int(card.integration.points), high))


def unweighter_from_card(card: RunCard) -> Unweighter:
    """The card's ``[unweighting]`` table as an :class:`Unweighter`."""
    u = card.unweighting
    return Unweighter(method=u.max_weight, quantile=u.quantile, replicas=u.replicas,
                      truncation=u.max_overweight_truncation, overweight=u.overweight)


def cross_section(mc: Integrator, card: RunCard, *,
                  progress: Callable[[int], None] | None = None) -> MultiChannelResult:
    """The integrator's last integration, or a new one with the card's settings when the
    checkpoint it was loaded from holds none (``progress``: see
    :meth:`~madnis_py.training.Integrator.integrate`)."""
    result = mc.last_result
    if result is None:
        result = mc.integrate(**card.integrate_options(mc.n_active), progress=progress)
    return result


def lhe_init(integrand: Integrand, sigma: float, error: float,
             counts: npt.ArrayLike, xmax: npt.ArrayLike) -> LHEInit:
    """The ``<init>`` block of events with ``counts[k]`` events of subprocess ``k`` whose
    largest weight is ``xmax[k]`` (see the module docstring for the arithmetic).

    Parameters
    ----------
    integrand
        The physics integrand the events come from (beams, energy, PDF).
    sigma, error
        Cross section and its error in pb.
    counts, xmax
        Per subprocess, in the process's subprocess order.
    """
    proc = integrand.process
    n_k = np.asarray(counts, dtype=np.int64)
    w_k = np.asarray(xmax, dtype=np.float64)
    n = int(n_k.sum())
    processes = []
    for k, nk in enumerate(n_k.tolist()):
        if nk == 0:
            continue
        share = nk / n
        rel = math.sqrt((error / sigma) ** 2 + (1 - share) / nk)
        processes.append(LHEProcessInfo(sigma * share, sigma * share * rel, float(w_k[k]),
                                        k + 1))
    if not processes:  # no events: the accord still wants one process line
        processes.append(LHEProcessInfo(sigma, error, sigma, 1))
    if proc.hadronic:
        idbmup = (2212, 2212)
        lhaid = lhapdf_id(integrand.pdf)
        pdfsup = (lhaid, lhaid)
    else:
        first = proc.subprocesses[0].pdgs
        idbmup = (int(first[0]), int(first[1]))
        pdfsup = (0, 0)
    half = integrand.sqrt_s / 2
    return LHEInit(idbmup, (half, half), 3, processes, pdfgup=(0, 0), pdfsup=pdfsup)


def event_columns(integrand: Integrand) -> dict[str, Any]:
    """The LHE particle columns every event of the process shares, as
    :meth:`LHEWriter.write_batch` keywords: status codes (``istup``), mothers
    (``mothup``: the two incoming partons for every outgoing particle), generated masses
    (``masses``) and alpha_QED (``aqed``, from the param card's ``SMINPUTS 1``)."""
    proc = integrand.process
    n_out = proc.n_particles - 2
    return {"istup": np.array([-1, -1] + [1] * n_out),
            "mothup": np.array([[0, 0], [0, 0]] + [[1, 2]] * n_out),
            "masses": np.array([0.0, 0.0] + list(integrand.masses)),
            "aqed": 1.0 / proc.parameters().get("sminputs", 1)}


class LHESink:
    """Where accepted events go: an :class:`LHEWriter`, plus what its ``<init>`` needs
    (events and largest weight per subprocess) and, optionally, the first ``keep``
    events in memory (for plots).

    Parameters
    ----------
    writer
        The open writer.
    integrand
        The physics integrand of the events (shared particle columns, subprocesses).
    keep
        Events to keep in :attr:`sample` (whole batches, until at least ``keep``).
    on_events
        Called with the number of events of each batch written (a progress bar).
    """

    def __init__(self, writer: LHEWriter, integrand: Integrand, *, keep: int = 0,
                 on_events: Callable[[int], None] | None = None) -> None:
        self.writer = writer
        self.integrand = integrand
        n_sub = len(integrand.process.subprocesses)
        self.counts = np.zeros(n_sub, dtype=np.int64)
        self.xmax = np.zeros(n_sub)
        self.keep = int(keep)
        self.sample: list[EventBatch] = []
        self._kept = 0
        self._columns = event_columns(integrand)
        self._resonances = ResonanceTable.from_process(integrand.process)
        self._topology = np.asarray(integrand.layout.topology, dtype=np.int64)
        self._on_events = on_events

    def __call__(self, events: EventBatch) -> None:
        self.writer.write_batch(**self._resonances.add(
            self._topology[events.channel], events.subprocess, idup=events.pdgs,
            icolup=events.colours,
            momenta=events.momenta, weights=events.weights, scales=events.scales,
            aqcd=events.alpha_s, idprup=events.subprocess + 1, **self._columns))
        np.add.at(self.counts, events.subprocess, 1)
        np.maximum.at(self.xmax, events.subprocess, events.weights)
        if self._kept < self.keep:
            self.sample.append(events)
            self._kept += len(events)
        if self._on_events is not None:
            self._on_events(len(events))

    def init(self, sigma: float, error: float) -> LHEInit:
        """The ``<init>`` block of the events written so far (:func:`lhe_init`)."""
        return lhe_init(self.integrand, sigma, error, self.counts, self.xmax)


@dataclass
class GeneratedEvents:
    """What :func:`generate_events` did.

    Attributes
    ----------
    path : Path
        The LHE file.
    n_events : int
    w_max, norm : float
        The maximum weight and overweight normalisation used.
    efficiency : float
        Accepted / unweighted points (after calibration; recorded draws included).
    n_overweight : int
        Accepted events with ``w > w_max``.
    truncation_bias : float
        Relative cross-section bias of truncated overweights (0 when kept).
    n_calls, n_weighted : int
        Integrand calls and weighted points of this generation, the calibration included.
    calibration_calls : int
        Of ``n_calls``, the calibration's (0 when ``w_max`` was given).
    written : WeightTally or None
        Sums of the written weights (in units of sigma), which add up across shards.
    reference : ndarray or None
        The weighted sample of ``report``'s share above ``w_max`` and efficiencies.
    reevaluated : int
        Of ``n_calls``, second evaluations of accepted points (0 when the integrand
        records its first evaluation, :class:`~madnis_py.events.generator.EventGenerator`).
    recycled, recycle_skipped : dict
        Events from each draw evaluated before generation, and the draws left out with
        their share of the cross section above ``w_max``
        (:class:`~madnis_py.events.generator.GenerationSummary`).
    validation : list of float
        The share of sigma above ``w_max`` of each fresh draw that checked it before
        events were taken (:meth:`~madnis_py.events.generator.EventGenerator.validate`).
    allocation : {"max_weight", "sigma"}
    allocation_acceptance : dict
        How the draws were shared among the channels, and with ``allocation = "auto"``
        each candidate's acceptance out of sample, by which it chose
        (:class:`~madnis_py.events.generator.GenerationSummary`).
    raised : list of float
    thinned : int
        ``w_max`` after each rise on the events' own draws, and the held events those
        rises took away (:meth:`~madnis_py.events.generator.EventGenerator.generate`).
    lowered : list of float
        ``w_max`` after each fall on the events' own draws
        (:class:`~madnis_py.events.stream.EventStream`).
    subprocess_events : list of int
    max_weights : list of float
        Events and largest event weight per subprocess (0 where none).
    generate_s : float
        Seconds to calibrate, generate and write.
    report : WeightReport or None
        The weights written: effective sample size, largest weight over ``w_max``, the
        cross-section share above ``w_max`` and the three unweighting efficiencies.
    sample : list of EventBatch
        The first events (``keep``), for plots.
    generator : EventGenerator
        The generator, for further weighted draws (plots).
    """

    path: Path
    n_events: int
    w_max: float
    norm: float
    efficiency: float
    n_overweight: int
    truncation_bias: float
    n_calls: int
    n_weighted: int
    subprocess_events: list[int]
    max_weights: list[float]
    generate_s: float
    report: WeightReport | None = None
    sample: list[EventBatch] = field(default_factory=list, repr=False)
    generator: EventGenerator | None = field(default=None, repr=False)
    calibration_calls: int = 0
    reevaluated: int = 0
    written: WeightTally | None = None
    reference: np.ndarray | None = field(default=None, repr=False)
    recycled: dict[str, int] = field(default_factory=dict)
    recycle_skipped: dict[str, float] = field(default_factory=dict)
    validation: list[float] = field(default_factory=list)
    allocation: str = "sigma"
    allocation_acceptance: dict[str, float] = field(default_factory=dict)
    raised: list[float] = field(default_factory=list)
    thinned: int = 0
    lowered: list[float] = field(default_factory=list)


def generate_events(mc: Integrator, card: RunCard, n_events: int, path: Path, *,
                    sigma: float, error: float, seed: int, w_max: float | None = None,
                    norm: float = 1.0, batch: int | None = None,
                    header: str | Banner | None = None,
                    keep: int = 0,
                    on_events: Callable[[int], None] | None = None,
                    on_calibration: Callable[[int], None] | None = None,
                    calibration: npt.NDArray[np.float64] | None = None,
                    calibration_channels: npt.NDArray[np.int64] | None = None,
                    channel_maxima: Sequence[float] | None = None,
                    reevaluate: bool = False,
                    recycled: Sequence[RecordedDraw] = (),
                    settle: bool = False, calibration_points: int = 0) -> GeneratedEvents:
    """``n_events`` unweighted events of a trained integrator into the LHE file ``path``.

    The generator uses the card's unweighting (:func:`unweighter_from_card`) and draws
    with ``seed``; unless ``w_max`` (with its overweight normalisation ``norm``) is given,
    the maximum weight is calibrated on :func:`calibration_size` points first. The file
    is written through :class:`LHEWriter` (a temporary name renamed when complete), its
    ``<init>`` from the events written (:func:`lhe_init`).

    Parameters
    ----------
    mc
        A trained integrator on a physics integrand.
    card
        The run card (unweighting settings, calibration size).
    n_events
        Events to write, exactly.
    path
        The LHE file (its directory must exist).
    sigma, error
        Cross section and error in pb the events are normalised to.
    seed
        Seeds the generator's accept/reject and flavour/colour choices.
    w_max, norm
        A maximum weight fixed elsewhere (the driver of a sharded run).
    settle
        With ``w_max``: it may still rise on the draws of these events (``[unweighting]
        settle_events``), as a calibrated one does; the driver of a sharded run
        calibrated it. Without, it is used as given.
    calibration_points
        With ``settle``: the points ``w_max`` was calibrated on; the draws may lower it
        once they have four times as many (0: never lowered).
    batch
        Weighted points per draw (default: the generator's).
    header
        Header of the LHE file: the run's :class:`Banner` (param and run cards) or text.
    keep, on_events
        See :class:`LHESink`.
    on_calibration
        Called with the number of weighted points of each channel's share of the
        calibration (:func:`calibration_size` in all; never called when ``w_max`` or
        ``calibration`` is given). It draws nothing: the events do not depend on it.
    calibration
        Event weights already drawn from the integrator as it is now (the run's
        integration, :attr:`~madnis_py.training.Integrator.last_weights`): ``w_max`` is
        calibrated on them instead of on new points.
    calibration_channels
        The channel of each point of ``calibration``: with the card's ``allocation =
        "max_weight"``, the draws are shared by the channels' maxima on it
        (:mod:`madnis_py.events.allocation`); without them, by the integrator's sigmas.
    channel_maxima
        With ``w_max``: the channels' maxima that share the draws, fixed with it
        (:attr:`EventGenerator.channel_maxima
        <madnis_py.events.generator.EventGenerator.channel_maxima>` of the driver).
    reevaluate
        Evaluate accepted points a second time for their event record (the reference
        path; by default it is kept from the first evaluation, see
        :class:`~madnis_py.events.generator.EventGenerator`).
    recycled
        Points evaluated before, with their records, to take events from first (the
        survey's last rounds, the integration; see
        :meth:`~madnis_py.events.generator.EventGenerator.generate`).

    Raises
    ------
    RuntimeError
        The generator returned another number of events than asked for.
    """
    from madnis_py.events.generator import EventGenerator

    t0 = time.perf_counter()
    gen = EventGenerator(mc, sigma, seed=seed, unweighter=unweighter_from_card(card),
                         reevaluate=reevaluate, allocation=card.unweighting.allocation)
    gen.settle_events = card.unweighting.settle_events
    if w_max is None and calibration is not None:
        gen.calibrate_on(calibration, calibration_channels)
        recycled = gen.plan_recycling(recycled, n_events)
    elif w_max is None:
        gen.calibrate(calibration_size(card), progress=on_calibration)
    else:
        gen.fix_max_weight(w_max, norm, channel_maxima, settle=settle,
                           calibration_points=calibration_points)
    with LHEWriter(path, header=header) as writer:
        sink = LHESink(writer, gen.integrand, keep=keep, on_events=on_events)
        if batch is None:
            _, summary = gen.generate(n_events, sink=sink, recycled=recycled)
        else:
            _, summary = gen.generate(n_events, batch=batch, sink=sink, recycled=recycled)
        if summary.n_events != n_events:  # the generator's contract, checked
            raise RuntimeError(f"{summary.n_events} events generated, {n_events} "
                               "requested")
        writer.set_init(sink.init(sigma, error))
    return GeneratedEvents(
        path=Path(path), n_events=summary.n_events, w_max=float(summary.max_weight),
        norm=float(gen.norm), efficiency=summary.efficiency,
        n_overweight=summary.n_overweight, truncation_bias=summary.truncation_bias,
        n_calls=int(summary.n_calls), n_weighted=int(summary.n_weighted),
        subprocess_events=sink.counts.tolist(), max_weights=sink.xmax.tolist(),
        generate_s=time.perf_counter() - t0, report=summary.report, sample=sink.sample,
        generator=gen, calibration_calls=int(summary.calibration_calls),
        reevaluated=int(summary.reevaluated), written=summary.written,
        reference=summary.reference, recycled=dict(summary.recycled),
        recycle_skipped=dict(summary.recycle_skipped), validation=list(summary.validation),
        allocation=summary.allocation,
        allocation_acceptance=dict(summary.allocation_acceptance),
        raised=list(summary.raised), thinned=summary.thinned,
        lowered=list(summary.lowered))
