"""The weight report of a sharded generation (madnis_py.distributed.merge_shard_reports)
equals the one a single process computes on all the weights together.

The shards run here in this process through the worker's own task function (no Dask
cluster needed): what they return is what a worker returns.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from madnis_py.cards import RunCard, load_run_card
from madnis_py.distributed import (
    IntegrandSpec,
    ShardedGeneration,
    ShardReport,
    merge_shard_reports,
    shard_seed,
)
from madnis_py.distributed.generation import _run_shard, _Shard
from madnis_py.distributed.specs import _INTEGRANDS
from madnis_py.events import Unweighter, read_lhe
from madnis_py.events.generator import EventGenerator
from madnis_py.events.output import cross_section, unweighter_from_card
from madnis_py.events.unweight import WeightReport, WeightTally, effective_sample_size
from madnis_py.integrand import Integrand, TorchChannels
from madnis_py.run import RunRequest, run_card
from madnis_py.training import Integrator

CARD = """
[run]
process = "ee_mumu"
seed = 11
nevents = 10
output = "{output}"

[training]
steps = 4
batch = 512
vegas = false
warmup = 2

[integration]
points = 6000
iterations = 2

[unweighting]
max_weight = "quantile"
quantile = 0.99

[output]
lhe = "events.lhe"
plots = false
"""


def _report(shard: int, written: np.ndarray, reference: np.ndarray) -> ShardReport:
    return ShardReport(shard, 0, len(written), "", [], [], 0, len(reference), 0.0, 0, 0.0,
                       0.0, 0.0, 0.0, written=WeightTally.of(written), reference=reference)


@pytest.mark.parametrize("overweight", ["keep", "truncate"])
def test_merged_report_equals_the_concatenated_one(overweight: str) -> None:
    rng = np.random.default_rng(4)
    unweighter = Unweighter(method="quantile", quantile=0.99, overweight=overweight)
    w_max, norm = 3.0, 0.97
    parts = [(np.maximum(rng.lognormal(0, 0.4, n), 1.0) * norm,
              rng.lognormal(0, 1.0, 4 * n)) for n in (300, 1, 0, 250)]
    shards = [_report(i, w, ref) for i, (w, ref) in enumerate(parts)]
    written = np.concatenate([w for w, _ in parts])
    reference = np.concatenate([ref for _, ref in parts])
    one = unweighter.report(reference, w_max, written, nominal=norm)
    merged = merge_shard_reports(shards, unweighter, w_max, norm)
    assert merged.ess == pytest.approx(one.ess, rel=1e-12)
    assert merged.ess == pytest.approx(effective_sample_size(written), rel=1e-12)
    # the maximum and everything measured on the reference sample are exact
    assert merged.max_weight_ratio == one.max_weight_ratio == written.max() / norm
    for name in ("share_above", "eps_truncation", "eps_raw", "eps_quantile", "truncation",
                 "quantile"):
        assert getattr(merged, name) == getattr(one, name), name
    # with the driver's calibration sample, the reference side is that sample's
    calibration = rng.lognormal(0, 1.0, 5000)
    driver = merge_shard_reports(shards, unweighter, w_max, norm, calibration=calibration)
    alone = WeightReport.measure(calibration, w_max, written, nominal=norm,
                                 truncation=unweighter.truncation,
                                 quantile=unweighter.quantile)
    assert driver.share_above == alone.share_above
    assert driver.eps_quantile == alone.eps_quantile
    assert driver.ess == pytest.approx(alone.ess, rel=1e-12)


def test_a_shard_without_its_tally_is_named() -> None:
    bare = ShardReport(2, 0, 1, "", [], [], 0, 1, 0.0, 0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"shards \[2\]"):
        merge_shard_reports([bare], Unweighter(), 1.0, 1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunCard, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("reports")
    path = root / "card.toml"
    path.write_text(CARD.format(output=root / "run"))
    card = load_run_card(path)
    run_card(card, RunRequest("integrate"))
    return card, root / "run" / "checkpoint.pt"


def test_in_process_shards_merge_to_their_events(trained: tuple[RunCard, Path],
                                                 tmp_path: Path) -> None:
    card, checkpoint = trained
    mc = Integrator.load(checkpoint, TorchChannels(Integrand("ee_mumu")))
    sigma = cross_section(mc, card).value
    gen = EventGenerator(mc, sigma, seed=1, unweighter=unweighter_from_card(card))
    w_max = gen.calibrate(4000)
    counts = (120, 80, 101)
    spec = IntegrandSpec.from_card(card)
    before = _INTEGRANDS[spec].n_points if spec in _INTEGRANDS else 0
    reports = [_run_shard(_Shard(card, str(checkpoint), i, shard_seed(11, i), n, sigma,
                                 0.0, w_max, gen.norm, 2000, str(tmp_path / f"{i}.lhe")))
               for i, n in enumerate(counts)]
    # every call of the shards is a drawn point of the worker's integrand
    assert sum(r.n_calls for r in reports) == _INTEGRANDS[spec].n_points - before
    assert all(r.n_calls == r.n_weighted for r in reports)
    weights = np.concatenate([[e.xwgtup for e in read_lhe(r.path)[1]] for r in reports])
    assert len(weights) == sum(counts)
    u = unweighter_from_card(card)
    merged = merge_shard_reports(reports, u, w_max, gen.norm)
    # the written weights are sigma times the tallied ones, to the last digit (17 written)
    assert merged.ess == pytest.approx(effective_sample_size(weights), rel=1e-12)
    assert merged.max_weight_ratio == pytest.approx(weights.max() / (sigma * gen.norm),
                                                    rel=1e-14)
    reference = np.concatenate([r.reference for r in reports if r.reference is not None])
    one = u.report(reference, w_max, weights / sigma, nominal=gen.norm)
    assert (merged.share_above, merged.eps_quantile) == (one.share_above, one.eps_quantile)
    # a shard's own report is its part of the sample alone
    first = reports[0]
    assert first.written is not None and first.reference is not None
    assert first.report == u.report_tally(first.reference, w_max, first.written,
                                          nominal=gen.norm).as_dict()


def _truncating_generator(card: RunCard, checkpoint: Path
                          ) -> tuple[RunCard, float, EventGenerator]:
    """The card with the truncation-defined w_max and truncated overweights, the
    checkpoint's cross section and a generator of its integrator on that card."""
    card = dataclasses.replace(card, unweighting=dataclasses.replace(
        card.unweighting, max_weight="truncation", overweight="truncate"))
    mc = Integrator.load(checkpoint, TorchChannels(Integrand("ee_mumu")))
    sigma = cross_section(mc, card).value
    return card, sigma, EventGenerator(mc, sigma, seed=1,
                                       unweighter=unweighter_from_card(card))


