"""CUPED: variance reduction with a pre-period covariate (Deng, Xu, Kohavi, Walker 2013).

Each unit's outcome ``y`` is replaced by ``y - theta * (x - mean_x)``, where ``x`` is the
same unit's pre-period value of the metric (or any covariate the treatment cannot affect).
The adjustment has mean zero in both arms, so the effect estimate stays unbiased, while the
variance of the estimate shrinks by about ``rho^2``, the squared correlation of ``x`` and
``y``. The result is a pair of ordinary :class:`SampleStats`, so every test in the package
runs on adjusted data unchanged.
"""

from __future__ import annotations

import math

from synapsenet.services.abtesting.statistics._effects import check_arms
from synapsenet.services.abtesting.statistics.results import CupedAdjustment, ResultCode
from synapsenet.services.abtesting.statistics.sufficient import CovariateStats, SampleStats

# A covariate whose centred sum of squares is this small relative to its raw sum of squares
# is constant up to rounding; a theta fitted to that noise would be meaningless.
_CONSTANT_COVARIATE = 1e-10


def _centred_squares(total: float, total_squares: float, n: int) -> float:
    return max(total_squares - total * total / n, 0.0)


def _adjust(arm: CovariateStats, theta: float, mean_x: float) -> SampleStats:
    """Sufficient statistics of ``y - theta * (x - mean_x)`` over one arm.

    Built from within-arm centred moments, which avoids the cancellation of expanding the
    square around zero and keeps ``sum_squares >= sum**2 / n`` exactly.
    """
    centred = max(
        _centred_squares(arm.sum_y, arm.sum_y2, arm.n)
        - 2.0 * theta * arm.centred_cross_product
        + theta * theta * _centred_squares(arm.sum_x, arm.sum_x2, arm.n),
        0.0,
    )
    total = arm.sum_y - theta * (arm.sum_x - arm.n * mean_x)
    return SampleStats(arm.n, total, centred + total * total / arm.n)


def _estimate_variance(control: SampleStats, treatment: SampleStats) -> float:
    return treatment.variance / treatment.n + control.variance / control.n


def cuped_adjust(control: CovariateStats, treatment: CovariateStats) -> CupedAdjustment:
    """Adjust both arms' outcomes with their pre-period covariate.

    ``theta`` is the slope of ``y`` on ``x`` pooled *within* arms (the regression with an arm
    indicator), so a treatment effect on ``y`` does not leak into it; ``mean_x`` is pooled
    over both arms, so both arms subtract the same constant on average.

    Args:
        control: Outcomes and covariates of the control arm.
        treatment: Outcomes and covariates of the treatment arm.

    Returns:
        The adjusted statistics with ``theta``, the pooled correlation and the variance
        reduction achieved; unadjusted statistics and a code when the data are degenerate.
    """
    raw_c, raw_t = control.outcome, treatment.outcome
    problem = check_arms(raw_c, raw_t)
    if problem is not None:
        return CupedAdjustment(problem.code, problem.reason, raw_c, raw_t)
    arms = (control, treatment)
    sxx = sum(_centred_squares(a.sum_x, a.sum_x2, a.n) for a in arms)
    syy = sum(_centred_squares(a.sum_y, a.sum_y2, a.n) for a in arms)
    sxy = sum(a.centred_cross_product for a in arms)
    if sxx <= _CONSTANT_COVARIATE * max(control.sum_x2 + treatment.sum_x2, 1.0):
        return CupedAdjustment(
            ResultCode.ZERO_VARIANCE,
            "The covariate is constant within arms, so it cannot explain any variance; "
            "the outcomes are left unadjusted.",
            raw_c,
            raw_t,
        )
    theta = sxy / sxx
    correlation = max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy))) if syy > 0.0 else None
    mean_x = (control.sum_x + treatment.sum_x) / (control.n + treatment.n)
    adjusted_c = _adjust(control, theta, mean_x)
    adjusted_t = _adjust(treatment, theta, mean_x)
    before = _estimate_variance(raw_c, raw_t)
    reduction = 1.0 - _estimate_variance(adjusted_c, adjusted_t) / before if before > 0 else None
    return CupedAdjustment(
        ResultCode.OK,
        "ok",
        adjusted_c,
        adjusted_t,
        theta=theta,
        correlation=correlation,
        variance_reduction=reduction,
    )
