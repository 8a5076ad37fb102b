"""Checkpoints of the multi-channel integrator: reading, validating and comparing them.

A checkpoint is a ``torch.save`` state dict of tensors and plain values, read with
``torch.load(..., weights_only=True)``. This module refuses what cannot be one
(:class:`CheckpointError`, one line naming the file), says where a checkpoint of other
physics or another process differs (:class:`CheckpointMismatchError`), and writes and
restores the integrator's state (:func:`integrator_state`, :func:`restore_state`, behind
:meth:`Integrator.save <madnis_py.training.Integrator.save>` and
:meth:`Integrator.load_state <madnis_py.training.Integrator.load_state>`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from madnis_py.training.history import History
from madnis_py.training.options import TrainingOptions
from madnis_py.training.results import MultiChannelResult

if TYPE_CHECKING:
    from madnis_py.training.multichannel import Integrator

__all__ = [
    "CONFIG_KEYS",
    "STATE_KEYS",
    "CheckpointError",
    "CheckpointMismatchError",
    "check_physics",
    "first_difference",
    "one_line",
    "plain",
    "read_checkpoint",
    "restore_generator",
    "shape_mismatch",
]


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, not a checkpoint, or one that would
    need a process the caller did not name. The message is one line naming the file."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint of other physics or another process (channels, flow shapes); the
    message names the file and the first field that differs, with both values."""


def shape_mismatch(stored: Mapping[str, Any], own: Mapping[str, torch.Tensor],
                   prefix: str) -> str | None:
    """The first parameter whose name or shape differs between two state dicts."""
    for name, tensor in own.items():
        other = stored.get(name)
        if not isinstance(other, torch.Tensor):
            return f"{prefix}.{name} is missing from it"
        if tuple(other.shape) != tuple(tensor.shape):
            return (f"{prefix}.{name} has shape {tuple(other.shape)} there, "
                    f"{tuple(tensor.shape)} here")
    extra = sorted(set(stored) - set(own))
    if extra:
        return f"it has a parameter {prefix}.{extra[0]} this integrator does not"
    return None


