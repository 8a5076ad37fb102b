"""The event-output pipeline: <init> arithmetic, particle columns, the LHE sink and
generate_events, the one generation path of the command and of every Dask shard."""

from __future__ import annotations

import dataclasses
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.cards import RunCard, load_run_card
from madnis_py.events import LHAPDF_TOY_ID, LHEWriter, check_lhe, read_lhe
from madnis_py.events.generator import EventBatch
from madnis_py.events.output import (
    LHESink,
    calibration_size,
    cross_section,
    event_columns,
    generate_events,
    lhe_init,
    unweighter_from_card,
)
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.training import Integrator

CARD = """
[run]
process = "ee_mumu"
seed = 2
nevents = 100

[integration]
points = {points}
iterations = 2

[unweighting]
max_weight = "quantile"
quantile = 0.99
overweight = "{overweight}"
"""


def card(tmp_path: Path, *, points: int = 20_000, overweight: str = "keep") -> RunCard:
    path = tmp_path / f"card-{points}-{overweight}.toml"
    path.write_text(CARD.format(points=points, overweight=overweight))
    return load_run_card(path)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_calibration_size_is_the_integration_points_within_bounds(tmp_path: Path) -> None:
    assert calibration_size(card(tmp_path, points=1_000)) == 20_000
    assert calibration_size(card(tmp_path, points=54_321)) == 54_321
    assert calibration_size(card(tmp_path, points=10 ** 7)) == 200_000
    u = unweighter_from_card(card(tmp_path, overweight="truncate"))
    assert (u.method, u.quantile, u.overweight) == ("quantile", 0.99, "truncate")


def test_init_of_a_hadronic_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a copy of the toy set with an LHAPDF index: PDFSUP is SetIndex + member
    from madnis_py.physics.pdf import EMBEDDED_PDFSETS_DIR

    src = EMBEDDED_PDFSETS_DIR / "LHToyPDF"
    dst = tmp_path / "pdfs" / "IndexedToy"
    dst.mkdir(parents=True)
    shutil.copy(src / "LHToyPDF_0000.dat", dst / "IndexedToy_0000.dat")
    (dst / "IndexedToy.info").write_text((src / "LHToyPDF.info").read_text()
                                         + "SetIndex: 90400\n")
    monkeypatch.setenv("LHAPDF_DATA_PATH", str(tmp_path / "pdfs"))
    integrand = Integrand("drell_yan", pdf="IndexedToy")
    n_sub = len(integrand.process.subprocesses)
    counts = np.zeros(n_sub, dtype=np.int64)
    counts[[0, 2, 3, n_sub - 1]] = [3, 5, 2, 10]
    xmax = np.linspace(1.0, 2.0, n_sub)
    sigma, error = 619.5, 1.25
    init = lhe_init(integrand, sigma, error, counts, xmax)
    assert init.idbmup == (2212, 2212) and init.ebmup == (6500.0, 6500.0)
    assert init.pdfsup == (90400, 90400) and init.pdfgup == (0, 0) and init.idwtup == 3
    assert [p.lprup for p in init.processes] == [1, 3, 4, n_sub]
    assert [p.xmaxup for p in init.processes] == [xmax[0], xmax[2], xmax[3], xmax[-1]]
    assert sum(p.xsecup for p in init.processes) == pytest.approx(sigma, rel=1e-15)
    for p, nk in zip(init.processes, [3, 5, 2, 10], strict=True):
        assert p.xsecup == pytest.approx(sigma * nk / 20, rel=1e-15)
    # without an integration error, XERRUP is the binomial error of the share
    exact = lhe_init(integrand, sigma, 0.0, counts, xmax)
    for p, nk in zip(exact.processes, [3, 5, 2, 10], strict=True):
        share = nk / 20
        assert p.xerrup == pytest.approx(sigma * math.sqrt(share * (1 - share) / 20),
                                         rel=1e-14)
    # and the integration error adds in quadrature to it
    for p, q in zip(init.processes, exact.processes, strict=True):
        assert p.xerrup ** 2 == pytest.approx(q.xerrup ** 2 + (p.xsecup * error / sigma) ** 2,
                                              rel=1e-13)
    # the embedded toy set is written with its documented id (events.banner.LHAPDF_TOY_ID)
    assert lhe_init(Integrand("drell_yan"), sigma, error, counts, xmax).pdfsup == (
        LHAPDF_TOY_ID, LHAPDF_TOY_ID)


def test_init_of_a_lepton_process_and_of_no_events() -> None:
    integrand = Integrand("ee_mumu")
    init = lhe_init(integrand, 2.0, 0.5, [7], [3.0])
    assert init.idbmup == (-11, 11) and init.pdfsup == (0, 0)
    assert init.ebmup == (integrand.sqrt_s / 2, integrand.sqrt_s / 2)
    [p] = init.processes
    assert (p.xsecup, p.xerrup, p.xmaxup, p.lprup) == (2.0, 0.5, 3.0, 1)  # share 1
    [none] = lhe_init(integrand, 2.0, 0.5, [0], [0.0]).processes
    assert (none.xsecup, none.xerrup, none.xmaxup, none.lprup) == (2.0, 0.5, 2.0, 1)


