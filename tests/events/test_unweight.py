"""Accept/reject unweighting: acceptance, distributions, overweights and their bias, the
truncation-defined maximum weight and the weight report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import optimize, stats

from madnis_py.events import Unweighter, UnweightingResult, check_lhe, max_weight
from madnis_py.events.unweight import (
    WeightReport,
    effective_sample_size,
    raised_truncation_max_weight,
    share_above,
    truncation_max_weight,
)

BINS = np.linspace(0.0, 1.0, 21)


def chi2_pvalue(observed: np.ndarray, expected: np.ndarray, variance: np.ndarray) -> float:
    """p-value of sum (observed - expected)^2 / variance with one dof per bin."""
    chi2 = float(np.sum((observed - expected) ** 2 / variance))
    return float(stats.chi2.sf(chi2, observed.size))


def x_sample(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(0, 1) weighted by w = 3 x^2: the weighted distribution is 3 x^2 on [0, 1]."""
    x = np.random.default_rng(seed).random(n)
    return x, 3.0 * x ** 2


def test_acceptance_count_matches_efficiency() -> None:
    w = np.random.default_rng(1).exponential(size=200_000)
    result = Unweighter(method="exact").unweight(w, np.random.default_rng(2))
    p = w / result.max_weight
    sigma = np.sqrt(np.sum(p * (1 - p)))
    assert result.efficiency == pytest.approx(w.mean() / w.max())
    assert result.acceptance == pytest.approx(result.efficiency)
    assert abs(result.n_accepted - w.size * result.efficiency) < 4 * sigma
    assert result.n_overweight == 0 and result.bias == 0.0
    np.testing.assert_array_equal(result.weights, result.max_weight)


def test_acceptance_with_overweights() -> None:
    w = np.random.default_rng(1).exponential(size=200_000)
    result = Unweighter(method="quantile", quantile=0.99).unweight(w, np.random.default_rng(3))
    p = np.minimum(w / result.max_weight, 1.0)
    excess = np.maximum(w - result.max_weight, 0).sum() / w.sum()
    assert result.acceptance == pytest.approx(p.mean())
    assert result.acceptance == pytest.approx(result.efficiency * (1 - excess))
    assert abs(result.n_accepted - p.sum()) < 4 * np.sqrt(np.sum(p * (1 - p)))
    # every event above w_max is accepted and counted
    assert result.n_overweight == np.count_nonzero(w > result.max_weight)
    assert result.overweight_fraction == result.n_overweight / result.n_accepted


def test_unweighted_events_follow_the_weighted_distribution() -> None:
    x, w = x_sample(400_000)
    result = Unweighter(method="exact").unweight(w, np.random.default_rng(5))
    counts = np.histogram(x[result.indices], BINS)[0]
    expected = result.n_accepted * np.diff(BINS ** 3)  # integral of 3 x^2 over each bin
    assert chi2_pvalue(counts, expected, expected) > 1e-3
    # The same test rejects a flat sample of the same size: it has the power to fail.
    flat = np.histogram(x[: result.n_accepted], BINS)[0]
    assert chi2_pvalue(flat, expected, expected) < 1e-6


def test_kept_overweights_reproduce_the_weighted_histogram() -> None:
    x, w = x_sample(200_000, seed=7)
    unweighter = Unweighter(method="quantile", quantile=0.8, overweight="keep")
    result = unweighter.unweight(w, np.random.default_rng(8))
    wmax = result.max_weight
    assert result.n_overweight > 1000  # a test of the overweights, not of unit weights
    carried = np.maximum(w, wmax)
    p = np.minimum(w / wmax, 1.0)
    # per bin, the output weights sum to the input weights on average, with the exact
    # binomial variance of the accept/reject step
    bin_of = np.digitize(x, BINS) - 1
    observed = np.bincount(bin_of[result.indices], result.weights, minlength=20)
    expected = np.bincount(bin_of, w, minlength=20)
    variance = np.bincount(bin_of, p * (1 - p) * carried ** 2, minlength=20)
    # bins where every event is overweight are accepted whole: no variance, exact sums
    random = variance > 0
    assert 0 < np.count_nonzero(~random) < 10
    np.testing.assert_allclose(observed[~random], expected[~random], rtol=1e-12)
    assert chi2_pvalue(observed[random], expected[random], variance[random]) > 1e-3
    assert abs(result.weights.sum() - w.sum()) < 4 * np.sqrt(variance.sum())
    np.testing.assert_array_equal(result.weights, carried[result.indices])
    # Truncating instead loses weight in the bins above w_max, which the check catches.
    truncated = Unweighter(method="quantile", quantile=0.8, overweight="truncate").unweight(
        w, np.random.default_rng(8))
    observed_t = np.bincount(bin_of[truncated.indices], truncated.weights, minlength=20)
    assert np.all(observed_t[~random] < 0.99 * expected[~random])


