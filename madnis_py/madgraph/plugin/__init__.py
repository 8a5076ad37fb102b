"""madnis_py's MadGraph 5 plugin: the output mode ``output madnis_py DIR``.

Installed into a MadGraph tree by ``madnis-py madgraph install MG5_DIR``, which makes
``MG5_DIR/PLUGIN/madnis_py`` with links to these files and records the Python that has
madnis_py (``python.txt``). MadGraph imports this package as ``PLUGIN.madnis_py`` with its
own Python; nothing here imports madnis_py.
"""

from . import exporter

# MadGraph's plugin interface: output modes, and the versions this plugin was tested with.
new_output = {"madnis_py": exporter.MadnisPyExporter}
new_interface = None
new_reweight = None

minimal_mg5amcnlo_version = (3, 5, 0)
maximal_mg5amcnlo_version = (3, 6, 1000)
latest_validated_version = (3, 5, 7)
