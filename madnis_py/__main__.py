"""``python -m madnis_py``: the demo (see :mod:`madnis_py.demo`)."""

from madnis_py.demo import main

raise SystemExit(main())