def test_truncation_bias_is_the_excess_weight() -> None:
    _, w = x_sample(200_000, seed=9)
    result = Unweighter(method="quantile", quantile=0.9, overweight="truncate").unweight(
        w, np.random.default_rng(10))
    wmax = result.max_weight
    assert result.bias == pytest.approx(np.maximum(w - wmax, 0).sum() / w.sum(), rel=1e-12)
    assert result.bias > 0.005
    np.testing.assert_array_equal(result.weights, wmax)
    # the truncated sample estimates sum(min(w, w_max)) = (1 - bias) sum(w)
    p = np.minimum(w / wmax, 1.0)
    sigma = wmax * np.sqrt(np.sum(p * (1 - p)))
    assert abs(result.weights.sum() - (1 - result.bias) * w.sum()) < 4 * sigma


def test_max_weight_methods() -> None:
    rng = np.random.default_rng(11)
    w = rng.pareto(1.5, size=100_000)  # heavy tail: the maximum is an outlier
    exact = max_weight(w, method="exact")
    assert exact == w.max()
    assert max_weight(w, method="quantile", quantile=1.0) == exact
    q = max_weight(w, method="quantile", quantile=0.999)
    assert q == pytest.approx(np.quantile(w, 0.999))
    replicas = max_weight(w, method="replicas", replicas=10, rng=np.random.default_rng(12))
    assert replicas < exact
    assert replicas > q  # the median of 10 maxima of 10^4 events lies far in the tail
    # the quantile includes zero weights (events cut away)
    padded = np.concatenate([w, np.zeros(w.size)])
    assert max_weight(padded, method="quantile", quantile=0.999) == pytest.approx(
        np.quantile(padded, 0.999))


def test_seeded_rng_reproduces_the_result() -> None:
    w = np.random.default_rng(13).exponential(size=10_000)
    unweighter = Unweighter(method="replicas", replicas=8)
    a = unweighter.unweight(w, np.random.default_rng(14))
    b = unweighter.unweight(w, np.random.default_rng(14))
    c = unweighter.unweight(w, np.random.default_rng(15))
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.weights, b.weights)
    assert a.max_weight == b.max_weight
    assert not np.array_equal(a.indices, c.indices)


def test_given_max_weight() -> None:
    w = np.array([0.0, 0.5, 1.0, 4.0])
    result = Unweighter(overweight="keep").unweight(w, np.random.default_rng(0), w_max=2.0)
    assert result.max_weight == 2.0
    assert 3 in result.indices and 0 not in result.indices
    assert result.weights[list(result.indices).index(3)] == 4.0
    assert result.efficiency == pytest.approx(w.mean() / 2.0)
    # a shard without events, or without events passing cuts, is fine with w_max given
    empty = Unweighter().unweight(np.array([]), np.random.default_rng(0), w_max=1.0)
    assert isinstance(empty, UnweightingResult) and empty.n_accepted == 0
    zeros = Unweighter().unweight(np.zeros(5), np.random.default_rng(0), w_max=1.0)
    assert zeros.n_accepted == 0 and zeros.bias == 0.0
    assert "accepted" in str(result)


