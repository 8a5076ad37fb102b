"""Unweighted physical events from a trained integrator: flavours, colours, momenta.

The trained :class:`~madnis_py.Integrator` draws weighted points channel by channel
(:meth:`~madnis_py.Integrator.random_batch`); the event weight of a point of channel i is
``alpha_i f / q_i * n / n_i`` (the stratified allocation included), whose mean is the
cross section. Generation then

1. fixes the maximum weight ``w_max`` on a calibration sample (exact maximum, a high
   quantile, or the median of replica maxima, :mod:`madnis_py.events.unweight`), after
   sharing the draws that follow among the channels by each one's own maximum weight
   (madevent's per-channel unweighting) or by the integrator's standard deviations,
   whichever accepts more out of sample (:mod:`madnis_py.events.allocation`),
2. draws batches, keeping for every point what its event record needs (the subprocess
   parts of ``f``, the scale, alpha_s and the momenta,
   :meth:`~madnis_py.integrand.TorchChannels.recording`), and accepts each point with
   probability ``min(1, w / w_max)`` (with numpy on the host, or on the integrator's GPU
   where its weights are, ``accept_on``),
3. picks each accepted event's subprocess in proportion to its part of ``f`` and one of
   the subprocess's colour flows (the card's, else leading colour,
   :mod:`madnis_py.events.colour`), uniformly,
4. gives every event the weight ``sigma`` (``max(1, w / w_max) sigma c`` for overweight
   events kept, with ``c`` fixed on the calibration sample so that the mean event weight
   is ``sigma``), MadGraph's ``event_norm = average``.

Every integrand call is a drawn point: generation costs ``1 / eps_uw`` calls per event
(plus the calibration). An integrator whose integrand cannot record (no ``recording``)
or ``reevaluate=True`` evaluates the accepted points a second time instead
(``(1 + eps_uw) / eps_uw`` calls per event); both give the same events, bit for bit
where the matrix element returns the same |M|^2 with and without the per-diagram parts.
The cross section of each subprocess (for the LHE ``<init>``) is ``sigma`` times its
share of the accepted events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from madnis_py.events.allocation import (
    ALLOCATIONS,
    Allocation,
    AllocationChoice,
    channel_max_weights,
    choose_allocation,
    reweigh,
)
from madnis_py.events.colour import leading_colour_flows
from madnis_py.events.device_unweight import accept_on_device
from madnis_py.events.recycle import RecordedDraw, plan_recycling
from madnis_py.events.stream import EventStream
from madnis_py.events.unweight import (
    Acceptance,
    Unweighter,
    WeightReport,
    WeightTally,
    accept,
    share_above,
)
from madnis_py.integrand import EvaluationRecord, Integrand, IntegrandBatch
from madnis_py.training.multichannel import WeightedBatch, allocate, allocation_shares

__all__ = ["ACCEPT_ON", "BATCH", "BATCH_PER_CHANNEL", "EventBatch", "EventGenerator",
           "GenerationSummary", "accept_seed", "default_batch", "draw_size", "events_of_records"]

#: Where the accept/reject of drawn batches runs (:class:`EventGenerator`'s ``accept_on``).
ACCEPT_ON = ("host", "device")
#: The stream of :func:`accept_seed` ("acc" in ASCII).
ACCEPT_STREAM = 0x616363

#: The smallest draw (points) when fewer would do: each draw has a fixed cost per channel.
MIN_DRAW = 1000
#: Weighted points per draw of :meth:`EventGenerator.generate` at least ...
BATCH = 20_000
#: ... and per channel drawn, where that is more (:func:`default_batch`).
BATCH_PER_CHANNEL = 200


def default_batch(n_channels: int) -> int:
    """Weighted points per draw of the generation with ``n_channels`` channels drawn:
    :data:`BATCH`, or :data:`BATCH_PER_CHANNEL` per channel where that is more.

    A draw has a fixed cost per channel it draws (the channel's sampler, its slice of the
    integrand's batch, its channel weights), which a draw of a few points per channel
    does not amortise: p p > e+ e- j j QCD=0 (1464 channels, VEGAS maps) generated 38k
    points/s in draws of 20,000, 84k in draws of 100,000 and 118k in draws of 300,000
    (``benchmarks/RESULTS.md``).
    """
    if n_channels < 0:
        raise ValueError(f"n_channels must be >= 0, got {n_channels}")
    return max(BATCH, BATCH_PER_CHANNEL * n_channels)


def accept_seed(seed: int) -> int:
    """The seed of the device accept/reject's generator for a generation ``seed``:
    ``numpy.random.SeedSequence([seed, ACCEPT_STREAM])``, 63 bits, independent of the
    integrator's stream of the same seed."""
    state = np.random.SeedSequence([int(seed), ACCEPT_STREAM]).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(1))


