"""Events out of the integrator: accept/reject unweighting and Les Houches Event files.

``unweight`` and ``lhe`` use numpy only (no torch), so that unweighting, writing and
checking event files stay cheap to import.
"""

from madnis_py.events.lhe import (
    LHEError,
    LHEEvent,
    LHEInit,
    LHEParticle,
    LHEProcessInfo,
    LHESummary,
    LHEWriter,
    check_lhe,
    read_lhe,
)
from madnis_py.events.unweight import Unweighter, UnweightingResult, max_weight

__all__ = [
    "LHEError",
    "LHEEvent",
    "LHEInit",
    "LHEParticle",
    "LHEProcessInfo",
    "LHESummary",
    "LHEWriter",
    "Unweighter",
    "UnweightingResult",
    "check_lhe",
    "max_weight",
    "read_lhe",
]