@pytest.mark.parametrize(("weights", "kwargs", "message"), [
    ([1.0, 2.0], {"method": "max"}, "method must be one of"),
    ([1.0, 2.0], {"quantile": 0.0}, r"quantile must be in \(0, 1\]"),
    ([1.0, 2.0], {"quantile": 1.5}, r"quantile must be in \(0, 1\]"),
    ([1.0, 2.0], {"replicas": 0}, "replicas must be a positive integer"),
    ([1.0, 2.0], {"method": "replicas", "replicas": 3}, "replicas=3 is more than the 2"),
    ([], {}, "weights is empty"),
    ([0.0, 0.0], {}, "weights are all zero"),
    ([1.0, -2.0], {}, r"negative \(first: weights\[1\] = -2.0\)"),
    ([1.0, np.nan], {}, r"weights must be finite.*weights\[1\]"),
    ([np.inf, 1.0], {}, r"weights must be finite.*weights\[0\]"),
    ([[1.0, 2.0]], {}, r"1-d array.*shape \(1, 2\)"),
    ([1.0, 2.0], {"truncation": 1.0}, r"truncation must be in \[0, 1\), got 1.0"),
    ([1.0, 2.0], {"truncation": -1e-3}, r"truncation must be in \[0, 1\)"),
])
def test_max_weight_errors(weights: list[float], kwargs: dict[str, object],
                           message: str) -> None:
    with pytest.raises(ValueError, match=message):
        max_weight(weights, **kwargs)  # type: ignore[arg-type]


def test_unweighter_errors() -> None:
    with pytest.raises(ValueError, match="overweight must be one of"):
        Unweighter(overweight="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="quantile must be"):
        Unweighter(quantile=2.0)
    with pytest.raises(ValueError, match="truncation must be"):
        Unweighter(truncation=np.nan)
    with pytest.raises(ValueError, match="weights are all zero"):
        truncation_max_weight([0.0, 0.0])
    with pytest.raises(ValueError, match="nominal weight must be finite and positive"):
        WeightReport.measure([1.0], 1.0, [1.0], nominal=0.0)
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="w_max must be finite and positive"):
            Unweighter().unweight([1.0], np.random.default_rng(0), w_max=bad)
    with pytest.raises(ValueError, match="weights are all zero"):
        Unweighter().unweight([0.0, 0.0], np.random.default_rng(0))


# ------------------------------------------------------------- truncation-defined w_max

@pytest.mark.parametrize(("truncation", "expected"), [
    (0.0, 4.0), (0.05, 3.5), (0.1, 3.0), (0.25, 2.25), (0.3, 2.0), (0.6, 1.0), (0.8, 0.5)])
def test_truncation_max_weight_solves_the_share_exactly(truncation: float,
                                                        expected: float) -> None:
    # weights 1, 2, 3, 4 (sum 10): the excess above t is 4 - t on [3, 4], 7 - 2 t on
    # [2, 3], 9 - 3 t on [1, 2] and 10 - 4 t on [0, 1]
    w = np.array([3.0, 1.0, 4.0, 2.0])
    assert truncation_max_weight(w, truncation) == pytest.approx(expected, rel=1e-15)
    assert share_above(w, expected) == pytest.approx(truncation, abs=1e-15)
    # events cut away (zero weights) carry no cross section: w_max does not move
    assert truncation_max_weight(np.concatenate([w, np.zeros(7)]), truncation) == \
        truncation_max_weight(w, truncation)
    assert max_weight(w, truncation=truncation) == truncation_max_weight(w, truncation)


@pytest.mark.parametrize("truncation", [0.0, 1e-3, 0.05, 0.3, 0.8])
def test_truncation_with_probabilities_is_that_of_the_repeated_points(
        truncation: float) -> None:
    """Integer probabilities k_j: the w_max of the sample with each point repeated k_j
    times (the excess sum(k max(w - t, 0)) solved in closed form alike); a zero
    probability drops the point."""
    rng = np.random.default_rng(5)
    w = rng.lognormal(0.0, 1.5, 200)
    k = rng.integers(0, 6, 200)
    got = truncation_max_weight(w, truncation, probabilities=k)
    assert got == pytest.approx(truncation_max_weight(np.repeat(w, k), truncation),
                                rel=1e-12)
    # scaled probabilities are the same draw
    assert truncation_max_weight(w, truncation, probabilities=k / 7.0) == \
        pytest.approx(got, rel=1e-12)
    assert truncation_max_weight(w, truncation, probabilities=np.ones(200)) == \
        truncation_max_weight(w, truncation)
    for bad in (np.ones(3), -k, k * np.nan):
        with pytest.raises(ValueError, match="probabilities must be"):
            truncation_max_weight(w, truncation, probabilities=bad)