def draw_size(need: int, acceptance: float | None, batch: int) -> int:
    """Weighted points to draw for ``need`` more events at ``acceptance`` per point.

    Enough that the draw falls short with a chance of about 0.1 % (the mean plus three
    standard deviations of the binomial number of points needed), at least
    ``min(MIN_DRAW, batch)`` and at most ``batch``; ``batch`` when the acceptance is not
    known yet. The unused tail of the last draw, up to a whole batch before, is what the
    events of a run did not need.
    """
    if need <= 0:
        raise ValueError(f"need must be > 0, got {need}")
    if acceptance is None or not 0.0 < acceptance <= 1.0:
        return batch
    mean = need / acceptance
    spread = 3.0 * math.sqrt(need * (1.0 - acceptance)) / acceptance
    return int(min(batch, max(math.ceil(mean + spread), min(MIN_DRAW, batch))))


@dataclass
class EventBatch:
    """Events of one process, batch-first.

    Attributes
    ----------
    pdgs : (n, nparticles) int
    colours : (n, nparticles, 2) int
        LHE colour and anticolour tags, 0 for none.
    momenta : (n, nparticles, 4)
        (E, px, py, pz) in GeV, lab frame, incoming first.
    weights : (n,)
        Event weights in pb.
    scales, alpha_s : (n,)
    subprocess : (n,) int
        Index of the process card's subprocess.
    channel : (n,) int
        The channel that drew the event.
    """

    pdgs: np.ndarray
    colours: np.ndarray
    momenta: np.ndarray
    weights: np.ndarray
    scales: np.ndarray
    alpha_s: np.ndarray
    subprocess: np.ndarray
    channel: np.ndarray

    def __len__(self) -> int:
        return len(self.weights)

    @staticmethod
    def concatenate(batches: list[EventBatch]) -> EventBatch:
        """One batch from several."""
        return EventBatch(*(np.concatenate([getattr(b, f) for b in batches])
                            for f in ("pdgs", "colours", "momenta", "weights", "scales",
                                      "alpha_s", "subprocess", "channel")))

    def take(self, index: np.ndarray | slice) -> EventBatch:
        """The events at ``index``."""
        return EventBatch(self.pdgs[index], self.colours[index], self.momenta[index],
                          self.weights[index], self.scales[index], self.alpha_s[index],
                          self.subprocess[index], self.channel[index])


@dataclass
class GenerationSummary:
    """What a generation run did.

    Attributes
    ----------
    n_events : int
        Unweighted events produced.
    n_weighted : int
        Weighted points drawn (calibration included).
    n_calls : int
        Integrand calls of this generator so far: the weighted points (calibration
        included) plus the second evaluations of accepted points (``reevaluate``).
    calibration_calls : int
        Of ``n_calls``, those of the calibration sample.
    reevaluated : int
        Of ``n_calls``, the second evaluations of accepted points (0 unless the
        integrand cannot record or ``reevaluate=True``).
    written : WeightTally or None
        Sums of the written events' weights in units of ``sigma`` (``report`` has their
        ESS and largest weight over the nominal ``c``): shards' tallies add up.
    reference : ndarray or None
        The weighted sample ``report``'s share above ``w_max`` and efficiencies were
        measured on.
    max_weight : float
        The ``w_max`` used.
    efficiency : float
        Accepted / unweighted points, after calibration (the unweighting efficiency),
        the recorded draws' points included.
    n_overweight : int
        Accepted events with ``w > w_max``.
    truncation_bias : float
        Relative cross-section bias of truncated overweights (0 when kept).
    subprocess_events : list of int
        Events per subprocess.
    seconds : float
        Wall time.
    report : WeightReport or None
        ESS and largest weight of the written events, share of sigma above ``w_max`` and
        eps_uw three ways, on the calibration sample (on the first batch when ``w_max`` was
        fixed elsewhere).
    recycled : dict
        Events taken from each recorded draw (its source) evaluated before generation.
    recycle_skipped : dict
        Recorded draws left out, with their share of the cross section above ``w_max``
        (by :meth:`EventGenerator.plan_recycling`, or more than the generator's
        :meth:`EventGenerator.recycle_limit`).
    validation : list of float
        The share of sigma above ``w_max`` of each validation draw, out of sample
        (:meth:`EventGenerator.validate`; empty where it did not run).
    allocation : {"max_weight", "sigma"}
        How the draws were shared among the channels: by their maxima or by the
        integrator's allocation (:mod:`madnis_py.events.allocation`).
    allocation_acceptance : dict
        With ``allocation="auto"``: each candidate's acceptance on the calibration
        sample's held-out halves, by which it chose (empty otherwise).
    raised : list of float
        ``w_max`` after each rise on the draws of the events themselves, while the
        first events were held back (:meth:`EventGenerator.generate`; ``max_weight`` is
        the last).
    lowered : list of float
        ``w_max`` after each fall on the draws of the events, where all of them showed
        it too high (:class:`~madnis_py.events.stream.EventStream`).
    thinned : int
        Held events the rises took away again (more points were drawn for them).
    """

    n_events: int
    n_weighted: int
    n_calls: int
    max_weight: float
    efficiency: float
    n_overweight: int
    truncation_bias: float
    subprocess_events: list[int] = field(default_factory=list)
    seconds: float = 0.0
    report: WeightReport | None = None
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
    lowered: list[float] = field(default_factory=list)
    thinned: int = 0

    @property
    def recycled_events(self) -> int:
        """Events from points evaluated before generation (``recycled``)."""
        return sum(self.recycled.values())

    @property
    def calls_per_event(self) -> float:
        """Integrand calls per unweighted event (calibration included; inf without
        events)."""
        return self.n_calls / self.n_events if self.n_events else math.inf


