"""The header of an LHE file as MadGraph writes it (its "banner"), and the PDF id of ``<init>``.

madevent's event files start with a ``<header>`` holding the cards of the run, which
analysis tools and showers read back: ``<MG5ProcCard>`` (the process), ``<MGRunCard>``
(``run_card.dat``: ``value = name ! comment`` lines) and ``<slha>`` (the param_card).
:class:`Banner` writes the same blocks, plus ``<MadNISRunCard>`` with the madnis-py run
card (TOML) that produced the file, and names the subprocess of every ``IDPRUP`` in
``#`` comment lines of ``<init>``. :meth:`Banner.for_run` fills it from a run:

- ``<slha>``: the process's param_card as it is on disk (for a MadGraph output, MadGraph's
  ``Cards/param_card.dat``), so :func:`madnis_py.physics.slha.read_slha` of the block gives
  the parameters the run used;
- ``<MGRunCard>``: MadGraph's ``Cards/run_card.dat`` when the process came from MadGraph
  (``output madnis_py``), with the run's own ``nevents`` and ``iseed`` (the madnis-py
  card and ``--seed`` set them; the physics is the card's, in ``<MadNISRunCard>``), else
  a run card in MadGraph's format with the settings the run used (energy, beams, PDF id,
  scale, ``bwcutoff`` and the cuts, which already have MadGraph's names);
- ``<MG5ProcCard>``: MadGraph's ``Cards/proc_card_mg5.dat`` when there is one.

PDF ids (PDFSUP) are LHAPDF ids: the set's ``SetIndex`` plus the member. The embedded
LHToyPDF has no LHAPDF id of its own; it is written as :data:`LHAPDF_TOY_ID` = 99000, the
``SetIndex`` under which our benchmarks install it into LHAPDF (``pdfsets.index`` line
``99000 LHToyPDF 1``; ``benchmarks/RESULTS.md``), so that madevent and a shower reading
LHAPDF open the same grid. A set with no ``SetIndex`` otherwise gets 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["LHAPDF_TOY_ID", "Banner", "lhapdf_id", "madgraph_run_card", "with_run_values"]

#: LHAPDF id written for the embedded LHToyPDF set (its ``SetIndex`` in our LHAPDF installs).
LHAPDF_TOY_ID = 99000
_TOY_SET = "LHToyPDF"


def lhapdf_id(pdf: Any) -> int:
    """The LHAPDF id of a :class:`~madnis_py.physics.pdf.PDF` (``SetIndex`` + member;
    :data:`LHAPDF_TOY_ID` + member for the embedded toy set), 0 for None or a set without
    an id."""
    if pdf is None:
        return 0
    info = pdf.info
    if "SetIndex" in info:
        return int(info["SetIndex"]) + int(pdf.member)
    if pdf.name == _TOY_SET:
        return LHAPDF_TOY_ID + int(pdf.member)
    return 0


def _mg_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def madgraph_run_card(*, nevents: int, seed: int, sqrt_s: float, hadronic: bool,
                      lhaid: int, scale: float | None, dynamical_scale_choice: int | None,
                      bwcutoff: float, cuts: Mapping[str, float]) -> str:
    """A run card in MadGraph's ``value = name ! comment`` format with a run's settings.

    Only the fields madnis-py has are written; :func:`madnis_py.cards.read_madgraph_run_card`
    reads it back.
    """
    fixed = scale is not None
    rows: list[tuple[object, str, str]] = [
        (nevents, "nevents", "Number of unweighted events requested"),
        (seed, "iseed", "rnd seed"),
        (1 if hadronic else 0, "lpp1", "beam 1 type (1 proton, 0 no PDF)"),
        (1 if hadronic else 0, "lpp2", "beam 2 type"),
        (sqrt_s / 2, "ebeam1", "beam 1 total energy in GeV"),
        (sqrt_s / 2, "ebeam2", "beam 2 total energy in GeV"),
        ("lhapdf" if hadronic else "none", "pdlabel", "PDF set"),
        (lhaid, "lhaid", "LHAPDF id of the PDF set"),
        (fixed, "fixed_ren_scale", "if .true. use fixed ren scale"),
        (fixed, "fixed_fac_scale", "if .true. use fixed fac scale"),
        (scale if fixed else 91.188, "scale", "fixed ren scale"),
        (scale if fixed else 91.188, "dsqrt_q2fact1", "fixed fact scale for pdf1"),
        (scale if fixed else 91.188, "dsqrt_q2fact2", "fixed fact scale for pdf2"),
        (dynamical_scale_choice if dynamical_scale_choice is not None else -1,
         "dynamical_scale_choice", "dynamical scale choice"),
        (bwcutoff, "bwcutoff", "resonances written within bwcutoff widths of the pole"),
    ]
    rows += [(float(v), str(k), "cut") for k, v in sorted(cuts.items())]
    lines = ["#" + "*" * 71,
             "# MadGraph-format run card written by madnis_py: the settings of this run",
             "#" + "*" * 71]
    lines += [f"  {_mg_value(v)} = {k} ! {c}" for v, k, c in rows]
    return "\n".join(lines) + "\n"


def with_run_values(text: str, values: Mapping[str, object]) -> str:
    """A MadGraph ``run_card.dat`` text with the values of the fields named in ``values``
    replaced on their ``value = name ! comment`` lines (spacing and comments kept; a
    field the text does not have is not added)."""
    out = []
    for line in text.splitlines(keepends=True):
        body, bang, comment = line.partition("!")
        value, eq, name = body.partition("=")
        key = name.strip()
        token = value.strip()
        if eq and key in values and token and " " not in token and not token.startswith("#"):
            lead = value[: len(value) - len(value.lstrip())]
            pad = value[len(value.rstrip()):]
            line = f"{lead}{_mg_value(values[key])}{pad}{eq}{name}{bang}{comment}"
        out.append(line)
    return "".join(out)


def _block(tag: str, text: str | None) -> str:
    if text is None:
        return ""
    # Escaped rather than wrapped in CDATA: XML parsers give the text back unchanged,
    # and no line of a card can look like </header> or <init> to a line-based reader.
    return f"<{tag}>\n{escape(text.strip(chr(10)))}\n</{tag}>\n"


@dataclass(frozen=True)
class Banner:
    """The ``<header>`` of an LHE file and the ``#`` comments of its ``<init>``.

    Attributes
    ----------
    run_card
        The madnis-py run card (TOML), as ``<MadNISRunCard>``.
    mg_run_card
        A MadGraph ``run_card.dat`` text, as ``<MGRunCard>``.
    param_card
        The SLHA param_card text, as ``<slha>``.
    proc_card
        MadGraph's ``proc_card_mg5.dat``, as ``<MG5ProcCard>``.
    processes
        ``IDPRUP -> PDG list`` (incoming first) of the subprocesses, written as one
        ``# IDPRUP 1: 2 -2 > -11 11`` line each after the process lines of ``<init>``.
    """

    run_card: str | None = None
    mg_run_card: str | None = None
    param_card: str | None = None
    proc_card: str | None = None
    processes: Mapping[int, Sequence[int]] = field(default_factory=dict)

    def to_lhe(self) -> str:
        """The ``<header>`` block (MadGraph's order of the cards)."""
        body = (_block("MG5ProcCard", self.proc_card) + _block("MGRunCard", self.mg_run_card)
                + _block("slha", self.param_card) + _block("MadNISRunCard", self.run_card))
        return f"<header>\n{body}</header>\n"

    def init_comments(self, lprups: Sequence[int]) -> list[str]:
        """Texts of the ``#`` lines (:attr:`LHEInit.comments
        <madnis_py.events.lhe.LHEInit.comments>`) naming the subprocess of each of
        ``lprups``."""
        out = []
        for k in lprups:
            pdgs = self.processes.get(k)
            if pdgs is not None:
                ids = [str(int(p)) for p in pdgs]
                out.append(f"IDPRUP {k}: {' '.join(ids[:2])} > {' '.join(ids[2:])}")
        return out

    @classmethod
    def for_run(cls, card: Any, integrand: Any, *,
                bwcutoff: float | None = None) -> Banner:
        """The banner of a ``madnis-py run``: ``card`` is its
        :class:`~madnis_py.cards.RunCard`, ``integrand`` its
        :class:`~madnis_py.integrand.Integrand`; ``bwcutoff`` that of the resonances
        written (by default MadGraph's run card's, else 15)."""
        from madnis_py.events.resonances import DEFAULT_BWCUTOFF, madgraph_bwcutoff

        proc = integrand.process
        root = Path(proc.card).parent
        mg_cards = root / "Cards"
        if bwcutoff is None:
            bwcutoff = madgraph_bwcutoff(root) or DEFAULT_BWCUTOFF
        run_dat = mg_cards / "run_card.dat"
        if run_dat.is_file():
            mg_run = with_run_values(run_dat.read_text(encoding="utf-8", errors="replace"),
                                     {"nevents": int(card.run.nevents),
                                      "iseed": int(card.run.seed)})
        else:
            mg_run = madgraph_run_card(
                nevents=int(card.run.nevents), seed=int(card.run.seed),
                sqrt_s=float(integrand.sqrt_s), hadronic=bool(proc.hadronic),
                lhaid=lhapdf_id(integrand.pdf), scale=integrand.scale,
                dynamical_scale_choice=integrand.dynamical_scale_choice,
                bwcutoff=bwcutoff, cuts=integrand.cut_values)
        proc_dat = mg_cards / "proc_card_mg5.dat"
        return cls(
            run_card=card.to_toml(), mg_run_card=mg_run,
            param_card=Path(proc.param_card).read_text(encoding="utf-8", errors="replace"),
            proc_card=(proc_dat.read_text(encoding="utf-8", errors="replace")
                       if proc_dat.is_file() else None),
            processes={k + 1: tuple(s.pdgs) for k, s in enumerate(proc.subprocesses)})