def test_a_raised_w_max_needs_only_the_weights_above_the_old_one() -> None:
    """From the sample's sum and its weights above an old w_max alone, the
    truncation-defined w_max of the whole sample where it lies above the old one, else
    the old one."""
    rng = np.random.default_rng(8)
    w = rng.lognormal(0.0, 2.0, 100_000)
    full = truncation_max_weight(w, 1e-3)
    for old in (0.1 * full, 0.5 * full, 0.999 * full):
        assert raised_truncation_max_weight(w[w > old], float(w.sum()), old, 1e-3) == \
            pytest.approx(full, rel=1e-12)
    # weights below the old w_max given as well are ignored
    assert raised_truncation_max_weight(w, float(w.sum()), 0.5 * full, 1e-3) == \
        pytest.approx(full, rel=1e-12)
    assert raised_truncation_max_weight(w[w > 2 * full], float(w.sum()), 2 * full,
                                        1e-3) == 2 * full
    assert raised_truncation_max_weight([], 1.0, 3.0) == 3.0
    with pytest.raises(ValueError, match="total must be > 0"):
        raised_truncation_max_weight(w, 0.0, 1.0)


def test_truncation_of_tied_maxima_is_the_maximum() -> None:
    w = np.array([1.0, 5.0, 5.0, 5.0, 2.0])
    assert truncation_max_weight(w, 0.0) == 5.0
    assert truncation_max_weight(w, 1e-3) == pytest.approx(5.0 - 1e-3 * 18.0 / 3.0)


def _exponential_share(t: float) -> float:
    """Share of E[W] above t for W ~ Exp(1): E[(W - t)+] = e^-t, E[W] = 1."""
    return float(np.exp(-t))


def _lognormal_share(t: float) -> float:
    """Share of E[W] above t for W = exp(Z), Z ~ N(0, 1): E[(W - t)+] / E[W] =
    Phi(1 - ln t) - t e^-1/2 Phi(-ln t) (the Black-Scholes integral)."""
    return float(stats.norm.cdf(1.0 - np.log(t)) - t * np.exp(-0.5) * stats.norm.cdf(-np.log(t)))


@pytest.mark.parametrize("distribution", ["exponential", "lognormal"])
def test_share_above_truncation_max_weight_is_within_target(distribution: str) -> None:
    """On weights with a known tail integral, the w_max found on a sample leaves the target
    share of the true cross section above it, to within the sample's statistical error."""
    target = 1e-3
    rng = np.random.default_rng(21)
    n = 2_000_000
    if distribution == "exponential":
        w = rng.exponential(size=n)
        true_share, mean = _exponential_share, 1.0
    else:
        w = np.exp(rng.standard_normal(n))
        true_share, mean = _lognormal_share, float(np.exp(0.5))
    wmax = truncation_max_weight(w, target)
    # on the sample itself the share is the target, up to rounding
    assert share_above(w, wmax) == pytest.approx(target, rel=1e-9)
    # the ratio estimator's error (delta method) from the sample: z = (w - t)+ - f w
    z = np.maximum(w - wmax, 0.0) - target * w
    sigma = float(z.std() / np.sqrt(n) / w.mean())
    assert 0 < sigma < 0.15 * target  # a sample big enough for the check to mean something
    assert abs(true_share(wmax) - target) < 4 * sigma
    # and w_max is near the true one, t* with share(t*) = target; d share / dt is
    # -P(W > t) / E[W], which turns the share's error into w_max's
    t_star = optimize.brentq(lambda t: true_share(t) - target, 1e-3, 1e3, xtol=1e-14)
    assert abs(wmax - t_star) < 4 * sigma * mean / np.mean(w > t_star)
    # the quantile w_max bounds the number of overweights, not their share: for the
    # exponential P(W > t) = e^-t is the share, so both give -ln(1e-3); for the log-normal
    # the share above its 99.9 % quantile is 5.0e-3, five times the target
    q = max_weight(w, method="quantile", quantile=0.999)
    if distribution == "exponential":
        assert q == pytest.approx(wmax, rel=0.03)
    else:
        assert share_above(w, q) == pytest.approx(true_share(q), rel=0.1)
        assert true_share(q) > 4.5 * target
    # eps_uw with the truncation definition: <w> / w_max, near <W> / t*
    result = Unweighter().unweight(w, np.random.default_rng(22))
    assert result.max_weight == wmax and result.bias == pytest.approx(target, rel=1e-9)
    assert result.report.eps_truncation == pytest.approx(w.mean() / wmax, rel=1e-12)
    assert result.report.eps_truncation == pytest.approx(mean / t_star, rel=0.03)


