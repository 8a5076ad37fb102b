"""Finding PDF sets: search directories, set directories, LHAPDF IDs.

The embedded sets come first, then ``LHAPDF_DATA_PATH`` (or ``LHAPATH``) and
``LHAPDF_DATA_PREFIX``; an LHAPDF ID maps to a set and member through ``pdfsets.index``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from madnis_py.physics.pdf.errors import PDFGridFormatError, PDFSetNotFoundError
from madnis_py.physics.pdf.info import INT_RE

__all__ = ["DEFAULT_PDF_SET", "EMBEDDED_PDFSETS_DIR", "find_set_dir", "install_hint",
           "lookup_lhaid", "member_file", "pdf_search_paths"]

#: The set used when none is named: the embedded Les Houches toy PDF.
DEFAULT_PDF_SET = "LHToyPDF"
#: Where the embedded sets live (one directory per set, LHAPDF layout).
EMBEDDED_PDFSETS_DIR = Path(__file__).resolve().parents[2] / "data" / "pdfsets"


def pdf_search_paths() -> list[Path]:
    """Directories searched for PDF sets, in order.

    The embedded sets first, then each entry of ``LHAPDF_DATA_PATH`` (``LHAPATH`` when
    that is unset), then ``LHAPDF_DATA_PREFIX`` and its ``LHAPDF`` subdirectory.
    """
    paths = [EMBEDDED_PDFSETS_DIR]
    var = os.environ.get("LHAPDF_DATA_PATH")
    if var is None:
        var = os.environ.get("LHAPATH", "")
    paths += [Path(p) for p in var.split(":") if p]
    prefix = os.environ.get("LHAPDF_DATA_PREFIX")
    if prefix:
        paths += [Path(prefix), Path(prefix) / "LHAPDF"]
    seen: list[Path] = []
    for p in paths:
        if p not in seen:
            seen.append(p)
    return seen


def install_hint(name: str | None = None) -> str:
    """How to make a missing set available, for the errors that report one."""
    how = f"'lhapdf install {name}'" if name else "'lhapdf install NAME'"
    return (f"install the set (LHAPDF's {how}, or unpack it from "
            "https://lhapdfsets.web.cern.ch/current/, with LHAPDF's pdfsets.index for IDs) "
            "and point LHAPDF_DATA_PATH at the directory that holds it")


def member_file(setdir: Path, member: int) -> Path:
    return setdir / f"{setdir.name}_{member:04d}.dat"


def find_set_dir(name: str, paths: Iterable[Path]) -> Path | None:
    for base in paths:
        cand = base / name
        if (cand / f"{name}.info").is_file():
            return cand
    return None


def lookup_lhaid(lhaid: int, paths: Sequence[Path]) -> tuple[str, int]:
    """Map an LHAPDF ID to (set name, member) through ``pdfsets.index``."""
    indices = [p / "pdfsets.index" for p in paths if (p / "pdfsets.index").is_file()]
    best: tuple[int, str] | None = None
    for index in indices:
        with open(index, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue
                if len(parts) < 2 or not INT_RE.match(parts[0]):
                    raise PDFGridFormatError(index, lineno,
                                             "expected '<lhaid> <setname> [version]'")
                first = int(parts[0])
                if first <= lhaid and (best is None or first > best[0]):
                    best = (first, parts[1])
        if best is not None:
            break  # LHAPDF reads the first index file found
    if best is None:
        searched = ", ".join(str(i) for i in indices) or "none found"
        raise PDFSetNotFoundError(
            f"LHAPDF ID {lhaid} is in no pdfsets.index (index files: {searched}; searched "
            f"directories: {', '.join(str(p) for p in paths)}); {install_hint()}")
    return best[1], lhaid - best[0]

