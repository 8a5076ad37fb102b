"""Build the C++ shims that give MadGraph standalone_cpp and Sherpa processes the
MadGraph standalone-Fortran ABI, so :class:`madnis_py.physics.MatrixElement` loads them.

Neither MadGraph nor Sherpa can be installed on the machines this package is developed
on: the shims are compiled and tested only where they are found (``tests/physics/
test_shims.py`` skips otherwise; set ``MADNIS_PY_MG5_STANDALONE_CPP`` to a ``P*``
directory of an ``output standalone_cpp`` of ``e+ e- > mu+ mu-`` to run its check).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ShimBuildError", "build_sherpa", "build_standalone_cpp", "SHIM_DIR"]

SHIM_DIR = Path(__file__).resolve().parent


class ShimBuildError(RuntimeError):
    """Compiling a shim failed; the message carries the command and the compiler output."""


def _compile(cmd: list[str]) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise ShimBuildError(f"compiler not found: {cmd[0]}") from err
    if out.returncode != 0:
        raise ShimBuildError(f"{' '.join(cmd)}\nfailed with:\n{out.stderr[-4000:]}")


def build_standalone_cpp(process_dir: str | Path, pdgs: Sequence[int], *,
                         output: str | Path | None = None, model: str = "sm",
                         cxx: str = "g++") -> Path:
    """Compile the standalone_cpp shim against a MadGraph ``SubProcesses/P*`` directory.

    Parameters
    ----------
    process_dir : path
        The ``P*`` directory holding ``CPPProcess.cc`` (its output's ``src/`` two levels up).
    pdgs : sequence of int
        The subprocess's PDG list, incoming first, as MadGraph orders it.
    output : path, optional
        The shared library to write (default ``<process_dir>/libmadnis_me.so``).
    model : str
        The model name in ``Parameters_<model>`` (default ``sm``).

    Returns
    -------
    Path of the library, to pass to ``MatrixElement.from_madgraph`` with the output's
    ``Cards/param_card.dat``.
    """
    pdir = Path(process_dir).resolve()
    src = pdir.parent.parent / "src"
    if not (pdir / "CPPProcess.cc").is_file():
        raise FileNotFoundError(f"{pdir}: no CPPProcess.cc (expected a SubProcesses/P* "
                                "directory of a MadGraph `output standalone_cpp`)")
    if not (src / f"Parameters_{model}.h").is_file():
        raise FileNotFoundError(f"{src}: no Parameters_{model}.h (is the model {model!r}?)")
    out = Path(output) if output is not None else pdir / "libmadnis_me.so"
    cmd = [cxx, "-O2", "-fPIC", "-shared", "-std=c++11", f"-I{pdir}", f"-I{src}",
           f"-DMADNIS_MODEL_PARAMETERS=Parameters_{model}",
           f"-DMADNIS_PDGS={','.join(str(int(p)) for p in pdgs)}",
           str(SHIM_DIR / "standalone_cpp.cc"), str(pdir / "CPPProcess.cc"),
           *sorted(str(p) for p in src.glob("*.cc")), "-o", str(out)]
    _compile(cmd)
    return out


def build_sherpa(*, output: str | Path, cxx: str = "g++",
                 sherpa_config: str = "Sherpa-config") -> Path:
    """Compile the Sherpa MEProcess shim against an installed Sherpa.

    The library's ``initialise_`` takes the directory of a Sherpa run card (one process)
    in place of a param_card.
    """
    config = shutil.which(sherpa_config)
    if config is None:
        raise FileNotFoundError(f"{sherpa_config} not found on PATH: Sherpa is not installed "
                                "(or its bin directory is not on PATH)")

    def flags(option: str) -> list[str]:
        res = subprocess.run([config, option], capture_output=True, text=True, check=True)
        return res.stdout.split()

    out = Path(output)
    cmd = [cxx, "-O2", "-fPIC", "-shared", "-std=c++17", *flags("--cppflags"),
           str(SHIM_DIR / "sherpa.cc"), *flags("--ldflags"), "-o", str(out)]
    _compile(cmd)
    return out