def test_a_shard_lowers_a_calibrated_w_max_its_own_draws_show_too_high(
        trained: tuple[RunCard, Path], tmp_path: Path) -> None:
    """A driver's w_max ten times the one it calibrates on 1000 points: a shard told the
    calibration's size lowers it once its draws have four times as many points, and
    its events take fewer calls within the card's truncation; told none, it keeps it.
    The driver's result names the shard whose w_max fell."""
    card, checkpoint = trained
    card, sigma, gen = _truncating_generator(card, checkpoint)
    honest = gen.calibrate(1000)
    reports = {points: _run_shard(_Shard(card, str(checkpoint), 0, shard_seed(12, 0), 600,
                                         sigma, 0.0, 10 * honest, 1.0, 2000,
                                         str(tmp_path / f"{points}.lhe"), settle=True,
                                         calibration_points=points))
               for points in (0, 1000)}
    kept, lowered = reports[0], reports[1000]
    assert kept.w_max == 10 * honest
    assert lowered.w_max < 0.5 * kept.w_max and lowered.n_calls < 0.5 * kept.n_calls
    assert lowered.truncation_bias <= 2e-3
    assert len(list(read_lhe(lowered.path)[1])) == 600
    result = ShardedGeneration(tmp_path / "e.lhe", 1200, sigma, 0.0, 10 * honest, 1.0, 2000,
                               [], shards=[kept, lowered])
    assert result.lowered == [lowered.w_max] and result.raised == []


def test_a_shard_raises_a_calibrated_w_max_on_its_own_draws(trained: tuple[RunCard, Path],
                                                            tmp_path: Path) -> None:
    """A driver's w_max far too low (a tenth of the one it calibrates): a shard told that
    it was calibrated (``settle``) raises it on its own draws and keeps the card's
    truncation; one given as is stays, and its events truncate far more. The driver's
    result names the shards whose w_max rose."""
    card, checkpoint = trained
    card, sigma, gen = _truncating_generator(card, checkpoint)
    low = gen.calibrate(4000) / 10
    reports = {settle: _run_shard(_Shard(card, str(checkpoint), 0, shard_seed(11, 0), 300,
                                         sigma, 0.0, low, 1.0, 2000,
                                         str(tmp_path / f"{settle}.lhe"), settle=settle))
               for settle in (False, True)}
    given, settled = reports[False], reports[True]
    assert given.w_max == low and given.thinned == 0 and given.truncation_bias > 0.05
    assert settled.w_max > 5 * low and settled.thinned > 0
    assert settled.truncation_bias <= 2e-3
    assert len(list(read_lhe(settled.path)[1])) == 300
    result = ShardedGeneration(tmp_path / "e.lhe", 600, sigma, 0.0, low, 1.0, 2000, [],
                               shards=[given, settled])
    assert result.raised == [settled.w_max] and result.thinned == settled.thinned
