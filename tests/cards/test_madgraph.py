"""Import of MadGraph run_card.dat files, on MadGraph 3.5.7's default LO card."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from madnis_py.cards import (
    RunCard,
    RunCardError,
    RunCardNotFoundError,
    import_madgraph_run_card,
    parse_run_card,
    read_madgraph_run_card,
)
from madnis_py.physics import load_process

REFERENCE = Path(__file__).parents[3] / "shared" / "reference" / "run_card_madgraph_default.dat"


@pytest.fixture
def default_card(tmp_path: Path) -> Path:
    """A copy of MadGraph 3.5.7's default run_card.dat (p p -> e+ e-)."""
    if not REFERENCE.is_file():
        pytest.skip(f"the reference MadGraph run card is missing: {REFERENCE} (the shared "
                    "checkout ../shared beside the repository)")
    return Path(shutil.copy(REFERENCE, tmp_path / "run_card.dat"))


def set_field(path: Path, name: str, value: str) -> int:
    """Give field ``name`` a new value in place; returns its line."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(rf"^[^#!]*=\s*{name}\s*(!|$)", line):
            lines[i] = f" {value} = {name} ! changed by the test"
            path.write_text("\n".join(lines) + "\n")
            return i + 1
    raise AssertionError(f"no field {name} in {path}")


def add_line(path: Path, line: str) -> int:
    """Append a line; returns its number."""
    text = path.read_text()
    path.write_text(text + line + "\n")
    return len(text.splitlines()) + 1


def test_reading_keeps_raw_values_and_lines(default_card: Path) -> None:
    fields = read_madgraph_run_card(default_card)
    assert fields["nevents"] == "10000" and fields["pdlabel"] == "nn23lo1"
    assert fields["fixed_ren_scale"] == "False" and fields["custom_fcts"] == ""
    assert fields["pt_min_pdg"] == "{}"
    assert fields["mxx_only_part_antipart"] == "{'default': False}"
    # the value may hold '=' itself: the name is right of the last one
    assert fields["systematics_arguments"].startswith("['--mur=0.5,1,2'")
    text = default_card.read_text().splitlines()
    for name, line in fields.lines.items():
        assert re.search(rf"=\s*{name}\b", text[line - 1], re.IGNORECASE), name


def test_default_card_imports_with_its_values(default_card: Path) -> None:
    card = import_madgraph_run_card(default_card, process="drell_yan")
    assert card.run.process == "drell_yan"
    assert card.run.nevents == 10_000
    assert card.run.seed == 0  # iseed = 0: "assigned automatically" in MadGraph
    assert card.collider.sqrt_s == 13_000.0
    # pdlabel = nn23lo1 is NNPDF23_lo_as_0130_qed, which MadGraph writes as 247000; the
    # card's lhaid = 230000 only applies with pdlabel = lhapdf (in MadGraph as here)
    assert card.collider.lhaid == 247_000 and card.collider.pdf is None
    assert card.scale.fixed is None and card.scale.dynamical_scale_choice == 3
    assert card.cuts is not None
    assert card.cuts["ptl"] == 10.0 and card.cuts["etal"] == 2.5
    assert card.cuts["drll"] == 0.4 and card.cuts["mmll"] == 0.0
    assert card.cuts == {"ptl": 10.0, "ptlmax": -1.0, "etal": 2.5, "etalmin": 0.0,
                         "drll": 0.4, "drllmax": -1.0, "mmll": 0.0, "mmllmax": -1.0}
    assert card.unsupported == ()  # every ignored physics field has its default
    for name in ("run_tag", "lhaid", "scale", "dsqrt_q2fact1",
                 "pt_min_pdg", "mmnl", "use_syst", "systematics_arguments"):
        assert name in card.ignored
    for name in ("nevents", "iseed", "ebeam1", "pdlabel", "ptl", "dynamical_scale_choice",
                 "maxjetflavor"):
        assert name not in card.ignored
    assert any("dynamical_scale_choice = -1" in note for note in card.notes)
    assert any(note.startswith("mmll = 0 replaces the process card's 50") for note in
               card.notes)
    assert card.source == default_card.resolve()
    assert card.run.output == Path.cwd().resolve() / "drell_yan_run"
    # a plain RunCard with the same values, and its TOML reads back the same
    plain = card.as_run_card()
    assert type(plain) is RunCard and card.card == plain
    assert parse_run_card(card.to_toml()) == plain
    assert plain.load_process().name == "drell_yan"


def test_non_default_unsupported_fields_are_listed(default_card: Path) -> None:
    set_field(default_card, "mmnl", "20.0")
    set_field(default_card, "pt_min_pdg", "{6: 100}")
    set_field(default_card, "maxjetflavor", "5")  # supported: the cuts' jets
    set_field(default_card, "scalefact", "2d0")
    set_field(default_card, "ptlmax", "200")  # supported: mapped, not listed
    # refused by default, one error naming them all; allowed on request, then listed
    with pytest.raises(RunCardError, match=r": 3 unsupported fields that change the "
                       r"physics: scalefact = '2d0' \(line \d+, default '1'\), pt_min_pdg"):
        import_madgraph_run_card(default_card)
    card = import_madgraph_run_card(default_card, allow_unsupported=True)
    assert card.unsupported == ("scalefact", "pt_min_pdg", "mmnl")
    assert card.cuts is not None and card.cuts["ptlmax"] == 200.0
    assert card.cuts["maxjetflavor"] == 5
    assert card.run.process is None  # no process given: to complete before a run
    assert "# process = " in card.to_toml()


def test_lepton_beams_and_lhapdf_ids(default_card: Path) -> None:
    for name in ("lpp1", "lpp2"):
        set_field(default_card, name, "0")
    for name in ("ebeam1", "ebeam2"):
        set_field(default_card, name, "250.0")
    card = import_madgraph_run_card(default_card, process="ee_mumu")
    assert card.collider.sqrt_s == 500.0
    assert card.collider.lhaid is None  # no PDF with lepton beams
    assert "pdlabel" in card.ignored
    # MadGraph's default scale choice -1: its clustering ends at the 2 -> 2 core, whose
    # scale with lepton beams is sqrt(s-hat) (madevent's events have scale sqrt(s))
    assert card.scale.dynamical_scale_choice == 4
    assert any("became 4" in note for note in card.notes)
    for name in ("lpp1", "lpp2"):
        set_field(default_card, name, "1")
    set_field(default_card, "pdlabel", "lhapdf")
    set_field(default_card, "lhaid", "303000")
    card = import_madgraph_run_card(default_card, process=load_process("drell_yan"))
    assert card.collider.lhaid == 303_000 and card.run.process == "drell_yan"


def test_fixed_scale(default_card: Path) -> None:
    set_field(default_card, "fixed_ren_scale", "True")
    set_field(default_card, "fixed_fac_scale", "T")
    set_field(default_card, "scale", "100.0")
    set_field(default_card, "dsqrt_q2fact1", "1d2")
    set_field(default_card, "dsqrt_q2fact2", "100")
    card = import_madgraph_run_card(default_card)
    assert card.scale.fixed == 100.0 and card.scale.dynamical_scale_choice is None
    assert "dynamical_scale_choice" in card.ignored


def test_process_directory_is_kept_as_a_path(default_card: Path, tmp_path: Path) -> None:
    process = Path(__file__).resolve().parents[2] / "processes" / "drell_yan"
    card = import_madgraph_run_card(default_card, process=process, output=tmp_path / "o")
    assert card.run.process == "drell_yan"  # the built-in directory: its name
    assert card.run.output == (tmp_path / "o").resolve()


ERRORS = [
    # (field, new value, what the message says)
    ("lpp1", "-1", ["lpp1: -1 (antiproton) is not supported"]),
    ("lpp2", "3", ["lpp2: 3 (electron PDF) is not supported"]),
    ("lpp2", "0", ["lpp2: 0 differs from lpp1 = 1"]),
    ("ebeam2", "7000.0", ["ebeam2: 7000.0 differs from ebeam1 = 6500.0", "symmetric"]),
    ("ebeam1", "-5", ["ebeam1: -5.0 is out of range"]),
    ("fixed_fac_scale", "True", ["fixed_fac_scale: True but fixed_ren_scale = False",
                                 "one scale"]),
    ("dynamical_scale_choice", "0", ["dynamical_scale_choice: 0 is MadGraph's user-defined"]),
    ("dynamical_scale_choice", "7", ["dynamical_scale_choice: 7 is not a MadGraph scale"]),
    ("pdlabel", "cteq5_m", ["pdlabel: 'cteq5_m' has no LHAPDF id", "nn23lo1"]),
    ("nevents", "ten", ["nevents: 'ten' is not a number"]),
    ("nevents", "100.5", ["nevents: '100.5' is not an integer"]),
    ("nevents", "-1", ["nevents: -1 is out of range"]),
    ("iseed", "-3", ["iseed: -3 is out of range"]),
    ("ptl", "1O.0", ["ptl: '1O.0' is not a number"]),
    ("fixed_ren_scale", "maybe", ["fixed_ren_scale: 'maybe' is not a boolean"]),
]


@pytest.mark.parametrize("name,value,fragments", ERRORS)
def test_errors_name_file_line_and_field(default_card: Path, name: str, value: str,
                                         fragments: list[str]) -> None:
    line = set_field(default_card, name, value)
    with pytest.raises(RunCardError) as info:
        import_madgraph_run_card(default_card)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{default_card}:{line}: {name}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_fixed_scales_that_differ_are_an_error(default_card: Path) -> None:
    set_field(default_card, "fixed_ren_scale", "T")
    set_field(default_card, "fixed_fac_scale", "T")
    line = set_field(default_card, "dsqrt_q2fact2", "50.0")
    with pytest.raises(RunCardError, match=rf"^{re.escape(str(default_card))}:{line}: "
                       r"dsqrt_q2fact2: 50.0 differs from scale = 91.188"):
        import_madgraph_run_card(default_card)


def test_beams_must_match_the_process(default_card: Path) -> None:
    line = default_card.read_text().splitlines().index("     1        = lpp1    ! beam 1 type ")
    with pytest.raises(RunCardError, match=rf":{line + 1}: lpp1: 1 \(proton\) but process "
                       r"ee_mumu has lepton beams \(expected 0\)"):
        import_madgraph_run_card(default_card, process="ee_mumu")


def test_pdlabel_lhapdf_needs_an_lhaid(default_card: Path) -> None:
    line = set_field(default_card, "pdlabel", "lhapdf")
    text = default_card.read_text().splitlines()
    default_card.write_text("\n".join(t for t in text if "= lhaid" not in t) + "\n")
    with pytest.raises(RunCardError, match=rf":{line}: pdlabel: lhapdf needs an lhaid"):
        import_madgraph_run_card(default_card)


def test_parse_errors_name_file_and_line(default_card: Path) -> None:
    line = add_line(default_card, "  42  nevents_without_equals")
    with pytest.raises(RunCardError, match=rf"^{re.escape(str(default_card))}:{line}: "
                       r"expected 'value = name'"):
        read_madgraph_run_card(default_card)


def test_duplicate_and_malformed_fields(default_card: Path) -> None:
    line = add_line(default_card, " 20 = NEVENTS ! again, upper case")
    with pytest.raises(RunCardError, match=rf":{line}: nevents: given twice \(first at line "
                       r"\d+"):
        read_madgraph_run_card(default_card)
    default_card.write_text(" 1 = two words ! bad\n")
    with pytest.raises(RunCardError, match=r":1: 'two words' is not a field name"):
        read_madgraph_run_card(default_card)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RunCardNotFoundError, match=r"nope\.dat: no such MadGraph run card"):
        import_madgraph_run_card(tmp_path / "nope.dat")


def test_maxjetflavor_five_makes_b_quarks_jets_and_reads_back(default_card: Path) -> None:
    """MadGraph writes maxjetflavor = 5 with b quarks in the proton (the 5-flavour
    scheme); the run card keeps it as an integer and the integrand's cuts take b quarks
    as jets."""
    from madnis_py.integrand import Integrand

    set_field(default_card, "maxjetflavor", "5")
    card = import_madgraph_run_card(default_card, process="drell_yan")
    assert card.cuts is not None and card.cuts["maxjetflavor"] == 5
    text = card.to_toml()
    assert "\nmaxjetflavor = 5\n" in text
    assert parse_run_card(text) == card.as_run_card()
    options = card.integrand_options()
    options["pdf"] = "LHToyPDF"  # the card's nn23lo1 is not installed here
    integrand = Integrand("drell_yan", **options)
    assert {c.maxjetflavor for c in integrand.cuts} == {5}
    assert Integrand("drell_yan", cuts={"ptl": 1.0}).cuts[0].maxjetflavor == 4
    set_field(default_card, "maxjetflavor", "7")
    with pytest.raises(RunCardError, match=r"maxjetflavor: 7 is out of range"):
        import_madgraph_run_card(default_card)
    with pytest.raises(RunCardError, match=r"maxjetflavor.*an integer 0..6"):
        parse_run_card(text.replace("maxjetflavor = 5", "maxjetflavor = 4.5"))


def test_sde_strategy_chooses_the_channel_prior(default_card: Path) -> None:
    """MadGraph's sde_strategy: 1 (its default) the diagrams' |M_i|^2, 2 (which it writes
    for vector-boson fusion) the propagator denominators, into the integrand; others
    are refused with the line."""
    card = import_madgraph_run_card(default_card, process="drell_yan")
    assert card.training.channel_prior == "amplitudes" and "sde_strategy" not in card.ignored
    assert "channel_prior" not in card.integrand_options()
    set_field(default_card, "sde_strategy", "2")
    card = import_madgraph_run_card(default_card, process="drell_yan")
    assert card.training.channel_prior == "propagators"
    assert card.integrand_options()["channel_prior"] == "propagators"
    assert parse_run_card(card.to_toml()) == card.as_run_card()
    set_field(default_card, "sde_strategy", "3")
    with pytest.raises(RunCardError, match=r"run_card\.dat:\d+: sde_strategy: 3 is not supported "
                       r"\(expected 1, the diagrams' \|M_i\|\^2, or 2"):
        import_madgraph_run_card(default_card)


def test_decay_settings_of_a_madgraph_card(default_card: Path) -> None:
    """bwcutoff and cut_decays, which ``output madnis_py`` writes into the decay
    chains' windows: MadGraph's values, Fortran spellings included; bad ones named."""
    from madnis_py.cards.madgraph import madgraph_decay_settings

    assert madgraph_decay_settings(default_card) == (15.0, False)  # no cut_decays line
    set_field(default_card, "bwcutoff", "2.5d1")
    with default_card.open("a") as fh:  # MadGraph writes it for decay chains
        fh.write("   .true.  = cut_decays    ! Cut decay products\n")
    assert madgraph_decay_settings(default_card) == (25.0, True)
    line = set_field(default_card, "bwcutoff", "0")
    with pytest.raises(RunCardError, match=rf":{line}: bwcutoff: '0' is not a positive"):
        madgraph_decay_settings(default_card)
