"""Fixed-horizon tests: two-proportion z-test, Welch's t-test, lifts with CIs, margin tests.

"Fixed horizon" means the p-values and intervals are valid when read once, at a sample
size fixed in advance; for repeated looks use :mod:`.sequential`. All functions take
sufficient statistics and return results with a :class:`ResultCode`; they do not raise on
degenerate data. The effect is always ``treatment - control``.
"""

from __future__ import annotations

import math
from dataclasses import replace

from synapsenet.services.abtesting.statistics._distributions import (
    critical_value,
    finite_or_none,
    p_value,
)
from synapsenet.services.abtesting.statistics._effects import (
    Effect,
    Problem,
    check_arms,
    difference,
    relative_difference,
)
from synapsenet.services.abtesting.statistics.results import (
    Alternative,
    Direction,
    IntervalEstimate,
    MarginHypothesis,
    MarginTestResult,
    MetricKind,
    ResultCode,
    SignificanceResult,
)
from synapsenet.services.abtesting.statistics.sufficient import SampleStats

Z_TEST = "two-proportion z-test"
WELCH_TEST = "Welch t-test"


def two_proportion_z_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> SignificanceResult:
    """Two-proportion z-test with the pooled standard error.

    Same statistic as statsmodels ``proportions_ztest([treatment, control], ...)``: under
    the null both arms share one proportion, so the standard error uses the pooled one.

    Args:
        control: Binary outcomes of the control arm (``sum`` = successes).
        treatment: Binary outcomes of the treatment arm.
        alternative: Alternative hypothesis about ``p_treatment - p_control``.

    Returns:
        The z statistic and p-value, or a code when the arms are degenerate.
    """
    problem = check_arms(control, treatment)
    if problem is not None:
        return SignificanceResult(problem.code, problem.reason, Z_TEST, alternative)
    pooled = (control.sum + treatment.sum) / (control.n + treatment.n)
    variance = pooled * (1.0 - pooled) * (1.0 / control.n + 1.0 / treatment.n)
    if variance <= 0.0:
        return SignificanceResult(
            ResultCode.ZERO_VARIANCE,
            "Every unit in both arms has the same outcome (pooled proportion is 0 or 1).",
            Z_TEST,
            alternative,
        )
    statistic = (treatment.mean - control.mean) / math.sqrt(variance)
    return SignificanceResult(
        ResultCode.OK,
        "ok",
        Z_TEST,
        alternative,
        statistic=statistic,
        p_value=p_value(statistic, alternative),
    )


def welch_t_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alternative: Alternative = Alternative.TWO_SIDED,
) -> SignificanceResult:
    """Welch's unequal-variance t-test with Welch-Satterthwaite degrees of freedom.

    Same statistic, df and p-value as ``scipy.stats.ttest_ind(treatment, control,
    equal_var=False)``.

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        alternative: Alternative hypothesis about ``mean_treatment - mean_control``.

    Returns:
        The t statistic, df and p-value, or a code when the arms are degenerate.
    """
    effect = difference(control, treatment)
    if isinstance(effect, Problem):
        return SignificanceResult(effect.code, effect.reason, WELCH_TEST, alternative)
    statistic = effect.estimate / effect.standard_error
    return SignificanceResult(
        ResultCode.OK,
        "ok",
        WELCH_TEST,
        alternative,
        statistic=statistic,
        p_value=p_value(statistic, alternative, effect.df),
        df=effect.df,
    )


def _interval(effect: Effect | Problem, alpha: float, df: float | None) -> IntervalEstimate:
    if isinstance(effect, Problem):
        return IntervalEstimate(effect.code, effect.reason, 1.0 - alpha)
    half_width = critical_value(alpha / 2.0, df) * effect.standard_error
    return IntervalEstimate(
        ResultCode.OK,
        "ok",
        1.0 - alpha,
        estimate=effect.estimate,
        standard_error=effect.standard_error,
        ci_lower=finite_or_none(effect.estimate - half_width),
        ci_upper=finite_or_none(effect.estimate + half_width),
    )


