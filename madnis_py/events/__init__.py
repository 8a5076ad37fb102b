"""Events out of the integrator: accept/reject unweighting and Les Houches Event files.

``unweight`` and ``lhe`` use numpy only (no torch), so that unweighting, writing and
checking event files stay cheap to import.
"""

from madnis_py.events.banner import LHAPDF_TOY_ID, Banner, lhapdf_id
from madnis_py.events.lhe import (
    LHEError,
    LHEEvent,
    LHEInit,
    LHEParticle,
    LHEProcessInfo,
    LHESummary,
    LHEWriter,
    check_lhe,
    idwtup_for,
    idwtup_of_parts,
    read_lhe,
)
from madnis_py.events.resonances import Resonance, ResonanceTable, add_resonances
from madnis_py.events.unweight import Unweighter, UnweightingResult, max_weight

__all__ = [
    "LHAPDF_TOY_ID",
    "Banner",
    "LHEError",
    "LHEEvent",
    "LHEInit",
    "LHEParticle",
    "LHEProcessInfo",
    "LHESummary",
    "LHEWriter",
    "Resonance",
    "ResonanceTable",
    "Unweighter",
    "UnweightingResult",
    "add_resonances",
    "check_lhe",
    "idwtup_for",
    "idwtup_of_parts",
    "lhapdf_id",
    "max_weight",
    "read_lhe",
]
