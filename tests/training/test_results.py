"""The running average of iterations (IterationAverage, vegas' RAvg) and the scatter of
estimates about a value against their formulas and the chi2 distribution; the integration
pooling its batches (unbiased on heavy-tailed weights, where averaging them by their
errors is not) and the multi-channel result's Q."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator, IterationAverage
from madnis_py.training.results import scatter


def test_weighted_average_chi2_and_q() -> None:
    means = [1.0, 1.5, 0.9, 1.2]
    variances = [0.04, 0.09, 0.01, 0.16]
    avg = IterationAverage()
    for m, v in zip(means, variances, strict=True):
        avg.add(m, v)
    w = 1 / np.array(variances)
    mean = float((w * means).sum() / w.sum())
    chi2 = float((w * (np.array(means) - mean) ** 2).sum())
    assert avg.mean == pytest.approx(mean, rel=1e-15)
    assert avg.sdev == pytest.approx(1 / math.sqrt(w.sum()), rel=1e-15)
    assert avg.chi2 == pytest.approx(chi2, rel=1e-14) and avg.dof == 3
    assert pytest.approx(float(stats.chi2.sf(chi2, 3)), rel=1e-9) == avg.Q
    assert "Q" in str(avg)
    one = IterationAverage()
    one.add(2.0, 0.25)
    assert (one.mean, one.sdev) == (2.0, 0.5)
    assert math.isnan(one.chi2) and math.isnan(one.Q) and math.isnan(one.chi2_dof)


def test_integrate_reports_q_of_its_iterations() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    mc = Integrator(RidgeAndPeak(), feature_dims=2, seed=2)
    r = mc.integrate(20_000, iterations=4)
    assert pytest.approx(float(stats.chi2.sf(3 * r.chi2_dof, 3)), rel=1e-9) == r.Q
    assert math.isnan(mc.integrate(5000).Q)


def test_scatter_about_a_given_centre() -> None:
    means, variances = np.array([1.0, 1.5, 0.9]), np.array([0.04, 0.09, 0.01])
    chi2 = float(((means - 1.1) ** 2 / variances).sum())
    chi2_dof, q = scatter(means, variances, 1.1)
    assert chi2_dof == pytest.approx(chi2 / 2, rel=1e-14)
    assert q == pytest.approx(float(stats.chi2.sf(chi2, 2)), rel=1e-9)
    assert all(math.isnan(v) for v in scatter(np.array([1.0]), np.array([0.1]), 1.0))


class _Spike:
    """One channel, f(x) = (1 - a) x^-a on [0, 1] (integral 1): finite variance, heavy
    tail (no finite 4th moment for a >= 1/4)."""

    n_channels = 1
    feature_dims = 1

    def __init__(self, a: float) -> None:
        self.a = a

    def dims(self, channel: int = 0) -> int:
        return 1

    def __call__(self, x: torch.Tensor, channel: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                None]:
        return (1 - self.a) * x[:, 0] ** (-self.a), x, None


def test_integrate_pools_its_batches_and_is_unbiased_on_heavy_tails() -> None:
    """200 integrations of 10 batches of 20 points of x^-0.3: their mean is the exact 1
    within 4 of its errors. The batches averaged by their estimated errors (vegas' rule,
    computed here from the same weights) come out about 6 % low, beyond 10 errors: a batch
    that misses the large weights has a small estimated error too, and weighs more."""
    torch.set_num_threads(1)
    mc = Integrator(_Spike(0.3), seed=3)
    batches, m = 10, 20
    pooled, averaged = [], []
    for _ in range(200):
        r = mc.integrate(batches * m, iterations=batches)
        assert mc.last_weights is not None
        w = mc.last_weights.reshape(batches, m)  # one channel: the weights are its own
        assert r.value == pytest.approx(float(w.mean()), rel=1e-12)
        assert r.error == pytest.approx(float(w.std(ddof=1)) / math.sqrt(w.size), rel=1e-12)
        # chi2 of the batches about the pooled value
        expected = scatter(w.mean(axis=1), w.var(axis=1, ddof=1) / m, r.value)
        assert (r.chi2_dof, r.Q) == pytest.approx(expected, rel=1e-12)
        avg = IterationAverage()
        for b in w:
            avg.add(float(b.mean()), float(b.var(ddof=1)) / m)
        pooled.append(r.value)
        averaged.append(avg.mean)
    p, a = np.array(pooled), np.array(averaged)
    p_err, a_err = p.std() / math.sqrt(len(p)), a.std() / math.sqrt(len(a))
    assert abs(p.mean() - 1) < 4 * p_err, (p.mean(), p_err)
    assert a.mean() < 1 - 10 * a_err, (a.mean(), a_err)
