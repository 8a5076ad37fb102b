"""LHE files: written by LHEWriter, read by pylhe and by our line-based checker/reader."""

from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from madnis_py.events import (
    LHEError,
    LHEEvent,
    LHEInit,
    LHEParticle,
    LHEProcessInfo,
    LHEWriter,
    check_lhe,
    read_lhe,
)

pylhe = pytest.importorskip("pylhe")

MZ = 91.188
M_MU = 0.1056583745
EBEAM = 6500.0
CARD = "# run card\n  10000 = nevents ! <not a tag> & such\n  ]]> <init> </header>\n"


def ee_mumu(n: int, rng: np.random.Generator) -> dict[str, Any]:
    """e+ e- -> mu- mu+ at sqrt(s) = MZ, random angles, in write_batch's arguments."""
    e = MZ / 2
    p = np.sqrt(e ** 2 - M_MU ** 2)
    cos = rng.uniform(-1, 1, n)
    sin = np.sqrt(1 - cos ** 2)
    phi = rng.uniform(0, 2 * np.pi, n)
    mu = np.stack([np.full(n, e), p * sin * np.cos(phi), p * sin * np.sin(phi), p * cos], -1)
    momenta = np.empty((n, 4, 4))
    momenta[:, 0] = [e, 0, 0, e]
    momenta[:, 1] = [e, 0, 0, -e]
    momenta[:, 2] = mu
    momenta[:, 3] = mu * [1, -1, -1, -1]
    return dict(idup=[-11, 11, 13, -13], istup=[-1, -1, 1, 1],
                mothup=[[0, 0], [0, 0], [1, 2], [1, 2]], icolup=np.zeros((4, 2), int),
                momenta=momenta, masses=[0.0, 0.0, M_MU, M_MU], weights=np.full(n, 1.9e3),
                scales=np.full(n, MZ), aqed=1 / 132.5, aqcd=0.118, idprup=1,
                spinup=rng.choice([-1.0, 1.0], size=(n, 4)))


def qq_ee(n: int, rng: np.random.Generator) -> dict[str, Any]:
    """u u~ (process 1) or d d~ (process 2) -> Z -> e+ e- at a 13 TeV pp collider, with
    colour tags 501, the Z as a resonance (status 2) and the leptons as its daughters."""
    x1, x2 = rng.uniform(0.005, 0.2, (2, n))
    shat = 4 * x1 * x2 * EBEAM ** 2
    cos = rng.uniform(-1, 1, n)
    sin = np.sqrt(1 - cos ** 2)
    phi = rng.uniform(0, 2 * np.pi, n)
    half = np.sqrt(shat) / 2
    lep = np.stack([half, half * sin * np.cos(phi), half * sin * np.sin(phi), half * cos], -1)
    beta = (x1 - x2) / (x1 + x2)
    gamma = 1 / np.sqrt(1 - beta ** 2)

    def boost(q: np.ndarray) -> np.ndarray:
        out = q.copy()
        out[:, 0] = gamma * (q[:, 0] + beta * q[:, 3])
        out[:, 3] = gamma * (q[:, 3] + beta * q[:, 0])
        return out

    momenta = np.zeros((n, 5, 4))
    momenta[:, 0, [0, 3]] = (x1 * EBEAM)[:, None] * [1, 1]
    momenta[:, 1, [0, 3]] = (x2 * EBEAM)[:, None] * [1, -1]
    momenta[:, 2] = momenta[:, 0] + momenta[:, 1]
    momenta[:, 3] = boost(lep)
    momenta[:, 4] = boost(lep * [1, -1, -1, -1])
    process = rng.integers(1, 3, n)
    quark = np.where(process == 1, 2, 1)
    idup = np.stack([quark, -quark, np.full(n, 23), np.full(n, 11), np.full(n, -11)], -1)
    masses = np.zeros((n, 5))
    masses[:, 2] = np.sqrt(shat)
    return dict(idup=idup, istup=[-1, -1, 2, 1, 1],
                mothup=[[0, 0], [0, 0], [1, 2], [3, 3], [3, 3]],
                icolup=[[501, 0], [0, 501], [0, 0], [0, 0], [0, 0]], momenta=momenta,
                masses=masses, weights=rng.exponential(size=n), scales=np.sqrt(shat),
                aqed=np.full(n, 1 / 132.5), aqcd=rng.uniform(0.11, 0.13, n), idprup=process)


