"""Always-valid inference: the normal-mixture sequential probability ratio test (mSPRT).

Johari, Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous Monitoring of A/B
Tests" (Operations Research, 2022). With the effect estimate ``theta_hat`` approximately
normal with variance ``V`` and a normal mixing distribution ``N(theta_0, tau^2)`` over the
alternative, the mixture likelihood ratio has the closed form::

    Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 (theta_hat - theta_0)^2 / (2 V (V + tau^2)))

It is a non-negative martingale under the null, so by Ville's inequality
``P(Lambda >= 1/alpha at any look) <= alpha``: ``p = min(1, 1/Lambda)`` may be checked after
every batch without inflating false positives, and ``{theta_0 : Lambda(theta_0) < 1/alpha}``
is a confidence sequence (an interval that covers the effect at all looks at once). The
variances are plug-in estimates, so the guarantee is asymptotic (as in gbstats and
Optimizely's Stats Engine); the test suite checks it by simulation from 50 units per arm.

The one-sided test mixes over a half-normal on the alternative side only, which is again a
martingale; integrating gives ``Lambda_+ = 2 * Lambda * Phi(z * sqrt(k / (1 + k)))`` with
``z = (theta_hat - theta_0) / sqrt(V)`` and ``k = tau^2 / V``.

Choosing tau^2. The mixture only affects power, never validity. Like GrowthBook's gbstats
(``sequential_tuning_parameter``) we default to the tau^2 that makes the confidence sequence
tightest at a planned total sample size ``N*`` (Howard et al. 2021):
``tau^2 = rho^2 * V * N`` with ``rho^2 = (-2 ln alpha + ln(1 - 2 ln alpha)) / N*``, where
``V * N`` is the per-unit variance of the estimate (constant as the experiment grows, so
tau^2 is effectively fixed). Default ``N* = 5000``. A fixed absolute tau^2 (e.g. the square
of the smallest effect worth detecting) can be given instead.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import optimize, special

from synapsenet.services.abtesting.statistics._distributions import finite_or_none
from synapsenet.services.abtesting.statistics._effects import (
    Problem,
    difference,
    relative_difference,
)
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    MetricKind,
    ResultCode,
    SequentialResult,
)
from synapsenet.services.abtesting.statistics.sufficient import SampleStats

DEFAULT_TUNING_N = 5000
"""Total sample size at which the default confidence sequence is tightest (gbstats' default)."""

_LOG_2 = math.log(2.0)
_MIN_K = 1e-12
_MAX_K = 1e12


def tuning_rho_squared(alpha: float, tuning_n: float) -> float:
    """The standardised mixture variance that makes the CS tightest at ``tuning_n`` units.

    Args:
        alpha: Significance level.
        tuning_n: Total sample size (both arms) to optimise for.

    Returns:
        ``rho^2``; the mixture variance is ``rho^2 * V * N`` for an estimate of variance
        ``V`` from ``N`` units.
    """
    log_alpha = math.log(alpha)
    return (-2.0 * log_alpha + math.log(1.0 - 2.0 * log_alpha)) / tuning_n


def log_likelihood_ratio(
    z: ArrayLike, k: ArrayLike, alternative: Alternative = Alternative.TWO_SIDED
) -> NDArray[np.float64]:
    """Log of the mixture likelihood ratio, vectorised over standardised inputs.

    Args:
        z: Standardised distance from the null, ``(theta_hat - theta_0) / sqrt(V)``.
        k: Mixture variance relative to the estimate's variance, ``tau^2 / V`` (> 0).
        alternative: Two-sided (normal mixture) or one-sided (half-normal mixture).

    Returns:
        ``log Lambda`` with the broadcast shape of ``z`` and ``k``.
    """
    zs = np.asarray(z, dtype=np.float64)
    ks = np.asarray(k, dtype=np.float64)
    shrink = ks / (1.0 + ks)
    log_lr: NDArray[np.float64] = 0.5 * (zs * zs * shrink - np.log1p(ks))
    if alternative is Alternative.TWO_SIDED:
        return log_lr
    signed = zs if alternative is Alternative.GREATER else -zs
    return log_lr + _LOG_2 + special.log_ndtr(signed * np.sqrt(shrink))


def always_valid_p_value(
    z: ArrayLike, k: ArrayLike, alternative: Alternative = Alternative.TWO_SIDED
) -> NDArray[np.float64]:
    """Always-valid p-value ``min(1, 1 / Lambda)``, vectorised (for simulations and batches).

    Rejecting the first time this drops below alpha keeps the type I error at most alpha
    however often it is checked; the running minimum over looks is also valid.

    Args:
        z: Standardised distance from the null, ``(theta_hat - theta_0) / sqrt(V)``.
        k: Mixture variance relative to the estimate's variance, ``tau^2 / V`` (> 0).
        alternative: Two-sided or one-sided.

    Returns:
        p-values in [0, 1].
    """
    # Clip before exponentiating: a huge negative log-ratio only means p = 1.
    return np.exp(np.minimum(-log_likelihood_ratio(z, k, alternative), 0.0))


def _two_sided_half_width(k: float, alpha: float) -> float:
    """Half-width of the two-sided confidence sequence, in standard errors."""
    return math.sqrt(2.0 * (1.0 + k) / k * (math.log(1.0 / alpha) + 0.5 * math.log1p(k)))


def _one_sided_reach(k: float, alpha: float) -> float:
    """Distance (in standard errors) from the estimate to the one-sided confidence bound."""
    target = math.log(1.0 / alpha)
    shrink = k / (1.0 + k)
    root_shrink = math.sqrt(shrink)
    offset = _LOG_2 - 0.5 * math.log1p(k) - target

    # Scalar form of log_likelihood_ratio(u, k, GREATER) - target: the root finder calls
    # it dozens of times and numpy's per-call overhead would dominate.
    def excess(u: float) -> float:
        return 0.5 * u * u * shrink + float(special.log_ndtr(u * root_shrink)) + offset

    # excess(0) = -log1p(k)/2 < 0, and at the two-sided half-width excess = log(2 Phi(.)) > 0.
    upper = _two_sided_half_width(k, alpha)
    return float(optimize.brentq(excess, 0.0, upper, xtol=1e-12, rtol=1e-12))


def confidence_sequence(
    estimate: float,
    standard_error: float,
    k: float,
    *,
    alpha: float,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> tuple[float | None, float | None]:
    """The confidence sequence at this look: effects not rejected by the mSPRT.

    Args:
        estimate: The current effect estimate.
        standard_error: Its standard error (``sqrt(V)``).
        k: Mixture variance relative to the estimate's variance, ``tau^2 / V``.
        alpha: One minus the time-uniform coverage.
        alternative: Two-sided gives an interval; ``GREATER`` a lower bound only, ``LESS``
            an upper bound only.

    Returns:
        ``(lower, upper)``; ``None`` marks an unbounded side.
    """
    if alternative is Alternative.TWO_SIDED:
        reach = _two_sided_half_width(k, alpha) * standard_error
        return finite_or_none(estimate - reach), finite_or_none(estimate + reach)
    reach = _one_sided_reach(k, alpha) * standard_error
    if alternative is Alternative.GREATER:
        return finite_or_none(estimate - reach), None
    return None, finite_or_none(estimate + reach)


def sequential_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    alternative: Alternative = Alternative.TWO_SIDED,
    null_value: float = 0.0,
    relative: bool = False,
    mixture_variance: float | None = None,
    tuning_n: float = DEFAULT_TUNING_N,
    kind: MetricKind = MetricKind.CONTINUOUS,
) -> SequentialResult:
    """Run the mSPRT on the difference (or relative lift) of means, with its CS.

    Proportions use the same normal approximation, with Bernoulli variances.

    Args:
        control: Outcomes of the control arm so far.
        treatment: Outcomes of the treatment arm so far.
        alpha: Significance level; the sequence has coverage ``1 - alpha`` at all looks.
        alternative: Alternative hypothesis about the effect relative to ``null_value``.
        null_value: The effect under the null (e.g. minus a margin for guardrails).
        relative: Test the relative lift ``(treatment - control) / |control|`` instead.
        mixture_variance: Fixed tau^2 in squared metric units (divided by the squared
            control mean for the relative lift); ``None`` tunes it to ``tuning_n``.
        tuning_n: Total sample size at which the default sequence is tightest.
        kind: The metric's kind.

    Returns:
        The always-valid p-value and confidence sequence, or a code.
    """
    confidence = 1.0 - alpha
    estimator = relative_difference if relative else difference
    effect = estimator(control, treatment, binary=kind is MetricKind.BINARY)
    if isinstance(effect, Problem):
        return SequentialResult(effect.code, effect.reason, alternative, null_value, confidence)
    if mixture_variance is None:
        k = tuning_rho_squared(alpha, tuning_n) * (control.n + treatment.n)
    else:
        scale = control.mean**2 if relative else 1.0
        k = mixture_variance / scale / effect.variance
    # An extreme ratio only happens with absurd inputs; clamping keeps the log terms finite.
    k = min(max(k, _MIN_K), _MAX_K)
    z = (effect.estimate - null_value) / effect.standard_error
    p = float(always_valid_p_value(z, k, alternative))
    lower, upper = confidence_sequence(
        effect.estimate, effect.standard_error, k, alpha=alpha, alternative=alternative
    )
    return SequentialResult(
        ResultCode.OK,
        "ok",
        alternative,
        null_value,
        confidence,
        estimate=effect.estimate,
        standard_error=effect.standard_error,
        mixture_variance=finite_or_none(k * effect.variance),
        p_value=p,
        ci_lower=lower,
        ci_upper=upper,
    )
