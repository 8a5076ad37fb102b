"""Import of the compiled core with an error that says how to build it."""

from __future__ import annotations

from types import ModuleType

__all__ = ["ext"]


def _load() -> ModuleType:
    try:
        from madnis_py import _ext
    except ImportError as err:  # pragma: no cover - only on a broken install
        raise ImportError(
            "madnis_py._ext (the compiled kernels) is missing or broken: build it with "
            "`pip install -e .` from the repository root (needs a C++17 compiler; "
            f"pybind11 is fetched by pip). Original error: {err}"
        ) from err
    return _ext


ext = _load()
