"""Opt-in: Pythia 8 (``pip install pythia8mc``, which compiles for over 30 minutes) reads
the LHE files of ``madnis-py`` as ``Beams:frameType = 4`` without errors.

Run with ``pytest -q -m pythia tests/events``; skipped where pythia8 is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_py.cli import main

pythia8 = pytest.importorskip("pythia8", reason="pythia8mc is not installed (opt-in)")

CARD = """
[run]
process = "{process}"
seed = 2
nevents = 200

[training]
steps = 5
batch = 512
vegas = false

[integration]
points = 10000
iterations = 2

[output]
lhe = "events.lhe{suffix}"
plots = false
"""


@pytest.mark.pythia
@pytest.mark.parametrize("process,suffix", [("drell_yan", ""), ("ee_qqg", ""),
                                            ("ttbar", "")])
def test_pythia_reads_our_lhe_files(tmp_path: Path, process: str, suffix: str) -> None:
    card = tmp_path / "card.toml"
    card.write_text(CARD.format(process=process, suffix=suffix))
    assert main(["run", str(card), "--output", str(tmp_path), "--quiet"]) == 0
    pythia = pythia8.Pythia("", False)
    for setting in ("Beams:frameType = 4", f"Beams:LHEF = {tmp_path / 'events.lhe'}",
                    "PartonLevel:all = off", "HadronLevel:all = off",
                    "Check:event = on", "Next:numberCount = 0"):
        assert pythia.readString(setting), setting
    assert pythia.init()
    info = pythia.infoPython()
    events = 0
    while pythia.next():
        events += 1
    assert info.atEndOfFile()
    assert events == 200
    assert info.errorTotal() == 0