EE_INIT = LHEInit((-11, 11), (MZ / 2, MZ / 2), 3, [LHEProcessInfo(1.9e3, 2.5, 1.9e3, 1)])
PP_INIT = LHEInit((2212, 2212), (EBEAM, EBEAM), -4,
                  [LHEProcessInfo(612.3, 1.2, 3.5, 1), LHEProcessInfo(401.7, 0.9, 2.9, 2)],
                  pdfsup=(303400, 303400))


def write(path: Path, init: LHEInit, batch: dict[str, Any], **options: Any) -> Path:
    with LHEWriter(path, init, **options) as writer:
        writer.write_batch(**batch)
    return path


def events_as_arrays(batch: dict[str, Any]) -> tuple[np.ndarray, ...]:
    n, npart = np.shape(batch["momenta"])[:2]
    ids = np.broadcast_to(batch["idup"], (n, npart))
    status = np.broadcast_to(batch["istup"], (n, npart))
    moth = np.broadcast_to(batch["mothup"], (n, npart, 2))
    col = np.broadcast_to(batch["icolup"], (n, npart, 2))
    return ids, status, moth, col


def read_with_pylhe(path: Path) -> tuple[Any, list[Any]]:
    # pylhe turns XML errors into a warning and stops early: make them fail the test.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lhef = pylhe.LHEFile.fromfile(path)
        return lhef, list(lhef.events)


@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz"])
@pytest.mark.parametrize("which", ["ee", "pp"])
def test_pylhe_reads_what_we_write(tmp_path: Path, suffix: str, which: str) -> None:
    rng = np.random.default_rng(1)
    init, batch = (EE_INIT, ee_mumu(50, rng)) if which == "ee" else (PP_INIT, qq_ee(50, rng))
    path = write(tmp_path / f"events{suffix}", init, batch, header=CARD)
    if suffix.endswith(".gz"):
        assert path.read_bytes()[:2] == b"\x1f\x8b"
    assert pylhe.LHEFile.count_events(path) == 50

    lhef, events = read_with_pylhe(path)
    assert lhef.version == "3.0"
    info = lhef.init.initInfo
    assert (info.beamA, info.beamB) == init.idbmup
    assert (info.energyA, info.energyB) == init.ebmup
    assert (info.PDFgroupA, info.PDFgroupB) == init.pdfgup
    assert (info.PDFsetA, info.PDFsetB) == init.pdfsup
    assert info.weightingStrategy == init.idwtup
    assert info.numProcesses == len(init.processes)
    for got, want in zip(lhef.init.procInfo, init.processes, strict=True):
        assert (got.xSection, got.error, got.unitWeight, got.procId) == (
            want.xsecup, want.xerrup, want.xmaxup, want.lprup)
    assert [g.name for g in lhef.init.generators] == ["madnis_py"]
    (card,) = lhef.header.extra_elements
    assert card.tag == "MadNISRunCard"
    assert card.text == "\n" + CARD.strip("\n") + "\n"

    ids, status, moth, col = events_as_arrays(batch)
    momenta = np.asarray(batch["momenta"])
    masses = np.broadcast_to(batch["masses"], ids.shape)
    assert len(events) == 50
    for i, event in enumerate(events):
        info = event.eventinfo
        assert info.nparticles == len(event.particles) == ids.shape[1]
        assert info.pid == np.broadcast_to(batch["idprup"], (50,))[i]
        assert info.weight == batch["weights"][i]
        assert info.scale == batch["scales"][i]
        got = np.array([[p.e, p.px, p.py, p.pz] for p in event.particles])
        np.testing.assert_array_equal(got, momenta[i])  # 17 digits: exact
        assert [p.m for p in event.particles] == list(masses[i])
        assert [p.id for p in event.particles] == list(ids[i])
        assert [p.status for p in event.particles] == list(status[i])
        assert [(p.mother1, p.mother2) for p in event.particles] == [tuple(m) for m in moth[i]]
        assert [(p.color1, p.color2) for p in event.particles] == [tuple(c) for c in col[i]]


@pytest.mark.parametrize("digits", [11, 14, 17])
def test_precision_keeps_momentum_conservation_and_masses(tmp_path: Path, digits: int) -> None:
    batch = qq_ee(200, np.random.default_rng(2))
    path = write(tmp_path / "pp.lhe", PP_INIT, batch, digits=digits)
    _, events = read_lhe(path)
    p = np.array([e.momenta() for e in events])
    np.testing.assert_allclose(p, batch["momenta"], rtol=10.0 ** (1 - digits), atol=0)
    # incoming = outgoing final state, to 1e-9 of the collider energy
    imbalance = p[:, 0] + p[:, 1] - p[:, 3] - p[:, 4]
    assert np.abs(imbalance).max() < 1e-9 * 2 * EBEAM
    # the Z's invariant mass from the printed momenta matches its printed mass
    mz = np.sqrt(p[:, 2, 0] ** 2 - np.sum(p[:, 2, 1:] ** 2, axis=-1))
    np.testing.assert_allclose(mz, batch["masses"][:, 2], rtol=1e-6)


