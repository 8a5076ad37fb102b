"""Run cards of the ``madnis-py`` command: TOML cards (:mod:`.run_card`) and the import
of MadGraph ``run_card.dat`` files (:mod:`.madgraph`)."""

from madnis_py.cards.madgraph import (
    MadGraphFields,
    MadGraphRunCard,
    import_madgraph_run_card,
    read_madgraph_run_card,
)
from madnis_py.cards.run_card import (
    ColliderSettings,
    DistributedSettings,
    IntegrationSettings,
    OutputSettings,
    RunCard,
    RunCardError,
    RunCardNotFoundError,
    RunSettings,
    ScaleSettings,
    TrainingSettings,
    UnweightingSettings,
    load_run_card,
    parse_run_card,
)

__all__ = [
    "ColliderSettings",
    "DistributedSettings",
    "IntegrationSettings",
    "MadGraphFields",
    "MadGraphRunCard",
    "OutputSettings",
    "RunCard",
    "RunCardError",
    "RunCardNotFoundError",
    "RunSettings",
    "ScaleSettings",
    "TrainingSettings",
    "UnweightingSettings",
    "import_madgraph_run_card",
    "load_run_card",
    "parse_run_card",
    "read_madgraph_run_card",
]
