"""The StatisticalAnalyzer facade: validation, the results-page comparison, guardrails, and
degenerate input that must never raise or produce NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats import proportion

from synapsenet.errors import InvalidError
from synapsenet.services.abtesting.statistics import (
    Alternative,
    CovariateStats,
    Direction,
    MarginHypothesis,
    MetricKind,
    ResultCode,
    SampleStats,
    StatisticalAnalyzer,
    Verdict,
)
from synapsenet.services.abtesting.statistics.comparison import compare_arms
from tests.services.abtesting.statistics._checks import assert_close, assert_no_nan

CONTROL = SampleStats.from_successes(n=10_000, successes=1_000)
BETTER = SampleStats.from_successes(n=10_000, successes=1_150)


def test_bad_alpha_gets_a_scikit_learn_style_message() -> None:
    with pytest.raises(InvalidError) as caught:
        StatisticalAnalyzer(alpha=1.5)
    assert caught.value.detail == (
        "The 'alpha' parameter of StatisticalAnalyzer must be a float in (0, 1). Got 1.5 instead."
    )
    assert caught.value.field == "alpha"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"alpha": 0}, "alpha"),
        ({"alpha": True}, "alpha"),
        ({"alpha": "0.05"}, "alpha"),
        ({"alpha": math.nan}, "alpha"),
        ({"mixture_variance": 0.0}, "mixture_variance"),
        ({"mixture_variance": math.inf}, "mixture_variance"),
        ({"sequential_tuning_n": 0}, "sequential_tuning_n"),
        ({"sequential_tuning_n": 10.5}, "sequential_tuning_n"),
        ({"srm_alpha": 1.0}, "srm_alpha"),
    ],
)
def test_out_of_range_parameters_are_rejected(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidError, match=f"The '{field}' parameter of StatisticalAnalyzer"):
        StatisticalAnalyzer(**kwargs)  # type: ignore[arg-type]


def test_parameters_are_stored_as_given() -> None:
    analyzer = StatisticalAnalyzer(0.1, mixture_variance=0.5, sequential_tuning_n=1000)
    assert (analyzer.alpha, analyzer.mixture_variance, analyzer.sequential_tuning_n) == (
        0.1,
        0.5,
        1000,
    )
    assert repr(analyzer).startswith("StatisticalAnalyzer(alpha=0.1, mixture_variance=0.5")


def test_unknown_option_names_list_the_choices() -> None:
    analyzer = StatisticalAnalyzer()
    with pytest.raises(InvalidError, match="one of 'two-sided', 'greater', 'less'"):
        analyzer.welch_t_test(CONTROL, BETTER, alternative="bigger")
    with pytest.raises(InvalidError) as caught:
        analyzer.compare(CONTROL, BETTER, kind="ratio")
    assert caught.value.field == "kind"
    with pytest.raises(InvalidError) as caught:
        analyzer.adjust_p_values([0.1], method="bonferroni")
    assert caught.value.field == "method"


def test_binary_methods_reject_non_binary_statistics() -> None:
    continuous = SampleStats.from_values([0.5, 2.5, 3.0])
    analyzer = StatisticalAnalyzer()
    with pytest.raises(InvalidError) as caught:
        analyzer.z_test(CONTROL, continuous)
    assert caught.value.field == "treatment"
    with pytest.raises(InvalidError):
        analyzer.compare(continuous, CONTROL, kind=MetricKind.BINARY)
    with pytest.raises(InvalidError):
        analyzer.degradation(continuous, CONTROL, margin=0.0, kind="binary")


def test_arms_must_be_statistics_of_the_same_type() -> None:
    analyzer = StatisticalAnalyzer()
    with pytest.raises(InvalidError) as caught:
        analyzer.compare(CovariateStats(0, 0, 0, 0, 0, 0), CONTROL)
    assert caught.value.field == "treatment"
    with pytest.raises(InvalidError):
        analyzer.welch_t_test(CONTROL, [1.0, 2.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidError):
        analyzer.cuped(CONTROL, CONTROL)  # type: ignore[arg-type]
    with pytest.raises(InvalidError, match="both arms as SampleStats"):
        compare_arms(CONTROL, CovariateStats(0, 0, 0, 0, 0, 0))


def test_analyzer_cuped_adjusts_covariate_statistics() -> None:
    control = CovariateStats.from_values([1.0, 2.0, 3.0, 4.0], [1.1, 1.9, 3.2, 3.9])
    treatment = CovariateStats.from_values([2.0, 3.0, 4.0, 6.0], [1.0, 2.1, 2.9, 4.2])
    adjustment = StatisticalAnalyzer().cuped(control, treatment)
    assert adjustment.code is ResultCode.OK
    assert adjustment.variance_reduction is not None
    assert adjustment.variance_reduction > 0.5


def test_compare_binary_reports_the_z_test_and_the_wald_interval() -> None:
    result = StatisticalAnalyzer().compare(CONTROL, BETTER, kind="binary")
    _z, p = proportion.proportions_ztest([1_150, 1_000], [10_000, 10_000])
    low, high = proportion.confint_proportions_2indep(1_150, 10_000, 1_000, 10_000, method="wald")
    assert result.code is ResultCode.OK
    assert result.test.test == "two-proportion z-test"
    assert_close(result.p_value, float(p))
    assert_close(result.absolute_lift.ci_lower, float(low))
    assert_close(result.absolute_lift.ci_upper, float(high))
    assert result.control_mean == 0.1
    assert result.treatment_mean == 0.115
    assert_close(result.relative_lift.estimate, 0.15)
    assert result.significant
    assert result.verdict is Verdict.BETTER
    assert result.sequential is None
    assert result.cuped is None


def test_verdict_follows_the_metric_direction() -> None:
    analyzer = StatisticalAnalyzer()
    error_rate = analyzer.compare(CONTROL, BETTER, kind="binary", direction="lower")
    assert error_rate.verdict is Verdict.WORSE
    flat = analyzer.compare(CONTROL, CONTROL, kind="binary")
    assert not flat.significant
    assert flat.verdict is Verdict.INCONCLUSIVE


def test_sequential_compare_decides_on_the_always_valid_p_value() -> None:
    analyzer = StatisticalAnalyzer()
    slight = SampleStats.from_successes(n=10_000, successes=1_090)
    fixed = analyzer.compare(CONTROL, slight, kind="binary")
    sequential = analyzer.compare(CONTROL, slight, kind="binary", sequential=True)
    assert sequential.sequential is not None
    assert sequential.sequential_relative is not None
    assert sequential.p_value == sequential.sequential.p_value
    assert fixed.p_value is not None
    assert sequential.p_value is not None
    # Valid at every look costs evidence: the same data is weaker evidence sequentially.
    assert fixed.significant
    assert not sequential.significant
    assert sequential.p_value > fixed.p_value
    assert sequential.verdict is Verdict.INCONCLUSIVE
    relative = sequential.sequential_relative
    assert relative.ci_lower is not None
    assert relative.ci_upper is not None
    assert relative.ci_lower < 0.09 < relative.ci_upper


def test_degradation_flags_a_worse_treatment_sequentially() -> None:
    analyzer = StatisticalAnalyzer()
    errors_c = SampleStats.from_successes(n=20_000, successes=1_000)  # 5.0% errors
    errors_t = SampleStats.from_successes(n=20_000, successes=1_240)  # 6.2%: 24% worse
    result = analyzer.degradation(
        errors_c, errors_t, margin=0.05, relative=True, direction="lower", kind="binary"
    )
    assert result.hypothesis is MarginHypothesis.DEGRADATION
    assert result.sequential
    assert result.alternative is Alternative.GREATER
    assert result.null_value == 0.05
    assert result.rejected
    assert result.statistic is None
    assert result.bound is not None
    assert result.bound > 0.05
    healthy = analyzer.degradation(
        errors_c, errors_c, margin=0.05, relative=True, direction="lower"
    )
    assert not healthy.rejected


def test_non_inferiority_shows_a_treatment_is_not_worse_than_the_margin() -> None:
    analyzer = StatisticalAnalyzer()
    rng = np.random.default_rng(70)
    control = SampleStats.from_values(rng.normal(100, 10, 2000))
    treatment = SampleStats.from_values(rng.normal(100, 10, 2000))
    shown = analyzer.non_inferiority(control, treatment, margin=2.0)
    assert shown.rejected
    assert not shown.sequential
    assert shown.statistic is not None
    assert shown.bound is not None
    assert shown.bound > -2.0
    sequential = analyzer.non_inferiority(control, treatment, margin=2.0, sequential=True)
    assert sequential.p_value is not None
    assert shown.p_value is not None
    assert sequential.p_value > shown.p_value
    with pytest.raises(InvalidError) as caught:
        analyzer.non_inferiority(control, treatment, margin=-1.0)
    assert caught.value.field == "margin"


def test_fixed_mixture_variance_is_used_for_sequential_results() -> None:
    result = StatisticalAnalyzer(mixture_variance=0.0004).sequential_test(CONTROL, BETTER)
    assert_close(result.mixture_variance, 0.0004)


def test_srm_and_corrections_use_the_configured_alphas() -> None:
    analyzer = StatisticalAnalyzer(alpha=0.1, srm_alpha=0.01)
    assert analyzer.sample_ratio_mismatch([100, 130], [0.5, 0.5]).alpha == 0.01
    corrected = analyzer.adjust_p_values([0.04, 0.06], method="fdr_bh")
    assert corrected.alpha == 0.1
    assert corrected.rejected == (True, True)


def test_docstring_example_holds() -> None:
    control = SampleStats.from_successes(n=1000, successes=100)
    treatment = SampleStats.from_successes(n=1000, successes=130)
    assert StatisticalAnalyzer(alpha=0.05).compare(control, treatment, kind="binary").significant


# -- degenerate input: codes, never exceptions, never NaN ------------------------------------

tiny_binary = st.integers(0, 3).flatmap(
    lambda n: st.integers(0, n).map(lambda s: SampleStats.from_successes(n, s))
)
tiny_continuous = st.lists(st.sampled_from([0.0, 1.0, 2.5, -3.0]), max_size=3).map(
    SampleStats.from_values
)
constant = st.tuples(st.integers(0, 50), st.sampled_from([0.0, 1.0, 7.5])).map(
    lambda pair: SampleStats.from_values(np.full(pair[0], pair[1]))
)


@settings(max_examples=150, deadline=None)
@given(
    arms=st.one_of(
        st.tuples(tiny_binary, tiny_binary).map(lambda a: (*a, MetricKind.BINARY)),
        st.tuples(tiny_continuous, tiny_continuous).map(lambda a: (*a, MetricKind.CONTINUOUS)),
        st.tuples(constant, constant).map(lambda a: (*a, MetricKind.CONTINUOUS)),
    ),
    sequential=st.booleans(),
    direction=st.sampled_from(list(Direction)),
)
def test_degenerate_input_never_raises_and_never_gives_nan(
    arms: tuple[SampleStats, SampleStats, MetricKind], sequential: bool, direction: Direction
) -> None:
    control, treatment, kind = arms
    analyzer = StatisticalAnalyzer()
    comparison = analyzer.compare(
        control, treatment, kind=kind, direction=direction, sequential=sequential
    )
    results: list[object] = [
        comparison,
        analyzer.welch_t_test(control, treatment),
        analyzer.absolute_lift(control, treatment),
        analyzer.relative_lift(control, treatment),
        analyzer.non_inferiority(control, treatment, margin=0.1, sequential=sequential),
        analyzer.degradation(control, treatment, margin=0.1, relative=True, kind=kind),
        analyzer.sequential_test(control, treatment, alternative="less"),
        analyzer.sample_ratio_mismatch([control.n, treatment.n], [0.5, 0.5]),
    ]
    if kind is MetricKind.BINARY:
        results.append(analyzer.z_test(control, treatment))
    for result in results:
        assert_no_nan(result)
    if min(control.n, treatment.n) < 2:
        assert comparison.code in {ResultCode.NO_DATA, ResultCode.INSUFFICIENT_SAMPLE}
        assert comparison.verdict is Verdict.INCONCLUSIVE


@pytest.mark.parametrize(
    ("control", "treatment", "code"),
    [
        (SampleStats(0, 0, 0), SampleStats(0, 0, 0), ResultCode.NO_DATA),
        (SampleStats.from_successes(1, 1), BETTER, ResultCode.INSUFFICIENT_SAMPLE),
        (
            SampleStats.from_successes(500, 500),
            SampleStats.from_successes(400, 400),
            ResultCode.ZERO_VARIANCE,
        ),
    ],
)
def test_named_degenerate_cases_give_their_codes(
    control: SampleStats, treatment: SampleStats, code: ResultCode
) -> None:
    for sequential in (False, True):
        result = StatisticalAnalyzer().compare(
            control, treatment, kind="binary", sequential=sequential
        )
        assert result.code is code
        assert result.reason
        assert result.p_value is None
        assert not result.significant
        assert result.verdict is Verdict.INCONCLUSIVE
        assert_no_nan(result)
