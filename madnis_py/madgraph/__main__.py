"""``python -m madnis_py.madgraph DIR``: write the cards of an ``output madnis_py`` directory."""

from madnis_py.madgraph.assemble import main

raise SystemExit(main())