def first_difference(stored: Mapping[str, Any],
                     expected: Mapping[str, Any]) -> tuple[str, Any, Any] | None:
    """The first field (in the stored order) where two physics fingerprints differ; only
    fields both have are compared, dictionaries (the cuts) key by key."""
    for key, old in stored.items():
        if key not in expected:
            continue
        new = expected[key]
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            for sub in sorted(set(old) | set(new)):
                a, b = old.get(sub), new.get(sub)
                if not _same(a, b):
                    return f"{key}[{sub!r}]", a, b
        elif not _same(old, new):
            return key, old, new
    return None


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not (
            isinstance(a, bool) or isinstance(b, bool)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _show(value: Any) -> str:
    if value is None:
        return "not set"
    return str(value) if isinstance(value, (int, float)) else repr(value)


def plain(value: Mapping[str, object]) -> dict[str, Any]:
    """A fingerprint as JSON round-trips it (tuples become lists)."""
    return cast(dict[str, Any], json.loads(json.dumps(dict(value))))


#: Entries every checkpoint has (older formats included).
STATE_KEYS = ("flows", "weights", "generator", "sigmas", "counters", "use_flow", "active",
               "config")
#: What a checkpoint's ``config`` may hold: the integrator's options, the features' width
#: and the built-in process it was built from.
CONFIG_KEYS = frozenset(TrainingOptions.names()) | {"feature_dims", "process"}


def one_line(err: BaseException) -> str:
    text = str(err).strip()
    return type(err).__name__ + (f": {text.splitlines()[0][:120]}" if text else "")


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The state dict of a checkpoint, or a one-line :class:`CheckpointError`."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the checkpoint is empty (0 bytes; an interrupted "
                              "write by an older version?)")
    try:
        # tensors come to the CPU whatever device wrote them; the integrator moves them
        # to its own (a GPU-trained checkpoint generates on CPU workers and back)
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        # torch raises anything from EOFError and OSError('Invalid argument') to
        # UnpicklingError; none of its texts says more than this (the cause stays chained)
        with path.open("rb") as fh:
            zipped = fh.read(4) == b"PK\x03\x04"
        what = ("a truncated or corrupt checkpoint (its zip archive cannot be read)"
                if zipped else "not a madnis_py checkpoint (another kind of file)")
        raise CheckpointError(f"{path}: {what}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (it holds a "
                              f"{type(state).__name__}, not a state dict)")
    missing = [k for k in STATE_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (no {missing[0]!r} "
                              "entry)")
    kinds = {"flows": dict, "weights": dict, "sigmas": torch.Tensor,
             "counters": torch.Tensor, "use_flow": torch.Tensor, "active": torch.Tensor,
             "generator": torch.Tensor}
    for key, kind in kinds.items():
        if not isinstance(state[key], kind):
            raise CheckpointError(f"{path}: not a madnis_py checkpoint ({key!r} is a "
                                  f"{type(state[key]).__name__})")
    config = state["config"]
    if not isinstance(config, dict) or not set(config) <= CONFIG_KEYS or not isinstance(
            config.get("flow_options", {}), dict):
        raise CheckpointError(f"{path}: not a madnis_py checkpoint (its config is not the "
                              "integrator's settings)")
    return state



def check_physics(stored_physics: object, expected: Mapping[str, Any] | None,
                  path: Path) -> None:
    """Raise :class:`CheckpointMismatchError` when the checkpoint's physics fingerprint
    (a JSON string, or None) differs from ``expected`` (nothing to compare when either
    is missing)."""
    if not isinstance(stored_physics, str) or expected is None:
        return
    try:
        stored = json.loads(stored_physics)
    except ValueError as err:
        raise CheckpointError(f"{path}: its physics fingerprint is not JSON") from err
    if isinstance(stored, dict):
        diff = first_difference(stored, expected)
        if diff is not None:
            key, old, new = diff
            raise CheckpointMismatchError(
                f"{path} was trained with {key} = {_show(old)}, the card says "
                f"{_show(new)}; retrain (madnis-py run) or use the card it was "
                "trained with")


def integrator_state(mc: Integrator) -> dict[str, object]:
    """The checkpoint of ``mc`` (:meth:`Integrator.state_dict
    <madnis_py.training.Integrator.state_dict>`): tensors and plain values only."""
    physics = mc._physics()
    grids = [g for g in (s.grid() for s in mc.samplers) if g is not None]
    return {
        "format": 2,
        "flows": mc.flows.state_dict(),
        "weights": mc.weights.state_dict(),
        "generator": mc.generator.get_state(),
        # CPU and CUDA generators have different states (restore_state reseeds across)
        "generator_device": mc.generator.device.type,
        "sigmas": torch.from_numpy(mc.sigmas.copy()),
        "counters": torch.tensor([mc.n_calls, mc.n_invalid, mc.steps_done]),
        "use_flow": torch.tensor(mc.use_flow),
        "active": torch.from_numpy(mc.active.copy()),
        "low_steps": torch.from_numpy(mc._low_steps.copy()),
        "config": mc.config,
        "physics": None if physics is None else json.dumps(physics, sort_keys=False),
        "history": mc.history.to_dict(),
        "training": mc._training,
        "result": ({k: (list(v) if isinstance(v, tuple) else v)
                    for k, v in dataclasses.asdict(mc.last_result).items()}
                   if mc.last_result is not None else None),
        # one tensor per dimension: vegas may give the dimensions different numbers
        # of increments; all channels have a map after pretrain_vegas, none before
        "vegas_grids": ([[torch.tensor(g) for g in grid] for grid in grids]
                        if len(grids) == mc.n_channels else []),
    }


def restore_generator(generator: torch.Generator, stored: torch.Tensor,
                      stored_device: str) -> None:
    """Set ``generator`` to a checkpoint's RNG state; a state of another device type
    (a CUDA Philox state for a CPU Mersenne twister, or back) cannot be set, so the
    generator is seeded from a hash of it instead: deterministic, but not the stream the
    other device would have continued (the two never draw the same numbers anyway)."""
    if generator.device.type == stored_device:
        generator.set_state(stored)
        return
    import hashlib

    digest = hashlib.sha256(stored.numpy().tobytes()).digest()
    generator.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def restore_state(mc: Integrator, state: dict[str, Any], path: Path,
                  physics: Mapping[str, object] | None) -> None:
    """Restore ``mc`` from a checkpoint read by :func:`read_checkpoint`: one-line
    :class:`CheckpointError` and :class:`CheckpointMismatchError` as
    :meth:`Integrator.load_state <madnis_py.training.Integrator.load_state>` says."""
    check_physics(state.get("physics"),
                  plain(physics) if physics is not None else mc._physics(), path)
    try:
        n_stored = len(state["sigmas"])
        if n_stored != mc.n_channels:
            raise CheckpointMismatchError(
                f"{path} is a checkpoint of {n_stored} channels, this integrand has "
                f"{mc.n_channels} (another process?); retrain or pass its integrand")
        for prefix, module in (("flows", mc.flows), ("weights", mc.weights)):
            why = shape_mismatch(state[prefix], module.state_dict(), prefix)
            if why is not None:
                raise CheckpointMismatchError(
                    f"{path} does not fit this integrator: {why} (another process or "
                    "other flow_options?)")
        try:
            mc.flows.load_state_dict(state["flows"])
            mc.weights.load_state_dict(state["weights"])
        except RuntimeError as err:
            raise CheckpointMismatchError(
                f"{path} does not fit this integrator (another process or other "
                f"flow_options?): {str(err).splitlines()[0]}") from err
        restore_generator(mc.generator, state["generator"],
                          str(state.get("generator_device", "cpu")))
        mc.sigmas = state["sigmas"].numpy().astype(np.float64).copy()
        mc.n_calls, mc.n_invalid, mc.steps_done = (
            int(v) for v in state["counters"])
        mc.use_flow = [bool(v) for v in state["use_flow"]]
        mc.active = state["active"].numpy().astype(bool).copy()
        if "low_steps" in state:
            mc._low_steps = state["low_steps"].numpy().astype(np.int64).copy()
        history = state.get("history")
        if history is not None:
            mc.history = History.from_dict(history)
        training = state.get("training")
        mc._resume = (training if isinstance(training, dict)
                        and int(training["done"]) < int(training["steps"]) else None)
        result = state.get("result")
        known = {f.name for f in dataclasses.fields(MultiChannelResult)}
        fields: dict[str, Any] = ({} if result is None else
                                  {k: (tuple(v) if isinstance(v, list) else v)
                                   for k, v in result.items() if k in known})
        mc.last_result = None if result is None else MultiChannelResult(**fields)
        grids = state.get("vegas_grids", [])
        if grids:
            import vegas

            if len(grids) != mc.n_channels:
                raise ValueError(f"{len(grids)} VEGAS grids for {mc.n_channels} "
                                 "channels")
            for sampler, grid in zip(mc.samplers, grids, strict=True):
                sampler.base = vegas.AdaptiveMap([g.numpy() for g in grid])
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError,
            RuntimeError) as err:
        raise CheckpointError(f"{path}: a damaged or incompatible madnis_py checkpoint "
                              f"({one_line(err)})") from err
    if physics is not None:
        mc.physics = physics