class EventGenerator:
    """Unweighted events of a process from a trained multi-channel integrator.

    Parameters
    ----------
    integrator : madnis_py.Integrator
        Trained on a process (its integrand wraps a physics ``Integrand``).
    sigma : float
        The cross section in pb the events are normalised to (the integrator's
        :meth:`~madnis_py.Integrator.integrate` result).
    unweighter : Unweighter
        How the maximum weight is chosen and overweights are treated.
    seed : int
        Seeds the accept/reject and flavour/colour choices, and reseeds the integrator's
        own generator, which draws the points.
    allocation : {"auto", "max_weight", "sigma"}
        How the draws are shared among the channels (:mod:`madnis_py.events.allocation`):
        by each channel's own maximum weight on the calibration sample, by the
        integrator's standard deviations, or (``"auto"``) by the one of the two with the
        larger acceptance on the calibration sample's held-out halves.
    reevaluate : bool
        Evaluate accepted points a second time for their event record instead of
        keeping it from the first evaluation (the reference; the default when the
        integrator's integrand has no ``recording``).
    accept_on : {"host", "device"} or None
        Where the accept/reject of each drawn batch runs. ``"host"``: numpy, from the
        batch's weights (:func:`~madnis_py.events.unweight.accept`). ``"device"``: on the
        integrator's device, uniforms from a torch generator there seeded from ``seed``
        (:func:`accept_seed`: never the integrator's own stream), and only the accepted
        points' indices and weights cross to the host
        (:func:`~madnis_py.events.device_unweight.accept_on_device`). ``None``: the
        device when the integrator runs on a GPU, else the host. The two accept different
        points for one seed (different random numbers) from the same draws. The
        calibration sample and the recorded draws are host arrays and unweighted there.
    """

    def __init__(self, integrator: Any, sigma: float, *, unweighter: Unweighter,
                 seed: int = 0, reevaluate: bool = False,
                 allocation: Allocation = "auto",
                 accept_on: str | None = None) -> None:
        physics = getattr(integrator.integrand, "integrand", None)
        if not isinstance(physics, Integrand):
            raise TypeError("event generation needs an integrator built on a process "
                            "(its integrand must be a physics Integrand)")
        if not sigma > 0 or not math.isfinite(sigma):
            raise ValueError(f"sigma must be a positive cross section, got {sigma!r}")
        if allocation not in ALLOCATIONS:
            raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
        device = torch.device(getattr(integrator, "device", "cpu"))
        if accept_on is None:
            accept_on = "host" if device.type == "cpu" else "device"
        if accept_on not in ACCEPT_ON:
            raise ValueError(f"accept_on must be one of {ACCEPT_ON} or None, got {accept_on!r}")
        #: Where drawn batches are accepted or rejected (``"host"`` or ``"device"``).
        self.accept_on = accept_on
        #: The uniforms of the accept/reject on the device (``accept_on="device"``): a
        #: stream of its own, never the integrator's (same device, same seed: the same
        #: numbers that drew the points, which would accept each point on its own
        #: coordinates).
        self.device_rng = (torch.Generator(device=device).manual_seed(accept_seed(seed))
                           if accept_on == "device" else None)
        self.integrator = integrator
        self.allocation: Allocation = allocation
        #: Each channel's own maximum weight, by which the draws are shared
        #: (``allocation="max_weight"``, or ``"auto"`` choosing it,
        #: :mod:`madnis_py.events.allocation`); ``None`` until calibrated, and where the
        #: draws follow the integrator's allocation.
        self.channel_maxima: np.ndarray | None = None
        #: With ``allocation="auto"``: the allocation chosen on the calibration sample
        #: and each candidate's acceptance there, out of sample
        #: (:func:`~madnis_py.events.allocation.choose_allocation`); else ``None``.
        self.allocation_choice: AllocationChoice | None = None
        self.integrand: Integrand = physics
        self.sigma = float(sigma)
        self.unweighter = unweighter
        self.rng = np.random.default_rng(seed)
        # A loaded checkpoint restores the generator's state: without this, generation
        # from one checkpoint drew the same points whatever the seed.
        integrator.generator.manual_seed(seed)
        proc = physics.process
        flows = [sub.colour_flows or leading_colour_flows(sub.pdgs)
                 for sub in proc.subprocesses]
        self.n_flows = np.array([len(f) for f in flows], dtype=np.int64)
        # (subprocess, flow, particle, 2), padded with the subprocess's first flow
        self.flows = np.stack([np.asarray([*f, *[f[0]] * (self.n_flows.max() - len(f))],
                                          dtype=np.int64) for f in flows])
        self.pdgs = np.asarray([sub.pdgs for sub in proc.subprocesses], dtype=np.int64)
        self.w_max: float | None = None
        self.calibration_weights: np.ndarray | None = None
        #: Draws of fresh points that check ``w_max`` out of sample before any event is
        #: taken (:meth:`validate`): at most this many, each raising ``w_max`` to the
        #: validation draws' own when its share of sigma above ``w_max`` is more than
        #: twice the truncation. 0 turns the check off.
        self.validation_rounds = 5
        #: The share of sigma above ``w_max`` of each validation draw (out of sample).
        self.validation: list[float] = []
        #: Events :meth:`generate` holds back while ``w_max`` may still rise on the
        #: draws themselves (see there); 0 writes every event at once, with ``w_max``
        #: as calibrated and validated.
        self.settle_events = 200_000
        # whether generate may raise w_max on its draws: calibrated here, or fixed by a
        # driver that calibrated it (fix_max_weight(settle=True)); not one given as is
        self._settles = False
        # the points w_max was calibrated on (here, or by a sharded run's driver)
        self._calibration_points = 0
        self.norm = 1.0
        self.n_calls = 0
        self.n_weighted = 0
        self.calibration_calls = 0
        self.reevaluated = 0
        self.records = not reevaluate and callable(getattr(integrator.integrand, "recording",
                                                           None))
        # recorded draws plan_recycling left out, with their share of sigma above w_max
        self._not_planned: dict[str, float] = {}
        # every recorded draw plan_recycling was given: planned again from all of them
        # when fresh draws raise w_max (generate)
        self._candidates: list[RecordedDraw] = []

    def weighted(self, n: int, *, progress: Callable[[int], None] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        """``n`` weighted points (the integrator's :meth:`~madnis_py.Integrator.random_batch`):
        event weights (n,), channels (n,) and points (n, d) in the integrand's
        coordinates (channels of equal dimension). ``progress(n_i)`` follows each
        channel's draw (``n`` points in all)."""
        batch = self._draw(n, progress=progress)
        return batch.weights(), batch.channels(), batch.points()

    def _draw(self, n: int, *, progress: Callable[[int], None] | None = None
              ) -> WeightedBatch:
        """``n`` weighted points of the integrator, counted."""
        batch: WeightedBatch = self.integrator.random_batch(n, counts=self._counts(n),
                                                            progress=progress)
        self.n_weighted += n
        self.n_calls += n
        return batch

    def _accept(self, batch: WeightedBatch) -> tuple[Acceptance, np.ndarray | torch.Tensor]:
        """The accept/reject of a drawn batch against ``w_max``, where :attr:`accept_on`
        says, and the batch's weights it was made on (a host array, or a tensor where
        the weights are)."""
        assert self.w_max is not None
        if self.device_rng is not None:
            on_device = batch.weight_tensor()
            return accept_on_device(on_device, self.w_max, self.device_rng), on_device
        weights = batch.weights()
        return accept(weights, self.w_max, self.rng), weights

    def recorded(self, n: int) -> tuple[np.ndarray, np.ndarray, torch.Tensor,
                                        list[EvaluationRecord]]:
        """:meth:`weighted` with the integrand's details of every point (one
        record (:class:`~madnis_py.integrand.EvaluationRecord`) per channel drawn, in the batch's
        order); needs an integrand with ``recording``."""
        with self.integrator.integrand.recording() as records:
            w, channels, x = self.weighted(n)
        return w, channels, x, records

    def _counts(self, n: int) -> np.ndarray | None:
        """Points per channel of a draw of ``n``: by the channels' maxima once calibrated
        when shared by maxima (:attr:`channel_maxima`), else ``None`` (the integrator's
        allocation)."""
        if self.channel_maxima is None:
            return None
        mc = self.integrator
        return allocate(n, self.channel_maxima, min_fraction=mc.min_fraction,
                        active=mc.active)

    def calibrate(self, n: int, *, progress: Callable[[int], None] | None = None) -> float:
        """Fix ``w_max`` (and the normalisation of overweight events, and the channels'
        shares of the draws) on ``n`` points. ``progress(n_i)`` follows each channel's
        share of the points (``n`` in all); the points and the result do not depend on
        it."""
        w, channels, _ = self.weighted(n, progress=progress)
        self.calibration_calls += n
        return self.calibrate_on(w, channels)

    def calibrate_on(self, w: np.ndarray, channels: np.ndarray | None = None) -> float:
        """Fix ``w_max`` (and the overweight normalisation) on event weights ``w`` drawn
        from the integrator as it is now, e.g. its integration's
        (:attr:`~madnis_py.training.Integrator.last_weights`), with no new points.

        With the ``channels`` of the points and ``allocation="max_weight"``, the draws
        that follow are first shared by the channels' own maxima on this sample
        (:mod:`madnis_py.events.allocation`), and ``w_max`` is calibrated on the same
        points weighted as that allocation draws them; with ``"auto"``, so if the
        maxima accept more than the integrator's allocation on held-out halves of the
        sample (:attr:`allocation_choice`)."""
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 1 or not np.any(w > 0):
            raise ValueError("calibration weights must be a 1D array with a weight > 0")
        if channels is not None and self.allocation != "sigma":
            w = self._share_by_maxima(w, np.asarray(channels))
        u = self.unweighter
        self.w_max = u.max_weight(w, self.rng)
        self._settles = True
        self._calibration_points = len(w)
        self.calibration_weights = w
        r = w / self.w_max
        # mean event weight sigma: kept overweights carry max(1, r), and c normalises
        self.norm = (float(np.minimum(r, 1).mean() / r.mean()) if u.overweight == "keep"
                     else 1.0)
        return self.w_max

    @property
    def drawn_by(self) -> str:
        """How the draws are shared among the channels now: ``"max_weight"`` (by
        :attr:`channel_maxima`) or ``"sigma"`` (the integrator's allocation)."""
        return "sigma" if self.channel_maxima is None else "max_weight"

    def _share_by_maxima(self, w: np.ndarray, channels: np.ndarray) -> np.ndarray:
        """Set :attr:`channel_maxima` from the calibration sample ``w`` (of ``channels``)
        and return its weights as the new shares draw them; ``w`` itself where no
        channel has a maximum or a channel of the sample would get no share."""
        mc = self.integrator
        u = self.unweighter
        if self.allocation == "auto":
            by_sigma = allocation_shares(mc.sigmas, min_fraction=mc.min_fraction,
                                         active=mc.active)
            self.allocation_choice = choose_allocation(
                w, channels, by_sigma, max_weight=lambda part: u.max_weight(part, self.rng),
                truncation=u.truncation, rng=self.rng, min_fraction=mc.min_fraction,
                active=mc.active)
            if self.allocation_choice.allocation == "sigma":
                self.channel_maxima = None
                return w
        maxima = channel_max_weights(w, channels, mc.n_channels,
                                     lambda part: u.max_weight(part, self.rng))
        shares = allocation_shares(maxima, min_fraction=mc.min_fraction, active=mc.active)
        if not np.any(maxima > 0) or not np.all(shares[channels] > 0):
            return w
        self.channel_maxima = maxima
        return reweigh(w, channels, shares)

    def validate(self, n: int) -> list[tuple[WeightedBatch, list[EvaluationRecord]]]:
        """Check ``w_max`` on fresh points before events are taken. The calibration
        sample chose it, and with the draws shared by maxima also each channel's share
        of the draws: there its own share of sigma above ``w_max`` is the truncation by
        construction, but a channel with a few hundred points there has its maximum,
        and so its share, set too low, and fresh draws exceed ``w_max`` by far more (a
        1e-3 truncation became 5 % of sigma with 528 channels). Up to
        :attr:`validation_rounds` draws of ``n`` points with the shares as they are:
        each one's share above ``w_max`` is recorded (:attr:`validation`); above twice
        the truncation, ``w_max`` becomes the truncation-defined maximum of all the
        validation draws so far (drawn as the events are), if higher, and the next draw
        checks it. Only with the ``"truncation"`` maximum weight, truncated overweights
        and ``w_max`` calibrated here. Returns the draws (with their records where the
        integrand keeps them): fresh points like any other, which :meth:`generate`
        takes events from."""
        u = self.unweighter
        held: list[tuple[WeightedBatch, list[EvaluationRecord]]] = []
        self.validation = []
        if (self.calibration_weights is None or self.validation_rounds <= 0
                or u.method != "truncation" or u.overweight != "truncate"):
            return held
        fresh: list[np.ndarray] = []
        for _ in range(self.validation_rounds):
            assert self.w_max is not None
            drawn, records = self._draw_recorded(n)
            held.append((drawn, records))
            w = drawn.weights()
            share = share_above(w, self.w_max)
            self.validation.append(share)
            if share <= 2 * u.truncation:
                break
            fresh.append(w)
            pooled = np.concatenate(fresh)
            if np.any(pooled > 0):
                self.w_max = max(self.w_max, u.max_weight(pooled, self.rng))
        return held

    def _calibration_acceptance(self) -> float | None:
        """``<min(w / w_max, 1)>`` of the calibration sample (None without one)."""
        if self.calibration_weights is None or self.w_max is None:
            return None
        return float(np.minimum(self.calibration_weights / self.w_max, 1.0).mean())

    def _draw_recorded(self, n: int) -> tuple[WeightedBatch, list[EvaluationRecord]]:
        """A draw of ``n`` points with its records (none when the integrand keeps none
        or accepted points are evaluated again)."""
        records: list[EvaluationRecord] = []
        if self.records:
            with self.integrator.integrand.recording() as records:
                drawn = self._draw(n)
            return drawn, records
        return self._draw(n), records

    def fix_max_weight(self, w_max: float, norm: float = 1.0,
                       channel_maxima: Sequence[float] | None = None, *,
                       settle: bool = False, calibration_points: int = 0) -> None:
        """Use a maximum weight (and overweight normalisation, and the channels' maxima
        that share the draws) fixed elsewhere, e.g. by the driver of a sharded run,
        instead of calibrating. With ``settle``, :meth:`generate` may still raise it on
        its own draws, as on a ``w_max`` calibrated here (a shard of a run whose driver
        calibrated it), and lower it once they have four times ``calibration_points``,
        the points it was calibrated on (0: never lowered); without, it is used as
        given."""
        if not w_max > 0:
            raise ValueError(f"w_max must be > 0, got {w_max!r}")
        if calibration_points < 0:
            raise ValueError(f"calibration_points must be >= 0, got {calibration_points}")
        self.w_max = float(w_max)
        self._settles = bool(settle)
        self._calibration_points = int(calibration_points) if settle else 0
        self.norm = float(norm)
        if channel_maxima is not None:
            maxima = np.asarray(channel_maxima, dtype=np.float64)
            if maxima.shape != (self.integrator.n_channels,) or not np.all(maxima >= 0):
                raise ValueError(f"channel_maxima must be {self.integrator.n_channels} "
                                 f"values >= 0, got {maxima.tolist()}")
            self.channel_maxima = maxima

    def _details(self, x: torch.Tensor, channels: np.ndarray,
                 weights: np.ndarray) -> EventBatch:
        """Events of accepted points by evaluating them a second time."""
        parts = []
        for c in np.unique(channels):
            sel = np.nonzero(channels == c)[0]
            b = self.integrand(x[sel].cpu().numpy(), int(c), prior=False, details=True)
            self.n_calls += len(sel)
            self.reevaluated += len(sel)
            if np.any(b.f <= 0):
                raise RuntimeError(f"channel {c}: an accepted point has f = 0 on its second "
                                   "evaluation: the integrand is not deterministic")
            parts.append(self._pick(int(c), b, weights[sel]))
        return EventBatch.concatenate(parts)

    def _from_records(self, records: list[EvaluationRecord], x: torch.Tensor,
                      channels: np.ndarray, idx: np.ndarray,
                      weights: np.ndarray) -> EventBatch:
        """Events of the accepted points ``idx`` of a recorded draw, from its first
        evaluation: the same choices, in the same order, as :meth:`_details`."""
        start = 0
        xs = []
        for rec in records:
            stop = start + len(rec)
            if not np.all(channels[start:stop] == rec.channel):
                break
            xs.append(x[start:stop])
            start = stop
        if len(xs) < len(records) or not _all_hold(records, xs):
            raise RuntimeError("the recorded evaluations do not match the drawn points "
                               "(the integrator evaluated something else while "
                               "drawing)")
        if start != len(channels):
            raise RuntimeError(f"{start} points recorded, {len(channels)} drawn")
        return self._events_of(records, idx, weights)

    def _events_of(self, records: list[EvaluationRecord], idx: np.ndarray,
                   weights: np.ndarray) -> EventBatch:
        """Events of the points ``idx`` (sorted) of the concatenated ``records``, with
        the event weights ``weights`` (one per index)."""
        taken: list[tuple[EvaluationRecord, np.ndarray, slice]] = []
        start = 0
        for rec in records:
            stop = start + len(rec)
            lo, hi = np.searchsorted(idx, [start, stop])
            if hi > lo:
                taken.append((rec, idx[lo:hi] - start, slice(lo, hi)))
            start = stop
        parts = []
        batches = events_of_records([rec for rec, _, _ in taken], [i for _, i, _ in taken])
        for (rec, _, these), b in zip(taken, batches, strict=True):
            if np.any(b.f <= 0):
                raise RuntimeError(f"channel {rec.channel}: an accepted point has f = 0")
            parts.append(self._pick(rec.channel, b, weights[these]))
        return EventBatch.concatenate(parts)

    def _pick(self, channel: int, b: IntegrandBatch, weights: np.ndarray) -> EventBatch:
        """Each point's subprocess in proportion to its part of ``f``, and one of the
        subprocess's colour flows uniformly (two uniform numbers per point, in order)."""
        assert b.subprocess_f is not None and b.scale is not None
        assert b.alpha_s is not None
        n = len(b.f)
        cum = np.cumsum(b.subprocess_f, axis=1)
        u = self.rng.random(n) * cum[:, -1]
        sub = np.minimum((cum < u[:, None]).sum(axis=1), cum.shape[1] - 1)
        pick = (self.rng.random(n) * self.n_flows[sub]).astype(np.int64)
        colours = self.flows[sub, pick]
        return EventBatch(self.pdgs[sub], colours, b.momenta, weights, b.scale, b.alpha_s,
                          sub, np.full(n, channel))

    def plan_recycling(self, recycled: Sequence[RecordedDraw], n_events: int, *,
                       floor: float = 0.0) -> list[RecordedDraw]:
        """The recorded draws worth taking events from for ``n_events`` events, best
        first, with ``w_max`` raised where taking them within the truncation needs it
        (:func:`~madnis_py.events.recycle.plan_recycling`; the ``"truncation"`` maximum
        weight calibrated on a sample only, else the draws as given)."""
        u = self.unweighter
        if (self.calibration_weights is None or u.method != "truncation"
                or u.overweight != "truncate" or not recycled):
            return list(recycled)
        self._candidates = list(recycled)
        self.w_max, chosen = plan_recycling(self.calibration_weights, recycled, n_events,
                                            u.truncation, floor=floor)
        self._not_planned = {d.source: share_above(d.weights, self.w_max)
                             for d in recycled if d not in chosen and len(d)}
        return chosen

    def recycle_limit(self) -> float:
        """The largest share of the recorded draws' pooled cross section above ``w_max``
        with which they may still give events: the card's truncation with the
        ``"truncation"`` maximum weight, else the calibration sample's own share (0 when
        ``w_max`` was fixed elsewhere); nothing with overweights kept (their weight
        ``max(1, w / w_max) c`` is normalised on the calibration sample only)."""
        if self.w_max is None or self.unweighter.overweight == "keep":
            return -1.0
        if self.unweighter.method == "truncation":
            return self.unweighter.truncation
        if self.calibration_weights is None:
            return 0.0
        return share_above(self.calibration_weights, self.w_max)

    def generate(self, n_events: int, *, batch: int | None = None,
                 calibration: int = 100_000,
                 sink: Callable[[EventBatch], None] | None = None,
                 progress: bool = False,
                 recycled: Sequence[RecordedDraw] = ()
                 ) -> tuple[EventBatch | None, GenerationSummary]:
        """Generate ``n_events`` unweighted events.

        Events come first from ``recycled``, points evaluated before (the survey's last
        rounds, the integration; :mod:`madnis_py.events.recycle`), in the order given:
        each is unweighted against ``w_max`` if its share of the cross section above
        ``w_max`` is at most :meth:`recycle_limit`, and skipped otherwise. Then new points
        are drawn: each draw has at most ``batch`` points (by default :func:`default_batch`
        of the integrator's active channels), and no more than the events still needed
        take (:func:`draw_size`, with the acceptance of the calibration sample, then of
        the draws so far). ``sink`` receives each batch of events as it is
        accepted (an LHE writer); without one, the events are returned (memory grows
        with ``n_events``).

        With a ``w_max`` calibrated here, the truncation-defined maximum weight and
        truncated overweights, the first :attr:`settle_events` events are held back
        while ``w_max`` settles on the draws themselves: once they are in, where the
        share of sigma above ``w_max`` of all draws so far exceeds twice the
        truncation (heavy tails a calibration sample cannot show), ``w_max`` rises to
        the truncation-defined maximum of all of them, every held event is kept with
        probability ``min(1, w / w_new) / min(1, w / w_old)`` (so that the held events
        are exactly those an accept/reject against the new ``w_max`` keeps), and more
        points are drawn for the events thinned away, and the check is made again once
        they are in. The events' draws then truncate at most twice the card's share.
        Meanwhile the draws lower a ``w_max`` calibrated here that they show too high,
        each time their points double past four times the calibration sample's
        (:class:`~madnis_py.events.stream.EventStream`; the events accepted against
        the higher one stay, and the held ones are thinned against the ``w_max`` each
        was accepted against).
        """
        import time

        if n_events < 0:
            raise ValueError(f"n_events must be >= 0, got {n_events}")
        if batch is None:
            batch = default_batch(self.integrator.n_active)
        elif batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        t0 = time.perf_counter()
        if self.w_max is None:
            self.calibrate(calibration)
        assert self.w_max is not None
        w_max_calibrated = self.w_max
        # fresh draws that check w_max out of sample first (validate), of the size the
        # first draw for the events would have; their events are taken below like any
        # other draw's
        held = (self.validate(draw_size(n_events, self._calibration_acceptance(), batch))
                if n_events > 0 else [])
        planned = bool(self._candidates) and all(d in self._candidates for d in recycled)
        pool = self._candidates if planned else list(recycled)
        if held and self.w_max != w_max_calibrated and pool:
            # the recorded draws planned again, w_max at least the one fresh draws set:
            # all that the first plan was given (one it left out may be worth taking at
            # the higher w_max)
            recycled = self.plan_recycling(pool, n_events, floor=self.w_max)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n_events, desc="events", unit="ev")
        stream = EventStream(n_events, self.w_max, sigma=self.sigma,
                             unweighter=self.unweighter, norm=self.norm, rng=self.rng,
                             n_subprocesses=len(self.pdgs), sink=sink,
                             settle_events=self.settle_events if self._settles else 0,
                             lower_after=self._calibration_points if self._settles else 0,
                             on_events=None if bar is None else bar.update)
        recycled_points, recycled_accepted, recycled_events, skipped = self._recycle(
            stream, recycled)
        reference = self.calibration_weights
        drawn = accepted = 0
        acceptance = self._calibration_acceptance()  # at the w_max the events take
        held.reverse()  # taken first, in the order they were drawn
        while not stream.complete:
            if stream.done >= n_events:  # the held events are all in: settle them
                self._settle(stream)
                continue
            if drawn > 0:
                # after a fall of w_max, all the draws' acceptance at the present one
                acceptance = (stream.acceptance()
                              or max(accepted - stream.thinned, 1) / drawn)
            if held:
                drawn_batch, records = held.pop()
                n = len(drawn_batch.channels())
            else:
                n = draw_size(n_events - stream.done, acceptance, batch)
                drawn_batch, records = self._draw_recorded(n)
            drawn += n
            passed, weights = self._accept(drawn_batch)
            stream.observe(weights)
            if reference is None:
                reference = (weights if isinstance(weights, np.ndarray)
                             else drawn_batch.weights())
            accepted += len(passed)
            idx, event_weights, e = stream.take(passed)
            if len(idx) > 0:
                channels, x = drawn_batch.channels(), drawn_batch.points()
                if self.records:
                    events = self._from_records(records, x, channels, idx, event_weights)
                else:
                    events = self._details(x[idx], channels[idx], event_weights)
                stream.emit(events, e)
            self._settle(stream)
        if bar is not None:
            bar.close()
        kept = stream.kept
        written = stream.written
        tally = WeightTally.of(np.concatenate(written) if written else np.zeros(0))
        reference = np.zeros(0) if reference is None else reference
        summary = GenerationSummary(
            n_events=stream.done, n_weighted=self.n_weighted, n_calls=self.n_calls,
            max_weight=self.w_max,
            efficiency=((accepted + recycled_accepted - stream.thinned)
                        / max(drawn + recycled_points, 1)),
            n_overweight=stream.overweight, truncation_bias=stream.truncation_bias,
            subprocess_events=stream.counts.tolist(), seconds=time.perf_counter() - t0,
            report=self.unweighter.report_tally(reference, self.w_max, tally,
                                                nominal=self.norm),
            calibration_calls=self.calibration_calls, reevaluated=self.reevaluated,
            written=tally, reference=reference, recycled=recycled_events,
            recycle_skipped=skipped, validation=list(self.validation),
            allocation=self.drawn_by,
            allocation_acceptance=({} if self.allocation_choice is None
                                   else dict(self.allocation_choice.acceptance)),
            raised=list(stream.raised), lowered=list(stream.lowered),
            thinned=stream.thinned)
        out = EventBatch.concatenate(kept) if kept else None
        return out, summary

    def _settle(self, stream: EventStream) -> None:
        """The stream's ``w_max`` settled after a draw, and taken here."""
        stream.settle()
        self.w_max = stream.w_max

    def _recycle(self, stream: EventStream, recycled: Sequence[RecordedDraw]
                 ) -> tuple[int, int, dict[str, int], dict[str, float]]:
        """Events from the recorded draws, in the order given: each is unweighted
        against ``w_max`` if the pooled share of sigma above it of the draws taken stays
        within :meth:`recycle_limit` (and it was not thinned above ``w_max``), and skipped
        otherwise. Returns the points and
        accepted points of the draws taken, the events of each, and the draws skipped
        with their share above ``w_max``.

        Where they have four times the calibration sample's points and show ``w_max`` too
        high, it falls before any of them is unweighted
        (:meth:`EventStream.lower_before`)."""
        assert self.w_max is not None
        usable = [d for d in recycled if len(d) and d.thinned_at <= self.w_max]
        stream.lower_before([d.weights for d in usable], sum(d.n_points for d in usable),
                            max((d.thinned_at for d in usable), default=0.0))
        self.w_max = stream.w_max
        events_of: dict[str, int] = {}
        skipped: dict[str, float] = dict(self._not_planned)
        limit = self.recycle_limit()
        pooled_excess = pooled_total = 0.0  # of the draws taken
        points = n_accepted = 0
        for draw in recycled:
            if stream.done >= stream.n_events:
                break
            excess_d = float(np.maximum(draw.weights - self.w_max, 0).sum())
            total_d = float(draw.weights.sum())
            share = excess_d / total_d if total_d > 0 else 0.0
            # the pooled share of the draws taken stays within the limit (a sample
            # calibrated there sits at it, up to rounding)
            if (not len(draw) or draw.thinned_at > self.w_max or pooled_excess + excess_d
                    > limit * (1 + 1e-9) * (pooled_total + total_d)):
                skipped[draw.source] = share
                continue
            pooled_excess += excess_d
            pooled_total += total_d
            passed = accept(draw.weights, self.w_max, self.rng)
            stream.observe(draw.weights, points=draw.n_points, exact_above=draw.thinned_at)
            points += draw.n_points
            n_accepted += len(passed)
            idx, event_weights, e = stream.take(passed)
            events_of[draw.source] = len(idx)
            if len(idx):
                stream.emit(self._events_of(draw.records, idx, event_weights), e)
            self._settle(stream)
        return points, n_accepted, events_of, skipped


def _all_hold(records: Sequence[EvaluationRecord], xs: Sequence[torch.Tensor]) -> bool:
    """``records[i].holds(xs[i])`` for all i, at once where the records are of one type
    (one host synchronisation for device records)."""
    kinds = {type(r) for r in records}
    if len(kinds) == 1:
        return bool(type(records[0]).all_hold(records, xs))
    return all(r.holds(x) for r, x in zip(records, xs, strict=True))


def events_of_records(records: Sequence[EvaluationRecord], indices: Sequence[np.ndarray]
               ) -> list[IntegrandBatch]:
    """``records[i].events_at(indices[i])`` for all i, in one copy to the host where the
    records are device records."""
    kinds = {type(r) for r in records}
    if len(kinds) == 1:
        return type(records[0]).events_of(records, indices)
    return [r.events_at(i) for r, i in zip(records, indices, strict=True)]
