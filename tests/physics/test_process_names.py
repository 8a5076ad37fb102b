"""load_process's one rule for process names: explicit paths are paths, bare names are
built-ins first; the command line, run cards and Dask workers follow it."""

from __future__ import annotations

from pathlib import Path

import pytest

from madnis_py.physics import builtin_process_dir
from madnis_py.physics.process import builtin_name, load_process, looks_like_path


def own_process(directory: Path, *, name: str = "mine") -> Path:
    """A process directory holding the built-in drell_yan's card under another name."""
    source = builtin_process_dir("drell_yan") / "process.toml"
    text = source.read_text()
    common = (source.parent.parent / "common").resolve()
    text = text.replace('param_card = "../common/', f'param_card = "{common}/')
    text = text.replace('name = "drell_yan"', f'name = "{name}"', 1)
    directory.mkdir(parents=True)
    (directory / "process.toml").write_text(text)
    return directory


@pytest.mark.parametrize("text, path", [
    ("ee_mumu", False), ("mine", False), ("./ee_mumu", True), ("procs/zz", True),
    ("zz/process.toml", True), ("card.toml", True), ("~/zz", True), (".hidden", True),
    ("a\\b", True)])
def test_what_counts_as_an_explicit_path(text: str, path: bool) -> None:
    assert looks_like_path(text) is path
    assert looks_like_path(Path(text))  # a path object is always a path


def test_a_bare_builtin_name_wins_over_a_same_named_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    own_process(tmp_path / "ee_mumu", name="shadow")  # what `--output ee_mumu` leaves
    assert builtin_name("ee_mumu") == "ee_mumu"
    builtin = load_process("ee_mumu")
    assert builtin.name == "ee_mumu"
    assert builtin.card == (builtin_process_dir("ee_mumu") / "process.toml").resolve()
    # the directory, named as a path
    for spec in ("./ee_mumu", "ee_mumu/process.toml", Path("ee_mumu"),
                 str(tmp_path / "ee_mumu")):
        assert builtin_name(spec) is None
        assert load_process(spec).name == "shadow", spec


def test_other_bare_names_are_directories_else_an_error_listing_the_builtins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    own_process(tmp_path / "mine")
    assert builtin_name("mine") is None
    assert load_process("mine").name == "mine"
    with pytest.raises(KeyError, match="no built-in process 'nosuch'.*ee_mumu"):
        load_process("nosuch")
    with pytest.raises(FileNotFoundError, match="nosuch"):
        load_process("./nosuch")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no process card"):
        load_process("./empty")


def test_run_cards_follow_the_rule(tmp_path: Path) -> None:
    from madnis_py.cards import load_run_card

    own_process(tmp_path / "ee_mumu", name="shadow")
    card = tmp_path / "card.toml"
    card.write_text('[run]\nprocess = "ee_mumu"\n')
    loaded = load_run_card(card)
    assert loaded.run.process == "ee_mumu" and loaded.load_process().name == "ee_mumu"
    card.write_text('[run]\nprocess = "./ee_mumu"\n')
    loaded = load_run_card(card)
    assert loaded.run.process == (tmp_path / "ee_mumu").resolve()
    assert loaded.load_process().name == "shadow"


def test_the_command_line_and_dask_workers_follow_the_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from madnis_py.cli import _load_card, _parser
    from madnis_py.distributed import IntegrandSpec

    monkeypatch.chdir(tmp_path)
    own_process(tmp_path / "ee_mumu", name="shadow")
    card = _load_card(_parser().parse_args(["run", "ee_mumu"]))
    assert card.source == (builtin_process_dir("ee_mumu") / "run_card.toml").resolve()
    assert card.load_process().name == "ee_mumu"
    spec = IntegrandSpec.from_card(card)
    assert spec.process == "ee_mumu" and spec.build().process.name == "ee_mumu"
    with pytest.raises(FileNotFoundError):  # ./ee_mumu is a directory, not a run card
        _load_card(_parser().parse_args(["run", "./ee_mumu"]))
