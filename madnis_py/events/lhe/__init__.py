"""Les Houches Event files: write them, check them line by line, read them back.

The format is the Les Houches accord on event files (hep-ph/0609017) in its version 3.0
(arXiv:1405.1067): a ``<LesHouchesEvents version="3.0">`` root, an optional ``<header>``,
an ``<init>`` block (beams, PDFs, weighting strategy, one line per process) and one
``<event>`` block per event (one line for the event, one line of 13 fields per particle).
Both XML parsers (pylhe) and line-based readers (Pythia 8) read such
files, so the writer keeps to what both accept: every record on its own line, tags alone on
their lines, and header text escaped so that no line of it looks like a tag.

Momenta and weights are printed with ``digits`` significant digits (default 17, which gives
back every float64 exactly; MadGraph prints 11). Eleven digits already keep momentum
conservation at a 6.5 TeV beam to about 1e-10 relative; 17 also keep the invariant masses
recomputed from the printed momenta as good as those of the generator.

One module per job, each importing only those listed before it:

- :mod:`~madnis_py.events.lhe.records`: the records (:class:`LHEInit`,
  :class:`LHEProcessInfo`, :class:`LHEEvent`, :class:`LHEParticle`) and the %-formats
  that print them;
- :mod:`~madnis_py.events.lhe.reader`: :func:`check_lhe`, :func:`read_lhe`,
  :class:`LHESummary` and :class:`LHEError`;
- :mod:`~madnis_py.events.lhe.writer`: :class:`LHEWriter`, :func:`idwtup_for`,
  :func:`idwtup_of_parts` and the merging of part files.

This package re-exports their public names.
"""

from madnis_py.events.lhe.reader import LHEError, LHESummary, check_lhe, read_lhe
from madnis_py.events.lhe.records import LHEEvent, LHEInit, LHEParticle, LHEProcessInfo
from madnis_py.events.lhe.writer import LHEWriter, idwtup_for, idwtup_of_parts

__all__ = [
    "LHEError",
    "LHEEvent",
    "LHEInit",
    "LHEParticle",
    "LHEProcessInfo",
    "LHESummary",
    "LHEWriter",
    "check_lhe",
    "idwtup_for",
    "idwtup_of_parts",
    "read_lhe",
]
