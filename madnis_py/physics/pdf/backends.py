"""Backends: what evaluates one member, behind the small :class:`Backend` protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
from numpy.typing import NDArray

from madnis_py.physics.pdf.alphas import make_alphas
from madnis_py.physics.pdf.errors import PDFError, PDFGridFormatError, PDFSetNotFoundError
from madnis_py.physics.pdf.grid import read_lhagrid
from madnis_py.physics.pdf.info import INFO_DEFAULTS, parse_value, read_info
from madnis_py.physics.pdf.interpolation import LogBicubicGrid
from madnis_py.physics.pdf.lookup import member_file

__all__ = ["Backend", "GridBackend", "LHAPDFBackend", "import_lhapdf"]

FloatArray = NDArray[np.float64]


class Backend(Protocol):
    """What :class:`~madnis_py.physics.pdf.PDF` needs from whatever evaluates a member.

    Arrays are 1-d float64 (``pid`` int64) of equal length, already checked (x in
    [0, 1], Q2 >= 0); the results have the same length.
    """

    kind: str
    info: dict[str, Any]
    path: Path | None

    @property
    def flavours(self) -> list[int]: ...

    @property
    def x_range(self) -> tuple[float, float]: ...

    @property
    def q2_range(self) -> tuple[float, float]: ...

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray: ...

    def alphasQ2(self, q2: FloatArray) -> FloatArray: ...


def import_lhapdf() -> Any:
    """The ``lhapdf`` Python module, or None where it does not import."""
    try:
        import lhapdf
    except ImportError:
        return None
    return lhapdf


class GridBackend:
    """A member read from an lhagrid1 file and evaluated by this module."""

    kind = "grid"

    def __init__(self, setdir: Path, member: int, name: str):
        info_path = setdir / f"{setdir.name}.info"
        mem_path = member_file(setdir, member)
        if not mem_path.is_file():
            raise PDFSetNotFoundError(f"PDF set {name!r} has no member {member}: "
                                      f"{mem_path} does not exist")
        info: dict[str, Any] = dict(INFO_DEFAULTS)
        if info_path.is_file():
            info.update(read_info(info_path))
        data = read_lhagrid(mem_path)
        info.update(data.header)
        flav = info.get("Flavors")
        if flav is not None:
            if not isinstance(flav, list) or sorted(int(f) for f in flav) != sorted(data.pids):
                raise PDFGridFormatError(mem_path, None,
                                         f"parton IDs {data.pids} in the grid do not match "
                                         f"Flavors {flav} of {info_path}")
        interp = str(info.get("Interpolator", "logcubic")).lower()
        if interp != "logcubic":
            raise PDFError(f"{info_path}: Interpolator {interp!r} is not supported by the grid "
                           "reader (only LHAPDF's default 'logcubic'); use backend='lhapdf'")
        self.info = info
        self.path = mem_path
        self.pids = list(data.pids)
        self.grid = LogBicubicGrid(data, str(info.get("Extrapolator", "continuation")),
                                    mem_path)
        self.force_positive = int(info.get("ForcePositive", 0))
        self._alphas: Callable[[FloatArray], FloatArray] | None = None
        # pid -> column through a sorted table (pid 0 is the gluon, 21).
        order = np.argsort(self.pids)
        self._sorted_pids = np.asarray(self.pids, dtype=np.int64)[order]
        self._sorted_cols = order.astype(np.intp)

    @property
    def flavours(self) -> list[int]:
        return sorted(self.pids)

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self.grid.xs[0]), float(self.grid.xs[-1])

    @property
    def q2_range(self) -> tuple[float, float]:
        return float(self.grid.q2s[0]), float(self.grid.q2s[-1])

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray:
        pid = np.where(pid == 0, 21, pid)
        pos = np.searchsorted(self._sorted_pids, pid)
        pos = np.clip(pos, 0, self._sorted_pids.size - 1)
        known = self._sorted_pids[pos] == pid
        out = np.zeros(x.shape)
        if np.any(known):
            col = self._sorted_cols[pos[known]]
            val = self.grid.evaluate(col, x[known], q2[known])
            if self.force_positive == 1:
                val = np.maximum(val, 0.0)
            elif self.force_positive == 2:
                val = np.maximum(val, 1e-10)
            out[known] = val
        return out

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        if self._alphas is None:
            self._alphas = make_alphas(self.info, str(self.path.parent))
        return self._alphas(q2)


class LHAPDFBackend:
    """A member evaluated by the LHAPDF library (point by point through its bindings)."""

    kind = "lhapdf"

    def __init__(self, lhapdf: Any, name: str | int, member: int):
        self._pdf = lhapdf.mkPDF(name) if isinstance(name, int) else lhapdf.mkPDF(name, member)
        info: dict[str, Any] = {}
        try:
            src = self._pdf.info()
            for key in src.keys():
                info[str(key)] = parse_value(str(src.get_entry(key)))
        except Exception:  # older bindings: no key listing
            pass
        self.info = info
        self.path: Path | None = None
        self.pids = [int(p) for p in self._pdf.flavors()]
        self.set_name: str | None = None
        self.member = member
        try:
            self.set_name = str(self._pdf.set().name)
            self.member = int(self._pdf.memberID)
        except Exception:  # bindings without set()/memberID
            pass

    @property
    def flavours(self) -> list[int]:
        return sorted(self.pids)

    @property
    def x_range(self) -> tuple[float, float]:
        return float(self._pdf.xMin), float(self._pdf.xMax)

    @property
    def q2_range(self) -> tuple[float, float]:
        return float(self._pdf.q2Min), float(self._pdf.q2Max)

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray:
        f = self._pdf.xfxQ2
        return np.fromiter((f(int(p), float(a), float(b)) for p, a, b in zip(pid, x, q2)),
                           dtype=np.float64, count=x.size)

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        f = self._pdf.alphasQ2
        return np.fromiter((f(float(b)) for b in q2), dtype=np.float64, count=q2.size)
