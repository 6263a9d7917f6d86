"""What the statistics engine returns: frozen results that carry a code and a reason.

Degenerate data (no units, one unit, constant outcomes, a zero baseline) is an expected
state of a young experiment, so it becomes a :class:`ResultCode` with a human ``reason``
instead of an exception. Numbers that are undefined in that state are ``None``, never NaN
or infinity, so every result serialises to JSON as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from synapsenet.services.abtesting.statistics.sufficient import SampleStats


class ResultCode(StrEnum):
    """Whether a result could be computed, and if not, why."""

    OK = "ok"
    NO_DATA = "no_data"
    """An arm has no units."""
    INSUFFICIENT_SAMPLE = "insufficient_sample"
    """Too few units for the method (fewer than 2 per arm, or SRM expected counts < 5)."""
    ZERO_VARIANCE = "zero_variance"
    """The estimate has no sampling variance (e.g. constant outcomes in both arms)."""
    ZERO_BASELINE = "zero_baseline"
    """The control mean is 0, so a relative lift is undefined."""


class MetricKind(StrEnum):
    """The type of a metric's per-unit outcome."""

    BINARY = "binary"
    CONTINUOUS = "continuous"


class Direction(StrEnum):
    """Which way a metric improves."""

    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


class Alternative(StrEnum):
    """Alternative hypothesis about ``effect = treatment - control`` (scipy's names)."""

    TWO_SIDED = "two-sided"
    GREATER = "greater"
    LESS = "less"


class Verdict(StrEnum):
    """The results page's one-word summary of a comparison."""

    BETTER = "better"
    WORSE = "worse"
    INCONCLUSIVE = "inconclusive"


class MarginHypothesis(StrEnum):
    """The two one-sided margin tests a guardrail uses.

    ``NON_INFERIORITY`` rejects "treatment is worse than control by at least the margin";
    ``DEGRADATION`` rejects "treatment is not worse than control by more than the margin",
    i.e. rejecting it is evidence of a real degradation (the rollback test).
    """

    NON_INFERIORITY = "non_inferiority"
    DEGRADATION = "degradation"


class CorrectionMethod(StrEnum):
    """Multiple-testing corrections (statsmodels ``multipletests`` names)."""

    HOLM = "holm"
    BENJAMINI_HOCHBERG = "fdr_bh"


@dataclass(frozen=True, slots=True)
class SignificanceResult:
    """A fixed-horizon test of ``treatment - control = 0``.

    Attributes:
        code: ``OK`` or why the test could not be computed.
        reason: Human explanation of ``code``.
        test: Name of the test ("two-proportion z-test", "Welch t-test").
        alternative: The alternative hypothesis tested.
        statistic: z or t statistic.
        p_value: p-value of the test.
        df: Welch-Satterthwaite degrees of freedom (``None`` for z-tests).
    """

    code: ResultCode
    reason: str
    test: str
    alternative: Alternative
    statistic: float | None = None
    p_value: float | None = None
    df: float | None = None


@dataclass(frozen=True, slots=True)
class IntervalEstimate:
    """A point estimate with its standard error and two-sided confidence interval.

    Attributes:
        code: ``OK`` or why the estimate is undefined.
        reason: Human explanation of ``code``.
        confidence_level: Coverage of the interval, ``1 - alpha``.
        estimate: The point estimate.
        standard_error: Its (delta-method, for ratios) standard error.
        ci_lower: Lower confidence limit.
        ci_upper: Upper confidence limit.
    """

    code: ResultCode
    reason: str
    confidence_level: float
    estimate: float | None = None
    standard_error: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """An always-valid (mSPRT) test and confidence sequence, safe to check at every look.

    Attributes:
        code: ``OK`` or why the test could not be computed.
        reason: Human explanation of ``code``.
        alternative: The alternative hypothesis tested.
        null_value: The effect under the null hypothesis.
        confidence_level: Time-uniform coverage of the sequence, ``1 - alpha``.
        estimate: The point estimate.
        standard_error: Its standard error.
        mixture_variance: The mixing variance tau^2 used, on the estimate's scale.
        p_value: Always-valid p-value at this look (take the running minimum across looks).
        ci_lower: Lower limit of the confidence sequence (``None``: unbounded).
        ci_upper: Upper limit of the confidence sequence (``None``: unbounded).
    """

    code: ResultCode
    reason: str
    alternative: Alternative
    null_value: float
    confidence_level: float
    estimate: float | None = None
    standard_error: float | None = None
    mixture_variance: float | None = None
    p_value: float | None = None
    ci_lower: float | None = None
    ci_upper: float | None = None


