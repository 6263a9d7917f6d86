"""The mSPRT: closed forms against integration, duality with the confidence sequence, and
simulations of peeking (false positives stay below alpha; a real effect is found)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from synapsenet.services.abtesting.statistics import (
    Alternative,
    MetricKind,
    ResultCode,
    SampleStats,
    StatisticalAnalyzer,
)
from synapsenet.services.abtesting.statistics.sequential import (
    always_valid_p_value,
    log_likelihood_ratio,
    sequential_test,
    tuning_rho_squared,
)
from tests.services.abtesting.statistics._checks import assert_close, assert_no_nan

ALPHA = 0.05
LOOKS = 20


def _mixture_by_quadrature(z: float, k: float, alternative: Alternative) -> float:
    """The mixture likelihood ratio straight from its definition, in standard-error units.

    The estimate is N(delta, 1); the mixing density over delta is N(0, k), folded onto the
    alternative's side for one-sided tests.
    """

    def integrand(delta: float) -> float:
        weight = 2.0 if alternative is not Alternative.TWO_SIDED else 1.0
        return (
            weight
            * stats.norm.pdf(delta, scale=math.sqrt(k))
            * math.exp(delta * z - delta * delta / 2.0)
        )

    centre = z * k / (1.0 + k)  # the integrand's mode: split there so quad sees the peak
    if alternative is Alternative.GREATER:
        pieces = [(0.0, max(centre, 0.0)), (max(centre, 0.0), np.inf)]
    elif alternative is Alternative.LESS:
        pieces = [(-np.inf, min(centre, 0.0)), (min(centre, 0.0), 0.0)]
    else:
        pieces = [(-np.inf, centre), (centre, np.inf)]
    return sum(integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-12)[0] for a, b in pieces)


@pytest.mark.parametrize("alternative", list(Alternative))
def test_closed_form_likelihood_ratio_matches_numerical_integration(
    alternative: Alternative,
) -> None:
    rng = np.random.default_rng(10)
    for _ in range(30):
        z, k = float(rng.uniform(-4, 4)), float(10 ** rng.uniform(-2, 2))
        expected = _mixture_by_quadrature(z, k, alternative)
        assert_close(float(np.exp(log_likelihood_ratio(z, k, alternative))), expected, rel=1e-7)


def _arms(seed: int, shift: float = 0.0) -> tuple[SampleStats, SampleStats]:
    rng = np.random.default_rng(seed)
    return (
        SampleStats.from_values(rng.normal(10.0, 3.0, 400)),
        SampleStats.from_values(rng.normal(10.0 + shift, 3.0, 300)),
    )


@pytest.mark.parametrize("relative", [False, True])
@pytest.mark.parametrize("alternative", list(Alternative))
def test_confidence_sequence_is_the_set_of_nulls_not_rejected(
    alternative: Alternative, relative: bool
) -> None:
    control, treatment = _arms(11, shift=0.4)
    result = sequential_test(control, treatment, alternative=alternative, relative=relative)
    assert result.code is ResultCode.OK
    bounds = [b for b in (result.ci_lower, result.ci_upper) if b is not None]
    assert len(bounds) == (2 if alternative is Alternative.TWO_SIDED else 1)
    for bound in bounds:
        at_bound = sequential_test(
            control, treatment, alternative=alternative, relative=relative, null_value=bound
        )
        assert_close(at_bound.p_value, ALPHA, rel=1e-6)
    assert result.estimate is not None
    if alternative is Alternative.GREATER:
        assert result.ci_upper is None
        assert result.ci_lower is not None
        assert result.ci_lower < result.estimate
    if alternative is Alternative.LESS:
        assert result.ci_lower is None
        assert result.ci_upper is not None
        assert result.ci_upper > result.estimate


def test_default_mixture_reproduces_gbstats_confidence_sequence() -> None:
    control, treatment = _arms(12, shift=0.2)
    result = sequential_test(control, treatment, tuning_n=5000)
    assert result.ci_lower is not None
    assert result.ci_upper is not None
    assert result.standard_error is not None
    # gbstats.frequentist.tests.sequential_interval_halfwidth, written out.
    n = control.n + treatment.n
    rho = math.sqrt((-2 * math.log(ALPHA) + math.log(-2 * math.log(ALPHA) + 1)) / 5000)
    s2 = result.standard_error**2 * n
    half = math.sqrt(s2) * math.sqrt(
        2 * (n * rho**2 + 1) / (n**2 * rho**2) * math.log(math.sqrt(n * rho**2 + 1) / ALPHA)
    )
    assert_close((result.ci_upper - result.ci_lower) / 2, half)
    assert_close(result.mixture_variance, rho**2 * s2)


def test_fixed_mixture_variance_is_used_as_given_and_rescaled_for_relative_lift() -> None:
    control, treatment = _arms(13)
    absolute = sequential_test(control, treatment, mixture_variance=0.25)
    relative = sequential_test(control, treatment, mixture_variance=0.25, relative=True)
    assert_close(absolute.mixture_variance, 0.25)
    assert_close(relative.mixture_variance, 0.25 / control.mean**2)


def test_p_value_falls_as_the_estimate_moves_away_from_the_null() -> None:
    z = np.linspace(0, 6, 61)
    for alternative in (Alternative.TWO_SIDED, Alternative.GREATER):
        p = always_valid_p_value(z, 2.0, alternative)
        assert np.all(np.diff(p) <= 0)
        assert np.all((p >= 0) & (p <= 1))
    assert always_valid_p_value(0.0, 2.0) == 1.0
    assert always_valid_p_value(-40.0, 2.0, Alternative.GREATER) == 1.0  # no overflow
    assert float(always_valid_p_value(40.0, 2.0)) < 1e-200


def test_sequential_is_more_conservative_than_fixed_horizon_at_one_look() -> None:
    control, treatment = _arms(14, shift=0.8)
    analyzer = StatisticalAnalyzer()
    sequential = analyzer.sequential_test(control, treatment)
    fixed = analyzer.absolute_lift(control, treatment)
    assert sequential.p_value is not None
    assert sequential.ci_lower is not None
    assert fixed.ci_lower is not None
    assert sequential.ci_lower < fixed.ci_lower


@pytest.mark.parametrize(
    ("control", "code"),
    [
        (SampleStats(0, 0.0, 0.0), ResultCode.NO_DATA),
        (SampleStats.from_values([1.0]), ResultCode.INSUFFICIENT_SAMPLE),
        (SampleStats.from_values([2.0, 2.0]), ResultCode.ZERO_VARIANCE),
    ],
)
def test_degenerate_arms_give_codes(control: SampleStats, code: ResultCode) -> None:
    treatment = SampleStats.from_values([2.0, 2.0, 2.0])
    for alternative in Alternative:
        result = sequential_test(control, treatment, alternative=alternative)
        assert result.code is code
        assert result.p_value is None
        assert_no_nan(result)


def test_absurd_mixture_variances_still_give_finite_results() -> None:
    control, treatment = _arms(15)
    for tau2 in (1e-300, 1e300):
        assert_no_nan(sequential_test(control, treatment, mixture_variance=tau2))


# -- simulations -----------------------------------------------------------------------------


def _looks_continuous(
    rng: np.random.Generator, sims: int, batch: int, effect: float
) -> tuple[np.ndarray, ...]:
    """Per-look cumulative means, variances and sizes of two arms of N(0,1) (+ effect)."""
    n = batch * np.arange(1, LOOKS + 1)
    moments = []
    for shift in (0.0, effect):
        data = rng.normal(shift, 1.0, (sims, LOOKS, batch))
        total = np.cumsum(data.sum(axis=2), axis=1)
        squares = np.cumsum((data * data).sum(axis=2), axis=1)
        moments += [total / n, (squares - total * total / n) / (n - 1)]
    return (*moments, n)


def _peeking_rejections(
    m_c: np.ndarray, v_c: np.ndarray, m_t: np.ndarray, v_t: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Whether each simulated experiment ever rejects at any look: (mSPRT, naive Welch)."""
    variance = v_t / n + v_c / n
    z = (m_t - m_c) / np.sqrt(variance)
    k = tuning_rho_squared(ALPHA, 5000) * 2 * n  # the analyzer's default mixture
    sequential = np.asarray(always_valid_p_value(z, k) < ALPHA)
    naive = np.asarray(
        stats.ttest_ind_from_stats(
            m_t, np.sqrt(v_t), n, m_c, np.sqrt(v_c), n, equal_var=False
        ).pvalue
        < ALPHA
    )
    return np.asarray(sequential.any(axis=1)), np.asarray(naive.any(axis=1))


