"""The public :class:`PDF`: one member of a set, x f(x, Q2) and alpha_s(Q2), batched."""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from madnis_py.physics.pdf import backends as _backends
from madnis_py.physics.pdf.backends import Backend, GridBackend, LHAPDFBackend
from madnis_py.physics.pdf.errors import PDFError, PDFSetNotFoundError
from madnis_py.physics.pdf.lookup import (
    DEFAULT_PDF_SET,
    EMBEDDED_PDFSETS_DIR,
    find_set_dir,
    install_hint,
    lookup_lhaid,
    pdf_search_paths,
)

__all__ = ["PDF"]

FloatArray = NDArray[np.float64]
ArrayLike = Any  # numpy array, torch tensor, sequence or scalar


def _is_torch(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def _as_numpy(a: Any, name: str) -> NDArray[Any]:
    if _is_torch(a):
        return np.asarray(a.detach().cpu().numpy())
    try:
        return np.asarray(a)
    except Exception as exc:
        raise TypeError(f"{name} must be array-like (numpy, torch or sequence); "
                        f"got {type(a).__name__}") from exc


class PDF:
    """One member of a PDF set: x f(x, Q2) for any parton and alpha_s(Q2), batched.

    Parameters
    ----------
    name_or_path_or_lhaid : str, PathLike or int, optional
        A set name (``"LHToyPDF"``, ``"CT18NNLO"``, or ``"NAME/MEMBER"``), the path of a
        set directory, ``.info`` or member ``.dat`` file, or an LHAPDF ID (mapped to a
        set and member through ``pdfsets.index``). Default: the embedded toy set.
    member : int
        Member number (ignored for an LHAPDF ID, a ``NAME/MEMBER`` name or a ``.dat`` path).
    backend : {"auto", "grid", "lhapdf"}
        ``"grid"``: this module's reader. ``"lhapdf"``: the LHAPDF library (must import).
        ``"auto"``: embedded sets and explicit paths with the grid reader; other names
        and LHAPDF IDs through LHAPDF when it imports, else with the grid reader from
        the LHAPDF data directories.

    Raises
    ------
    PDFSetNotFoundError
        The set or member is not found; the message names every searched directory.
    PDFGridFormatError
        A malformed grid or metadata file; the message names file and line.
    """

    def __init__(self, name_or_path_or_lhaid: str | os.PathLike[str] | int = DEFAULT_PDF_SET,
                 member: int = 0, *, backend: str = "auto"):
        if backend not in ("auto", "grid", "lhapdf"):
            raise ValueError(f"backend must be 'auto', 'grid' or 'lhapdf'; got {backend!r}")
        spec = name_or_path_or_lhaid
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or member < 0:
            raise ValueError(f"member must be a non-negative int; got {member!r}")
        member = int(member)
        if isinstance(spec, bool) or not isinstance(spec, (str, os.PathLike, int, np.integer)):
            raise TypeError("name_or_path_or_lhaid must be a set name, a path or an LHAPDF "
                            f"ID (int); got {type(spec).__name__}")
        paths = pdf_search_paths()
        self._backend: Backend
        lhaid: int | None = None

        if isinstance(spec, (int, np.integer)):
            lhaid = int(spec)
            lhapdf = self._import_lhapdf(backend)
            if lhapdf is not None:
                self._backend = self._lhapdf(lhapdf, lhaid, 0, f"LHAPDF ID {lhaid}")
                self.name = self._backend.set_name or str(lhaid)
                self.member = self._backend.member
                return
            spec, member = lookup_lhaid(lhaid, paths)

        text = os.fspath(spec)
        p = Path(text)
        is_path = isinstance(spec, os.PathLike) or os.sep in text or p.suffix in (".info", ".dat")
        if is_path and p.exists():
            if backend == "lhapdf":
                raise ValueError("backend='lhapdf' takes set names, not paths; got "
                                 f"{text!r}")
            setdir, member = self._resolve_path(p, member)
            self.name, self.member = setdir.name, member
            self._backend = GridBackend(setdir, member, setdir.name)
            return

        name = text
        m = re.fullmatch(r"(.+)/(\d+)", text)
        if m is not None and not p.exists():
            name, member = m.group(1), int(m.group(2))
        if "/" in name or os.sep in name:
            raise PDFSetNotFoundError(f"PDF set path {text!r} does not exist")
        self.name, self.member = name, member

        embedded = find_set_dir(name, [EMBEDDED_PDFSETS_DIR])
        if backend == "auto" and embedded is not None:
            self._backend = GridBackend(embedded, member, name)
            return
        lhapdf = self._import_lhapdf(backend)
        if lhapdf is not None:
            self._backend = self._lhapdf(lhapdf, name, member, f"PDF set {name!r}")
            return
        found = find_set_dir(name, paths)
        if found is None:
            what = (f"PDF set {name!r}" if lhaid is None
                    else f"LHAPDF ID {lhaid} (set {name!r} member {member} in pdfsets.index)")
            searched = "\n  ".join(str(x) for x in paths)
            raise PDFSetNotFoundError(
                f"{what} not found: no {name}/{name}.info in any of\n  {searched}\n"
                f"({install_hint(name)})")
        self._backend = GridBackend(found, member, name)

    @staticmethod
    def _import_lhapdf(backend: str) -> Any:
        """The ``lhapdf`` module, None for ``backend="grid"`` or where it does not import."""
        lhapdf = None if backend == "grid" else _backends.import_lhapdf()
        if backend == "lhapdf" and lhapdf is None:
            raise ImportError("backend='lhapdf' needs the LHAPDF Python module "
                              "('import lhapdf' failed)")
        return lhapdf

    @staticmethod
    def _lhapdf(lhapdf: Any, spec: str | int, member: int, what: str) -> LHAPDFBackend:
        """The LHAPDF backend, its failure to load the set as a PDFSetNotFoundError."""
        try:
            return LHAPDFBackend(lhapdf, spec, member)
        except Exception as exc:  # noqa: BLE001 - LHAPDF raises RuntimeError subclasses
            dirs = _backends.lhapdf_paths(lhapdf)
            name: str | None = spec if isinstance(spec, str) else None
            if isinstance(spec, int):  # the set to install, where LHAPDF's index knows the ID
                with contextlib.suppress(PDFError):
                    name = lookup_lhaid(spec, dirs)[0]
            raise PDFSetNotFoundError(
                f"LHAPDF could not load {what}" + (f" member {member}" if isinstance(spec, str)
                                                   else "")
                + f" ({exc}); LHAPDF searched: {', '.join(map(str, dirs)) or 'unknown'}; "
                + install_hint(name)) from exc

    @staticmethod
    def _resolve_path(p: Path, member: int) -> tuple[Path, int]:
        if p.is_dir():
            return p, member
        if p.suffix == ".info":
            return p.parent, member
        m = re.fullmatch(r"(.+)_(\d{4})\.dat", p.name)
        if m is None or m.group(1) != p.parent.name:
            raise PDFSetNotFoundError(f"{p} is not a member file <set>/<set>_NNNN.dat of an "
                                      "LHAPDF set directory")
        return p.parent, int(m.group(2))

    # -- metadata --------------------------------------------------------------------

    @property
    def backend(self) -> str:
        """``"grid"`` (this module) or ``"lhapdf"`` (the LHAPDF library)."""
        return self._backend.kind

    @property
    def info(self) -> dict[str, Any]:
        """Metadata: the set's ``.info`` over LHAPDF's defaults, then the member header."""
        return self._backend.info

    @property
    def path(self) -> Path | None:
        """The member ``.dat`` file (None with the LHAPDF backend)."""
        return self._backend.path

    @property
    def flavours(self) -> list[int]:
        """Parton IDs in the set, sorted (PDG codes; 21 is the gluon)."""
        return self._backend.flavours

    @property
    def x_min(self) -> float:
        """Smallest x knot."""
        return self._backend.x_range[0]

    @property
    def x_max(self) -> float:
        """Largest x knot."""
        return self._backend.x_range[1]

    @property
    def q2_min(self) -> float:
        """Smallest Q2 knot, GeV^2."""
        return self._backend.q2_range[0]

    @property
    def q2_max(self) -> float:
        """Largest Q2 knot, GeV^2."""
        return self._backend.q2_range[1]

    @property
    def q_min(self) -> float:
        """Smallest Q knot, GeV."""
        return math.sqrt(self.q2_min)

    @property
    def q_max(self) -> float:
        """Largest Q knot, GeV."""
        return math.sqrt(self.q2_max)

    @property
    def order_qcd(self) -> int | None:
        """Perturbative order of the evolution (LHAPDF ``OrderQCD``: 0 = LO)."""
        v = self.info.get("OrderQCD")
        return None if v is None else int(v)

    def __repr__(self) -> str:
        return (f"PDF({self.name!r}, member={self.member}, backend={self.backend!r}, "
                f"x in [{self.x_min:g}, {self.x_max:g}], Q in [{self.q_min:g}, {self.q_max:g}] "
                "GeV)")

    # -- evaluation ------------------------------------------------------------------

    def xfxQ2(self, pid: ArrayLike, x: ArrayLike, Q2: ArrayLike) -> Any:
        """x f(x, Q2) for parton ``pid``, broadcast over ``pid``, ``x`` and ``Q2``.

        Parameters
        ----------
        pid : int or array of int
            PDG parton IDs; 0 and 21 both mean the gluon. IDs not in the set give 0.
        x : array_like
            Momentum fractions in [0, 1].
        Q2 : array_like
            Squared scales in GeV^2, >= 0.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            x f with the broadcast shape, float64; a torch tensor (on ``x``'s device, with
            ``x``'s floating dtype) when ``x`` or ``Q2`` is one.

        Raises
        ------
        ValueError
            x outside [0, 1], Q2 < 0 or a non-integer pid.
        """
        like = x if _is_torch(x) else (Q2 if _is_torch(Q2) else None)
        p = _as_numpy(pid, "pid")
        xa = _as_numpy(x, "x").astype(np.float64, copy=False)
        qa = _as_numpy(Q2, "Q2").astype(np.float64, copy=False)
        if p.dtype.kind == "f":
            if not np.all(p == np.round(p)):
                raise ValueError("pid must hold integer PDG codes")
        elif p.dtype.kind not in "iu":
            raise ValueError(f"pid must hold integer PDG codes; got dtype {p.dtype}")
        pb, xb, qb = np.broadcast_arrays(p.astype(np.int64), xa, qa)
        if np.any(~((xb >= 0) & (xb <= 1))):
            bad = xb[~((xb >= 0) & (xb <= 1))].ravel()[0]
            raise ValueError(f"x must lie in [0, 1]; got {bad!r}")
        if np.any(~(qb >= 0)):
            bad = qb[~(qb >= 0)].ravel()[0]
            raise ValueError(f"Q2 must be >= 0 GeV^2; got {bad!r}")
        out = self._backend.xfxQ2(pb.ravel(), xb.ravel(), qb.ravel()).reshape(xb.shape)
        return self._wrap(out, like)

    def xfxQ2_flavours(self, pids: Sequence[int], x: ArrayLike, Q2: ArrayLike) -> Any:
        """x f(x, Q2) of every parton of ``pids`` at every point: ``(n, k)`` for 1-d ``x``
        and ``Q2`` of length n and k partons, each column equal to :meth:`xfxQ2` of its
        parton (bit for bit); the grid reader finds the knots once per point for all.

        Raises
        ------
        ValueError
            x outside [0, 1], Q2 < 0, ``x`` and ``Q2`` not 1-d of one length, or a pid
            that is not an integer.
        """
        like = x if _is_torch(x) else (Q2 if _is_torch(Q2) else None)
        p = np.asarray(pids)
        if p.ndim != 1 or (p.size and p.dtype.kind not in "iu"):
            raise ValueError(f"pids must be a sequence of integer PDG codes; got {pids!r}")
        xa = _as_numpy(x, "x").astype(np.float64, copy=False)
        qa = _as_numpy(Q2, "Q2").astype(np.float64, copy=False)
        if xa.ndim != 1 or xa.shape != qa.shape:
            raise ValueError(f"x and Q2 must be 1-d of one length; got shapes {xa.shape} "
                             f"and {qa.shape}")
        if np.any(~((xa >= 0) & (xa <= 1))):
            raise ValueError(f"x must lie in [0, 1]; got {xa[~((xa >= 0) & (xa <= 1))][0]!r}")
        if np.any(~(qa >= 0)):
            raise ValueError(f"Q2 must be >= 0 GeV^2; got {qa[~(qa >= 0)][0]!r}")
        out = self._backend.xfxQ2_flavours(p.astype(np.int64), xa, qa)
        return self._wrap(out, like)

    def xfxQ(self, pid: ArrayLike, x: ArrayLike, Q: ArrayLike) -> Any:
        """x f(x, Q) for parton ``pid`` at scale ``Q`` (GeV); see :meth:`xfxQ2`."""
        if _is_torch(Q):
            return self.xfxQ2(pid, x, Q * Q)
        q = _as_numpy(Q, "Q").astype(np.float64, copy=False)
        return self.xfxQ2(pid, x, q * q)

    def alphasQ2(self, Q2: ArrayLike) -> Any:
        """alpha_s(Q2) from the set's ``AlphaS_Type`` (``ipol`` or ``analytic``).

        Parameters
        ----------
        Q2 : array_like
            Squared scales in GeV^2, >= 0.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            alpha_s with the shape of ``Q2`` (a torch tensor if ``Q2`` is one).
        """
        qa = _as_numpy(Q2, "Q2").astype(np.float64, copy=False)
        if np.any(~(qa >= 0)):
            raise ValueError(f"Q2 must be >= 0 GeV^2; got {qa[~(qa >= 0)].ravel()[0]!r}")
        out = self._backend.alphasQ2(qa.ravel()).reshape(qa.shape)
        return self._wrap(out, Q2 if _is_torch(Q2) else None)

    def alphasQ(self, Q: ArrayLike) -> Any:
        """alpha_s at scale ``Q`` (GeV); see :meth:`alphasQ2`."""
        if _is_torch(Q):
            return self.alphasQ2(Q * Q)
        q = _as_numpy(Q, "Q").astype(np.float64, copy=False)
        return self.alphasQ2(q * q)

    @staticmethod
    def _wrap(out: FloatArray, like: Any) -> Any:
        if like is None:
            return out
        import torch

        dtype = like.dtype if like.is_floating_point() else torch.float64
        return torch.as_tensor(out).to(device=like.device, dtype=dtype)
