"""Accept/reject unweighting: acceptance, distributions, overweights and their bias."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from madnis_py.events import Unweighter, UnweightingResult, max_weight

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
    x, w = x_sample(200_000, seed=9)
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
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="w_max must be finite and positive"):
            Unweighter().unweight([1.0], np.random.default_rng(0), w_max=bad)
    with pytest.raises(ValueError, match="weights are all zero"):
        Unweighter().unweight([0.0, 0.0], np.random.default_rng(0))
