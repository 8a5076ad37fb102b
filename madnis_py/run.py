"""The run pipeline behind ``madnis-py run``, ``integrate`` and ``generate``.

:func:`run_card` takes a validated run card and what to do (:class:`RunRequest`), checks
everything that can be checked before any work (the device, the event and shard counts,
the checkpoint to start from, the Dask settings, the output directory), and then, in the
locked output directory (:class:`~madnis_py.output_dir.RunDirectory`):

1. builds the integrand and the multi-channel integrator from the card (or loads the
   checkpoint for ``generate``, or the interrupted training's for ``resume``);
2. trains (VEGAS pre-training, then the flows and channel weights, checkpoints on the
   way), integrates and saves the checkpoint, the history and the training plot;
3. generates the unweighted events into the LHE file, in this process
   (:func:`madnis_py.events.output.generate_events`) or in shards on a Dask cluster
   (:func:`madnis_py.distributed.generate_sharded`), and draws the event plots;
4. writes ``summary.json`` last: it marks the run finished.

It returns a :class:`RunSummary`. Progress and notes go to a :class:`Reporter` (the
command's progress bars on standard error; nothing by default): the tasks ``vegas``
(VEGAS iterations of every channel), ``training`` (steps), ``integration`` (integrand
calls), ``calibration`` (the weighted points ``w_max`` is calibrated on) and ``events``
(unweighted events), each advanced to its total exactly. The callbacks behind them draw
nothing: a run gives the same results with any reporter. Input that cannot work
raises :class:`RunError` (one line naming the input), before any training where it can.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from madnis_py.output_dir import RunDirectory

if TYPE_CHECKING:
    from madnis_py.cards.run_card import DistributedSettings, RunCard
    from madnis_py.events.generator import EventGenerator
    from madnis_py.events.output import GeneratedEvents
    from madnis_py.events.recycle import RecordedDraw
    from madnis_py.integrand import EvaluationRecord, Integrand
    from madnis_py.physics.process import Process
    from madnis_py.training import Integrator, MultiChannelResult

__all__ = ["Command", "EventsSummary", "Reporter", "RunError", "RunRequest", "RunSummary",
           "SilentReporter", "run_card"]

Command = Literal["run", "integrate", "generate"]

#: Upper limits on what one run may ask for.
LIMITS = {"events": 10 ** 9, "shards": 10_000}
#: Unweighted events kept in memory for the kinematics plot.
PLOT_EVENTS = 20_000


class RunError(ValueError):
    """Input the run cannot work with, found before the work: one line naming it."""


class Reporter(Protocol):
    """Where the pipeline reports progress and notes (the command: standard error)."""

    def note(self, message: str) -> None:
        """A message for the user."""

    def task(self, description: str, total: int) -> Callable[[int, str], None]:
        """A task of ``total`` steps; the result advances it by ``n`` with an info text."""


class SilentReporter:
    """A :class:`Reporter` that reports nothing."""

    def note(self, message: str) -> None:
        pass

    def task(self, description: str, total: int) -> Callable[[int, str], None]:
        return lambda n, info: None


@dataclass(frozen=True)
class RunRequest:
    """What to do with a run card.

    Attributes
    ----------
    command
        ``"run"`` (train, integrate, generate), ``"integrate"`` (no events) or
        ``"generate"`` (events from ``checkpoint``).
    n_events
        Unweighted events to generate (``run``: usually ``card.run.nevents``).
    checkpoint
        The checkpoint ``generate`` starts from.
    resume
        Continue the interrupted training whose checkpoint is in the output directory.
    checkpoint_every
        Training steps between checkpoints.
    distributed
        Generate the events on this Dask cluster (None: in this process).
    force
        Replace a finished run in the output directory.
    pdf
        The ``--pdf`` option the card's PDF set was replaced with (for error messages).
    threads
        CPU threads of this process (None: :func:`madnis_py.threads.default_threads`).
    """

    command: Command
    n_events: int = 0
    checkpoint: Path | None = None
    resume: bool = False
    checkpoint_every: int = 50
    distributed: DistributedSettings | None = None
    force: bool = False
    pdf: str | None = None
    threads: int | None = None


@dataclass
class EventsSummary:
    """The events of a run.

    Attributes
    ----------
    lhe : str
        The LHE file.
    events : int
    max_weight : float
        The unweighting's ``w_max``.
    efficiency : float
        Accepted / unweighted points (the recorded points taken for events included).
    overweight_fraction : float
        Events with ``w > w_max`` over all events.
    truncation_bias : float
        Relative cross-section bias of truncated overweights (0 when kept).
    generation_calls : int
        Integrand calls of the generation (calibration and all shards included).
    calibration_calls : int
        Of ``generation_calls``, those of the ``w_max`` calibration.
    generation_calls_per_event : float or None
        ``generation_calls`` per event (None without events): ``1 / eps_uw`` plus the
        calibration's share, accepted points being written from their first evaluation.
    weights : dict
        The weights written (:class:`~madnis_py.events.unweight.WeightReport`): effective
        sample size, largest weight over ``w_max``, cross-section share above ``w_max``
        and eps_uw with the truncation, raw and 99.9 %-quantile definitions (a sharded
        run's merged from its shards, :func:`~madnis_py.distributed.merge_shard_reports`).
    shards : int or None
        Dask shards (None: generated in this process).
    recycled_events : int
        Events from points evaluated before generation (the survey's last rounds and
        the integration, ``[unweighting] recycle``); ``recycled`` gives them per draw,
        ``recycle_skipped`` the draws left out with their share of sigma above ``w_max``.
    channel_maxima : list of float or None
        Each channel's own maximum weight, by which the new draws were shared among the
        channels (``[unweighting] allocation = "max_weight"``, or ``"auto"`` choosing it,
        :mod:`madnis_py.events.allocation`); None: by the integrator's sigmas.
    allocation : {"max_weight", "sigma"}
        How the new draws were shared among the channels.
    allocation_acceptance : dict
        With ``allocation = "auto"``: each candidate's acceptance on held-out halves of
        the calibration sample, by which it chose
        (:func:`~madnis_py.events.allocation.choose_allocation`).
    w_max_raised : list of float
        ``w_max`` after each rise on the events' own draws (their share of sigma above
        it beyond twice the truncation), while the first events were held back
        (:meth:`~madnis_py.events.generator.EventGenerator.generate`).
    thinned_events : int
        Held events those rises took away (and more points were drawn for).
    w_max_lowered : list of float
        ``w_max`` after each fall on the events' own draws, where millions of them
        showed it too high (:class:`~madnis_py.events.stream.EventStream`; of a sharded
        run, the final ``w_max`` of each shard that lowered the driver's).
    validation : list of float
        The share of sigma above ``w_max`` of each fresh draw that checked ``w_max``
        before events were taken, out of sample
        (:meth:`~madnis_py.events.generator.EventGenerator.validate`; ``w_max`` was
        calibrated again after each one above twice the truncation).
    """

    lhe: str
    events: int
    max_weight: float
    efficiency: float
    overweight_fraction: float
    truncation_bias: float
    generation_calls: int
    weights: dict[str, float] = field(default_factory=dict)
    shards: int | None = None
    calibration_calls: int = 0
    generation_calls_per_event: float | None = None
    recycled_events: int = 0
    recycled: dict[str, int] = field(default_factory=dict)
    recycle_skipped: dict[str, float] = field(default_factory=dict)
    channel_maxima: list[float] | None = None
    validation: list[float] = field(default_factory=list)
    allocation: str = "sigma"
    allocation_acceptance: dict[str, float] = field(default_factory=dict)
    w_max_raised: list[float] = field(default_factory=list)
    thinned_events: int = 0
    w_max_lowered: list[float] = field(default_factory=list)


@dataclass
class RunSummary:
    """What a run did; :meth:`to_json` is ``summary.json`` and ``--json``'s output.

    Attributes
    ----------
    process, seed
        The process name and the run's seed.
    sigma_pb, error_pb, rel_std, eps_uw, eps_uw_quantile, channel_sigma_pb
        The integration: cross section and error (pb), relative standard deviation of the
        weights, unweighting efficiencies (max and quantile ``w_max``), per-channel sigma.
    checkpoint, output : str
        The checkpoint (written, or read by ``generate``) and the output directory.
    warnings : list of str
        Why the result may not be trustworthy (empty when it is).
    calls : int
        Integrand calls of this run, every one: the sum of ``calls_by_step``; the calls
        of the run that trained a checkpoint are not counted again by ``generate``.
    calls_by_step : dict
        Integrand calls per step of this run, the steps it had of ``vegas`` (VEGAS
        pre-training), ``training`` (the flows), ``flow_selection`` (flows against the
        VEGAS map alone), ``integration``, ``calibration`` (of ``w_max``),
        ``generation`` (the weighted points drawn for events, in this process),
        ``shards`` (the same, in the Dask shards) and ``plots`` (the reference sample of
        the kinematics plot).
    calls_per_event : float or None
        ``calls`` per unweighted event (None without events).
    timings : dict
        Seconds per step (``vegas_s``, ``training_s``, ``integration_s``,
        ``generation_s``, ``total_s``).
    plots : list of str
        Every plot written (``training.png``, ``weights.png``, ``kinematics.png``).
    files : list of str
        The files of the output directory (``summary.json`` aside).
    events : EventsSummary or None
        The events (None for ``integrate``).
    training_decision : dict
        How much was trained and why (:class:`~madnis_py.training.stopping.
        TrainingDecision`: ``target``, ``reason``, ``steps``, ``predicted_total_s`` =
        the ``train`` call's time plus the predicted time of generating the events, the
        measurements), beside what it took: ``actual_training_s`` (the ``train`` call),
        ``actual_generation_s`` and ``actual_total_s``; empty for ``generate``. Its
        ``vegas_survey`` holds the survey's rounds (points, calls, efficiency), its stop
        reason and its own ``value`` and ``error``: the inverse-variance average of
        adapting rounds, which is biased low where the weights are heavy-tailed (1.4 to
        1.8 % on p p > e+ e- j j QCD=0, as madevent's combination of its iterations);
        the cross section is ``sigma_pb``, from the fixed-density integration.
    """

    process: str
    seed: int
    sigma_pb: float
    error_pb: float
    rel_std: float
    eps_uw: float
    eps_uw_quantile: float
    channel_sigma_pb: list[float]
    checkpoint: str
    output: str
    warnings: list[str] = field(default_factory=list)
    calls: int = 0
    calls_by_step: dict[str, int] = field(default_factory=dict)
    calls_per_event: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    plots: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    events: EventsSummary | None = None
    training_decision: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """A flat JSON object: the fields, with the events' fields (if any) at the top
        level (``events`` is then their count)."""
        data = asdict(self)
        events = data.pop("events")
        if events is not None:
            if events["shards"] is None:
                del events["shards"]
            data.update(events)
        return data


#: What `madnis-py run --device cuda` still lacks (docs/gpu.md). Training, integration,
#: the physics integrand and the accept/reject run on the device
#: (Integrator(device="cuda"), madnis_py.device_integrand, events.device_unweight); none
#: of it has run on a GPU.
DEVICE_PATH_MISSING = (
    "the flows, channel weights, VEGAS base maps, losses, the physics integrand "
    "(mapping, cuts, PDFs, matrix element), the accepted events' records and the "
    "unweighting's accept/reject run on the GPU, but the VEGAS adaptation (the vegas "
    "package) and the calibration of the maximum weight run on the host, and the CUDA "
    "path has not been verified on a GPU (scripts/gpu_checks.sh); set "
    "MADNIS_PY_CUDA_RUN=1 to run it anyway (for those checks), or use --device cpu")


def _check_device(device: str) -> None:
    """The run card's device, before any work: an unusable one (no CUDA torch, no
    visible GPU) or the incomplete CUDA path is one RunError saying which."""
    if device == "cpu":
        return
    from madnis_py.device import DeviceError, resolve_device

    try:
        resolve_device(device)
    except DeviceError as err:
        raise RunError(f"[run] device (or --device) = {device!r}: {err}") from err
    if os.environ.get("MADNIS_PY_CUDA_RUN") != "1":
        raise RunError(f"[run] device (or --device) = {device!r}: {DEVICE_PATH_MISSING}")


def _check_request(card: RunCard, request: RunRequest) -> None:
    """Everything about the request that can be checked before any work."""
    _check_device(card.run.device)
    n = request.n_events
    if not 0 <= n <= LIMITS["events"]:
        what = "-n" if request.command == "generate" else "[run] nevents"
        raise RunError(f"{what} = {n}: expected 0 <= n <= {LIMITS['events']:.0e}")
    settings = request.distributed
    if settings is not None and request.command != "integrate":
        most = min(LIMITS["shards"], max(n, 1))
        if settings.shards > most:
            raise RunError(f"--shards {settings.shards} for {n} events: at most {most} (one "
                           f"event per shard and {LIMITS['shards']} shards at the most)")
    if request.threads is not None and request.threads < 1:
        raise RunError(f"--threads must be >= 1, got {request.threads}")
    if request.checkpoint_every < 1:
        raise RunError(f"--checkpoint-every must be >= 1, got {request.checkpoint_every}")
    if settings is not None and request.command != "integrate":
        from madnis_py.distributed import check_distributed

        check_distributed(settings)
    if request.command == "generate":
        if request.checkpoint is None:
            raise RunError("generate: no checkpoint given (--checkpoint FILE)")
        if not request.checkpoint.is_file():
            raise RunError(f"--checkpoint {request.checkpoint}: no such file")


def run_card(card: RunCard, request: RunRequest,
             reporter: Reporter | None = None) -> RunSummary:
    """Run ``request`` on ``card`` in the card's output directory (see the module
    docstring); returns the summary also written to ``summary.json``.

    Raises
    ------
    RunError
        A request or card setting that cannot work (before any training where it can be
        found then), or physics the integrand cannot be built for.
    """
    from madnis_py.threads import configure_threads

    reporter = reporter or SilentReporter()
    _check_request(card, request)
    try:
        configure_threads(request.threads)
    except ValueError as err:  # a bad MADNIS_PY_THREADS / OMP_NUM_THREADS
        raise RunError(str(err)) from err
    try:
        process = card.load_process()
    except KeyError as err:  # a bare name that is no built-in process and no directory
        raise RunError(f"process: {err.args[0]}") from err
    out = card.lhe_path.parent
    outputs = [card.output.lhe, "history.json", "training.png", "weights.png",
               "kinematics.png"]
    if request.command != "generate":
        outputs.append(card.checkpoint_path.name)
    with RunDirectory(out, outputs, force=request.force or request.resume) as run_dir:
        if run_dir.removed_temporaries:
            reporter.note(f"removed {len(run_dir.removed_temporaries)} temporary file(s) of "
                          f"an interrupted run in {out}")
        return _run_in(card, request, process, out, reporter)


def _integrator(card: RunCard, process: Process,
                pdf_option: str | None = None) -> tuple[Integrand, Integrator]:
    from madnis_py.device_integrand import DeviceChannels
    from madnis_py.integrand import Integrand, TorchChannels
    from madnis_py.physics.pdf import PDFError, PDFSetNotFoundError
    from madnis_py.training import Integrator

    try:
        integrand = Integrand(process, **card.integrand_options())
    except PDFSetNotFoundError as err:  # the whole message, the field, and the way out
        raise RunError(f"{_pdf_field(card, process, pdf_option)}: "
                       f"{' '.join(str(err).split())}; or choose an installed set with "
                       "--pdf NAME (such as --pdf LHToyPDF, the embedded toy set)") from err
    except PDFError as err:  # the whole message, and the card field the set came from
        raise RunError(f"{_pdf_field(card, process, pdf_option)}: "
                       f"{' '.join(str(err).split())}") from err
    except ValueError as err:  # physics the integrand cannot be built for
        raise RunError(f"process {process.name}: {err}") from err
    try:
        channels: TorchChannels | DeviceChannels = (
            TorchChannels(integrand) if card.run.device == "cpu"
            else DeviceChannels(integrand, card.run.device))
    except ValueError as err:  # physics the device path does not evaluate
        raise RunError(f"[run] device = {card.run.device!r}: {err}") from err
    return integrand, Integrator(channels, feature_dims=channels.feature_dims,
                                 device=card.run.device, **card.integrator_options())


def _check_integration_points(card: RunCard, channels: int) -> None:
    """The integration's points must give every channel two per iteration
    (``Integrator.integrate``); said before any training, not after it. Checked for all
    ``channels``: ``points_for(k) >= 2 k iterations`` then holds for fewer active ones."""
    opts = card.integrate_options(channels)
    least = 2 * channels * opts["iterations"]
    if opts["n"] < least:
        raise RunError(f"[integration] points = {card.integration.points} and "
                       f"points_per_channel = {card.integration.points_per_channel} give "
                       f"{opts['n']} points for {channels} channels: the integration needs "
                       f"at least 2 per channel and iteration ({least}); raise either")


def _pdf_field(card: RunCard, process: Process, pdf_option: str | None = None) -> str:
    """Where the run's PDF set was named: ``--pdf``, the run card's field (a MadGraph
    card's ``pdlabel``/``lhaid`` with its line), else the process card's default."""
    if pdf_option is not None:
        return f"--pdf {pdf_option}"
    where = f"{card.source}: " if card.source is not None else ""
    madgraph = card.source is not None and Path(card.source).suffix == ".dat"
    if madgraph and card.source is not None:  # (madgraph implies a source; mypy can't tell)
        from madnis_py.cards import read_madgraph_run_card

        fields = read_madgraph_run_card(Path(card.source))
        label = next((n for n in ("pdlabel", "pdlabel1") if n in fields), "pdlabel")
        name = "lhaid" if fields.get(label, "").strip().lower() == "lhapdf" else label
        line = fields.lines.get(name)
        return (f"{card.source}{'' if line is None else f':{line}'}: {name} = "
                f"{fields.get(name, '?').strip()} (LHAPDF ID {card.collider.lhaid})")
    if card.collider.pdf is not None:
        return f"{where}{'pdlabel' if madgraph else '[collider] pdf'} = {card.collider.pdf!r}"
    if card.collider.lhaid is not None:
        return f"{where}{'lhaid' if madgraph else '[collider] lhaid'} = {card.collider.lhaid}"
    return f"{process.card}: [defaults] pdf = {process.defaults.pdf!r}"


def _train(card: RunCard, mc: Integrator, reporter: Reporter, timings: dict[str, float], *,
           resumed: bool, checkpoint_every: int, n_events: int,
           calls: dict[str, int] | None = None,
           recycle: list[RecordedDraw] | None = None) -> dict[str, Any]:
    """VEGAS pre-training and the flow training; returns the training decision
    (:class:`~madnis_py.training.stopping.TrainingDecision` as a dict, with the seconds
    of the ``train`` call as ``actual_training_s``). ``calls`` receives the integrand
    calls of ``vegas``, ``training`` and ``flow_selection``; ``recycle`` (when given)
    the survey's last :data:`RECYCLED_ROUNDS` rounds with their records."""
    from madnis_py.events.recycle import RoundRecorder

    calls = {} if calls is None else calls
    c0 = int(mc.n_calls)
    t0 = time.perf_counter()
    if card.training.vegas and not resumed:
        options = card.vegas_options()
        task = _VegasTask(reporter, mc, int(options["nitn"]))
        with _recording(mc, recycle is not None) as records:
            keeper = None if records is None else RoundRecorder(
                records, keep=RECYCLED_ROUNDS, max_points=RECYCLED_POINTS, thin=True,
                seed=card.run.seed)
            mc.pretrain_vegas(**options, progress=task, on_round=keeper,
                              on_channel=None if keeper is None else keeper.channel_done,
                              recycled_rounds=RECYCLED_ROUNDS if keeper is not None else 0,
                              before_round=None if keeper is None else keeper.before_round)
        if keeper is not None and recycle is not None:
            recycle.extend(keeper.draws)
        assert mc.vegas_survey is not None
        task.finish(mc.vegas_survey.reason)
    timings["vegas_s"] = time.perf_counter() - t0
    calls["vegas"], c0 = int(mc.n_calls) - c0, int(mc.n_calls)
    t0 = time.perf_counter()
    # the flows can only speed up the events that the survey's recorded rounds and the
    # integration will not give
    expected = _expected_recycled(card, mc) if recycle is not None else 0.0
    to_draw = max(int(math.ceil(n_events - expected)), 0)
    opts: dict[str, Any] = {**card.train_options(), **card.stopping_options(),
                            "n_events": to_draw}
    if resumed:  # the rest of the interrupted training, with its optimizer's state
        opts["steps"] = int(mc.steps_remaining)
    advance = reporter.task("training", opts["steps"])
    taken = 0

    def step(_: int, loss: float) -> None:
        nonlocal taken
        taken += 1
        advance(1, f"loss {loss:.3g}, rel. std {mc.history.rel_std[-1]:.3g}")

    mc.train(**opts, callback=step, checkpoint=card.checkpoint_path,
             checkpoint_every=checkpoint_every)
    train_s = time.perf_counter() - t0
    calls["training"], c0 = int(mc.n_calls) - c0, int(mc.n_calls)
    decision = mc.training_decision
    assert decision is not None
    if taken < opts["steps"]:  # the time-to-events rule stopped it: the task is done
        advance(opts["steps"] - taken, f"stopped after {taken} steps: {decision.reason}")
    if decision.use_flow:  # "vegas_alone" has switched the flows off by measurement
        mc.select_flows(max(2_000, card.training.batch))
    else:
        reporter.note(f"training: the flows do not shorten the time to {n_events} events "
                      f"(efficiency {decision.eps_base:.3g} without them); VEGAS alone")
    timings["training_s"] = time.perf_counter() - t0
    calls["flow_selection"] = int(mc.n_calls) - c0
    survey = None if mc.vegas_survey is None else mc.vegas_survey.as_dict()
    return {**decision.as_dict(), "actual_training_s": train_s, "vegas_survey": survey,
            "expected_recycled_events": expected}


def _expected_recycled(card: RunCard, mc: Integrator) -> float:
    """Events the survey's recorded rounds and the integration are expected to give:
    each round's points times its efficiency, and the integration's points times the
    last round's (its sampler is at least as good unless flows are chosen)."""
    survey = mc.vegas_survey
    if survey is None or not survey.measurements:
        return 0.0
    rounds = survey.measurements[-RECYCLED_ROUNDS:]
    return (sum(r["points"] * r["eps"] for r in rounds)
            + card.integration.points_for(mc.n_active) * rounds[-1]["eps"])


class _VegasTask:
    """The ``vegas`` task: one advance per survey round (``nitn`` at most); a survey that
    stops early advances the rest with its reason."""

    def __init__(self, reporter: Reporter, mc: Integrator, nitn: int) -> None:
        self.advance = reporter.task("vegas", nitn)
        self.mc = mc
        self.nitn = nitn
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        self.advance(n, f"round {self.done}/{self.nitn}, {self.mc.n_calls} calls")

    def finish(self, reason: str) -> None:
        if self.done < self.nitn:
            self.advance(self.nitn - self.done, f"stopped after {self.done} rounds: {reason}")
            self.done = self.nitn


def _points_task(reporter: Reporter, description: str, total: int) -> Callable[[int], None]:
    """A task of ``total`` weighted points advanced by each channel's draw."""
    advance = reporter.task(description, total)
    return lambda n: advance(n, "")


def _integration_task(reporter: Reporter, n: int, iterations: int) -> Callable[[int], None]:
    """An ``integration`` task of ``n`` integrand calls, naming the iteration
    (``Integrator.integrate`` gives iteration ``k`` ``n // iterations`` points, one more
    for the first ``n % iterations``)."""
    advance = reporter.task("integration", n)
    ends = np.cumsum([n // iterations + int(k < n % iterations) for k in range(iterations)])
    done = 0

    def step(points: int) -> None:
        nonlocal done
        done += points
        k = min(int(np.searchsorted(ends, done)), iterations - 1)
        advance(points, f"iteration {k + 1}/{iterations}")

    return step


def _integrate(card: RunCard, mc: Integrator, reporter: Reporter,
               timings: dict[str, float]) -> MultiChannelResult:
    t0 = time.perf_counter()
    options = card.integrate_options(mc.n_active)
    result = mc.integrate(**options, progress=_integration_task(reporter, **options))
    timings["integration_s"] = time.perf_counter() - t0
    return result


def _run_in(card: RunCard, request: RunRequest, process: Process, out: Path,
            reporter: Reporter) -> RunSummary:
    from madnis_py.events.output import cross_section
    from madnis_py.training import Integrator

    timings: dict[str, float] = {}
    t_start = time.perf_counter()
    integrand, mc = _integrator(card, process, request.pdf)
    _check_integration_points(card, mc.n_channels)
    # The integrator binds its checkpoints to integrand.fingerprint() (and checks a loaded
    # one against it) by itself.
    plots: list[str] = []
    decision: dict[str, Any] = {}
    calls: dict[str, int] = {}  # integrand calls per step
    recycled: list[RecordedDraw] = []  # evaluated points to take events from first
    if request.command == "generate":
        assert request.checkpoint is not None
        mc = Integrator.load(request.checkpoint, mc.integrand, device=mc.device)
        calls_before = int(mc.n_calls)  # the checkpoint's own calls are not this run's
        integrated = mc.last_result is None  # a checkpoint of an interrupted training
        t0 = time.perf_counter()
        progress = (_integration_task(reporter, **card.integrate_options(mc.n_active))
                    if integrated else None)
        result = cross_section(mc, card, progress=progress)
        if integrated:
            timings["integration_s"] = time.perf_counter() - t0
            calls["integration"] = int(mc.n_calls) - calls_before
        checkpoint = request.checkpoint
    else:
        resumed = False
        if request.resume:
            if not card.checkpoint_path.is_file():
                raise RunError(f"--resume: no checkpoint {card.checkpoint_path} to resume "
                               "from")
            mc = Integrator.load(card.checkpoint_path, mc.integrand, device=mc.device)
            resumed = True
            reporter.note(f"resuming from {card.checkpoint_path} after {mc.steps_done} "
                          "training steps")
        calls_before = int(mc.n_calls)
        recycle = _recycles(card, request)
        survey_draws: list[RecordedDraw] = []
        decision = _train(card, mc, reporter, timings, resumed=resumed,
                          checkpoint_every=request.checkpoint_every,
                          n_events=request.n_events, calls=calls,
                          recycle=survey_draws if recycle else None)
        before_integration = int(mc.n_calls)
        with _recording(mc, recycle) as records:
            result = _integrate(card, mc, reporter, timings)
        if records is not None and mc.last_weights is not None:
            from madnis_py.events.recycle import RecordedDraw

            recycled = [RecordedDraw.of("integration", mc.last_weights, records),
                        *survey_draws]
        calls["integration"] = int(mc.n_calls) - before_integration
        mc.save(card.checkpoint_path)
        if card.output.plots:
            from madnis_py.plots import plot_history

            plot_history(mc.history, out / "training.png",
                         channel_names=list(integrand.channel_names()))
            plots.append(str(out / "training.png"))
        mc.save_history(out / "history.json")
        checkpoint = card.checkpoint_path
    warnings = [str(w) for w in getattr(result, "warnings", ())]
    for warning in warnings:
        reporter.note(f"the result may not be trustworthy: {warning}")
    summary = RunSummary(
        process=process.name, seed=card.run.seed, sigma_pb=result.value,
        error_pb=result.error, rel_std=result.rel_std, eps_uw=result.eps_uw,
        eps_uw_quantile=result.eps_uw_quantile,
        channel_sigma_pb=[float(v) for v in result.channel_values],
        checkpoint=str(checkpoint), output=str(out), warnings=warnings)
    if int(mc.n_calls) - calls_before != sum(calls.values()):  # a step left uncounted
        calls["other"] = int(mc.n_calls) - calls_before - sum(calls.values())
    if request.command != "integrate":
        t0 = time.perf_counter()
        if request.distributed is None:
            # the integration's weights (drawn from the sampler that generates, right
            # before) calibrate w_max: no new calibration points
            run = request.command == "run"
            done = _generate(card, integrand, mc, result, request.n_events, out, reporter,
                             calibration=mc.last_weights if run else None,
                             calibration_channels=mc.last_channels if run else None,
                             recycled=recycled)
            recycled.clear()  # the records are large: free them before the plots
            summary.events = _events_summary(done)
            for warning in _events_warnings(card, summary.events):
                reporter.note(f"the events may not be trustworthy: {warning}")
                summary.warnings.append(warning)
            calls["calibration"] = done.calibration_calls
            calls["generation"] = done.n_calls - done.calibration_calls
            if card.output.plots:
                before_plots = integrand.n_points
                plots += _event_plots(card, done, integrand, out)
                calls["plots"] = integrand.n_points - before_plots
        else:
            summary.events, shard_calls = _generate_distributed(
                card, request.distributed, checkpoint, request.n_events, out)
            calls.update(shard_calls)
        timings["generation_s"] = time.perf_counter() - t0
    if decision:  # the prediction against what the training and the events took
        decision["actual_generation_s"] = timings.get("generation_s", 0.0)
        decision["actual_total_s"] = (decision["actual_training_s"]
                                      + decision["actual_generation_s"])
        summary.training_decision = decision
    summary.calls_by_step = calls
    summary.calls = sum(calls.values())
    if summary.events is not None and summary.events.events > 0:
        summary.calls_per_event = summary.calls / summary.events.events
    summary.plots = plots
    timings["total_s"] = time.perf_counter() - t_start
    summary.timings = timings
    summary.files = sorted(p.name for p in out.iterdir()
                           if not p.name.startswith(".") and p.name != "summary.json")
    _write_json(out / "summary.json", summary.to_json())  # last: it marks the run finished
    return summary


def _generate(card: RunCard, integrand: Integrand, mc: Integrator,
              result: MultiChannelResult, n_events: int, out: Path,
              reporter: Reporter, *,
              calibration: npt.NDArray[np.float64] | None = None,
              calibration_channels: npt.NDArray[np.int64] | None = None,
              recycled: list[RecordedDraw] | None = None) -> GeneratedEvents:
    from madnis_py.events.banner import Banner
    from madnis_py.events.output import calibration_size, generate_events

    size = calibration_size(card) if calibration is None else len(calibration)
    on_calibration = _points_task(reporter, "calibration", size)
    if calibration is not None:
        on_calibration(size)  # done: the integration's points
    advance = reporter.task("events", n_events)
    return generate_events(mc, card, n_events, out / card.output.lhe, sigma=result.value,
                           error=result.error, seed=card.run.seed + 1,
                           header=Banner.for_run(card, integrand),
                           keep=PLOT_EVENTS if card.output.plots else 0,
                           on_events=lambda n: advance(n, ""),
                           on_calibration=on_calibration, calibration=calibration,
                           calibration_channels=calibration_channels,
                           recycled=recycled or ())


#: The survey's last rounds kept for events (``[unweighting] recycle``): with its growth
#: of 1.3 per round four hold about 65 % of its points; at most RECYCLED_POINTS of them
#: (about 0.6 GB for a 2 -> 3 process) are held, the oldest rounds let go first. Rounds
#: after the first are thinned as they run to about RECYCLED_POINTS each
#: (:class:`~madnis_py.events.recycle.RoundRecorder`), exactly for any w_max above their
#: floor.
RECYCLED_ROUNDS = 4
RECYCLED_POINTS = 2_000_000


def _recycles(card: RunCard, request: RunRequest) -> bool:
    """Whether this run takes events from the points it evaluated before generating."""
    return (request.command == "run" and request.distributed is None
            and card.unweighting.recycle and card.unweighting.overweight == "truncate")


@contextmanager
def _recording(mc: Integrator, on: bool) -> Iterator[list[EvaluationRecord] | None]:
    """The integrand's recording of every evaluation when ``on`` and it can record
    (:meth:`~madnis_py.integrand.TorchChannels.recording`), else None."""
    record = getattr(mc.integrand, "recording", None)
    if not on or not callable(record):
        yield None
        return
    with record() as records:
        yield records


def _per_event(calls: int, events: int) -> float | None:
    return calls / events if events > 0 else None


def _maxima(gen: EventGenerator | None) -> list[float] | None:
    if gen is None or gen.channel_maxima is None:
        return None
    return [float(v) for v in gen.channel_maxima]


def _events_warnings(card: RunCard, events: EventsSummary) -> list[str]:
    """What the events' own numbers say against the card: a truncated share of sigma
    (measured on every draw the events came from) above twice the card's
    ``max_overweight_truncation``."""
    u = card.unweighting
    if u.max_weight != "truncation" or u.overweight != "truncate":
        return []
    bound = u.max_overweight_truncation
    if events.truncation_bias <= 2 * bound:
        return []
    by_sigma = (", [unweighting] allocation = \"sigma\"" if events.allocation == "max_weight"
                else "")
    return [f"the events' truncated share of sigma is {events.truncation_bias:.2g}, "
            f"above the card's max_overweight_truncation {bound:g}: w_max was set on too "
            "few points per channel for this process; the events' distributions lose "
            "that share where the weights are largest (more calibration points: a larger "
            f"[integration] points{by_sigma}, or overweight = \"keep\" for weighted "
            "overweights)"]


def _events_summary(done: GeneratedEvents) -> EventsSummary:
    return EventsSummary(lhe=str(done.path), events=done.n_events, max_weight=done.w_max,
                         efficiency=done.efficiency,
                         overweight_fraction=done.n_overweight / max(done.n_events, 1),
                         truncation_bias=done.truncation_bias,
                         generation_calls=done.n_calls,
                         weights=done.report.as_dict() if done.report else {},
                         calibration_calls=done.calibration_calls,
                         generation_calls_per_event=_per_event(done.n_calls, done.n_events),
                         recycled_events=sum(done.recycled.values()),
                         recycled=dict(done.recycled),
                         recycle_skipped=dict(done.recycle_skipped),
                         channel_maxima=_maxima(done.generator),
                         validation=list(done.validation), allocation=done.allocation,
                         allocation_acceptance=dict(done.allocation_acceptance),
                         w_max_raised=list(done.raised), thinned_events=done.thinned,
                         w_max_lowered=list(done.lowered))


def _generate_distributed(card: RunCard, settings: DistributedSettings, checkpoint: Path,
                          n_events: int, out: Path) -> tuple[EventsSummary, dict[str, int]]:
    """The events of a sharded run, and its integrand calls per step (the driver's
    ``integration`` of a checkpoint without one, ``calibration``, and ``shards``)."""
    from madnis_py.distributed import cluster_client, generate_sharded

    try:
        with cluster_client(settings) as client:
            res = generate_sharded(card, checkpoint, n_events, client, output=out,
                                   shards=settings.shards)
    except ImportError as err:  # no dask: pip install 'madnis_py[distributed]'
        raise RunError(str(err)) from err
    calls = {"calibration": res.calibration_calls, "shards": res.n_calls}
    if res.driver_calls > res.calibration_calls:
        calls["integration"] = res.driver_calls - res.calibration_calls
    return EventsSummary(lhe=str(res.path), events=res.n_events, max_weight=res.w_max,
                         efficiency=res.efficiency,
                         overweight_fraction=res.n_overweight / max(res.n_events, 1),
                         truncation_bias=res.truncation_bias,
                         generation_calls=res.total_calls, shards=len(res.shards),
                         weights=res.report.as_dict() if res.report else {},
                         calibration_calls=res.calibration_calls,
                         generation_calls_per_event=_per_event(res.total_calls,
                                                               res.n_events),
                         channel_maxima=(None if res.channel_maxima is None
                                         else list(res.channel_maxima)),
                         allocation="sigma" if res.channel_maxima is None else "max_weight",
                         allocation_acceptance=dict(res.allocation_acceptance),
                         w_max_raised=res.raised, thinned_events=res.thinned,
                         w_max_lowered=res.lowered), calls


def _event_plots(card: RunCard, done: GeneratedEvents, integrand: Integrand,
                 out: Path) -> list[str]:
    """The weight distribution (with ``w_max``) and the kinematics of the events against
    weighted points, drawn after the events so that the events do not depend on whether
    plots are drawn."""
    from madnis_py.events.generator import EventBatch, events_of_records
    from madnis_py.events.output import calibration_size
    from madnis_py.plots import plot_kinematics, plot_weights

    gen = done.generator
    assert gen is not None
    weights = gen.calibration_weights  # the sample w_max was fixed on: no new calls
    if weights is None:
        weights, _, _ = gen.weighted(min(calibration_size(card), 50_000))
    plot_weights(weights, done.w_max, out / "weights.png")
    made = [str(out / "weights.png")]
    if done.sample:
        if gen.records:  # the momenta of the draw itself, no second evaluation
            w, _, _, records = gen.recorded(PLOT_EVENTS)
            moms = np.concatenate([b.momenta for b in events_of_records(
                records, [np.arange(len(r)) for r in records])])  # one copy from a device
        else:
            w, channels, x = gen.weighted(PLOT_EVENTS)
            moms = np.zeros((len(w), integrand.process.n_particles, 4))
            for c in np.unique(channels):
                sel = np.nonzero(channels == c)[0]
                moms[sel] = integrand(x[sel].cpu().numpy(), int(c), prior=False).momenta
        events = EventBatch.concatenate(done.sample)
        plot_kinematics(events.momenta, moms, w, out / "kinematics.png",
                        event_weights=events.weights, process=integrand.process,
                        cuts=integrand.cut_values, sqrt_s=integrand.sqrt_s)
        made.append(str(out / "kinematics.png"))
    return made


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from madnis_py._atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
