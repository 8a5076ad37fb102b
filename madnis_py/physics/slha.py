"""A small reader of SLHA parameter cards (MadGraph's param_card.dat).

Only what madnis_py needs from a card: ``BLOCK`` entries with integer indices and the
widths on ``DECAY`` lines (decay tables below them are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SLHA", "SLHAError", "read_slha"]


class SLHAError(ValueError):
    """A malformed card; the message names the file and line."""


@dataclass
class SLHA:
    """Blocks (lower-case name -> {index tuple: value}) and widths (pdg -> width)."""

    path: Path
    blocks: dict[str, dict[tuple[int, ...], float]] = field(default_factory=dict)
    widths: dict[int, float] = field(default_factory=dict)

    def get(self, block: str, *index: int) -> float:
        """The value of ``block`` entry ``index``; KeyError naming the card and the entry."""
        try:
            return self.blocks[block.lower()][tuple(index)]
        except KeyError:
            raise KeyError(f"{self.path}: no entry {' '.join(map(str, index))} in block "
                           f"{block.upper()}") from None

    def mass(self, pdg: int) -> float:
        """Mass of a particle (MASS block; absent light particles are massless)."""
        return abs(self.blocks.get("mass", {}).get((abs(pdg),), 0.0))

    def width(self, pdg: int) -> float:
        return self.widths.get(abs(pdg), 0.0)


def _number(word: str) -> float:
    """A real number, Fortran's ``d``/``D`` exponents included."""
    return float(word.replace("d", "e").replace("D", "e"))


def read_slha(path: str | Path) -> SLHA:
    """Read an SLHA card."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise FileNotFoundError(f"param_card {path} cannot be read: {err}") from err
    card = SLHA(path)
    block: dict[tuple[int, ...], float] | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        head = words[0].upper()
        try:
            if head == "BLOCK":
                block = card.blocks.setdefault(words[1].lower(), {})
            elif head == "DECAY":
                card.widths[abs(int(words[1]))] = _number(words[2])
                block = None  # the decay table below is not needed
            elif block is not None:
                *index, value = words
                block[tuple(int(i) for i in index)] = _number(value)
        except (IndexError, ValueError) as err:
            raise SLHAError(f"{path}:{lineno}: cannot read {raw.strip()!r} ({err})") from err
    return card