def test_read_lhe_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    batch = qq_ee(20, rng)
    path = write(tmp_path / "pp.lhe.gz", PP_INIT, batch)
    init, events = read_lhe(path)
    assert init == PP_INIT
    ids, status, moth, col = events_as_arrays(batch)
    expected = [
        LHEEvent(int(batch["idprup"][i]), batch["weights"][i], batch["scales"][i], 1 / 132.5,
                 batch["aqcd"][i],
                 [LHEParticle(int(ids[i, j]), int(status[i, j]),
                              (int(moth[i, j, 0]), int(moth[i, j, 1])),
                              (int(col[i, j, 0]), int(col[i, j, 1])),
                              px=px, py=py, pz=pz, e=e, m=batch["masses"][i, j])
                  for j in range(5) for e, px, py, pz in [batch["momenta"][i, j]]])
        for i in range(20)]
    assert list(events) == expected


def test_check_lhe_summary(tmp_path: Path) -> None:
    batch = qq_ee(30, np.random.default_rng(4))
    for name in ("pp.lhe", "pp.lhe.gz"):
        summary = check_lhe(write(tmp_path / name, PP_INIT, batch, header=CARD))
        assert summary.version == "3.0"
        assert summary.n_events == 30
        np.testing.assert_array_equal(summary.n_particles, 5)
        np.testing.assert_array_equal(summary.weights, batch["weights"])
        assert summary.idbmup == (2212, 2212) and summary.ebmup == (EBEAM, EBEAM)
        assert summary.idwtup == -4
        assert summary.processes == PP_INIT.processes
        assert summary.xsecup == [612.3, 401.7]


def test_write_and_write_batch_give_the_same_text(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    batch = qq_ee(10, rng)
    write(tmp_path / "batch.lhe", PP_INIT, batch, header=CARD)
    events = list(read_lhe(tmp_path / "batch.lhe")[1])
    with LHEWriter(tmp_path / "one.lhe", PP_INIT, header=CARD) as writer:
        for event in events:
            writer.write(event)
        assert writer.n_events == 10
    text = (tmp_path / "batch.lhe").read_text()
    assert (tmp_path / "one.lhe").read_text() == text
    assert "".join(e.to_lhe() for e in events) in text


def test_no_file_until_close_and_nothing_left_on_error(tmp_path: Path) -> None:
    batch = ee_mumu(5, np.random.default_rng(6))
    target = tmp_path / "events.lhe.gz"
    with (pytest.raises(RuntimeError, match="generator crashed"),
          LHEWriter(target, EE_INIT) as writer):
        writer.write_batch(**batch)
        assert not target.exists()
        raise RuntimeError("generator crashed")
    assert list(tmp_path.iterdir()) == []

    # an existing file survives a failed rewrite, and is replaced by a good one
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), LHEWriter(target, EE_INIT) as writer:
        writer.write_batch(**batch)
        raise RuntimeError
    assert target.read_bytes() == b"old"
    writer = LHEWriter(target, EE_INIT)
    writer.write_batch(**batch)
    writer.abort()
    assert target.read_bytes() == b"old"
    with pytest.raises(ValueError, match="is aborted"):
        writer.close()
    write(target, EE_INIT, batch)
    assert check_lhe(target).n_events == 5
    assert list(tmp_path.iterdir()) == [target]


def test_init_given_at_close(tmp_path: Path) -> None:
    batch = qq_ee(8, np.random.default_rng(7))
    writer = LHEWriter(tmp_path / "pp.lhe")
    writer.write_batch(**batch)
    with pytest.raises(ValueError, match="no <init> block"):
        writer.close()
    only_one = LHEInit((2212, 2212), (EBEAM, EBEAM), 3, [LHEProcessInfo(1.0, 0.1, 1.0, 1)])
    with pytest.raises(ValueError, match=r"IDPRUP \[2\] but the <init> block only has"):
        writer.close(init=only_one)
    assert not (tmp_path / "pp.lhe").exists()
    assert writer.close(init=PP_INIT) == tmp_path / "pp.lhe"
    assert check_lhe(tmp_path / "pp.lhe").xsecup == [612.3, 401.7]
    assert [p.name for p in tmp_path.iterdir()] == ["pp.lhe"]
    with pytest.raises(ValueError, match="is closed"):
        writer.write_batch(**batch)

    # a failing close inside `with` leaves nothing behind either
    with (pytest.raises(ValueError, match="no <init> block"),
          LHEWriter(tmp_path / "other.lhe") as writer):
        writer.write_batch(**batch)
    assert [p.name for p in tmp_path.iterdir()] == ["pp.lhe"]