def power_law_sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x ~ U(0, 1) weighted by w = 0.6 x^-0.4: the weighted distribution is 0.6 x^-0.4 (CDF
    x^0.6), the cross section 1, and the share above t is 0.4 (0.6 / t)^1.5, a long tail."""
    x = np.random.default_rng(seed).random(n)
    return x, 0.6 * x ** -0.4


def binned(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.bincount(np.digitize(x, BINS) - 1, values, minlength=BINS.size - 1)


def test_unit_weight_sample_follows_the_weighted_one_within_the_reported_bias() -> None:
    x, w = power_law_sample(400_000, seed=23)
    sigma = w.mean()
    result = Unweighter().unweight(w, np.random.default_rng(24))  # defaults: unit weight
    wmax = result.max_weight
    np.testing.assert_array_equal(result.weights, wmax)
    assert result.report.max_weight_ratio == 1.0
    assert result.n_overweight > 0  # the tail is long: there is something to truncate
    assert result.bias == result.report.share_above == pytest.approx(1e-3, rel=1e-9)
    assert share_above(w, wmax) == pytest.approx(0.4 * (0.6 / wmax) ** 1.5, rel=0.2)
    # the cross section the unit-weight sample estimates is low by exactly the bias ...
    p = np.minimum(w / wmax, 1.0)
    assert wmax * p.mean() == pytest.approx((1 - result.bias) * sigma, rel=1e-12)
    # ... and the sample's own estimate agrees with that within its binomial error
    noise = wmax * np.sqrt(np.sum(p * (1 - p))) / w.size
    sigma_unit = result.weights.sum() / w.size
    assert abs(sigma_unit - (1 - result.bias) * sigma) < 4 * noise
    # the histogram of the unit-weight events against the weighted one of the same sample,
    # with the accept/reject variance: the 1e-3 bias is invisible
    variance = binned(x, p * (1 - p) * wmax ** 2)
    observed = binned(x[result.indices], result.weights)
    assert chi2_pvalue(observed, binned(x, w), variance) > 1e-3
    # A truncation set to 5 % of the cross section is visible to the same test; the events
    # then follow min(w, w_max), and sigma is low by the reported 5 %.
    coarse = Unweighter(truncation=0.05).unweight(w, np.random.default_rng(24))
    p5 = np.minimum(w / coarse.max_weight, 1.0)
    variance5 = binned(x, p5 * (1 - p5) * coarse.max_weight ** 2)
    observed5 = binned(x[coarse.indices], coarse.weights)
    assert chi2_pvalue(observed5, binned(x, w), variance5) < 1e-6
    assert chi2_pvalue(observed5, binned(x, np.minimum(w, coarse.max_weight)), variance5) > 1e-3
    assert coarse.bias == pytest.approx(0.05, rel=1e-9)
    noise5 = coarse.max_weight * np.sqrt(np.sum(p5 * (1 - p5))) / w.size
    assert abs(coarse.weights.sum() / w.size - 0.95 * sigma) < 4 * noise5


# ---------------------------------------------------------------------- weight report

def test_report_of_kept_overweights() -> None:
    w = np.random.default_rng(25).exponential(size=100_000)
    unweighter = Unweighter(method="quantile", quantile=0.99, overweight="keep")
    result = unweighter.unweight(w, np.random.default_rng(26))
    r = result.report
    out, wmax = result.weights, result.max_weight
    assert result.n_overweight > 100
    assert r.ess == pytest.approx(out.sum() ** 2 / (out ** 2).sum(), rel=1e-12)
    assert r.ess < 0.998 * result.n_accepted  # kept overweights cost effective events
    assert r.max_weight_ratio == pytest.approx(w.max() / wmax, rel=1e-15)
    assert r.share_above == pytest.approx(np.maximum(w - wmax, 0).sum() / w.sum(), rel=1e-12)
    assert result.bias == 0.0 and r.share_above > 1e-3
    assert r.eps_raw == pytest.approx(w.mean() / w.max(), rel=1e-15)
    assert r.eps_quantile == pytest.approx(w.mean() / np.quantile(w, 0.99), rel=1e-15)
    assert r.eps_truncation == pytest.approx(w.mean() / truncation_max_weight(w, 1e-3),
                                             rel=1e-15)
    assert r.eps_raw < r.eps_truncation < r.eps_quantile
    assert (r.truncation, r.quantile) == (1e-3, 0.99)
    assert set(r.as_dict()) == {"ess", "max_weight_ratio", "share_above", "eps_truncation",
                                "eps_raw", "eps_quantile", "truncation", "quantile"}
    assert "ESS" in str(result)


def test_report_of_unit_weights_and_of_nothing() -> None:
    w = np.random.default_rng(27).exponential(size=50_000)
    result = Unweighter().unweight(w, np.random.default_rng(28))
    assert result.report.ess == pytest.approx(result.n_accepted, rel=1e-12)
    assert result.report.max_weight_ratio == 1.0
    assert effective_sample_size([]) == 0.0
    empty = WeightReport.measure([], 1.0, [])
    assert (empty.ess, empty.max_weight_ratio, empty.share_above) == (0.0, 0.0, 0.0)
    assert np.isnan(empty.eps_raw) and np.isnan(empty.eps_truncation)
    # written weights in another unit: the nominal weight says which
    scaled = WeightReport.measure(w, 2.0, [5.0, 5.0, 15.0], nominal=5.0)
    assert scaled.max_weight_ratio == 3.0
    assert scaled.ess == pytest.approx(25.0 ** 2 / 275.0)


RUN_CARD = """
[run]
process = "drell_yan"
seed = 5
nevents = 1500

