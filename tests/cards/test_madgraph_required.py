"""A MadGraph run_card.dat must be complete, and fields madnis-py cannot reproduce are
refused unless allowed: an empty or truncated card, or a cut the import would drop, is
an error instead of a run with other physics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from madnis_py.cards import RunCardError, import_madgraph_run_card
from madnis_py.cards.madgraph import REQUIRED_FIELDS

# The fields of MadGraph 3.5.7's default LO run_card.dat for p p > e+ e- (the reference
# card of the shared inputs), in its order, so that the tests need no file outside.
CARD = """\
#*********************************************************************
#                       MadGraph5_aMC@NLO                            *
#                     run_card.dat MadEvent                          *
#*********************************************************************
  tag_1     = run_tag ! name of the run
  10000 = nevents ! Number of unweighted events requested
  0   = iseed   ! rnd seed (0=assigned automatically=default))
     1        = lpp1    ! beam 1 type
     1        = lpp2    ! beam 2 type
     6500.0     = ebeam1  ! beam 1 total energy in GeV
     6500.0     = ebeam2  ! beam 2 total energy in GeV
     nn23lo1    = pdlabel     ! PDF set
     230000    = lhaid     ! if pdlabel=lhapdf, this is the lhapdf number
 False = fixed_ren_scale  ! if .true. use fixed ren scale
     False = fixed_fac_scale  ! if .true. use fixed fac scale
 91.188  = scale            ! fixed ren scale
 91.188  = dsqrt_q2fact1    ! fixed fact scale for pdf1
 91.188  = dsqrt_q2fact2    ! fixed fact scale for pdf2
 -1 = dynamical_scale_choice ! Choose one of the preselected dynamical choices
 1.0  = scalefact        ! scale factor for event-by-event scales
  False     = gridpack  !True = setting up the grid pack
  -1.0 = time_of_flight ! threshold (in mm) below which the invariant livetime is not written
  average =  event_norm       ! average/sum. Normalization of the weight in the LHEF
   0  = nhel          ! using helicities importance sampling or not.
   1  = sde_strategy  ! default integration strategy (hep-ph/2021.00773)
  = custom_fcts ! List of files containing user hook function
  0.0  = dsqrt_shat ! minimal shat for full process
  15.0  = bwcutoff      ! (M+/-bwcutoff*Gamma)
 10.0  = ptl       ! minimum pt for the charged leptons
 -1.0  = ptlmax    ! maximum pt for the charged leptons
 {} = pt_min_pdg ! pt cut for other particles (use pdg code)
 {}\t= pt_max_pdg ! pt cut for other particles (syntax e.g. {6: 100, 25: 50})
 2.5  = etal    ! max rap for the charged leptons
 0.0  = etalmin ! min rap for the charged leptons
 {} = eta_min_pdg ! rap cut for other particles (use pdg code)
 {} = eta_max_pdg ! rap cut for other particles (syntax e.g. {6: 2.5, 23: 5})
 0.4 = drll    ! min distance between leptons
 -1.0  = drllmax ! max distance between leptons
 0.0   = mmll    ! min invariant mass of l+l- (same flavour) lepton pair
 -1.0  = mmllmax ! max invariant mass of l+l- (same flavour) lepton pair
 {} = mxx_min_pdg ! min invariant mass of a pair of particles X/X~ (e.g. {6:250})
 {'default': False} = mxx_only_part_antipart ! if True the invariant mass is applied only
 0.0   = mmnl    ! min invariant mass for all letpons (l+- and vl)
 -1.0  = mmnlmax ! max invariant mass for all letpons (l+- and vl)
 0.0   = ptllmin  ! Minimum pt for 4-momenta sum of leptons(l and vl)
 -1.0  = ptllmax  ! Maximum pt for 4-momenta sum of leptons(l and vl)
 0.0  = xptl ! minimum pt for at least one charged lepton
 0.0   = ptl1min ! minimum pt for the leading lepton in pt
 0.0   = ptl2min ! minimum pt for the second lepton in pt
 -1.0  = ptl1max ! maximum pt for the leading lepton in pt
 -1.0  = ptl2max ! maximum pt for the second lepton in pt
 4 = maxjetflavor    ! Maximum jet pdg code
   True  = use_syst      ! Enable systematics studies
