"""LHEWriter.merge_parts: part files into one LHE file written by a writer of its own."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from madnis_py.events import (
    LHEError,
    LHEInit,
    LHEProcessInfo,
    LHEWriter,
    check_lhe,
    read_lhe,
)


def init(*lprups: int) -> LHEInit:
    return LHEInit((-11, 11), (50.0, 50.0), 3,
                   [LHEProcessInfo(1.0 + k, 0.1, 2.5, k) for k in lprups])


def events(writer: LHEWriter, seed: int, n: int, idprup: tuple[int, ...] = (1, 2)) -> None:
    rng = np.random.default_rng(seed)
    e = rng.uniform(10, 50, size=n)
    z = 0 * e
    p = np.stack([np.stack([e, z, z, e], 1), np.stack([e, z, z, -e], 1),
                  np.stack([e, e, z, z], 1), np.stack([e, -e, z, z], 1)], axis=1)
    writer.write_batch(idup=[-11, 11, -13, 13], istup=[-1, -1, 1, 1],
                       mothup=[[0, 0], [0, 0], [1, 2], [1, 2]], icolup=np.zeros((4, 2)),
                       momenta=p, masses=np.zeros(4), weights=rng.uniform(1, 2, size=n),
                       scales=91.188, aqed=1 / 132.5, aqcd=0.118,
                       idprup=rng.choice(idprup, size=n))


def hidden(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("target", ["all.lhe", "all.lhe.gz"])
def test_gzip_and_plain_parts_merge_into_what_one_writer_writes(tmp_path: Path,
                                                               target: str) -> None:
    # parts of every kind: gzip (named .gz), plain, gzip under a plain name, no events,
    # another writer's digits and header
    sizes = [5, 0, 9, 3]
    names = ["p0.lhe.gz", "p1.lhe", "p2.lhe", "p3.lhe"]
    for i, (name, n) in enumerate(zip(names, sizes, strict=True)):
        with LHEWriter(tmp_path / name, init(1, 2), header=f"part {i}") as w:
            events(w, i, n)
    gz_inside = (tmp_path / "p2.lhe").read_bytes()
    (tmp_path / "p2.lhe").write_bytes(gzip.compress(gz_inside))
    with LHEWriter(tmp_path / f"one-{target}", init(1, 2, 3), header="merged") as w:
        for i, n in enumerate(sizes):
            events(w, i, n)
    merged = LHEWriter.merge_parts([tmp_path / n for n in names], tmp_path / target,
                                   init(1, 2, 3), header="merged")
    assert merged == tmp_path / target
    assert merged.read_bytes() == (tmp_path / f"one-{target}").read_bytes()
    summary = check_lhe(merged)
    assert summary.n_events == sum(sizes) and len(summary.processes) == 3
    head, read = read_lhe(merged)
    assert [p.lprup for p in head.processes] == [1, 2, 3]
    assert len(list(read)) == 17
    assert hidden(tmp_path) == []


def test_a_part_with_a_process_missing_from_init_is_refused(tmp_path: Path) -> None:
    with LHEWriter(tmp_path / "a.lhe", init(1, 7)) as w:
        events(w, 0, 4, idprup=(1, 7))
    with pytest.raises(ValueError, match="IDPRUP"):
        LHEWriter.merge_parts([tmp_path / "a.lhe"], tmp_path / "m.lhe", init(1, 2))
    assert not (tmp_path / "m.lhe").exists() and hidden(tmp_path) == []


@pytest.mark.parametrize("cut, match", [
    (lambda t: t[: t.index(b"</init>")], r"end of file while expecting </init>"),
    (lambda t: t[: -len(b"</LesHouchesEvents>\n")], "does not end with"),
    (lambda t: t[: t.rindex(b"</event>") + 3], "does not end with"),
    (lambda t: t.replace(b"3.0", b"9.9", 1), "version"),
])
def test_incomplete_parts_name_the_file_and_leave_the_target_alone(
        tmp_path: Path, cut: object, match: str) -> None:
    good, bad = tmp_path / "good.lhe", tmp_path / "bad.lhe"
    with LHEWriter(good, init(1, 2)) as w:
        events(w, 0, 6)
    bad.write_bytes(cut(good.read_bytes()))  # type: ignore[operator]
    target = tmp_path / "m.lhe"
    target.write_text("the previous file\n")
    with pytest.raises(LHEError, match=match) as err:
        LHEWriter.merge_parts([good, bad], target, init(1, 2))
    assert "bad.lhe" in str(err.value)
    assert target.read_text() == "the previous file\n" and hidden(tmp_path) == []
