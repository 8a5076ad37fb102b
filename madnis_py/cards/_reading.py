"""Reading and checking the tables of a TOML run card (the keys are documented in
:mod:`madnis_py.cards.run_card`, which calls these from ``RunCard.from_mapping``).

:class:`_Table` gives typed, range-checked access to the keys of one table and raises
one-line :class:`~madnis_py.cards.settings.RunCardError` messages that name the file,
the line, the table and the key; one ``_read_<table>`` function per table returns its
settings dataclass (:mod:`madnis_py.cards.settings`). Every name here is private to
:mod:`madnis_py.cards`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

from madnis_py.cards._toml import KeyLocator
from madnis_py.cards.settings import (
    _TABLES,
    CLUSTERS,
    DEVICES,
    LIMITS,
    MAX_WEIGHTS,
    OVERWEIGHTS,
    Cluster,
    ColliderSettings,
    Device,
    DistributedSettings,
    IntegrationSettings,
    Loss,
    MaxWeight,
    OutputSettings,
    Overweight,
    RunCardError,
    RunSettings,
    ScaleSettings,
    TrainingSettings,
    UnweightingSettings,
)
from madnis_py.events.allocation import ALLOCATIONS, Allocation
from madnis_py.phasespace.cuts import SUPPORTED_CUTS
from madnis_py.physics.channels import CHANNEL_PRIORS, LAYOUTS, ChannelPrior, Layout
from madnis_py.training.losses import LOSSES
from madnis_py.training.options import OPTION_CHECKS
from madnis_py.training.stopping import TARGETS, Target

#: What :mod:`madnis_py.cards.run_card` imports from here.
__all__ = [
    "_Context",
    "_Table",
    "_describe",
    "_process_stem",
    "_read_collider",
    "_read_cuts",
    "_read_distributed",
    "_read_integration",
    "_read_output",
    "_read_run",
    "_read_scale",
    "_read_training",
    "_read_unweighting",
    "_suggest",
]


# ---------------------------------------------------------------- reading helpers

class _Context:
    """The card being read: its name for errors, where its keys are, its directory."""

    def __init__(self, source: str, locator: KeyLocator | None, base_dir: Path) -> None:
        self.source = source
        self.locator = locator
        self.base_dir = base_dir

    def error(self, table: str, key: str | None, message: str) -> RunCardError:
        line = None if self.locator is None else self.locator.line(table, key)
        where = self.source if line is None else f"{self.source}:{line}"
        if not table:
            what = f"{key}"
        elif key is None:
            what = f"[{table}]"
        else:
            what = f"[{table}] {key}"
        return RunCardError(" ".join(f"{where}: {what}: {message}".split("\n")))


def _describe(value: object) -> str:
    """A value and its TOML type, for messages: ``the string '10'``."""
    if isinstance(value, bool):
        kind = "the boolean"
        shown = "true" if value else "false"
    elif isinstance(value, int):
        kind, shown = "the integer", str(value)
    elif isinstance(value, float):
        kind, shown = "the float", repr(value)
    elif isinstance(value, str):
        kind, shown = "the string", repr(value)
    elif isinstance(value, Mapping):
        return "a table"
    elif isinstance(value, list):
        return "an array"
    else:
        kind, shown = f"a {type(value).__name__}", str(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{kind} {shown}"


def _suggest(key: str, valid: Sequence[str], *, other: Mapping[str, Sequence[str]]) -> str:
    """``"; did you mean 'x'?"`` for the closest valid name, or a table it belongs to."""
    close = difflib.get_close_matches(key.lower(), list(valid), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    homes = [t for t, keys in other.items() if key in keys]
    if homes:
        return f"; it belongs in [{homes[0]}]"
    return ""


_T = TypeVar("_T")


class _Table:
    """One table of the card: typed, range-checked access to its keys."""

    def __init__(self, ctx: _Context, name: str, data: Mapping[str, Any], *,
                 cuts: bool = False) -> None:
        self.ctx = ctx
        self.name = name
        self.data = data
        valid = _TABLES[name]
        for key in data:
            if key in valid:
                continue
            if cuts:
                raise self.error(key, "unknown cut name" + _suggest(key, valid, other={}) +
                                 " (expected a name of madnis_py.phasespace.cuts."
                                 "SUPPORTED_CUTS: " + ", ".join(SUPPORTED_CUTS) + ")")
            others = {t: k for t, k in _TABLES.items() if t not in (name, "cuts")}
            raise self.error(key, "unknown key" + _suggest(key, valid, other=others) +
                             " (expected one of " + ", ".join(valid) + ")")

    def has(self, key: str) -> bool:
        return key in self.data

    def error(self, key: str | None, message: str) -> RunCardError:
        return self.ctx.error(self.name, key, message)

    def _get(self, key: str, check: Callable[[Any], bool], expected: str,
             ok: Callable[[Any], bool] | None) -> Any:
        value = self.data[key]
        if not check(value):
            raise self.error(key, f"got {_describe(value)} (expected {expected})")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"{value} is not a finite number (expected {expected})")
        if ok is not None and not ok(value):
            problem = "is not valid" if isinstance(value, str) else "is out of range"
            raise self.error(key, f"{_describe(value)} {problem} (expected {expected})")
        return value

    def integer(self, key: str, default: _T, expected: str,
                ok: Callable[[int], bool] | None = None) -> int | _T:
        if key not in self.data:
            return default
        value = self.data[key]
        if isinstance(value, float):
            hint = ""
            if math.isfinite(value) and value.is_integer():
                hint = (f"; TOML integers have no '.' and no exponent: write "
                        f"{int(value):_}")
            raise self.error(key, f"got {_describe(value)} (expected {expected}{hint})")
        limit = LIMITS.get((self.name, key))
        if limit is not None:
            expected = f"{expected} and <= {_limit(limit)}"
            inner = ok
            ok = (lambda v: v <= limit) if inner is None else (
                lambda v: inner(v) and v <= limit)
        return int(self._get(key, _is_int, expected, ok))

    def number(self, key: str, default: _T, expected: str,
               ok: Callable[[float], bool] | None = None) -> float | _T:
        if key not in self.data:
            return default
        return float(self._get(key, _is_number, expected, ok))

    def boolean(self, key: str, default: bool) -> bool:
        if key not in self.data:
            return default
        return bool(self._get(key, lambda v: isinstance(v, bool), "true or false", None))

    def string(self, key: str, default: _T, expected: str,
               ok: Callable[[str], bool] | None = None) -> str | _T:
        if key not in self.data:
            return default
        return str(self._get(key, lambda v: isinstance(v, str), expected, ok))

    def choice(self, key: str, default: str, choices: Sequence[str]) -> str:
        allowed = ", ".join(repr(c) for c in choices)
        value = self.string(key, default, f"one of {allowed}")
        if value not in choices:
            raise self.error(key, f"{value!r} is not allowed" +
                             _suggest(value, choices, other={}) +
                             f" (expected one of {allowed})")
        return value

    def exclusive(self, first: str, second: str, expected: str) -> None:
        if first in self.data and second in self.data:
            raise self.error(second, f"cannot be given together with {first} "
                             f"(expected {expected})")


def _limit(value: int) -> str:
    """A limit for messages: ``1000000000 (10**9)``."""
    if value == 2**63 - 1:
        return f"{value} (2**63 - 1)"
    exponent = round(math.log10(value))
    if 10**exponent == value:
        return f"{value} (10**{exponent})"
    return str(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value: float) -> bool:
    return value > 0


def _non_negative(value: float) -> bool:
    return value >= 0


def _at_least_one(value: float) -> bool:
    return value >= 1


def _process_stem(process: str | Path | None) -> str:
    if process is None:
        return "madnis"
    if isinstance(process, str):
        return process
    return process.name if process.is_dir() else process.parent.name


def _resolve_process(t: _Table, value: str) -> str | Path:
    """A built-in name stays a name; anything else is a path relative to the card
    (:func:`madnis_py.physics.process.load_process`'s rule: a bare built-in name wins
    over a same-named directory)."""
    from madnis_py.physics.builtin import builtin_processes
    from madnis_py.physics.process import builtin_name, looks_like_path

    if builtin_name(value) is not None:
        return value
    candidate = t.ctx.base_dir / Path(value).expanduser()
    if candidate.is_dir():
        if not (candidate / "process.toml").is_file():
            raise t.error("process", f"the directory {candidate} has no process.toml "
                          "(expected a process directory)")
        return candidate.resolve()
    if candidate.is_file():
        return candidate.resolve()
    names = builtin_processes()
    if looks_like_path(value):
        raise t.error("process", f"no such process directory or card: {candidate} "
                      "(expected a path relative to the run card)")
    raise t.error("process", f"no built-in process {value!r} and no such directory" +
                  _suggest(value, names, other={}) +
                  f" (expected one of {', '.join(names)}, or a path)")


def _plain_file_name(value: str) -> bool:
    return bool(value) and value not in (".", "..") and "/" not in value and "\\" not in value


# ----------------------------------------------------------------- the tables

def _read_run(t: _Table) -> RunSettings:
    if not t.has("process"):
        raise t.error("process", "missing (expected a built-in process name or a path to "
                      "a process directory)")
    raw = t.string("process", "", "a built-in process name or a path",
                   lambda v: bool(v.strip()))
    process = _resolve_process(t, raw)
    output_name = t.string("output", None, "a directory path relative to the card",
                           lambda v: bool(v.strip()))
    # no output key: "<process>_run" in the working directory, so that the cards shipped
    # inside the package never write into it
    output = (Path.cwd() / f"{_process_stem(process)}_run" if output_name is None else
              (t.ctx.base_dir / Path(output_name).expanduser()).resolve())
    return RunSettings(
        process=process,
        seed=t.integer("seed", 1, "an integer >= 0", _non_negative),
        nevents=t.integer("nevents", 10_000, "an integer >= 0", _non_negative),
        output=output,
        device=cast(Device, t.choice("device", "cpu", DEVICES)))


def _read_collider(t: _Table) -> ColliderSettings:
    energy = "a collider energy in GeV, > 0"
    sqrt_s = t.number("sqrt_s", None, energy, _positive)
    beam = "a beam energy in GeV, > 0"
    ebeam1 = t.number("ebeam1", None, beam, _positive)
    ebeam2 = t.number("ebeam2", None, beam, _positive)
    for key in ("ebeam1", "ebeam2"):
        t.exclusive("sqrt_s", key, "sqrt_s, or ebeam1 and ebeam2")
    if (ebeam1 is None) != (ebeam2 is None):
        given, missing = ("ebeam1", "ebeam2") if ebeam2 is None else ("ebeam2", "ebeam1")
        raise t.error(given, f"given without {missing} (expected both beam energies, "
                      "or sqrt_s)")
    if ebeam1 is not None and ebeam2 is not None:
        if ebeam1 != ebeam2:
            raise t.error("ebeam2", f"{ebeam2!r} differs from ebeam1 = {ebeam1!r} (expected "
                          "symmetric beams, ebeam1 = ebeam2: the collision frame is the "
                          "centre-of-mass frame)")
        sqrt_s = ebeam1 + ebeam2
    t.exclusive("pdf", "lhaid", "a PDF set by name (pdf) or by LHAPDF id (lhaid)")
    return ColliderSettings(
        sqrt_s=sqrt_s,
        pdf=t.string("pdf", None, "an LHAPDF set name such as 'LHToyPDF'",
                     lambda v: bool(v.strip())),
        lhaid=t.integer("lhaid", None, "an LHAPDF id, an integer >= 0", _non_negative))


def _read_scale(t: _Table) -> ScaleSettings:
    t.exclusive("fixed", "dynamical_scale_choice",
                "a fixed scale or a dynamical_scale_choice")
    return ScaleSettings(
        fixed=t.number("fixed", None, "a scale in GeV, > 0", _positive),
        dynamical_scale_choice=t.integer(
            "dynamical_scale_choice", None, "MadGraph's 1 (sum of E_T), 2 (sum of m_T), "
            "3 (sum of m_T / 2) or 4 (sqrt shat)", lambda v: v in (1, 2, 3, 4)),
        alpha_s=t.number("alpha_s", None, "0 < alpha_s < 1", lambda v: 0 < v < 1))


def _read_cuts(t: _Table) -> dict[str, float]:
    expected = "a number: GeV for pT and masses, plain for eta, y and Delta R"
    out: dict[str, float] = {}
    for key in t.data:
        if key == "maxjetflavor":  # which quarks are jets: 4 (b is class b) or 5
            value = t.number(key, None, "an integer 0..6 (the heaviest quark flavour "
                             "counted as a jet; 5 with b quarks in the proton)",
                             lambda v: v == int(v) and 0 <= v <= 6)
        else:
            value = t.number(key, None, expected)
        assert value is not None
        out[key] = value
    return out


def _read_training(t: _Table) -> TrainingSettings:
    d = TrainingSettings()
    ge0, ge1 = "an integer >= 0", "an integer >= 1"

    def option(key: str) -> float:
        """An integrator option, checked as TrainingOptions checks it."""
        expected, ok = OPTION_CHECKS[key]
        return t.number(key, getattr(d, key), expected, ok)

    return TrainingSettings(
        steps=t.integer("steps", d.steps, ge0, _non_negative),
        batch=t.integer("batch", d.batch, ge1, _at_least_one),
        target=cast(Target, t.choice("target", d.target, TARGETS)),
        measure_every=t.integer("measure_every", d.measure_every, ge1, _at_least_one),
        measure_points=t.integer("measure_points", d.measure_points, ge1, _at_least_one),
        patience=t.integer("patience", d.patience, ge1, _at_least_one),
        explore=t.number("explore", d.explore, "a share >= 0", lambda v: v >= 0),
        lr=option("lr"),
        loss=cast(Loss, t.choice("loss", d.loss, tuple(LOSSES))),
        buffered_steps=t.integer("buffered_steps", d.buffered_steps, ge0, _non_negative),
        buffer_batches=t.integer("buffer_batches", d.buffer_batches, ge1, _at_least_one),
        trainable_weights=t.boolean("trainable_weights", d.trainable_weights),
        vegas=t.boolean("vegas", d.vegas),
        vegas_iterations=t.integer("vegas_iterations", d.vegas_iterations,
                                   "an integer >= 2", lambda v: v >= 2),
        vegas_points=t.integer("vegas_points", d.vegas_points, "an integer >= 20",
                               lambda v: v >= 20),
        vegas_growth=t.number("vegas_growth", d.vegas_growth, "a factor >= 1",
                              lambda v: v >= 1),
        vegas_floor=t.number("vegas_floor", d.vegas_floor, "0 <= vegas_floor < 1",
                             lambda v: 0 <= v < 1),
        subprocess_channels=cast(Layout, t.choice("subprocess_channels",
                                                  d.subprocess_channels, LAYOUTS)),
        channel_prior=cast(ChannelPrior, t.choice("channel_prior", d.channel_prior,
                                                  CHANNEL_PRIORS)),
        warmup=t.integer("warmup", d.warmup, *OPTION_CHECKS["warmup"]),
        min_fraction=option("min_fraction"),
        drop_threshold=option("drop_threshold"),
        drop_patience=t.integer("drop_patience", d.drop_patience,
                                *OPTION_CHECKS["drop_patience"]),
        mixture=option("mixture"),
        uniform_mixture=option("uniform_mixture"),
        max_weight_penalty=option("max_weight_penalty"),
        top_fraction=option("top_fraction"),
        max_grad_norm=option("max_grad_norm"),
        freeze_weights_after=option("freeze_weights_after"),
        bins=t.integer("bins", None, ge1, _at_least_one),
        blocks=t.integer("blocks", None, ge1, _at_least_one),
        layers=t.integer("layers", None, ge1, _at_least_one),
        units=t.integer("units", None, ge1, _at_least_one))


def _read_integration(t: _Table) -> IntegrationSettings:
    d = IntegrationSettings()
    iterations = t.integer("iterations", d.iterations, "an integer >= 1", _at_least_one)
    points = t.integer("points", d.points, f"an integer >= 2 * iterations = {2 * iterations}",
                       lambda v: v >= 2 * iterations)
    per_channel = t.integer("points_per_channel", d.points_per_channel, "an integer >= 0",
                            lambda v: v >= 0)
    return IntegrationSettings(points=points, iterations=iterations,
                               points_per_channel=per_channel)


def _read_unweighting(t: _Table) -> UnweightingSettings:
    d = UnweightingSettings()
    return UnweightingSettings(
        max_weight=cast(MaxWeight, t.choice("max_weight", d.max_weight, MAX_WEIGHTS)),
        quantile=t.number("quantile", d.quantile, "0 < quantile <= 1",
                          lambda v: 0 < v <= 1),
        replicas=t.integer("replicas", d.replicas, "an integer >= 1", _at_least_one),
        overweight=cast(Overweight, t.choice("overweight", d.overweight, OVERWEIGHTS)),
        max_overweight_truncation=t.number("max_overweight_truncation",
                                           d.max_overweight_truncation,
                                           "0 <= max_overweight_truncation < 1",
                                           lambda v: 0 <= v < 1),
        recycle=t.boolean("recycle", d.recycle),
        allocation=cast(Allocation, t.choice("allocation", d.allocation, ALLOCATIONS)),
        settle_events=t.integer("settle_events", d.settle_events, "an integer >= 0",
                                _non_negative))


def _read_output(t: _Table) -> OutputSettings:
    d = OutputSettings()
    return OutputSettings(
        lhe=t.string("lhe", d.lhe, "a file name ending in .lhe or .lhe.gz, no directory",
                     lambda v: _plain_file_name(v) and v.endswith((".lhe", ".lhe.gz"))),
        plots=t.boolean("plots", d.plots),
        checkpoint=t.string("checkpoint", d.checkpoint, "a file name, no directory",
                            _plain_file_name))


def _read_distributed(t: _Table) -> DistributedSettings:
    d = DistributedSettings()
    t.exclusive("scheduler", "cluster", "an existing scheduler or a cluster to start")
    scheduler = t.string("scheduler", None, "a scheduler address such as 'tcp://host:8786'",
                         lambda v: bool(v.strip()))
    if scheduler is not None:
        for key in ("workers", "options"):
            if t.has(key):
                raise t.error(key, "only applies to a cluster this run starts, not to an "
                              "existing scheduler (expected a cluster, or no " + key + ")")
    options = t.data.get("options", {})
    if not isinstance(options, Mapping):
        raise t.error("options", f"got {_describe(options)} (expected a table of keyword "
                      "arguments, such as { queue = \"short\" })")
    return DistributedSettings(
        scheduler=scheduler,
        cluster=(None if scheduler is not None else
                 cast(Cluster, t.choice("cluster", "local", CLUSTERS))),
        workers=t.integer("workers", d.workers, "an integer >= 1", _at_least_one),
        shards=t.integer("shards", d.shards, "an integer >= 1", _at_least_one),
        options=dict(options))

