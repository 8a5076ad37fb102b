"""Backends: what evaluates one member, behind the small :class:`Backend` protocol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from madnis_py.physics.pdf.alphas import make_alphas
from madnis_py.physics.pdf.errors import PDFError, PDFGridFormatError, PDFSetNotFoundError
from madnis_py.physics.pdf.grid import read_lhagrid
from madnis_py.physics.pdf.info import INFO_DEFAULTS, parse_metadata, parse_value, read_info
from madnis_py.physics.pdf.interpolation import LogBicubicGrid
from madnis_py.physics.pdf.lookup import member_file

__all__ = ["Backend", "GridBackend", "LHAPDFBackend", "import_lhapdf", "lhapdf_paths"]

FloatArray = NDArray[np.float64]


class Backend(Protocol):
    """What :class:`~madnis_py.physics.pdf.PDF` needs from whatever evaluates a member.

    Arrays are 1-d float64 (``pid`` int64) of equal length, already checked (x in
    [0, 1], Q2 >= 0); the results have the same length.
    """

    kind: str
    info: dict[str, Any]

    @property
    def path(self) -> Path | None: ...

    @property
    def flavours(self) -> list[int]: ...

    @property
    def x_range(self) -> tuple[float, float]: ...

    @property
    def q2_range(self) -> tuple[float, float]: ...

    def xfxQ2(self, pid: NDArray[np.int64], x: FloatArray, q2: FloatArray) -> FloatArray: ...

    def xfxQ2_flavours(self, pids: NDArray[np.int64], x: FloatArray,
                       q2: FloatArray) -> FloatArray:
        """Every parton of ``pids`` (k,) at every point: ``(n, k)``."""
        ...

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
        if flav is not None and (not isinstance(flav, list)
                                 or sorted(int(f) for f in flav) != sorted(data.pids)):
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

    def xfxQ2_flavours(self, pids: NDArray[np.int64], x: FloatArray,
                       q2: FloatArray) -> FloatArray:
        """Every parton of ``pids`` at every point, ``(n, k)``: bit for bit :meth:`xfxQ2`
        of each, with the grid's knot search done once per point."""
        pid = np.where(pids == 0, 21, pids)
        pos = np.clip(np.searchsorted(self._sorted_pids, pid), 0, self._sorted_pids.size - 1)
        known = self._sorted_pids[pos] == pid
        out = np.zeros((x.size, pids.size))
        if np.any(known):
            val = self.grid.evaluate_columns(self._sorted_cols[pos[known]], x, q2)
            if self.force_positive == 1:
                val = np.maximum(val, 0.0)
            elif self.force_positive == 2:
                val = np.maximum(val, 1e-10)
            out[:, known] = val
        return out

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        if self._alphas is None:
            self._alphas = make_alphas(self.info, str(self.path.parent))
        return self._alphas(q2)


#: Metadata keys asked of LHAPDF one by one where the set's ``.info`` is not on disk.
_LHAPDF_INFO_KEYS = ("SetIndex", "SetDesc", "Format", "DataVersion", "NumMembers", "Particle",
                     "Flavors", "OrderQCD", "FlavorScheme", "NumFlavors", "ErrorType",
                     "XMin", "XMax", "QMin", "QMax", "MZ", "MUp", "MDown", "MStrange",
                     "MCharm", "MBottom", "MTop", "AlphaS_MZ", "AlphaS_OrderQCD",
                     "AlphaS_Type", "Interpolator", "Extrapolator", "ForcePositive")

def lhapdf_paths(lhapdf: Any) -> list[Path]:
    """LHAPDF's own data directories (its ``LHAPDF_DATA_PATH`` and install prefix)."""
    try:
        return list(dict.fromkeys(Path(p) for p in lhapdf.paths()))
    except Exception:  # noqa: BLE001 - bindings without paths(): nothing to add
        return []


class LHAPDFBackend:
    """A member evaluated by the LHAPDF library.

    LHAPDF's verbosity is set to 0 for the whole process: at 1 it prints a banner on
    every set it loads and a citation request at exit, both on standard output, where
    ``madnis-py --json`` writes its one JSON document. A batch is evaluated with one call
    per parton ID (the bindings loop over zipped x and Q2 lists in compiled code);
    LHAPDF's alpha_s takes one Q2 per call.
    """

    kind = "lhapdf"

    def __init__(self, lhapdf: Any, name: str | int, member: int):
        lhapdf.setVerbosity(0)
        self._pdf = lhapdf.mkPDF(name) if isinstance(name, int) else lhapdf.mkPDF(name, member)
        self.path: Path | None = None
        self.pids = [int(p) for p in self._pdf.flavors()]
        self.set_name: str | None = None
        self.member = member
        try:
            self.set_name = str(self._pdf.set().name)
            self.member = int(self._pdf.memberID)
        except Exception:  # noqa: BLE001 - bindings without set()/memberID
            pass
        self.info = self._read_info(lhapdf)
        self._zipped = True

    def _read_info(self, lhapdf: Any) -> dict[str, Any]:
        """The set's ``.info`` over LHAPDF's defaults and the member header, from disk
        where LHAPDF's directories hold it, else the common keys through the bindings."""
        info: dict[str, Any] = dict(INFO_DEFAULTS)
        setdir = None if self.set_name is None else next(
            (d / self.set_name for d in lhapdf_paths(lhapdf)
             if (d / self.set_name / f"{self.set_name}.info").is_file()), None)
        if setdir is not None:
            info.update(read_info(setdir / f"{self.set_name}.info"))
            mem = member_file(setdir, self.member)
            if mem.is_file():
                self.path = mem
                with open(mem, encoding="utf-8") as fh:
                    head = []
                    for line in fh:
                        if line.strip() == "---":
                            break
                        head.append(line)
                info.update(parse_metadata(head, mem))
            return info
        try:
            src = self._pdf.info()
            for key in _LHAPDF_INFO_KEYS:
                if src.has_key(key):
                    info[key] = parse_value(str(src.get_entry(key)))
        except Exception:  # noqa: BLE001 - bindings without has_key/get_entry
            pass
        return info

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
        pids = np.unique(pid)
        if pids.size == 1:
            return self._xfxQ2_one(int(pids[0]), x, q2)
        out = np.empty(x.size)
        for p in pids:
            sel = pid == p
            out[sel] = self._xfxQ2_one(int(p), x[sel], q2[sel])
        return out

    def xfxQ2_flavours(self, pids: NDArray[np.int64], x: FloatArray,
                       q2: FloatArray) -> FloatArray:
        """Every parton of ``pids`` at every point, ``(n, k)``: one LHAPDF call each."""
        return np.stack([self._xfxQ2_one(int(p), x, q2) for p in pids], axis=1)

    def _xfxQ2_one(self, pid: int, x: FloatArray, q2: FloatArray) -> FloatArray:
        f = self._pdf.xfxQ2
        if self._zipped:
            try:
                return np.asarray(f(pid, x.tolist(), q2.tolist()), dtype=np.float64)
            except TypeError:  # bindings before 6.3 take scalars only
                self._zipped = False
        return np.fromiter((f(pid, a, b) for a, b in zip(x.tolist(), q2.tolist(), strict=True)),
                           dtype=np.float64, count=x.size)

    def alphasQ2(self, q2: FloatArray) -> FloatArray:
        return np.fromiter(map(self._pdf.alphasQ2, q2.tolist()), dtype=np.float64,
                           count=q2.size)