def test_peeking_at_20_looks_keeps_msprt_false_positives_below_alpha() -> None:
    sims = 2000
    rng = np.random.default_rng(20)
    m_c, v_c, m_t, v_t, n = _looks_continuous(rng, sims, batch=50, effect=0.0)
    sequential, naive = _peeking_rejections(m_c, v_c, m_t, v_t, n)
    simulation_se = math.sqrt(ALPHA * (1 - ALPHA) / sims)
    assert sequential.mean() <= ALPHA + 2 * simulation_se, sequential.mean()
    assert naive.mean() > 2 * ALPHA, naive.mean()  # the problem the mSPRT solves
    # The scalar analyzer agrees with the vectorised p-values used above.
    last = int(n[-1])
    control = _stats_from_moments(m_c[0, -1], v_c[0, -1], last)
    treatment = _stats_from_moments(m_t[0, -1], v_t[0, -1], last)
    z = (m_t[0, -1] - m_c[0, -1]) / math.sqrt((v_t[0, -1] + v_c[0, -1]) / last)
    expected = float(always_valid_p_value(z, tuning_rho_squared(ALPHA, 5000) * 2 * last))
    result = StatisticalAnalyzer().sequential_test(control, treatment)
    assert_close(result.p_value, expected, rel=1e-6)


