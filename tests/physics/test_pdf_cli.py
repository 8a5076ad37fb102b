"""PDF sets through the madnis-py command: ``--pdf``, a missing set's error naming the card
field, and one JSON document on stdout with the LHAPDF backend."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from madnis_py.cli import main
from madnis_py.events import LHAPDF_TOY_ID, read_lhe
from madnis_py.physics.pdf import EMBEDDED_PDFSETS_DIR

MG_CARD = (Path(__file__).resolve().parents[3] / "shared" / "reference"
           / "run_card_madgraph_default.dat").resolve()

CARD = """
[run]
process = "drell_yan"
seed = 5
nevents = 50

[collider]
lhaid = {lhaid}

[training]
steps = 2
batch = 256
vegas = false
warmup = 1

[integration]
points = 2000
iterations = 1

[output]
plots = false
"""


def _card(tmp_path: Path, lhaid: int) -> Path:
    path = tmp_path / "card.toml"
    path.write_text(CARD.format(lhaid=lhaid))
    return path


def _cmd() -> list[str]:
    return [sys.executable, "-m", "madnis_py.cli"]


def _env(data_path: Path) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", LHAPDF_DATA_PATH=str(data_path))


def test_a_missing_set_names_the_card_field_and_the_fixes(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    empty = tmp_path / "no_sets"
    empty.mkdir()
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(empty))
    card = _card(tmp_path, 247000)
    assert main(["integrate", str(card), "--quiet", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert f"{card}: [collider] lhaid = 247000: " in err[0] and "LHAPDF ID 247000" in err[0]
    assert "lhapdf install" in err[0] and "LHAPDF_DATA_PATH" in err[0]
    assert "--pdf NAME" in err[0]

    assert main(["integrate", str(card), "--quiet", "--output", str(tmp_path / "o"),
                 "--pdf", "NoSuchSet42"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pdf NoSuchSet42: " in err[0]
    assert "PDF set 'NoSuchSet42'" in err[0]
    assert "lhapdf install NoSuchSet42" in err[0]


def test_madgraph_default_card_names_pdlabel(tmp_path: Path) -> None:
    if not MG_CARD.exists():
        pytest.skip(f"{MG_CARD} not found (the shared reference inputs)")
    empty = tmp_path / "no_sets"
    empty.mkdir()
    lines = MG_CARD.read_text().splitlines()
    line = next(i for i, ln in enumerate(lines, 1) if ln.split("!")[0].strip().endswith(
        "= pdlabel"))
    res = subprocess.run(_cmd() + ["integrate", str(MG_CARD), "--process", "drell_yan",
                                   "--quiet", "--output", str(tmp_path / "o")],
                         capture_output=True, text=True, env=_env(empty), timeout=600)
    assert res.returncode == 2 and res.stdout == ""
    err = res.stderr.strip().splitlines()
    assert err[-1].startswith("madnis-py: error: ")
    assert f"{MG_CARD}:{line}: pdlabel = nn23lo1 (LHAPDF ID 247000): " in err[-1]
    assert "LHAPDF_DATA_PATH" in err[-1] and "--pdf NAME" in err[-1]
    assert not (tmp_path / "o" / "events.lhe").exists()


def test_pdf_option_overrides_the_card(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("madnis_py.physics.pdf.backends.import_lhapdf", lambda: None)
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path))
    card = _card(tmp_path, 247000)
    out = tmp_path / "o"
    assert main(["run", str(card), "--json", "--quiet", "--output", str(out),
                 "--pdf", "LHToyPDF"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["events"] == 50
    init, _ = read_lhe(summary["lhe"])
    assert init.pdfsup == (LHAPDF_TOY_ID, LHAPDF_TOY_ID)  # the embedded toy set's own id


def test_run_json_with_the_lhapdf_backend_is_one_document(tmp_path: Path) -> None:
    pytest.importorskip("lhapdf", reason="LHAPDF is not installed here")
    data = tmp_path / "pdfsets"
    shutil.copytree(EMBEDDED_PDFSETS_DIR / "LHToyPDF", data / "LHToyPDF")
    with open(data / "LHToyPDF" / "LHToyPDF.info", "a") as fh:
        fh.write("SetIndex: 99000\n")
    (data / "pdfsets.index").write_text("99000 LHToyPDF 1\n")
    card = _card(tmp_path, 99000)  # an LHAPDF ID: opened by LHAPDF where it imports
    out = tmp_path / "o"
    res = subprocess.run(_cmd() + ["run", str(card), "--json", "--output", str(out)],
                         capture_output=True, text=True, env=_env(data), timeout=600)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)  # the whole of stdout is one JSON document
    assert summary["events"] == 50
    init, _ = read_lhe(summary["lhe"])
    assert init.pdfsup == (99000, 99000)  # the set's ID, from LHAPDF's backend metadata
