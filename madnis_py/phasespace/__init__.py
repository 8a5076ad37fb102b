"""Phase space: mappings from the unit hypercube to momenta with exact weights, channel
topologies as data, and MadGraph-style cuts."""

from madnis_py.phasespace.coverage import CutCoverageError, fit_to_cuts
from madnis_py.phasespace.cuts import Cuts
from madnis_py.phasespace.invariants import BreitWigner, BreitWignerTail, PowerLaw
from madnis_py.phasespace.mapping import (
    Beams,
    ChannelMapping,
    Mapping,
    PhaseSpaceBatch,
    Rambo,
    channel_mappings,
)
from madnis_py.phasespace.topology import (
    Decay,
    Propagator,
    TChannel,
    Topology,
    TopologyError,
    load_topologies,
)

__all__ = [
    "Beams",
    "BreitWigner",
    "BreitWignerTail",
    "Cuts",
    "CutCoverageError",
    "ChannelMapping",
    "Decay",
    "Mapping",
    "PhaseSpaceBatch",
    "PowerLaw",
    "Propagator",
    "Rambo",
    "TChannel",
    "Topology",
    "TopologyError",
    "channel_mappings",
    "fit_to_cuts",
    "load_topologies",
]