[training]
steps = 0
vegas = false

[integration]
points = 20000
iterations = 2

[unweighting]
{unweighting}

[output]
lhe = "events.lhe"
plots = false
"""


@pytest.mark.parametrize("unweighting", [
    "",  # the defaults: truncation-defined w_max, unit weight
    'max_weight = "quantile"\nquantile = 0.99\noverweight = "keep"'])
def test_reported_ess_is_that_of_the_written_lhe_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], unweighting: str) -> None:
    """A small real run (untrained flows): the summary's weight report describes the
    events in the LHE file it wrote."""
    torch = pytest.importorskip("torch")
    from madnis_py.cli import main

    torch.set_num_threads(1)
    card = tmp_path / "card.toml"
    card.write_text(RUN_CARD.format(unweighting=unweighting))
    assert main(["run", str(card), "--output", str(tmp_path / "out"), "--json",
                 "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    report = summary["weights"]
    xwgtup = check_lhe(tmp_path / "out" / "events.lhe").weights
    assert xwgtup.size == 1500
    assert report["ess"] == pytest.approx(xwgtup.sum() ** 2 / (xwgtup ** 2).sum(), rel=1e-8)
    assert report["max_weight_ratio"] == pytest.approx(xwgtup.max() / xwgtup.min(), rel=1e-8)
    if not unweighting:
        assert np.all(xwgtup == xwgtup[0]) and report["ess"] == pytest.approx(1500)
        # the events' own share above w_max is the truncation; the report's reference is
        # the calibration sample as the generation draws it (its channels shared by their
        # maxima), whose share is at most that (w_max may rise to take the integration's
        # points, drawn with the integration's allocation)
        assert summary["truncation_bias"] == pytest.approx(1e-3, rel=1e-6)
        assert 0 <= report["share_above"] <= 1e-3 * (1 + 1e-9)
    else:
        assert report["ess"] < 1499 and report["max_weight_ratio"] > 1.2  # kept overweights
        assert summary["truncation_bias"] == 0.0 and report["share_above"] > 1e-3
