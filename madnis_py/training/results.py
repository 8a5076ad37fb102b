"""Results of the multi-channel integrator: the running average of iterations
(:class:`IterationAverage`, after vegas' ``RAvg``), the scatter of independent estimates
about a given value (:func:`scatter`), the estimate with its per-channel pieces
(:class:`MultiChannelResult`) and the tests that say when its error cannot be trusted
(:data:`TRUST_LIMITS`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = ["TRUST_LIMITS", "IterationAverage", "MultiChannelResult", "scatter",
           "trust_warnings"]

#: Thresholds of :attr:`MultiChannelResult.warnings`: chi2/dof of >= 3 iterations, the
#: largest event weight's share of the sum, and the relative uncertainty of the
#: variance estimate (from the weights' 4th moment).
TRUST_LIMITS = {"chi2_dof": 5.0, "max_weight_share": 0.1, "variance_rel_error": 0.3}


@dataclass(frozen=True)
class MultiChannelResult:
    """sigma with its error and the per-channel pieces.

    Attributes
    ----------
    value, error
        sum_i I_i and sqrt(sum_i sigma_i^2 / n_i).
    channel_values, channel_errors, channel_points
        I_i, its error, and n_i per channel.
    rel_std
        Relative standard deviation of a weight at the optimal (stratified) allocation,
        ``sum_i sigma_i / sigma``: the error is rel_std / sqrt(n) * sigma.
    n_calls
        Integrand calls of this estimate.
    n_invalid
        Always 0: NaN, infinite or negative integrand values raise :class:`IntegrandError`
        (kept for checkpoints and callers of older versions).
    eps_uw, eps_uw_quantile
        Unweighting efficiency <W> / max W of the sample's event weights, and with the
        maximum replaced by the 99.9 % quantile (arXiv:2001.10028).
    chi2_dof, Q
        chi^2 per degree of freedom of the iterations' estimates about ``value``
        (``iterations > 1``), and the probability of a larger chi^2 were the errors right
        (:func:`scatter`).
    warnings
        Why the error (or the value) cannot be trusted, one sentence each; empty when no
        test fired (:data:`TRUST_LIMITS`).
    """

    value: float
    error: float
    channel_values: tuple[float, ...]
    channel_errors: tuple[float, ...]
    channel_points: tuple[int, ...]
    rel_std: float
    n_calls: int
    n_invalid: int = 0
    eps_uw: float = math.nan
    eps_uw_quantile: float = math.nan
    chi2_dof: float = math.nan
    warnings: tuple[str, ...] = ()
    Q: float = math.nan

    def __str__(self) -> str:
        extra = "" if math.isnan(self.eps_uw) else (
            f", eps_uw {self.eps_uw:.3g} ({self.eps_uw_quantile:.3g} with the 99.9% quantile)")
        chi2 = "" if math.isnan(self.chi2_dof) else f", chi2/dof {self.chi2_dof:.2f}"
        text = (f"{self.value:.6g} +- {self.error:.2g} (rel. std {self.rel_std:.3g}, "
                f"{self.n_calls} calls, {len(self.channel_values)} channels{extra}{chi2})")
        return "".join([text] + [f"\nWARNING: {w}" for w in self.warnings])


def trust_warnings(events: np.ndarray, raw: Mapping[int, list[np.ndarray]], chi2: float,
                    iterations: int) -> tuple[str, ...]:
    """Why an estimate cannot be trusted (:data:`TRUST_LIMITS`), one sentence each.

    The variance of the estimated variance of channel ``i`` is (mu4_i - sigma_i^4) / n_i
    (mu4 the central 4th moment of its weights); summed over channels with the weights
    1 / n_i^2 of ``sigma^2 = sum_i sigma_i^2 / n_i`` it gives the relative uncertainty of
    the variance. It falls as 1 / sqrt(n) when the weights have a finite 4th moment and
    stays of order one when a few extreme weights carry the variance (an infinite one).
    """
    out = []
    if iterations >= 3 and chi2 > TRUST_LIMITS["chi2_dof"]:
        out.append(f"chi2/dof = {chi2:.3g} across {iterations} iterations: the iterations "
                   "disagree beyond their errors, so the error is underestimated (a badly "
                   "sampled or divergent integrand; train longer or use more points)")
    total = float(events.sum())
    share = float(events.max()) / total if total > 0 else 0.0
    if share > TRUST_LIMITS["max_weight_share"]:
        out.append(f"one point carries {share:.0%} of the integral: a few weights dominate "
                   "(a divergent integrand, or a peak the sampler misses); neither the value "
                   "nor its error can be trusted")
    variance = var_of_variance = 0.0
    for parts in raw.values():
        w = np.concatenate(parts)
        n = len(w)
        if n < 2:
            continue
        d = w - w.mean()
        m2 = float(np.mean(d ** 2))
        m4 = float(np.mean(d ** 4))
        variance += m2 / n
        var_of_variance += max(m4 - m2 ** 2, 0.0) / n ** 3
    rel = math.sqrt(var_of_variance) / variance if variance > 0 else 0.0
    if rel > TRUST_LIMITS["variance_rel_error"]:
        out.append(f"the variance estimate is itself uncertain by {rel:.0%} (from the "
                   "weights' 4th moment): the weights are heavy-tailed, the variance may be "
                   "infinite, and the error cannot be trusted")
    return tuple(out)




def _q(chi2: float, dof: int) -> float:
    """P(chi2' > chi2) for chi2' with ``dof`` degrees of freedom."""
    import gvar

    return float(gvar.gammaQ(dof / 2, chi2 / 2, rtol=1e-12))


def scatter(means: np.ndarray, variances: np.ndarray, centre: float) -> tuple[float, float]:
    """chi^2 per degree of freedom of independent estimates ``means`` (with their
    ``variances``) about ``centre``, and its Q (the probability of a larger chi^2 were
    the variances right), with ``len(means) - 1`` degrees of freedom: ``centre`` is
    estimated from them. Both nan for fewer than two estimates."""
    means = np.asarray(means, dtype=np.float64)
    dof = len(means) - 1
    if dof < 1:
        return math.nan, math.nan
    variances = np.maximum(np.asarray(variances, dtype=np.float64), 1e-300)
    chi2 = float(((means - centre) ** 2 / variances).sum())
    return chi2 / dof, _q(chi2, dof)


@dataclass
class IterationAverage:
    """The weighted average of independent estimates (iterations), as vegas' ``RAvg``.

    Each iteration adds its mean and variance (:meth:`add`); the average weights them by
    their inverse variances. ``chi2`` measures how far they scatter about it, with
    ``dof = iterations - 1``; ``Q`` is the probability of a larger chi2 if the errors
    are right (small Q: the iterations disagree beyond their errors).
    """

    means: list[float] = field(default_factory=list)
    variances: list[float] = field(default_factory=list)

    def add(self, mean: float, variance: float) -> None:
        """One more iteration."""
        self.means.append(float(mean))
        self.variances.append(float(variance))

    def _weights(self) -> np.ndarray:
        return 1 / np.maximum(np.asarray(self.variances, dtype=np.float64), 1e-300)

    @property
    def iterations(self) -> int:
        return len(self.means)

    @property
    def mean(self) -> float:
        """The average (the one estimate for a single iteration)."""
        if self.iterations == 1:
            return self.means[0]
        w = self._weights()
        return float((w * np.asarray(self.means)).sum() / w.sum())

    @property
    def sdev(self) -> float:
        """Its standard error."""
        if self.iterations == 1:
            return math.sqrt(self.variances[0])
        return float(1 / math.sqrt(self._weights().sum()))

    @property
    def dof(self) -> int:
        return self.iterations - 1

    @property
    def chi2(self) -> float:
        """Sum of the iterations' squared pulls about the average (nan for one)."""
        if self.iterations < 2:
            return math.nan
        return float((self._weights() * (np.asarray(self.means) - self.mean) ** 2).sum())

    @property
    def chi2_dof(self) -> float:
        return self.chi2 / self.dof if self.dof > 0 else math.nan

    @property
    def Q(self) -> float:
        """P(chi2' > chi2) for chi2 with ``dof`` degrees of freedom (nan for one)."""
        if self.dof < 1:
            return math.nan
        return _q(self.chi2, self.dof)

    def __str__(self) -> str:
        text = f"{self.mean:.6g} +- {self.sdev:.2g}"
        if self.dof > 0:
            text += f" (chi2/dof {self.chi2_dof:.2f}, Q {self.Q:.2g})"
        return text
