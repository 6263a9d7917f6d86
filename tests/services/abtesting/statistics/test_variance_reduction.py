"""CUPED: the adjustment against explicit data and OLS, and its variance reduction."""

from __future__ import annotations

import math

import numpy as np
import pytest

from synapsenet.services.abtesting.statistics import (
    CovariateStats,
    ResultCode,
    SampleStats,
    StatisticalAnalyzer,
)
from synapsenet.services.abtesting.statistics.variance_reduction import cuped_adjust
from tests.services.abtesting.statistics._checks import assert_close, assert_no_nan


def _experiment(
    rng: np.random.Generator, n: int, rho: float, effect: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pre-period x and outcome y = rho x + noise (unit variances), per arm."""
    x_c, x_t = rng.normal(5.0, 1.0, n), rng.normal(5.0, 1.0, n)
    noise = math.sqrt(1.0 - rho * rho)
    y_c = rho * x_c + rng.normal(0.0, noise, n)
    y_t = rho * x_t + rng.normal(effect, noise, n)
    return y_c, x_c, y_t, x_t


def test_adjusted_stats_equal_the_stats_of_explicitly_adjusted_outcomes() -> None:
    rng = np.random.default_rng(30)
    y_c, x_c, y_t, x_t = _experiment(rng, 300, rho=0.6, effect=0.3)
    result = cuped_adjust(
        CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t)
    )
    # theta from the regression y ~ arm + x (within-arm slope), mean_x pooled over arms.
    design = np.column_stack([np.ones(600), np.r_[np.zeros(300), np.ones(300)], np.r_[x_c, x_t]])
    theta = float(np.linalg.lstsq(design, np.r_[y_c, y_t], rcond=None)[0][2])
    mean_x = float(np.mean(np.r_[x_c, x_t]))
    assert result.code is ResultCode.OK
    assert_close(result.theta, theta)
    for adjusted, y, x in ((result.control, y_c, x_c), (result.treatment, y_t, x_t)):
        expected = SampleStats.from_values(y - theta * (x - mean_x))
        assert adjusted.n == expected.n
        assert_close(adjusted.mean, expected.mean)
        assert_close(adjusted.variance, expected.variance, rel=1e-8)
    correlation = np.corrcoef(
        np.r_[x_c - x_c.mean(), x_t - x_t.mean()], np.r_[y_c - y_c.mean(), y_t - y_t.mean()]
    )
    assert_close(result.correlation, float(correlation[0, 1]), rel=1e-8)


def test_cuped_reduces_variance_by_rho_squared_and_stays_unbiased() -> None:
    rng = np.random.default_rng(31)
    rho, effect, n, sims = 0.7, 0.1, 500, 400
    raw, adjusted, reductions = [], [], []
    for _ in range(sims):
        y_c, x_c, y_t, x_t = _experiment(rng, n, rho, effect)
        result = cuped_adjust(
            CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t)
        )
        raw.append(y_t.mean() - y_c.mean())
        adjusted.append(result.treatment.mean - result.control.mean)
        assert result.variance_reduction is not None
        reductions.append(result.variance_reduction)
    # The reported reduction is about rho^2 ...
    assert abs(np.mean(reductions) - rho**2) < 0.02, np.mean(reductions)
    # ... and it is real: the estimates themselves vary that much less across experiments.
    ratio = np.var(adjusted, ddof=1) / np.var(raw, ddof=1)
    assert abs(ratio - (1 - rho**2)) < 0.12, ratio
    # Unbiased: the mean estimate is within 3 simulation standard errors of the effect.
    assert abs(np.mean(adjusted) - effect) < 3 * np.std(adjusted, ddof=1) / math.sqrt(sims)


def test_compare_with_covariates_tests_the_adjusted_statistics() -> None:
    rng = np.random.default_rng(32)
    y_c, x_c, y_t, x_t = _experiment(rng, 400, rho=0.8, effect=0.15)
    control, treatment = CovariateStats.from_values(y_c, x_c), CovariateStats.from_values(y_t, x_t)
    analyzer = StatisticalAnalyzer()
    with_cuped = analyzer.compare(control, treatment)
    without = analyzer.compare(control.outcome, treatment.outcome)
    assert with_cuped.cuped is not None
    assert without.cuped is None
    assert with_cuped.control_mean == without.control_mean  # the page shows raw means
    expected = analyzer.welch_t_test(with_cuped.cuped.control, with_cuped.cuped.treatment)
    assert with_cuped.test == expected
    lift_with, lift_without = with_cuped.absolute_lift, without.absolute_lift
    assert lift_with.standard_error is not None
    assert lift_without.standard_error is not None
    assert lift_with.standard_error < 0.7 * lift_without.standard_error


def test_binary_metric_with_covariate_is_analysed_as_continuous_after_adjustment() -> None:
    rng = np.random.default_rng(33)
    x_c, x_t = rng.normal(0, 1, 500), rng.normal(0, 1, 500)
    y_c = (x_c + rng.normal(0, 1, 500) > 1).astype(float)
    y_t = (x_t + rng.normal(0, 1, 500) > 0.9).astype(float)
    result = StatisticalAnalyzer().compare(
        CovariateStats.from_values(y_c, x_c),
        CovariateStats.from_values(y_t, x_t),
        kind="binary",
        sequential=True,
    )
    assert result.test.test == "Welch t-test"
    assert result.cuped is not None
    assert result.cuped.code is ResultCode.OK
    assert result.sequential is not None
    assert result.sequential.code is ResultCode.OK
    assert_no_nan(result)


def test_constant_covariate_leaves_outcomes_unadjusted() -> None:
    y_c, y_t = np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 5.0])
    result = cuped_adjust(
        CovariateStats.from_values(y_c, np.full(3, 0.1)),
        CovariateStats.from_values(y_t, np.full(3, 0.1)),
    )
    assert result.code is ResultCode.ZERO_VARIANCE
    assert result.theta is None
    assert result.variance_reduction is None
    assert result.control == SampleStats.from_values(y_c)
    assert_no_nan(result)


@pytest.mark.parametrize(
    ("control", "code"),
    [
        (CovariateStats(0, 0, 0, 0, 0, 0), ResultCode.NO_DATA),
        (CovariateStats.from_values([1.0], [2.0]), ResultCode.INSUFFICIENT_SAMPLE),
    ],
)
def test_degenerate_arms_give_codes(control: CovariateStats, code: ResultCode) -> None:
    treatment = CovariateStats.from_values([1.0, 2.0, 4.0], [1.0, 3.0, 2.0])
    result = cuped_adjust(control, treatment)
    assert result.code is code
    assert_no_nan(result)
    assert StatisticalAnalyzer().compare(control, treatment, sequential=True).code is code


def test_constant_outcomes_with_varying_covariate_have_no_correlation() -> None:
    result = cuped_adjust(
        CovariateStats.from_values([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]),
        CovariateStats.from_values([1.0, 1.0], [0.0, 5.0]),
    )
    assert result.code is ResultCode.OK
    assert result.correlation is None
    assert result.theta == 0.0
    assert result.variance_reduction is None  # nothing to reduce
    assert_no_nan(result)
