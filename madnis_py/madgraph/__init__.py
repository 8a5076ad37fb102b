"""The bridge to MadGraph 5: the ``output madnis_py`` plugin and the importer.

- :mod:`~madnis_py.madgraph.plugin`: MadGraph's side (runs in MadGraph's Python): the
  standalone Fortran with per-diagram |M_i|^2, one shared library, ``madgraph.json``;
- :mod:`~madnis_py.madgraph.diagrams`: MadGraph's s- and t-channel vertices of a diagram
  -> a channel topology; grouping of identical topologies (standard library only);
- :mod:`~madnis_py.madgraph.assemble`: ``madgraph.json`` -> ``process.toml`` and
  ``run_card.toml``;
- :mod:`~madnis_py.madgraph.install`: ``madnis-py madgraph install MG5_DIR`` and
  ``madnis-py madgraph import OUTPUT_DIR``.

A user's process in one go::

    madnis-py madgraph install /path/to/MG5_aMC
    # in MadGraph: import model sm; generate g g > t t~ g; output madnis_py ggttg
    madnis-py run ggttg/run_card.toml
"""

from madnis_py.madgraph.assemble import Assembled, AssembleError, assemble
from madnis_py.madgraph.diagrams import Diagram, DiagramError, Line, Vertex, channel_table
from madnis_py.madgraph.install import (
    MadGraphError,
    find_madgraph,
    import_output,
    install_plugin,
)

__all__ = [
    "AssembleError",
    "Assembled",
    "Diagram",
    "DiagramError",
    "Line",
    "MadGraphError",
    "Vertex",
    "assemble",
    "channel_table",
    "find_madgraph",
    "import_output",
    "install_plugin",
]