systematics = systematics_program ! none, systematics [python], SysCalc [depreceted, C++]
['--mur=0.5,1,2', '--muf=0.5,1,2', '--pdf=errorset'] = systematics_arguments ! see the wiki
"""

REFERENCE = Path(__file__).parents[3] / "shared" / "reference" / "run_card_madgraph_default.dat"


def write(tmp_path: Path, text: str, name: str = "run_card.dat") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def line_of(text: str, name: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(rf"^[^#!]*=\s*{name}\s*(!|$)", line):
            return number
    raise AssertionError(name)


def test_the_complete_card_imports(tmp_path: Path) -> None:
    card = import_madgraph_run_card(write(tmp_path, CARD), process="drell_yan")
    assert card.unsupported == () and card.run.nevents == 10_000
    assert card.cuts == {"ptl": 10.0, "ptlmax": -1.0, "etal": 2.5, "etalmin": 0.0,
                         "drll": 0.4, "drllmax": -1.0, "mmll": 0.0, "mmllmax": -1.0}


def test_the_embedded_card_has_the_reference_fields() -> None:
    """CARD is the reference card's fields (when the shared inputs are there)."""
    if not REFERENCE.is_file():
        pytest.skip(f"{REFERENCE} not found (the shared reference inputs)")
    from madnis_py.cards import read_madgraph_run_card

    fields = read_madgraph_run_card(REFERENCE)
    assert all(name in fields for name in REQUIRED_FIELDS)
    assert list(fields) == re.findall(r"=\s*(\w+)\s*!", CARD)


@pytest.mark.parametrize("text", ["", "\n\n", "# only comments\n#*****\n"])
def test_an_empty_card_is_an_error(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(RunCardError) as info:
        import_madgraph_run_card(path, process="drell_yan")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a complete MadGraph run card: missing "
                              f"{', '.join(REQUIRED_FIELDS)} (empty or truncated?"), message
    assert "no 'value = name' line" in message


def test_a_card_cut_after_20_lines_names_what_is_missing(tmp_path: Path) -> None:
    lines = CARD.splitlines()
    path = write(tmp_path, "\n".join(lines[:20]) + "\n")
    with pytest.raises(RunCardError) as info:
        import_madgraph_run_card(path, process="drell_yan")
    message = str(info.value)
    present = set(re.findall(r"=\s*(\w+)\s*!", "\n".join(lines[:20])))
    missing = [n for n in REQUIRED_FIELDS if n not in present]
    assert missing and "nevents" not in missing
    assert f"missing {', '.join(missing)} (empty or truncated?" in message, message
    last = re.findall(r"=\s*(\w+)\s*!", "\n".join(lines[:20]))[-1]
    assert f"its last field is {last} at line 20" in message


@pytest.mark.parametrize("cut_at", ["drll", "mmll", "ptl1min", "ptl2max"])
def test_a_card_cut_inside_its_cuts_is_an_error(tmp_path: Path, cut_at: str) -> None:
    """Wherever the cut section ends, a required field after it is missing: the import
    never drops the cuts that were cut off."""
    lines = CARD.splitlines()
    path = write(tmp_path, "\n".join(lines[:line_of(CARD, cut_at)]) + "\n")
    with pytest.raises(RunCardError, match=r"not a complete MadGraph run card: missing "
                       r".*maxjetflavor \(empty or truncated\?"):
        import_madgraph_run_card(path, process="drell_yan")