@pytest.mark.parametrize(("change", "message"), [
    ({"istup": [-1, -1, 2, 1, 7]}, r"istup has status codes \[7\]"),
    ({"mothup": [[0, 0], [0, 0], [1, 2], [3, 3], [3, 6]]}, r"mothup must be 1-based.*0\.\.5"),
    ({"icolup": [[501, 0], [0, -1], [0, 0], [0, 0], [0, 0]]}, "icolup must be non-negative"),
    ({"idup": [2.5, -2, 23, 11, -11]}, "idup must hold integers"),
    ({"masses": np.zeros(4)}, r"masses has shape \(4,\), expected \(n, np\) = \(3, 5\)"),
    ({"weights": [1.0, np.nan, 1.0]}, "weights has non-finite entries"),
    ({"momenta": np.zeros((3, 5, 3))}, r"momenta must have shape \(n, np, 4\)"),
    ({"idprup": 3}, r"IDPRUP \[3\]"),
])
def test_write_batch_errors(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    batch = qq_ee(3, np.random.default_rng(8)) | change
    with LHEWriter(tmp_path / "pp.lhe", PP_INIT) as writer:
        with pytest.raises(ValueError, match=message):
            writer.write_batch(**batch)
        assert writer.n_events == 0


def test_init_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="idwtup must be one of"):
        LHEWriter(tmp_path / "a.lhe", LHEInit((1, 1), (1.0, 1.0), 5, PP_INIT.processes))
    with pytest.raises(ValueError, match="processes is empty"):
        LHEWriter(tmp_path / "a.lhe", LHEInit((1, 1), (1.0, 1.0), 3, []))
    with pytest.raises(ValueError, match="digits must be an integer from 11"):
        LHEWriter(tmp_path / "a.lhe", digits=8)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LHEWriter(tmp_path / "missing" / "a.lhe")
    assert list(tmp_path.iterdir()) == []


def good_lines(tmp_path: Path) -> list[str]:
    """Lines of a valid two-event file: header (lines 2-6), init (7-12), events from 13."""
    batch = qq_ee(2, np.random.default_rng(9)) | {"idprup": [1, 2]}
    path = write(tmp_path / "good.lhe", PP_INIT, batch, header="card")
    lines = path.read_text().splitlines(keepends=True)
    assert lines[6] == "<init>\n" and lines[12] == "<event>\n" and lines[19] == "</event>\n"
    return lines


def replace(lines: list[str], index: int, new: str | None) -> list[str]:
    """``lines`` with line ``index`` (0-based) replaced, or removed if ``new`` is None."""
    return lines[:index] + ([] if new is None else [new]) + lines[index + 1:]


def drop_field(line: str) -> str:
    return " ".join(line.split()[:-1]) + "\n"


def set_field(line: str, index: int, value: str) -> str:
    f = line.split()
    f[index] = value
    return " ".join(f) + "\n"


# (how to break the file, 1-based line of the error, what the message says)
BROKEN = [
    (lambda ls: replace(ls, 15, drop_field(ls[15])), 16, "12 fields where 13 are expected"),
    (lambda ls: replace(ls, 13, set_field(ls[13], 0, "6")), 20,
     "event opened at line 13 declares NUP = 6 but has 5 particle lines"),
    (lambda ls: replace(ls, 13, set_field(ls[13], 0, "4")), 19,
     "a particle line after the NUP = 4"),
    (lambda ls: replace(ls, 19, None), 20, "missing </event> for the event opened at line 13"),
    (lambda ls: replace(ls, 27, None), 28, "missing </event> for the event opened at line 21"),
    (lambda ls: replace(ls, 13, drop_field(ls[13])), 14, "5 fields where 6 are expected"),
    (lambda ls: replace(ls, 13, set_field(ls[13], 1, "7")), 14, "IDPRUP = 7 is not one of"),
    (lambda ls: replace(ls, 16, set_field(ls[16], 1, "0")), 17, "ISTUP = 0 is not one of"),
    (lambda ls: replace(ls, 16, set_field(ls[16], 3, "6")), 17, r"MOTHUP = \(1, 6\) outside"),
    (lambda ls: replace(ls, 14, set_field(ls[14], 6, "nan")), 15, "PUP.1. = 'nan' is not finite"),
    (lambda ls: replace(ls, 14, set_field(ls[14], 0, "2.0")), 15, "IDUP = '2.0' is not an int"),
    (lambda ls: replace(ls, 7, drop_field(ls[7])), 8, "9 fields where 10 are expected"),
    (lambda ls: replace(ls, 9, None), 10,
     "<init> opened at line 7 declares NPRUP = 2 but has 1 process lines"),
    (lambda ls: replace(ls, 0, "<LesHouchesEvents>\n"), 1, "the first line must be"),
    (lambda ls: replace(ls, 5, None), 29,
     "end of file while expecting </header> closing the header opened at line 2"),
    (lambda ls: ls[:-1], 29, "end of file while expecting <event> or </LesHouchesEvents>"),
    (lambda ls: ls[:17], 18, "end of file in the event opened at line 13"),
    (lambda ls: ls + ["junk\n"], 30, "text after </LesHouchesEvents>"),
    (lambda ls: replace(ls, 20, "<evnt>\n"), 21, "expected <event> or </LesHouchesEvents>"),
]