@dataclass(frozen=True, slots=True)
class MarginTestResult:
    """A one-sided test against a margin (non-inferiority or degradation) for a guardrail.

    Attributes:
        code: ``OK`` or why the test could not be computed.
        reason: Human explanation of ``code``.
        hypothesis: Which of the two margin tests this is.
        direction: Which way the metric improves.
        margin: The allowed degradation (absolute units, or a fraction when ``relative``).
        relative: Whether ``margin`` and the estimate are relative to the control mean.
        sequential: Whether the always-valid mSPRT was used.
        null_value: The boundary effect of the null hypothesis, on the tested scale.
        alternative: The one-sided alternative actually tested.
        estimate: The effect estimate (``treatment - control``, or relative lift).
        standard_error: Its standard error.
        statistic: z or t statistic (``None`` for the sequential test).
        p_value: p-value (always-valid when ``sequential``).
        bound: One-sided confidence bound on the effect (lower for ``GREATER``).
        rejected: Whether the null hypothesis is rejected at the analyzer's alpha: for
            ``NON_INFERIORITY`` the treatment is shown non-inferior; for ``DEGRADATION`` it is
            shown to be worse than the margin allows.
    """

    code: ResultCode
    reason: str
    hypothesis: MarginHypothesis
    direction: Direction
    margin: float
    relative: bool
    sequential: bool
    null_value: float
    alternative: Alternative
    estimate: float | None = None
    standard_error: float | None = None
    statistic: float | None = None
    p_value: float | None = None
    bound: float | None = None
    rejected: bool = False


@dataclass(frozen=True, slots=True)
class SRMResult:
    """A sample-ratio-mismatch check (chi-square goodness of fit of assignment counts).

    Attributes:
        code: ``OK``, ``NO_DATA`` or ``INSUFFICIENT_SAMPLE`` (an expected count below 5).
        reason: Human explanation of the outcome.
        alpha: Significance level of the check.
        observed: Units observed per variant.
        expected: Units expected per variant from the configured weights.
        statistic: Chi-square statistic.
        df: Degrees of freedom.
        p_value: p-value of the check.
        mismatch: Whether assignment is broken (p-value below ``alpha``, or units in a
            variant whose weight is zero).
    """

    code: ResultCode
    reason: str
    alpha: float
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    statistic: float | None = None
    df: int | None = None
    p_value: float | None = None
    mismatch: bool = False


@dataclass(frozen=True, slots=True)
class CupedAdjustment:
    """CUPED-adjusted sufficient statistics of both arms.

    The adjusted outcome of a unit is ``y - theta * (x - mean_x)`` with ``mean_x`` pooled over
    both arms, so the adjusted means stay unbiased for the effect.

    Attributes:
        code: ``OK``, or ``ZERO_VARIANCE`` when the covariate is constant (no adjustment).
        reason: Human explanation of ``code``.
        control: Adjusted statistics of the control (unadjusted when ``theta`` is ``None``).
        treatment: Adjusted statistics of the treatment.
        theta: Regression coefficient of ``y`` on ``x``, pooled within arms.
        correlation: Pooled within-arm correlation of ``x`` and ``y``.
        variance_reduction: Fractional reduction of the variance of the effect estimate,
            ``1 - var(adjusted) / var(unadjusted)`` (about ``correlation**2``).
    """

    code: ResultCode
    reason: str
    control: SampleStats
    treatment: SampleStats
    theta: float | None = None
    correlation: float | None = None
    variance_reduction: float | None = None


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    """Multiplicity-adjusted p-values, in the order they were given.

    Attributes:
        method: The correction applied.
        alpha: Family-wise error rate (Holm) or false discovery rate (BH) controlled.
        p_values: The raw p-values.
        adjusted: The adjusted p-values.
        rejected: Whether each hypothesis is rejected (``adjusted <= alpha``).
    """

    method: CorrectionMethod
    alpha: float
    p_values: tuple[float, ...]
    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]


@dataclass(frozen=True, slots=True)
class SampleSize:
    """Units needed per arm to reach a power.

    Attributes:
        control: Units in the control arm (rounded up).
        treatment: Units in the treatment arm (rounded up).
        effect_size: Standardised effect (Cohen's h for proportions, d for means).
    """

    control: int
    treatment: int
    effect_size: float


@dataclass(frozen=True, slots=True)
class ComparisonResult:
    """Everything the results page shows for one metric, treatment against control.

    Attributes:
        code: ``OK`` or why the comparison is degenerate (from the main test).
        reason: Human explanation of ``code``.
        kind: The metric's kind.
        direction: Which way the metric improves.
        control_n: Units in the control arm.
        treatment_n: Units in the treatment arm.
        control_mean: Raw (unadjusted) control mean; ``None`` without data.
        treatment_mean: Raw (unadjusted) treatment mean; ``None`` without data.
        absolute_lift: ``treatment - control`` with its fixed-horizon CI.
        relative_lift: ``(treatment - control) / |control|`` with its delta-method CI.
        test: The fixed-horizon test (pooled z-test for binary, Welch otherwise).
        sequential: Always-valid test and confidence sequence of the absolute lift, when
            the comparison is sequential.
        sequential_relative: Confidence sequence of the relative lift, when sequential.
        cuped: The CUPED adjustment, when covariates were given.
        p_value: The p-value that decides significance (always-valid when sequential).
        significant: Whether ``p_value < alpha``.
        verdict: Better / worse in the metric's direction, or inconclusive.
    """

    code: ResultCode
    reason: str
    kind: MetricKind
    direction: Direction
    control_n: int
    treatment_n: int
    control_mean: float | None
    treatment_mean: float | None
    absolute_lift: IntervalEstimate
    relative_lift: IntervalEstimate
    test: SignificanceResult
    sequential: SequentialResult | None
    sequential_relative: SequentialResult | None
    cuped: CupedAdjustment | None
    p_value: float | None
    significant: bool
    verdict: Verdict
