"""Where the built-in processes live: their cards and compiled libraries.

The sources are the repository's top-level ``processes/`` directory, installed as the
package ``madnis_py.processes``; ``pip install`` compiles each ``processes/<name>/*.c``
(with ``processes/common``) into ``processes/<name>/_me*.so`` next to its card.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["builtin_library", "builtin_process_dir", "builtin_processes"]


def _root() -> Path:
    import madnis_py.processes as processes

    return Path(processes.__file__).resolve().parent


def builtin_processes() -> list[str]:
    """Names of the built-in processes (directories with a ``process.toml``)."""
    return sorted(p.parent.name for p in _root().glob("*/process.toml"))


def builtin_process_dir(name: str) -> Path:
    """Directory of a built-in process; the error lists the known names."""
    d = _root() / name
    if not (d / "process.toml").is_file():
        raise KeyError(f"no built-in process {name!r}; built-in: {builtin_processes()}")
    return d


def builtin_library(name: str) -> Path:
    """The compiled matrix-element library of a built-in process."""
    d = _root() / name
    libs = sorted(d.glob("_me*.so")) + sorted(d.glob("_me*.pyd")) + sorted(d.glob("_me*.dylib"))
    if not libs:
        raise FileNotFoundError(
            f"the library of built-in process {name!r} is not built (looked for _me*.so in "
            f"{d}); run `pip install -e .` from the repository root")
    return libs[0]