@pytest.mark.parametrize(("breaker", "lineno", "message"), BROKEN)
@pytest.mark.parametrize("suffix", [".lhe", ".lhe.gz"])
def test_check_lhe_finds_the_broken_line(tmp_path: Path, breaker: Any, lineno: int,
                                         message: str, suffix: str) -> None:
    lines = good_lines(tmp_path)
    assert check_lhe(tmp_path / "good.lhe").n_events == 2
    bad = tmp_path / f"bad{suffix}"
    data = "".join(breaker(lines)).encode()
    bad.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    where = re.escape(f"{bad}:{lineno}: ")
    with pytest.raises(LHEError, match=where + message):
        check_lhe(bad)
    with pytest.raises(LHEError, match=where):
        _, events = read_lhe(bad)
        list(events)


def test_check_lhe_accepts_lhef3_extras(tmp_path: Path) -> None:
    lines = good_lines(tmp_path)
    extras = ["<rwgt>\n", "<wgt id='1'> 1.0 </wgt>\n", "</rwgt>\n", "<weights>\n",
              "1.0 2.0\n", "</weights>\n", "# optional info\n", "<scales muf='91.2'/>\n"]
    path = tmp_path / "extras.lhe"
    path.write_text("".join(lines[:19] + extras + lines[19:]))
    assert check_lhe(path).n_events == 2


# ------------------------------------------------ events of varying NUP, IDWTUP, banner


def test_present_rows_give_events_of_their_own_length(tmp_path: Path) -> None:
    batch = qq_ee(40, np.random.default_rng(10))
    present = np.ones((40, 5), bool)
    present[::2, 2] = False  # even events without the Z: the leptons' mothers are 1 2
    moth = np.broadcast_to(np.array(batch["mothup"]), (40, 5, 2)).copy()
    moth[::2, 3:] = [1, 2]
    path = write(tmp_path / "z.lhe", PP_INIT, batch | {"present": present, "mothup": moth})
    s = check_lhe(path)
    np.testing.assert_array_equal(s.n_particles, np.where(np.arange(40) % 2, 5, 4))
    _, events = read_lhe(path)
    for i, event in enumerate(events):
        rows = np.flatnonzero(present[i])
        np.testing.assert_array_equal(event.momenta(), batch["momenta"][i][rows])
        assert [p.mothup for p in event.particles] == [tuple(m) for m in moth[i][rows]]
    _, read = read_with_pylhe(path)
    assert [len(e.particles) for e in read] == s.n_particles.tolist()
    # the text of an event is what LHEEvent.to_lhe writes for it
    assert next(iter(read_lhe(path)[1])).to_lhe() in path.read_text()
    # a mother past the event's own NUP is refused
    bad = moth.copy()
    bad[0, 3] = [5, 5]
    with LHEWriter(tmp_path / "bad.lhe", PP_INIT) as writer:
        with pytest.raises(ValueError, match=r"mothup must be 1-based.*0\.\.NUP"):
            writer.write_batch(**(batch | {"present": present, "mothup": bad}))
        with pytest.raises(ValueError, match="without particles"):
            writer.write_batch(**(batch | {"present": np.zeros((40, 5), bool)}))


