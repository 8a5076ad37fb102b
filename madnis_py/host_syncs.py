"""Count the places where the host waits for the device: host synchronisations.

On a GPU every operation whose result the host must read (``.item()``, ``bool()`` of a
tensor, ``torch.nonzero`` and boolean indexing, whose output size depends on the data,
``.cpu()``, ``.tolist()``) stops the host until the device has finished all the work
queued before it, so that the next kernels are launched only after it: a few tens of
microseconds each, and the device idles while Python runs. :func:`count_host_syncs`
counts them in a block of code on any device, the CPU included, by the torch operations
that synchronise on CUDA, so that the device path's synchronisations can be counted, and
kept from growing, on a machine without a GPU. On a CUDA device it also counts what
torch itself reports (``torch.cuda.set_sync_debug_mode``), which sees the host-to-device
copies of host arrays as well.

    with count_host_syncs() as syncs:
        integrator.train(1)
    print(syncs.total, syncs.by_site.most_common(5))
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["HostSyncs", "SYNCHRONISING_OPERATIONS", "count_host_syncs"]

#: aten operations whose result the host reads on CUDA: a scalar read (``item``, ``bool``,
#: ``int``, ``float``), or an output size that depends on the data.
SYNCHRONISING_OPERATIONS = frozenset({
    "_local_scalar_dense", "is_nonzero", "equal", "nonzero", "masked_select",
    "unique", "_unique", "_unique2", "unique_consecutive", "unique_dim", "bincount",
})
_INDEXING = frozenset({"index", "index_put_", "index_put", "_index_put_impl_"})
_PACKAGE = os.path.dirname(os.path.abspath(__file__))


@dataclass
class HostSyncs:
    """What :func:`count_host_syncs` counted.

    Attributes
    ----------
    by_site : collections.Counter
        ``(operation, "module.py:line function")`` -> count; the site is the innermost
        frame in madnis_py (``"?"`` outside it).
    cuda : int or None
        The synchronisations torch reported on a CUDA device
        (``torch.cuda.set_sync_debug_mode``); None without CUDA.
    """

    by_site: Counter[tuple[str, str]] = field(default_factory=Counter)
    cuda: int | None = None

    @property
    def total(self) -> int:
        """All counted operations."""
        return sum(self.by_site.values())

    def at(self, module: str) -> int:
        """The operations counted in ``module`` (a path inside madnis_py, e.g.
        ``"flows/spline.py"``)."""
        return sum(k for (_, site), k in self.by_site.items()
                   if site.split(":")[0] == module)

    def note(self, operation: str) -> None:
        frames = [f for f in traceback.extract_stack()
                  if f.filename.startswith(_PACKAGE) and not f.filename.endswith(
                      "host_syncs.py")]
        site = "?"
        if frames:
            f = frames[-1]
            site = f"{os.path.relpath(f.filename, _PACKAGE)}:{f.lineno} {f.name}"
        self.by_site[operation, site] += 1

    def table(self) -> str:
        """One line per site, most first."""
        return "\n".join(f"{k:6d}  {op:20s} {site}"
                         for (op, site), k in self.by_site.most_common())


def _boolean(index: Any) -> bool:
    return isinstance(index, torch.Tensor) and index.dtype in (torch.bool, torch.uint8)


class _Mode(TorchDispatchMode):  # type: ignore[no-untyped-call]
    def __init__(self, syncs: HostSyncs) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.syncs = syncs

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        if name in SYNCHRONISING_OPERATIONS or name == "repeat_interleave" and kwargs.get("output_size") is None:
            self.syncs.note(name)
        elif name in _INDEXING and any(_boolean(i) for i in args[1]):
            self.syncs.note(f"{name} (mask)")
        return func(*args, **kwargs)


@contextmanager
def count_host_syncs() -> Iterator[HostSyncs]:
    """Count, in the ``with`` block, the torch operations that make the host wait for a
    GPU (:data:`SYNCHRONISING_OPERATIONS`, boolean-mask indexing, ``repeat_interleave``
    without ``output_size``, ``Tensor.cpu()`` and ``Tensor.tolist()``), on any device.

    Not counted on the CPU: copies of host arrays to the device (``torch.as_tensor(array,
    device=...)``), which synchronise on CUDA; on a CUDA device ``HostSyncs.cuda`` holds
    torch's own count, which includes them.
    """
    syncs = HostSyncs()
    originals: dict[str, Callable[..., Any]] = {}
    for method in ("cpu", "tolist"):
        original = getattr(torch.Tensor, method)
        originals[method] = original

        def counted(self: torch.Tensor, *a: Any, _original: Callable[..., Any] = original,
                    _name: str = method, **k: Any) -> Any:
            syncs.note(f".{_name}()")
            return _original(self, *a, **k)

        setattr(torch.Tensor, method, counted)
    on_cuda = torch.cuda.is_available()
    previous = torch.cuda.get_sync_debug_mode() if on_cuda else 0
    try:
        with ExitStack() as stack:
            caught = stack.enter_context(warnings.catch_warnings(record=True)) if on_cuda \
                else None
            if on_cuda:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
            stack.enter_context(_Mode(syncs))
            yield syncs
    finally:
        if on_cuda:
            torch.cuda.set_sync_debug_mode(previous)
        for method, original in originals.items():
            setattr(torch.Tensor, method, original)
    if caught is not None:
        others = [w for w in caught if "synchroniz" not in str(w.message)]
        syncs.cuda = len(caught) - len(others)
        for w in others:  # the block's other warnings, as they were
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