def test_event_columns() -> None:
    integrand = Integrand("ee_mumu")
    cols = event_columns(integrand)
    assert cols["istup"].tolist() == [-1, -1, 1, 1]
    assert cols["mothup"].tolist() == [[0, 0], [0, 0], [1, 2], [1, 2]]
    assert cols["masses"].tolist() == [0.0, 0.0, *integrand.masses]
    assert cols["aqed"] == 1 / integrand.process.parameters().get("sminputs", 1)


def _batch(integrand: Integrand, subprocess: list[int], weights: list[float]) -> EventBatch:
    n = len(subprocess)
    sub = np.asarray(subprocess)
    pdgs = np.array([s.pdgs for s in integrand.process.subprocesses])[sub]
    e = np.linspace(10.0, 40.0, n)
    z = 0 * e
    p = np.stack([np.stack([e, z, z, e], 1), np.stack([e, z, z, -e], 1),
                  np.stack([e, e, z, z], 1), np.stack([e, -e, z, z], 1)], axis=1)
    return EventBatch(pdgs, np.zeros((n, 4, 2), dtype=np.int64), p, np.asarray(weights),
                      np.full(n, 91.188), np.full(n, 0.118), sub, np.zeros(n, dtype=np.int64))


def test_sink_writes_counts_and_keeps(tmp_path: Path) -> None:
    integrand = Integrand("drell_yan")
    seen: list[int] = []
    path = tmp_path / "e.lhe"
    with LHEWriter(path) as writer:
        sink = LHESink(writer, integrand, keep=3, on_events=seen.append)
        sink(_batch(integrand, [0, 2, 2], [1.0, 4.0, 2.0]))
        sink(_batch(integrand, [7, 0], [3.0, 5.0]))
        writer.set_init(sink.init(10.0, 0.1))
    assert seen == [3, 2] and len(sink.sample) == 1  # whole batches, until 3 events
    assert sink.counts.tolist() == [2, 0, 2, 0, 0, 0, 0, 1]
    assert sink.xmax.tolist() == [5.0, 0, 4.0, 0, 0, 0, 0, 3.0]
    init, events = read_lhe(path)
    read = list(events)
    assert [e.idprup for e in read] == [1, 3, 3, 8, 1]
    assert [e.xwgtup for e in read] == [1.0, 4.0, 2.0, 3.0, 5.0]
    assert [[q.idup for q in e.particles] for e in read][3] == list(
        integrand.process.subprocesses[7].pdgs)
    assert [p.lprup for p in init.processes] == [1, 3, 8]
    assert sum(init.xsecup) == pytest.approx(10.0, rel=1e-15)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    integrand = Integrand("ee_mumu")
    channels = TorchChannels(integrand)
    mc = Integrator(channels, feature_dims=channels.feature_dims, seed=4)
    mc.train(3, batch=512)
    mc.integrate(n=8_000, iterations=2)
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.pt"
    mc.save(path)
    return path


def _load(path: Path) -> Integrator:
    integrand = Integrand("ee_mumu")
    return Integrator.load(path, TorchChannels(integrand))


def test_generate_events_writes_the_file_and_is_reproducible(tmp_path: Path,
                                                             checkpoint: Path) -> None:
    c = card(tmp_path)
    runs = []
    for name in ("a.lhe", "b.lhe"):
        mc = _load(checkpoint)
        result = cross_section(mc, c)
        assert result is mc.last_result  # the checkpoint's integration, not a new one
        runs.append(generate_events(mc, c, 150, tmp_path / name, sigma=result.value,
                                    error=result.error, seed=9, header="card", keep=40))
    a = runs[0]
    assert (tmp_path / "a.lhe").read_bytes() == (tmp_path / "b.lhe").read_bytes()
    summary = check_lhe(a.path)
    assert summary.n_events == a.n_events == 150 and sum(a.subprocess_events) == 150
    assert sum(summary.xsecup) == pytest.approx(result.value, rel=1e-12)
    assert max(p.xmaxup for p in summary.processes) == max(a.max_weights)
    assert a.n_weighted >= calibration_size(c) and a.n_calls >= a.n_weighted
    assert 40 <= sum(len(s) for s in a.sample) <= 150 and a.generator is not None
    assert 0 < a.efficiency <= 1 and a.w_max > 0
    assert a.generator.settle_events == c.unweighting.settle_events == 200_000
    # a maximum weight fixed by a driver is used as given, without a calibration
    # (and, given as is, never raised)
    mc = _load(checkpoint)
    fixed = generate_events(mc, c, 60, tmp_path / "c.lhe.gz", sigma=result.value,
                            error=result.error, seed=3, w_max=a.w_max * 2, norm=1.0,
                            batch=2_000)
    assert fixed.w_max == a.w_max * 2 and fixed.norm == 1.0
    truncating = dataclasses.replace(c, unweighting=dataclasses.replace(
        c.unweighting, max_weight="truncation", overweight="truncate"))
    low = generate_events(_load(checkpoint), truncating, 60, tmp_path / "d.lhe",
                          sigma=result.value, error=result.error, seed=3, w_max=a.w_max / 10,
                          batch=2_000)
    assert low.w_max == a.w_max / 10 and low.raised == [] and low.thinned == 0
    assert low.truncation_bias > 0.01
    assert fixed.n_weighted < calibration_size(c)
    assert check_lhe(tmp_path / "c.lhe.gz").n_events == 60
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
