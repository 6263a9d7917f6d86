"""Fixed-horizon tests against scipy and statsmodels, lift intervals and their coverage."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats import proportion

from synapsenet.services.abtesting.statistics import (
    Alternative,
    Direction,
    IntervalEstimate,
    MarginHypothesis,
    MarginTestResult,
    MetricKind,
    ResultCode,
    SampleStats,
    SignificanceResult,
)
from synapsenet.services.abtesting.statistics.frequentist import (
    absolute_lift,
    margin_null,
    margin_test,
    relative_lift,
    two_proportion_z_test,
    welch_t_test,
)
from tests.services.abtesting.statistics._checks import assert_close, assert_no_nan

STATSMODELS_ALTERNATIVE = {
    Alternative.TWO_SIDED: "two-sided",
    Alternative.GREATER: "larger",
    Alternative.LESS: "smaller",
}


def _random_arm_data(rng: np.random.Generator) -> np.ndarray:
    """Outcomes of varied size, location, scale and shape (normal or skewed)."""
    n = int(rng.integers(2, 300))
    if rng.random() < 0.5:
        return rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 10), n)
    return rng.exponential(rng.uniform(0.1, 20), n)


@pytest.mark.parametrize("alternative", list(Alternative))
def test_z_test_matches_statsmodels_proportions_ztest(alternative: Alternative) -> None:
    rng = np.random.default_rng(1)
    for _ in range(150):
        n_c, n_t = (int(n) for n in rng.integers(2, 5000, size=2))
        s_c = int(rng.integers(0, n_c + 1))
        s_t = int(rng.integers(0, n_t + 1))
        if s_c + s_t in (0, n_c + n_t):
            continue  # pooled variance 0: covered by the degenerate-input tests
        ours = two_proportion_z_test(
            SampleStats.from_successes(n_c, s_c),
            SampleStats.from_successes(n_t, s_t),
            alternative=alternative,
        )
        z, p = proportion.proportions_ztest(
            [s_t, s_c], [n_t, n_c], alternative=STATSMODELS_ALTERNATIVE[alternative]
        )
        assert ours.code is ResultCode.OK
        assert_close(ours.statistic, float(z), abs_=1e-12)
        assert_close(ours.p_value, float(p), abs_=1e-300)


@pytest.mark.parametrize("alternative", list(Alternative))
def test_welch_matches_scipy_ttest_ind(alternative: Alternative) -> None:
    rng = np.random.default_rng(2)
    for _ in range(150):
        x, y = _random_arm_data(rng), _random_arm_data(rng)
        ours = welch_t_test(
            SampleStats.from_values(x), SampleStats.from_values(y), alternative=alternative
        )
        expected = stats.ttest_ind(y, x, equal_var=False, alternative=alternative.value)
        assert_close(ours.statistic, float(expected.statistic), abs_=1e-12)
        assert_close(ours.df, float(expected.df))
        assert_close(ours.p_value, float(expected.pvalue), abs_=1e-300)


def test_continuous_absolute_lift_ci_matches_scipy_welch_interval() -> None:
    rng = np.random.default_rng(3)
    for _ in range(100):
        x, y = _random_arm_data(rng), _random_arm_data(rng)
        lift = absolute_lift(SampleStats.from_values(x), SampleStats.from_values(y), alpha=0.1)
        expected = stats.ttest_ind(y, x, equal_var=False).confidence_interval(0.9)
        assert lift.confidence_level == pytest.approx(0.9)
        assert_close(lift.estimate, float(np.mean(y) - np.mean(x)), rel=1e-9, abs_=1e-12)
        assert_close(lift.ci_lower, float(expected.low), abs_=1e-12)
        assert_close(lift.ci_upper, float(expected.high), abs_=1e-12)


def test_binary_absolute_lift_ci_matches_statsmodels_wald_interval() -> None:
    rng = np.random.default_rng(4)
    for _ in range(100):
        n_c, n_t = (int(n) for n in rng.integers(2, 5000, size=2))
        s_c, s_t = int(rng.integers(1, n_c)), int(rng.integers(1, n_t))
        lift = absolute_lift(
            SampleStats.from_successes(n_c, s_c),
            SampleStats.from_successes(n_t, s_t),
            kind=MetricKind.BINARY,
        )
        low, high = proportion.confint_proportions_2indep(s_t, n_t, s_c, n_c, method="wald")
        assert_close(lift.ci_lower, float(low), abs_=1e-12)
        assert_close(lift.ci_upper, float(high), abs_=1e-12)


def test_relative_lift_matches_the_textbook_delta_method_form() -> None:
    # Var(m_t / m_c) ~ (m_t / m_c)^2 (var_t / (n_t m_t^2) + var_c / (n_c m_c^2)).
    rng = np.random.default_rng(5)
    for _ in range(100):
        x, y = rng.normal(10, 3, 50), rng.normal(11, 2, 80)
        lift = relative_lift(SampleStats.from_values(x), SampleStats.from_values(y))
        m_c, m_t = np.mean(x), np.mean(y)
        v_c, v_t = np.var(x, ddof=1), np.var(y, ddof=1)
        se = (m_t / m_c) * math.sqrt(v_t / (y.size * m_t**2) + v_c / (x.size * m_c**2))
        assert_close(lift.estimate, float(m_t / m_c - 1.0))
        assert_close(lift.standard_error, float(se), rel=1e-7)
        assert_close(lift.ci_upper, float(m_t / m_c - 1.0 + stats.norm.ppf(0.975) * se), rel=1e-7)


def test_relative_lift_keeps_its_sign_for_negative_baselines() -> None:
    control = SampleStats.from_values([-10.0, -12.0, -8.0])
    treatment = SampleStats.from_values([-5.0, -6.0, -4.0])
    lift = relative_lift(control, treatment)
    assert lift.estimate == pytest.approx(0.5)  # treatment is higher: a positive lift


@pytest.mark.parametrize("kind", list(MetricKind))
def test_relative_lift_ci_covers_the_true_lift_about_95_percent(kind: MetricKind) -> None:
    rng = np.random.default_rng(6)
    sims, n = 2000, 400
    if kind is MetricKind.BINARY:
        p_c, p_t = 0.10, 0.12
        true_lift = p_t / p_c - 1.0
        s_c, s_t = rng.binomial(n, p_c, sims), rng.binomial(n, p_t, sims)
        arms = [
            (SampleStats.from_successes(n, int(c)), SampleStats.from_successes(n, int(t)))
            for c, t in zip(s_c, s_t, strict=True)
        ]
    else:
        true_lift = 10.5 / 10.0 - 1.0
        x, y = rng.normal(10.0, 4.0, (sims, n)), rng.normal(10.5, 4.0, (sims, n))
        arms = [
            (
                SampleStats(n, float(xs.sum()), float(xs @ xs)),
                SampleStats(n, float(ys.sum()), float(ys @ ys)),
            )
            for xs, ys in zip(x, y, strict=True)
        ]
    covered = 0
    for control, treatment in arms:
        lift = relative_lift(control, treatment, kind=kind)
        assert lift.ci_lower is not None
        assert lift.ci_upper is not None
        covered += lift.ci_lower <= true_lift <= lift.ci_upper
    coverage = covered / sims
    simulation_se = math.sqrt(0.95 * 0.05 / sims)
    assert abs(coverage - 0.95) < 3 * simulation_se, coverage


@pytest.mark.parametrize(
    ("hypothesis", "direction", "shift", "scipy_alternative"),
    [
        # Shifting the treatment by the margin turns the margin test into a plain Welch test.
        (MarginHypothesis.NON_INFERIORITY, Direction.HIGHER_IS_BETTER, +1, "greater"),
        (MarginHypothesis.NON_INFERIORITY, Direction.LOWER_IS_BETTER, -1, "less"),
        (MarginHypothesis.DEGRADATION, Direction.HIGHER_IS_BETTER, +1, "less"),
        (MarginHypothesis.DEGRADATION, Direction.LOWER_IS_BETTER, -1, "greater"),
    ],
)
def test_continuous_margin_test_matches_shifted_welch_test(
    hypothesis: MarginHypothesis,
    direction: Direction,
    shift: int,
    scipy_alternative: Literal["greater", "less"],
) -> None:
    rng = np.random.default_rng(7)
    for _ in range(40):
        x, y = _random_arm_data(rng), _random_arm_data(rng)
        margin = float(rng.uniform(0, 2))
        ours = margin_test(
            SampleStats.from_values(x),
            SampleStats.from_values(y),
            hypothesis=hypothesis,
            direction=direction,
            margin=margin,
            alpha=0.05,
        )
        expected = stats.ttest_ind(
            y + shift * margin, x, equal_var=False, alternative=scipy_alternative
        )
        assert_close(ours.p_value, float(expected.pvalue), rel=1e-8, abs_=1e-300)
        assert ours.rejected == (float(expected.pvalue) < 0.05)
        bound = expected.confidence_interval(0.95)
        one_sided = bound.low if scipy_alternative == "greater" else bound.high
        assert_close(ours.bound, float(one_sided) - shift * margin, rel=1e-8, abs_=1e-9)


def test_binary_non_inferiority_matches_statsmodels_wald_test() -> None:
    rng = np.random.default_rng(8)
    for _ in range(60):
        n_c, n_t = (int(n) for n in rng.integers(50, 5000, size=2))
        s_c, s_t = int(rng.integers(1, n_c)), int(rng.integers(1, n_t))
        margin = float(rng.uniform(0, 0.05))
        ours = margin_test(
            SampleStats.from_successes(n_c, s_c),
            SampleStats.from_successes(n_t, s_t),
            hypothesis=MarginHypothesis.NON_INFERIORITY,
            direction=Direction.HIGHER_IS_BETTER,
            margin=margin,
            kind=MetricKind.BINARY,
        )
        expected = proportion.test_proportions_2indep(
            s_t, n_t, s_c, n_c, value=-margin, method="wald", alternative="larger"
        )
        assert_close(ours.statistic, float(expected.statistic), abs_=1e-12)
        assert_close(ours.p_value, float(expected.pvalue), abs_=1e-300)


def test_relative_margin_is_tested_on_the_relative_lift() -> None:
    control = SampleStats.from_successes(10_000, 1_000)
    treatment = SampleStats.from_successes(10_000, 1_100)
    lift = relative_lift(control, treatment, kind=MetricKind.BINARY)
    result = margin_test(
        control,
        treatment,
        hypothesis=MarginHypothesis.DEGRADATION,
        direction=Direction.LOWER_IS_BETTER,  # e.g. an error rate that rose by 10%
        margin=0.02,
        relative=True,
        kind=MetricKind.BINARY,
    )
    assert lift.estimate is not None
    assert lift.standard_error is not None
    assert result.null_value == 0.02
    assert result.alternative is Alternative.GREATER
    assert_close(result.statistic, (lift.estimate - 0.02) / lift.standard_error)
    assert result.rejected  # a 10% rise is beyond the 2% allowed


def test_margin_null_mirrors_for_lower_is_better_metrics() -> None:
    assert margin_null(MarginHypothesis.NON_INFERIORITY, Direction.HIGHER_IS_BETTER, 0.5) == (
        -0.5,
        Alternative.GREATER,
    )
    assert margin_null(MarginHypothesis.DEGRADATION, Direction.LOWER_IS_BETTER, 0.5) == (
        0.5,
        Alternative.GREATER,
    )
    null_value, _ = margin_null(MarginHypothesis.DEGRADATION, Direction.HIGHER_IS_BETTER, 0.0)
    assert math.copysign(1.0, null_value) == 1.0  # no -0.0 in results


ZERO = SampleStats(0, 0.0, 0.0)
ONE = SampleStats.from_values([1.0])
CONSTANT = SampleStats.from_values([2.0, 2.0, 2.0])
ALL_SUCCESS = SampleStats.from_successes(50, 50)
ALL_FAILURE = SampleStats.from_successes(50, 0)
SOME = SampleStats.from_values([0.0, 1.0, 1.0, 0.0])
ZERO_MEAN = SampleStats.from_values([-1.0, 1.0, 0.0])


@pytest.mark.parametrize(
    ("control", "treatment", "code"),
    [
        (ZERO, SOME, ResultCode.NO_DATA),
        (SOME, ZERO, ResultCode.NO_DATA),
        (ONE, SOME, ResultCode.INSUFFICIENT_SAMPLE),
        (SOME, ONE, ResultCode.INSUFFICIENT_SAMPLE),
        (CONSTANT, CONSTANT, ResultCode.ZERO_VARIANCE),
        (ALL_SUCCESS, ALL_SUCCESS, ResultCode.ZERO_VARIANCE),
    ],
)
def test_degenerate_arms_give_codes_not_exceptions(
    control: SampleStats, treatment: SampleStats, code: ResultCode
) -> None:
    z_test = two_proportion_z_test(control, treatment)
    lift = absolute_lift(control, treatment)
    results: list[SignificanceResult | IntervalEstimate | MarginTestResult] = [
        z_test,
        welch_t_test(control, treatment),
        lift,
        absolute_lift(control, treatment, kind=MetricKind.BINARY),
        relative_lift(control, treatment),
        margin_test(
            control,
            treatment,
            hypothesis=MarginHypothesis.DEGRADATION,
            direction=Direction.HIGHER_IS_BETTER,
            margin=0.1,
        ),
    ]
    for result in results:
        assert result.code is code, result
        assert result.reason
        assert_no_nan(result)
    assert z_test.p_value is None
    assert lift.ci_lower is None


def test_all_failures_in_both_arms_have_no_variance_and_no_baseline() -> None:
    assert two_proportion_z_test(ALL_FAILURE, ALL_FAILURE).code is ResultCode.ZERO_VARIANCE
    assert absolute_lift(ALL_FAILURE, ALL_FAILURE).code is ResultCode.ZERO_VARIANCE
    assert relative_lift(ALL_FAILURE, ALL_FAILURE).code is ResultCode.ZERO_BASELINE


def test_zero_control_mean_makes_only_the_relative_lift_undefined() -> None:
    treatment = SampleStats.from_values([0.5, 1.5, 1.0])
    assert relative_lift(ZERO_MEAN, treatment).code is ResultCode.ZERO_BASELINE
    assert absolute_lift(ZERO_MEAN, treatment).code is ResultCode.OK
    # Squared, a mean of 1e-300 underflows to 0 and one of 1e-160 overflows the ratio.
    for tiny in (1e-300, 1e-160):
        control = SampleStats.from_values([tiny, 2 * tiny])
        assert relative_lift(control, treatment).code is ResultCode.ZERO_BASELINE


def test_all_success_against_some_failures_is_still_testable() -> None:
    result = two_proportion_z_test(SampleStats.from_successes(50, 40), ALL_SUCCESS)
    assert result.code is ResultCode.OK
    assert result.p_value is not None
    assert result.p_value < 0.01
    # Both arms constant but different: no sampling variance for the unpooled lift.
    assert absolute_lift(ALL_FAILURE, ALL_SUCCESS).code is ResultCode.ZERO_VARIANCE
