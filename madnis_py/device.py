"""Where a run computes: the one check of a requested torch device.

``resolve_device("cuda")`` on a machine without a usable CUDA device is one
:class:`DeviceError` that says which of the three things is missing (a CUDA build of
torch, a visible device, the index asked for), raised before any work; the run card's
``device``, ``madnis-py run --device`` and ``Integrator(device=...)`` all go through it.
"""

from __future__ import annotations

import torch

__all__ = ["DeviceError", "resolve_device"]


class DeviceError(ValueError):
    """A device that cannot be used here; the message says why and what to do."""


def resolve_device(device: str | torch.device) -> torch.device:
    """The torch device for ``"cpu"``, ``"cuda"`` or ``"cuda:N"``, checked to exist.

    Raises
    ------
    DeviceError
        An unknown device type, or CUDA asked for where torch cannot use it.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {device!r}: expected 'cpu', 'cuda' or 'cuda:N'") from err
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise DeviceError(f"device {device!r}: only 'cpu' and 'cuda' are supported")
    if torch.version.cuda is None:
        raise DeviceError(f"device {device!r}: this torch ({torch.__version__}) is built "
                          "without CUDA; install a CUDA build of torch or use device 'cpu'")
    count = torch.cuda.device_count()
    if count == 0 or not torch.cuda.is_available():
        raise DeviceError(f"device {device!r}: no CUDA device is visible (torch "
                          f"{torch.__version__}, CUDA {torch.version.cuda}: "
                          "torch.cuda.is_available() is False; check the driver and "
                          "CUDA_VISIBLE_DEVICES) - use device 'cpu'")
    index = 0 if dev.index is None else dev.index
    if not 0 <= index < count:
        raise DeviceError(f"device {device!r}: only {count} CUDA device(s) are visible "
                          f"(cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)
