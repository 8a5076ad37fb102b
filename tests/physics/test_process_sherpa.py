"""Process cards with a Sherpa library (``[process] sherpa_run_card``): parsing, without
Sherpa. The Sherpa run itself is tested in test_shims.py where Sherpa is installed."""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_py.physics import MatrixElement, builtin_process_dir, load_process
from madnis_py.physics.process import ProcessCardError

CARD = builtin_process_dir("ee_mumu").parent / "common" / "param_card_sm.dat"


def _card(tmp_path: Path, head: str) -> Path:
    builtin = (builtin_process_dir("drell_yan") / "process.toml").read_text()
    body = builtin[builtin.index("[[subprocess]]"):]
    (tmp_path / "process.toml").write_text(
        f'[process]\nname = "dy_sherpa"\nbeams = "proton"\nparam_card = "{CARD}"\n'
        f"{head}\n{body}")
    return tmp_path


def test_sherpa_run_card_is_resolved_against_the_card(tmp_path: Path) -> None:
    proc = load_process(_card(tmp_path, 'library = "lib/libme_sherpa.so"\n'
                                        'sherpa_run_card = "sherpa_run"'))
    assert proc.sherpa_run_dir == (tmp_path / "sherpa_run").resolve()
    assert proc.library == (tmp_path / "lib" / "libme_sherpa.so").resolve()
    assert len(proc.subprocesses) == 8 and proc.param_card == CARD.resolve()


def test_cards_without_sherpa_are_unchanged(tmp_path: Path) -> None:
    assert load_process("drell_yan").sherpa_run_dir is None
    assert load_process(_card(tmp_path, 'library = "drell_yan"')).sherpa_run_dir is None


def test_sherpa_run_card_needs_a_library_path(tmp_path: Path) -> None:
    with pytest.raises(ProcessCardError, match="sherpa_run_card needs library = the path"):
        load_process(_card(tmp_path, 'library = "drell_yan"\nsherpa_run_card = "run"'))


def test_a_sherpa_card_opens_through_from_sherpa(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[Path, Path]] = []

    def fake(cls: type[MatrixElement], library: Path, run_dir: Path) -> str:
        opened.append((library, run_dir))
        return "sherpa"

    monkeypatch.setattr(MatrixElement, "from_sherpa", classmethod(fake))
    proc = load_process(_card(tmp_path, 'library = "libme_sherpa.so"\nsherpa_run_card = "r"'))
    assert proc.matrix_element() == "sherpa"  # type: ignore[comparison-overlap]
    assert opened == [((tmp_path / "libme_sherpa.so").resolve(), (tmp_path / "r").resolve())]


def test_missing_sherpa_files_are_reported(tmp_path: Path) -> None:
    proc = load_process(_card(tmp_path, 'library = "libme_sherpa.so"\nsherpa_run_card = "r"'))
    with pytest.raises(FileNotFoundError, match="libme_sherpa.so does not exist"):
        proc.matrix_element()
    (tmp_path / "libme_sherpa.so").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no Sherpa.yaml run card"):
        proc.matrix_element()