@pytest.mark.parametrize(("requested", "weights", "expected"), [
    (3, [2.0, 2.0, 2.0], 3),
    (3, [2.0, 2.5, 2.0], 4),
    (3, [2.0, -2.0, 2.0], -3),
    (3, [2.0, -2.5, 2.0], -4),
    (-4, [1.0, 2.0, 3.0], -4),
    (4, [2.0, 2.0, 2.0], 4),
    (1, [0.5, 1.0, 0.2], 1),
])
def test_idwtup_follows_the_written_weights(tmp_path: Path, requested: int,
                                            weights: list[float], expected: int) -> None:
    batch = ee_mumu(3, np.random.default_rng(11)) | {"weights": weights}
    init = LHEInit((-11, 11), (MZ / 2, MZ / 2), requested, [LHEProcessInfo(1.0, 0.1, 3, 1)])
    s = check_lhe(write(tmp_path / "w.lhe", init, batch))
    assert s.idwtup == expected
    # an event-free file keeps what was asked for
    assert check_lhe(write(tmp_path / "e.lhe", init, ee_mumu(0, np.random.default_rng(0))
                           )).idwtup == requested


def test_idwtup_of_parts(tmp_path: Path) -> None:
    from madnis_py.events import idwtup_of_parts

    init = LHEInit((-11, 11), (MZ / 2, MZ / 2), 3, [LHEProcessInfo(1.0, 0.1, 2.0, 1)])

    def part(name: str, weights: list[float]) -> Path:
        batch = ee_mumu(len(weights), np.random.default_rng(12)) | {"weights": weights}
        xmax = max(abs(w) for w in weights)
        return write(tmp_path / name, LHEInit(init.idbmup, init.ebmup, 3,
                                              [LHEProcessInfo(1.0, 0.1, xmax, 1)]), batch)

    same = [part("a.lhe", [2.0, 2.0]), part("b.lhe", [2.0])]
    assert idwtup_of_parts(init, same).idwtup == 3
    assert idwtup_of_parts(init, same + [part("c.lhe", [2.5, 2.5])]).idwtup == 4
    assert idwtup_of_parts(init, same + [part("d.lhe", [2.0, 3.0])]).idwtup == 4
    assert idwtup_of_parts(init, same + [part("e.lhe", [2.0, -2.0])]).idwtup == -3


SLHA_CARD = Path(__file__).resolve().parents[2] / "processes" / "zprime" / "param_card.dat"


def header_elements(path: Path) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
        text = f.read()
    header = text[text.index("<header>"):text.index("</header>") + len("</header>")]
    return {child.tag: child.text or "" for child in ET.fromstring(header)}


def test_banner_blocks_parse_back(tmp_path: Path) -> None:
    from madnis_py.cards.madgraph import read_madgraph_run_card
    from madnis_py.events import Banner
    from madnis_py.events.banner import madgraph_run_card
    from madnis_py.physics.slha import read_slha

    run = madgraph_run_card(nevents=500, seed=7, sqrt_s=13000.0, hadronic=True,
                            lhaid=99000, scale=None, dynamical_scale_choice=3,
                            bwcutoff=15.0, cuts={"ptl": 10.0, "mmll": 50.0})
    banner = Banner(run_card=CARD, mg_run_card=run, param_card=SLHA_CARD.read_text(),
                    processes={1: (2, -2, -11, 11), 2: (1, -1, -11, 11)})
    path = write(tmp_path / "b.lhe.gz", PP_INIT, qq_ee(5, np.random.default_rng(13)),
                 header=banner)
    blocks = header_elements(path)
    assert list(blocks) == ["MGRunCard", "slha", "MadNISRunCard"]
    assert blocks["MadNISRunCard"] == "\n" + CARD.strip("\n") + "\n"
    (tmp_path / "param_card.dat").write_text(blocks["slha"])
    back, original = read_slha(tmp_path / "param_card.dat"), read_slha(SLHA_CARD)
    assert back.blocks == original.blocks and back.widths == original.widths
    assert back.width(32) == 0.5 and back.mass(32) == 400.0
    (tmp_path / "run_card.dat").write_text(blocks["MGRunCard"])
    fields = read_madgraph_run_card(tmp_path / "run_card.dat")
    assert (fields["nevents"], fields["iseed"], fields["lhaid"]) == ("500", "7", "99000")
    assert (fields["ebeam1"], fields["lpp1"], fields["pdlabel"]) == ("6500.0", "1", "lhapdf")
    assert (fields["bwcutoff"], fields["ptl"], fields["fixed_ren_scale"]) == (
        "15.0", "10.0", "False")
    # <init> names the subprocess of each IDPRUP; our reader gives the comments back
    init, _ = read_lhe(path)
    assert init.comments == ("IDPRUP 1: 2 -2 > -11 11", "IDPRUP 2: 1 -1 > -11 11")
    lhef, events = read_with_pylhe(path)
    assert lhef.init.initInfo.numProcesses == 2 and len(events) == 5
    assert init == replace_init(PP_INIT, comments=init.comments)


