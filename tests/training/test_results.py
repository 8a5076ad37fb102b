"""The running average of iterations (IterationAverage, vegas' RAvg) against its formulas
and the chi2 distribution, and the multi-channel result's Q."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from madnis_py.testfunctions import RidgeAndPeak
from madnis_py.training import Integrator, IterationAverage


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
