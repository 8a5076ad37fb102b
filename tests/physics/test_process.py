"""Process cards: a valid card read field by field, and every way a card can be wrong
raising one ``ProcessCardError`` that names the file and the field."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from madnis_py.phasespace import Topology
from madnis_py.physics import builtin_processes, load_process
from madnis_py.physics.builtin import builtin_library, builtin_process_dir
from madnis_py.physics.process import Process, ProcessCardError, ProcessDefaults, Subprocess

PARAM_CARD = builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat"

HEAD = f"""\
[process]
name = "toy"
title = "a toy"
library = "ee_mumu"
beams = "lepton"
param_card = "{PARAM_CARD}"
"""

SUBPROCESS = """\
[[subprocess]]
pdgs = [-11, 11, -13, 13]
colour_flows = [[[0, 0], [0, 0], [0, 0], [0, 0]]]
"""

CHANNELS = """\
[[channel]]
name = "photon"
s_channel = { propagator = { name = "a" }, decay = [2, 3] }

[[channel]]
name = "Z"
s_channel = { propagator = { mass = 91.188, width = 2.441404 }, decay = [2, 3] }
"""

TAIL = """\
[cuts]
ptl = 10.0

[defaults]
sqrt_s = 500.0
scale = 91.188
pdf = "LHToyPDF"
"""

VALID = "\n".join([HEAD, SUBPROCESS, CHANNELS, TAIL])


def write_card(tmp_path: Path, text: str) -> Path:
    card = tmp_path / "process.toml"
    card.write_text(text)
    return card


def test_a_valid_card_is_read_field_by_field(tmp_path: Path) -> None:
    card = write_card(tmp_path, VALID)
    proc = load_process(tmp_path)
    assert isinstance(proc, Process)
    assert proc.card == card.resolve()
    assert (proc.name, proc.title, proc.beams) == ("toy", "a toy", "lepton")
    assert not proc.hadronic and proc.n_particles == 4
    assert proc.library == builtin_library("ee_mumu")
    assert proc.param_card == PARAM_CARD.resolve()
    assert proc.subprocesses == (Subprocess((-11, 11, -13, 13), (((0, 0),) * 4,)),)
    assert [c.name for c in proc.channels] == ["photon", "Z"]
    assert all(isinstance(c, Topology) for c in proc.channels)
    assert proc.cuts == {"ptl": 10.0}
    assert proc.defaults == ProcessDefaults(sqrt_s=500.0, scale=91.188, pdf="LHToyPDF")
    assert proc.sherpa_run_dir is None
    assert proc.final_masses() == [0.0, 0.0]
    # The same card by file name, and a directory without a card.
    assert load_process(card) == proc
    assert load_process(str(card)) == proc


def test_paths_are_relative_to_the_card(tmp_path: Path) -> None:
    text = VALID.replace('library = "ee_mumu"', 'library = "lib/libme.so"').replace(
        f'param_card = "{PARAM_CARD}"', 'param_card = "cards/param.dat"')
    write_card(tmp_path, text)
    proc = load_process(tmp_path)
    assert proc.library == (tmp_path / "lib" / "libme.so").resolve()
    assert proc.param_card == (tmp_path / "cards" / "param.dat").resolve()
    no_param = VALID.replace(f'param_card = "{PARAM_CARD}"\n', "")
    write_card(tmp_path, no_param)
    assert load_process(tmp_path).param_card == (tmp_path / "param_card.dat").resolve()


def test_mirror_subprocess_swaps_the_incoming_partons(tmp_path: Path) -> None:
    sub = "[[subprocess]]\npdgs = [2, 21, 2, 21]\nmirror = true\ndiagram_channels = [1, -1]\n"
    write_card(tmp_path, VALID.replace(SUBPROCESS, SUBPROCESS + sub))
    proc = load_process(tmp_path)
    mirror = proc.subprocesses[1]
    assert mirror.mirror and mirror.diagram_channels == (1, -1)
    assert mirror.library_pdgs == (21, 2, 2, 21)
    p = np.arange(2 * 4 * 4, dtype=np.float64).reshape(2, 4, 4)
    np.testing.assert_array_equal(mirror.library_momenta(p), p[:, [1, 0, 2, 3]])
    assert proc.subprocesses[0].library_momenta(p) is p


# Every error path of the reader: (id, card text, the field the message must name).
BAD_CARDS = [
    ("toml syntax", VALID.replace('name = "toy"', 'name = "toy'), r"line \d+"),
    ("process not a table", VALID.replace("[process]\n", "process = 1\n[nothing]\n"),
     r"\[process\] must be a table"),
    ("no name", VALID.replace('name = "toy"\n', ""), r"\[process\] needs the field 'name'"),
    ("no library", VALID.replace('library = "ee_mumu"\n', ""),
     r"\[process\] needs the field 'library'"),
    ("no beams", VALID.replace('beams = "lepton"\n', ""),
     r"\[process\] needs the field 'beams'"),
    ("bad beams", VALID.replace('beams = "lepton"', 'beams = "muon"'),
     r"\[process\] beams = 'muon'"),
    ("sherpa without a library path",
     VALID.replace('beams = "lepton"', 'beams = "lepton"\nsherpa_run_card = "sherpa"'),
     r"\[process\] sherpa_run_card needs library"),
    ("subprocess without pdgs", VALID.replace("pdgs = [-11, 11, -13, 13]\n", ""),
     r"\[\[subprocess\]\] #0: needs pdgs"),
    ("pdgs not ints", VALID.replace("pdgs = [-11, 11, -13, 13]", 'pdgs = ["e+", 11, -13, 13]'),
     r"\[\[subprocess\]\] #0: needs pdgs"),
    ("colour flow not pairs",
     VALID.replace("[[[0, 0], [0, 0], [0, 0], [0, 0]]]", "[[[0, 0, 1], [0, 0], [0, 0], [0, 0]]]"),
     r"\[\[subprocess\]\] #0: .*colour_flows"),
    ("mirror not a bool", VALID.replace("pdgs = [-11, 11, -13, 13]",
                                        "pdgs = [-11, 11, -13, 13]\nmirror = 1"),
     r"\[\[subprocess\]\] #0: .*mirror = 1 is not true or false"),
    ("diagram_channels not ints", VALID.replace("pdgs = [-11, 11, -13, 13]",
                                                'pdgs = [-11, 11, -13, 13]\n'
                                                'diagram_channels = ["a"]'),
     r"\[\[subprocess\]\] #0: .*diagram_channels"),
    ("unknown subprocess field", VALID.replace("pdgs = [-11, 11, -13, 13]",
                                               "pdgs = [-11, 11, -13, 13]\nhelicity = 1"),
     r"\[\[subprocess\]\] #0: unknown field\(s\) \['helicity'\]"),
    ("too few particles", VALID.replace("pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, 22]")
     .replace("[[[0, 0], [0, 0], [0, 0], [0, 0]]]", "[]"),
     r"\[\[subprocess\]\] #0: a 2 -> n process has at least 4 particles"),
    ("colour flow length", VALID.replace("[[[0, 0], [0, 0], [0, 0], [0, 0]]]",
                                         "[[[0, 0], [0, 0], [0, 0]]]"),
     r"\[\[subprocess\]\] #0: every colour flow needs one .* per particle \(4\)"),
    ("no subprocess", VALID.replace(SUBPROCESS, ""), r"no \[\[subprocess\]\] tables"),
    ("mixed multiplicities",
     VALID.replace(SUBPROCESS, SUBPROCESS + "[[subprocess]]\npdgs = [-11, 11, -13, 13, 22]\n"),
     r"subprocesses with different multiplicities"),
    ("three daughters", VALID.replace("decay = [2, 3] }\n\n[[channel]]",
                                      "decay = [2, 3, 4] }\n\n[[channel]]"),
     r"\[\[channel\]\] #0: channel photon: s_channel.decay must list exactly two"),
    ("both s and t", VALID.replace('name = "photon"', 'name = "photon"\n'
                                   't_channel = { blocks = [2, 3], propagators = [{}] }'),
     r"\[\[channel\]\] #0: channel photon: give exactly one of s_channel"),
    ("unknown channel field", VALID.replace('name = "photon"', 'name = "photon"\nweight = 2'),
     r"\[\[channel\]\] #0: .*unknown field\(s\) \['weight'\]"),
    ("no channel", VALID.replace(CHANNELS, ""), r"no \[\[channel\]\] tables"),
    ("diagram_channels out of range", VALID.replace("pdgs = [-11, 11, -13, 13]",
                                                    "pdgs = [-11, 11, -13, 13]\n"
                                                    "diagram_channels = [0, 2]"),
     r"\[\[subprocess\]\] #0: diagram_channels \[0, 2\] outside the 2 channels"),
    ("window without a width", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "resonance_windows = [{ legs = [2, 3], mass = 91.188 }]"),
     r"\[\[subprocess\]\] #0: resonance_windows\[0\]: needs legs, mass and width"),
    ("window on one leg", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "resonance_windows = [{ legs = [2], mass = 91.188, width = 2.44 }]"),
     r"resonance_windows\[0\]: resonance window \?: legs must be two or more"),
    ("window beyond the final state", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "resonance_windows = [{ legs = [2, 4], mass = 91.188, width = 2.44 }]"),
     r"resonance_windows or forbidden_windows legs outside the final state 2..3"),
    ("window with a zero width", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "resonance_windows = [{ legs = [2, 3], mass = 91.188, width = 0.0 }]"),
     r"resonance_windows\[0\]: .*width must be a positive finite number"),
    ("forbidden window without diagrams", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "forbidden_windows = [{ legs = [2, 3], mass = 91.188, width = 2.44 }]"),
     r"forbidden_windows\[0\]: diagrams = None is not a list"),
    ("forbidden window beyond the diagrams", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "forbidden_windows = [{ legs = [2, 3], mass = 91.188, width = 2.44, "
        "diagrams = [2] }]"),
     r"forbidden_windows\[0\] diagrams \[2\] outside its 2 diagrams"),
    ("forbidden window with a bad width", VALID.replace(
        "pdgs = [-11, 11, -13, 13]", "pdgs = [-11, 11, -13, 13]\n"
        "forbidden_windows = [{ legs = [2, 3], mass = 91.188, width = -1.0, "
        "diagrams = [1] }]"),
     r"forbidden_windows\[0\]: .*width must be a positive finite number"),
    ("cuts not a table", "cuts = 3\n" + VALID.replace("[cuts]\nptl = 10.0\n", ""),
     r"\[cuts\] must be a table"),
    ("defaults not a table", "defaults = 3\n" + VALID.split("[defaults]")[0],
     r"\[defaults\] must be a table"),
    ("unknown default", VALID.replace("sqrt_s = 500.0", "sqrt_s = 500.0\nenergy = 3"),
     r"\[defaults\] has unknown field\(s\) \['energy'\]"),
]


@pytest.mark.parametrize(("text", "field"), [c[1:] for c in BAD_CARDS],
                         ids=[c[0] for c in BAD_CARDS])
def test_every_bad_card_names_the_file_and_the_field(tmp_path: Path, text: str,
                                                     field: str) -> None:
    card = write_card(tmp_path, text)
    with pytest.raises(ProcessCardError) as info:
        load_process(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{card.resolve()}: "), message
    assert re.search(field, message), message
    assert isinstance(info.value, ValueError)  # callers that catch ValueError still do


# Values of the wrong type in [cuts] and [defaults], and a library that is no built-in.
GAPS = [
    ("cut not a number", VALID.replace("ptl = 10.0", 'ptl = "ten"'), r"\[cuts\] ptl"),
    ("sqrt_s not a number", VALID.replace("sqrt_s = 500.0", 'sqrt_s = "high"'),
     r"\[defaults\] sqrt_s"),
    ("unknown built-in library", VALID.replace('library = "ee_mumu"', 'library = "nope"'),
     r"\[process\] library"),
]


@pytest.mark.parametrize(("text", "field"), [c[1:] for c in GAPS], ids=[c[0] for c in GAPS])
def test_bad_values_name_the_file_and_the_field(tmp_path: Path, text: str, field: str) -> None:
    card = write_card(tmp_path, text)
    with pytest.raises(ProcessCardError) as info:
        load_process(tmp_path)
    assert str(info.value).startswith(f"{card.resolve()}: ")
    assert re.search(field, str(info.value))


def test_load_process_errors_name_what_was_asked(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="no built-in process 'nope'") as info:
        load_process("nope")
    for name in builtin_processes():
        assert name in str(info.value)
    with pytest.raises(FileNotFoundError, match="no such directory or card"):
        load_process(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'process.toml'}")):
        load_process(tmp_path)


@pytest.mark.parametrize("name", builtin_processes())
def test_every_builtin_card_reads(name: str) -> None:
    proc = load_process(name)
    assert proc.name == name and proc.card == builtin_process_dir(name) / "process.toml"
    assert proc.library.is_file() and proc.param_card.is_file()
    assert len(proc.channels) >= 1 and len(proc.subprocesses) >= 1
    for sub in proc.subprocesses:
        if sub.diagram_channels is not None:
            assert all(-1 <= c < len(proc.channels) for c in sub.diagram_channels)
        assert all(len(flow) == proc.n_particles for flow in sub.colour_flows)
    assert len(proc.final_masses()) == proc.n_particles - 2
