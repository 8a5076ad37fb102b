"""Parton distribution functions and alpha_s from LHAPDF6 grids, batched in numpy.

A pure-numpy reader for LHAPDF6 ``lhagrid1`` sets (A. Buckley et al., arXiv:1412.7420)
that reproduces LHAPDF's default numerics: the ``logcubic`` interpolator (cubic Hermite
in log x and log Q2 with LHAPDF's finite-difference slopes at the knots), the
``continuation`` extrapolator (the MSTW-style continuation: power laws in x below the
grid and at large Q2, an interpolated anomalous dimension below Q2_min), the
``nearest`` and ``error`` extrapolators, and the ``ipol`` and ``analytic`` alpha_s.
Heavy-flavour thresholds are subgrid boundaries in Q (repeated Q knots); the subgrid
is chosen from Q2 as LHAPDF does, a Q2 exactly on a boundary using the upper one.

Sets are looked up by name in the package's embedded sets (``madnis_py/data/pdfsets``:
``LHToyPDF``, the Les Houches toy PDF of hep-ph/0204316 evolved at LO), then, when the
``lhapdf`` Python module imports, through LHAPDF itself, else in the directories of
``LHAPDF_DATA_PATH`` (or ``LHAPATH``) and ``LHAPDF_DATA_PREFIX``. An integer is an
LHAPDF ID, mapped to a set and member through ``pdfsets.index`` in those directories.
The LHAPDF backend evaluates a batch with one call per parton ID, and silences LHAPDF's
banner (it would otherwise go to standard output).

Modules, each with one job: :mod:`.info` (metadata), :mod:`.grid` (member files),
:mod:`.interpolation` (interpolation and extrapolation), :mod:`.alphas`, :mod:`.lookup`
(finding sets), :mod:`.backends` (the grid reader and LHAPDF behind one protocol) and
:mod:`.member` (the public :class:`PDF`).

Example
-------
>>> pdf = PDF("LHToyPDF")
>>> pdf.xfxQ2(21, np.array([1e-3, 0.1]), np.array([100.0, 1e4]))  # doctest: +SKIP
array([...])
"""

from madnis_py.physics.pdf.alphas import AlphaSAnalytic, AlphaSIpol
from madnis_py.physics.pdf.errors import PDFError, PDFGridFormatError, PDFSetNotFoundError
from madnis_py.physics.pdf.info import INFO_DEFAULTS, read_info
from madnis_py.physics.pdf.lookup import DEFAULT_PDF_SET, EMBEDDED_PDFSETS_DIR, pdf_search_paths
from madnis_py.physics.pdf.member import PDF

__all__ = [
    "DEFAULT_PDF_SET",
    "EMBEDDED_PDFSETS_DIR",
    "INFO_DEFAULTS",
    "AlphaSAnalytic",
    "AlphaSIpol",
    "PDF",
    "PDFError",
    "PDFGridFormatError",
    "PDFSetNotFoundError",
    "pdf_search_paths",
    "read_info",
]
