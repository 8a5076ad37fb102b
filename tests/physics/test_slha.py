"""The SLHA reader: blocks, widths, Fortran exponents, comments, and errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_py.physics.builtin import builtin_process_dir
from madnis_py.physics.slha import SLHAError, read_slha

CARD = """\
# a comment line
BLOCK MASS # masses
    6 1.730000e+02   # MT
   23 9.118800D+01   # MZ, Fortran exponent
   25 -1.25d2        # a negative mass is a mass
Block yukawa
    5 4.7e0
BLOCK MIXING
  1 2 0.5
DECAY   6 1.491500D+00
   1.0  2  5  24  # a decay table: skipped
DECAY  23 2.441404e+00
DECAY  25 6.38d-03
BLOCK SMINPUTS
    3 1.180000e-01
"""


def test_blocks_widths_and_exponents(tmp_path: Path) -> None:
    path = tmp_path / "param_card.dat"
    path.write_text(CARD)
    card = read_slha(path)
    assert card.path == path
    assert card.mass(6) == card.mass(-6) == 173.0
    assert card.mass(23) == 91.188 and card.mass(25) == 125.0
    assert card.mass(11) == 0.0  # absent light particles are massless
    assert card.get("YUKAWA", 5) == 4.7 and card.get("mixing", 1, 2) == 0.5
    assert card.get("sminputs", 3) == 0.118
    assert card.width(6) == 1.4915 and card.width(-23) == 2.441404 and card.width(25) == 6.38e-3
    assert card.width(1) == 0.0
    assert set(card.blocks) == {"mass", "yukawa", "mixing", "sminputs"}


def test_missing_entries_and_files_name_the_card(tmp_path: Path) -> None:
    path = tmp_path / "param_card.dat"
    path.write_text(CARD)
    with pytest.raises(KeyError, match=f"{path}: no entry 1 2 in block MASS"):
        read_slha(path).get("mass", 1, 2)
    with pytest.raises(FileNotFoundError, match="param_card .*missing.dat cannot be read"):
        read_slha(tmp_path / "missing.dat")


@pytest.mark.parametrize(("line", "lineno"), [
    ("BLOCK", 1), ("DECAY 23", 1), ("DECAY 23 Auto", 1), ("BLOCK MASS\n  6 heavy", 2),
    ("BLOCK MASS\n  top 173.0", 2)])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, lineno: int) -> None:
    path = tmp_path / "param_card.dat"
    path.write_text(line + "\n")
    with pytest.raises(SLHAError, match=rf"{path}:{lineno}: cannot read "):
        read_slha(path)


def test_the_builtin_sm_card_reads() -> None:
    card = read_slha(builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat")
    assert card.mass(23) == pytest.approx(91.188)
    assert card.width(23) == pytest.approx(2.441404)
    assert 0 < card.get("sminputs", 3) < 0.2