def replace_init(init: LHEInit, **changes: Any) -> LHEInit:
    import dataclasses

    return dataclasses.replace(init, **changes)


def test_lhapdf_ids() -> None:
    from madnis_py.events import LHAPDF_TOY_ID, lhapdf_id
    from madnis_py.physics.pdf import PDF

    assert LHAPDF_TOY_ID == 99000
    assert lhapdf_id(PDF("LHToyPDF")) == 99000
    assert lhapdf_id(None) == 0


def test_run_writes_resonances_and_banner(tmp_path: Path) -> None:
    """A real small run of the Z' process: Z and Z' written only within 15 widths of
    their poles, MadGraph's banner blocks, IDPRUP comments, the toy PDF's id."""
    import torch

    from madnis_py.cards.madgraph import read_madgraph_run_card
    from madnis_py.cli import main
    from madnis_py.physics.process import load_process
    from madnis_py.physics.slha import read_slha

    torch.set_num_threads(1)
    card = tmp_path / "card.toml"
    card.write_text('[run]\nprocess = "zprime"\nseed = 5\nnevents = 400\n'
                    "[training]\nsteps = 6\nbatch = 1024\nvegas = false\nwarmup = 2\n"
                    "[integration]\npoints = 20000\niterations = 2\n"
                    '[output]\nlhe = "events.lhe.gz"\nplots = false\n')
    assert main(["run", str(card), "--output", str(tmp_path / "out"), "--quiet"]) == 0
    path = tmp_path / "out" / "events.lhe.gz"
    s = check_lhe(path)
    assert s.n_events == 400 and s.init.pdfsup == (99000, 99000)
    proc = load_process("zprime")
    poles = {23: (91.188, 2.441404), 32: (400.0, 0.5)}
    init, events = read_lhe(path)
    assert init.comments == tuple(
        f"IDPRUP {p.lprup}: {' '.join(map(str, proc.subprocesses[p.lprup - 1].pdgs[:2]))} > "
        f"{' '.join(map(str, proc.subprocesses[p.lprup - 1].pdgs[2:]))}"
        for p in init.processes)
    seen = {23: 0, 32: 0}
    for event in events:
        q = event.momenta()
        status = np.array([x.istup for x in event.particles])
        assert (status == 2).sum() <= 1
        np.testing.assert_allclose(q[status == -1].sum(0), q[status == 1].sum(0), rtol=0,
                                   atol=1e-9 * 13000)
        for j, part in enumerate(event.particles):
            if part.istup != 2:
                continue
            mass, width = poles[part.idup]
            seen[part.idup] += 1
            assert part.mothup == (1, 2) and part.icolup == (0, 0)
            assert abs(part.m - mass) < 15 * width
            kids = [k for k, x in enumerate(event.particles) if x.mothup == (j + 1, j + 1)]
            assert sorted(event.particles[k].idup for k in kids) == [-11, 11]
            np.testing.assert_allclose(q[j], q[kids].sum(0), rtol=1e-15, atol=1e-12)
    assert seen[23] > 0 and seen[32] > 0, seen
    blocks = header_elements(path)
    assert list(blocks) == ["MGRunCard", "slha", "MadNISRunCard"]
    (tmp_path / "param_card.dat").write_text(blocks["slha"])
    assert read_slha(tmp_path / "param_card.dat").blocks == proc.parameters().blocks
    (tmp_path / "run_card.dat").write_text(blocks["MGRunCard"])
    fields = read_madgraph_run_card(tmp_path / "run_card.dat")
    assert (fields["nevents"], fields["lhaid"], fields["mmll"]) == ("400", "99000", "50.0")
    read = read_with_pylhe(path)[1]
    assert [len(e.particles) for e in read] == s.n_particles.tolist()