@pytest.mark.parametrize("name", REQUIRED_FIELDS)
def test_each_required_field_is_required(tmp_path: Path, name: str) -> None:
    text = "\n".join(line for i, line in enumerate(CARD.splitlines(), start=1)
                     if i != line_of(CARD, name)) + "\n"
    with pytest.raises(RunCardError, match=rf": missing {name} \(empty or truncated\?"):
        import_madgraph_run_card(write(tmp_path, text), process="drell_yan")


def set_field(text: str, name: str, value: str) -> str:
    lines = text.splitlines()
    lines[line_of(text, name) - 1] = f" {value} = {name} ! changed by the test"
    return "\n".join(lines) + "\n"


def test_one_unsupported_field_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, set_field(CARD, "ptllmin", "20.0"))
    with pytest.raises(RunCardError) as info:
        import_madgraph_run_card(path, process="drell_yan")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line_of(CARD, 'ptllmin')}: ptllmin: '20.0' is not "
                              "supported (MadGraph's default is '0'"), message
    assert "--allow-unsupported" in message and "allow_unsupported=True" in message


def test_unsupported_fields_are_refused_together(tmp_path: Path) -> None:
    text = CARD
    for name, value in (("scalefact", "2d0"), ("pt_min_pdg", "{6: 100}"),
                        ("mmnl", "5"), ("ptllmin", "20")):
        text = set_field(text, name, value)
    path = write(tmp_path, text)
    with pytest.raises(RunCardError) as info:
        import_madgraph_run_card(path, process="drell_yan")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: 4 unsupported fields")
    for name, value in (("scalefact", "2d0"), ("pt_min_pdg", "{6: 100}"),
                        ("mmnl", "5"), ("ptllmin", "20")):
        assert f"{name} = {value!r} (line {line_of(text, name)}, default" in message
    assert "--allow-unsupported" in message and "allow_unsupported=True" in message
    # allowed: imported without them, and they are listed
    card = import_madgraph_run_card(path, process="drell_yan", allow_unsupported=True)
    assert card.unsupported == ("scalefact", "pt_min_pdg", "mmnl", "ptllmin")
    assert card.cuts is not None and "ptllmin" not in card.cuts


def test_unsupported_fields_at_their_defaults_are_fine(tmp_path: Path) -> None:
    text = set_field(set_field(CARD, "scalefact", "1d0"), "pt_min_pdg", "{ }")
    card = import_madgraph_run_card(write(tmp_path, text), process="drell_yan")
    assert card.unsupported == ()


def test_per_beam_fields_of_madgraph_3_5_7(tmp_path: Path) -> None:
    """MadGraph 3.5.7's `output` writes pdlabel1/pdlabel2 and fixed_fac_scale1/2 (the card
    above is the older one-field form); both forms import alike."""
    per_beam = (CARD.replace("     nn23lo1    = pdlabel     ! PDF set",
                             "     nn23lo1    = pdlabel1     ! PDF type for beam #1\n"
                             "     nn23lo1    = pdlabel2     ! PDF type for beam #2")
                .replace("     False = fixed_fac_scale  ! if .true. use fixed fac scale",
                         " False = fixed_fac_scale1  ! beam 1\n False = fixed_fac_scale2"))
    assert "pdlabel1" in per_beam and "fixed_fac_scale2" in per_beam
    old, new = tmp_path / "old.dat", tmp_path / "new.dat"
    old.write_text(CARD)
    new.write_text(per_beam)
    a = import_madgraph_run_card(old, process="drell_yan").card
    b = import_madgraph_run_card(new, process="drell_yan").card
    assert a.collider == b.collider and a.collider.lhaid == 247000
    assert a.scale == b.scale
    new.write_text(per_beam.replace("nn23lo1    = pdlabel2", "cteq6l1    = pdlabel2"))
    with pytest.raises(RunCardError, match="pdlabel2.*differs from pdlabel1"):
        import_madgraph_run_card(new, process="drell_yan")