def _stats_from_moments(mean: float, variance: float, n: int) -> SampleStats:
    return SampleStats(n, mean * n, variance * (n - 1) + mean * mean * n)


def test_peeking_at_20_looks_on_a_conversion_rate_keeps_false_positives_below_alpha() -> None:
    sims, batch, rate = 2000, 200, 0.1
    rng = np.random.default_rng(21)
    n = batch * np.arange(1, LOOKS + 1)
    p_c = np.cumsum(rng.binomial(batch, rate, (sims, LOOKS)), axis=1) / n
    p_t = np.cumsum(rng.binomial(batch, rate, (sims, LOOKS)), axis=1) / n
    variance = (p_c * (1 - p_c) + p_t * (1 - p_t)) / n  # the binary (Bernoulli) variance
    z = (p_t - p_c) / np.sqrt(variance)
    k = tuning_rho_squared(ALPHA, 5000) * 2 * n
    sequential = (always_valid_p_value(z, k) < ALPHA).any(axis=1)
    naive = (2 * stats.norm.sf(np.abs(z)) < ALPHA).any(axis=1)
    simulation_se = math.sqrt(ALPHA * (1 - ALPHA) / sims)
    assert sequential.mean() <= ALPHA + 2 * simulation_se, sequential.mean()
    assert naive.mean() > 2 * ALPHA, naive.mean()
    # Same p-value as the analyzer on binary statistics.
    control = SampleStats.from_successes(int(n[-1]), round(p_c[0, -1] * n[-1]))
    treatment = SampleStats.from_successes(int(n[-1]), round(p_t[0, -1] * n[-1]))
    result = StatisticalAnalyzer().sequential_test(control, treatment, kind=MetricKind.BINARY)
    assert_close(result.p_value, float(always_valid_p_value(z[0, -1], k[-1])), rel=1e-9)


@pytest.mark.parametrize("alternative", [Alternative.GREATER, Alternative.LESS])
def test_one_sided_msprt_keeps_false_alarms_below_alpha_when_checked_every_batch(
    alternative: Alternative,
) -> None:
    sims = 2000
    rng = np.random.default_rng(22)
    m_c, v_c, m_t, v_t, n = _looks_continuous(rng, sims, batch=50, effect=0.0)
    z = (m_t - m_c) / np.sqrt(v_t / n + v_c / n)
    k = tuning_rho_squared(ALPHA, 5000) * 2 * n
    alarms = (always_valid_p_value(z, k, alternative) < ALPHA).any(axis=1)
    assert alarms.mean() <= ALPHA + 2 * math.sqrt(ALPHA * (1 - ALPHA) / sims), alarms.mean()


def test_msprt_eventually_detects_a_real_effect() -> None:
    sims = 500
    rng = np.random.default_rng(23)
    # 0.2 standard deviations, up to 1,000 units per arm: a fixed-horizon z of about 4.5.
    m_c, v_c, m_t, v_t, n = _looks_continuous(rng, sims, batch=50, effect=0.2)
    sequential, _ = _peeking_rejections(m_c, v_c, m_t, v_t, n)
    assert sequential.mean() > 0.8, sequential.mean()
    z = (m_t - m_c) / np.sqrt(v_t / n + v_c / n)
    k = tuning_rho_squared(ALPHA, 5000) * 2 * n
    one_sided = (always_valid_p_value(z, k, Alternative.GREATER) < ALPHA).any(axis=1)
    assert one_sided.mean() >= sequential.mean()  # one-sided tests spend alpha on one side