def test_banner_of_a_madgraph_output_carries_its_cards(tmp_path: Path) -> None:
    """A process directory with MadGraph's Cards/: its run_card.dat and proc card go into
    the banner as they are, and its bwcutoff decides the resonances."""
    import shutil

    from madnis_py.cards import RunCard
    from madnis_py.events import Banner
    from madnis_py.events.resonances import ResonanceTable
    from madnis_py.integrand import Integrand
    from madnis_py.physics.process import load_process

    root = Path(__file__).resolve().parents[2] / "processes" / "zprime"
    for name in ("process.toml", "param_card.dat"):
        shutil.copy(root / name, tmp_path / name)
    (tmp_path / "Cards").mkdir()
    run_dat = ("#*** MadGraph5_aMC@NLO run card ***\n  5000 = nevents ! n\n"
               "  0   = iseed   ! rnd seed (0=assigned automatically=default))\n"
               "  20.0 = bwcutoff ! (M+/-bwcutoff*Gamma) & more <text>\n")
    (tmp_path / "Cards" / "run_card.dat").write_text(run_dat)
    (tmp_path / "Cards" / "proc_card_mg5.dat").write_text("generate p p > e+ e-\n")
    proc = load_process(tmp_path)
    assert ResonanceTable.from_process(proc).bwcutoff == 20.0
    card = RunCard()
    banner = Banner.for_run(card, Integrand(proc))
    # the run's own event count and seed (the card's), the rest as MadGraph wrote it
    assert (card.run.nevents, card.run.seed) == (10000, 1)
    run_dat = run_dat.replace("  5000 = nevents", "  10000 = nevents").replace(
        "  0   = iseed", "  1   = iseed")
    assert banner.mg_run_card == run_dat
    assert banner.proc_card == "generate p p > e+ e-\n"
    assert banner.param_card == (root / "param_card.dat").read_text()
    assert banner.processes[1] == (2, -2, -11, 11) and len(banner.processes) == 8
    path = write(tmp_path / "mg.lhe", PP_INIT, qq_ee(3, np.random.default_rng(14)),
                 header=banner)
    blocks = header_elements(path)
    assert list(blocks) == ["MG5ProcCard", "MGRunCard", "slha", "MadNISRunCard"]
    assert blocks["MGRunCard"] == "\n" + run_dat.strip("\n") + "\n"
    check_lhe(path)


@pytest.mark.parametrize("digits", [11, 17])
def test_the_compiled_event_text_is_the_percent_formats(digits: int) -> None:
    # csrc/lhe_cpu.cpp against the %-formats of _line_formats, byte for byte: all rows
    # present and some absent (NUP per event), signs, negative zero, tiny and huge values
    from madnis_py._core import ext
    from madnis_py.events.lhe.records import _event_format

    rng = np.random.default_rng(8)
    n, npart = 300, 6
    table = np.empty((n, 6 + 13 * npart))
    table[:, 0] = npart
    table[:, 1] = rng.integers(1, 30, n)
    table[:, 2:6] = rng.normal(0, 1, (n, 4)) * 10.0 ** rng.integers(-300, 300, (n, 4))
    part = table[:, 6:].reshape(n, npart, 13)
    part[..., 0] = rng.integers(-9_999_999, 9_999_999, (n, npart))
    part[..., 1] = rng.choice([-1, 1, 2, -2, 3], (n, npart))
    part[..., 2:6] = rng.integers(0, 700, (n, npart, 4))
    part[..., 6:13] = rng.normal(0, 100, (n, npart, 7)) * 10.0 ** rng.integers(-20, 20,
                                                                               (n, npart, 7))
    part[0, 0, 6:9] = [-0.0, 0.0, 5e-324]
    part[1, 1, 9:13] = [1.0, 0.5, 0.00005, 99999.5]
    for keep in (np.ones((n, npart), dtype=np.int64),
                 (rng.random((n, npart)) < 0.7).astype(np.int64)):
        keep[:, 0] = 1  # every event keeps a particle
        nup = keep.sum(axis=1)
        want = []
        for e in range(n):
            row = np.concatenate([[nup[e]], table[e, 1:6],
                                  part[e][keep[e] == 1].ravel()])
            want.append(_event_format(int(nup[e]), digits) % tuple(row.tolist()))
        got = ext.lhe_format_events(table, keep, npart, digits)
        assert got == "".join(want).encode("ascii")


def test_a_madgraph_run_card_takes_the_runs_own_values() -> None:
    """Only the value of a named field's line changes; spacing, comments, other fields,
    commented-out lines and fields the card lacks stay as they are."""
    from madnis_py.events.banner import with_run_values

    text = ("#*** run card ***\n"
            "  10000 = nevents ! Number of unweighted events requested \n"
            "#  500 = nevents ! an old value\n"
            "  0   = iseed   ! rnd seed (0=assigned automatically=default))\n"
            "  6500.0 = ebeam1 ! beam 1 energy\n")
    got = with_run_values(text, {"nevents": 2000, "iseed": 7, "ptj": 20.0})
    assert got == text.replace("  10000 = nevents", "  2000 = nevents").replace(
        "  0   = iseed", "  7   = iseed")
    assert with_run_values(text, {}) == text