def absolute_lift(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    kind: MetricKind = MetricKind.CONTINUOUS,
) -> IntervalEstimate:
    """Difference of means ``treatment - control`` with a two-sided CI.

    Continuous metrics use the Welch t quantile, so the CI excludes 0 exactly when Welch's
    test rejects (the interval of scipy's ``ttest_ind(...).confidence_interval()``); binary
    metrics use the Bernoulli variances and the normal quantile (the Wald interval).

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        alpha: One minus the confidence level.
        kind: The metric's kind.

    Returns:
        The estimate with its unpooled standard error and CI, or a code.
    """
    binary = kind is MetricKind.BINARY
    effect = difference(control, treatment, binary=binary)
    df = None if binary or isinstance(effect, Problem) else effect.df
    return _interval(effect, alpha, df)


def relative_lift(
    control: SampleStats,
    treatment: SampleStats,
    *,
    alpha: float = 0.05,
    kind: MetricKind = MetricKind.CONTINUOUS,
) -> IntervalEstimate:
    """Relative lift ``(treatment - control) / |control|`` with a delta-method normal CI.

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        alpha: One minus the confidence level.
        kind: The metric's kind (binary metrics use Bernoulli variances).

    Returns:
        The estimate with its standard error and CI, or a code (``ZERO_BASELINE`` when the
        control mean is 0).
    """
    binary = kind is MetricKind.BINARY
    return _interval(relative_difference(control, treatment, binary=binary), alpha, None)


def margin_null(
    hypothesis: MarginHypothesis, direction: Direction, margin: float
) -> tuple[float, Alternative]:
    """The null boundary and one-sided alternative of a margin test.

    With ``higher is better`` a degradation is a negative effect, so non-inferiority tests
    ``H0: effect <= -margin`` against ``effect > -margin`` and degradation tests
    ``H0: effect >= -margin`` against ``effect < -margin``; ``lower is better`` mirrors both.

    Args:
        hypothesis: Non-inferiority or degradation.
        direction: Which way the metric improves.
        margin: The allowed degradation (>= 0), on the scale being tested.

    Returns:
        ``(null_value, alternative)``.
    """
    if direction is Direction.HIGHER_IS_BETTER:
        null_value = 0.0 - margin  # not -margin: a zero margin must not print as -0.0
        worse = Alternative.LESS
    else:
        null_value = margin
        worse = Alternative.GREATER
    if hypothesis is MarginHypothesis.DEGRADATION:
        return null_value, worse
    better = Alternative.GREATER if worse is Alternative.LESS else Alternative.LESS
    return null_value, better


def margin_test(
    control: SampleStats,
    treatment: SampleStats,
    *,
    hypothesis: MarginHypothesis,
    direction: Direction,
    margin: float,
    relative: bool = False,
    alpha: float = 0.05,
    kind: MetricKind = MetricKind.CONTINUOUS,
) -> MarginTestResult:
    """Fixed-horizon one-sided test of the effect against a margin.

    The absolute effect of a continuous metric uses Welch's t distribution; binary metrics
    and relative margins (delta method) use the normal distribution.

    Args:
        control: Outcomes of the control arm.
        treatment: Outcomes of the treatment arm.
        hypothesis: Non-inferiority or degradation (see :class:`MarginHypothesis`).
        direction: Which way the metric improves.
        margin: The allowed degradation, >= 0: in metric units, or as a fraction of the
            control mean when ``relative``.
        relative: Whether to test the relative lift instead of the difference.
        alpha: Significance level.
        kind: The metric's kind.

    Returns:
        The one-sided test with its confidence bound and whether the null is rejected.
    """
    null_value, alternative = margin_null(hypothesis, direction, margin)
    base = MarginTestResult(
        ResultCode.OK,
        "ok",
        hypothesis,
        direction,
        margin,
        relative,
        False,
        null_value,
        alternative,
    )
    binary = kind is MetricKind.BINARY
    estimator = relative_difference if relative else difference
    effect = estimator(control, treatment, binary=binary)
    if isinstance(effect, Problem):
        return replace(base, code=effect.code, reason=effect.reason)
    df = None if binary else effect.df
    statistic = (effect.estimate - null_value) / effect.standard_error
    p = p_value(statistic, alternative, df)
    reach = critical_value(alpha, df) * effect.standard_error
    bound = effect.estimate + (-reach if alternative is Alternative.GREATER else reach)
    return replace(
        base,
        estimate=effect.estimate,
        standard_error=effect.standard_error,
        statistic=statistic,
        p_value=p,
        bound=finite_or_none(bound),
        rejected=p < alpha,
    )
