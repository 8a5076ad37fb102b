"""A madnis_py process directory from what the MadGraph plugin wrote.

``output madnis_py DIR`` (the plugin, :mod:`madnis_py.madgraph.plugin`) leaves in ``DIR``
MadGraph's standalone Fortran, the shared library ``lib/libmadnis_me.so`` and
``madgraph.json`` (subprocesses, colour flows, diagram structure). :func:`assemble` turns
that into the two cards ``madnis-py run`` needs:

- ``DIR/process.toml``: one ``[[subprocess]]`` per PDG list MadGraph generated, plus its
  mirror (incoming partons swapped, ``mirror = true``) where MadGraph marks one; one
  ``[[channel]]`` per diagram with 3-point vertices only (as madevent's ``configs.inc``),
  derived by :func:`madnis_py.madgraph.diagrams.channel_table`, with identical topologies
  across subprocesses grouped into one channel (``diagram_channels`` says which); the
  cuts of MadGraph's run card; the beams from the incoming partons; the on-shell
  windows of a decay chain's resonances (``resonance_windows``) and of the lines ``$``
  forbids (``forbidden_windows``), from MadGraph's ``onshell`` flags;
- ``DIR/run_card.toml``: MadGraph's ``Cards/run_card.dat`` translated by
  :func:`madnis_py.cards.import_madgraph_run_card`; what it could not translate is
  listed in comments at the top and printed once.

Run it as ``python -m madnis_py.madgraph DIR`` (the plugin does) or through
``madnis-py madgraph import DIR``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from madnis_py._atomic import write_text_atomic
from madnis_py.cards._toml import toml_value
from madnis_py.madgraph.diagrams import (
    Diagram,
    DiagramError,
    channel_table,
    group_channels,
    onshell_lines,
)

if TYPE_CHECKING:
    from madnis_py.cards.madgraph import MadGraphRunCard

__all__ = ["AssembleError", "Assembled", "assemble", "plain_process"]

_QCD = {1, 2, 3, 4, 5, 6, 21}
_LEPTONS = {11, 13, 15, 22}


class AssembleError(ValueError):
    """A MadGraph output madnis_py cannot use; the message names the file and the reason."""


@dataclass(frozen=True)
class Assembled:
    """What :func:`assemble` wrote and what it could not translate."""

    process_card: Path
    run_card: Path
    n_subprocesses: int
    n_diagrams: int
    n_channels: int
    messages: tuple[str, ...]


def plain_process(description: str) -> str:
    """A MadGraph process string without its coupling orders and process number, on one
    line: the decays of a decay chain (MadGraph's ``Decay:`` lines) follow the core after
    commas, as the ``generate`` syntax writes them (``g g > t t~, t > b e+ ve``)."""
    parts = []
    for line in description.splitlines():
        text = re.sub(r"\s+(WEIGHTED|QCD|QED)\S*|\s+@\S+|^\s*(Process|Decay):\s*", "",
                      line.strip()).strip()
        if text:
            parts.append(text)
    return ", ".join(parts)


def _mirror_table(table: dict[str, Any]) -> dict[str, Any]:
    """The channel of a diagram with the incoming partons swapped (t-chains reversed)."""
    out = dict(table)
    if "t_channel" in table:
        t = table["t_channel"]
        out["t_channel"] = {"blocks": list(reversed(t["blocks"])),
                            "propagators": list(reversed(t["propagators"]))}
    return out


def _beams(pdg_lists: Sequence[Sequence[int]], path: Path) -> str:
    kinds = set()
    for pdgs in pdg_lists:
        for p in pdgs[:2]:
            kinds.add("proton" if abs(p) in _QCD else "lepton" if abs(p) in _LEPTONS
                      else "other")
    if kinds == {"proton"}:
        return "proton"
    if kinds == {"lepton"}:
        return "lepton"
    raise AssembleError(f"{path}: incoming partons {sorted({p for s in pdg_lists for p in s[:2]})}"
                        " mix hadron and lepton beams or are neither; madnis_py integrates "
                        "p p (quarks, gluons) and lepton-lepton collisions")


def _inline(obj: Any) -> str:
    """A TOML inline value (tables inline, as the built-in cards write channels)."""
    if isinstance(obj, dict):
        return "{ " + ", ".join(f"{k} = {_inline(v)}" for k, v in obj.items()) + " }"
    if isinstance(obj, list):
        return "[" + ", ".join(_inline(v) for v in obj) + "]"
    return toml_value(obj)


def _read_info(root: Path) -> tuple[Path, dict[str, Any], list[dict[str, Any]]]:
    """``madgraph.json`` of an output directory and its subprocess records."""
    info_path = root / "madgraph.json"
    if not info_path.is_file():
        raise AssembleError(f"{root}: no madgraph.json; not written by MadGraph's `output "
                            "madnis_py` (for a standalone or madevent output use `madnis-py "
                            "madgraph import`)")
    try:
        info = json.loads(info_path.read_text())
        records = info["subprocesses"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise AssembleError(f"{info_path}: unreadable ({err})") from err
    if not records:
        raise AssembleError(f"{info_path}: MadGraph generated no subprocess (zero diagrams)")
    return info_path, info, records


def _diagram_tables(record: dict[str, Any], info_path: Path) -> list[dict[str, Any] | None]:
    """The channel table of every diagram of one subprocess record (None: no channel)."""
    nexternal = int(record["nexternal"])
    per_diagram: list[dict[str, Any] | None] = []
    label = plain_process(record["processes"][0]["description"])
    for raw in record["diagrams"]:
        if raw is None:
            per_diagram.append(None)
            continue
        diagram = Diagram.from_json(raw)
        try:
            per_diagram.append(channel_table(diagram, nexternal,
                                             name=f"{label} #{diagram.number}"))
        except DiagramError as err:
            raise AssembleError(f"{info_path}: {record['directory']}: {err}") from err
    return per_diagram


def _resonance_windows(record: dict[str, Any], info_path: Path, bwcutoff: float,
                       cut_decays: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``resonance_windows`` and ``forbidden_windows`` of one subprocess record, from
    MadGraph's ``onshell`` flags.

    Lines a decay chain forces on shell (True) must be the same in every diagram:
    madevent cuts their windows channel by channel (``cut_bw``), which is then one cut on
    every point, what madnis_py applies. Lines ``$`` forbids on shell (False) are vetoed
    by madevent only in the channels of the diagrams that have them: each becomes a
    forbidden window with those diagrams (library order, from 0); a line without width
    is never on shell there and gives none.

    Raises
    ------
    AssembleError
        Diagrams whose forced lines differ (decay products that could come from either
        resonance), or a forced line without width.
    """
    label = plain_process(record["processes"][0]["description"])
    forced: set[tuple[tuple[int, ...], int, float, float, str]] | None = None
    banned: dict[tuple[tuple[int, ...], int, float, float, str], list[int]] = {}
    for index, raw in enumerate(record["diagrams"]):
        if raw is None:
            continue
        lines = [((legs, line.pdg, line.mass, line.width, line.name), line.onshell)
                 for legs, line in onshell_lines(Diagram.from_json(raw))]
        for key, onshell in lines:
            if onshell is False and key[2] > 0 and key[3] > 0:  # a mass and a width
                banned.setdefault(key, []).append(index)
        mine = {key for key, onshell in lines if onshell}
        if forced is None:
            forced = mine
        elif mine != forced:
            raise AssembleError(
                f"{info_path}: {label}: the decay chain's resonances decay into different "
                "particles in different diagrams (identical decay products that can come "
                "from either resonance); madevent cuts such windows channel by channel, "
                "which madnis_py does not reproduce. Generate the decays with distinct "
                "final states, or the full final state without the decay chain")
    windows = []
    for legs, pdg, mass, width, name in sorted(forced or ()):
        if not (mass > 0 and width > 0):
            raise AssembleError(
                f"{info_path}: {label}: the decay chain forces {name or pdg} on shell, "
                f"but its width on the param_card is {width} (mass {mass}); give it a "
                "positive width (e.g. `compute_widths` or DECAY in the param_card)")
        windows.append({"legs": list(legs), "mass": mass, "width": width,
                        "bwcutoff": bwcutoff, "cut_products": cut_decays,
                        "name": name or str(pdg)})
    forbidden = [{"legs": list(legs), "mass": mass, "width": width, "bwcutoff": bwcutoff,
                  "diagrams": diagrams, "name": name or str(pdg)}
                 for (legs, pdg, mass, width, name), diagrams in sorted(banned.items())]
    return windows, forbidden


def _subprocesses(records: list[dict[str, Any]], info_path: Path,
                  bwcutoff: float = 15.0, cut_decays: bool = False) -> tuple[
        list[dict[str, Any]], list[list[dict[str, Any] | None]], int]:
    """Subprocess entries (mirrors included), the channel tables of each subprocess's
    diagrams, and the number of diagrams."""
    subprocesses: list[dict[str, Any]] = []
    tables: list[list[dict[str, Any] | None]] = []
    n_diagrams = 0
    for record in records:
        per_diagram = _diagram_tables(record, info_path)
        windows, forbidden = _resonance_windows(record, info_path, bwcutoff, cut_decays)
        n_diagrams += len(per_diagram)
        for proc in record["processes"]:
            pdgs = [int(p) for p in proc["pdgs"]]
            flows = [[list(c) for c in flow] for flow in record["colour_flows"]]
            factor = int(record.get("identical_particle_factor", 1) or 1)
            note = (f"; identical-particle factor 1/{factor}, in MadGraph's |M|^2"
                    if factor > 1 else "")
            subprocesses.append({"pdgs": pdgs, "colour_flows": flows, "mirror": False,
                                 "matrix_element": record["directory"],
                                 "comment": plain_process(proc["description"]) + note,
                                 "windows": windows, "forbidden": forbidden})
            tables.append(per_diagram)
            if record["mirror"]:
                swapped = [pdgs[1], pdgs[0], *pdgs[2:]]
                mflows = [[f[1], f[0], *f[2:]] for f in flows]
                subprocesses.append({"pdgs": swapped, "colour_flows": mflows, "mirror": True,
                                     "matrix_element": record["directory"],
                                     "comment": "mirror of " + plain_process(proc["description"])
                                     + note, "windows": windows,
                                     "forbidden": forbidden})
                tables.append([None if t is None else _mirror_table(t) for t in per_diagram])
    return subprocesses, tables, n_diagrams


def _process_card_lines(name: str, info: dict[str, Any], records: list[dict[str, Any]],
                        paths: tuple[Path, Path, Path], beams: str,
                        subprocesses: list[dict[str, Any]], diagram_channels: list[list[int]],
                        channels: list[dict[str, Any]],
                        mg_card: MadGraphRunCard | None) -> list[str]:
    """The lines of ``process.toml``; ``paths`` are the root, library and param card."""
    root, library, param_card = paths
    cuts = dict(mg_card.cuts) if mg_card is not None and mg_card.cuts is not None else {}
    lines = [f"# {name}: written by madnis_py from MadGraph {info.get('madgraph_version', '')} "
             f"`output madnis_py` (model {info.get('model', '?')}).",
             "# One channel per diagram with 3-point vertices (madevent's configs.inc), "
             "identical topologies",
             "# grouped; propagator masses and widths from Cards/param_card.dat at output "
             "time.",
             "",
             "[process]",
             f"name = {toml_value(name)}",
             f"title = {toml_value('; '.join(plain_process(r['processes'][0]['description']) for r in records))}",
             f"library = {toml_value(os.path.relpath(library, root))}",
             f"beams = {toml_value(beams)}",
             f"param_card = {toml_value(os.path.relpath(param_card, root))}",
             ""]
    for sub, chans in zip(subprocesses, diagram_channels, strict=True):
        lines += [f"[[subprocess]]  # {sub['comment']}",
                  f"pdgs = {_inline(sub['pdgs'])}",
                  f"colour_flows = {_inline(sub['colour_flows'])}",
                  f"diagram_channels = {_inline(chans)}"]
        if sub["mirror"]:
            lines.append("mirror = true")
        # every subprocess names its SubProcesses directory, also where it is the only
        # one: unnamed subprocesses form one channel group together (madnis_py.physics.
        # channels), which would put unrelated matrix elements into one group
        lines.append(f"matrix_element = {toml_value(sub['matrix_element'])}")
        if sub["windows"]:  # the decay chain's on-shell resonances
            lines.append(f"resonance_windows = {_inline(sub['windows'])}")
        if sub["forbidden"]:  # `$`: resonances forbidden on shell in some diagrams
            lines.append(f"forbidden_windows = {_inline(sub['forbidden'])}")
        lines.append("")
    for table in channels:
        body = {k: v for k, v in table.items() if k != "name"}
        lines += ["[[channel]]", f"name = {toml_value(table['name'])}"]
        lines += [f"{k} = {_inline(v)}" for k, v in body.items()] + [""]
    lines.append("[cuts]  # MadGraph's run_card.dat")
    lines += [f"{k} = {toml_value(int(v) if k == 'maxjetflavor' else float(v))}"
              for k, v in cuts.items()]
    lines.append("")
    lines.append("[defaults]")
    if mg_card is not None:
        if mg_card.collider.sqrt_s is not None:
            lines.append(f"sqrt_s = {toml_value(mg_card.collider.sqrt_s)}")
        if mg_card.scale.fixed is not None:
            lines.append(f"scale = {toml_value(mg_card.scale.fixed)}")
        elif mg_card.scale.dynamical_scale_choice is not None:
            lines.append(f"dynamical_scale_choice = "
                         f"{mg_card.scale.dynamical_scale_choice}")
    return lines


def _check_library(root: Path, library: Path) -> None:
    """The card reads back and the library has every subprocess."""
    from madnis_py.physics.process import load_process

    process = load_process(root)
    me = process.matrix_element()
    known = getattr(me, "subprocesses", None)
    if known is not None:
        missing = [list(s.library_pdgs) for s in process.subprocesses
                   if tuple(s.library_pdgs) not in {tuple(k) for k in known}]
        if missing:
            raise AssembleError(f"{library}: no subprocess for {missing}")


def _run_card_text(mg_card: MadGraphRunCard | None, root: Path, rc_path: Path, beams: str,
                   messages: list[str]) -> str:
    """``run_card.toml``: MadGraph's card translated, or madnis-py's defaults; what could
    not be translated is appended to ``messages`` and listed at the top."""
    from madnis_py.cards.madgraph import read_madgraph_run_card

    header = ["# madnis-py run card of " + root.name + ", translated from "
              f"{os.path.relpath(rc_path, root) if mg_card else 'nothing'}"]
    if mg_card is not None:
        card = mg_card.as_run_card()
        card = replace(card, run=replace(card.run, process=root))
        if beams == "proton" and card.collider.lhaid is not None:
            from madnis_py.physics.pdf import PDF, PDFError

            try:
                PDF(card.collider.lhaid)
            except PDFError:
                messages.append(
                    f"run_card.dat: the PDF set LHAPDF ID {card.collider.lhaid} (pdlabel/"
                    "lhaid) is not installed here, so run_card.toml uses the embedded "
                    "LHToyPDF; to use the set, install it (LHAPDF_DATA_PATH) and set "
                    f"[collider] lhaid = {card.collider.lhaid}")
                card = replace(card, collider=replace(card.collider, lhaid=None,
                                                      pdf="LHToyPDF"))
        for note in mg_card.notes:
            messages.append(f"run_card.dat: {note}")
        raw = read_madgraph_run_card(rc_path) if mg_card.unsupported else {}
        for field_name in mg_card.unsupported:
            messages.append(f"run_card.dat: {field_name} = {raw.get(field_name, '?')} "
                            "is not supported by madnis-py and was not translated")
        header += [f"# NOTE {m}" for m in messages]
        text = card.to_toml()
    else:
        messages.append(f"{rc_path}: no MadGraph run card; the run card has madnis-py's "
                        "defaults, with madevent's channels (one set per matrix element)")
        header.append(f"# NOTE {messages[-1]}")
        text = (f"[run]\nprocess = {toml_value(str(root))}\n\n"
                "[training]\nsubprocess_channels = \"grouped\"\n")
    return "\n".join(header) + "\n" + text


def assemble(directory: str | os.PathLike[str], *, quiet: bool = False,
             allow_unsupported: bool = False) -> Assembled:
    """Write ``process.toml`` and ``run_card.toml`` into a ``output madnis_py`` directory.

    A ``Cards/run_card.dat`` with physics fields madnis-py cannot reproduce (edited away
    from MadGraph's defaults) is refused (:class:`~madnis_py.cards.RunCardError` listing
    them) unless ``allow_unsupported``; they are then listed in the run card's notes.

    Raises
    ------
    AssembleError
        No ``madgraph.json`` (not a madnis_py MadGraph output), a diagram that is not a
        tree of 3-point vertices, beams madnis_py does not integrate, a subprocess with
        another number of final-state particles or other final-state masses than the
        first.
    """
    from madnis_py.cards.madgraph import import_madgraph_run_card
    from madnis_py.physics.slha import read_slha

    root = Path(directory).resolve()
    info_path, info, records = _read_info(root)
    library = root / info["library"]
    if not library.is_file():
        raise AssembleError(f"{library}: the matrix-element library was not built")
    param_card = root / info["param_card"]
    slha = read_slha(param_card)

    rc_path = root / info.get("run_card", "Cards/run_card.dat")
    from madnis_py.cards.madgraph import madgraph_decay_settings

    settings = madgraph_decay_settings(rc_path) if rc_path.is_file() else (15.0, False)
    subprocesses, tables, n_diagrams = _subprocesses(records, info_path, *settings)
    channels, diagram_channels = group_channels(tables)
    if not channels:
        raise AssembleError(f"{info_path}: no diagram with 3-point vertices only: no channel")

    pdg_lists = [s["pdgs"] for s in subprocesses]
    beams = _beams(pdg_lists, info_path)
    masses = [slha.mass(p) for p in pdg_lists[0][2:]]
    for pdgs in pdg_lists[1:]:
        if len(pdgs) != len(pdg_lists[0]):  # `add process` with another multiplicity
            raise AssembleError(
                f"{info_path}: subprocess {pdgs} has {len(pdgs) - 2} final-state "
                f"particles, {pdg_lists[0]} {len(pdg_lists[0]) - 2}: one madnis_py "
                "process has one phase space; output each multiplicity (each `add "
                "process` of another final-state count) as its own process")
        if [slha.mass(p) for p in pdgs[2:]] != masses:
            raise AssembleError(f"{info_path}: subprocess {pdgs} has other final-state "
                                f"masses than {pdg_lists[0]}; generate them as separate "
                                "processes")

    messages: list[str] = []
    # The run card: MadGraph's, translated. It decides the cuts and defaults written below.
    mg_card = None
    if rc_path.is_file():
        mg_card = import_madgraph_run_card(rc_path, output=root / "madnis_run",
                                           allow_unsupported=allow_unsupported)
    lines = _process_card_lines(root.name, info, records, (root, library, param_card), beams,
                                subprocesses, diagram_channels, channels, mg_card)
    process_card = root / "process.toml"
    write_text_atomic(process_card, "\n".join(lines) + "\n")

    # Check the card reads back and the library has every subprocess, before the run card.
    _check_library(root, library)

    if (mg_card is not None and mg_card.training.channel_prior == "propagators"
            and any(sub["forbidden"] for sub in subprocesses)):
        messages.append("run_card.dat: sde_strategy = 2 with lines forbidden on shell ($): "
                        "madevent vetoes each window by the propagator shares of the "
                        "channels with the line, madnis-py by the diagrams' |M_i|^2 shares "
                        "(docs/madgraph.md), so the two cross sections can differ; "
                        "sde_strategy = 1 makes them the same")
    run_card = root / "run_card.toml"
    write_text_atomic(run_card, _run_card_text(mg_card, root, rc_path, beams, messages))
    if not quiet:
        for m in messages:
            print(m, file=sys.stderr)
    return Assembled(process_card, run_card, len(subprocesses), n_diagrams, len(channels),
                     tuple(messages))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m madnis_py.madgraph DIR", file=sys.stderr)
        return 2
    try:
        done = assemble(args[0])
    except (AssembleError, OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{done.process_card}: {done.n_subprocesses} subprocesses, {done.n_diagrams} "
          f"diagrams, {done.n_channels} channels; run it with: madnis-py run "
          f"{done.run_card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
